// The testing kit's Harness runs the plugin through the same C ABI calls as `sluice`; a
// source's messages are captured by the harness's emitter.
#include "counter_source.cpp"  // the plugin is one file; the test compiles it in

#include <catch2/catch.hpp>
#include <chrono>
#include <sluice/sdk/testing.hpp>
#include <thread>

using sluice::sdk::testing::Harness;

TEST_CASE("counter-source emits count numbered messages, then ends its input") {
    Harness<CounterSource> h({{"count", "3"}, {"topic", "c/1"}});
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!h.output().ended() && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    REQUIRE(h.output().ended());
    const auto out = h.emitted();
    REQUIRE(out.size() == 3);
    CHECK(out[0].payload == "message 1");
    CHECK(out[2].payload == "message 3");
    CHECK(out[2].topic == "c/1");
    REQUIRE(h.host().logs().size() == 1);
    CHECK(h.host().logs()[0].second == "emitted 3 messages");
}

TEST_CASE("counter-source waits while the route answers RETRY") {
    Harness<CounterSource> h({{"count", "2"}});
    h.output().refuse(true);  // as a full route queue does when its policy says so
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(h.emitted().empty());
    h.output().refuse(false);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!h.output().ended() && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CHECK(h.emitted().size() == 2);
}

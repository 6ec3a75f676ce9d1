#include <catch2/catch.hpp>

#include <sluice/sdk/testing.hpp>
#include <thread>

#include "sluice/core/route_queue.hpp"

using namespace std::chrono_literals;

namespace {

void push(sluice::RouteQueue& q, const std::string& payload) {
    auto m = sluice::sdk::testing::message("t/1", payload);
    m.headers = {{"h", payload}};
    std::vector<sluice_header> hs;
    REQUIRE(q.push(m.view(hs)) == sluice::RouteQueue::Push::ok);
}

}  // namespace

TEST_CASE("route queue hands out batches in order with their bytes intact", "[core][queue]") {
    sluice::RouteQueue q(100, 3, false);
    for (int i = 0; i < 7; ++i) push(q, "p" + std::to_string(i));
    CHECK(q.size() == 7);
    sluice::MessageArena out;
    std::vector<std::string> seen;
    while (q.take(out, 10ms)) {
        CHECK(out.size() <= 3);
        const auto& b = out.batch();
        for (std::size_t i = 0; i < b.count; ++i) {
            const auto m = sluice::sdk::MessageView(b.messages[i]);
            CHECK(m.topic() == "t/1");
            CHECK(m.header("h") == std::optional<std::string_view>(m.payload()));
            seen.emplace_back(m.payload());
        }
        out.clear();
    }
    CHECK(seen == std::vector<std::string>{"p0", "p1", "p2", "p3", "p4", "p5", "p6"});
    CHECK(q.size() == 0);
}

TEST_CASE("a full queue blocks, drops, or lets through while unbounded", "[core][queue]") {
    SECTION("drop_newest refuses without waiting") {
        sluice::RouteQueue q(2, 10, true);
        push(q, "a");
        push(q, "b");
        auto m = sluice::sdk::testing::message("t", "c");
        std::vector<sluice_header> hs;
        CHECK(q.push(m.view(hs)) == sluice::RouteQueue::Push::dropped);
    }
    SECTION("block waits for the consumer") {
        sluice::RouteQueue q(1, 10, false);
        push(q, "a");
        std::atomic<bool> pushed{false};
        std::thread producer([&] {
            push(q, "b");
            pushed = true;
        });
        std::this_thread::sleep_for(50ms);
        CHECK_FALSE(pushed);
        sluice::MessageArena out;
        REQUIRE(q.take(out, 100ms));
        producer.join();
        CHECK(pushed);
    }
    SECTION("unbounded lets a blocked producer finish; close fails pushes") {
        sluice::RouteQueue q(1, 10, false);
        push(q, "a");
        std::thread producer([&] { push(q, "b"); });
        std::this_thread::sleep_for(20ms);
        q.set_unbounded(true);
        producer.join();
        CHECK(q.size() == 2);
        q.close();
        auto m = sluice::sdk::testing::message("t", "c");
        std::vector<sluice_header> hs;
        CHECK(q.push(m.view(hs)) == sluice::RouteQueue::Push::closed);
    }
}

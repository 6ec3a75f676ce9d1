// The testing kit's Harness runs the plugin through the same C ABI calls as `sluice`:
// process() a batch, then look at what was emitted and rejected.
#include "uppercase_transform.cpp"  // the plugin is one file; the test compiles it in

#include <catch2/catch.hpp>
#include <sluice/sdk/testing.hpp>

using sluice::sdk::testing::Harness;
using sluice::sdk::testing::message;

TEST_CASE("uppercase-transform upper-cases payloads and keeps the rest") {
    Harness<UppercaseTransform> h({});
    auto in = message("rooms/lab", "Hello, 21.5 C");
    in.key = "k";
    REQUIRE(h.process({in}) == SLUICE_OK);
    const auto out = h.emitted();
    REQUIRE(out.size() == 1);
    CHECK(out[0].payload == "HELLO, 21.5 C");
    CHECK(out[0].topic == "rooms/lab");
    CHECK(out[0].key == "k");
}

TEST_CASE("uppercase-transform sets the key from its template") {
    Harness<UppercaseTransform> h({{"key", "{{route}}-{{topic.1}}"}});
    REQUIRE(h.process({message("rooms/lab", "x")}) == SLUICE_OK);
    CHECK(h.emitted().at(0).key == "test-route-lab");
}

TEST_CASE("uppercase-transform rejects payloads over max_bytes, one by one") {
    Harness<UppercaseTransform> h({{"max_bytes", "4"}});
    REQUIRE(h.process({message("t", "abcdef"), message("t", "abc")}) == SLUICE_OK);
    REQUIRE(h.emitted().size() == 1);
    CHECK(h.emitted()[0].payload == "ABC");
    const auto rejected = h.rejections();
    REQUIRE(rejected.size() == 1);
    CHECK(rejected[0].index == 0);
    CHECK(rejected[0].status == SLUICE_ERROR);
    CHECK(rejected[0].reason == "payload of 6 bytes exceeds max_bytes");
}

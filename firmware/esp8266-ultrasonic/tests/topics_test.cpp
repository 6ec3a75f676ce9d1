#include "topics.hpp"

#include <catch2/catch.hpp>
#include <string>

using namespace sluice::firmware;

TEST_CASE("topic names of a device", "[topics]") {
    device_topics t;
    REQUIRE(make_device_topics("tank-1", &t));
    CHECK(std::string(t.readings) == "sensors/distance/tank-1");
    CHECK(std::string(t.command) == "devices/tank-1/cmd");
    CHECK(std::string(t.status) == "devices/tank-1/status");
    CHECK(std::string(t.ack) == "devices/tank-1/ack");
    CHECK(std::string(kStatusOnline) == "online");
    CHECK(std::string(kStatusOffline) == "offline");
}

TEST_CASE("the longest allowed id still fits every topic", "[topics]") {
    const std::string id(kMaxDeviceIdLength, 'x');
    device_topics t;
    REQUIRE(make_device_topics(id.c_str(), &t));
    CHECK(std::string(t.status) == "devices/" + id + "/status");
    CHECK(std::string(t.readings) == "sensors/distance/" + id);
}

TEST_CASE("ids that would break topics, JSON or client ids are refused", "[topics]") {
    const std::string too_long(kMaxDeviceIdLength + 1, 'x');
    for (const char* bad : {"", "a/b", "tank+1", "tank#", "tank 1", "t\"1", "t\\1", "tänk"}) {
        INFO(bad);
        CHECK_FALSE(is_valid_device_id(bad));
        device_topics t;
        CHECK_FALSE(make_device_topics(bad, &t));
        CHECK(t.readings[0] == '\0');
        CHECK(t.command[0] == '\0');
    }
    CHECK_FALSE(is_valid_device_id(too_long.c_str()));
    CHECK_FALSE(is_valid_device_id(nullptr));
    CHECK(is_valid_device_id("Tank_07-b"));
}

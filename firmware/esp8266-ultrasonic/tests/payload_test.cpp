#include "payload.hpp"

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "topics.hpp"
#include "version.hpp"

using namespace sluice::firmware;

namespace {

reading sample_reading() {
    reading r{};
    r.device_id = "tank-1";
    r.sequence = 7;
    r.has_distance = true;
    r.distance_cm = 123.44f;
    r.uptime_ms = 5000;
    r.rssi_dbm = -61;
    r.led_on = false;
    return r;
}

std::string format(const reading& r) {
    char buf[kPayloadCapacity];
    const size_t n = format_reading_json(r, buf, sizeof buf);
    REQUIRE(n == std::strlen(buf));
    return buf;
}

const std::string kFw = std::string(",\"firmware\":\"") + kFirmwareVersion + "\"}";

}  // namespace

TEST_CASE("reading payload, exact text", "[payload]") {
    CHECK(format(sample_reading()) ==
          "{\"device\":\"tank-1\",\"seq\":7,\"distance_cm\":123.4,\"uptime_ms\":5000,"
          "\"rssi\":-61,\"led\":false" +
              kFw);
}

TEST_CASE("out-of-range reading has null distance and an error", "[payload]") {
    reading r = sample_reading();
    r.has_distance = false;
    r.led_on = true;
    CHECK(format(r) ==
          "{\"device\":\"tank-1\",\"seq\":7,\"distance_cm\":null,\"error\":\"out_of_range\","
          "\"uptime_ms\":5000,\"rssi\":-61,\"led\":true" +
              kFw);
}

TEST_CASE("distance is rounded to one decimal", "[payload]") {
    reading r = sample_reading();
    const std::pair<float, const char*> cases[] = {
        {2.0f, "2.0"}, {17.17f, "17.2"}, {17.14f, "17.1"}, {99.96f, "100.0"}, {400.0f, "400.0"}};
    for (const auto& [cm, text] : cases) {
        r.distance_cm = cm;
        INFO(cm);
        CHECK(format(r).find(std::string("\"distance_cm\":") + text + ",") != std::string::npos);
    }
}

TEST_CASE("widest possible reading fits the payload capacity", "[payload]") {
    const std::string id(kMaxDeviceIdLength, 'w');
    reading r = sample_reading();
    r.device_id = id.c_str();
    r.sequence = 4294967295u;
    r.uptime_ms = 4294967295u;
    r.rssi_dbm = INT32_MIN;
    r.distance_cm = 400.0f;
    r.led_on = false;
    char buf[kPayloadCapacity];
    const size_t n = format_reading_json(r, buf, sizeof buf);
    CHECK(n > 0);
    CHECK(n < kPayloadCapacity);
    r.has_distance = false;  // the error text is longer than any number
    CHECK(format_reading_json(r, buf, sizeof buf) > 0);
}

TEST_CASE("a too small buffer is detected, never half-written", "[payload]") {
    const std::string full = format(sample_reading());
    for (size_t size = 1; size <= full.size(); ++size) {
        char buf[kPayloadCapacity + 8];
        std::memset(buf, '#', sizeof buf);
        INFO("buffer size " << size);
        CHECK(format_reading_json(sample_reading(), buf, size) == 0);
        CHECK(buf[0] == '\0');
        CHECK(buf[size] == '#');  // nothing written past the end
    }
    char exact[kPayloadCapacity];
    CHECK(format_reading_json(sample_reading(), exact, full.size() + 1) == full.size());
    CHECK(full == exact);
    CHECK(format_reading_json(sample_reading(), nullptr, 0) == 0);
}

TEST_CASE("an invalid device id produces no payload", "[payload]") {
    reading r = sample_reading();
    r.device_id = "bad\"id";
    char buf[kPayloadCapacity];
    CHECK(format_reading_json(r, buf, sizeof buf) == 0);
    CHECK(buf[0] == '\0');
}

TEST_CASE("command acknowledgements", "[payload]") {
    char buf[64];
    CHECK(format_ack_json(command_error::ok, true, 5000, buf, sizeof buf) > 0);
    CHECK(std::string(buf) == "{\"ok\":true,\"led\":true,\"interval_ms\":5000}");
    CHECK(format_ack_json(command_error::out_of_range, false, 5000, buf, sizeof buf) > 0);
    CHECK(std::string(buf) == "{\"ok\":false,\"error\":\"out_of_range\"}");
    CHECK(format_ack_json(command_error::ok, true, 5000, buf, 10) == 0);
    CHECK(buf[0] == '\0');
}

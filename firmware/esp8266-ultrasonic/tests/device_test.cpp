#include "device.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "distance.hpp"
#include "version.hpp"

using namespace sluice::firmware;

namespace {

struct published_message {
    std::string topic;
    std::string payload;
    bool retained;
};

class fake_platform final : public platform {
public:
    uint32_t now = 1000;
    uint32_t echo_us = echo_us_for_distance(100.0f, 20.0f);
    bool led = true;  // begin() must switch it off
    bool is_connected = false;
    bool accept_connect = true;
    bool accept_subscribe = true;
    bool accept_publish = true;
    int connect_calls = 0;
    int measurements = 0;
    std::string will_topic;
    std::string will_payload;
    std::vector<std::string> subscriptions;
    std::vector<published_message> published;
    std::vector<std::string> logs;

    uint32_t now_ms() override { return now; }
    uint32_t measure_echo_us() override {
        ++measurements;
        return echo_us;
    }
    float air_temperature_c() override { return 20.0f; }
    int32_t rssi_dbm() override { return -60; }
    void set_led(bool on) override { led = on; }
    bool connected() override { return is_connected; }
    bool connect(const char* topic, const char* payload) override {
        ++connect_calls;
        will_topic = topic;
        will_payload = payload;
        is_connected = accept_connect;
        return accept_connect;
    }
    bool subscribe(const char* topic) override {
        subscriptions.emplace_back(topic);
        return accept_subscribe;
    }
    bool publish(const char* topic, const char* payload, size_t length, bool retained) override {
        if (!accept_publish) return false;
        published.push_back({topic, std::string(payload, length), retained});
        return true;
    }
    void log(const char* line) override { logs.emplace_back(line); }

    std::vector<published_message> on(const std::string& topic) const {
        std::vector<published_message> out;
        for (const auto& m : published) {
            if (m.topic == topic) out.push_back(m);
        }
        return out;
    }
    bool logged(const std::string& line) const {
        for (const auto& l : logs) {
            if (l == line) return true;
        }
        return false;
    }
};

uint32_t zero_random(void*) { return 0; }

device_config config_for(const char* id, uint32_t interval_ms = 1000) {
    device_config c;
    c.device_id = id;
    c.interval_ms = interval_ms;
    c.reconnect_initial_ms = 500;
    c.reconnect_max_ms = 4000;
    return c;
}

void send(device& d, const char* topic, const std::string& text) {
    d.on_message(topic, text.data(), text.size());
}

}  // namespace

TEST_CASE("invalid configuration keeps the device stopped", "[device]") {
    fake_platform p;
    device d(p, zero_random, nullptr);
    CHECK_FALSE(d.begin(config_for("bad/id")));
    CHECK_FALSE(d.begin(config_for("tank-1", 10)));  // interval below kMinIntervalMs
    d.tick();
    CHECK(d.state() == device_state::stopped);
    CHECK(p.connect_calls == 0);
}

TEST_CASE("connect sets the will, subscribes, says online and reports at once", "[device]") {
    fake_platform p;
    device d(p, zero_random, nullptr);
    REQUIRE(d.begin(config_for("tank-1")));
    CHECK_FALSE(p.led);
    d.tick();
    REQUIRE(d.state() == device_state::online);
    CHECK(p.will_topic == "devices/tank-1/status");
    CHECK(p.will_payload == "offline");
    CHECK(p.subscriptions == std::vector<std::string>{"devices/tank-1/cmd"});
    REQUIRE(p.published.size() == 2);
    CHECK(p.published[0].topic == "devices/tank-1/status");
    CHECK(p.published[0].payload == "online");
    CHECK(p.published[0].retained);
    CHECK(p.published[1].topic == "sensors/distance/tank-1");
    CHECK_FALSE(p.published[1].retained);
    CHECK(p.published[1].payload ==
          std::string("{\"device\":\"tank-1\",\"seq\":1,\"distance_cm\":100.0,\"uptime_ms\":1000,"
                      "\"rssi\":-60,\"led\":false,\"firmware\":\"") +
              kFirmwareVersion + "\"}");
    CHECK(d.readings_published() == 1);
    CHECK(p.logged("tank-1 online"));
}

TEST_CASE("readings follow the interval with increasing sequence numbers", "[device]") {
    fake_platform p;
    device d(p, zero_random, nullptr);
    REQUIRE(d.begin(config_for("tank-1", 1000)));
    d.tick();
    for (int step = 0; step < 50; ++step) {  // 5 s in 100 ms steps
        p.now += 100;
        d.tick();
    }
    const auto readings = p.on("sensors/distance/tank-1");
    REQUIRE(readings.size() == 6);  // t = 1000 (at connect), 2000, ..., 6000
    for (size_t i = 0; i < readings.size(); ++i) {
        CHECK(readings[i].payload.find("\"seq\":" + std::to_string(i + 1) + ",") !=
              std::string::npos);
    }
    // Samples are spread over the interval (every 200 ms for 1000 ms and a 5-sample window).
    CHECK(p.measurements >= 25);
    CHECK(p.measurements <= 27);
}

TEST_CASE("the median hides a stray echo, a dead sensor reports out of range", "[device]") {
    fake_platform p;
    device d(p, zero_random, nullptr);
    REQUIRE(d.begin(config_for("tank-1", 1000)));
    d.tick();
    p.echo_us = 0;  // one lost echo among good ones
    p.now += 200;
    d.tick();
    p.echo_us = echo_us_for_distance(100.0f, 20.0f);
    for (int i = 0; i < 4; ++i) {
        p.now += 200;
        d.tick();
    }
    auto readings = p.on("sensors/distance/tank-1");
    REQUIRE(readings.size() == 2);
    CHECK(readings[1].payload.find("\"distance_cm\":100.0,") != std::string::npos);

    p.echo_us = 0;  // the sensor is unplugged
    for (int i = 0; i < 10; ++i) {
        p.now += 200;
        d.tick();
    }
    readings = p.on("sensors/distance/tank-1");
    CHECK(readings.back().payload.find("\"distance_cm\":null,\"error\":\"out_of_range\"") !=
          std::string::npos);
}

TEST_CASE("failed connects back off exponentially, success resets", "[device]") {
    fake_platform p;
    p.accept_connect = false;
    device d(p, zero_random, nullptr);  // zero jitter: delays are exactly base/2
    REQUIRE(d.begin(config_for("tank-1")));
    d.tick();
    CHECK(p.connect_calls == 1);
    std::vector<uint32_t> attempts_at;
    for (int ms = 0; ms <= 6000; ms += 10) {
        const int before = p.connect_calls;
        p.now += 10;
        d.tick();
        if (p.connect_calls != before) attempts_at.push_back(p.now - 1000);
    }
    // Delays 250, 500, 1000, 2000, 2000 (cap 4000 -> jittered to its half).
    CHECK(attempts_at == std::vector<uint32_t>{250, 750, 1750, 3750, 5750});
    CHECK(p.logged("tank-1 connect failed, retry in 250 ms"));

    p.accept_connect = true;
    p.now += 2000;
    d.tick();
    REQUIRE(d.state() == device_state::online);

    SECTION("a lost connection is noticed and retried from the initial delay") {
        p.is_connected = false;
        p.now += 10;
        d.tick();
        CHECK(d.state() == device_state::disconnected);
        CHECK(p.logged("tank-1 disconnected, retry in 250 ms"));
        const int before = p.connect_calls;
        p.now += 249;
        d.tick();
        CHECK(p.connect_calls == before);
        p.now += 1;
        d.tick();
        CHECK(p.connect_calls == before + 1);
        CHECK(d.state() == device_state::online);
        CHECK(p.on("devices/tank-1/status").back().payload == "online");
    }
}

TEST_CASE("a failed subscribe is retried rather than running deaf", "[device]") {
    fake_platform p;
    p.accept_subscribe = false;
    device d(p, zero_random, nullptr);
    REQUIRE(d.begin(config_for("tank-1")));
    d.tick();
    CHECK(d.state() == device_state::disconnected);
    CHECK(p.on("devices/tank-1/status").empty());
    p.accept_subscribe = true;
    p.now += 250;
    d.tick();
    CHECK(d.state() == device_state::online);
}

TEST_CASE("LED commands switch the LED, are logged, acked and reported", "[device]") {
    fake_platform p;
    device d(p, zero_random, nullptr);
    REQUIRE(d.begin(config_for("tank-2", 1000)));
    d.tick();

    send(d, "devices/tank-2/cmd", "led on");
    CHECK(p.led);
    CHECK(d.led_on());
    CHECK(p.logged("tank-2 led on"));
    REQUIRE_FALSE(p.on("devices/tank-2/ack").empty());
    CHECK(p.on("devices/tank-2/ack").back().payload ==
          "{\"ok\":true,\"led\":true,\"interval_ms\":1000}");

    p.now += 1000;
    d.tick();
    CHECK(p.on("sensors/distance/tank-2").back().payload.find("\"led\":true") != std::string::npos);

    send(d, "devices/tank-2/cmd", R"({"led":"off"})");
    CHECK_FALSE(p.led);
    CHECK(p.logged("tank-2 led off"));
}

TEST_CASE("bad commands and foreign topics change nothing", "[device]") {
    fake_platform p;
    device d(p, zero_random, nullptr);
    REQUIRE(d.begin(config_for("tank-2", 1000)));
    d.tick();
    send(d, "devices/tank-1/cmd", "led on");  // someone else's
    CHECK_FALSE(p.led);
    CHECK(p.on("devices/tank-2/ack").empty());

    send(d, "devices/tank-2/cmd", "interval 5");
    CHECK(d.interval_ms() == 1000);
    CHECK(p.logged("tank-2 command rejected: out_of_range"));
    CHECK(p.on("devices/tank-2/ack").back().payload == "{\"ok\":false,\"error\":\"out_of_range\"}");
}

TEST_CASE("interval commands take effect for the next reading", "[device]") {
    fake_platform p;
    device d(p, zero_random, nullptr);
    REQUIRE(d.begin(config_for("tank-3", 5000)));
    d.tick();  // reading 1 at t=1000
    send(d, "devices/tank-3/cmd", "interval 200");
    CHECK(p.logged("tank-3 interval 200"));
    p.now += 199;
    d.tick();
    CHECK(d.sequence() == 1);
    p.now += 1;
    d.tick();
    CHECK(d.sequence() == 2);
}

TEST_CASE("publish failures are counted as sequence gaps, not as published", "[device]") {
    fake_platform p;
    device d(p, zero_random, nullptr);
    REQUIRE(d.begin(config_for("tank-1", 1000)));
    d.tick();
    p.accept_publish = false;
    p.now += 1000;
    d.tick();
    p.accept_publish = true;
    p.now += 1000;
    d.tick();
    CHECK(d.sequence() == 3);
    CHECK(d.readings_published() == 2);
    CHECK(p.logged("tank-1 publish of reading 2 failed"));
    CHECK(p.on("sensors/distance/tank-1").back().payload.find("\"seq\":3,") != std::string::npos);
}

TEST_CASE("the millisecond clock may wrap", "[device]") {
    fake_platform p;
    p.now = UINT32_MAX - 1500;
    device d(p, zero_random, nullptr);
    REQUIRE(d.begin(config_for("tank-1", 1000)));
    d.tick();
    for (int i = 0; i < 30; ++i) {
        p.now += 100;  // wraps after ~15 steps
        d.tick();
    }
    CHECK(d.sequence() == 4);
}

TEST_CASE("shutdown says offline itself", "[device]") {
    fake_platform p;
    device d(p, zero_random, nullptr);
    REQUIRE(d.begin(config_for("tank-1")));
    d.tick();
    d.shutdown();
    const auto status = p.on("devices/tank-1/status");
    REQUIRE(status.size() == 2);
    CHECK(status.back().payload == "offline");
    CHECK(status.back().retained);
    CHECK(d.state() == device_state::stopped);
    const size_t before = p.published.size();
    p.now += 10000;
    d.tick();
    CHECK(p.published.size() == before);
}

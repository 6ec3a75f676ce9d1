// The firmware's platform interface on Linux: paho async_client for MQTT, tank_model for the
// sensor, stdout for the log.
#pragma once

#include <mqtt/async_client.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>

#include "device.hpp"
#include "tank_model.hpp"

namespace sluice::firmware::sim {

struct inbound_message {
    std::string topic;
    std::string payload;
};

class mqtt_platform final : public platform {
public:
    mqtt_platform(const std::string& url, const std::string& client_id, int qos, tank_model& tank,
                  std::chrono::steady_clock::time_point epoch);
    ~mqtt_platform();
    mqtt_platform(const mqtt_platform&) = delete;
    mqtt_platform& operator=(const mqtt_platform&) = delete;

    std::uint32_t now_ms() override;
    std::uint32_t measure_echo_us() override;
    float air_temperature_c() override { return tank_.air_temperature_c(); }
    std::int32_t rssi_dbm() override { return tank_.rssi_dbm(); }
    void set_led(bool on) override { led_on_ = on; }
    bool connected() override;
    bool connect(const char* will_topic, const char* will_payload) override;
    bool subscribe(const char* topic) override;
    bool publish(const char* topic, const char* payload, std::size_t length,
                 bool retained) override;
    void log(const char* line) override;

    // Waits up to `timeout` for a command message (paho delivers them on its own thread); the
    // device thread hands them to device::on_message so the core stays single-threaded.
    std::deque<inbound_message> wait_for_messages(std::chrono::milliseconds timeout);

    // Waits (bounded) for in-flight messages, then disconnects.
    void disconnect();

private:
    mqtt::async_client client_;
    std::string client_id_;
    int qos_;
    tank_model& tank_;
    std::chrono::steady_clock::time_point epoch_;
    bool led_on_ = false;
    std::mutex mutex_;
    std::condition_variable arrived_;
    std::deque<inbound_message> inbox_;
};

}  // namespace sluice::firmware::sim

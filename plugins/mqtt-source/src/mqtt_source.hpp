// mqtt-source: subscribes to an MQTT broker with paho (paho.mqtt.cpp over paho.mqtt.c) and hands
// every message to its route. A thread of its own owns the connection: the first connect, the
// back-off while the broker is unreachable, reconnects and re-subscribes. paho's own automatic
// reconnect is not used: it only starts after a first successful connect and counts in whole
// seconds.
#pragma once

#include <mqtt/async_client.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <sluice/sdk.hpp>
#include <string>
#include <thread>
#include <vector>

#include "settings.hpp"

namespace sluice::plugins {

class MqttSource : public sdk::Source {
public:
    static sdk::Spec spec();
    static void validate(const sdk::Config& config, sdk::Diagnostics& diag);

    MqttSource(const sdk::Config& config, sdk::Host& host);
    ~MqttSource() override;
    MqttSource(const MqttSource&) = delete;
    MqttSource& operator=(const MqttSource&) = delete;

    void start(sdk::Emitter out) override;
    void stop(std::chrono::milliseconds deadline) override;

    const mqtt_source::Settings& settings() const { return settings_; }

private:
    using Clock = std::chrono::steady_clock;

    void run();
    struct Subscription {
        std::string error;       // "" when the broker granted every filter
        bool reconnect = false;  // the failure is the connection's, not the filters'
    };

    // One connect attempt; returns "" on success (with `session_present` and the `server` that
    // answered), else the reason.
    std::string connect_once(bool& session_present, std::string& server);
    Subscription subscribe_all(bool session_present);
    // Waits for `token` in short slices so that stop() is never held up by a slow broker.
    // Returns false when stopping or when `limit` passed; rethrows paho's failure.
    bool wait(const mqtt::token_ptr& token, std::chrono::milliseconds limit);
    bool wait_while_receiving(const mqtt::token_ptr& token, std::chrono::milliseconds limit);
    // Sleeps `d` unless stop() or a connection loss comes first; false when stopping.
    bool pause(std::chrono::milliseconds d);
    void on_message(const mqtt::const_message_ptr& message);
    void on_connection_lost(const std::string& cause);
    void report_drop(sdk::Status status, const std::string& topic);

    mqtt_source::Settings settings_;
    sdk::Host& host_;
    // Outlives every copy paho makes of it (see the constructor).
    mqtt::connect_options connect_options_;
    std::unique_ptr<mqtt::async_client> client_;

    // Connection state, shared between paho's callback thread and the connection thread.
    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    bool lost_ = false;
    std::string lost_reason_;
    std::atomic<bool> stop_requested_{false};
    std::thread thread_;
    bool started_ = false;  // start() and stop() never run concurrently (abi.h)

    // The emitter is valid only between start() and the return of stop(): every emit happens
    // under emit_mu_, and stop() clears accepting_ under it.
    std::timed_mutex emit_mu_;
    std::optional<sdk::Emitter> out_;
    std::atomic<bool> accepting_{false};
    std::vector<sluice_header> headers_;  // reused per message, guarded by emit_mu_

    std::atomic<std::uint64_t> received_{0};
    std::atomic<std::uint64_t> dropped_{0};
    std::uint64_t dropped_logged_ = 0;   // guarded by emit_mu_
    Clock::time_point last_drop_log_{};  // guarded by emit_mu_
};

}  // namespace sluice::plugins

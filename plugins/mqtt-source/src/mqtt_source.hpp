// mqtt-source: subscribes to an MQTT broker with paho (paho.mqtt.cpp over paho.mqtt.c) and hands
// every message to its route. A thread of its own owns the connection: the first connect, the
// back-off while the broker is unreachable, reconnects and re-subscribes. paho's own automatic
// reconnect is not used: it only starts after a first successful connect and counts in whole
// seconds.
//
// paho.mqtt.c calls every client's callbacks on one receive thread per process: nothing on that
// thread may wait (no logging, no lock that anyone holds across I/O or logging), or every
// connection of the process stalls and keep-alives lapse. The callback counts what it could not
// hand over; the connection thread logs it.
//
// Flow control (hold_input): the host's threads only record the request; the connection thread
// disconnects, keeping the persistent session, and stays away until the request is withdrawn.
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
    /// THREAD: any host thread. Never blocks: the connection thread acts on the last request.
    void hold_input(bool hold);

    const mqtt_source::Settings& settings() const { return settings_; }

private:
    using Clock = std::chrono::steady_clock;

    void run();
    struct Subscription {
        std::string error;       // "" when the broker granted every filter
        bool reconnect = false;  // the failure is the connection's, not the filters'
        bool held = false;       // a hold request cut the wait for the SUBACKs short
    };
    enum class Waited { done, timeout, interrupted };
    enum class Wake { stop, lost, hold };

    // One connect attempt; returns "" on success (with `session_present` and the `server` that
    // answered), else the reason.
    std::string connect_once(bool& session_present, std::string& server);
    Subscription subscribe_all(bool session_present);
    // Waits for `token` in short slices so that stop() is never held up by a slow broker.
    // Returns false when stopping or when `limit` passed; rethrows paho's failure.
    bool wait(const mqtt::token_ptr& token, std::chrono::milliseconds limit);
    // `holdable`: a hold request that can be honoured interrupts the wait too.
    Waited wait_while_receiving(const mqtt::token_ptr& token, std::chrono::milliseconds limit,
                                bool holdable);
    // Sleeps `d` unless stop() or a hold request comes first; false when stopping.
    bool pause(std::chrono::milliseconds d);
    // Connected: waits for stop(), a lost connection or a hold request.
    Wake wait_connected();
    // While a hold is requested (and can be honoured): reports it and waits for its end. False
    // when stopping.
    bool hold_while_requested();
    void disconnect_for_hold();
    // Waits on cv_ until `done()` (called under mu_) or `until`; false on timeout. Wakes now and
    // then to do what the callback thread must not (housekeeping()).
    template <class Done>
    bool idle(Clock::time_point until, Done done);
    // On the connection thread: the logging the paho callbacks leave to it.
    void housekeeping();
    bool hold_due();        // a hold is requested and can be honoured
    bool holding() const {  // the same, with mu_ held
        return hold_ && cannot_hold_.empty();
    }
    void on_message(const mqtt::const_message_ptr& message);
    void on_connection_lost(const std::string& cause);
    void note_drop(sdk::Status status, const std::string& topic);
    void log_drops();

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
    bool hold_ = false;         // the host's last hold_input() request
    bool hold_warned_ = false;  // the "cannot hold back" warning is out (once per instance)
    // "" when holding back at the broker loses nothing (a persistent session that queues what
    // we subscribe to), else why it would.
    std::string cannot_hold_;
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
    // What the callback could not hand over, for log_drops() on the connection thread. Guarded
    // by drop_mu_, which is held only to update or copy these, never across logging.
    std::mutex drop_mu_;
    std::uint64_t drops_to_log_ = 0;  // while the route runs (stopping drops are in the summary)
    sdk::Status last_drop_status_ = sdk::Status::ok;
    std::string last_drop_topic_;
    std::uint64_t drops_logged_ = 0;
    Clock::time_point last_drop_log_{};
};

}  // namespace sluice::plugins

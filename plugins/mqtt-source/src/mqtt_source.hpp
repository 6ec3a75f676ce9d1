// mqtt-source: subscribes to an MQTT broker with paho (paho.mqtt.cpp over paho.mqtt.c) and hands
// every message to its route. An instance plays one of three roles:
// - dedicated (the default, `connection: dedicated`): its own connection and persistent
//   session, which is what lets a full route hold back at the broker alone;
// - member (`connection: shared`): no connection of its own; it joins the SharedConnection
//   for its settings, which hands it the messages of its filters (shared_connection.hpp);
// - group: the connection of a SharedConnection, made by it and serving all its members.
// The connection state machine (run(): the first connect, the back-off while the broker is
// unreachable, reconnects, re-subscribing, holding back) is a coroutine that the process's one
// ConnectionDriver thread runs for every instance, so that 10,000 routes do not need 10,000
// threads. Connect attempts go through the driver's pacer. paho's own automatic reconnect is
// not used: it only starts after a first successful connect and counts in whole seconds.
//
// paho.mqtt.c calls every client's callbacks on one receive thread per process: nothing on that
// thread may wait (no logging, no lock that anyone holds across I/O or logging), or every
// connection of the process stalls and keep-alives lapse. paho's callbacks only record what
// happened and wake the instance on the driver, which does the rest (logging included). The
// driver never waits for paho either: its waits are suspensions until a callback wakes it.
//
// Flow control (hold_input): the host's threads only record the request; run() disconnects,
// keeping the persistent session, and stays away until the request is withdrawn.
#pragma once

#include <mqtt/async_client.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <sluice/sdk.hpp>
#include <string>
#include <unordered_set>
#include <vector>

#include "connection_driver.hpp"
#include "settings.hpp"
#include "task.hpp"

namespace sluice::plugins {

namespace mqtt_source {
class SharedConnection;
}

class MqttSource : public sdk::Source, private mqtt_source::ConnectionDriver::Machine {
public:
    static sdk::Spec spec();
    static void validate(const sdk::Config& config, sdk::Diagnostics& diag);

    MqttSource(const sdk::Config& config, sdk::Host& host);
    ~MqttSource() override;
    MqttSource(const MqttSource&) = delete;
    MqttSource& operator=(const MqttSource&) = delete;

    void start(sdk::Emitter out) override;
    void stop(std::chrono::milliseconds deadline) override;
    /// THREAD: any host thread. Never blocks: run() acts on the last request.
    void hold_input(bool hold);
    /// Connects, losses, connection and session state; a member's are its shared
    /// connection's. THREAD: any (the host's admin thread). Never blocks.
    void metrics(sdk::Metrics& out) const;

    const mqtt_source::Settings& settings() const { return settings_; }

    /// The connection of a SharedConnection (the `group` role), started; `host` and `group`
    /// outlive it.
    static std::unique_ptr<MqttSource> group_connection(mqtt_source::Settings settings,
                                                        sdk::Host& host,
                                                        mqtt_source::SharedConnection& group);
    /// Group: subscribes to more filters (now if connected, else at the next connect).
    /// THREAD: any. Never blocks.
    void add_topics(std::vector<std::string> filters);
    /// Group: closes the connection (keeping the session) for at least `d` from now; false,
    /// doing nothing, when the broker would not queue for the session meanwhile.
    /// THREAD: any. Never blocks.
    bool pause_input(std::chrono::milliseconds d);
    /// Whether paho's client is connected. THREAD: any.
    bool connected() const { return client_ && client_->is_connected(); }
    /// Group: a message no route claimed was dropped; counted and logged on the driver.
    void note_unclaimed(const std::string& topic);

private:
    friend class mqtt_source::SharedConnection;
    enum class Role { dedicated, member, group };
    // group == nullptr: dedicated or member, as settings.shared says.
    MqttSource(mqtt_source::Settings settings, sdk::Host& host,
               mqtt_source::SharedConnection* group);
    using Clock = std::chrono::steady_clock;
    template <class T>
    using Task = mqtt_source::Task<T>;

    // paho's completion of an operation (connect, subscribe, disconnect) wakes the instance.
    class Waker : public ::mqtt::iaction_listener {
    public:
        explicit Waker(MqttSource& source) : source_(source) {}
        void on_success(const ::mqtt::token&) override { source_.wake(); }
        void on_failure(const ::mqtt::token&) override { source_.wake(); }

    private:
        MqttSource& source_;
    };
    // What a suspended run() waits for; looked at again at every wake.
    class Waiter {
    public:
        explicit Waiter(Clock::time_point deadline) : until(deadline) {}
        virtual ~Waiter() = default;
        // With mu_ not held. True when the wait is over (its condition, or `until`).
        virtual bool ready() = 0;
        const Clock::time_point until;
    };
    template <class Done>
    class Idle;

    Task<void> run();
    void start_machine();
    // The end of stop(), once nothing arrives any more: the emitter is let go.
    void finish_stop(Clock::time_point until);
    struct Subscription {
        std::string error;       // "" when the broker granted every filter
        bool reconnect = false;  // the failure is the connection's, not the filters'
        bool held = false;       // a hold request cut the wait for the SUBACKs short
    };
    enum class Waited { done, timeout, interrupted };
    enum class Wake { stop, lost, hold, subscribe };

    // One connect attempt, when the pacer allows it; returns "" on success (with
    // `session_present` and the `server` that answered), else the reason.
    Task<std::string> connect_once(bool& session_present, std::string& server);
    std::string connect_failure(const ::mqtt::exception& e) const;
    Task<Subscription> subscribe_all(bool session_present);
    // Sends a SUBSCRIBE for each of `filters` and waits for the answers. A group reports each
    // filter's answer to its SharedConnection instead of failing for a refused one.
    Task<Subscription> subscribe(const std::vector<std::string>& filters);
    // Reports a failed subscription; for a failure of the connection, closes it so that run()
    // reconnects.
    Task<void> subscription_failed(const Subscription& sub);
    // Group: moves the filters add_topics() queued into settings_.topics; returns them.
    std::vector<std::string> take_more_topics();
    // Waits for `token`; while messages keep arriving only time without any counts against
    // `limit`. `holdable`: a hold request that can be honoured interrupts the wait too.
    Task<Waited> wait_while_receiving(::mqtt::token_ptr token, std::chrono::milliseconds limit,
                                      bool holdable);
    // Waits `d` unless stop() or a hold request comes first; false when stopping.
    Task<bool> pause(std::chrono::milliseconds d);
    // Connected: waits for stop(), a lost connection or a hold request.
    Task<Wake> wait_connected();
    // While a hold is requested (and can be honoured): reports it and waits for its end. False
    // when stopping.
    Task<bool> hold_while_requested();
    // Disconnects (keeping the session) and waits up to `limit` for it.
    Task<void> disconnect(std::chrono::milliseconds limit);
    // Suspends run() until `done()` (called with mu_ held) or `until`; true when done().
    template <class Done>
    Idle<Done> idle(Clock::time_point until, Done done);

    // ConnectionDriver::Machine: resumes run() when what it waits for happened.
    void on_wake() override;
    void suspend(std::coroutine_handle<> resume, Waiter& waiter);
    // The driver's timer for the wait in progress and for the drop log that is due.
    void arm(Clock::time_point until);
    void wake() { driver_->wake(id_); }
    // On the driver: the logging the paho callbacks leave to it.
    void housekeeping();
    bool hold_due();        // a hold is requested and can be honoured
    bool holding() const {  // the same, with mu_ held
        return hold_ && cannot_hold_.empty();
    }
    void on_message(const mqtt::const_message_ptr& message);
    void on_connection_lost(const std::string& cause);
    void note_drop(sdk::Status status, const std::string& topic);
    void log_drops();
    Clock::time_point drops_due();  // when log_drops() has something to say

    mqtt_source::Settings settings_;
    sdk::Host& host_;
    const Role role_;
    mqtt_source::SharedConnection* const group_;  // group: the connection it serves
    // member: the connection it joined, between start() and stop().
    std::shared_ptr<mqtt_source::SharedConnection> shared_;
    mutable std::mutex shared_mu_;  // shared_ as metrics() reads it from another thread
    // Before the client: paho may call the waker until the client is gone.
    std::shared_ptr<mqtt_source::ConnectionDriver> driver_;
    mqtt_source::ConnectionDriver::Id id_ = 0;
    Waker waker_{*this};
    // Outlives every copy paho makes of it (see the constructor).
    mqtt::connect_options connect_options_;
    std::unique_ptr<mqtt::async_client> client_;

    // Connection state, shared between paho's callback thread, the host's threads and run().
    std::mutex mu_;
    bool stopping_ = false;
    bool lost_ = false;
    std::string lost_reason_;
    std::vector<std::string> more_topics_;  // group: queued by add_topics()
    // group, driver thread only: the filters the broker granted in the current session.
    std::unordered_set<std::string> granted_;
    bool hold_ = false;  // the host's last hold_input() request
    // group: hold_ was set by pause_input(), which ends at this time
    Clock::time_point hold_until_ = Clock::time_point::min();
    bool hold_warned_ = false;  // the "cannot hold back" warning is out (once per instance)
    // "" when holding back at the broker loses nothing (a persistent session that queues what
    // we subscribe to), else why it would.
    std::string cannot_hold_;
    std::atomic<bool> stop_requested_{false};
    std::atomic<bool> machine_failed_{false};  // run() ended with an exception
    bool started_ = false;                     // start() and stop() never run concurrently (abi.h)

    // run() and where it waits: touched only by the driver, and by start() and stop() while
    // the driver does not run this instance.
    Task<void> run_;
    std::coroutine_handle<> resume_;
    Waiter* waiter_ = nullptr;
    // The connect or disconnect paho is working on: stop() lets it end before it disconnects.
    ::mqtt::token_ptr pending_;

    // The emitter is valid only between start() and the return of stop(): every emit happens
    // under emit_mu_, and stop() clears accepting_ under it.
    std::timed_mutex emit_mu_;
    std::optional<sdk::Emitter> out_;
    std::atomic<bool> accepting_{false};
    std::vector<sluice_header> headers_;  // reused per message, guarded by emit_mu_

    std::atomic<std::uint64_t> received_{0};
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<std::uint64_t> connects_{0};           // CONNACKs that accepted us
    std::atomic<std::uint64_t> connection_losses_{0};  // connections that ended unasked
    std::atomic<bool> session_present_{false};         // what the last CONNACK said
    // What the callback could not hand over, for log_drops() on the driver. Guarded
    // by drop_mu_, which is held only to update or copy these, never across logging.
    std::mutex drop_mu_;
    std::uint64_t drops_to_log_ = 0;  // while the route runs (stopping drops are in the summary)
    sdk::Status last_drop_status_ = sdk::Status::ok;
    std::string last_drop_topic_;
    std::uint64_t drops_logged_ = 0;
    Clock::time_point last_drop_log_{};
};

}  // namespace sluice::plugins

// One MQTT connection and session for every mqtt-source instance (route) with equal connection
// settings (`connection: shared`). paho.mqtt.c serves all connections of a process from one
// receive thread whose every round costs time in proportion to the number of connections:
// 10,000 routes with a connection each take about 30 s to subscribe and keep a core a third
// busy for keep-alives. On one shared connection they subscribe in a few seconds and idle for
// nothing.
//
// The connection itself is an MqttSource in the `group` role: the same state machine as a
// dedicated route (paced connect, back-off, reconnects, re-subscribing), with a subscription
// set that grows as routes join. Each distinct filter is subscribed once, with an MQTT 5
// Subscription Identifier derived from the filter text (stable across processes, so what a
// persistent session queued while Sluice was down still carries the identifier of its
// filter); the broker names in every PUBLISH the subscriptions it matched, and the message goes
// to the routes of those filters (a collision of two identifiers is resolved by matching the
// topic against each filter). Each route keeps its own buffer: a full route drops (counted)
// what does not fit past its headroom, like a clean session; it cannot hold back at the broker
// without holding back every route on the connection.
//
// Messages that match no route that is running (a resumed session delivers its backlog at
// CONNACK, before every route has joined; a route restarting) are parked for a while and given
// to the route that joins with their filter, in order; what nobody claims in time is dropped and
// counted.
//
// THREADS: deliver() runs on paho's receive thread and never waits but for mu_, which join()
// and leave() hold only to change the tables and hand over parked messages. The group's log
// lines and connection state reach the routes through a host API of its own (group_host_).
#pragma once

#include <mqtt/message.h>
#include <sluice/abi.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <sluice/sdk.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "settings.hpp"

namespace sluice::plugins {
class MqttSource;
}

namespace sluice::plugins::mqtt_source {

/// The Subscription Identifier of `filter` on a shared connection: 1 to 268,435,455.
std::uint32_t subscription_id(std::string_view filter);

class SharedConnection {
public:
    /// The connection for `member`'s settings (created if there is none) with `member` joined:
    /// its filters are subscribed, parked messages for them handed over (on this thread).
    static std::shared_ptr<SharedConnection> join(MqttSource& member, std::uint64_t max_payload);
    /// Once this returns nothing is delivered to `member` any more. The last member to leave
    /// disconnects the connection (keeping a persistent session) within `deadline`.
    void leave(MqttSource& member, std::chrono::milliseconds deadline);

    ~SharedConnection();
    SharedConnection(const SharedConnection&) = delete;
    SharedConnection& operator=(const SharedConnection&) = delete;

    // Called by the group's MqttSource.
    /// THREAD: paho's receive thread.
    void deliver(const ::mqtt::const_message_ptr& message);
    /// The broker's answer for `filter`: "" granted, else why it refused. THREAD: the driver's.
    void subscribed(const std::string& filter, const std::string& refusal);
    /// How many routes are joined; for log lines.
    std::size_t members();

    const std::string& client_id() const { return client_id_; }

private:
    SharedConnection(const Settings& settings, std::string key, std::uint64_t max_payload);
    void attach(MqttSource& member);

    struct Filter {
        std::string text;
        std::vector<MqttSource*> members;
        enum class State { pending, granted, refused } state = State::pending;
        std::string refusal;
    };
    struct Parked {
        std::vector<std::uint32_t> ids;
        ::mqtt::const_message_ptr message;
        std::chrono::steady_clock::time_point at;
    };
    // With mu_ held (shared or exclusive).
    void collect(const ::mqtt::message& message, std::vector<std::uint32_t>& ids,
                 std::vector<MqttSource*>& targets);
    void park(std::vector<std::uint32_t> ids, const ::mqtt::const_message_ptr& message);
    void expire_parked(std::chrono::steady_clock::time_point now);  // with park_mu_ held
    struct Member {
        int reported = -1;  // the sluice_status last reported to it; -1: none yet
        std::string reason;
    };
    // Reports the state `member` should show, from the connection's and its filters', when it
    // differs from what it was told last. With mu_ held exclusively.
    void report_member(MqttSource& member);
    // group_host_'s API: log through one member, state to every member.
    static void host_log(void* ctx, int level, const char* message);
    static int host_log_enabled(void* ctx, int level);
    static void host_report_state(void* ctx, sluice_status state, const char* reason);

    const std::string key_;
    std::string client_id_;
    sluice_host_api group_api_{};
    sdk::Host group_host_{&group_api_};

    std::shared_mutex mu_;
    std::unordered_map<MqttSource*, Member> members_;
    std::unordered_map<std::uint32_t, std::vector<Filter>> filters_;  // by subscription id
    // The connection's, as the group last reported it. Nothing is reported to a route for the
    // connection until it fails (a dedicated route reports nothing while it first connects).
    sluice_status state_ = SLUICE_OK;
    std::string state_reason_;

    std::mutex park_mu_;
    std::deque<Parked> parked_;
    std::uint64_t parked_bytes_ = 0;

    // Last: it calls back into this object until it is gone.
    std::unique_ptr<MqttSource> group_;
};

}  // namespace sluice::plugins::mqtt_source

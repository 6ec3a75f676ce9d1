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

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
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
    /// The connection serving the members (its figures are theirs). THREAD: any.
    const MqttSource& connection() const { return *group_; }

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
        // The subscriptions it matched that no running route has; empty with `any`.
        std::vector<std::uint32_t> ids;
        bool any = false;  // the broker named no subscription: any matching filter claims it
        ::mqtt::const_message_ptr message;
        std::chrono::steady_clock::time_point at;
    };
    struct Member {
        int reported = -1;  // the sluice_status last reported to it; -1: none yet
        std::string reason;
    };
    // A state to tell a member, worked out under mu_ and told after it is released.
    struct Report {
        MqttSource* member;
        sluice_status status;
        std::string reason;
    };
    // With mu_ held (shared or exclusive): the routes `message` goes to, and the subscriptions
    // it matched that no running route has (`unclaimed`).
    void collect(const ::mqtt::message& message, std::vector<std::uint32_t>& ids,
                 std::vector<MqttSource*>& targets, std::vector<std::uint32_t>& unclaimed);
    // With mu_ held (shared or exclusive); takes park_mu_.
    void park(std::vector<std::uint32_t> ids, bool any, const ::mqtt::const_message_ptr& message);
    // With park_mu_ held.
    void expire_parked(std::chrono::steady_clock::time_point now);
    void erase_parked(std::map<std::uint64_t, Parked>::iterator it, bool unclaimed);
    // With mu_ held exclusively: hands `member` what was parked for its filters, in order.
    void hand_over_parked(MqttSource& member);
    // With mu_ held exclusively: what `member` should be told, if it differs from what it was
    // told last (from the connection's state and its filters').
    void report_member(MqttSource& member, std::vector<Report>& out);
    // With report_mu_ held and mu_ not: tells the members (the host may log per route).
    static void send(const std::vector<Report>& reports);
    // group_host_'s API: log through one member, state to every member.
    static void host_log(void* ctx, int level, const char* message);
    static int host_log_enabled(void* ctx, int level);
    static void host_report_state(void* ctx, sluice_status state, const char* reason);

    const std::string key_;
    std::string client_id_;
    sluice_host_api group_api_{};
    sdk::Host group_host_{&group_api_};

    // Held while members are told their state, which is done without mu_ (so that paho's
    // thread is not held up meanwhile); leave() takes it, so a member is never told anything
    // after it left. Order: registry, report_mu_, mu_, park_mu_.
    std::mutex report_mu_;
    std::shared_mutex mu_;
    std::unordered_map<MqttSource*, Member> members_;
    std::size_t leaving_ = 0;  // members inside leave(): the one that makes it all is last
    std::unordered_map<std::uint32_t, std::vector<Filter>> filters_;  // by subscription id
    // The connection's, as the group last reported it. Nothing is reported to a route for the
    // connection until it fails (a dedicated route reports nothing while it first connects).
    sluice_status state_ = SLUICE_OK;
    std::string state_reason_;

    std::mutex park_mu_;
    std::map<std::uint64_t, Parked> parked_;  // by arrival
    std::unordered_multimap<std::uint32_t, std::uint64_t> parked_by_id_;
    std::set<std::uint64_t> parked_any_;
    std::uint64_t next_parked_ = 0;
    std::uint64_t parked_bytes_ = 0;
    std::atomic<bool> closing_{false};  // the destructor runs: nothing is parked any more

    // Last: it calls back into this object until it is gone.
    std::unique_ptr<MqttSource> group_;
};

}  // namespace sluice::plugins::mqtt_source

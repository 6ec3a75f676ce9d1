#include "shared_connection.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <thread>

#include "client_id.hpp"
#include "mqtt_source.hpp"
#include "topic_filter.hpp"

namespace sluice::plugins::mqtt_source {
namespace {

using Clock = std::chrono::steady_clock;

// How long a message that matches no running route waits for its route to join: a resumed
// session's backlog arrives at CONNACK, while thousands of routes are still starting.
constexpr auto kParkFor = std::chrono::seconds(30);
// What the parked messages of one connection may hold at most; the oldest go first.
constexpr std::size_t kParkMaxMessages = 100000;
constexpr std::uint64_t kParkMaxBytes = 64ull << 20;
// MQTT 5 3.8.2.1.2: a Variable Byte Integer from 1 to 268,435,455.
constexpr std::uint32_t kMaxSubscriptionId = 268435455;
// How long a connection stays closed after a route left it (see leave()); routes that leave
// within it (the process stopping) close nothing more.
constexpr auto kRejoinDelay = std::chrono::milliseconds(200);

std::mutex registry_mu;
std::map<std::string, std::weak_ptr<SharedConnection>>& registry() {
    static std::map<std::string, std::weak_ptr<SharedConnection>> connections;
    return connections;
}

std::string hex(std::uint32_t value) {
    std::array<char, 9> text{};
    std::snprintf(text.data(), text.size(), "%08x", value);
    return text.data();
}

// What makes two routes' connections interchangeable. `visible` leaves out what must not show
// in a client id (the password).
std::string key_of(const Settings& s, std::uint32_t max_packet, bool visible) {
    std::string key;
    const auto add = [&key](const std::string& part) {
        key += part;
        key += '\n';
    };
    add(s.url_list());
    add(s.username);
    if (!visible) add((s.has_password ? "p:" : "-:") + s.password);
    add(s.ca_file);
    add(s.cert_file);
    add(s.key_file);
    add(s.verify ? "verify" : "no-verify");
    add(s.clean_session ? "clean" : "persistent");
    add(std::to_string(s.session_expiry_s));
    add(std::to_string(s.keepalive_s));
    add(std::to_string(s.connect_timeout_s));
    add(std::to_string(s.reconnect_min.count()) + "-" + std::to_string(s.reconnect_max.count()));
    add(std::to_string(s.qos));
    add(std::to_string(max_packet));
    add(s.client_id_derived ? std::string() : s.client_id);
    return key;
}

std::size_t message_bytes(const ::mqtt::message& m) {
    return m.get_topic().size() + m.get_payload().size() + sizeof(m);
}

}  // namespace

std::uint32_t subscription_id(std::string_view filter) {
    return stable_hash(filter) % kMaxSubscriptionId + 1;
}

std::shared_ptr<SharedConnection> SharedConnection::join(MqttSource& member,
                                                         std::uint64_t max_payload) {
    const Settings& s = member.settings();
    const std::uint32_t max_packet = maximum_packet_size(max_payload);
    std::string key = key_of(s, max_packet, false);
    std::shared_ptr<SharedConnection> connection;
    {
        std::lock_guard lock(registry_mu);
        auto& slot = registry()[key];
        connection = slot.lock();
        if (!connection) {
            connection.reset(new SharedConnection(s, key, max_payload));
            slot = connection;
        }
        // Under the registry's lock: leave() cannot empty this connection meanwhile.
        connection->attach(member);
    }
    return connection;
}

SharedConnection::SharedConnection(const Settings& settings, std::string key,
                                   std::uint64_t max_payload)
    : key_(std::move(key)) {
    const std::uint32_t max_packet = maximum_packet_size(max_payload);
    client_id_ =
        settings.client_id_derived
            ? default_client_id("shared-" + hex(stable_hash(key_of(settings, max_packet, true))),
                                local_hostname())
            : settings.client_id;
    group_api_.struct_size = sizeof group_api_;
    group_api_.abi_major = SLUICE_ABI_MAJOR;
    group_api_.abi_minor = SLUICE_ABI_MINOR;
    group_api_.ctx = this;
    group_api_.log = &host_log;
    group_api_.log_enabled = &host_log_enabled;
    group_api_.report_state = &host_report_state;
    group_api_.max_payload_bytes = max_payload;

    Settings own = settings;
    own.topics.clear();  // filters come with the routes that join
    own.client_id = client_id_;
    own.client_id_derived = false;
    group_ = MqttSource::group_connection(std::move(own), group_host_, *this);
}

SharedConnection::~SharedConnection() {
    // The last leave() stopped the group already (this stop returns at once then); the group
    // must be stopped before it is freed, so that paho delivers nothing into a half-destroyed
    // object.
    closing_ = true;
    group_->stop(std::chrono::milliseconds(1000));
    group_.reset();
}

void SharedConnection::attach(MqttSource& member) {
    std::vector<std::string> fresh;
    std::vector<Report> reports;
    {
        std::lock_guard report_lock(report_mu_);
        {
            std::unique_lock lock(mu_);
            members_.emplace(&member, Member{});
            for (const auto& text : member.settings().topics) {
                auto& list = filters_[subscription_id(text)];
                auto f = std::find_if(list.begin(), list.end(),
                                      [&](const Filter& x) { return x.text == text; });
                if (f == list.end()) {
                    list.push_back(Filter{text, {}, Filter::State::pending, {}});
                    f = std::prev(list.end());
                    fresh.push_back(text);
                }
                f->members.push_back(&member);
            }
            // What arrived for these filters before this route ran goes to it first, in
            // order: new messages wait for mu_ meanwhile.
            hand_over_parked(member);
            report_member(member, reports);
        }
        send(reports);
    }
    if (!fresh.empty()) group_->add_topics(std::move(fresh));
}

void SharedConnection::hand_over_parked(MqttSource& member) {
    std::lock_guard park_lock(park_mu_);
    expire_parked(Clock::now());
    if (parked_.empty()) return;
    const auto& topics = member.settings().topics;
    std::vector<std::uint64_t> seqs(parked_any_.begin(), parked_any_.end());
    for (const auto& text : topics) {
        const auto [from, to] = parked_by_id_.equal_range(subscription_id(text));
        for (auto it = from; it != to; ++it) seqs.push_back(it->second);
    }
    std::sort(seqs.begin(), seqs.end());
    seqs.erase(std::unique(seqs.begin(), seqs.end()), seqs.end());
    for (const std::uint64_t seq : seqs) {
        const auto it = parked_.find(seq);
        if (it == parked_.end()) continue;
        Parked& p = it->second;
        const std::string& topic = p.message->get_topic();
        // The member's filters this message is for: those it matches, by identifier unless
        // the broker named none.
        std::vector<std::uint32_t> claimed;
        for (const auto& text : topics) {
            const std::uint32_t id = subscription_id(text);
            const bool named = p.any || std::find(p.ids.begin(), p.ids.end(), id) != p.ids.end();
            if (named && topic_matches(text, topic)) claimed.push_back(id);
        }
        if (claimed.empty()) continue;
        member.on_message(p.message);
        if (p.any) {
            erase_parked(it, false);
            continue;
        }
        // Other routes that matched it and have not joined yet still get it.
        std::erase_if(p.ids, [&](std::uint32_t id) {
            return std::find(claimed.begin(), claimed.end(), id) != claimed.end();
        });
        for (const std::uint32_t id : claimed) {
            const auto [from, to] = parked_by_id_.equal_range(id);
            for (auto e = from; e != to; ++e) {
                if (e->second == seq) {
                    parked_by_id_.erase(e);
                    break;
                }
            }
        }
        if (p.ids.empty()) erase_parked(it, false);
    }
}

void SharedConnection::leave(MqttSource& member, std::chrono::milliseconds deadline) {
    const auto until = Clock::now() + deadline;
    bool last = false;
    {
        std::lock_guard registry_lock(registry_mu);
        std::unique_lock lock(mu_);
        // Two routes leaving at once: the one whose leave makes every member leaving is last.
        ++leaving_;
        last = leaving_ == members_.size();
        if (last) {
            // Joins from now on make a new connection.
            auto it = registry().find(key_);
            if (it != registry().end() && it->second.lock().get() == this) registry().erase(it);
        }
    }
    // paho acknowledges every message before it is handed over, so the route keeps taking
    // what arrives until the connection is closed: anything acknowledged after the route left
    // could only be parked in memory, and would be lost if the process ends (as it does when
    // every route stops). The last route closes the connection for good; any other closes it
    // for a moment, the broker keeping the session and queueing for everyone, and the
    // connection comes back without it. A session that the broker would not queue for
    // (clean, QoS 0) stays connected: closing it would lose what the others are sent.
    if (last) {
        group_->stop(deadline);
    } else if (group_->pause_input(kRejoinDelay)) {
        while (group_->connected() && Clock::now() < until) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }
    std::lock_guard report_lock(report_mu_);
    std::unique_lock lock(mu_);
    --leaving_;
    members_.erase(&member);
    for (const auto& text : member.settings().topics) {
        auto it = filters_.find(subscription_id(text));
        if (it == filters_.end()) continue;
        for (auto& f : it->second) {
            if (f.text == text) std::erase(f.members, &member);
        }
    }
    // The filters stay subscribed: with a persistent session the broker keeps queueing for
    // them while the route is away (restarting), and what arrives meanwhile is parked for the
    // route's return.
}

std::size_t SharedConnection::members() {
    std::shared_lock lock(mu_);
    return members_.size();
}

void SharedConnection::deliver(const ::mqtt::const_message_ptr& message) {
    if (closing_) return;  // every route left; the connection is being closed
    // Reused: this runs on one thread only, for every message of every shared connection.
    thread_local std::vector<std::uint32_t> ids;
    thread_local std::vector<MqttSource*> targets;
    thread_local std::vector<std::uint32_t> unclaimed;
    ids.clear();
    targets.clear();
    unclaimed.clear();
    std::shared_lock lock(mu_);
    collect(*message, ids, targets, unclaimed);
    // Under mu_: a route joining now either sees this message parked or is a target.
    if (!unclaimed.empty() || (ids.empty() && targets.empty()))
        park(unclaimed, ids.empty(), message);
    for (MqttSource* m : targets) m->on_message(message);
}

void SharedConnection::collect(const ::mqtt::message& message, std::vector<std::uint32_t>& ids,
                               std::vector<MqttSource*>& targets,
                               std::vector<std::uint32_t>& unclaimed) {
    const MQTTProperties& props = message.get_properties().c_struct();
    for (int i = 0; i < props.count; ++i) {
        if (props.array[i].identifier == MQTTPROPERTY_CODE_SUBSCRIPTION_IDENTIFIER) {
            ids.push_back(static_cast<std::uint32_t>(props.array[i].value.integer4));
        }
    }
    const std::string& topic = message.get_topic();
    // True when the filter matched and some route took the message through it.
    const auto take = [&](const Filter& f) {
        if (!topic_matches(f.text, topic)) return false;
        for (MqttSource* m : f.members) {
            if (std::find(targets.begin(), targets.end(), m) == targets.end()) targets.push_back(m);
        }
        return !f.members.empty();
    };
    if (ids.empty()) {
        // A PUBLISH that names no subscription (a broker that supports identifiers names
        // every one it matched; one that does not refuses our SUBSCRIBEs, which the routes
        // report): every filter is looked at.
        for (const auto& [id, list] : filters_) {
            for (const auto& f : list) take(f);
        }
        return;
    }
    for (const std::uint32_t id : ids) {
        const auto it = filters_.find(id);
        bool taken = false;
        if (it != filters_.end()) {
            for (const auto& f : it->second) taken = take(f) || taken;
        }
        // A subscription whose route is not running (restarting, not joined yet, or gone):
        // its copy waits.
        if (!taken) unclaimed.push_back(id);
    }
}

void SharedConnection::park(std::vector<std::uint32_t> ids, bool any,
                            const ::mqtt::const_message_ptr& message) {
    std::lock_guard lock(park_mu_);
    const auto now = Clock::now();
    expire_parked(now);
    while (!parked_.empty() && (parked_.size() >= kParkMaxMessages ||
                                parked_bytes_ + message_bytes(*message) > kParkMaxBytes)) {
        erase_parked(parked_.begin(), true);
    }
    const std::uint64_t seq = next_parked_++;
    for (const std::uint32_t id : ids) parked_by_id_.emplace(id, seq);
    if (any) parked_any_.insert(seq);
    parked_bytes_ += message_bytes(*message);
    parked_.emplace(seq, Parked{std::move(ids), any, message, now});
}

void SharedConnection::expire_parked(Clock::time_point now) {
    while (!parked_.empty() && now - parked_.begin()->second.at > kParkFor) {
        erase_parked(parked_.begin(), true);
    }
}

void SharedConnection::erase_parked(std::map<std::uint64_t, Parked>::iterator it, bool unclaimed) {
    const std::uint64_t seq = it->first;
    Parked& p = it->second;
    if (unclaimed && !closing_) group_->note_unclaimed(p.message->get_topic());
    for (const std::uint32_t id : p.ids) {
        const auto [from, to] = parked_by_id_.equal_range(id);
        for (auto e = from; e != to; ++e) {
            if (e->second == seq) {
                parked_by_id_.erase(e);
                break;
            }
        }
    }
    parked_any_.erase(seq);
    parked_bytes_ -= message_bytes(*p.message);
    parked_.erase(it);
}

void SharedConnection::subscribed(const std::string& filter, const std::string& refusal) {
    std::vector<Report> reports;
    std::lock_guard report_lock(report_mu_);
    {
        std::unique_lock lock(mu_);
        const auto it = filters_.find(subscription_id(filter));
        if (it == filters_.end()) return;
        for (auto& f : it->second) {
            if (f.text != filter) continue;
            f.state = refusal.empty() ? Filter::State::granted : Filter::State::refused;
            f.refusal = refusal;
            for (MqttSource* m : f.members) report_member(*m, reports);
        }
    }
    send(reports);
}

void SharedConnection::report_member(MqttSource& member, std::vector<Report>& out) {
    const auto it = members_.find(&member);
    if (it == members_.end()) return;
    sluice_status status = state_;
    std::string reason = state_reason_;
    if (state_ == SLUICE_OK) {
        std::string refused;
        bool pending = false;
        for (const auto& text : member.settings().topics) {
            const auto f = filters_.find(subscription_id(text));
            if (f == filters_.end()) continue;
            for (const auto& filter : f->second) {
                if (filter.text != text) continue;
                pending = pending || filter.state == Filter::State::pending;
                if (filter.state == Filter::State::refused) {
                    refused += (refused.empty() ? "'" : ", '") + filter.text + "' (" +
                               filter.refusal + ")";
                }
            }
        }
        if (!refused.empty()) {
            status = SLUICE_RETRY;
            reason = "the broker refused the subscription to " + refused;
        } else if (pending) {
            return;  // told when the broker answered
        }
    }
    Member& m = it->second;
    if (m.reported == status && m.reason == reason) return;
    m.reported = status;
    m.reason = reason;
    out.push_back(Report{&member, status, std::move(reason)});
}

void SharedConnection::send(const std::vector<Report>& reports) {
    for (const auto& r : reports) {
        r.member->host_.report_state(static_cast<sdk::Status>(r.status), r.reason);
        if (r.status == SLUICE_OK) {
            r.member->host_.info("subscribed to " +
                                 std::to_string(r.member->settings().topics.size()) +
                                 " topic filter(s) on the shared connection; receiving");
        }
    }
}

void SharedConnection::host_log(void* ctx, int level, const char* message) {
    auto* self = static_cast<SharedConnection*>(ctx);
    std::shared_lock lock(self->mu_);
    // One line for the connection, through the route that joined first, rather than one per
    // route: a broker restart would otherwise log 10,000 times.
    if (self->members_.empty()) return;
    self->members_.begin()->first->host_.log(
        static_cast<sluice_log_level>(level),
        "shared connection '" + self->client_id_ + "' (" + std::to_string(self->members_.size()) +
            " route" + (self->members_.size() == 1 ? "" : "s") + "): " + message);
}

int SharedConnection::host_log_enabled(void* ctx, int level) {
    auto* self = static_cast<SharedConnection*>(ctx);
    std::shared_lock lock(self->mu_);
    return !self->members_.empty() &&
           self->members_.begin()->first->host_.enabled(static_cast<sluice_log_level>(level));
}

void SharedConnection::host_report_state(void* ctx, sluice_status state, const char* reason) {
    auto* self = static_cast<SharedConnection*>(ctx);
    if (state == SLUICE_FATAL) {
        // Its routes restart; they must find a new connection, not this one, whose state
        // machine has ended.
        std::lock_guard registry_lock(registry_mu);
        auto it = registry().find(self->key_);
        if (it != registry().end() && it->second.lock().get() == self) registry().erase(it);
    }
    std::vector<Report> reports;
    std::lock_guard report_lock(self->report_mu_);
    {
        std::unique_lock lock(self->mu_);
        const std::string why = reason != nullptr ? reason : "";
        if (state == self->state_ && why == self->state_reason_) return;
        self->state_ = state;
        self->state_reason_ = why;
        for (auto& entry : self->members_) self->report_member(*entry.first, reports);
    }
    send(reports);
}

}  // namespace sluice::plugins::mqtt_source

#include "mqtt_source.hpp"

#include <algorithm>
#include <fstream>
#include <string_view>
#include <utility>

#include "client_id.hpp"
#include "shared_connection.hpp"

namespace sluice::plugins {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A connection that drops sooner than this after it was made (another client took the session
// over, the broker refuses us right after CONNACK) keeps growing the back-off, so that such a
// loop costs one attempt per reconnect_max_ms instead of one per reconnect_min_ms.
constexpr auto kStableConnection = std::chrono::seconds(10);
// At most one warning per this interval about messages the route did not take.
constexpr auto kDropLogInterval = std::chrono::seconds(10);
// A disconnect is a single packet; only a dead connection takes longer.
constexpr auto kDisconnectLimit = std::chrono::seconds(5);
// Closing a connection whose subscriptions failed: nothing is waited for on it.
constexpr auto kCloseLimit = std::chrono::seconds(1);

constexpr std::string_view kHeaderTopic = "mqtt.topic";
constexpr std::string_view kHeaderQos = "mqtt.qos";
constexpr std::string_view kHeaderRetain = "mqtt.retain";
constexpr std::string_view kQosText[] = {"0", "1", "2"};

std::string reason_text(int code) {
    const char* text = ::MQTTReasonCode_toString(static_cast<MQTTReasonCodes>(code));
    return text != nullptr ? text : "reason code " + std::to_string(code);
}

// paho's exception text with the parts an operator acts on: the error and, for MQTT 5, the
// broker's reason code.
std::string describe(const ::mqtt::exception& e) {
    std::string text = e.get_message();
    if (text.empty()) text = e.get_error_str();
    if (text.empty()) text = e.what();
    const int code = e.get_reason_code();
    if (code != ::mqtt::ReasonCode::SUCCESS && code != ::mqtt::MQTTPP_V3_CODE) {
        text += " (broker: " + reason_text(code) + ")";
    }
    return text;
}

// Whether paho is done with `token`, failed or not. Never waits (but for the token's own lock,
// which paho holds only to record the outcome).
bool completed(::mqtt::token& token) {
    try {
        return token.try_wait();
    } catch (const ::mqtt::exception&) {
        return true;  // completed with a failure
    }
}

std::string millis(milliseconds d) {
    return d.count() % 1000 == 0 ? std::to_string(d.count() / 1000) + " s"
                                 : std::to_string(d.count()) + " ms";
}

}  // namespace

sdk::Spec MqttSource::spec() {
    using sdk::Field;
    sdk::Spec s("mqtt-source", "1.0.0");
    s.summary("Subscribes to topics on an MQTT broker (3.1.1 or 5) and passes every message on.")
        .description(
            "Connects to an MQTT broker with the Eclipse Paho client, subscribes to `topics` and "
            "hands each message to the route with its topic, payload, QoS, retain flag, the "
            "time it arrived, and its MQTT 5 user properties as headers.\n\n"
            "If the broker cannot be reached when the route starts, the route starts anyway "
            "(state `degraded`, with the reason) and connects as soon as the broker is up; a "
            "lost connection is re-established the same way, with exponential back-off between "
            "`reconnect_min_ms` and `reconnect_max_ms`.\n\n"
            "Delivery: Paho acknowledges QoS 1 and 2 messages to the broker before Sluice sees "
            "them, so a message is safe from the moment it is in the route's queue, not before. "
            "With the default persistent session (`clean_session: false`, stable `client_id`) "
            "the broker keeps messages for Sluice while it is down; raise the broker's queue "
            "limit (mosquitto: `max_queued_messages`, default 1000) or it drops the excess "
            "silently. See docs/delivery-guarantees.md.\n\n"
            "Flow control: when the route's buffer is full, the source holds back at the broker. "
            "With a persistent session it disconnects, keeping the session (the broker queues "
            "QoS 1 and 2 messages, up to its queue limit), reports the route `degraded` "
            "(\"holding back\") and reconnects once the route has room again (within about a "
            "second: Paho's polling interval). Paho's one receive thread, shared by every MQTT "
            "connection of the process, never waits for a full route. With `clean_session: true`, "
            "`qos: 0` or `session_expiry_s: 0` the "
            "broker would drop what it sends while Sluice is away, uncounted, so the source "
            "stays connected instead (and logs a warning once): the route's buffer headroom and "
            "`when_full` decide what happens to the excess.\n\n"
            "Size limit (MQTT 5): the source asks the broker not to send packets larger than the "
            "route's `max_payload_bytes` plus 128 KiB (room for the topic and properties), so a "
            "message the route would refuse is not transferred at all; the broker drops it "
            "(mosquitto logs \"Dropping too large outgoing PUBLISH\") and Sluice does not count "
            "it. A payload just over `max_payload_bytes`, within the 128 KiB, still arrives and "
            "is refused and counted by the route. MQTT 3.1.1 cannot express this limit.");
    s.field(Field::list("url")
                .required()
                .example("[tcp://127.0.0.1:1883]")
                .description(
                    "Broker address, `tcp://host:port` or `ssl://host:port` (TLS). With several "
                    "urls, every connect tries them in order and uses the first that answers "
                    "(fail-over between the brokers of a cluster). All urls of a list use the "
                    "same scheme: a fail-over from `ssl://` to `tcp://` would drop TLS."));
    s.field(Field::list("topics")
                .required()
                .example("[sensors/+/temperature, \"$share/sluice/alarms/#\"]")
                .description(
                    "Topic filters to subscribe to. `+` matches exactly one level "
                    "(`sensors/+/temperature`); `#` matches any number of remaining levels and "
                    "must be the last level (`sensors/#`). `$share/<group>/<filter>` is a shared "
                    "subscription: the broker gives each message to only one subscriber of the "
                    "group, so several routes or Sluice processes can split the load. A message "
                    "that matches several filters may arrive once per filter (broker setting)."));
    s.field(Field::integer("qos").default_value("1").range(0, 2).description(
        "Highest QoS to subscribe with: 0 at most once, 1 at least once, 2 exactly "
        "once between the broker and Sluice. A message arrives with the lower of this "
        "and the QoS it was published with. Only QoS 1 and 2 messages are kept by the "
        "broker for a persistent session while Sluice is away, so with 0 the source does not "
        "disconnect to hold back when the route is full (see Flow control)."));
    s.field(Field::string("client_id")
                .example("sluice-plant-a-temperature")
                .description(
                    "MQTT client id. Default: `sluice-<route>-<hash>`, `<hash>` being 8 hex "
                    "digits derived from the host name: the same on every restart, so the "
                    "persistent session is resumed, and different for every route. Set it when "
                    "the host name changes between restarts (containers with generated host "
                    "names, e.g. Kubernetes Deployments), or when two Sluice processes on one host "
                    "run routes of the same name against one broker: two connections with one "
                    "client id take the session from each other in a loop."));
    s.field(
        Field::boolean("clean_session")
            .default_value("false")
            .description(
                "`false`: a persistent session. The broker keeps the subscriptions and queues "
                "QoS 1 and 2 messages while Sluice is disconnected or stopped, and delivers "
                "them when the same `client_id` connects again. `true`: every connect starts an "
                "empty session and messages published meanwhile are not delivered. (MQTT 5 "
                "calls it Clean Start.) With MQTT 3.1.1, a resumed session keeps the "
                "subscriptions it was made with: topics added later take effect with a new "
                "session; MQTT 5 subscribes to the current `topics` on every connect. With "
                "`true` the source cannot hold back at the broker while the route is full (see "
                "Flow control)."));
    s.field(Field::integer("session_expiry_s")
                .default_value("86400")
                .range(0, 4294967295.0)
                .advanced()
                .description(
                    "MQTT 5, with `clean_session: false`: how long, in seconds, the broker keeps "
                    "the session and queues messages after Sluice disconnects; 4294967295 keeps it "
                    "forever. Ignored with MQTT 3.1.1, where the broker decides (mosquitto: "
                    "`persistent_client_expiration`). It must outlast the longest time the route "
                    "may hold back (see Flow control); with 0 the source does not hold back."));
    s.field(
        Field::enumeration("mqtt_version", {"3.1.1", "5"})
            .default_value("5")
            .description("MQTT protocol version. 5 carries user properties (copied into headers), "
                         "session expiry, the size limit (Maximum Packet Size, see Size limit) and "
                         "reason codes in errors; use 3.1.1 for brokers that do not speak 5."));
    s.field(
        Field::integer("keepalive_s")
            .default_value("30")
            .range(0, 65535)
            .advanced()
            .description("Seconds between keep-alive pings when nothing else is sent; a connection "
                         "silent for 1.5 times this is considered dead. 0 disables keep-alive."));
    s.field(Field::integer("connect_timeout_s")
                .default_value("10")
                .range(1, 3600)
                .advanced()
                .description("Seconds to wait for one url to accept the connection (TCP, TLS and "
                             "the broker's CONNACK) before the attempt counts as failed."));
    s.field(Field::integer("reconnect_min_ms")
                .default_value("500")
                .range(10, 3600000)
                .advanced()
                .description(
                    "Delay before the first retry after a failed connect or a lost connection; "
                    "it doubles with every further failure, up to `reconnect_max_ms`."));
    s.field(Field::integer("reconnect_max_ms")
                .default_value("30000")
                .range(10, 3600000)
                .advanced()
                .description("Longest delay between two connect attempts."));
    s.field(Field::string("username").description("User name sent to the broker."));
    s.field(Field::string("password")
                .secret()
                .example("${MQTT_PASSWORD}")
                .description("Password sent to the broker; never logged. Keep it out of the "
                             "manifest with `${MQTT_PASSWORD}`. Sent over `tcp://` to a host "
                             "that is not this machine, it travels in the clear: a warning is "
                             "logged at start."));
    s.field(Field::string("ca_file")
                .example("/etc/sluice/mqtt-ca.pem")
                .description(
                    "PEM file with the CA certificate(s) that signed the broker's certificate, "
                    "for `ssl://` urls. Without it the system's trusted CAs are used."));
    s.field(Field::string("cert_file")
                .description("PEM client certificate for brokers that require one (mutual TLS); "
                             "needs `key_file`."));
    s.field(Field::string("key_file").description("PEM private key (unencrypted) of `cert_file`."));
    s.field(Field::boolean("verify").default_value("true").description(
        "Verify that the broker's certificate is signed by a trusted CA and issued for "
        "the host name in the url. Turn it off only for tests: without it anyone "
        "between Sluice and the broker can pose as the broker (a warning is logged at "
        "start)."));
    s.field(
        Field::enumeration("connection", {"dedicated", "shared"})
            .default_value("dedicated")
            .description(
                "`dedicated`: this route has an MQTT connection and session of its own, so that "
                "a full route holds back at the broker alone (see Flow control). `shared`: one "
                "connection and session for every route of the process with the same broker, "
                "credentials, TLS files, session settings, QoS and `client_id` (default: derived "
                "from those and the host name); each route keeps its own buffer. Use it for "
                "hundreds or thousands of routes: paho serves every connection from one thread, "
                "so 10,000 dedicated connections take about 30 s to subscribe and keep a third "
                "of a core busy, one shared connection a few seconds and nothing "
                "(docs/architecture.md). What it costs: a full route cannot hold back at the "
                "broker (its headroom and `when_full` apply, as with a clean session); a route "
                "leaving a persistent session closes the connection for 200 ms, the broker "
                "queueing for the others meanwhile; a route that joins a filter already "
                "subscribed does not get its retained messages again. Needs `mqtt_version: 5`: "
                "messages are matched to routes by subscription identifier."));
    s.field(Field::boolean("metadata_headers")
                .default_value("true")
                .description(
                    "Add the headers `mqtt.topic` (the MQTT topic), `mqtt.qos` (`0`, `1` or `2`) "
                    "and `mqtt.retain` (`true` or `false`) after the message's MQTT 5 user "
                    "properties."));
    return s;
}

void MqttSource::validate(const sdk::Config& config, sdk::Diagnostics& diag) {
    mqtt_source::check_settings(config, diag);
}

MqttSource::MqttSource(const sdk::Config& config, sdk::Host& host)
    : MqttSource(mqtt_source::read_settings(config, mqtt_source::local_hostname()), host, nullptr) {
}

std::unique_ptr<MqttSource> MqttSource::group_connection(mqtt_source::Settings settings,
                                                         sdk::Host& host,
                                                         mqtt_source::SharedConnection& group) {
    std::unique_ptr<MqttSource> connection(new MqttSource(std::move(settings), host, &group));
    connection->start_machine();
    return connection;
}

MqttSource::MqttSource(mqtt_source::Settings settings, sdk::Host& host,
                       mqtt_source::SharedConnection* group)
    : settings_(std::move(settings)),
      host_(host),
      role_(group != nullptr   ? Role::group
            : settings_.shared ? Role::member
                               : Role::dedicated),
      group_(group),
      driver_(mqtt_source::ConnectionDriver::acquire()) {
    for (const auto& [key, file] :
         {std::pair{"ca_file", &settings_.ca_file}, std::pair{"cert_file", &settings_.cert_file},
          std::pair{"key_file", &settings_.key_file}}) {
        if (!file->empty() && !std::ifstream(*file)) {
            throw sdk::ConfigError(key, "cannot read '" + *file + "'");
        }
    }
    if (role_ == Role::member) {
        // Its connection's state machine is the group's; its own only logs what on_message
        // and hold_input() leave to it.
        cannot_hold_ = "on a shared connection (connection: shared)";
        id_ = driver_->add(*this);
        return;
    }
    const bool v5 = settings_.version == mqtt_source::ProtocolVersion::v5;

    // A broker queues for a disconnected session only QoS 1 and 2 messages, and only while the
    // session lasts: anything else sent while we hold back would be lost without a count.
    if (settings_.clean_session) {
        cannot_hold_ = "with clean_session: true";
    } else if (settings_.qos == 0) {
        cannot_hold_ = "with qos: 0";
    } else if (v5 && settings_.session_expiry_s == 0) {
        cannot_hold_ = "with session_expiry_s: 0";
    }

    // No persistence object: paho keeps its in-flight state in memory and writes no files into
    // the working directory. Created before the options: paho.mqtt.c's allocation tracking
    // (Heap.c) is set up by the first client, and properties built while no client exists are
    // never freed (about 500 bytes each).
    client_ = std::make_unique<::mqtt::async_client>(
        settings_.urls.front(), settings_.client_id,
        ::mqtt::create_options(v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1),
        static_cast<::mqtt::iclient_persistence*>(nullptr));
    // Built in place and only ever copied from: paho.mqtt.cpp 1.2's copy and move leave the
    // C struct's connectProperties pointing at the source object's properties, so the source
    // must outlive every copy (a moved-from temporary crashed MQTTAsync_connect).
    ::mqtt::connect_options& o = connect_options_;
    o.set_mqtt_version(v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1);
    if (v5) {
        o.set_clean_start(settings_.clean_session);
        // Without a Session Expiry Interval an MQTT 5 session ends at disconnect, which would
        // make clean_session: false mean nothing.
        const std::uint32_t expiry = settings_.clean_session ? 0 : settings_.session_expiry_s;
        ::mqtt::properties props{
            {::mqtt::property::SESSION_EXPIRY_INTERVAL, static_cast<std::int32_t>(expiry)}};
        // What the route would refuse for its size is better not sent at all: a message of
        // hundreds of MiB would otherwise be read into memory only to be dropped.
        if (const auto max = mqtt_source::maximum_packet_size(host_.max_payload_bytes()); max) {
            props.add({::mqtt::property::MAXIMUM_PACKET_SIZE, static_cast<std::int32_t>(max)});
        }
        o.set_properties(props);
    } else {
        o.set_clean_session(settings_.clean_session);
    }
    o.set_keep_alive_interval(settings_.keepalive_s);
    o.set_connect_timeout(settings_.connect_timeout_s);
    o.set_automatic_reconnect(false);
    if (settings_.urls.size() > 1) o.set_servers(::mqtt::string_collection::create(settings_.urls));
    if (!settings_.username.empty()) o.set_user_name(settings_.username);
    if (settings_.has_password) o.set_password(settings_.password);
    if (settings_.uses_tls()) {
        // No error handler: paho.mqtt.cpp 1.2 hands paho.mqtt.c a context pointer into the
        // connect_options copy that connect() takes by value, which is gone by the time the
        // TLS handshake reports an error.
        ::mqtt::ssl_options ssl;
        if (!settings_.ca_file.empty()) ssl.set_trust_store(settings_.ca_file);
        if (!settings_.cert_file.empty()) {
            ssl.set_key_store(settings_.cert_file);
            ssl.set_private_key(settings_.key_file);
        }
        ssl.set_enable_server_cert_auth(settings_.verify);
        ssl.set_verify(settings_.verify);
        o.set_ssl(ssl);
    }

    // Handlers go in before the first connect: a resumed session delivers its queued messages
    // right after CONNACK.
    client_->set_message_callback(
        [this](::mqtt::const_message_ptr message) { on_message(message); });
    client_->set_connection_lost_handler(
        [this](const std::string& cause) { on_connection_lost(cause); });
    client_->set_disconnected_handler([this](const ::mqtt::properties&, ::mqtt::ReasonCode code) {
        std::string why = "the broker closed the connection: " + reason_text(code);
        if (code == ::mqtt::ReasonCode::SESSION_TAKEN_OVER) {
            why += " (another client connected with client id '" + settings_.client_id +
                   "'; give every route and process its own client_id)";
        }
        on_connection_lost(why);
    });
    // Last: nothing above may throw with the instance registered.
    id_ = driver_->add(*this);
}

MqttSource::~MqttSource() {
    stop(milliseconds(1000));
    // The connect properties go while the client still exists (see the constructor).
    connect_options_ = ::mqtt::connect_options();
    // paho's threads call into this object until the client is gone.
    client_.reset();
}

void MqttSource::start(sdk::Emitter out) {
    {
        std::lock_guard lock(emit_mu_);
        out_ = out;
        accepting_ = true;
    }
    for (const auto& w : mqtt_source::start_warnings(settings_)) host_.warn(w);
    std::string topics;
    for (const auto& t : settings_.topics) topics += (topics.empty() ? "" : ", ") + t;
    const std::uint32_t max_packet =
        settings_.version == mqtt_source::ProtocolVersion::v5
            ? mqtt_source::maximum_packet_size(host_.max_payload_bytes())
            : 0;
    if (role_ == Role::member) {
        auto joined = mqtt_source::SharedConnection::join(*this, host_.max_payload_bytes());
        {
            std::lock_guard lock(shared_mu_);
            shared_ = std::move(joined);
        }
        started_ = true;
        host_.info("joined the shared connection '" + shared_->client_id() + "' to " +
                   settings_.url_list() + " (" + std::to_string(shared_->members()) +
                   " routes), topics " + topics + " at QoS " + std::to_string(settings_.qos));
        return;
    }
    host_.info(
        "connecting to " + settings_.url_list() + " as client id '" + settings_.client_id + "'" +
        (settings_.client_id_derived ? " (default)" : "") + ", MQTT " +
        (settings_.version == mqtt_source::ProtocolVersion::v5 ? "5" : "3.1.1") +
        (settings_.clean_session ? ", clean session" : ", persistent session") + ", topics " +
        topics + " at QoS " + std::to_string(settings_.qos) +
        (max_packet != 0 ? ", maximum packet size " + std::to_string(max_packet) + " bytes" : ""));
    start_machine();
}

void MqttSource::start_machine() {
    started_ = true;
    // Nothing wakes this instance before start(): the driver sees run_ only after this wake.
    run_ = run();
    resume_ = run_.handle();
    wake();
}

void MqttSource::stop(milliseconds deadline) {
    const auto until = Clock::now() + deadline;
    {
        std::lock_guard lock(mu_);
        if (stopping_) return;
        stopping_ = true;
        // Under mu_ as well: run() reads it right after a wait on mu_ saw stopping_.
        stop_requested_ = true;
    }
    // From here on the driver never runs this instance again (it waits only if it runs it
    // right now), and paho's wakes go nowhere: what run() left under way is finished here.
    driver_->remove(id_);
    waiter_ = nullptr;
    resume_ = {};
    run_.reset();
    if (!started_) return;
    const auto remaining = [&] {
        return std::max(std::chrono::duration_cast<milliseconds>(until - Clock::now()),
                        milliseconds(0));
    };

    if (role_ == Role::member) {
        // Once leave() returns nothing is delivered to this instance any more.
        shared_->leave(*this, remaining());
        std::shared_ptr<mqtt_source::SharedConnection> left;
        {
            std::lock_guard lock(shared_mu_);
            left.swap(shared_);
        }
        finish_stop(until);
        return;
    }
    // A connect still under way ends first: paho cannot disconnect a client that is still
    // connecting, and one that connected after the DISCONNECT below would deliver to a route
    // that takes nothing any more. A broker that does not answer at all sends nothing either.
    if (pending_) {
        try {
            pending_->wait_for(remaining());
        } catch (const ::mqtt::exception&) {
            // Failed: nothing to close.
        }
        pending_.reset();
    }
    // Disconnect before refusing messages: paho has acknowledged every message it hands to the
    // callback, so one refused now would be lost. Once the disconnect completes nothing more
    // arrives. MQTT 5: the DISCONNECT carries no Session Expiry Interval, so the one given at
    // connect applies and the broker keeps the session.
    try {
        auto token = client_->disconnect(::mqtt::disconnect_options(0));
        token->wait_for(remaining());
    } catch (const ::mqtt::exception& e) {
        // Not connected (broker down, connect failed): nothing to close.
        host_.debug("disconnect: " + describe(e));
    }
    finish_stop(until);
}

void MqttSource::finish_stop(Clock::time_point until) {
    std::unique_lock lock(emit_mu_, std::defer_lock);
    if (lock.try_lock_until(until)) {
        accepting_ = false;
        out_.reset();
        lock.unlock();
    } else {
        // A callback is still inside emit(); the host unblocks it while stopping the route.
        accepting_ = false;
        host_.warn("stop: a message hand-over was still in progress at the deadline");
    }
    std::string summary = "stopped after " + std::to_string(received_.load()) + " messages";
    if (const auto d = dropped_.load(); d > 0) {
        summary += "; " + std::to_string(d) + " were not taken by the route and are lost";
    }
    host_.info(summary);
}

template <class Done>
class MqttSource::Idle final : public MqttSource::Waiter {
public:
    Idle(MqttSource& source, Clock::time_point deadline, Done done)
        : Waiter(deadline), source_(source), done_(std::move(done)) {}

    bool ready() override {
        {
            std::lock_guard lock(source_.mu_);
            if (done_()) return result_ = true;
        }
        return Clock::now() >= until;
    }
    bool await_ready() { return ready(); }
    void await_suspend(std::coroutine_handle<> resume) { source_.suspend(resume, *this); }
    bool await_resume() const { return result_; }

private:
    MqttSource& source_;
    Done done_;
    bool result_ = false;
};

template <class Done>
MqttSource::Idle<Done> MqttSource::idle(Clock::time_point until, Done done) {
    return Idle<Done>(*this, until, std::move(done));
}

void MqttSource::suspend(std::coroutine_handle<> resume, Waiter& waiter) {
    resume_ = resume;
    waiter_ = &waiter;
    arm(waiter.until);
}

void MqttSource::arm(Clock::time_point until) {
    driver_->wake_at(id_, std::min(until, drops_due()));
}

void MqttSource::on_wake() {
    try {
        housekeeping();
        if (!resume_) return;  // not started, or run() ended
        if (waiter_ != nullptr && !waiter_->ready()) {
            arm(waiter_->until);
            return;
        }
        waiter_ = nullptr;
        std::exchange(resume_, {}).resume();
        if (run_.done()) run_.rethrow_if_failed();
    } catch (const std::exception& e) {
        // Only a bug or a lack of memory gets here: the route is restarted.
        const std::string message = std::string("the connection handling failed: ") + e.what();
        machine_failed_ = true;
        host_.error(message);
        host_.report_state(sdk::Status::fatal, message);
    }
}

void MqttSource::housekeeping() {
    bool warn_hold = false;
    {
        std::lock_guard lock(mu_);
        if (hold_ && !cannot_hold_.empty() && !hold_warned_) warn_hold = hold_warned_ = true;
    }
    if (warn_hold) {
        // Asked when the route's buffer is full, or when the route stops.
        host_.warn("asked to hold back its input, but this source cannot hold back at the broker " +
                   cannot_hold_ +
                   (role_ == Role::member
                        ? " without holding back every route on it"
                        : " (the broker would drop what it sends meanwhile, uncounted)") +
                   ": it keeps receiving until it stops; the route's buffer headroom and "
                   "when_full apply");
    }
    log_drops();
}

void MqttSource::hold_input(bool hold) {
    {
        std::lock_guard lock(mu_);
        hold_ = hold;
    }
    wake();
}

MqttSource::Task<void> MqttSource::run() {
    auto backoff = settings_.reconnect_min;
    std::string last_failure;
    // We left a session at the broker for a hold: it should be there when we come back.
    bool left_session = false;
    while (!stop_requested_) {
        if (hold_due()) {
            const bool resumed = co_await hold_while_requested();
            if (!resumed) break;
        }
        {
            std::lock_guard lock(mu_);
            lost_ = false;
            lost_reason_.clear();
        }
        if (role_ == Role::group) take_more_topics();
        bool session_present = false;
        std::string server;
        const std::string failure = co_await connect_once(session_present, server);
        if (stop_requested_) break;
        if (!failure.empty()) {
            const std::string message =
                "cannot connect to " + settings_.url_list() + ": " + failure;
            if (message != last_failure) {
                host_.warn(message + " (retrying with back-off up to " +
                           millis(settings_.reconnect_max) + ")");
            } else {
                host_.debug(message);
            }
            last_failure = message;
            host_.report_state(sdk::Status::retry, message);
            const bool go_on = co_await pause(backoff);
            if (!go_on) break;
            backoff = std::min(backoff * 2, settings_.reconnect_max);
            continue;
        }
        last_failure.clear();
        connects_.fetch_add(1, std::memory_order_relaxed);
        session_present_.store(session_present, std::memory_order_relaxed);
        const auto connected_at = Clock::now();
        host_.info("connected to " + server + " (" +
                   (session_present ? "session resumed" : "new session") + ")");
        if (left_session && !session_present) {
            host_.warn(
                "the broker did not keep the session while the route held back: what was "
                "published meanwhile is lost (session_expiry_s, or the broker's session limits, "
                "e.g. mosquitto persistent_client_expiration)");
        }
        left_session = false;
        const Subscription sub = co_await subscribe_all(session_present);
        if (stop_requested_) break;
        if (sub.held) {
            co_await disconnect(kDisconnectLimit);
            left_session = true;
            continue;
        }
        if (sub.error.empty()) {
            // A group's routes each log their own "receiving" line (SharedConnection).
            host_.info("subscribed to " + std::to_string(settings_.topics.size()) +
                       (role_ == Role::group ? " filter(s) of its routes"
                                             : " topic filter(s); receiving"));
            host_.report_state(sdk::Status::ok);
        } else {
            co_await subscription_failed(sub);
            if (stop_requested_) break;
        }

        Wake wake = co_await wait_connected();
        // A group subscribes to the filters of the routes that joined while it waits.
        while (wake == Wake::subscribe) {
            const auto more = take_more_topics();
            const Subscription added = co_await subscribe(more);
            if (stop_requested_) break;
            if (added.held) {
                wake = Wake::hold;
                break;
            }
            if (!added.error.empty()) co_await subscription_failed(added);
            if (stop_requested_) break;
            host_.debug("subscribed to " + std::to_string(more.size()) + " more filter(s)");
            wake = co_await wait_connected();
        }
        if (stop_requested_ || wake == Wake::stop) break;
        if (wake == Wake::hold) {
            co_await disconnect(kDisconnectLimit);
            left_session = true;
            continue;
        }
        std::string cause;
        {
            std::lock_guard lock(mu_);
            cause = lost_reason_;
        }
        const std::string message = "connection to " + server + " lost: " + cause;
        host_.warn(message + "; reconnecting");
        host_.report_state(sdk::Status::retry, message);
        if (Clock::now() - connected_at >= kStableConnection) backoff = settings_.reconnect_min;
        const bool go_on = co_await pause(backoff);
        if (!go_on) break;
        backoff = std::min(backoff * 2, settings_.reconnect_max);
    }
}

MqttSource::Task<void> MqttSource::subscription_failed(const Subscription& sub) {
    host_.error(sub.error);
    host_.report_state(sdk::Status::retry, sub.error);
    if (!sub.reconnect) co_return;
    co_await disconnect(kCloseLimit);
    if (stop_requested_) co_return;
    std::lock_guard lock(mu_);
    lost_ = true;
    lost_reason_ = sub.error;
}

MqttSource::Task<MqttSource::Wake> MqttSource::wait_connected() {
    Wake wake = Wake::stop;
    co_await idle(Clock::time_point::max(), [&] {
        // A lost connection before a hold: its warning says more than "holding back" would.
        if (stopping_) {
            wake = Wake::stop;
        } else if (lost_) {
            wake = Wake::lost;
        } else if (holding()) {
            wake = Wake::hold;
        } else if (!more_topics_.empty()) {
            wake = Wake::subscribe;
        } else {
            return false;
        }
        return true;
    });
    co_return wake;
}

bool MqttSource::pause_input(milliseconds d) {
    {
        std::lock_guard lock(mu_);
        if (!cannot_hold_.empty() || stopping_ || machine_failed_) return false;
        hold_ = true;
        hold_until_ = std::max(hold_until_, Clock::now() + d);
    }
    wake();
    return true;
}

MqttSource::Task<bool> MqttSource::hold_while_requested() {
    if (role_ == Role::group) {
        host_.debug("closed for a moment while a route leaves (the broker queues meanwhile)");
        for (;;) {
            Clock::time_point until;
            {
                std::lock_guard lock(mu_);
                until = hold_until_;
            }
            co_await idle(until, [this] { return stopping_; });
            if (stop_requested_) co_return false;
            std::lock_guard lock(mu_);
            if (Clock::now() >= hold_until_) {
                hold_ = false;
                break;
            }
        }
        co_return true;
    }
    host_.info(
        "holding back: the route's buffer is full; staying disconnected until it has room "
        "(the broker keeps the session and queues QoS 1 and 2 messages meanwhile)");
    host_.report_state(sdk::Status::retry, "holding back: the route's buffer is full");
    co_await idle(Clock::time_point::max(), [this] { return stopping_ || !hold_; });
    if (stop_requested_) co_return false;
    host_.info("the route has room again: reconnecting to resume the session");
    co_return true;
}

MqttSource::Task<void> MqttSource::disconnect(milliseconds limit) {
    // MQTT 5: a DISCONNECT without Session Expiry Interval keeps the one given at connect, so the
    // broker keeps the session and queues for it.
    std::string failure;
    ::mqtt::token_ptr token;
    try {
        token = client_->disconnect(0, nullptr, waker_);
    } catch (const ::mqtt::exception& e) {
        // Already gone (the broker closed it meanwhile): nothing to close.
        failure = describe(e);
    }
    if (token) {
        pending_ = token;
        co_await idle(Clock::now() + limit, [&] { return stopping_ || completed(*token); });
        if (stop_requested_) co_return;  // stop() lets pending_ end
        pending_.reset();
        try {
            if (completed(*token)) token->wait();
        } catch (const ::mqtt::exception& e) {
            failure = describe(e);
        }
    }
    if (!failure.empty()) host_.debug("disconnect: " + failure);
}

bool MqttSource::hold_due() {
    std::lock_guard lock(mu_);
    return holding();
}

MqttSource::Task<std::string> MqttSource::connect_once(bool& session_present, std::string& server) {
    // Thousands of routes that start together reach their brokers as a paced stream (see
    // connect_pacer.hpp).
    driver_->request_connect(id_, settings_.url_list());
    co_await idle(Clock::time_point::max(),
                  [this] { return stopping_ || driver_->connect_granted(id_); });
    if (stop_requested_) co_return "stopping";  // stop() withdraws the request

    std::string failure;
    ::mqtt::token_ptr token;
    try {
        token = client_->connect(connect_options_, nullptr, waker_);
    } catch (const ::mqtt::exception& e) {
        failure = connect_failure(e);
    }
    if (!token) {
        driver_->connect_finished(id_);
        co_return failure;
    }
    pending_ = token;
    // paho enforces connect_timeout_s per url; this only guards against a hang.
    const auto limit =
        std::chrono::duration_cast<milliseconds>(std::chrono::seconds(settings_.connect_timeout_s) *
                                                     static_cast<int>(settings_.urls.size()) +
                                                 std::chrono::seconds(5));
    const bool answered =
        co_await idle(Clock::now() + limit, [&] { return stopping_ || completed(*token); });
    driver_->connect_finished(id_);
    if (stop_requested_) co_return "stopping";  // stop() lets pending_ end
    pending_.reset();
    if (!answered) {
        try {
            client_->disconnect(::mqtt::disconnect_options(0));
        } catch (const ::mqtt::exception&) {
        }
        co_return "no answer within " + millis(limit);
    }
    try {
        const auto response = token->get_connect_response();  // complete: does not wait
        session_present = response.is_session_present();
        server = response.get_server_uri();
        if (server.empty()) server = settings_.urls.front();
    } catch (const ::mqtt::exception& e) {
        failure = connect_failure(e);
    }
    co_return failure;
}

std::string MqttSource::connect_failure(const ::mqtt::exception& e) const {
    std::string why = describe(e);
    if (settings_.uses_tls() && e.get_return_code() == MQTTASYNC_FAILURE) {
        why +=
            " (for ssl:// check ca_file, that the certificate is issued for the host "
            "name in the url, and cert_file/key_file if the broker wants a client "
            "certificate)";
    }
    return why;
}

MqttSource::Task<MqttSource::Subscription> MqttSource::subscribe_all(bool session_present) {
    const bool v5 = settings_.version == mqtt_source::ProtocolVersion::v5;
    if (session_present && !settings_.clean_session && !v5) {
        // Re-subscribing would make an MQTT 3.1.1 broker replay every retained message.
        host_.debug("session resumed: the broker kept the subscriptions");
        co_return Subscription{};
    }
    if (role_ == Role::group) {
        // A resumed session kept what was granted in it: with thousands of filters, sending
        // them all again at every reconnect (each route leaving closes the connection for a
        // moment) would cost far more than the routes' traffic.
        if (!session_present) granted_.clear();
        std::vector<std::string> todo;
        for (const auto& t : settings_.topics) {
            if (granted_.count(t) == 0) todo.push_back(t);
        }
        co_return co_await subscribe(todo);
    }
    co_return co_await subscribe(settings_.topics);
}

MqttSource::Task<MqttSource::Subscription> MqttSource::subscribe(
    const std::vector<std::string>& filters) {
    const bool v5 = settings_.version == mqtt_source::ProtocolVersion::v5;
    // Retained messages only for a subscription the session did not have yet: subscribing
    // again on every connect then replays nothing, and topics added to the manifest take effect
    // on a resumed session too. One SUBSCRIBE per filter, all sent before the first wait:
    // paho.mqtt.cpp 1.2 crashes in MQTTAsync_subscribeMany with MQTT 5 options for several
    // filters.
    const ::mqtt::subscribe_options options =
        v5 ? ::mqtt::subscribe_options(false, false,
                                       ::mqtt::subscribe_options::SEND_RETAINED_ON_NEW)
           : ::mqtt::subscribe_options();
    std::vector<::mqtt::token_ptr> tokens;
    std::string failure;
    try {
        for (const auto& topic : filters) {
            ::mqtt::properties props;
            if (role_ == Role::group) {
                // The broker names it in every message this filter matched (see
                // shared_connection.hpp).
                props.add({::mqtt::property::SUBSCRIPTION_IDENTIFIER,
                           static_cast<std::int32_t>(mqtt_source::subscription_id(topic))});
            }
            tokens.push_back(
                client_->subscribe(topic, settings_.qos, nullptr, waker_, options, props));
        }
    } catch (const ::mqtt::exception& e) {
        failure = "subscribe failed: " + describe(e);
    }
    if (!failure.empty()) co_return Subscription{failure, true};
    const auto limit = std::chrono::seconds(settings_.connect_timeout_s);
    std::string refused;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        const std::string& topic = filters[i];
        // MQTT 3.1.1 does not subscribe again on a resumed session, so the broker's answer
        // to a new session's subscriptions must be seen; a new session has no backlog to
        // delay it. MQTT 5 subscribes again on the next connect.
        const Waited waited = co_await wait_while_receiving(tokens[i], limit, v5);
        if (waited == Waited::interrupted) co_return Subscription{{}, false, !stop_requested_};
        if (waited == Waited::timeout) {
            co_return Subscription{"the broker did not answer the subscription to '" + topic +
                                       "' within " + millis(limit),
                                   true};
        }
        std::string refusal;
        try {
            tokens[i]->wait();  // complete: rethrows paho's failure
            const int code = tokens[i]->get_reason_code();
            if (code == ::mqtt::MQTTPP_V3_CODE) {
                // paho's "no reason code" marker
            } else if (code >= 0x80) {
                refusal = reason_text(code);
            } else if (code < settings_.qos) {
                host_.info("the broker granted QoS " + std::to_string(code) + " for '" + topic +
                           "'");
            }
        } catch (const ::mqtt::exception& e) {
            if (!client_->is_connected()) {
                failure = "subscribe failed: " + describe(e);
                break;
            }
            refusal = describe(e);
        }
        if (role_ == Role::group) {
            // A refused filter fails the routes that asked for it, not the connection.
            if (refusal.empty()) granted_.insert(topic);
            group_->subscribed(topic, refusal);
        } else if (!refusal.empty()) {
            refused += (refused.empty() ? "'" : ", '") + topic + "' (" + refusal + ")";
        }
    }
    if (!failure.empty()) co_return Subscription{failure, true};
    if (!refused.empty()) {
        co_return Subscription{"the broker refused the subscription to " + refused, false};
    }
    host_.debug("subscribed to " + std::to_string(tokens.size()) + " filter(s)");
    co_return Subscription{};
}

std::vector<std::string> MqttSource::take_more_topics() {
    std::vector<std::string> more;
    {
        std::lock_guard lock(mu_);
        more.swap(more_topics_);
    }
    settings_.topics.insert(settings_.topics.end(), more.begin(), more.end());
    return more;
}

void MqttSource::add_topics(std::vector<std::string> filters) {
    {
        std::lock_guard lock(mu_);
        more_topics_.insert(more_topics_.end(), std::make_move_iterator(filters.begin()),
                            std::make_move_iterator(filters.end()));
    }
    wake();
}

MqttSource::Task<MqttSource::Waited> MqttSource::wait_while_receiving(::mqtt::token_ptr token,
                                                                      milliseconds limit,
                                                                      bool holdable) {
    // A broker resuming a session sends the queued backlog before the SUBACK; while messages
    // keep arriving the connection is alive, so only time without any counts against `limit`.
    // Treating a long backlog as a dead connection would reconnect and cause redeliveries.
    // That backlog is also what fills the route again, so a hold request cuts the wait short.
    auto until = Clock::now() + limit;
    auto seen = received_.load();
    for (;;) {
        const bool woke = co_await idle(
            until, [&] { return stopping_ || (holdable && holding()) || completed(*token); });
        if (stop_requested_ || (holdable && hold_due())) co_return Waited::interrupted;
        if (completed(*token)) co_return Waited::done;
        if (woke) continue;  // a hold request that was withdrawn meanwhile
        if (const auto now_received = received_.load(); now_received != seen) {
            seen = now_received;
            until = Clock::now() + limit;
            continue;
        }
        co_return Waited::timeout;
    }
}

MqttSource::Task<bool> MqttSource::pause(milliseconds d) {
    // A hold request ends the back-off: reconnecting can wait for the route to have room.
    co_await idle(Clock::now() + d, [this] { return stopping_ || holding(); });
    co_return !stop_requested_;
}

void MqttSource::on_connection_lost(const std::string& cause) {
    {
        std::lock_guard lock(mu_);
        // The broker's DISCONNECT reason (MQTT 5) says more than paho's generic cause that
        // follows it.
        if (!lost_ || lost_reason_.empty()) {
            lost_reason_ = cause.empty() ? "connection closed" : cause;
        }
        if (!lost_) connection_losses_.fetch_add(1, std::memory_order_relaxed);
        lost_ = true;
    }
    wake();
}

void MqttSource::metrics(sdk::Metrics& out) const {
    const MqttSource* connection = this;
    // Held while reading, not a copy of shared_: the last reference to a shared connection
    // must go on the route's thread in stop(), never on the admin thread.
    std::unique_lock<std::mutex> lock;
    if (role_ == Role::member) {
        lock = std::unique_lock(shared_mu_);
        if (!shared_) return;  // not started, or stopped: no connection to speak of
        connection = &shared_->connection();
    }
    const std::string& id = connection->settings_.client_id;
    out.counter("mqtt_connects_total", "Connections the MQTT broker accepted.",
                connection->connects_.load(std::memory_order_relaxed), "client_id", id);
    out.counter("mqtt_connection_losses_total",
                "MQTT connections that ended without being asked to (broker gone, network).",
                connection->connection_losses_.load(std::memory_order_relaxed), "client_id", id);
    out.gauge("mqtt_connected", "1 while the MQTT connection is up.",
              connection->connected() ? 1 : 0, "client_id", id);
    out.gauge("mqtt_session_present",
              "1 when the broker resumed a session at the last connect, 0 for a new one.",
              connection->session_present_.load(std::memory_order_relaxed) ? 1 : 0, "client_id",
              id);
    out.counter("mqtt_messages_dropped_total",
                "Messages the MQTT callback could not hand to the route (stopping, refused).",
                dropped_.load(std::memory_order_relaxed), "client_id", id);
}

void MqttSource::on_message(const ::mqtt::const_message_ptr& message) {
    if (!message) return;
    if (role_ == Role::group) {
        received_.fetch_add(1, std::memory_order_relaxed);
        group_->deliver(message);
        return;
    }
    std::lock_guard lock(emit_mu_);
    const std::string& topic = message->get_topic();
    if (!accepting_ || !out_) {
        note_drop(sdk::Status::fatal, topic);
        return;
    }
    const std::string& payload = message->get_payload();
    const int qos = std::clamp(message->get_qos(), 0, 2);
    const bool retained = message->is_retained();

    headers_.clear();
    const MQTTProperties& props = message->get_properties().c_struct();
    for (int i = 0; i < props.count; ++i) {
        const MQTTProperty& p = props.array[i];
        if (p.identifier != MQTTPROPERTY_CODE_USER_PROPERTY) continue;
        headers_.push_back({p.value.data.data, static_cast<std::size_t>(p.value.data.len),
                            p.value.value.data, static_cast<std::size_t>(p.value.value.len)});
    }
    if (settings_.metadata_headers) {
        const std::string_view retain = retained ? "true" : "false";
        headers_.push_back({kHeaderTopic.data(), kHeaderTopic.size(), topic.data(), topic.size()});
        headers_.push_back({kHeaderQos.data(), kHeaderQos.size(), kQosText[qos].data(), 1});
        headers_.push_back(
            {kHeaderRetain.data(), kHeaderRetain.size(), retain.data(), retain.size()});
    }

    sluice_message m{};
    m.struct_size = sizeof m;
    m.flags = (retained ? SLUICE_MESSAGE_RETAIN : 0u) |
              (message->is_duplicate() ? SLUICE_MESSAGE_DUP : 0u);
    m.topic = topic.data();
    m.topic_len = topic.size();
    m.payload = payload.data();
    m.payload_len = payload.size();
    m.headers = headers_.empty() ? nullptr : headers_.data();
    m.n_headers = headers_.size();
    m.timestamp_ms = std::chrono::duration_cast<milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    m.qos = static_cast<std::uint32_t>(qos);
    const sdk::Status status = out_->emit(m);
    if (status == sdk::Status::ok) {
        received_.fetch_add(1, std::memory_order_relaxed);
    } else {
        note_drop(status, topic);
    }
}

void MqttSource::note_unclaimed(const std::string& topic) { note_drop(sdk::Status::error, topic); }

void MqttSource::note_drop(sdk::Status status, const std::string& topic) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    // The route is stopping: stop()'s summary counts these.
    if (status == sdk::Status::fatal) return;
    bool first = false;  // the first since the last warning: later ones wait for its timer
    {
        std::lock_guard lock(drop_mu_);
        first = drops_to_log_ == drops_logged_;
        ++drops_to_log_;
        last_drop_status_ = status;
        last_drop_topic_ = topic;
    }
    if (first) wake();
}

MqttSource::Clock::time_point MqttSource::drops_due() {
    std::lock_guard lock(drop_mu_);
    if (drops_to_log_ == drops_logged_) return Clock::time_point::max();
    return drops_logged_ == 0 ? Clock::time_point::min() : last_drop_log_ + kDropLogInterval;
}

void MqttSource::log_drops() {
    std::uint64_t total = 0;
    sdk::Status status = sdk::Status::ok;
    std::string topic;
    {
        std::lock_guard lock(drop_mu_);
        if (drops_to_log_ == drops_logged_) return;
        const auto now = Clock::now();
        if (drops_logged_ != 0 && now - last_drop_log_ < kDropLogInterval) return;
        total = drops_logged_ = drops_to_log_;
        last_drop_log_ = now;
        status = last_drop_status_;
        topic = last_drop_topic_;
    }
    const std::string why =
        role_ == Role::group
            ? "no running route subscribes to it (its route was removed, or did not start "
              "within 30 s)"
        : status == sdk::Status::retry
            ? "the route's queue is full (when_full: drop_newest)"
            : "the route refused it (e.g. larger than max_payload_bytes)";
    host_.warn("message on '" + topic + "' dropped: " + why + "; " + std::to_string(total) +
               " dropped so far. The broker already has its acknowledgement.");
}

}  // namespace sluice::plugins

SLUICE_MODULE("sluice-mqtt-source", sluice::plugins::MqttSource)

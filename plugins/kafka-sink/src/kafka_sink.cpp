#include "kafka_sink.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>

#include "topic_name.hpp"

namespace sluice::plugins {

namespace {

using Clock = std::chrono::steady_clock;
using kafka::ClusterSettings;
using std::chrono::milliseconds;

// librdkafka checks message timeouts about once a second, so a report may come up to that
// much after delivery_timeout_ms; the margin keeps write() from giving up just before it.
constexpr milliseconds kReportMargin{2000};
// How long write() waits for room when librdkafka's local queue is full, before trying again.
constexpr milliseconds kQueueFullWait{10};
// Time kept back from stop()'s deadline for rd_kafka_destroy, which closes connections and
// joins librdkafka's threads after the flush.
constexpr milliseconds kDestroyReserve{250};
// Topic handles cached per instance; a template that renders unboundedly many names only
// costs a cache reset every so often.
constexpr std::size_t kMaxCachedTopics = 1024;
// Distinct topics whose illegal characters are announced at warn level; later ones at debug.
constexpr std::size_t kMaxWarnedTopics = 256;

// Failures that will not go away by sending the same message again. Everything else
// (timeouts, transport errors, leader elections, unknown errors) is retried: a retry can
// duplicate a message, dropping one loses it.
bool is_permanent(rd_kafka_resp_err_t err) {
    switch (err) {
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:  // invalid topic name
        case RD_KAFKA_RESP_ERR_INVALID_RECORD:
        case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
        case RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS:
        case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
        case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
        case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
        case RD_KAFKA_RESP_ERR__AUTHENTICATION:
        case RD_KAFKA_RESP_ERR__INVALID_ARG:
        case RD_KAFKA_RESP_ERR__BAD_MSG:
            return true;
        default:
            return false;
    }
}

// ConfigError's what() starts with the key, which the diagnostic already names.
std::string without_key(const sdk::ConfigError& e) {
    const std::string_view text = e.what();
    const std::string prefix = e.key() + ": ";
    return std::string(text.starts_with(prefix) ? text.substr(prefix.size()) : text);
}

char read_replacement(const sdk::Config& config) {
    const std::string r = config.string_or("topic_replacement", "_");
    if (r.size() != 1 || !kafka::is_legal_topic_char(r[0])) {
        throw sdk::ConfigError("topic_replacement",
                               "must be exactly one of the characters Kafka allows in topic "
                               "names ([a-zA-Z0-9._-]), got '" +
                                   r + "'");
    }
    return r[0];
}

}  // namespace

sdk::Spec KafkaSink::spec() {
    using sdk::Field;
    sdk::Spec s("kafka-sink", "1.1.0");
    s.summary("Produces messages to Kafka and confirms them only once Kafka acknowledged them.")
        .description(
            "Each message becomes one Kafka record: the payload is the value, the key comes "
            "from `key` (or the key a transform set), message headers (MQTT 5 user properties, "
            "`mqtt.topic`, `mqtt.qos`, `mqtt.retain`) become Kafka headers, and the record "
            "timestamp is the time the source received the message.\n\n"
            "A batch is confirmed only when Kafka acknowledged every message in it (librdkafka "
            "delivery reports, with `acks: all` and idempotence by default, so a retried "
            "message is not written twice). A message that Kafka does not acknowledge within "
            "`delivery_timeout_ms` (cluster unreachable, leader election) is handed back to the "
            "route, which retries it after a back-off: nothing is lost while the cluster is "
            "away, and the route shows as degraded meanwhile. A message Kafka refuses for good "
            "(too large, invalid topic, not authorised) goes to the route's error policy.\n\n"
            "Routes whose cluster settings (`brokers`, `compression`, `acks`, `idempotence`, "
            "`linger_ms`, `delivery_timeout_ms`, `properties`) are identical share one "
            "librdkafka producer, as librdkafka intends: one set of connections and batches "
            "for all of them. Each route still waits only for its own messages.\n\n"
            "Batches are pipelined (plugin ABI 1.2): the route hands the sink its next batch "
            "without waiting for the previous one's acknowledgements, up to the route's "
            "`max_in_flight` batches, and each batch is confirmed when its last delivery report "
            "arrives. Order is kept: every batch goes into the producer's one queue in the order "
            "the route sent it, idempotence keeps partition order through librdkafka's own "
            "retries, and the route confirms batches in order and resends from the first "
            "unconfirmed message, so a retry never reorders the messages of a key. When "
            "librdkafka's local queue is full the sink does not wait for room: the route "
            "retries the part that did not fit after a back-off. A producer's local queue is "
            "bounded by default to 64 MiB and 100,000 messages (librdkafka's own default is "
            "1 GiB), for all the routes that share it; `properties` can change that.");
    s.field(Field::string("brokers")
                .required()
                .description("Kafka bootstrap servers, `host:port` separated by commas. Only "
                             "used to discover the cluster; the producer then connects to "
                             "every broker that leads a partition it writes to.")
                .example("\"${KAFKA_BROKERS}\""));
    s.field(
        Field::templated("topic")
            .required()
            .description("Kafka topic to write to; a template, so one route can fan out by topic "
                         "level. Characters Kafka does not allow in topic names (anything but "
                         "`a-z A-Z 0-9 . _ -`, e.g. the `/` of an MQTT topic) are replaced by "
                         "`topic_replacement`; this is logged once per topic. A message whose "
                         "topic renders empty (a missing topic level or field) goes to the "
                         "route's error policy. A constant topic's metadata is fetched in the "
                         "background when the route starts, so the first messages are not held "
                         "back and the start does not wait for a cluster that is away.")
            .example("\"occupancy.{{topic.1}}\""));
    s.field(Field::string("topic_replacement")
                .default_value("_")
                .description("The character that replaces each character of a rendered topic "
                             "that Kafka does not allow. Must itself be allowed: one of "
                             "`a-z A-Z 0-9 . _ -`.")
                .advanced());
    s.field(Field::templated("key")
                .description("Kafka message key; a template. Kafka sends every message with "
                             "the same key to the same partition, in order. Not set: the key a "
                             "transform gave the message, or no key (messages are spread over "
                             "partitions).")
                .example("\"{{topic.2}}\""));
    s.field(Field::list("headers")
                .default_value("[\"*\"]")
                .description("Message headers to forward as Kafka headers, by name. `*` "
                             "forwards all of them; an empty list forwards none.")
                .example("[mqtt.topic, sensor_id]"));
    s.field(Field::enumeration("compression", {"none", "gzip", "snappy", "lz4", "zstd"})
                .default_value("none")
                .description("Compression of record batches. `lz4` and `zstd` are cheap and "
                             "effective for JSON payloads."));
    s.field(Field::enumeration("acks", {"all", "1", "0"})
                .default_value("all")
                .description("Acknowledgements Kafka gives before a message counts as "
                             "delivered: `all` (every in-sync replica has it), `1` (the "
                             "partition leader has it; lost if the leader fails before "
                             "replicating), `0` (none: Sluice confirms as soon as the message "
                             "is sent). Anything but `all` needs `idempotence: false`."));
    s.field(Field::boolean("idempotence")
                .default_value("true")
                .description("Idempotent producer: Kafka discards the duplicates that "
                             "librdkafka's internal retries would otherwise write, and keeps "
                             "the order of messages within a partition. Requires `acks: all`."));
    s.field(Field::integer("delivery_timeout_ms")
                .default_value("30000")
                .range(1000, 86400000)
                .description(
                    "How long librdkafka tries to deliver a message (its `message.timeout.ms`) "
                    "before the message goes back to the route, which retries it after a "
                    "back-off. A batch waits at most this long (plus about two seconds) for "
                    "its confirmations, so this also bounds how long a route stays blocked on "
                    "an unreachable cluster before it retries, and how long it may need to "
                    "drain at shutdown (past the drain deadline, what is unconfirmed goes back "
                    "to the route as retry)."));
    s.field(Field::integer("linger_ms")
                .default_value("5")
                .range(0, 900000)
                .description("How long librdkafka waits to fill a batch before sending it: "
                             "higher values mean fewer, larger requests and more latency.")
                .advanced());
    s.field(Field::map("properties")
                .description("Any other librdkafka configuration property, passed as is: SASL and "
                             "SSL settings, `batch.size`, `client.id`, ... (see librdkafka's "
                             "CONFIGURATION.md). `sluice check` reports a property librdkafka does "
                             "not know or a value it refuses. Properties that one of the options "
                             "above sets are refused here, and so are those that load code, run "
                             "a command or read a file unless the operator allows them "
                             "(`allow_properties`). Values of secret properties are never logged: "
                             "names with `password` or `secret`, private keys (`ssl*key*`, "
                             "`*.key.pem`) and every `sasl.*` but the mechanism, username, "
                             "Kerberos principal and service and the OAUTHBEARER method, client "
                             "id, scope and endpoint; prefer `${VAR}` for them. "
                             "`queue.buffering.max.kbytes` and `queue.buffering.max.messages` "
                             "(default 100000) bound the producer's local queue, which every route "
                             "sharing the producer uses; when it is full, batches are retried "
                             "rather than waited for. The kbytes default comes from the process's "
                             "memory budget: a quarter of what the host config's `memory_limit` "
                             "leaves beyond the routes' memory buffers, from 1 MiB to 64 MiB.")
                .example("{security.protocol: sasl_ssl, sasl.mechanisms: PLAIN, "
                         "sasl.username: sluice, sasl.password: \"${KAFKA_PASSWORD}\"}")
                .advanced());
    s.field(
        Field::list("allow_properties")
            .default_value("[]")
            .description("The librdkafka properties that load code, run a command or read or write "
                         "a file (`plugin.library.paths`, `ssl.engine.location`, `ssl.engine.id`, "
                         "`ssl.providers`, `sasl.kerberos.kinit.cmd`, `sasl.kerberos.keytab`, "
                         "`ssl.*.location`, `ssl.ca.certificate.stores`, `offset.store.path`) "
                         "that routes may set in `properties`. Without it they are refused, in "
                         "`sluice check` as in `run`, before anything reaches librdkafka: a route "
                         "manifest moves data, it does not decide what the daemon runs or reads.")
            .example("[ssl.ca.location, ssl.certificate.location, ssl.key.location]")
            .host_only());
    return s;
}

void KafkaSink::validate(const sdk::Config& config, sdk::Diagnostics& diag) {
    const kafka::ReportFn report = [&](const std::string& key, const std::string& message) {
        diag.report(key, message);
    };
    ClusterSettings settings;
    try {
        settings = ClusterSettings::from_config(config);
    } catch (const sdk::ConfigError& e) {
        diag.report(e.key(), without_key(e));
        return;
    }
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    settings.apply(conf, report);
    rd_kafka_conf_destroy(conf);
    settings.check_consistency(report);

    char replacement = '_';
    try {
        replacement = read_replacement(config);
    } catch (const sdk::ConfigError& e) {
        diag.report(e.key(), without_key(e));
    }
    try {
        const sdk::Template topic = config.templ("topic");
        if (topic.is_constant()) {
            std::string name = topic.source();
            kafka::sanitize_topic(name, replacement);
            if (const auto problem = kafka::topic_name_problem(name); !problem.empty()) {
                diag.report("topic", std::string(problem));
            }
        }
        if (config.has("key")) config.templ("key");
    } catch (const sdk::ConfigError& e) {
        diag.report(e.key(), without_key(e));
    }
}

KafkaSink::KafkaSink(const sdk::Config& config, sdk::Host& host)
    : settings_(ClusterSettings::from_config(config)),
      topic_(config.templ("topic")),
      replacement_(read_replacement(config)),
      route_(config.route()),
      host_(host),
      tracker_(std::make_shared<kafka::DeliveryTracker>()) {
    settings_.queue_kbytes = kafka::queue_kbytes_for(host.memory_budget_bytes());
    if (config.has("key")) key_ = config.templ("key");
    // The host fills in the default ["*"]; a config without the entry means the same.
    if (config.has("headers")) {
        all_headers_ = false;
        for (auto& name : config.list("headers")) {
            if (name == "*") {
                all_headers_ = true;
            } else {
                header_names_.push_back(std::move(name));
            }
        }
        if (all_headers_) header_names_.clear();
    }
    const std::string problems = [&] {
        std::string text;
        const kafka::ReportFn collect = [&](const std::string& key, const std::string& m) {
            text += (text.empty() ? "" : "; ") + key + ": " + m;
        };
        settings_.check_consistency(collect);
        return text;
    }();
    // validate() reports these with their locations; this only guards create() callers
    // that skip it.
    if (!problems.empty()) throw std::invalid_argument(problems);
    if (topic_.is_constant()) {
        std::string name = topic_.source();
        kafka::sanitize_topic(name, replacement_);
        if (const auto problem = kafka::topic_name_problem(name); !problem.empty()) {
            throw sdk::ConfigError("topic", std::string(problem));
        }
    }
}

KafkaSink::~KafkaSink() {
    try {
        // Normally stop() already released everything; this covers a start() without stop().
        if (producer_ != nullptr) stop(milliseconds(0));
    } catch (...) {
    }
}

std::size_t KafkaSink::producer_count() { return kafka::Producer::live_count(); }

void KafkaSink::start() {
    producer_ = kafka::ProducerPool::acquire(settings_, *this, host_);
    {
        std::lock_guard lock(metrics_mu_);
        metrics_handle_ = producer_->handle();
    }
    host_.debug("producer: " + settings_.describe());
    if (!topic_.is_constant()) return;

    std::string name = topic_.source();
    make_legal(name);
    constant_topic_ = topic_handle(name);
    if (constant_topic_ == nullptr) {
        throw sdk::Fatal("cannot create a handle for topic '" + name +
                         "': " + rd_kafka_err2str(rd_kafka_last_error()));
    }
    // Without metadata for a new topic librdkafka 2.0.2 holds its first messages until the
    // next metadata refresh (about a second); the producer asks for it now, on its own thread,
    // so that start() never waits for a cluster that is away.
    producer_->warm_up(name);
}

bool KafkaSink::make_legal(std::string& name) {
    const std::size_t replaced = kafka::sanitize_topic(name, replacement_);
    if (replaced == 0) return false;
    topic_chars_replaced_ += replaced;
    replaced_total_ += replaced;
    const std::uint64_t total = topic_chars_replaced_;
    const bool first = warned_topics_.size() < kMaxWarnedTopics &&
                       warned_topics_.find(std::string_view(name)) == warned_topics_.end();
    if (first) warned_topics_.emplace(name);
    const auto level = first ? SLUICE_LOG_WARN : SLUICE_LOG_DEBUG;
    if (host_.enabled(level)) {
        host_.log(level, "topic template '" + topic_.source() +
                             "' rendered characters Kafka "
                             "does not allow in topic names; writing to '" +
                             name + "' instead (" + std::to_string(total) +
                             " characters replaced so far)");
    }
    return true;
}

rd_kafka_topic_t* KafkaSink::topic_handle(const std::string& name) {
    if (auto it = topics_.find(std::string_view(name)); it != topics_.end()) return it->second;
    if (topics_.size() >= kMaxCachedTopics) {
        // Handles are reference-counted by librdkafka: messages in flight keep theirs.
        release_topics();
    }
    rd_kafka_topic_t* topic = rd_kafka_topic_new(producer_->handle(), name.c_str(), nullptr);
    if (topic != nullptr) topics_.emplace(name, topic);
    return topic;
}

template <class Results>
rd_kafka_topic_t* KafkaSink::topic_for(sdk::MessageView m, std::size_t index, Results& results) {
    if (constant_topic_ != nullptr) return constant_topic_;
    topic_buf_.clear();
    topic_.render(m, sdk::RenderContext{route_}, topic_buf_);
    if (topic_buf_.empty()) {
        results.reject(index, sdk::Status::error,
                       "topic template '" + topic_.source() +
                           "' rendered an empty topic name for message topic '" +
                           std::string(m.topic()) + "'");
        return nullptr;
    }
    make_legal(topic_buf_);
    if (const auto problem = kafka::topic_name_problem(topic_buf_); !problem.empty()) {
        results.reject(index, sdk::Status::error,
                       "topic template '" + topic_.source() + "' rendered '" + topic_buf_ +
                           "': " + std::string(problem));
        return nullptr;
    }
    rd_kafka_topic_t* topic = topic_handle(topic_buf_);
    if (topic == nullptr) {
        results.reject(
            index, sdk::Status::error,
            "cannot use topic '" + topic_buf_ + "': " + kafka::error_text(rd_kafka_last_error()));
    }
    return topic;
}

rd_kafka_headers_t* KafkaSink::headers_for(sdk::MessageView m) const {
    if (m.header_count() == 0 || (!all_headers_ && header_names_.empty())) return nullptr;
    rd_kafka_headers_t* headers = nullptr;
    for (std::size_t i = 0; i < m.header_count(); ++i) {
        const std::string_view name = m.header_key(i);
        if (!all_headers_ &&
            std::find(header_names_.begin(), header_names_.end(), name) == header_names_.end()) {
            continue;
        }
        if (headers == nullptr) headers = rd_kafka_headers_new(m.header_count());
        const std::string_view value = m.header_value(i);
        rd_kafka_header_add(headers, name.data(), static_cast<ssize_t>(name.size()), value.data(),
                            static_cast<ssize_t>(value.size()));
    }
    return headers;
}

template <class Results>
KafkaSink::Produced KafkaSink::produce(sdk::MessageView m, std::size_t index,
                                       rd_kafka_topic_t* topic, kafka::DeliveryTracker& tracker,
                                       Results& results) {
    const void* key = nullptr;
    std::size_t key_len = 0;
    if (key_) {
        key_buf_.clear();
        const bool complete = key_->render(m, sdk::RenderContext{route_}, key_buf_);
        // A key whose only variable is missing is no key at all, not the empty key (which
        // Kafka would hash to one fixed partition).
        if (complete || !key_buf_.empty()) {
            key = key_buf_.data();
            key_len = key_buf_.size();
        }
    } else if (m.has_key()) {
        key = m.key().data();
        key_len = m.key().size();
    }
    rd_kafka_headers_t* headers = headers_for(m);
    const std::int64_t timestamp = m.timestamp_ms() > 0 ? m.timestamp_ms() : 0;  // 0: now
    const std::string_view payload = m.payload();

    // rd_kafka_produceva is rd_kafka_producev with an array instead of varargs: typed fields
    // instead of the RD_KAFKA_V_* macros' C casts. librdkafka copies value and key
    // (MSG_F_COPY) and never writes through the pointers.
    std::array<rd_kafka_vu_t, 7> vu{};
    vu[0].vtype = RD_KAFKA_VTYPE_RKT;
    vu[0].u.rkt = topic;
    vu[1].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[1].u.i = RD_KAFKA_MSG_F_COPY;
    vu[2].vtype = RD_KAFKA_VTYPE_VALUE;
    vu[2].u.mem = {const_cast<char*>(payload.data()), payload.size()};
    vu[3].vtype = RD_KAFKA_VTYPE_KEY;
    vu[3].u.mem = {const_cast<void*>(key), key_len};
    vu[4].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
    vu[4].u.i64 = timestamp;
    vu[5].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vu[5].u.ptr = tracker.opaque(index);
    vu[6].vtype = RD_KAFKA_VTYPE_HEADERS;
    vu[6].u.headers = headers;
    const std::size_t fields = headers != nullptr ? 7 : 6;

    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (rd_kafka_error_t* error = rd_kafka_produceva(producer_->handle(), vu.data(), fields)) {
        err = rd_kafka_error_code(error);
        rd_kafka_error_destroy(error);
    }
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Produced::yes;  // librdkafka owns `headers`
    tracker.not_produced(index);
    if (headers != nullptr) rd_kafka_headers_destroy(headers);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) return Produced::queue_full;  // the caller decides
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        {
            std::lock_guard lock(fatal_mu_);
            if (fatal_reason_.empty()) fatal_reason_ = producer_->fatal_reason();
        }
        fatal_.store(true);
        return Produced::fatal;
    }
    results.reject(index, is_permanent(err) ? sdk::Status::error : sdk::Status::retry,
                   "cannot produce to Kafka: " + kafka::error_text(err));
    return Produced::rejected;
}

template <class Results>
KafkaSink::Summary KafkaSink::classify(const kafka::DeliveryTracker& tracker, Why why,
                                       Results& results) const {
    Summary summary;
    rd_kafka_resp_err_t last_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    std::string reason;
    for (std::size_t i = 0; i < tracker.size(); ++i) {
        const auto o = tracker.outcome(i);
        if (!o.produced) continue;  // rejected while producing
        if (!o.reported) {
            ++summary.retried;
            reason = why == Why::interrupted || why == Why::stopped
                         ? std::string("not confirmed by Kafka before the route had to stop")
                         : "no delivery report from Kafka within " +
                               std::to_string(settings_.delivery_timeout_ms) + " ms";
            if (summary.retry_reason.empty()) summary.retry_reason = reason;
            results.reject(i, sdk::Status::retry, reason);
            last_err = RD_KAFKA_RESP_ERR_NO_ERROR;
            continue;
        }
        if (o.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            ++summary.delivered;
            continue;
        }
        {
            std::lock_guard lock(errors_mu_);
            ++delivery_errors_[o.err];
        }
        if (o.err != last_err || reason.empty()) {
            reason = "Kafka did not confirm the message: " + kafka::error_text(o.err);
            last_err = o.err;
        }
        if (is_permanent(o.err)) {
            results.reject(i, sdk::Status::error, reason);
        } else {
            ++summary.retried;
            if (summary.retry_reason.empty()) summary.retry_reason = reason;
            results.reject(i, sdk::Status::retry, reason);
        }
    }
    return summary;
}

void KafkaSink::report_health(const Summary& summary, std::size_t batch_size) {
    if (summary.retried > 0) {
        set_health(sdk::Status::retry,
                   summary.retry_reason + " (" + std::to_string(summary.retried) + " of " +
                       std::to_string(batch_size) + " messages will be retried)");
    } else if (summary.delivered > 0) {
        set_health(sdk::Status::ok, {});
    }
}

sdk::Status KafkaSink::write(const sdk::BatchView& in, sdk::Emitter& results) {
    if (producer_ == nullptr) throw sdk::Fatal("write() before start()");
    if (fatal_.load() || producer_->is_fatal()) fail_fatal();
    if (in.empty()) return sdk::Status::ok;
    std::erase_if(abandoned_, [](const auto& t) { return t->outstanding() == 0; });

    kafka::DeliveryTracker& tracker = *tracker_;
    interrupted_.store(false);
    tracker.reset(in.size());
    // on_fatal() may have interrupted the previous tracker state just before reset() cleared it.
    if (fatal_.load()) fail_fatal();
    const milliseconds delivery_timeout(settings_.delivery_timeout_ms);
    const Clock::time_point give_up = Clock::now() + delivery_timeout;
    std::size_t produced = 0;
    for (std::size_t i = 0; i < in.size() && !fatal_.load(); ++i) {
        const auto m = in[i];
        rd_kafka_topic_t* topic = topic_for(m, i, results);
        if (topic == nullptr) continue;
        while (true) {
            const Produced r = produce(m, i, topic, tracker, results);
            if (r == Produced::yes) ++produced;
            if (r != Produced::queue_full) break;
            if (Clock::now() < give_up && !interrupted_.load()) {
                // Deliveries make room; the poll thread serves them while we wait.
                tracker.wait_for_progress(kQueueFullWait);
                continue;
            }
            results.reject(
                i, sdk::Status::retry,
                "cannot produce to Kafka: " + kafka::error_text(RD_KAFKA_RESP_ERR__QUEUE_FULL));
            break;
        }
    }
    tracker.expect(produced);
    // Messages produced last may wait the full delivery timeout from their produce call.
    const bool complete =
        fatal_.load() ? tracker.outstanding() == 0
                      : tracker.wait_until(Clock::now() + delivery_timeout +
                                           milliseconds(settings_.linger_ms) + kReportMargin);
    if (fatal_.load() || producer_->is_fatal()) {
        if (!complete) abandon_tracker();
        fail_fatal();
    }
    const Summary summary =
        classify(tracker, interrupted_.load() ? Why::interrupted : Why::timed_out, results);
    if (!complete) abandon_tracker();
    report_health(summary, in.size());
    return sdk::Status::ok;
}

sdk::Status KafkaSink::submit(const sdk::BatchView& in, sdk::Completion done) {
    if (producer_ == nullptr) throw sdk::Fatal("submit() before start()");
    if (fatal_.load() || producer_->is_fatal()) fail_fatal();
    if (in.empty()) {
        done.complete();
        return sdk::Status::ok;
    }
    auto tracker = std::make_shared<kafka::DeliveryTracker>(
        in.size(), [this](const kafka::DeliveryTracker& t, sdk::Completion& c, Why why) {
            settle_submitted(t, c, why);
        });
    // Registered before producing, so that interrupt() and a fatal error reach it; either
    // waits until producing ends (expect()).
    {
        std::lock_guard lock(in_flight_mu_);
        prune_in_flight();
        in_flight_.push_back(tracker);
    }
    std::size_t produced = 0;
    for (std::size_t i = 0; i < in.size() && !fatal_.load(); ++i) {
        const auto m = in[i];
        rd_kafka_topic_t* topic = topic_for(m, i, done);
        if (topic == nullptr) continue;
        const Produced r = produce(m, i, topic, *tracker, done);
        if (r == Produced::yes) {
            ++produced;
        } else if (r == Produced::queue_full) {
            // Waiting for room would hold a thread other routes share.
            if (produced == 0) {
                std::lock_guard lock(in_flight_mu_);
                std::erase(in_flight_, tracker);  // nothing of it reached librdkafka
                return sdk::Status::retry;
            }
            const std::string reason =
                "librdkafka's local queue is full (queue.buffering.max.messages / "
                "queue.buffering.max.kbytes): not produced";
            for (std::size_t j = i; j < in.size(); ++j) done.reject(j, sdk::Status::retry, reason);
            break;
        }
    }
    tracker->expect(produced, std::move(done));
    if (fatal_.load()) tracker->settle(Why::fatal);
    return sdk::Status::ok;
}

void KafkaSink::settle_submitted(const kafka::DeliveryTracker& tracker, sdk::Completion& done,
                                 Why why) {
    if (why == Why::fatal || fatal_.load()) {
        done.complete(sdk::Status::fatal, fatal_reason());
        return;
    }
    const Summary summary = classify(tracker, why, done);
    report_health(summary, tracker.size());
    done.complete();
}

void KafkaSink::prune_in_flight() {
    // Settled and fully reported: librdkafka holds no pointer into it any more.
    std::erase_if(in_flight_, [](const auto& t) { return t->settled() && t->outstanding() == 0; });
}

std::vector<std::shared_ptr<kafka::DeliveryTracker>> KafkaSink::in_flight() {
    std::lock_guard lock(in_flight_mu_);
    prune_in_flight();
    return in_flight_;
}

void KafkaSink::interrupt() {
    interrupted_.store(true);
    {
        std::lock_guard lock(tracker_mu_);
        if (tracker_) tracker_->interrupt();
    }
    // Outside in_flight_mu_: settling calls the host.
    for (const auto& t : in_flight()) t->settle(Why::interrupted);
}

void KafkaSink::abandon_tracker() {
    std::lock_guard lock(tracker_mu_);
    abandoned_.push_back(std::move(tracker_));
    tracker_ = std::make_shared<kafka::DeliveryTracker>();
}

std::string KafkaSink::fatal_reason() const {
    std::lock_guard lock(fatal_mu_);
    return fatal_reason_.empty() ? std::string("the Kafka producer failed fatally") : fatal_reason_;
}

void KafkaSink::fail_fatal() {
    std::string why = producer_ != nullptr ? producer_->fatal_reason() : std::string();
    throw sdk::Fatal(why.empty() ? fatal_reason() : why);
}

void KafkaSink::set_health(sdk::Status state, const std::string& reason) {
    std::lock_guard lock(health_mu_);
    if (state == health_) return;
    health_ = state;
    host_.report_state(state, reason);
}

void KafkaSink::on_brokers_down(const std::string& reason) {
    set_health(sdk::Status::retry, "all Kafka brokers are down: " + reason);
}

void KafkaSink::on_fatal(const std::string& reason) {
    {
        // The producer's lock is held here: its fatal_reason() is out of reach.
        std::lock_guard lock(fatal_mu_);
        fatal_reason_ = reason;
    }
    fatal_.store(true);
    {
        std::lock_guard lock(tracker_mu_);
        if (tracker_ != nullptr) tracker_->interrupt();
    }
    set_health(sdk::Status::fatal, reason);
    for (const auto& t : in_flight()) t->settle(Why::fatal);
}

void KafkaSink::metrics(sdk::Metrics& out) const {
    std::map<rd_kafka_resp_err_t, std::uint64_t> errors;
    {
        std::lock_guard lock(errors_mu_);
        errors = delivery_errors_;
    }
    for (const auto& [err, n] : errors) {
        out.counter("kafka_delivery_errors_total",
                    "Messages Kafka reported as not delivered, by librdkafka error.", n, "error",
                    rd_kafka_err2name(err));
    }
    std::size_t awaiting = 0;
    {
        std::lock_guard lock(in_flight_mu_);
        for (const auto& t : in_flight_) awaiting += t->outstanding();
    }
    {
        std::lock_guard lock(tracker_mu_);
        if (tracker_ != nullptr) awaiting += tracker_->outstanding();
    }
    out.gauge("kafka_in_flight_messages",
              "Messages of this route produced and awaiting their delivery report.",
              static_cast<double>(awaiting));
    std::lock_guard lock(metrics_mu_);
    if (metrics_handle_ == nullptr) return;
    // The producer is shared by the routes with equal cluster settings: this is its queue.
    out.gauge("kafka_producer_queue_messages",
              "Messages and requests in the (shared) producer's queue, not yet acknowledged.",
              static_cast<double>(rd_kafka_outq_len(metrics_handle_)));
}

void KafkaSink::release_topics() {
    for (auto& [name, topic] : topics_) rd_kafka_topic_destroy(topic);
    topics_.clear();
    constant_topic_ = nullptr;  // it was in topics_ as well
}

void KafkaSink::stop(milliseconds deadline) {
    if (producer_ == nullptr) return;
    const auto end = Clock::now() + deadline;
    std::size_t undelivered = 0;
    // Submitted batches: their reports until the deadline (less what destroying the producer
    // needs), then whatever is unconfirmed goes back as retry. No completion may follow stop().
    std::vector<std::shared_ptr<kafka::DeliveryTracker>> batches;
    {
        std::lock_guard lock(in_flight_mu_);
        batches.swap(in_flight_);
    }
    const auto settle_by = end - std::min(kDestroyReserve, deadline / 4);
    for (const auto& t : batches) t->wait_settled(settle_by);
    for (const auto& t : batches) {
        t->settle(Why::stopped);
        // Settling elsewhere (the poll thread, interrupt()) only calls the host, which does
        // not block: this wait is short. It is bounded all the same: a stop that never returns
        // keeps the route (and the process's exit) waiting for good.
        if (!t->wait_settled(std::max(end, Clock::now() + milliseconds(100)))) {
            host_.error("stop: a batch was not settled by the deadline (" + t->unsettled_reason() +
                        "); the route counts its messages as unconfirmed");
            undelivered += t->size();
            producer_->keep_until_destroyed(t);
            continue;
        }
        if (const std::size_t n = t->outstanding(); n > 0) {
            undelivered += n;
            producer_->keep_until_destroyed(t);
        }
    }
    // write() returns only when its batch is settled, so what this instance still has in
    // flight from write() is what it gave up waiting for.
    for (const auto& t : abandoned_) {
        t->wait_until(end);
        if (const std::size_t n = t->outstanding(); n > 0) {
            undelivered += n;
            producer_->keep_until_destroyed(t);
        }
    }
    abandoned_.clear();
    if (undelivered > 0) {
        host_.warn(std::to_string(undelivered) +
                   " messages were still unconfirmed by Kafka at stop (the route retried or "
                   "dropped them already; Kafka may still write them)");
    }
    release_topics();
    {
        std::lock_guard lock(metrics_mu_);
        metrics_handle_ = nullptr;
    }
    const auto remaining = std::chrono::duration_cast<milliseconds>(end - Clock::now());
    const milliseconds flush_budget =
        std::max(milliseconds(0), remaining - std::min(kDestroyReserve, remaining / 4));
    const std::size_t left =
        kafka::ProducerPool::release(std::move(producer_), *this, flush_budget);
    if (left > 0) {
        host_.warn(std::to_string(left) +
                   " messages queued in the producer were not delivered "
                   "before the stop deadline");
    }
}

}  // namespace sluice::plugins

SLUICE_MODULE("sluice-kafka-sink", sluice::plugins::KafkaSink)

#include "producer_pool.hpp"

#include <algorithm>
#include <array>
#include <string_view>
#include <unordered_map>

namespace sluice::plugins::kafka {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long the poll thread sleeps in rd_kafka_poll when nothing happens; shutdown wakes it
// early with rd_kafka_yield, so this only bounds the worst case.
constexpr int kPollIntervalMs = 100;
// An error code that keeps coming back within this period is logged at debug level.
constexpr std::chrono::seconds kErrorQuietPeriod{60};
// After a purge, how long to keep serving the purged messages' delivery reports.
constexpr milliseconds kPurgeDrain{100};
// Warm-up metadata fetch: long enough for a healthy cluster, not forever for one that is away
// (librdkafka keeps trying in the background). Asked in slices, so that shutdown waits for the
// metadata thread at most one slice.
constexpr milliseconds kMetadataTimeout{2000};
constexpr milliseconds kMetadataSlice{100};

// librdkafka logs with syslog levels; a client library's "error" is mostly a broker it will
// reconnect to, so only levels above it count as Sluice errors.
sluice_log_level map_level(int syslog_level) {
    if (syslog_level <= 2) return SLUICE_LOG_ERROR;
    if (syslog_level <= 4) return SLUICE_LOG_WARN;
    if (syslog_level <= 6) return SLUICE_LOG_INFO;
    return SLUICE_LOG_DEBUG;
}

struct Registry {
    struct Slot {
        std::weak_ptr<Producer> producer;
        const Producer* raw = nullptr;  // identity, to tell a replaced slot from ours
    };
    std::mutex mu;
    std::unordered_map<std::string, Slot> producers;
};

Registry& registry() {
    static Registry r;
    return r;
}

}  // namespace

std::string error_text(rd_kafka_resp_err_t err) {
    return std::string(rd_kafka_err2str(err)) + " (" + rd_kafka_err2name(err) + ")";
}

std::atomic<std::size_t> Producer::live_{0};

Producer::Producer(const ClusterSettings& settings, const sdk::Host& creator)
    : settings_(settings), key_(settings.canonical_key()), creator_(&creator) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    std::string problems;
    settings_.apply(conf, [&](const std::string& key, const std::string& message) {
        problems += (problems.empty() ? "" : "; ") + key + ": " + message;
    });
    if (!problems.empty()) {
        rd_kafka_conf_destroy(conf);
        throw sdk::Fatal("invalid Kafka settings: " + problems);
    }
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_dr_msg_cb(conf, &Producer::on_delivery);
    rd_kafka_conf_set_error_cb(conf, &Producer::on_error);
    rd_kafka_conf_set_log_cb(conf, &Producer::on_log);
    std::array<char, 512> errstr{};
    // rd_kafka_new takes ownership of conf only on success.
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr.data(), errstr.size());
    if (rk_ == nullptr) {
        rd_kafka_conf_destroy(conf);
        throw sdk::Fatal(std::string("cannot create the Kafka producer: ") + errstr.data());
    }
    poller_ = std::thread([this] { poll_loop(); });
    ++live_;
    std::lock_guard lock(mu_);
    creator_ = nullptr;
}

Producer::~Producer() {
    // release() shuts down with the caller's deadline; this is the fallback for a producer
    // that lost its last user some other way (an exception during acquire, process exit).
    shutdown(milliseconds(0));
}

std::string Producer::fatal_reason() const {
    std::lock_guard lock(mu_);
    return fatal_reason_;
}

void Producer::add_listener(ProducerListener* listener) {
    std::lock_guard lock(mu_);
    listeners_.push_back(listener);
}

void Producer::remove_listener(ProducerListener* listener) {
    std::lock_guard lock(mu_);
    listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener), listeners_.end());
}

void Producer::keep_until_destroyed(std::shared_ptr<DeliveryTracker> tracker) {
    std::lock_guard lock(mu_);
    // Trackers whose reports all came in are done with; drop them so a long-lived producer
    // does not accumulate them.
    std::erase_if(kept_, [](const auto& t) { return t->outstanding() == 0; });
    kept_.push_back(std::move(tracker));
}

void Producer::poll_loop() {
    while (!stopping_.load(std::memory_order_acquire)) rd_kafka_poll(rk_, kPollIntervalMs);
}

void Producer::warm_up(const std::string& topic) {
    std::lock_guard lock(mu_);
    if (stopping_.load(std::memory_order_acquire)) return;
    warm_up_.push_back(topic);
    if (!metadata_.joinable()) metadata_ = std::thread([this] { metadata_loop(); });
    warm_up_cv_.notify_one();
}

void Producer::metadata_loop() {
    const milliseconds budget =
        std::min(kMetadataTimeout, milliseconds(settings_.delivery_timeout_ms));
    std::unique_lock lock(mu_);
    while (true) {
        warm_up_cv_.wait(lock, [&] { return stopping_.load() || !warm_up_.empty(); });
        if (stopping_.load()) return;
        std::vector<std::string> topics;
        topics.swap(warm_up_);
        lock.unlock();
        // Without a topic: the locally known topics, i.e. every topic a handle exists for, so
        // one request serves all routes that registered meanwhile.
        const rd_kafka_metadata_t* metadata = nullptr;
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
        const auto give_up = Clock::now() + budget;
        while (!stopping_.load() && Clock::now() < give_up) {
            const auto slice_end = Clock::now() + kMetadataSlice;
            err = rd_kafka_metadata(rk_, 0, nullptr, &metadata,
                                    static_cast<int>(kMetadataSlice.count()));
            if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
            // Some failures return at once; wait out the slice rather than spin.
            std::unique_lock pause(mu_);
            warm_up_cv_.wait_until(pause, slice_end, [&] { return stopping_.load(); });
        }
        if (stopping_.load()) {
            if (metadata != nullptr) rd_kafka_metadata_destroy(metadata);
            return;
        }
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            log(SLUICE_LOG_WARN,
                "no metadata for topic '" + topics.front() + "'" +
                    (topics.size() > 1 ? " and " + std::to_string(topics.size() - 1) + " more"
                                       : std::string()) +
                    " within " + std::to_string(budget.count()) + " ms (" + error_text(err) +
                    "); producing anyway, librdkafka keeps trying");
        } else {
            for (int i = 0; i < metadata->topic_cnt; ++i) {
                const auto& t = metadata->topics[i];
                if (t.err == RD_KAFKA_RESP_ERR_NO_ERROR) continue;
                if (std::find(topics.begin(), topics.end(), t.topic) == topics.end()) continue;
                log(SLUICE_LOG_WARN, "topic '" + std::string(t.topic) + "': " + error_text(t.err));
            }
            rd_kafka_metadata_destroy(metadata);
        }
        lock.lock();
    }
}

std::size_t Producer::shutdown(milliseconds timeout) {
    if (shut_down_ || rk_ == nullptr) return 0;
    shut_down_ = true;
    const auto deadline = Clock::now() + timeout;
    {
        // Under the lock: warm_up() starts no metadata thread after this.
        std::lock_guard lock(mu_);
        stopping_.store(true, std::memory_order_release);
        warm_up_cv_.notify_all();
    }
    rd_kafka_yield(rk_);
    if (poller_.joinable()) poller_.join();
    if (metadata_.joinable()) metadata_.join();
    // From here this thread serves the delivery reports (flush polls).
    rd_kafka_flush(rk_, static_cast<int>(timeout.count()));
    const int left = rd_kafka_outq_len(rk_);
    if (left > 0) {
        rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        const auto drain_until = std::max(deadline, Clock::now()) + kPurgeDrain;
        while (rd_kafka_outq_len(rk_) > 0 && Clock::now() < drain_until) rd_kafka_poll(rk_, 10);
    }
    rd_kafka_destroy(rk_);
    rk_ = nullptr;
    --live_;
    {
        std::lock_guard lock(mu_);
        kept_.clear();
    }
    return left > 0 ? static_cast<std::size_t>(left) : 0;
}

bool Producer::log_enabled(sluice_log_level level) const {
    std::lock_guard lock(mu_);
    const sdk::Host* host = listeners_.empty() ? creator_ : &listeners_.front()->log_host();
    return host != nullptr && host->enabled(level);
}

void Producer::log(sluice_log_level level, const std::string& message) {
    std::lock_guard lock(mu_);
    // A shared producer's own lines go to one user, not to every route using it.
    const sdk::Host* host = listeners_.empty() ? creator_ : &listeners_.front()->log_host();
    if (host != nullptr) host->log(level, "kafka producer: " + message);
}

void Producer::on_delivery(rd_kafka_t* /*rk*/, const rd_kafka_message_t* message,
                           void* /*opaque*/) {
    if (message->_private != nullptr) DeliveryTracker::on_report(message->_private, message->err);
}

void Producer::on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    auto* self = static_cast<Producer*>(opaque);
    const auto code = static_cast<rd_kafka_resp_err_t>(err);
    if (code == RD_KAFKA_RESP_ERR__FATAL) {
        std::array<char, 512> buf{};
        const rd_kafka_resp_err_t cause = rd_kafka_fatal_error(rk, buf.data(), buf.size());
        const std::string why =
            std::string("fatal producer error ") + rd_kafka_err2name(cause) + ": " + buf.data();
        self->fatal_.store(true, std::memory_order_release);
        self->log(SLUICE_LOG_ERROR, why);
        std::lock_guard lock(self->mu_);
        self->fatal_reason_ = why;
        for (auto* l : self->listeners_) l->on_fatal(why);
        return;
    }
    bool repeated = false;
    {
        // librdkafka reports a connection error again on every reconnect attempt, with a
        // slightly different text each time; once per error code and quiet period is enough.
        std::lock_guard lock(self->mu_);
        const auto now = Clock::now();
        repeated = code == self->last_error_ && now - self->last_error_at_ < kErrorQuietPeriod;
        self->last_error_ = code;
        self->last_error_at_ = now;
    }
    self->log(repeated ? SLUICE_LOG_DEBUG : SLUICE_LOG_WARN,
              std::string(rd_kafka_err2name(code)) + ": " + (reason ? reason : ""));
    if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        std::lock_guard lock(self->mu_);
        for (auto* l : self->listeners_) l->on_brokers_down(reason ? reason : "all brokers down");
    }
}

void Producer::on_log(const rd_kafka_t* rk, int level, const char* facility, const char* buf) {
    auto* self = static_cast<Producer*>(rd_kafka_opaque(rk));
    if (self == nullptr) return;
    const std::string_view fac = facility ? facility : "";
    // Broker failures ("FAIL") arrive a second time through error_cb, which logs them.
    const sluice_log_level mapped = fac == "FAIL" ? SLUICE_LOG_DEBUG : map_level(level);
    if (!self->log_enabled(mapped)) return;
    self->log(mapped, std::string(fac) + ": " + (buf ? buf : ""));
}

std::shared_ptr<Producer> ProducerPool::acquire(const ClusterSettings& settings,
                                                ProducerListener& listener, const sdk::Host& host) {
    Registry& r = registry();
    const std::string key = settings.canonical_key();
    std::lock_guard lock(r.mu);
    Registry::Slot& slot = r.producers[key];
    std::shared_ptr<Producer> producer = slot.producer.lock();
    if (producer == nullptr || producer->is_fatal()) {
        // A producer that failed fatally stays with the routes that still hold it; routes
        // restarted by the supervisor get a fresh one.
        try {
            producer = std::make_shared<Producer>(settings, host);
        } catch (...) {
            if (slot.producer.expired()) r.producers.erase(key);
            throw;
        }
        slot.producer = producer;
        slot.raw = producer.get();
    }
    producer->add_listener(&listener);
    return producer;
}

std::size_t ProducerPool::release(std::shared_ptr<Producer> producer, ProducerListener& listener,
                                  milliseconds timeout) {
    if (producer == nullptr) return 0;
    Registry& r = registry();
    {
        // Every reference is taken and dropped under the registry lock, so use_count() is
        // exact here and two last users cannot both miss being last.
        std::lock_guard lock(r.mu);
        if (producer.use_count() > 1) {
            producer->remove_listener(&listener);
            producer.reset();
            return 0;
        }
        auto it = r.producers.find(producer->key());
        if (it != r.producers.end() && it->second.raw == producer.get()) r.producers.erase(it);
    }
    // The releasing user stays registered during shutdown so that librdkafka's last log
    // lines still reach a host.
    const std::size_t left = producer->shutdown(timeout);
    producer->remove_listener(&listener);
    producer.reset();
    return left;
}

}  // namespace sluice::plugins::kafka

// One librdkafka producer per distinct cluster configuration, shared by every route of the
// process that uses the same settings: librdkafka is built to multiplex many topics over one
// handle (one set of broker connections, one batching queue), and a producer per route would
// multiply connections and threads by the number of routes.
//
// A Producer owns its rd_kafka_t and a poll thread that serves delivery reports and error
// callbacks. Users (sink instances) register as listeners to hear about cluster-wide events;
// each write() tracks only its own messages (see DeliveryTracker).
#pragma once

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <sluice/sdk.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cluster_settings.hpp"
#include "delivery_tracker.hpp"

namespace sluice::plugins::kafka {

/// librdkafka's text for `err` with its name: "Local: Queue full (_QUEUE_FULL)".
std::string error_text(rd_kafka_resp_err_t err);

/// What a shared producer tells each of its users. THREAD: the producer's poll thread or a
/// librdkafka thread; implementations must not block and must not call back into the pool.
class ProducerListener {
public:
    virtual ~ProducerListener() = default;
    /// Where the producer's own log lines go while this listener is its first user.
    virtual const sdk::Host& log_host() const = 0;
    /// Every broker is unreachable.
    virtual void on_brokers_down(const std::string& reason) = 0;
    /// The producer is unusable (librdkafka fatal error); every write must fail.
    virtual void on_fatal(const std::string& reason) = 0;
};

class Producer {
public:
    /// Creates the handle and starts the poll thread; throws sdk::Fatal when librdkafka
    /// refuses the configuration.
    Producer(const ClusterSettings& settings, const sdk::Host& creator);
    ~Producer();
    Producer(const Producer&) = delete;
    Producer& operator=(const Producer&) = delete;

    rd_kafka_t* handle() const { return rk_; }
    const ClusterSettings& settings() const { return settings_; }
    /// ClusterSettings::canonical_key(); holds secrets, never log it.
    const std::string& key() const { return key_; }

    bool is_fatal() const { return fatal_.load(std::memory_order_acquire); }
    std::string fatal_reason() const;

    void add_listener(ProducerListener* listener);
    void remove_listener(ProducerListener* listener);

    /// Fetches metadata for `topic` (whose handle the caller created) soon, on the producer's
    /// own metadata thread: without it librdkafka 2.0.2 holds the first messages to a new
    /// topic for about a second, and asking on the caller's thread would hold a shared
    /// executor thread while the cluster is away. Requests arriving together are served by one
    /// metadata request for every topic the producer knows. THREAD: any. May block: no.
    void warm_up(const std::string& topic);

    /// Keeps a tracker whose write() gave up waiting alive until librdkafka has reported
    /// every message it still holds, i.e. until this producer is destroyed.
    void keep_until_destroyed(std::shared_ptr<DeliveryTracker> tracker);

    /// Flushes within `timeout`, stops the poll thread, purges what is left and destroys the
    /// handle. Returns the number of messages that were not delivered. Idempotent.
    std::size_t shutdown(std::chrono::milliseconds timeout);

    /// Producers alive in this process (a test hook).
    static std::size_t live_count() { return live_.load(); }

private:
    static void on_delivery(rd_kafka_t* rk, const rd_kafka_message_t* message, void* opaque);
    static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque);
    static void on_log(const rd_kafka_t* rk, int level, const char* facility, const char* buf);
    void log(sluice_log_level level, const std::string& message);
    bool log_enabled(sluice_log_level level) const;
    void poll_loop();
    void metadata_loop();

    ClusterSettings settings_;
    std::string key_;
    rd_kafka_t* rk_ = nullptr;
    std::thread poller_;
    std::thread metadata_;  // started with the first warm_up()
    std::atomic<bool> stopping_{false};
    std::atomic<bool> fatal_{false};
    bool shut_down_ = false;

    mutable std::mutex mu_;
    std::string fatal_reason_;
    std::vector<ProducerListener*> listeners_;
    std::vector<std::shared_ptr<DeliveryTracker>> kept_;
    std::vector<std::string> warm_up_;  // topics waiting for the metadata thread
    std::condition_variable warm_up_cv_;
    rd_kafka_resp_err_t last_error_ = RD_KAFKA_RESP_ERR_NO_ERROR;
    std::chrono::steady_clock::time_point last_error_at_;
    // Logs during construction, before any listener exists.
    const sdk::Host* creator_;

    static std::atomic<std::size_t> live_;
};

/// The process-wide registry of producers, keyed by ClusterSettings::canonical_key().
class ProducerPool {
public:
    /// The producer for `settings`, created when none is alive (or the live one failed
    /// fatally); `listener` is registered with it.
    static std::shared_ptr<Producer> acquire(const ClusterSettings& settings,
                                             ProducerListener& listener, const sdk::Host& host);

    /// Drops a reference taken with acquire(). The last user shuts the producer down within
    /// `timeout`; returns how many messages that shutdown could not deliver.
    static std::size_t release(std::shared_ptr<Producer> producer, ProducerListener& listener,
                               std::chrono::milliseconds timeout);
};

}  // namespace sluice::plugins::kafka

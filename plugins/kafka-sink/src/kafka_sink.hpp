// kafka-sink: produces each message to a Kafka topic with librdkafka and confirms a batch only
// once Kafka acknowledged every message (delivery reports). Routes with the same cluster
// settings share one producer (see producer_pool.hpp); each batch tracks only its own messages
// (see delivery_tracker.hpp). write() waits for its batch; submit() (pipelined delivery, ABI
// 1.2) returns at once and the batch's last delivery report completes it.
#pragma once

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sluice/sdk.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cluster_settings.hpp"
#include "delivery_tracker.hpp"
#include "producer_pool.hpp"

namespace sluice::plugins {

class KafkaSink : public sdk::Sink, private kafka::ProducerListener {
public:
    static sdk::Spec spec();
    static void validate(const sdk::Config& config, sdk::Diagnostics& diag);

    KafkaSink(const sdk::Config& config, sdk::Host& host);
    ~KafkaSink() override;
    KafkaSink(const KafkaSink&) = delete;
    KafkaSink& operator=(const KafkaSink&) = delete;

    void start() override;
    sdk::Status write(const sdk::BatchView& in, sdk::Emitter& results) override;
    /// Produces the batch and returns without waiting; its tracker completes `done` on the
    /// producer's poll thread with the last delivery report. Status::retry when librdkafka's
    /// local queue is full before anything of the batch was produced (a queue full midway
    /// rejects the rest as retry). THREAD: the route's executor. May block: no.
    sdk::Status submit(const sdk::BatchView& in, sdk::Completion done);
    /// Waits for the batches in flight until the deadline, then settles the rest (unconfirmed
    /// messages as retry): no completion comes after it returns.
    void stop(std::chrono::milliseconds deadline) override;
    /// THREAD: any host thread, while write() may run: ends its wait for delivery reports
    /// (the route is stopping past its drain deadline) and settles every submitted batch in
    /// flight at once; unconfirmed messages go back as retry.
    void interrupt();
    /// Delivery errors by librdkafka error, messages awaiting their delivery report, and the
    /// shared producer's queue. THREAD: any (the host's admin thread). Never blocks for long.
    void metrics(sdk::Metrics& out) const;

    /// Test hooks: librdkafka producers alive in the process; characters replaced in topic
    /// names by all instances of the process.
    static std::size_t producer_count();
    static std::uint64_t topic_chars_replaced_total() { return replaced_total_.load(); }

private:
    // Heterogeneous lookup: find a topic handle by the rendered buffer without a copy.
    struct StringHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const {
            return std::hash<std::string_view>{}(s);
        }
    };
    using TopicCache =
        std::unordered_map<std::string, rd_kafka_topic_t*, StringHash, std::equal_to<>>;

    // kafka::ProducerListener
    const sdk::Host& log_host() const override { return host_; }
    void on_brokers_down(const std::string& reason) override;
    void on_fatal(const std::string& reason) override;

    // What producing one message came to.
    enum class Produced { yes, rejected, queue_full, fatal };
    // What a batch came to, for the route's health.
    struct Summary {
        std::size_t delivered = 0;
        std::size_t retried = 0;
        std::string retry_reason;
    };
    using Why = kafka::DeliveryTracker::Why;

    // `Results` is where per-message rejects go: write()'s sdk::Emitter or submit()'s
    // sdk::Completion, which take the same reject(index, status, reason).
    template <class Results>
    rd_kafka_topic_t* topic_for(sdk::MessageView m, std::size_t index, Results& results);
    template <class Results>
    Produced produce(sdk::MessageView m, std::size_t index, rd_kafka_topic_t* topic,
                     kafka::DeliveryTracker& tracker, Results& results);
    template <class Results>
    Summary classify(const kafka::DeliveryTracker& tracker, Why why, Results& results) const;
    void report_health(const Summary& summary, std::size_t batch_size);
    void settle_submitted(const kafka::DeliveryTracker& tracker, sdk::Completion& done, Why why);
    // Copies the list of submitted batches in flight (pruning settled ones first).
    std::vector<std::shared_ptr<kafka::DeliveryTracker>> in_flight();
    void prune_in_flight();  // in_flight_mu_ held
    rd_kafka_topic_t* topic_handle(const std::string& name);
    bool make_legal(std::string& name);
    rd_kafka_headers_t* headers_for(sdk::MessageView m) const;
    void set_health(sdk::Status state, const std::string& reason);
    void abandon_tracker();
    void release_topics();
    std::string fatal_reason() const;
    [[noreturn]] void fail_fatal();

    // Configuration.
    kafka::ClusterSettings settings_;
    sdk::Template topic_;
    std::optional<sdk::Template> key_;
    char replacement_ = '_';
    bool all_headers_ = true;
    std::vector<std::string> header_names_;
    std::string route_;
    sdk::Host& host_;

    // Running state. The producer is shared; everything else belongs to this instance.
    std::shared_ptr<kafka::Producer> producer_;
    rd_kafka_topic_t* constant_topic_ = nullptr;
    TopicCache topics_;
    mutable std::mutex tracker_mu_;  // guards the tracker_ pointer against on_fatal()
    std::shared_ptr<kafka::DeliveryTracker> tracker_;
    // Trackers whose write() gave up waiting; librdkafka may still report into them.
    std::vector<std::shared_ptr<kafka::DeliveryTracker>> abandoned_;
    std::atomic<bool> fatal_{false};
    std::atomic<bool> interrupted_{false};  // interrupt() during the write() in progress
    mutable std::mutex fatal_mu_;
    std::string fatal_reason_;  // from on_fatal(), which runs under the producer's lock

    // Submitted batches whose trackers have not settled, or still await late reports, in
    // submission order. Guarded by in_flight_mu_; settling happens outside it.
    mutable std::mutex in_flight_mu_;
    std::vector<std::shared_ptr<kafka::DeliveryTracker>> in_flight_;

    // The producer's handle for metrics(): set by start(), cleared by stop() before the
    // producer may go, both under metrics_mu_.
    mutable std::mutex metrics_mu_;
    rd_kafka_t* metrics_handle_ = nullptr;
    // Delivery reports with an error, by error code (classify() runs on any thread).
    mutable std::mutex errors_mu_;
    mutable std::map<rd_kafka_resp_err_t, std::uint64_t> delivery_errors_;

    std::mutex health_mu_;
    sdk::Status health_ = sdk::Status::ok;

    std::uint64_t topic_chars_replaced_ = 0;
    static inline std::atomic<std::uint64_t> replaced_total_{0};
    std::unordered_set<std::string, StringHash, std::equal_to<>> warned_topics_;

    // Reused per message so that the hot path does not allocate.
    std::string topic_buf_;
    std::string key_buf_;
};

}  // namespace sluice::plugins

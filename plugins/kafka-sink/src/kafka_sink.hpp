// kafka-sink: produces each message to a Kafka topic with librdkafka and confirms a batch only
// once Kafka acknowledged every message (delivery reports). Routes with the same cluster
// settings share one producer (see producer_pool.hpp); each write() waits only for its own
// messages (see delivery_tracker.hpp).
#pragma once

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <cstdint>
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
    void stop(std::chrono::milliseconds deadline) override;
    /// THREAD: any host thread, while write() may run: ends its wait for delivery reports
    /// (the route is stopping past its drain deadline); unconfirmed messages go back as retry.
    void interrupt();

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

    rd_kafka_topic_t* topic_for(sdk::MessageView m, std::size_t index, sdk::Emitter& results);
    rd_kafka_topic_t* topic_handle(const std::string& name);
    bool make_legal(std::string& name);
    void produce(sdk::MessageView m, std::size_t index, rd_kafka_topic_t* topic,
                 std::chrono::steady_clock::time_point give_up, sdk::Emitter& results,
                 std::size_t& produced);
    rd_kafka_headers_t* headers_for(sdk::MessageView m) const;
    void set_health(sdk::Status state, const std::string& reason);
    void abandon_tracker();
    void release_topics();
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
    std::mutex tracker_mu_;  // guards the tracker_ pointer against on_fatal()
    std::shared_ptr<kafka::DeliveryTracker> tracker_;
    // Trackers whose write() gave up waiting; librdkafka may still report into them.
    std::vector<std::shared_ptr<kafka::DeliveryTracker>> abandoned_;
    std::atomic<bool> fatal_{false};
    std::atomic<bool> interrupted_{false};  // interrupt() during the write() in progress

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

// Test support: an in-process Kafka cluster (librdkafka's mock cluster, a real Kafka-protocol
// server on loopback) and an independent reader that returns everything written to a topic.
// Link the CMake target `sluice_test_mock_kafka`.
//
//   sluice::test::MockKafka kafka(3);
//   kafka.create_topic("occupancy.room", 4);
//   ... produce to kafka.bootstrap() ...
//   for (const auto& r : kafka.read_all("occupancy.room")) ...
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

struct rd_kafka_s;
struct rd_kafka_mock_cluster_s;

namespace sluice::test {

/// One record as a consumer sees it.
struct KafkaRecord {
    std::string topic;
    std::int32_t partition = 0;
    std::int64_t offset = 0;
    std::optional<std::string> key;  // nullopt: no key (unlike an empty key)
    std::string value;
    std::vector<std::pair<std::string, std::string>> headers;
    std::int64_t timestamp_ms = 0;
};

struct ReadOptions {
    /// Once every partition's end (as of the start of the read) is reached, the read ends when
    /// no new record arrived for this long.
    std::chrono::milliseconds idle{300};
    /// Upper bound for the whole read, whatever happens.
    std::chrono::milliseconds timeout{10000};
};

/// Reads every record of `topic` from the beginning with a fresh librdkafka consumer (no
/// consumer group, nothing committed), in partition order then offset order. A topic that does
/// not exist reads as empty. Throws std::runtime_error when the cluster cannot be reached.
std::vector<KafkaRecord> read_all(const std::string& bootstrap, const std::string& topic,
                                  ReadOptions options = {});

/// A librdkafka mock cluster with N brokers on loopback ports, alive as long as this object.
/// Topics that producers auto-create get 4 partitions; each partition keeps ~5 MiB.
class MockKafka {
public:
    /// Broker ids are 1..brokers. Throws std::runtime_error when the cluster cannot start.
    explicit MockKafka(int brokers = 1);
    ~MockKafka();
    MockKafka(const MockKafka&) = delete;
    MockKafka& operator=(const MockKafka&) = delete;

    /// "127.0.0.1:port,..." for bootstrap.servers.
    const std::string& bootstrap() const { return bootstrap_; }
    int brokers() const { return brokers_; }

    /// Creates `name` with `partitions` partitions (replication min(brokers, 3)). Throws.
    void create_topic(const std::string& name, int partitions);

    /// Takes broker `id` down (connections closed, new ones refused) or brings it back;
    /// without an id, all brokers. Leadership does not move. Throws on an unknown id.
    void set_down(std::int32_t id = kAllBrokers);
    void set_up(std::int32_t id = kAllBrokers);
    /// The next `n` Produce requests (any broker) fail with the Kafka error code `err`.
    void fail_produce(std::size_t n, int err);

    std::vector<KafkaRecord> read_all(const std::string& topic, ReadOptions options = {}) const {
        return test::read_all(bootstrap_, topic, options);
    }

    static constexpr std::int32_t kAllBrokers = -1;

private:
    int brokers_;
    rd_kafka_s* handle_ = nullptr;  // the mock cluster needs a client handle to live in
    rd_kafka_mock_cluster_s* cluster_ = nullptr;
    std::string bootstrap_;
};

}  // namespace sluice::test

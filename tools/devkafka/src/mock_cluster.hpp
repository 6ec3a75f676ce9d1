// Owns a librdkafka mock cluster and the rd_kafka_t handle it needs for bookkeeping.
#pragma once

#include <librdkafka/rdkafka.h>
// rdkafka_mock.h must come after rdkafka.h.
#include <librdkafka/rdkafka_mock.h>

#include <string>

namespace sluice::devkafka {

class MockCluster {
public:
    // Throws std::runtime_error when librdkafka cannot create the handle or the cluster.
    explicit MockCluster(int brokers);
    ~MockCluster();

    MockCluster(const MockCluster&) = delete;
    MockCluster& operator=(const MockCluster&) = delete;

    std::string bootstraps() const;

    // Each returns an empty string on success, otherwise librdkafka's error text.
    std::string create_topic(const std::string& name, int partitions);
    std::string set_all_brokers_down();
    std::string set_all_brokers_up();

private:
    int brokers_;
    rd_kafka_t* handle_ = nullptr;
    rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

}  // namespace sluice::devkafka

#include "mock_cluster.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <utility>

namespace sluice::devkafka {
namespace {

// Broker id -1 addresses every broker of the mock cluster at once.
constexpr int32_t kAllBrokers = -1;
// Kafka's usual production replication; the mock cannot replicate beyond its broker count.
constexpr int kMaxReplication = 3;

std::string error_text(rd_kafka_resp_err_t err) {
    return err == RD_KAFKA_RESP_ERR_NO_ERROR ? std::string() : std::string(rd_kafka_err2str(err));
}

}  // namespace

MockCluster::MockCluster(int brokers) : brokers_(brokers) {
    std::array<char, 512> errstr{};
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    // The handle only hosts the cluster and never connects anywhere; log level 4 (warning)
    // hides the notice that it has no bootstrap.servers, which would only confuse readers.
    for (const auto& [name, value] :
         {std::pair{"client.id", "sluice-devkafka"}, std::pair{"log_level", "4"}}) {
        if (rd_kafka_conf_set(conf, name, value, errstr.data(), errstr.size()) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            throw std::runtime_error(std::string("librdkafka configuration: ") + errstr.data());
        }
    }
    // rd_kafka_new takes ownership of conf only on success.
    handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr.data(), errstr.size());
    if (handle_ == nullptr) {
        rd_kafka_conf_destroy(conf);
        throw std::runtime_error(std::string("cannot create librdkafka handle: ") + errstr.data());
    }
    cluster_ = rd_kafka_mock_cluster_new(handle_, brokers);
    if (cluster_ == nullptr) {
        rd_kafka_destroy(handle_);
        throw std::runtime_error("cannot create the librdkafka mock cluster (see log above)");
    }
}

MockCluster::~MockCluster() {
    // The cluster refers to the handle, so it goes first.
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(handle_);
}

std::string MockCluster::bootstraps() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }

std::string MockCluster::create_topic(const std::string& name, int partitions) {
    return error_text(rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions,
                                                 std::min(brokers_, kMaxReplication)));
}

std::string MockCluster::set_all_brokers_down() {
    return error_text(rd_kafka_mock_broker_set_down(cluster_, kAllBrokers));
}

std::string MockCluster::set_all_brokers_up() {
    return error_text(rd_kafka_mock_broker_set_up(cluster_, kAllBrokers));
}

}  // namespace sluice::devkafka

#include "mock_kafka.hpp"

#include <librdkafka/rdkafka.h>
// rdkafka_mock.h must come after rdkafka.h.
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <array>
#include <map>
#include <stdexcept>

namespace sluice::test {

namespace {

using Clock = std::chrono::steady_clock;

// Test output should show the test's own failures, not librdkafka's notices about brokers
// the test took down on purpose.
void quiet_log(const rd_kafka_t*, int, const char*, const char*) {}

rd_kafka_conf_t* make_conf(std::initializer_list<std::pair<const char*, std::string>> settings) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    std::array<char, 512> errstr{};
    for (const auto& [name, value] : settings) {
        if (rd_kafka_conf_set(conf, name, value.c_str(), errstr.data(), errstr.size()) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            throw std::runtime_error(std::string("librdkafka configuration: ") + errstr.data());
        }
    }
    rd_kafka_conf_set_log_cb(conf, quiet_log);
    return conf;
}

rd_kafka_t* make_handle(rd_kafka_type_t type, rd_kafka_conf_t* conf) {
    std::array<char, 512> errstr{};
    rd_kafka_t* rk = rd_kafka_new(type, conf, errstr.data(), errstr.size());
    if (rk == nullptr) {
        rd_kafka_conf_destroy(conf);  // owned by rd_kafka_new only on success
        throw std::runtime_error(std::string("cannot create librdkafka handle: ") + errstr.data());
    }
    return rk;
}

void check(rd_kafka_resp_err_t err, const std::string& what) {
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw std::runtime_error(what + ": " + rd_kafka_err2str(err));
    }
}

// Owns a consumer handle and closes it however the read ends.
struct Consumer {
    rd_kafka_t* rk;
    ~Consumer() {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
};

KafkaRecord to_record(const rd_kafka_message_t& m, const std::string& topic) {
    KafkaRecord r;
    r.topic = topic;
    r.partition = m.partition;
    r.offset = m.offset;
    if (m.key != nullptr) r.key = std::string(static_cast<const char*>(m.key), m.key_len);
    if (m.payload != nullptr) r.value.assign(static_cast<const char*>(m.payload), m.len);
    rd_kafka_timestamp_type_t type{};
    r.timestamp_ms = rd_kafka_message_timestamp(&m, &type);
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(&m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name = nullptr;
        const void* value = nullptr;
        size_t size = 0;
        for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) ==
                           RD_KAFKA_RESP_ERR_NO_ERROR;
             ++i) {
            r.headers.emplace_back(
                name, value ? std::string(static_cast<const char*>(value), size) : std::string());
        }
    }
    return r;
}

}  // namespace

std::vector<KafkaRecord> read_all(const std::string& bootstrap, const std::string& topic,
                                  ReadOptions options) {
    const auto give_up = Clock::now() + options.timeout;
    const int timeout_ms = static_cast<int>(options.timeout.count());
    Consumer consumer{
        make_handle(RD_KAFKA_CONSUMER, make_conf({{"bootstrap.servers", bootstrap},
                                                  {"group.id", "sluice-test-reader"},
                                                  {"enable.auto.commit", "false"},
                                                  {"enable.partition.eof", "false"},
                                                  {"allow.auto.create.topics", "false"}}))};
    rd_kafka_t* rk = consumer.rk;

    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* metadata = nullptr;
    const rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &metadata, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    check(err, "metadata for topic '" + topic + "'");
    std::vector<std::int32_t> partitions;
    if (metadata->topic_cnt == 1 && metadata->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < metadata->topics[0].partition_cnt; ++i) {
            partitions.push_back(metadata->topics[0].partitions[i].id);
        }
    }
    rd_kafka_metadata_destroy(metadata);
    if (partitions.empty()) return {};

    // Where each partition ends now: the read is complete once it got that far and nothing
    // newer shows up for `idle`.
    std::map<std::int32_t, std::int64_t> end;
    for (auto p : partitions) {
        std::int64_t low = 0;
        std::int64_t high = 0;
        check(rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low, &high, timeout_ms),
              "watermarks of '" + topic + "'");
        if (high > low) end[p] = high;
    }

    rd_kafka_topic_partition_list_t* assignment =
        rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size()));
    for (auto p : partitions) {
        rd_kafka_topic_partition_list_add(assignment, topic.c_str(), p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    }
    const rd_kafka_resp_err_t assigned = rd_kafka_assign(rk, assignment);
    rd_kafka_topic_partition_list_destroy(assignment);
    check(assigned, "assign '" + topic + "'");

    std::vector<KafkaRecord> records;
    auto last_record = Clock::now();
    while (Clock::now() < give_up) {
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 50);
        if (m != nullptr) {
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                records.push_back(to_record(*m, topic));
                last_record = Clock::now();
                if (auto it = end.find(m->partition);
                    it != end.end() && m->offset + 1 >= it->second) {
                    end.erase(it);
                }
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        if (end.empty() && Clock::now() - last_record >= options.idle) break;
    }
    std::stable_sort(records.begin(), records.end(), [](const auto& a, const auto& b) {
        return a.partition != b.partition ? a.partition < b.partition : a.offset < b.offset;
    });
    return records;
}

MockKafka::MockKafka(int brokers) : brokers_(brokers) {
    // The handle only hosts the cluster; it never connects anywhere.
    handle_ = make_handle(RD_KAFKA_PRODUCER, make_conf({{"client.id", "sluice-test-mock"}}));
    cluster_ = rd_kafka_mock_cluster_new(handle_, brokers);
    if (cluster_ == nullptr) {
        rd_kafka_destroy(handle_);
        throw std::runtime_error("cannot create the librdkafka mock cluster");
    }
    bootstrap_ = rd_kafka_mock_cluster_bootstraps(cluster_);
}

MockKafka::~MockKafka() {
    // The cluster lives in the handle's threads, so it goes first.
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(handle_);
}

void MockKafka::create_topic(const std::string& name, int partitions) {
    check(rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, std::min(brokers_, 3)),
          "create topic '" + name + "'");
}

void MockKafka::set_down(std::int32_t id) {
    check(rd_kafka_mock_broker_set_down(cluster_, id), "broker down");
}

void MockKafka::set_up(std::int32_t id) {
    check(rd_kafka_mock_broker_set_up(cluster_, id), "broker up");
}

void MockKafka::fail_produce(std::size_t n, int err) {
    const std::vector<rd_kafka_resp_err_t> errors(n, static_cast<rd_kafka_resp_err_t>(err));
    constexpr std::int16_t kProduceApiKey = 0;  // the protocol's; not in the public headers
    rd_kafka_mock_push_request_errors_array(cluster_, kProduceApiKey, errors.size(), errors.data());
}

}  // namespace sluice::test

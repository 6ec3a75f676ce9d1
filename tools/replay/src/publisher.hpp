// Publishes over one paho async_client, keeping at most `max_inflight` publishes unconfirmed.
#pragma once

#include <mqtt/async_client.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace sluice::replay {

struct PublisherCounters {
    std::uint64_t sent = 0;          // accepted by the client library
    std::uint64_t acknowledged = 0;  // delivery token completed successfully
    std::uint64_t failed = 0;        // rejected by publish() or token completed with failure
};

class Publisher : private mqtt::iaction_listener, private mqtt::callback {
public:
    // Throws std::runtime_error naming the URL when the client cannot be created.
    Publisher(const std::string& url, const std::string& client_id, int qos, int max_inflight);
    ~Publisher() override;

    Publisher(const Publisher&) = delete;
    Publisher& operator=(const Publisher&) = delete;

    // Throws std::runtime_error naming the URL when the broker cannot be reached.
    void connect(std::chrono::seconds timeout);

    // Waits while the window is full, then hands the message to paho. Returns false (with
    // error() set) once the connection is lost or a publish has failed.
    bool publish(const std::string& topic, const std::string& payload);

    // Waits until every publish has completed; false if that did not happen within `timeout`
    // or the connection was lost first.
    bool drain(std::chrono::milliseconds timeout);

    void disconnect(std::chrono::milliseconds timeout);

    PublisherCounters counters() const;
    std::string error() const;

private:
    // Paho calls these on its own thread when a delivery token completes.
    void on_success(const mqtt::token& token) override;
    void on_failure(const mqtt::token& token) override;
    void connection_lost(const std::string& cause) override;

    void record_error(const std::string& message);  // requires mutex_

    std::string url_;
    int qos_;
    std::uint64_t max_inflight_;
    std::uint64_t low_watermark_;  // a full window is refilled once it has drained to this
    mqtt::async_client client_;

    mutable std::mutex mutex_;
    std::condition_variable completed_;
    std::uint64_t inflight_ = 0;
    int waiters_ = 0;
    bool broken_ = false;
    std::string error_;
    PublisherCounters counters_;
};

}  // namespace sluice::replay

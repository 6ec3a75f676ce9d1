#include "publisher.hpp"

#include <stdexcept>

namespace sluice::replay {
namespace {

// paho.mqtt.c refuses publishes once this many wait in its command queue (default 100). The
// window already bounds them, so the queue is sized to the window and never the limit.
mqtt::create_options create_options_for(int max_inflight) {
    mqtt::create_options options(MQTTVERSION_DEFAULT);
    options.set_max_buffered_messages(max_inflight);
    return options;
}

std::string describe(const mqtt::exception& e) {
    std::string text = e.what();
    return text.empty() ? "error code " + std::to_string(e.get_return_code()) : text;
}

}  // namespace

Publisher::Publisher(const std::string& url, const std::string& client_id, int qos,
                     int max_inflight) try
    : url_(url),
      qos_(qos),
      max_inflight_(static_cast<std::uint64_t>(max_inflight)),
      low_watermark_(max_inflight_ / 2),
      // No persistence: a replay that dies is simply started again.
      client_(url, client_id, create_options_for(max_inflight), nullptr) {
    client_.set_callback(*this);
} catch (const mqtt::exception& e) {
    throw std::runtime_error("cannot create an MQTT client for '" + url + "': " + describe(e));
}

Publisher::~Publisher() {
    // Paho must not call back into this object while its members are destroyed.
    client_.disable_callbacks();
}

void Publisher::connect(std::chrono::seconds timeout) {
    auto options = mqtt::connect_options_builder()
                       .clean_session(true)
                       .connect_timeout(timeout)
                       .keep_alive_interval(std::chrono::seconds(30))
                       .max_inflight(static_cast<int>(max_inflight_))
                       .finalize();
    try {
        const auto token = client_.connect(options);
        // paho bounds the TCP and MQTT handshake by connect_timeout; the margin covers DNS.
        if (!token->wait_for(timeout + std::chrono::seconds(5))) {
            throw std::runtime_error("cannot connect to the MQTT broker at " + url_ +
                                     ": no answer within " + std::to_string(timeout.count()) +
                                     " s");
        }
    } catch (const mqtt::exception& e) {
        throw std::runtime_error("cannot connect to the MQTT broker at " + url_ + ": " +
                                 describe(e));
    }
}

bool Publisher::publish(const std::string& topic, const std::string& payload) {
    {
        std::unique_lock lock(mutex_);
        if (inflight_ >= max_inflight_) {
            // Refill the window in batches: waking per acknowledgement would cost a pair of
            // context switches per message, more than the publish itself.
            ++waiters_;
            completed_.wait(lock, [&] { return broken_ || inflight_ <= low_watermark_; });
            --waiters_;
        }
        if (broken_) {
            return false;
        }
        // Counted before the call, so that a completion racing in never finds more
        // acknowledged messages than sent ones.
        ++inflight_;
        ++counters_.sent;
    }
    try {
        client_.publish(topic, payload.data(), payload.size(), qos_, false, nullptr, *this);
    } catch (const mqtt::exception& e) {
        const std::lock_guard lock(mutex_);
        --inflight_;
        --counters_.sent;
        ++counters_.failed;
        record_error("publish to '" + topic + "' failed: " + describe(e));
        return false;
    }
    return true;
}

bool Publisher::drain(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    ++waiters_;
    const bool done = completed_.wait_for(lock, timeout, [&] { return broken_ || inflight_ == 0; });
    --waiters_;
    if (done && inflight_ > 0) {
        return false;
    }
    if (!done) {
        record_error(std::to_string(inflight_) + " publish(es) still unconfirmed after " +
                     std::to_string(timeout.count()) + " ms");
    }
    return done;
}

void Publisher::disconnect(std::chrono::milliseconds timeout) {
    try {
        if (client_.is_connected()) {
            client_.disconnect(static_cast<int>(timeout.count()))->wait_for(timeout);
        }
    } catch (const mqtt::exception& e) {
        const std::lock_guard lock(mutex_);
        record_error("disconnect from " + url_ + " failed: " + describe(e));
    }
}

PublisherCounters Publisher::counters() const {
    const std::lock_guard lock(mutex_);
    return counters_;
}

std::string Publisher::error() const {
    const std::lock_guard lock(mutex_);
    return error_;
}

void Publisher::on_success(const mqtt::token& /*token*/) {
    bool wake = false;
    {
        const std::lock_guard lock(mutex_);
        --inflight_;
        ++counters_.acknowledged;
        wake = waiters_ > 0 && inflight_ <= low_watermark_;
    }
    if (wake) {
        completed_.notify_all();
    }
}

void Publisher::on_failure(const mqtt::token& token) {
    {
        const std::lock_guard lock(mutex_);
        --inflight_;
        ++counters_.failed;
        const int rc = token.get_return_code();
        record_error("publish to " + url_ + " failed: " + mqtt::exception::error_str(rc) +
                     " (paho code " + std::to_string(rc) + ")");
    }
    completed_.notify_all();
}

void Publisher::connection_lost(const std::string& cause) {
    {
        const std::lock_guard lock(mutex_);
        record_error("lost the connection to " + url_ + (cause.empty() ? "" : ": " + cause));
    }
    completed_.notify_all();
}

void Publisher::record_error(const std::string& message) {
    broken_ = true;
    // The first error is the cause; later ones are usually its consequences.
    if (error_.empty()) {
        error_ = message;
    }
}

}  // namespace sluice::replay

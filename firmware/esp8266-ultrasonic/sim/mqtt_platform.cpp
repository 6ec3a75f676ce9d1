#include "mqtt_platform.hpp"

#include <cstdio>

namespace sluice::firmware::sim {

namespace {

constexpr auto kConnectTimeout = std::chrono::seconds(5);
constexpr auto kAckTimeout = std::chrono::seconds(5);
constexpr auto kDrainTimeout = std::chrono::seconds(5);

// One mutex for all devices so lines from different threads never interleave.
std::mutex& stdout_mutex() {
    static std::mutex m;
    return m;
}

}  // namespace

mqtt_platform::mqtt_platform(const std::string& url, const std::string& client_id, int qos,
                             tank_model& tank, std::chrono::steady_clock::time_point epoch)
    : client_(url, client_id), client_id_(client_id), qos_(qos), tank_(tank), epoch_(epoch) {
    client_.set_message_callback([this](mqtt::const_message_ptr msg) {
        {
            std::lock_guard lock(mutex_);
            inbox_.push_back({msg->get_topic(), msg->to_string()});
        }
        arrived_.notify_one();
    });
}

mqtt_platform::~mqtt_platform() {
    // paho must not call back into a half-destroyed object.
    client_.set_message_callback(nullptr);
}

std::uint32_t mqtt_platform::now_ms() {
    const auto elapsed = std::chrono::steady_clock::now() - epoch_;
    // Wraps like Arduino's millis(); the core is written for that.
    return static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count());
}

std::uint32_t mqtt_platform::measure_echo_us() { return tank_.echo_us(now_ms()); }

bool mqtt_platform::connected() { return client_.is_connected(); }

bool mqtt_platform::connect(const char* will_topic, const char* will_payload) {
    auto options = mqtt::connect_options_builder()
                       .clean_session(true)
                       .keep_alive_interval(std::chrono::seconds(10))
                       .connect_timeout(kConnectTimeout)
                       .will(mqtt::message(will_topic, will_payload, 1, true))
                       .finalize();
    try {
        auto token = client_.connect(options);
        return token->wait_for(kConnectTimeout + std::chrono::seconds(1)) && client_.is_connected();
    } catch (const mqtt::exception& e) {
        log((client_id_ + " connect: " + e.what()).c_str());
        return false;
    }
}

bool mqtt_platform::subscribe(const char* topic) {
    try {
        return client_.subscribe(topic, 1)->wait_for(kAckTimeout);
    } catch (const mqtt::exception& e) {
        log((client_id_ + " subscribe: " + e.what()).c_str());
        return false;
    }
}

bool mqtt_platform::publish(const char* topic, const char* payload, std::size_t length,
                            bool retained) {
    try {
        // Not waited for: like the device, the simulator does not block its loop on acks;
        // disconnect() drains what is still in flight.
        client_.publish(topic, payload, length, qos_, retained);
        return true;
    } catch (const mqtt::exception& e) {
        log((client_id_ + " publish: " + e.what()).c_str());
        return false;
    }
}

void mqtt_platform::log(const char* line) {
    std::lock_guard lock(stdout_mutex());
    std::fputs(line, stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);  // the integration test reads this through a pipe, line by line
}

std::deque<inbound_message> mqtt_platform::wait_for_messages(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    arrived_.wait_for(lock, timeout, [this] { return !inbox_.empty(); });
    std::deque<inbound_message> out;
    out.swap(inbox_);
    return out;
}

void mqtt_platform::disconnect() {
    try {
        if (client_.is_connected()) {
            client_.disconnect(kDrainTimeout)->wait_for(kDrainTimeout + std::chrono::seconds(1));
        }
    } catch (const mqtt::exception& e) {
        log((client_id_ + " disconnect: " + e.what()).c_str());
    }
}

}  // namespace sluice::firmware::sim

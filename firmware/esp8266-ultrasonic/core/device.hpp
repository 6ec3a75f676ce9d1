// The device's behaviour, independent of the hardware: connect with a last will and back-off,
// sample the sensor into a median filter, publish readings, obey commands. The ESP8266 sketch
// and the host simulator only implement `platform`.
#pragma once

#include <stdint.h>
#include <string.h>  // size_t

#include "backoff.hpp"
#include "median_filter.hpp"
#include "topics.hpp"

namespace sluice::firmware {

// Everything the device needs from the outside world. Calls come from the thread (or loop())
// that calls device::tick(); nothing is called concurrently.
class platform {
public:
    virtual uint32_t now_ms() = 0;  // monotonic, wraps after ~49 days (handled)
    // Trigger a ping and return the echo pulse length; 0 when no echo came back in time.
    virtual uint32_t measure_echo_us() = 0;
    virtual float air_temperature_c() = 0;
    virtual int32_t rssi_dbm() = 0;
    virtual void set_led(bool on) = 0;

    virtual bool connected() = 0;
    // Connect with the will (topic, payload) set retained at QoS 1; blocking is fine.
    virtual bool connect(const char* will_topic, const char* will_payload) = 0;
    virtual bool subscribe(const char* topic) = 0;
    virtual bool publish(const char* topic, const char* payload, size_t length, bool retained) = 0;
    virtual void log(const char* line) = 0;

protected:
    // Never deleted through this interface, so no virtual destructor (and no operator delete
    // the ESP8266 toolchain would have to provide).
    ~platform() = default;
};

struct device_config {
    const char* device_id = nullptr;  // also the MQTT client id; must pass is_valid_device_id()
    uint32_t interval_ms = 5000;      // between published readings
    uint32_t reconnect_initial_ms = 1000;
    uint32_t reconnect_max_ms = 60000;
};

// Five samples are enough to outvote the HC-SR04's occasional stray echo.
inline constexpr uint8_t kFilterWindow = 5;
// The HC-SR04 datasheet asks for at least 60 ms between pings so one ping's late echo is not
// taken for the next one's.
inline constexpr uint32_t kMinSamplePeriodMs = 60;

enum class device_state : uint8_t { stopped, disconnected, online };

class device {
public:
    device(platform& p, random_source random, void* random_context);

    // False when the id or interval is invalid; the device then stays stopped.
    bool begin(const device_config& config);

    // Call as often as possible (loop()); it never blocks except inside platform calls.
    void tick();

    // A message arrived on a subscribed topic; anything but our command topic is ignored.
    void on_message(const char* topic, const char* payload, size_t length);

    // Before a deliberate disconnect: a clean disconnect does not fire the last will, so say
    // `offline` ourselves.
    void shutdown();

    const device_topics& topics() const { return topics_; }
    device_state state() const { return state_; }
    bool led_on() const { return led_on_; }
    uint32_t interval_ms() const { return interval_ms_; }
    uint32_t sequence() const { return sequence_; }
    uint32_t readings_published() const { return published_; }

private:
    uint32_t sample_period_ms() const;
    void try_connect(uint32_t now);
    void sample(uint32_t now);
    void report(uint32_t now);
    void emit_log();

    platform& platform_;
    random_source random_;
    void* random_context_;
    backoff backoff_;
    median_filter<kFilterWindow> filter_;
    device_topics topics_{};
    const char* device_id_ = "";
    device_state state_ = device_state::stopped;
    bool led_on_ = false;
    uint32_t interval_ms_ = 5000;
    uint32_t sequence_ = 0;
    uint32_t published_ = 0;
    uint32_t last_attempt_ms_ = 0;
    uint32_t retry_delay_ms_ = 0;
    uint32_t last_sample_ms_ = 0;
    uint32_t last_report_ms_ = 0;
    // Log lines are formatted here (callers snprintf into it, then emit_log()); a member rather
    // than a stack buffer keeps the ESP8266's 4 KiB stack free for the network code.
    char log_[128] = {};
};

}  // namespace sluice::firmware

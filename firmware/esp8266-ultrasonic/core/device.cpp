#include "device.hpp"

#include <stdio.h>

#include "command.hpp"
#include "distance.hpp"
#include "payload.hpp"

namespace sluice::firmware {

device::device(platform& p, random_source random, void* random_context)
    : platform_(p),
      random_(random),
      random_context_(random_context),
      backoff_(1000, 60000, random, random_context) {}

bool device::begin(const device_config& config) {
    if (!make_device_topics(config.device_id, &topics_)) return false;
    if (config.interval_ms < kMinIntervalMs || config.interval_ms > kMaxIntervalMs) return false;
    device_id_ = config.device_id;
    interval_ms_ = config.interval_ms;
    backoff_ =
        backoff(config.reconnect_initial_ms, config.reconnect_max_ms, random_, random_context_);
    led_on_ = false;
    platform_.set_led(false);
    filter_.reset();
    const uint32_t now = platform_.now_ms();
    last_attempt_ms_ = now;
    retry_delay_ms_ = 0;  // first attempt at once
    last_sample_ms_ = now - sample_period_ms();
    state_ = device_state::disconnected;
    return true;
}

uint32_t device::sample_period_ms() const {
    const uint32_t spread = interval_ms_ / kFilterWindow;
    return spread > kMinSamplePeriodMs ? spread : kMinSamplePeriodMs;
}

void device::tick() {
    if (state_ == device_state::stopped) return;
    uint32_t now = platform_.now_ms();
    if (state_ == device_state::online && !platform_.connected()) {
        state_ = device_state::disconnected;
        last_attempt_ms_ = now;
        retry_delay_ms_ = backoff_.next_delay_ms();
        snprintf(log_, sizeof log_, "%s disconnected, retry in %lu ms", device_id_,
                 static_cast<unsigned long>(retry_delay_ms_));
        emit_log();
    }
    if (state_ == device_state::disconnected && now - last_attempt_ms_ >= retry_delay_ms_) {
        try_connect(now);
        now = platform_.now_ms();  // connecting may have blocked for seconds
    }
    if (now - last_sample_ms_ >= sample_period_ms()) sample(now);
    if (state_ == device_state::online && now - last_report_ms_ >= interval_ms_) report(now);
}

void device::try_connect(uint32_t now) {
    last_attempt_ms_ = now;
    if (!platform_.connect(topics_.status, kStatusOffline)) {
        retry_delay_ms_ = backoff_.next_delay_ms();
        snprintf(log_, sizeof log_, "%s connect failed, retry in %lu ms", device_id_,
                 static_cast<unsigned long>(retry_delay_ms_));
        emit_log();
        return;
    }
    // Without the command topic the device would be unmanageable; try again later instead.
    if (!platform_.subscribe(topics_.command)) {
        retry_delay_ms_ = backoff_.next_delay_ms();
        snprintf(log_, sizeof log_, "%s subscribe failed, retry in %lu ms", device_id_,
                 static_cast<unsigned long>(retry_delay_ms_));
        emit_log();
        return;
    }
    platform_.publish(topics_.status, kStatusOnline, sizeof kStatusOnline - 1, true);
    backoff_.reset();
    state_ = device_state::online;
    // Report at once: whoever watches the status topic sees a reading right after `online`.
    last_report_ms_ = now - interval_ms_;
    snprintf(log_, sizeof log_, "%s online", device_id_);
    emit_log();
}

void device::sample(uint32_t now) {
    last_sample_ms_ = now;
    const uint32_t echo_us = platform_.measure_echo_us();
    filter_.push(distance_from_echo(echo_us, platform_.air_temperature_c()));
}

void device::report(uint32_t now) {
    last_report_ms_ = now;
    if (filter_.size() == 0) sample(now);
    reading r{};
    r.device_id = device_id_;
    r.sequence = ++sequence_;
    r.has_distance = filter_.median(&r.distance_cm);
    r.uptime_ms = now;
    r.rssi_dbm = platform_.rssi_dbm();
    r.led_on = led_on_;
    char payload[kPayloadCapacity];
    const size_t length = format_reading_json(r, payload, sizeof payload);
    if (length == 0) {
        snprintf(log_, sizeof log_, "%s reading %lu did not fit the payload buffer", device_id_,
                 static_cast<unsigned long>(r.sequence));
        emit_log();
        return;
    }
    if (platform_.publish(topics_.readings, payload, length, false)) {
        ++published_;
    } else {
        snprintf(log_, sizeof log_, "%s publish of reading %lu failed", device_id_,
                 static_cast<unsigned long>(r.sequence));
        emit_log();
    }
}

void device::on_message(const char* topic, const char* payload, size_t length) {
    if (state_ == device_state::stopped || topic == nullptr ||
        strcmp(topic, topics_.command) != 0) {
        return;
    }
    device_command cmd;
    const command_error error = parse_command(payload, length, &cmd);
    if (error == command_error::ok) {
        if (cmd.set_led) {
            led_on_ = cmd.led_on;
            platform_.set_led(led_on_);
            snprintf(log_, sizeof log_, "%s led %s", device_id_, led_on_ ? "on" : "off");
            emit_log();
        }
        if (cmd.set_interval) {
            interval_ms_ = cmd.interval_ms;
            snprintf(log_, sizeof log_, "%s interval %lu", device_id_,
                     static_cast<unsigned long>(interval_ms_));
            emit_log();
        }
    } else {
        snprintf(log_, sizeof log_, "%s command rejected: %s", device_id_, to_string(error));
        emit_log();
    }
    if (state_ != device_state::online) return;
    char ack[64];
    const size_t ack_length = format_ack_json(error, led_on_, interval_ms_, ack, sizeof ack);
    if (ack_length > 0) platform_.publish(topics_.ack, ack, ack_length, false);
}

void device::shutdown() {
    if (state_ == device_state::online && platform_.connected()) {
        platform_.publish(topics_.status, kStatusOffline, sizeof kStatusOffline - 1, true);
    }
    state_ = device_state::stopped;
}

void device::emit_log() { platform_.log(log_); }

}  // namespace sluice::firmware

#include "distance.hpp"

namespace sluice::firmware {

namespace {

float clamp_temperature(float celsius) {
    // NaN compares false everywhere; treat it as room temperature rather than poison the result.
    if (!(celsius == celsius)) return 20.0f;
    if (celsius < kMinAirTemperatureC) return kMinAirTemperatureC;
    if (celsius > kMaxAirTemperatureC) return kMaxAirTemperatureC;
    return celsius;
}

}  // namespace

float speed_of_sound_m_per_s(float air_temperature_c) {
    return 331.3f + 0.606f * clamp_temperature(air_temperature_c);
}

distance_reading distance_from_echo(uint32_t echo_us, float air_temperature_c) {
    if (echo_us == 0 || echo_us >= kEchoTimeoutUs) return {range_status::timeout, 0.0f};
    // m/s == 1e-4 cm/us; the echo travels there and back, hence the half.
    const float cm_per_us = speed_of_sound_m_per_s(air_temperature_c) * 1e-4f;
    const float cm = static_cast<float>(echo_us) * cm_per_us * 0.5f;
    if (cm < kMinRangeCm) return {range_status::too_close, cm};
    if (cm > kMaxRangeCm) return {range_status::too_far, cm};
    return {range_status::ok, cm};
}

uint32_t echo_us_for_distance(float cm, float air_temperature_c) {
    if (cm <= 0.0f) return 0;
    const float cm_per_us = speed_of_sound_m_per_s(air_temperature_c) * 1e-4f;
    const float us = 2.0f * cm / cm_per_us + 0.5f;
    if (us >= static_cast<float>(kEchoTimeoutUs)) return 0;  // what pulseIn() reports
    return static_cast<uint32_t>(us);
}

const char* to_string(range_status status) {
    switch (status) {
        case range_status::ok:
            return "ok";
        case range_status::too_close:
            return "too_close";
        case range_status::too_far:
            return "too_far";
        case range_status::timeout:
            return "timeout";
    }
    return "unknown";
}

}  // namespace sluice::firmware

// HC-SR04 echo time -> distance, with the speed of sound corrected for air temperature.
#pragma once

#include <stdint.h>

namespace sluice::firmware {

// The HC-SR04 datasheet promises 2 cm .. 400 cm; outside that band its echoes are unreliable
// (too close: the echo returns while the transmitter still rings; too far: noise).
inline constexpr float kMinRangeCm = 2.0f;
inline constexpr float kMaxRangeCm = 400.0f;

// 400 cm and back at -40 C (c = 307 m/s) takes ~26 ms; anything longer is no echo at all.
// Arduino's pulseIn() returns 0 when this timeout expires, so 0 also means "timeout".
inline constexpr uint32_t kEchoTimeoutUs = 30000;

// A broken temperature source must not produce a negative or absurd speed of sound.
inline constexpr float kMinAirTemperatureC = -40.0f;
inline constexpr float kMaxAirTemperatureC = 85.0f;

enum class range_status : uint8_t { ok, too_close, too_far, timeout };

struct distance_reading {
    range_status status;
    float cm;  // meaningful only when status == ok
};

// c = 331.3 + 0.606 * T m/s (T in degrees Celsius, clamped to the range above).
float speed_of_sound_m_per_s(float air_temperature_c);

distance_reading distance_from_echo(uint32_t echo_us, float air_temperature_c);

// The round-trip echo time an object at `cm` would produce; the simulator uses it to feed the
// same conversion the device runs.
uint32_t echo_us_for_distance(float cm, float air_temperature_c);

const char* to_string(range_status status);

inline bool is_valid(const distance_reading& reading) { return reading.status == range_status::ok; }

}  // namespace sluice::firmware

// Commands received on devices/<device>/cmd, in plain text (`led on`, `interval 5000`) or as a
// JSON object (`{"led":"on"}`, `{"interval_ms":5000}`, or both keys in one object).
#pragma once

#include <stdint.h>
#include <string.h>  // size_t

namespace sluice::firmware {

// The HC-SR04 needs ~60 ms between pings and the filter takes several per report, so faster
// reports would only repeat themselves; an hour is the longest silence that still tells an
// operator the device is alive.
inline constexpr uint32_t kMinIntervalMs = 100;
inline constexpr uint32_t kMaxIntervalMs = 3600000;
// Longer than any valid command; anything bigger is refused before it is looked at.
inline constexpr size_t kMaxCommandLength = 128;

enum class command_error : uint8_t {
    ok,
    empty,            // nothing but whitespace, or `{}`
    too_long,         // more than kMaxCommandLength bytes
    syntax,           // not `<word> <value>` and not a flat JSON object
    unknown_command,  // a word or JSON key this firmware does not know
    bad_value,        // known command, value of the wrong kind (`led maybe`, `interval 5s`)
    out_of_range,     // a number outside [kMinIntervalMs, kMaxIntervalMs]
};

struct device_command {
    bool set_led = false;
    bool led_on = false;
    bool set_interval = false;
    uint32_t interval_ms = 0;
};

// `payload` need not be NUL-terminated (MQTT payloads are not). On error `*out` is left empty,
// so a half-parsed JSON object never takes partial effect.
command_error parse_command(const char* payload, size_t length, device_command* out);

const char* to_string(command_error error);

}  // namespace sluice::firmware

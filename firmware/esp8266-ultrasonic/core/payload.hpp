// JSON payloads the device publishes, formatted into caller-provided fixed buffers.
#pragma once

#include <stdint.h>
#include <string.h>  // size_t

#include "command.hpp"

namespace sluice::firmware {

// Fits the longest reading (32-character id, every number at its widest) with room to spare,
// and stays inside PubSubClient's packet buffer together with the topic.
inline constexpr size_t kPayloadCapacity = 192;

struct reading {
    const char* device_id;  // must pass is_valid_device_id(): it is not escaped
    uint32_t sequence;
    bool has_distance;  // false -> "distance_cm":null,"error":"out_of_range"
    float distance_cm;
    uint32_t uptime_ms;
    int32_t rssi_dbm;
    bool led_on;
};

// Each returns the length written (without the NUL), or 0 when the payload did not fit or the
// device id is invalid; `out` then holds an empty string, never a truncated JSON document.
//
// {"device":"tank-1","seq":7,"distance_cm":123.4,"uptime_ms":5000,"rssi":-61,"led":false,
//  "firmware":"1.0.0"}
size_t format_reading_json(const reading& r, char* out, size_t out_size);

// Reply on devices/<device>/ack: the state after the command, or why it was refused.
// {"ok":true,"led":true,"interval_ms":5000}   {"ok":false,"error":"out_of_range"}
size_t format_ack_json(command_error error, bool led_on, uint32_t interval_ms, char* out,
                       size_t out_size);

}  // namespace sluice::firmware

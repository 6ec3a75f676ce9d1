// MQTT topic names of one device, built once at start-up into fixed buffers.
#pragma once

#include <string.h>  // size_t

namespace sluice::firmware {

// Device ids become topic levels, JSON strings and MQTT client ids, so they are restricted to
// characters that need no escaping in any of them: [A-Za-z0-9_-], 1..32 characters.
inline constexpr size_t kMaxDeviceIdLength = 32;
inline constexpr size_t kTopicCapacity = 64;

// Retained on the status topic: `online` after every connect, `offline` as the last will (and on
// a clean shutdown, which does not fire the will).
inline constexpr char kStatusOnline[] = "online";
inline constexpr char kStatusOffline[] = "offline";

struct device_topics {
    char readings[kTopicCapacity];  // sensors/distance/<device>
    char command[kTopicCapacity];   // devices/<device>/cmd
    char status[kTopicCapacity];    // devices/<device>/status
    char ack[kTopicCapacity];       // devices/<device>/ack  (reply to each command)
};

bool is_valid_device_id(const char* device_id);

// False (and `out` left with empty strings) when the id is invalid.
bool make_device_topics(const char* device_id, device_topics* out);

}  // namespace sluice::firmware

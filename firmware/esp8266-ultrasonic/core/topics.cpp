#include "topics.hpp"

#include <stdio.h>
#include <string.h>

namespace sluice::firmware {

namespace {

bool is_id_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

bool format_topic(char* out, const char* prefix, const char* device_id, const char* suffix) {
    const int n = snprintf(out, kTopicCapacity, "%s%s%s", prefix, device_id, suffix);
    return n > 0 && static_cast<size_t>(n) < kTopicCapacity;
}

}  // namespace

bool is_valid_device_id(const char* device_id) {
    if (device_id == nullptr) return false;
    size_t n = 0;
    for (; device_id[n] != '\0'; ++n) {
        if (n >= kMaxDeviceIdLength || !is_id_char(device_id[n])) return false;
    }
    return n > 0;
}

bool make_device_topics(const char* device_id, device_topics* out) {
    memset(out, 0, sizeof(*out));
    if (!is_valid_device_id(device_id)) return false;
    const bool ok = format_topic(out->readings, "sensors/distance/", device_id, "") &&
                    format_topic(out->command, "devices/", device_id, "/cmd") &&
                    format_topic(out->status, "devices/", device_id, "/status") &&
                    format_topic(out->ack, "devices/", device_id, "/ack");
    if (!ok) memset(out, 0, sizeof(*out));
    return ok;
}

}  // namespace sluice::firmware

#include "payload.hpp"

#include <stdio.h>

#include "topics.hpp"
#include "version.hpp"

namespace sluice::firmware {

namespace {

size_t finish(int n, char* out, size_t out_size) {
    if (n < 0 || static_cast<size_t>(n) >= out_size) {
        if (out_size > 0) out[0] = '\0';
        return 0;
    }
    return static_cast<size_t>(n);
}

}  // namespace

size_t format_reading_json(const reading& r, char* out, size_t out_size) {
    if (out == nullptr || out_size == 0) return 0;
    if (!is_valid_device_id(r.device_id)) {
        out[0] = '\0';
        return 0;
    }
    // Printed as integer tenths: the cores' printf float support varies (picolibc, newlib-nano
    // on the ESP8266), integers format the same everywhere and one decimal is the sensor's
    // real resolution (~3 mm).
    char number[24];
    const char* distance = "null,\"error\":\"out_of_range\"";
    if (r.has_distance && r.distance_cm >= 0.0f && r.distance_cm < 100000.0f) {
        const auto tenths = static_cast<unsigned long>(r.distance_cm * 10.0f + 0.5f);
        snprintf(number, sizeof number, "%lu.%lu", tenths / 10, tenths % 10);
        distance = number;
    }
    const int n = snprintf(out, out_size,
                           "{\"device\":\"%s\",\"seq\":%lu,\"distance_cm\":%s,\"uptime_ms\":%lu,"
                           "\"rssi\":%ld,\"led\":%s,\"firmware\":\"%s\"}",
                           r.device_id, static_cast<unsigned long>(r.sequence), distance,
                           static_cast<unsigned long>(r.uptime_ms), static_cast<long>(r.rssi_dbm),
                           r.led_on ? "true" : "false", kFirmwareVersion);
    return finish(n, out, out_size);
}

size_t format_ack_json(command_error error, bool led_on, uint32_t interval_ms, char* out,
                       size_t out_size) {
    if (out == nullptr || out_size == 0) return 0;
    int n = 0;
    if (error == command_error::ok) {
        n = snprintf(out, out_size, "{\"ok\":true,\"led\":%s,\"interval_ms\":%lu}",
                     led_on ? "true" : "false", static_cast<unsigned long>(interval_ms));
    } else {
        n = snprintf(out, out_size, "{\"ok\":false,\"error\":\"%s\"}", to_string(error));
    }
    return finish(n, out, out_size);
}

}  // namespace sluice::firmware

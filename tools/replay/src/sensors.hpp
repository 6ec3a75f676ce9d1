// Which CSV column is which sensor, and where its readings are published.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::replay {

struct Sensor {
    std::string_view column;  // CSV header name
    std::string_view kind;    // second topic level
    std::string_view node;    // third topic level
};

// The room's sensor nodes s1..s7 as the data set describes them: one MQTT message per
// sensor per CSV row.
inline constexpr std::array<Sensor, 16> kSensors{{
    {"S1_Temp", "temperature", "s1"},
    {"S2_Temp", "temperature", "s2"},
    {"S3_Temp", "temperature", "s3"},
    {"S4_Temp", "temperature", "s4"},
    {"S1_Light", "light", "s1"},
    {"S2_Light", "light", "s2"},
    {"S3_Light", "light", "s3"},
    {"S4_Light", "light", "s4"},
    {"S1_Sound", "sound", "s1"},
    {"S2_Sound", "sound", "s2"},
    {"S3_Sound", "sound", "s3"},
    {"S4_Sound", "sound", "s4"},
    {"S5_CO2", "co2", "s5"},
    {"S5_CO2_Slope", "co2_slope", "s5"},
    {"S6_PIR", "pir", "s6"},
    {"S7_PIR", "pir", "s7"},
}};

inline constexpr std::size_t kSensorCount = kSensors.size();

// Topics in kSensors order: "<prefix>/<kind>/<node>" ("<kind>/<node>" for an empty prefix).
std::vector<std::string> sensor_topics(const std::string& prefix);

}  // namespace sluice::replay

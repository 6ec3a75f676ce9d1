// The JSON a sensor node publishes for one reading.
#pragma once

#include <string>
#include <string_view>

namespace sluice::replay {

// {"ts":"2017-12-22T10:49:41","value":24.94}: `value` is already a valid JSON number (checked
// when the CSV is read) and is copied verbatim so that no digit of the data set changes.
inline std::string make_payload(std::string_view ts, std::string_view value) {
    constexpr std::string_view kHead = R"({"ts":")";
    constexpr std::string_view kMiddle = R"(","value":)";
    std::string payload;
    payload.reserve(kHead.size() + ts.size() + kMiddle.size() + value.size() + 1);
    payload.append(kHead).append(ts).append(kMiddle).append(value).append("}");
    return payload;
}

}  // namespace sluice::replay

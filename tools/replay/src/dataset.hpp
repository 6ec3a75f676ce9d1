// Reads the occupancy CSV into validated rows, skipping (and reporting) malformed ones.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sensors.hpp"

namespace sluice::replay {

struct Row {
    std::uint64_t line = 0;                        // 1-based line in the file
    std::string ts;                                // ISO 8601, e.g. 2017-12-22T10:49:41
    std::chrono::sys_seconds time;                 // the same instant, for pacing
    std::array<std::string, kSensorCount> values;  // CSV text, in kSensors order
};

struct Dataset {
    std::vector<Row> rows;
    std::uint64_t rows_read = 0;  // data rows looked at, malformed ones included
    std::uint64_t malformed = 0;
};

// Called once per skipped row with its line number and the reason.
using MalformedRowHandler = std::function<void(std::uint64_t line, const std::string& reason)>;

// Reads at most `max_rows` data rows (blank lines do not count). Throws std::runtime_error
// naming the file when it cannot be read or its header lacks a required column.
Dataset load_dataset(const std::string& path, std::optional<std::uint64_t> max_rows,
                     const MalformedRowHandler& on_malformed);

// True when `text` is a number by JSON's grammar, so it can be copied into a payload as is.
bool is_json_number(std::string_view text);

}  // namespace sluice::replay

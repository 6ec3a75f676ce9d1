// What a replay did: printed for people at the end, written as JSON for scripts.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "publisher.hpp"

namespace sluice::replay {

struct Summary {
    std::string url;
    std::string file;
    int qos = 1;
    std::string pace;
    std::uint64_t rows_read = 0;
    std::uint64_t rows_published = 0;
    std::uint64_t rows_malformed = 0;
    PublisherCounters counters;
    double elapsed_s = 0.0;
    bool interrupted = false;
    std::string error;                                          // empty when all went well
    std::vector<std::pair<std::string, std::uint64_t>> topics;  // messages sent per topic

    double rate() const;
};

std::string format_summary(const Summary& summary);

// Writes the JSON to a temporary file beside `path`, then renames it, so a reader never
// sees half a file. Returns an empty string on success, otherwise the reason.
std::string write_summary_json(const Summary& summary, const std::string& path);

}  // namespace sluice::replay

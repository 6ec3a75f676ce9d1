// The progress line on stderr while the replay runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "publisher.hpp"

namespace sluice::replay {

class Progress {
public:
    // On a terminal the line is redrawn in place a few times per second; in a log (pipe or
    // file) a plain line is written only every few seconds and only when something changed.
    Progress(bool terminal, std::uint64_t total_rows, int qos);

    void update(std::uint64_t rows_done, const PublisherCounters& counters, bool force = false);

    // Ends the in-place line so that what follows starts on a fresh line.
    void finish();

private:
    std::string render(std::uint64_t rows_done, const PublisherCounters& counters) const;

    bool terminal_;
    std::uint64_t total_rows_;
    int qos_;
    std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point last_;
    std::uint64_t last_sent_ = 0;
    std::uint64_t last_acknowledged_ = 0;
    std::size_t last_width_ = 0;
    bool drawn_ = false;
};

}  // namespace sluice::replay

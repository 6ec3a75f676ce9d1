// What keeps the log readable and safe whatever the data: names, topics and payload excerpts
// from devices and manifests are escaped before they reach a terminal or a log file (an escape
// sequence or invalid UTF-8 must never be written raw), and a flood of identical lines is cut
// down to a few, with a count of what was left out.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <sluice/sdk/text.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sluice::log {

/// escape_text, valid_utf8, invalid_utf8_at: see sluice/sdk/text.hpp (plugins use them too).
using sdk::text::escape_text;
using sdk::text::invalid_utf8_at;
using sdk::text::valid_utf8;

/// Decides which of many identical lines (same scope, level and text) are written: the first
/// `burst` of each window, then nothing until the window ends; the first line written after
/// that says how many were left out. Thread-safe; the lock is held only to update a counter.
class FloodLimiter {
public:
    using Clock = std::chrono::steady_clock;
    FloodLimiter(std::size_t burst, Clock::duration window, std::size_t max_keys = 4096);

    struct Decision {
        bool write = true;
        std::uint64_t suppressed = 0;  // identical lines left out before this one
    };
    Decision decide(std::string_view key, Clock::time_point now);
    /// Keys with lines left out and not reported yet (at shutdown): key and count.
    std::vector<std::pair<std::string, std::uint64_t>> take_suppressed();

private:
    struct Entry {
        Clock::time_point window_start;
        std::size_t in_window = 0;
        std::uint64_t suppressed = 0;
    };
    const std::size_t burst_;
    const Clock::duration window_;
    const std::size_t max_keys_;
    std::mutex mu_;
    std::unordered_map<std::string, Entry> entries_;
};

}  // namespace sluice::log

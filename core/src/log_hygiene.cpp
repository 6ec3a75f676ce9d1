#include "sluice/core/log_hygiene.hpp"

#include <utility>

namespace sluice::log {

FloodLimiter::FloodLimiter(std::size_t burst, Clock::duration window, std::size_t max_keys)
    : burst_(burst), window_(window), max_keys_(max_keys) {}

FloodLimiter::Decision FloodLimiter::decide(std::string_view key, Clock::time_point now) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(std::string(key));
    if (it == entries_.end()) {
        if (entries_.size() >= max_keys_) {
            // Forget windows that are over and reported; a flood of distinct lines is not
            // limited by this (each is written once).
            std::erase_if(entries_, [&](const auto& e) {
                return e.second.suppressed == 0 && now - e.second.window_start >= window_;
            });
            if (entries_.size() >= max_keys_) return {};
        }
        entries_.emplace(std::string(key), Entry{now, 1, 0});
        return {};
    }
    Entry& e = it->second;
    if (now - e.window_start >= window_) {
        const std::uint64_t left_out = e.suppressed;
        e = Entry{now, 1, 0};
        return {true, left_out};
    }
    if (e.in_window < burst_) {
        ++e.in_window;
        return {};
    }
    ++e.suppressed;
    return {false, 0};
}

std::vector<std::pair<std::string, std::uint64_t>> FloodLimiter::take_suppressed() {
    std::lock_guard lock(mu_);
    std::vector<std::pair<std::string, std::uint64_t>> out;
    for (auto& [key, e] : entries_) {
        if (e.suppressed > 0) out.emplace_back(key, std::exchange(e.suppressed, 0));
    }
    return out;
}

}  // namespace sluice::log

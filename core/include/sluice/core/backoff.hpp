// Time helpers every part of a route uses: wall-clock milliseconds for message timestamps, and
// jittered back-off delays so that routes failing together do not retry in lockstep.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace sluice {

inline std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// `ms` with ±20 % jitter.
inline std::chrono::milliseconds jittered(std::uint32_t ms) {
    thread_local std::minstd_rand rng{std::random_device{}()};
    std::uniform_real_distribution<double> d(0.8, 1.2);
    return std::chrono::milliseconds(static_cast<std::int64_t>(ms * d(rng)));
}

}  // namespace sluice

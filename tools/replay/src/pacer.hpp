// Spaces publishes like the CSV timestamps, scaled by the --pace factor.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>

#include "options.hpp"

namespace sluice::replay {

class Pacer {
public:
    explicit Pacer(Pace pace) : pace_(pace) {}

    // Blocks until a row stamped `time` is due. The schedule is anchored at the first row
    // and computed from absolute offsets, so sleep overshoot never accumulates. Calls `tick`
    // at least every kTickInterval while waiting; returns false if `stop` became true.
    bool wait_until_due(std::chrono::sys_seconds time, const std::atomic<bool>& stop,
                        const std::function<void()>& tick);

    static constexpr std::chrono::milliseconds kTickInterval{200};

private:
    Pace pace_;
    std::optional<std::chrono::sys_seconds> first_time_;
    std::chrono::steady_clock::time_point first_due_;
};

}  // namespace sluice::replay

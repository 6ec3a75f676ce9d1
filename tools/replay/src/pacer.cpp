#include "pacer.hpp"

#include <algorithm>
#include <thread>

namespace sluice::replay {

bool Pacer::wait_until_due(std::chrono::sys_seconds time, const std::atomic<bool>& stop,
                           const std::function<void()>& tick) {
    using namespace std::chrono;
    if (pace_.mode == Pace::Mode::kMax) {
        return !stop.load();
    }
    if (!first_time_) {
        first_time_ = time;
        first_due_ = steady_clock::now();
        return !stop.load();
    }
    // Rows stamped earlier than the first one (out of order) are due at once.
    const duration<double> offset = (time - *first_time_) / pace_.factor;
    const auto due =
        first_due_ + duration_cast<steady_clock::duration>(std::max(offset, offset.zero()));
    while (!stop.load()) {
        const auto now = steady_clock::now();
        if (now >= due) {
            return true;
        }
        std::this_thread::sleep_for(std::min<steady_clock::duration>(due - now, kTickInterval));
        tick();
    }
    return false;
}

}  // namespace sluice::replay

#include "sluice/core/runtime/memory_release.hpp"

#include <malloc.h>

#include <atomic>
#include <chrono>

namespace sluice::memory {
namespace {

// Below this, what is free is not worth a walk over the arenas.
constexpr std::uint64_t kMinReleased = 1u << 20;
constexpr auto kMinInterval = std::chrono::seconds(1);

std::atomic<std::uint64_t> pending{0};
std::atomic<std::int64_t> last_trim_ns{0};
std::atomic<std::uint64_t> trim_count{0};

}  // namespace

void released(std::uint64_t bytes) {
    if (pending.fetch_add(bytes, std::memory_order_relaxed) + bytes < kMinReleased) return;
    const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
    std::int64_t last = last_trim_ns.load(std::memory_order_relaxed);
    const std::int64_t interval = std::chrono::nanoseconds(kMinInterval).count();
    if (last != 0 && now - last < interval) return;
    // One thread trims; the others go on.
    if (!last_trim_ns.compare_exchange_strong(last, now, std::memory_order_relaxed)) return;
    pending.store(0, std::memory_order_relaxed);
    ::malloc_trim(0);
    trim_count.fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t trims() { return trim_count.load(std::memory_order_relaxed); }

}  // namespace sluice::memory

// Memory that routes gave back after a burst goes back to the operating system too. Freeing a
// burst's arenas returns them to glibc's allocator, which keeps the pages of its per-thread
// arenas for reuse: RSS would stay at the burst's peak. malloc_trim(0) hands free pages back
// (madvise), at a cost of a walk over every arena, so it runs only once enough was freed, and
// not more often than kMinInterval.
#pragma once

#include <cstdint>

namespace sluice::memory {

/// A route freed `bytes` of heap (its arenas after a burst). THREAD: any; never blocks: the
/// trim, when due, runs on the calling thread (a pool thread, between slices).
void released(std::uint64_t bytes);

/// How often the process trimmed so far (tests, metrics).
std::uint64_t trims();

}  // namespace sluice::memory

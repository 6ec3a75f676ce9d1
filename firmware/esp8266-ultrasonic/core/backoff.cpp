#include "backoff.hpp"

namespace sluice::firmware {

backoff::backoff(uint32_t initial_ms, uint32_t max_ms, random_source random, void* random_context)
    : initial_ms_(initial_ms == 0 ? 1 : initial_ms),
      max_ms_(max_ms < initial_ms_ ? initial_ms_ : max_ms),
      random_(random),
      random_context_(random_context) {}

uint32_t backoff::current_base_ms() const {
    // Double step by step instead of shifting so the cap is applied before anything overflows.
    uint32_t base = initial_ms_;
    for (uint32_t i = 0; i < steps_ && base < max_ms_; ++i) {
        base = base > max_ms_ / 2 ? max_ms_ : base * 2;
    }
    return base < max_ms_ ? base : max_ms_;
}

uint32_t backoff::next_delay_ms() {
    const uint32_t base = current_base_ms();
    // Once the cap is reached the counter stops, so it cannot wrap after years offline.
    if (base < max_ms_) ++steps_;
    const uint32_t half = base / 2;
    const uint32_t span = base - half;  // at most 2^31, so span + 1 cannot overflow
    const uint32_t r = random_ != nullptr ? random_(random_context_) : 0;
    return half + r % (span + 1);
}

}  // namespace sluice::firmware

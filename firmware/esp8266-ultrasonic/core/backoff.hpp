// Reconnect back-off: exponential growth with a cap and jitter, so a fleet of devices that lost
// the broker together does not reconnect together. The random source is supplied by the caller
// (hardware RNG on the ESP8266, a seeded generator in tests and the simulator).
#pragma once

#include <stdint.h>

namespace sluice::firmware {

// Returns a uniformly distributed 32-bit value; `context` is passed through untouched.
using random_source = uint32_t (*)(void* context);

class backoff {
public:
    backoff(uint32_t initial_ms, uint32_t max_ms, random_source random, void* random_context);

    // Delay before the next attempt: base = min(max, initial * 2^steps), jittered uniformly
    // into [base/2, base] ("equal jitter": never hammers the broker, never waits past the cap).
    uint32_t next_delay_ms();

    // After a successful connection the next outage starts from the initial delay again.
    void reset() { steps_ = 0; }

    // Doublings so far; it stops growing once the cap is reached.
    uint32_t steps() const { return steps_; }
    uint32_t current_base_ms() const;

private:
    uint32_t initial_ms_;
    uint32_t max_ms_;
    random_source random_;
    void* random_context_;
    uint32_t steps_ = 0;
};

// Small deterministic generator (Marsaglia xorshift32) for the simulator and tests; the state
// must be non-zero.
struct xorshift32 {
    uint32_t state;
    uint32_t next() {
        uint32_t x = state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        state = x;
        return x;
    }
    static uint32_t source(void* self) { return static_cast<xorshift32*>(self)->next(); }
};

}  // namespace sluice::firmware

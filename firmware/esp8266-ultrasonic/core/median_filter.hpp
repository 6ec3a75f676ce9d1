// Median over the last N readings. Out-of-range readings occupy a slot (so a sensor that stops
// answering ages its old good values out instead of repeating them forever) but never vote.
#pragma once

#include <stdint.h>

#include "distance.hpp"

namespace sluice::firmware {

template <uint8_t Capacity>
class median_filter {
    static_assert(Capacity > 0, "median_filter needs at least one slot");

public:
    void push(const distance_reading& reading) {
        valid_[next_] = is_valid(reading);
        values_[next_] = reading.cm;
        next_ = static_cast<uint8_t>((next_ + 1) % Capacity);
        if (size_ < Capacity) ++size_;
    }

    // False when the window holds no valid reading; otherwise the median of the valid ones
    // (the mean of the two middle values for an even count).
    bool median(float* out) const {
        float sorted[Capacity];
        uint8_t n = 0;
        for (uint8_t i = 0; i < size_; ++i) {
            if (!valid_[i]) continue;
            // Insertion sort: N is a handful, and it needs neither <algorithm> nor a heap.
            uint8_t j = n;
            while (j > 0 && sorted[j - 1] > values_[i]) {
                sorted[j] = sorted[j - 1];
                --j;
            }
            sorted[j] = values_[i];
            ++n;
        }
        if (n == 0) return false;
        if (n % 2 == 1) {
            *out = sorted[n / 2];
        } else {
            *out = (sorted[n / 2 - 1] + sorted[n / 2]) * 0.5f;
        }
        return true;
    }

    uint8_t size() const { return size_; }

    uint8_t valid_count() const {
        uint8_t n = 0;
        for (uint8_t i = 0; i < size_; ++i) n = static_cast<uint8_t>(n + (valid_[i] ? 1 : 0));
        return n;
    }

    static constexpr uint8_t capacity() { return Capacity; }

    void reset() {
        size_ = 0;
        next_ = 0;
    }

private:
    float values_[Capacity] = {};
    bool valid_[Capacity] = {};
    uint8_t next_ = 0;
    uint8_t size_ = 0;
};

}  // namespace sluice::firmware

// Per-write bookkeeping of delivery reports. Each produced message carries a pointer to its
// Entry as librdkafka's message opaque; the producer's poll thread records the outcome there
// and the write() that produced the batch waits until every report is in.
//
// A shared producer serves several routes, so a tracker only ever sees its own messages: the
// opaque leads straight to the tracker that produced it, never to a lookup by route.
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace sluice::plugins::kafka {

class DeliveryTracker {
public:
    using Clock = std::chrono::steady_clock;

    struct Entry {
        DeliveryTracker* owner = nullptr;
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
        bool produced = false;  // written by the producing thread only, before producev
        bool reported = false;  // guarded by the owner's mutex
    };

    DeliveryTracker() = default;
    DeliveryTracker(const DeliveryTracker&) = delete;
    DeliveryTracker& operator=(const DeliveryTracker&) = delete;

    /// Prepares `n` entries. Only while nothing is outstanding: librdkafka may still hold
    /// pointers into the entries otherwise.
    void reset(std::size_t n);

    /// The opaque for message `i`; marks it as produced.
    void* opaque(std::size_t i) {
        entries_[i].produced = true;
        return &entries_[i];
    }
    /// The producev for message `i` failed: no report will come for it.
    void not_produced(std::size_t i) { entries_[i].produced = false; }

    /// Called once after producing: `n` reports are awaited (some may already be in).
    void expect(std::size_t n);

    /// Records a delivery report. THREAD: the producer's poll thread (or whoever polls).
    static void on_report(void* opaque, rd_kafka_resp_err_t err);

    /// Waits until every expected report arrived, interrupt() was called or `deadline`
    /// passed. Returns true when nothing is outstanding.
    bool wait_until(Clock::time_point deadline);

    /// Waits until at least one report arrives (room in librdkafka's queue), or `timeout`.
    void wait_for_progress(std::chrono::milliseconds timeout);

    /// Ends a wait early (fatal producer error).
    void interrupt();

    std::size_t outstanding() const;

    /// Result of entry `i`, valid once reported.
    struct Outcome {
        bool produced;
        bool reported;
        rd_kafka_resp_err_t err;
    };
    Outcome outcome(std::size_t i) const;

private:
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<Entry> entries_;
    // Signed: reports may arrive before expect() adds the batch's count.
    std::int64_t outstanding_ = 0;
    int progress_waiters_ = 0;
    bool interrupted_ = false;
};

}  // namespace sluice::plugins::kafka

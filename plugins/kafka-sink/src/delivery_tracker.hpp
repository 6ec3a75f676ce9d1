// Per-batch bookkeeping of delivery reports. Each produced message carries a pointer to its
// Entry as librdkafka's message opaque; the producer's poll thread records the outcome there.
// write() waits on a tracker until every report is in; a submitted batch (pipelined delivery)
// has its own tracker that settles itself: the last report, or an interrupt, stop or fatal
// error, runs its settle function once, which classifies the outcomes and completes the batch.
//
// A shared producer serves several routes, so a tracker only ever sees its own messages: the
// opaque leads straight to the tracker that produced it, never to a lookup by route.
//
// Lifetime: librdkafka holds raw pointers into the entries until it reported every produced
// message, so a tracker with outstanding() > 0 must be kept alive (by its sink, then by the
// producer until it is destroyed: Producer::keep_until_destroyed).
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <sluice/sdk.hpp>
#include <string>
#include <vector>

namespace sluice::plugins::kafka {

class DeliveryTracker {
public:
    using Clock = std::chrono::steady_clock;

    /// Why a batch is settled; decides what its unreported messages become.
    enum class Why {
        reported,     // every report is in
        timed_out,    // write() stopped waiting after the delivery timeout
        interrupted,  // the route is stopping past its drain deadline (interrupt())
        stopped,      // stop() reached its deadline
        fatal         // the producer failed fatally
    };

    /// Classifies the outcomes and finishes `done`; runs once, on whichever thread settles
    /// (the poll thread, the submitting thread, or interrupt()/stop()/a fatal error's caller),
    /// with no lock of the tracker held.
    using SettleFn = std::function<void(const DeliveryTracker&, sdk::Completion&, Why)>;

    struct Entry {
        DeliveryTracker* owner = nullptr;
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
        bool produced = false;  // written by the producing thread only, before producev
        bool reported = false;  // guarded by the owner's mutex
    };

    DeliveryTracker() = default;
    /// A tracker for one submitted batch of `n` messages, settled through `settle` once it
    /// has its completion (expect()).
    DeliveryTracker(std::size_t n, SettleFn settle);
    DeliveryTracker(const DeliveryTracker&) = delete;
    DeliveryTracker& operator=(const DeliveryTracker&) = delete;

    /// Prepares `n` entries (write()'s reused tracker). Only while nothing is outstanding:
    /// librdkafka may still hold pointers into the entries otherwise.
    void reset(std::size_t n);
    std::size_t size() const { return entries_.size(); }

    /// The opaque for message `i`; marks it as produced.
    void* opaque(std::size_t i) {
        entries_[i].produced = true;
        return &entries_[i];
    }
    /// The producev for message `i` failed: no report will come for it.
    void not_produced(std::size_t i) { entries_[i].produced = false; }

    /// Called once after producing: `n` reports are awaited (some may already be in).
    void expect(std::size_t n) { expect(n, sdk::Completion()); }
    /// The same for a submitted batch, which gets the completion it finishes here and may
    /// settle right away, on the producing thread.
    void expect(std::size_t n, sdk::Completion done);

    /// Records a delivery report. THREAD: the producer's poll thread (or whoever polls).
    static void on_report(void* opaque, rd_kafka_resp_err_t err);

    /// Waits until every expected report arrived, interrupt() was called or `deadline`
    /// passed. Returns true when nothing is outstanding.
    bool wait_until(Clock::time_point deadline);

    /// Waits until at least one report arrives (room in librdkafka's queue), or `timeout`.
    void wait_for_progress(std::chrono::milliseconds timeout);

    /// Ends a wait early (fatal producer error).
    void interrupt();

    /// Submitted batches: settles now for `why` unless it is settled already (or settling on
    /// another thread); while the batch is still being produced, it settles at expect().
    /// THREAD: any. May block: no (the settle function runs here, and does not wait).
    void settle(Why why);
    /// Waits until the settle function has returned, or `deadline`. True when it has.
    bool wait_settled(Clock::time_point deadline);
    /// The settle function has returned; late reports may still be outstanding().
    bool settled() const;
    /// For an error message: why the batch is not settled ("still being produced", "its
    /// settle function is running", ...).
    std::string unsettled_reason() const;

    std::size_t outstanding() const;

    /// Result of entry `i`, valid once reported.
    struct Outcome {
        bool produced;
        bool reported;
        rd_kafka_resp_err_t err;
    };
    Outcome outcome(std::size_t i) const;

private:
    // `mu_` held: true when the caller is the one to settle; it then gets what settling needs.
    bool take_settle(sdk::Completion& done, SettleFn& fn);
    // Outside the lock: runs the settle function and marks the tracker settled.
    void run_settle(sdk::Completion done, const SettleFn& fn, Why why);

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<Entry> entries_;
    // Signed: reports may arrive before expect() adds the batch's count.
    std::int64_t outstanding_ = 0;
    int progress_waiters_ = 0;
    bool interrupted_ = false;

    // Submitted batches only.
    sdk::Completion done_;
    SettleFn settle_;
    bool producing_ = false;  // a submitted batch between construction and expect()
    bool settle_started_ = false;
    bool settle_done_ = false;
    bool deferred_ = false;  // settle() came while producing
    Why deferred_why_ = Why::reported;
};

}  // namespace sluice::plugins::kafka

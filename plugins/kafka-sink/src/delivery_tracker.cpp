#include "delivery_tracker.hpp"

#include <utility>

namespace sluice::plugins::kafka {

DeliveryTracker::DeliveryTracker(std::size_t n, SettleFn settle)
    : entries_(n, Entry{this}), settle_(std::move(settle)), producing_(true) {}

void DeliveryTracker::reset(std::size_t n) {
    std::lock_guard lock(mu_);
    entries_.assign(n, Entry{this});
    outstanding_ = 0;
    interrupted_ = false;
}

bool DeliveryTracker::take_settle(sdk::Completion& done, SettleFn& fn) {
    if (!settle_ || settle_started_) return false;
    settle_started_ = true;
    done = std::move(done_);
    fn = std::move(settle_);
    return true;
}

void DeliveryTracker::run_settle(sdk::Completion done, const SettleFn& fn, Why why) {
    // Often on librdkafka's poll thread: nothing may unwind into its C callback.
    try {
        fn(*this, done, why);
    } catch (...) {
        done.complete(sdk::Status::retry, "could not classify the batch's delivery reports");
    }
    done.complete();  // does nothing when the settle function finished it, as it should
    std::lock_guard lock(mu_);
    settle_done_ = true;
    cv_.notify_all();
}

void DeliveryTracker::expect(std::size_t n, sdk::Completion completion) {
    sdk::Completion done;
    SettleFn fn;
    Why why = Why::reported;
    {
        std::lock_guard lock(mu_);
        if (settle_) done_ = std::move(completion);
        outstanding_ += static_cast<std::int64_t>(n);
        producing_ = false;
        if (outstanding_ == 0) cv_.notify_all();
        if (!(outstanding_ == 0 || deferred_) || !take_settle(done, fn)) return;
        if (deferred_) why = deferred_why_;
    }
    run_settle(std::move(done), fn, why);
}

void DeliveryTracker::on_report(void* opaque, rd_kafka_resp_err_t err) {
    auto* entry = static_cast<Entry*>(opaque);
    DeliveryTracker& self = *entry->owner;
    sdk::Completion done;
    SettleFn fn;
    {
        // Everything happens under the lock, including the notify: once it is released the
        // waiting write() may return and the tracker may be reused or freed. A submitted
        // batch's tracker stays alive until its settle function has run (see settled()).
        std::lock_guard lock(self.mu_);
        entry->err = err;
        entry->reported = true;
        --self.outstanding_;
        if (self.outstanding_ == 0 || self.progress_waiters_ > 0) self.cv_.notify_all();
        if (self.outstanding_ != 0 || self.producing_ || !self.take_settle(done, fn)) return;
    }
    self.run_settle(std::move(done), fn, Why::reported);
}

void DeliveryTracker::settle(Why why) {
    sdk::Completion done;
    SettleFn fn;
    {
        std::lock_guard lock(mu_);
        if (producing_) {
            if (!deferred_) {
                deferred_ = true;
                deferred_why_ = why;
            }
            return;
        }
        if (!take_settle(done, fn)) return;
    }
    run_settle(std::move(done), fn, why);
}

bool DeliveryTracker::wait_settled(Clock::time_point deadline) {
    std::unique_lock lock(mu_);
    return cv_.wait_until(lock, deadline, [&] { return settle_done_; });
}

std::string DeliveryTracker::unsettled_reason() const {
    std::lock_guard lock(mu_);
    if (settle_done_) return "settled";
    if (producing_) return "its batch is still being produced";
    if (settle_started_) return "its settle function has not returned";
    return std::to_string(outstanding_) + " delivery reports outstanding";
}

bool DeliveryTracker::settled() const {
    std::lock_guard lock(mu_);
    return settle_done_;
}

bool DeliveryTracker::wait_until(Clock::time_point deadline) {
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, deadline, [&] { return outstanding_ == 0 || interrupted_; });
    return outstanding_ == 0;
}

void DeliveryTracker::wait_for_progress(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    ++progress_waiters_;
    cv_.wait_for(lock, timeout);
    --progress_waiters_;
}

void DeliveryTracker::interrupt() {
    std::lock_guard lock(mu_);
    interrupted_ = true;
    cv_.notify_all();
}

std::size_t DeliveryTracker::outstanding() const {
    std::lock_guard lock(mu_);
    return outstanding_ > 0 ? static_cast<std::size_t>(outstanding_) : 0;
}

DeliveryTracker::Outcome DeliveryTracker::outcome(std::size_t i) const {
    std::lock_guard lock(mu_);
    const Entry& e = entries_[i];
    return {e.produced, e.reported, e.err};
}

}  // namespace sluice::plugins::kafka

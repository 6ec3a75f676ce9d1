#include "delivery_tracker.hpp"

namespace sluice::plugins::kafka {

void DeliveryTracker::reset(std::size_t n) {
    std::lock_guard lock(mu_);
    entries_.assign(n, Entry{this});
    outstanding_ = 0;
    interrupted_ = false;
}

void DeliveryTracker::expect(std::size_t n) {
    std::lock_guard lock(mu_);
    outstanding_ += static_cast<std::int64_t>(n);
    if (outstanding_ == 0) cv_.notify_all();
}

void DeliveryTracker::on_report(void* opaque, rd_kafka_resp_err_t err) {
    auto* entry = static_cast<Entry*>(opaque);
    DeliveryTracker& self = *entry->owner;
    // Everything happens under the lock, including the notify: once it is released the
    // waiting write() may return and the tracker may be reused or freed.
    std::lock_guard lock(self.mu_);
    entry->err = err;
    entry->reported = true;
    --self.outstanding_;
    if (self.outstanding_ == 0 || self.progress_waiters_ > 0) self.cv_.notify_all();
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

#include "sluice/core/route_queue.hpp"

namespace sluice {

RouteQueue::RouteQueue(std::size_t capacity, std::size_t batch_size, bool drop_when_full)
    : capacity_(capacity), batch_size_(batch_size), drop_when_full_(drop_when_full) {}

RouteQueue::Push RouteQueue::push(const sluice_message& m) {
    std::unique_lock lock(mu_);
    const bool own_thread = std::this_thread::get_id() == consumer_;
    while (count_ >= capacity_ && !unbounded_ && !closed_ && !own_thread) {
        if (drop_when_full_) return Push::dropped;
        not_full_.wait(lock);
    }
    if (closed_) return Push::closed;
    filling_.append(m);
    ++count_;
    if (filling_.size() >= batch_size_) {
        ready_.push_back(std::move(filling_));
        if (spare_.empty()) {
            filling_ = MessageArena();
        } else {
            filling_ = std::move(spare_.back());
            spare_.pop_back();
        }
    }
    lock.unlock();
    not_empty_.notify_one();
    return Push::ok;
}

bool RouteQueue::take(MessageArena& out, std::chrono::milliseconds wait) {
    std::unique_lock lock(mu_);
    not_empty_.wait_for(lock, wait, [this] { return count_ > 0 || closed_ || woken_; });
    woken_ = false;
    if (count_ == 0) return false;
    out.clear();
    if (!ready_.empty()) {
        out.swap(ready_.front());  // the queue keeps `out`'s old buffers for reuse
        spare_.push_back(std::move(ready_.front()));
        ready_.pop_front();
    } else {
        out.swap(filling_);
    }
    count_ -= out.size();
    lock.unlock();
    not_full_.notify_all();
    return true;
}

void RouteQueue::set_unbounded(bool unbounded) {
    {
        std::lock_guard lock(mu_);
        unbounded_ = unbounded;
    }
    not_full_.notify_all();
}

void RouteQueue::set_consumer(std::thread::id id) {
    std::lock_guard lock(mu_);
    consumer_ = id;
}

void RouteQueue::close() {
    {
        std::lock_guard lock(mu_);
        closed_ = true;
    }
    not_full_.notify_all();
    not_empty_.notify_all();
}

void RouteQueue::wake() {
    {
        std::lock_guard lock(mu_);
        woken_ = true;
    }
    not_empty_.notify_all();
}

std::size_t RouteQueue::size() const {
    std::lock_guard lock(mu_);
    return count_;
}

}  // namespace sluice

#include "sluice/core/runtime/executor.hpp"

#include <algorithm>

namespace sluice {

namespace {

// Spare threads at most, whatever is stuck: a process whose plugin calls all hang is broken
// anyway, and threads are not free.
constexpr unsigned kMaxSpares = 32;

}  // namespace

Executor::Executor(unsigned threads, std::chrono::milliseconds overdue)
    : base_(threads != 0 ? threads : std::max(2u, std::thread::hardware_concurrency())),
      overdue_(overdue) {
    std::lock_guard lock(mu_);
    for (unsigned i = 0; i < base_; ++i) start_worker();
    watchdog_ = std::thread([this] { watch(); });
}

Executor::~Executor() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    work_cv_.notify_all();
    watch_cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
    std::vector<std::unique_ptr<Worker>> workers;
    {
        std::lock_guard lock(mu_);
        workers.swap(workers_);
    }
    for (auto& w : workers) {
        if (w->thread.joinable()) w->thread.join();
    }
}

void Executor::start_worker() {
    // Finished spares are joined here, so the list does not grow with every stuck call.
    std::erase_if(workers_, [](const std::unique_ptr<Worker>& w) {
        if (!w->exited) return false;
        if (w->thread.joinable()) w->thread.join();  // it has left work(): returns at once
        return true;
    });
    auto w = std::make_unique<Worker>();
    Worker* raw = w.get();
    ++live_;
    w->thread = std::thread([this, raw] { work(raw); });
    workers_.push_back(std::move(w));
}

std::shared_ptr<Executor::Slot> Executor::add(Task& task) { return std::make_shared<Slot>(task); }

void Executor::push_ready(Slot& slot) {
    if (slot.removed) return;
    if (slot.running) {
        slot.again = true;
        return;
    }
    if (slot.queued) return;
    slot.queued = true;
    ready_.push_back(&slot);
    work_cv_.notify_one();
}

void Executor::schedule(Slot& slot) {
    std::lock_guard lock(mu_);
    push_ready(slot);
}

void Executor::schedule_at(Slot& slot, Clock::time_point when) {
    std::lock_guard lock(mu_);
    if (slot.removed) return;
    if (slot.timer_armed && slot.timer_at <= when) return;
    const bool earliest = timers_.empty() || when < timers_.top().when;
    slot.timer_armed = true;
    slot.timer_at = when;
    timers_.push({when, slot.shared_from_this(), ++slot.timer_generation});
    // Idle workers sleep until the earliest timer: a new earliest one must shorten that.
    if (earliest) work_cv_.notify_one();
}

void Executor::fire_due_timers(Clock::time_point now) {
    while (!timers_.empty() && timers_.top().when <= now) {
        const Timer t = timers_.top();
        timers_.pop();
        if (t.slot->removed) continue;
        // A timer replaced by an earlier one, or of a removed task, is skipped.
        if (t.generation != t.slot->timer_generation || !t.slot->timer_armed) continue;
        t.slot->timer_armed = false;
        push_ready(*t.slot);
    }
}

void Executor::remove(Slot& slot) {
    std::unique_lock lock(mu_);
    slot.removed = true;
    slot.again = false;
    if (slot.queued) {
        ready_.erase(std::remove(ready_.begin(), ready_.end(), &slot), ready_.end());
        slot.queued = false;
    }
    // Its timer entries stay in the heap until they come due (they own the slot's memory, not
    // the task); a new generation disowns them.
    slot.timer_armed = false;
    ++slot.timer_generation;
    done_cv_.wait(lock, [&] { return !slot.running && slot.watching == 0; });
}

unsigned Executor::threads() const {
    std::lock_guard lock(mu_);
    return live_;
}

std::uint64_t Executor::slices() const {
    std::lock_guard lock(mu_);
    return slices_;
}

void Executor::work(Worker* self) {
    std::unique_lock lock(mu_);
    while (!stopping_) {
        fire_due_timers(Clock::now());
        if (ready_.empty()) {
            if (timers_.empty()) {
                work_cv_.wait(lock);
            } else {
                // A copy: wait_until reads its argument while the lock is released, and the
                // heap may change meanwhile.
                const Clock::time_point next = timers_.top().when;
                work_cv_.wait_until(lock, next);
            }
            continue;
        }
        Slot* slot = ready_.front();
        ready_.pop_front();
        slot->queued = false;
        slot->running = true;
        self->running = slot;
        self->since = Clock::now();
        self->next_report = self->since + overdue_;
        ++slices_;
        // Only a watchdog asleep for want of slices needs the news: waking it at every start
        // would cost a context switch per message when messages arrive one at a time.
        if (busy_++ == 0 && watch_idle_) watch_cv_.notify_one();
        lock.unlock();
        slot->task->run_slice();
        lock.lock();
        --busy_;
        self->running = nullptr;
        slot->running = false;
        if (self->spare_lent) {
            self->spare_lent = false;
            --stuck_;
        }
        if (slot->again && !slot->removed) {
            slot->again = false;
            slot->queued = true;
            ready_.push_back(slot);
        }
        done_cv_.notify_all();
        // The pool lent a spare while this thread was stuck: one of them leaves now.
        if (live_ > base_ + stuck_) break;
    }
    --live_;
    self->exited = true;
}

void Executor::watch() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
        if (busy_ == 0) {
            // Nothing runs: nothing can be overdue, and an idle process has no reason to wake.
            watch_idle_ = true;
            watch_cv_.wait(lock, [this] { return stopping_ || busy_ > 0; });
            watch_idle_ = false;
            continue;
        }
        const auto check_at = Clock::now() + overdue_ / 2;
        watch_cv_.wait_until(lock, check_at, [&] { return stopping_; });
        if (stopping_) break;
        const auto now = Clock::now();
        std::vector<std::pair<Slot*, std::chrono::milliseconds>> due;
        unsigned spares = 0;
        for (auto& w : workers_) {
            if (w->running == nullptr || now < w->next_report) continue;
            w->next_report = now + overdue_;
            if (!w->spare_lent && stuck_ < kMaxSpares) {
                w->spare_lent = true;
                ++stuck_;
                ++spares;
            }
            ++w->running->watching;
            due.emplace_back(w->running,
                             std::chrono::duration_cast<std::chrono::milliseconds>(now - w->since));
        }
        // Not inside the loop: starting a worker changes workers_.
        for (unsigned i = 0; i < spares; ++i) start_worker();
        if (due.empty()) continue;
        lock.unlock();
        for (auto& [slot, elapsed] : due) slot->task->on_overdue(elapsed);
        lock.lock();
        for (auto& [slot, elapsed] : due) --slot->watching;
        done_cv_.notify_all();
    }
}

}  // namespace sluice

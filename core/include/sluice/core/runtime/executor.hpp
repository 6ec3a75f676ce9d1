// The fixed pool every route runs on. A route is a task: a strand whose slices never run two
// at once, scheduled when it has something to do (input arrived, a timer is due, a completion
// came in, stop was asked) and otherwise costing nothing: no thread, no wake-up, no polling.
// A slice does a bounded amount of work (one batch) and re-schedules itself at the back of the
// queue, so a busy route cannot starve the others.
//
// Plugin calls may still block (a sink that waits for its destination, a stop with a
// deadline). A watchdog notices a slice that runs long, tells its task (which may fail the
// route and interrupt the call) and lends the pool a spare thread, so that one stuck call holds
// only its own route, never the pool. Spare threads end once the stuck slice returns.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace sluice {

class Executor {
public:
    using Clock = std::chrono::steady_clock;

    class Task {
    public:
        virtual ~Task() = default;
        /// One slice of work. THREAD: a pool thread; never two at once for one task.
        virtual void run_slice() = 0;
        /// The current slice has run for `elapsed`. THREAD: the watchdog; while the slice is
        /// still running. Must not block.
        virtual void on_overdue(std::chrono::milliseconds /*elapsed*/) {}
    };

    /// A task's place in the executor; owned by the task's owner.
    class Slot;

    /// `threads` 0: one per core, at least 2. A slice running longer than `overdue` gets a
    /// spare thread lent to the pool and is reported to its task every `overdue` after that.
    explicit Executor(unsigned threads = 0,
                      std::chrono::milliseconds overdue = std::chrono::milliseconds(1000));
    ~Executor();
    Executor(const Executor&) = delete;
    Executor& operator=(const Executor&) = delete;

    std::shared_ptr<Slot> add(Task& task);
    /// Runs a slice of the task soon. ANY thread; holds a short lock only, never waits for a
    /// slice. A task scheduled while its slice runs gets one more slice after it.
    void schedule(Slot& slot);
    /// Runs a slice at `when` at the latest (earlier if scheduled meanwhile). ANY thread.
    void schedule_at(Slot& slot, Clock::time_point when);
    /// No slice runs after this returns; waits for one in progress. Not from the task's own
    /// slice.
    void remove(Slot& slot);

    /// Pool threads now (the fixed ones plus spares lent while slices are stuck).
    unsigned threads() const;
    unsigned base_threads() const { return base_; }
    /// Slices run so far (an idle process runs none).
    std::uint64_t slices() const;

private:
    struct Timer {
        Clock::time_point when;
        std::shared_ptr<Slot> slot;  // keeps a removed slot's memory until its timer is popped
        std::uint64_t generation;
        bool operator>(const Timer& o) const { return when > o.when; }
    };
    struct Worker {
        std::thread thread;
        Slot* running = nullptr;          // guarded by mu_
        Clock::time_point since{};        // guarded by mu_
        Clock::time_point next_report{};  // guarded by mu_
        bool spare_lent = false;          // guarded by mu_
        bool exited = false;              // guarded by mu_
    };
    void work(Worker* self);
    void watch();
    void push_ready(Slot& slot);                  // mu_ held
    void fire_due_timers(Clock::time_point now);  // mu_ held
    void start_worker();                          // mu_ held

    const unsigned base_;
    const std::chrono::milliseconds overdue_;
    mutable std::mutex mu_;
    std::condition_variable work_cv_;
    std::condition_variable done_cv_;   // a slice ended (remove() waits on it)
    std::condition_variable watch_cv_;  // a slice started (the watchdog waits for one)
    std::deque<Slot*> ready_;
    std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
    std::vector<std::unique_ptr<Worker>> workers_;
    unsigned live_ = 0;   // workers in work()
    unsigned stuck_ = 0;  // workers whose slice was lent a spare
    unsigned busy_ = 0;   // workers inside a slice
    bool watch_idle_ = false;  // the watchdog sleeps until a slice starts
    std::uint64_t slices_ = 0;
    bool stopping_ = false;
    std::thread watchdog_;
};

class Executor::Slot : public std::enable_shared_from_this<Executor::Slot> {
public:
    explicit Slot(Task& t) : task(&t) {}

private:
    friend class Executor;
    Task* task;
    bool queued = false;
    bool running = false;
    bool again = false;
    bool removed = false;
    int watching = 0;  // the watchdog is calling on_overdue
    bool timer_armed = false;
    Clock::time_point timer_at{};
    std::uint64_t timer_generation = 0;
};

}  // namespace sluice

// A route's bounded queue between its source (any thread) and its worker. Messages are
// copied into batch-sized arenas that are recycled, so a steady stream does not allocate.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "sluice/core/message_arena.hpp"

namespace sluice {

class RouteQueue {
public:
    enum class Push { ok, dropped, closed };

    RouteQueue(std::size_t capacity, std::size_t batch_size, bool drop_when_full);

    /// Copies `m` in. With a full queue: waits for room, or drops when so configured.
    Push push(const sluice_message& m);
    /// Moves up to one batch of messages into `out` (which should be empty), waiting up to
    /// `wait` for the first. Returns false when nothing came.
    bool take(MessageArena& out, std::chrono::milliseconds wait);

    /// While set, pushes never wait or drop: used while a route tears its stages down, so a
    /// source blocked on a full queue can return and be stopped without losing its message.
    void set_unbounded(bool unbounded);
    /// The worker's thread: a push from it never waits (a source emitting during start()
    /// would otherwise wait for room only that thread can make).
    void set_consumer(std::thread::id id);
    /// Pushes fail with Push::closed from now on; waiting pushers wake up.
    void close();
    /// Wakes a waiting take() (e.g. after end of input).
    void wake();
    std::size_t size() const;

private:
    mutable std::mutex mu_;
    std::condition_variable not_empty_;
    std::condition_variable not_full_;
    std::deque<MessageArena> ready_;
    MessageArena filling_;
    std::vector<MessageArena> spare_;
    std::size_t count_ = 0;
    const std::size_t capacity_;
    const std::size_t batch_size_;
    const bool drop_when_full_;
    bool unbounded_ = false;
    bool closed_ = false;
    bool woken_ = false;
    std::thread::id consumer_;
};

}  // namespace sluice

// One thread that runs the connection state machines of every mqtt-source instance of the
// process: 10,000 routes must not need 10,000 threads. It is created with the first instance
// and ends with the last one.
//
// A machine is woken on the driver's thread when something it waits for may have happened (a
// wake() from paho's callbacks or a host thread, its timer, a connect slot granted by the
// pacer); it then looks at its own state and either acts or waits again. Wakes coalesce: a
// machine woken twice before it runs runs once. An idle machine costs nothing: no timer, no
// polling.
//
// wake() may be called from paho's receive thread, which serves every connection of the
// process: it only takes the driver's lock, which is held for queue operations only, never
// while a machine runs, logs or calls paho.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "connect_pacer.hpp"

namespace sluice::plugins::mqtt_source {

class ConnectionDriver {
public:
    using Clock = std::chrono::steady_clock;
    using Id = std::uint64_t;

    class Machine {
    public:
        virtual ~Machine() = default;
        /// THREAD: the driver's; never two at once. Must not block: every other machine of
        /// the process waits meanwhile.
        virtual void on_wake() = 0;
    };

    /// The process's driver, started if there is none.
    static std::shared_ptr<ConnectionDriver> acquire();
    /// The pacer limits of drivers started from now on (benchmarks and tests).
    static void set_pacer_limits(PacerLimits limits);
    static PacerLimits pacer_limits();

    ~ConnectionDriver();
    ConnectionDriver(const ConnectionDriver&) = delete;
    ConnectionDriver& operator=(const ConnectionDriver&) = delete;

    /// Registers a machine; it runs at its first wake().
    Id add(Machine& machine);
    /// Unregisters: once this returns, the machine does not run and never runs again, and its
    /// connect slot or request is given up. Waits only while the machine itself runs.
    /// THREAD: any; on the driver's, only from inside that machine's on_wake().
    void remove(Id id);
    /// THREAD: any. Never waits for anything but the driver's lock. Unknown ids are ignored.
    void wake(Id id);
    /// Wakes the machine at `at` (replacing the time set before; Clock::time_point::max():
    /// none). THREAD: the driver's.
    void wake_at(Id id, Clock::time_point at);

    /// Asks the pacer for a connect slot towards `broker`; the machine is woken when it is
    /// granted. THREAD: the driver's.
    void request_connect(Id id, const std::string& broker);
    bool connect_granted(Id id);
    /// The attempt ended, or the request is withdrawn. THREAD: the driver's.
    void connect_finished(Id id);

    std::size_t machines();

private:
    explicit ConnectionDriver(PacerLimits limits);
    void run();
    void enqueue(Id id);  // with mu_ held

    struct Entry {
        Machine* machine;
        bool queued = false;
        Clock::time_point timer = Clock::time_point::max();
    };
    using Timer = std::pair<Clock::time_point, Id>;

    std::mutex mu_;
    std::condition_variable work_;  // the driver's thread waits here
    std::condition_variable ran_;   // remove() waits here while the machine runs
    std::unordered_map<Id, Entry> entries_;
    std::deque<Id> ready_;
    // One entry per wake_at(); entries whose time no longer matches their machine's are stale.
    std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
    ConnectPacer pacer_;
    Id next_id_ = 1;
    Id running_ = 0;
    bool sleeping_ = false;
    bool quit_ = false;
    std::thread thread_;
};

}  // namespace sluice::plugins::mqtt_source

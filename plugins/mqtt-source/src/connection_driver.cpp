#include "connection_driver.hpp"

#include <pthread.h>

namespace sluice::plugins::mqtt_source {
namespace {

struct Registry {
    std::mutex mu;
    std::weak_ptr<ConnectionDriver> current;
    PacerLimits limits;
};

Registry& registry() {
    // Never destroyed: an instance left alive at exit may still release the driver after
    // static destruction began.
    static Registry* r = new Registry;
    return *r;
}

}  // namespace

std::shared_ptr<ConnectionDriver> ConnectionDriver::acquire() {
    Registry& r = registry();
    std::lock_guard lock(r.mu);
    if (auto d = r.current.lock()) return d;
    std::shared_ptr<ConnectionDriver> d(new ConnectionDriver(r.limits));
    r.current = d;
    return d;
}

void ConnectionDriver::set_pacer_limits(PacerLimits limits) {
    Registry& r = registry();
    std::lock_guard lock(r.mu);
    r.limits = limits;
}

PacerLimits ConnectionDriver::pacer_limits() {
    Registry& r = registry();
    std::lock_guard lock(r.mu);
    return r.limits;
}

ConnectionDriver::ConnectionDriver(PacerLimits limits) : pacer_(limits, Clock::now()) {
    thread_ = std::thread([this] { run(); });
    ::pthread_setname_np(thread_.native_handle(), "sluice-mqtt");
}

ConnectionDriver::~ConnectionDriver() {
    {
        std::lock_guard lock(mu_);
        quit_ = true;
    }
    work_.notify_one();
    // The last reference goes with the last instance, on a host thread; the driver's own thread
    // holds none.
    if (thread_.get_id() == std::this_thread::get_id()) {
        thread_.detach();
    } else {
        thread_.join();
    }
}

ConnectionDriver::Id ConnectionDriver::add(Machine& machine) {
    std::lock_guard lock(mu_);
    const Id id = next_id_++;
    entries_.emplace(id, Entry{&machine});
    return id;
}

void ConnectionDriver::remove(Id id) {
    bool freed_slot = false;
    {
        std::unique_lock lock(mu_);
        if (std::this_thread::get_id() != thread_.get_id()) {
            ran_.wait(lock, [&] { return running_ != id; });
        }
        entries_.erase(id);
        freed_slot = pacer_.granted(id);
        pacer_.finish(id);
    }
    // Its queue and timer entries are skipped when reached. A freed slot can go to another.
    if (freed_slot) work_.notify_one();
}

void ConnectionDriver::enqueue(Id id) {
    const auto it = entries_.find(id);
    if (it == entries_.end() || it->second.queued) return;
    it->second.queued = true;
    ready_.push_back(id);
}

void ConnectionDriver::wake(Id id) {
    bool notify = false;
    {
        std::lock_guard lock(mu_);
        enqueue(id);
        notify = sleeping_;
        sleeping_ = false;
    }
    if (notify) work_.notify_one();
}

void ConnectionDriver::wake_at(Id id, Clock::time_point at) {
    std::lock_guard lock(mu_);
    const auto it = entries_.find(id);
    if (it == entries_.end() || it->second.timer == at) return;
    it->second.timer = at;
    if (at != Clock::time_point::max()) timers_.emplace(at, id);
}

void ConnectionDriver::request_connect(Id id, const std::string& broker) {
    std::lock_guard lock(mu_);
    pacer_.request(id, broker);
}

bool ConnectionDriver::connect_granted(Id id) {
    std::lock_guard lock(mu_);
    return pacer_.granted(id);
}

void ConnectionDriver::connect_finished(Id id) {
    std::lock_guard lock(mu_);
    pacer_.finish(id);
}

std::size_t ConnectionDriver::machines() {
    std::lock_guard lock(mu_);
    return entries_.size();
}

void ConnectionDriver::run() {
    std::unique_lock lock(mu_);
    while (!quit_) {
        const auto now = Clock::now();
        while (!timers_.empty() && timers_.top().first <= now) {
            const auto [at, id] = timers_.top();
            timers_.pop();
            const auto it = entries_.find(id);
            if (it == entries_.end() || it->second.timer != at) continue;  // stale
            it->second.timer = Clock::time_point::max();
            enqueue(id);
        }
        auto next = Clock::time_point::max();
        for (const Id id : pacer_.grant(now, next)) enqueue(id);

        if (ready_.empty()) {
            if (!timers_.empty()) next = std::min(next, timers_.top().first);
            sleeping_ = true;
            if (next == Clock::time_point::max()) {
                work_.wait(lock);
            } else {
                work_.wait_until(lock, next);
            }
            sleeping_ = false;
            continue;
        }
        const Id id = ready_.front();
        ready_.pop_front();
        const auto it = entries_.find(id);
        if (it == entries_.end()) continue;
        it->second.queued = false;
        Machine* machine = it->second.machine;
        running_ = id;
        lock.unlock();
        machine->on_wake();
        lock.lock();
        running_ = 0;
        ran_.notify_all();
    }
}

}  // namespace sluice::plugins::mqtt_source

#include "connect_pacer.hpp"

#include <algorithm>

namespace sluice::plugins::mqtt_source {

ConnectPacer::ConnectPacer(PacerLimits limits, Clock::time_point now)
    : limits_(limits), tokens_(limits.burst), refilled_(now) {
    limits_.connects_per_second = std::max(limits_.connects_per_second, 0.001);
    limits_.burst = std::max(limits_.burst, 1.0);
    limits_.in_flight_per_broker = std::max<std::size_t>(limits_.in_flight_per_broker, 1);
    tokens_ = limits_.burst;
}

void ConnectPacer::request(Id id, const std::string& broker) {
    const auto [it, added] = requests_.try_emplace(id, Request{broker, false});
    if (!added) return;
    Broker& b = brokers_[broker];
    b.queue.push_back(id);
    ++b.waiting;
    ++waiting_;
}

void ConnectPacer::finish(Id id) {
    const auto it = requests_.find(id);
    if (it == requests_.end()) return;
    const auto b = brokers_.find(it->second.broker);
    if (it->second.granted) {
        --in_flight_;
        --b->second.in_flight;
    } else {
        --waiting_;  // its queue entry is skipped when reached
        --b->second.waiting;
    }
    requests_.erase(it);
    if (b->second.in_flight == 0 && b->second.waiting == 0) {
        // Only stale entries are left in its queue.
        brokers_.erase(b);
    }
}

bool ConnectPacer::granted(Id id) const {
    const auto it = requests_.find(id);
    return it != requests_.end() && it->second.granted;
}

void ConnectPacer::refill(Clock::time_point now) {
    if (now <= refilled_) return;
    const double elapsed = std::chrono::duration<double>(now - refilled_).count();
    tokens_ = std::min(limits_.burst, tokens_ + elapsed * limits_.connects_per_second);
    refilled_ = now;
}

std::vector<ConnectPacer::Id> ConnectPacer::grant(Clock::time_point now, Clock::time_point& next) {
    std::vector<Id> out;
    next = Clock::time_point::max();
    if (waiting_ == 0) return out;
    refill(now);
    // Rounds in which every broker with room gets at most one grant, starting after the one
    // served last, so that a busy broker does not take every token.
    for (bool progress = true; progress && waiting_ > 0;) {
        progress = false;
        auto it = brokers_.upper_bound(turn_);
        for (std::size_t n = 0; n < brokers_.size(); ++n, ++it) {
            if (it == brokers_.end()) it = brokers_.begin();
            Broker& b = it->second;
            while (!b.queue.empty()) {
                const auto r = requests_.find(b.queue.front());
                if (r != requests_.end() && !r->second.granted) break;
                b.queue.pop_front();
            }
            if (b.queue.empty() || b.in_flight >= limits_.in_flight_per_broker) continue;
            if (tokens_ < 1) {
                const double wait_s = (1 - tokens_) / limits_.connects_per_second;
                next = refilled_ +
                       std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(wait_s)) +
                       Clock::duration(1);
                return out;
            }
            tokens_ -= 1;
            const Id id = b.queue.front();
            b.queue.pop_front();
            requests_[id].granted = true;
            ++b.in_flight;
            --b.waiting;
            ++in_flight_;
            --waiting_;
            out.push_back(id);
            turn_ = it->first;
            progress = true;
        }
    }
    return out;
}

}  // namespace sluice::plugins::mqtt_source

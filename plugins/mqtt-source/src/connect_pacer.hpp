// Paces the connect attempts of every mqtt-source instance of the process, so that thousands of
// routes starting at once reach their brokers as a steady stream instead of a flood.
//
// Two limits, for two different bottlenecks:
// - a token bucket, process-wide: paho.mqtt.c runs every client's connect on ONE send thread and
//   every CONNACK on ONE receive thread, whatever the broker; a burst of thousands of CONNECTs
//   queues on those threads until the brokers' own connect timeouts pass;
// - a cap on attempts in progress per broker (its url list): a broker answers CONNECTs one by
//   one, and one that does not answer at all must only hold back the routes that use it. An
//   attempt holds its slot until it succeeds, fails or times out.
//
// Requests are served first come, first served within a broker and in turns between brokers.
// Not thread-safe: the connection driver calls it under its own lock.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace sluice::plugins::mqtt_source {

// Measured with bench/mqtt_source_scale.cpp against a local mosquitto (paho.mqtt.c 1.3.12):
// a connect waits about 1 s in paho before its CONNECT is even sent (the receive thread only
// notices a new socket after its current poll(), which times out after 1 s, returns), so an
// attempt holds its slot for ~1 s however fast the broker is, and a broker's connects per
// second are about its slots. 1,000 instances were all subscribed after 8.4 s with 64 slots,
// 4.4 s with 256, 1.3 s with 1024. More slots stop helping: paho scans its list of connecting
// sockets once per socket per poll round, so 10,000 instances took 27.8 s with 1024 and 25.4 s
// with 2048 (at twice the rate) while the connect latency rose from 2.4 s to 5 s.
struct PacerLimits {
    double connects_per_second = 1000;  // token bucket rate, process-wide
    double burst = 100;                 // token bucket size
    std::size_t in_flight_per_broker = 1024;
};

class ConnectPacer {
public:
    using Clock = std::chrono::steady_clock;
    using Id = std::uint64_t;

    ConnectPacer(PacerLimits limits, Clock::time_point now);

    /// Queues a request of `id` for a connect to `broker`. A second request while one is queued
    /// or granted is ignored.
    void request(Id id, const std::string& broker);
    /// The attempt of `id` ended (or its request is withdrawn): frees its slot.
    void finish(Id id);
    bool granted(Id id) const;

    /// Grants what the limits allow at `now` and returns the ids granted. `next` becomes the
    /// time at which more could be granted without any finish() (a token comes), or
    /// Clock::time_point::max() when nothing waits for a token.
    std::vector<Id> grant(Clock::time_point now, Clock::time_point& next);

    std::size_t waiting() const { return waiting_; }
    std::size_t in_flight() const { return in_flight_; }

private:
    struct Broker {
        std::deque<Id> queue;  // may hold ids that finished meanwhile: skipped when reached
        std::size_t in_flight = 0;
        std::size_t waiting = 0;
    };
    struct Request {
        std::string broker;
        bool granted = false;
    };
    void refill(Clock::time_point now);

    PacerLimits limits_;
    double tokens_;
    Clock::time_point refilled_;
    std::unordered_map<Id, Request> requests_;
    std::map<std::string, Broker> brokers_;
    std::string turn_;  // the broker served last: the next grant starts after it
    std::size_t waiting_ = 0;
    std::size_t in_flight_ = 0;
};

}  // namespace sluice::plugins::mqtt_source

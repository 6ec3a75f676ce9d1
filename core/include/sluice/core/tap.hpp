// The message tap of the status page: a copy of what leaves a route's transforms, for someone
// watching. Off unless opened (one relaxed load per batch), bounded so that it can never slow
// the route: a tap that is not read fast enough loses its oldest entries, counted.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sluice/core/message_arena.hpp"

namespace sluice {

class Tap {
public:
    static constexpr std::size_t kCapacity = 200;
    static constexpr std::size_t kPayloadExcerpt = 1024;

    /// One message as a JSON object: time, topic, key, headers, payload excerpt and size.
    static std::string to_json(const sluice_message& m);

    void push(std::string json);
    /// What arrived since the last call, oldest first, and how many were lost meanwhile.
    std::vector<std::string> take(std::uint64_t& lost);

private:
    std::mutex mu_;
    std::deque<std::string> entries_;
    std::uint64_t lost_ = 0;
};

/// The taps open on one route.
class TapSet {
public:
    std::shared_ptr<Tap> open();
    /// THREAD: the route's. Copies `batch` into every open tap.
    void publish(MessageArena& batch);
    bool active() const { return open_.load(std::memory_order_relaxed) > 0; }

private:
    std::mutex mu_;
    std::vector<std::weak_ptr<Tap>> taps_;
    std::atomic<std::size_t> open_{0};
};

}  // namespace sluice

#include "sluice/core/tap.hpp"

#include <algorithm>
#include <utility>

#include "sluice/core/log_hygiene.hpp"
#include "sluice/sdk/json.hpp"

namespace sluice {

namespace {
using sdk::json::append_quoted;
}

std::string Tap::to_json(const sluice_message& m) {
    std::string o = "{\"time_ms\":" + std::to_string(m.timestamp_ms) + ",\"topic\":";
    append_quoted(o, log::valid_utf8({m.topic, m.topic_len}));
    o += ",\"key\":";
    if (m.key == nullptr) {
        o += "null";
    } else {
        append_quoted(o, log::valid_utf8({m.key, m.key_len}));
    }
    o += ",\"headers\":[";
    for (std::size_t i = 0; i < m.n_headers; ++i) {
        if (i) o += ",";
        o += "[";
        append_quoted(o, log::valid_utf8({m.headers[i].key, m.headers[i].key_len}));
        o += ",";
        append_quoted(o, log::valid_utf8({m.headers[i].value, m.headers[i].value_len}));
        o += "]";
    }
    o += "],\"payload\":";
    append_quoted(o, log::valid_utf8({static_cast<const char*>(m.payload),
                                      std::min(m.payload_len, kPayloadExcerpt)}));
    o += ",\"payload_bytes\":" + std::to_string(m.payload_len) + "}";
    return o;
}

void Tap::push(std::string json) {
    std::lock_guard lock(mu_);
    if (entries_.size() >= kCapacity) {
        entries_.pop_front();
        ++lost_;
    }
    entries_.push_back(std::move(json));
}

std::vector<std::string> Tap::take(std::uint64_t& lost) {
    std::lock_guard lock(mu_);
    std::vector<std::string> out(std::make_move_iterator(entries_.begin()),
                                 std::make_move_iterator(entries_.end()));
    entries_.clear();
    lost = std::exchange(lost_, 0);
    return out;
}

std::shared_ptr<Tap> TapSet::open() {
    auto tap = std::make_shared<Tap>();
    std::lock_guard lock(mu_);
    std::erase_if(taps_, [](const auto& w) { return w.expired(); });
    taps_.push_back(tap);
    open_.store(taps_.size(), std::memory_order_relaxed);
    return tap;
}

void TapSet::publish(MessageArena& batch) {
    std::vector<std::shared_ptr<Tap>> live;
    {
        std::lock_guard lock(mu_);
        std::erase_if(taps_, [](const auto& w) { return w.expired(); });
        open_.store(taps_.size(), std::memory_order_relaxed);
        for (const auto& w : taps_) {
            if (auto t = w.lock()) live.push_back(std::move(t));
        }
    }
    if (live.empty()) return;
    // The newest are what a watcher wants: only the last kCapacity of a big batch are copied.
    const std::size_t from = batch.size() > Tap::kCapacity ? batch.size() - Tap::kCapacity : 0;
    for (std::size_t i = from; i < batch.size(); ++i) {
        const std::string json = Tap::to_json(batch.at(i));
        for (const auto& t : live) t->push(json);
    }
}

}  // namespace sluice

// What a source hands to its route. This runs on the source's threads, which for an MQTT
// source is paho's one receive thread for every client in the process: nothing here may wait
// on the route (the buffer's lock is held only to copy a message in), or one full route would
// stall every route. A full route is held back at its origin instead (hold_source).
#include "sluice/core/backoff.hpp"
#include "sluice/core/log.hpp"
#include "sluice/core/route.hpp"

namespace sluice {

namespace {

constexpr auto kDropLogInterval = std::chrono::seconds(1);
constexpr auto kRoomWait = std::chrono::milliseconds(100);

}  // namespace

sluice_status Route::on_emit(const sluice_message& in) {
    sluice_message m = in;
    m.flags &= ~kRouteHostFlags;
    if (m.timestamp_ms == 0) m.timestamp_ms = wall_ms();
    if (m.payload_len > spec_.options.max_payload_bytes) {
        counters_.dropped_oversize.fetch_add(1, std::memory_order_relaxed);
        if (spec_.options.on_error == RouteOptions::OnError::drop) {
            counters_.errors.fetch_add(1, std::memory_order_relaxed);
            warn_drop("it is larger than max_payload_bytes", m);
            return SLUICE_ERROR;
        }
        // dead_letter and stop are the worker's to apply, in order with the rest.
        m.flags |= kRouteFlagOversize;
    }
    try {
        return take(m);
    } catch (const std::exception& e) {  // nothing may unwind into the plugin's thread
        counters_.errors.fetch_add(1, std::memory_order_relaxed);
        log::error("route " + spec_.name, std::string("cannot buffer a message: ") + e.what());
        return SLUICE_ERROR;
    }
}

sluice_status Route::take(const sluice_message& m) {
    const BufferOptions& b = spec_.options.buffer;
    RouteBuffer* buffer = buffer_.get();
    if (buffer == nullptr || closed_.load()) return SLUICE_FATAL;
    std::string error;
    RouteBuffer::Append r = RouteBuffer::Append::full;
    const std::uint64_t size = RouteBuffer::size_of(m);
    if (size > b.max_bytes) {
        // Validation keeps max_payload_bytes within max_bytes; a huge topic or headers can
        // still make one message larger than the buffer: it could never fit, whatever waits.
        counters_.dropped_oversize.fetch_add(1, std::memory_order_relaxed);
        counters_.errors.fetch_add(1, std::memory_order_relaxed);
        warn_drop("with its topic and headers it is larger than the route's buffer.max_bytes", m);
        return SLUICE_ERROR;
    }
    const bool own_thread = on_own_thread();
    switch (b.when_full) {
        case BufferOptions::WhenFull::block:
            if (own_thread || releasing_source_.load() || starting_source_.load()) {
                // A source emitting from inside start() or stop(), on the worker's thread:
                // only that thread could make room, so waiting would never end. And while
                // start() runs the source cannot be asked to hold back yet: what it sends is
                // taken, and the hold follows when start() returns.
                r = buffer->append(m, UINT64_MAX, &error);
            } else if (source_can_hold_.load(std::memory_order_relaxed)) {
                r = buffer->append(m, b.max_bytes + b.headroom(), &error);
                if (r != RouteBuffer::Append::failed && buffer->bytes() > b.max_bytes) {
                    hold_source();
                }
                if (r == RouteBuffer::Append::full) {
                    // The source kept sending past the headroom after it was asked to hold
                    // back (a clean session cannot): counted, never waited for.
                    counters_.dropped_overflow.fetch_add(1, std::memory_order_relaxed);
                    warn_drop(
                        "the buffer is full past its headroom while the source is held "
                        "back",
                        m);
                    return SLUICE_ERROR;
                }
            } else {
                // An ABI 1.0 source cannot be held back: it waits here, on its own thread,
                // as that ABI said emit may.
                std::unique_lock lock(flow_mu_);
                while ((r = buffer->append(m, b.max_bytes, &error)) == RouteBuffer::Append::full) {
                    if (closed_.load()) return SLUICE_FATAL;
                    if (releasing_source_.load()) {
                        r = buffer->append(m, UINT64_MAX, &error);
                        break;
                    }
                    room_cv_.wait_for(lock, kRoomWait);
                }
            }
            break;
        case BufferOptions::WhenFull::drop_newest:
            r = buffer->append(m, b.max_bytes, &error);
            break;
        case BufferOptions::WhenFull::drop_oldest:
            r = buffer->append(m, b.max_bytes, &error);
            if (r == RouteBuffer::Append::full) {
                const std::size_t dropped =
                    buffer->drop_oldest_unread(b.max_bytes > size ? b.max_bytes - size : 0);
                if (dropped > 0) {
                    counters_.dropped_full.fetch_add(dropped, std::memory_order_relaxed);
                    warn_drop("the buffer is full (when_full: drop_oldest dropped older ones)", m);
                }
                r = buffer->append(m, b.max_bytes, &error);
            }
            break;
    }
    if (r == RouteBuffer::Append::full) {
        counters_.dropped_full.fetch_add(1, std::memory_order_relaxed);
        warn_drop("the buffer is full", m);
        return SLUICE_ERROR;
    }
    if (r == RouteBuffer::Append::failed) {
        counters_.buffer_failures.fetch_add(1, std::memory_order_relaxed);
        counters_.errors.fetch_add(1, std::memory_order_relaxed);
        warn_drop(("the buffer cannot take it: " + error).c_str(), m);
        return SLUICE_ERROR;
    }
    counters_.received.fetch_add(1, std::memory_order_relaxed);
    counters_.bytes_received.fetch_add(m.payload_len, std::memory_order_relaxed);
    // seq_cst pairs with wait_input(): either it sees this message, or we see it idle. Only
    // the first message after the route went idle schedules it (a short lock, never a wait).
    if (idle_.load() && idle_.exchange(false)) again();
    return SLUICE_OK;
}

void Route::hold_source() {
    if (held_.load()) return;  // the common case while full: no lock per message
    std::lock_guard lock(flow_mu_);
    if (held_.load(std::memory_order_relaxed)) return;
    held_.store(true);
    counters_.holds.fetch_add(1, std::memory_order_relaxed);
    // A source that fills the buffer while its start() is still running is taken in full
    // meanwhile (take()) and held by the first message after start() returned.
    if (hold_target_ != nullptr) hold_target_->hold_input(true);
}

void Route::release_source_if_room() {
    room_cv_.notify_all();
    if (!held_.load() || stopping_hold_.load()) return;
    if (buffer_->bytes() > spec_.options.buffer.resume_below()) return;
    std::lock_guard lock(flow_mu_);
    if (!held_.load(std::memory_order_relaxed) || stopping_hold_.load()) return;
    held_.store(false);
    if (hold_target_ != nullptr) hold_target_->hold_input(false);
}

void Route::set_hold_target(PluginInstance* source) {
    std::lock_guard lock(flow_mu_);
    hold_target_ = source;
    if (source == nullptr) {
        held_.store(false);
    } else if (held_.load(std::memory_order_relaxed) || stopping_hold_.load()) {
        held_.store(true);
        source->hold_input(true);
    }
}

void Route::warn_drop(const char* why, const sluice_message& m) {
    // At most one line a second per route: a flood of drops must not become a flood of log
    // lines (nor wait on the log on a thread other routes share). Counters keep the figures.
    std::unique_lock lock(drop_log_mu_, std::try_to_lock);
    if (!lock.owns_lock()) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_drop_log_ < kDropLogInterval) {
        ++suppressed_drops_;
        return;
    }
    last_drop_log_ = now;
    std::string line = "message on '" + std::string(m.topic, m.topic_len) + "' dropped: " + why;
    if (suppressed_drops_ > 0) {
        line += " (" + std::to_string(suppressed_drops_) + " more since the last warning)";
        suppressed_drops_ = 0;
    }
    log::warn("route " + spec_.name, line);
}

}  // namespace sluice

// The pipeline of a route, run in its slices: a batch read from the buffer goes through the
// transforms into the sink; what a stage rejects goes to the error policy (drop, dead_letter,
// stop); the batch is confirmed to the buffer only once all of it is done. This file has the
// serial path (a sink's process() confirms a batch before it returns); route_inflight.cpp has
// the pipelined one (submit/complete).
#include <algorithm>

#include "sluice/core/backoff.hpp"
#include "sluice/core/log.hpp"
#include "sluice/core/route.hpp"

namespace sluice {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::uint32_t kSinkRetryInitialMs = 100;
constexpr std::uint32_t kSinkRetryMaxMs = 5000;

// Collects what a transform or sink emits and rejects during one process() call.
struct StageCall {
    MessageArena* out = nullptr;
    std::vector<std::tuple<std::size_t, sluice_status, std::string>> rejects;

    /// The first reject of each index inside the batch: a plugin that rejects a message
    /// twice (or an index out of range) must not make it count or retry twice.
    std::vector<std::tuple<std::size_t, sluice_status, std::string>> distinct_rejects(
        std::size_t batch_size) const {
        std::vector<bool> seen(batch_size, false);
        std::vector<std::tuple<std::size_t, sluice_status, std::string>> distinct;
        for (const auto& r : rejects) {
            const std::size_t index = std::get<0>(r);
            if (index < batch_size && !seen[index]) {
                seen[index] = true;
                distinct.push_back(r);
            }
        }
        return distinct;
    }

    sluice_emitter emitter() {
        sluice_emitter e{};
        e.struct_size = sizeof e;
        e.ctx = this;
        e.emit = [](void* ctx, const sluice_message* m) {
            auto* call = static_cast<StageCall*>(ctx);
            if (call->out == nullptr || m == nullptr) return SLUICE_ERROR;  // sinks do not emit
            try {
                call->out->append(*m);
                return SLUICE_OK;
            } catch (const std::exception&) {  // nothing may unwind into plugin code
                return SLUICE_ERROR;
            }
        };
        e.reject = [](void* ctx, std::size_t index, sluice_status status, const char* reason) {
            try {
                static_cast<StageCall*>(ctx)->rejects.emplace_back(index, status,
                                                                   reason ? reason : "rejected");
            } catch (const std::exception&) {  // out of memory: the message counts as done
            }
        };
        e.end_of_input = [](void*) {};
        return e;
    }
};

}  // namespace

void Route::handle_error(MessageArena& arena, std::size_t index, const std::string& stage,
                         const std::string& reason) {
    counters_.errors.fetch_add(1, std::memory_order_relaxed);
    ++policy_errors_;
    const auto& m = arena.at(index);
    if (dead_letter_) {
        // The message as the failing stage got it, with why, where and when as headers.
        const std::string time = std::to_string(wall_ms());
        const std::string_view topic(m.topic, m.topic_len);
        dl_headers_.assign(m.headers, m.headers + m.n_headers);
        auto add = [&](std::string_view k, std::string_view v) {
            dl_headers_.push_back({k.data(), k.size(), v.data(), v.size()});
        };
        add("sluice.error.reason", reason);
        add("sluice.error.stage", stage);
        add("sluice.error.route", spec_.name);
        add("sluice.error.time_ms", time);
        add("sluice.original.topic", topic);
        sluice_message copy = m;
        copy.flags &= ~kRouteHostFlags;
        copy.headers = dl_headers_.data();
        copy.n_headers = dl_headers_.size();
        dead_letters_.append(copy);
        return;
    }
    // One warning per second per route at most: a flood of bad payloads must not become a
    // flood of log lines. The counter keeps the exact figure.
    const auto now = Clock::now();
    if (now - last_error_log_ < std::chrono::seconds(1)) {
        ++suppressed_errors_;
        return;
    }
    last_error_log_ = now;
    std::string line =
        stage + ": message on '" + std::string(m.topic, m.topic_len) + "' " +
        (spec_.options.on_error == RouteOptions::OnError::drop ? "dropped" : "failed") + ": " +
        reason;
    if (suppressed_errors_ > 0) {
        line += " (" + std::to_string(suppressed_errors_) + " more since the last warning)";
        suppressed_errors_ = 0;
    }
    log::warn("route " + spec_.name, line);
}

Route::Step Route::run_transforms() {
    // The chain works in its own arenas and leaves ingress_ untouched until every transform
    // succeeded: after a failure the restarted chain starts again from the original input,
    // so no transform ever sees a message twice.
    // What the chain hands to the error policy is undone too if a later transform fails,
    // or the restarted chain would dead-letter (and count) the same messages again.
    const std::size_t dead_before = dead_letters_.size();
    const std::uint64_t filtered_before = counters_.filtered.load();
    policy_errors_ = 0;
    MessageArena* in = &ingress_;
    for (std::size_t i = 0; i < transforms_.size(); ++i) {
        MessageArena* out = in == &work_a_ ? &work_b_ : &work_a_;
        out->clear();
        StageCall call;
        call.out = out;
        const sluice_emitter e = call.emitter();
        std::string err;
        const std::string& label = spec_.transforms[i].label;
        begin_call(transforms_[i].get(), &label);
        auto s = transforms_[i]->process(in->batch(), &e, err);
        if (!end_call()) {
            s = SLUICE_FATAL;
            err = "did not return within call_timeout_ms";
        }
        if (s == SLUICE_FATAL) {
            counters_.errors.fetch_sub(policy_errors_);
            counters_.filtered.store(filtered_before);  // only this thread counts filtered
            if (dead_letters_.size() > dead_before) {
                scratch_.clear();
                for (std::size_t j = 0; j < dead_before; ++j) {
                    scratch_.append_from(dead_letters_, j);
                }
                dead_letters_.swap(scratch_);
                scratch_.clear();
            }
            fail(label, err);
            return Step::failed;  // ingress_ is kept for the restarted route
        }
        const bool stop_on_error = spec_.options.on_error == RouteOptions::OnError::stop;
        if (s != SLUICE_OK) {
            // RETRY from a transform is an error too: the same input would fail the same way.
            if (stop_on_error) {
                fail(label, "on_error is stop: " + err);
                return Step::halted;
            }
            for (std::size_t j = 0; j < in->size(); ++j) handle_error(*in, j, label, err);
            ingress_.clear();
            return Step::progressed;
        }
        const auto rejects = call.distinct_rejects(in->size());
        if (!rejects.empty() && stop_on_error) {
            fail(label, "on_error is stop: " + std::get<2>(rejects.front()));
            return Step::halted;
        }
        for (const auto& [index, status, reason] : rejects) handle_error(*in, index, label, reason);
        const std::size_t consumed = in->size() - rejects.size();
        if (out->size() < consumed) {
            counters_.filtered.fetch_add(consumed - out->size(), std::memory_order_relaxed);
        }
        in = out;
        if (in->empty()) break;  // everything filtered or rejected: nothing for the rest
    }
    pending_.swap(*in);
    if (taps_.active()) taps_.publish(pending_);
    ingress_.clear();
    work_a_.clear();
    work_b_.clear();
    return Step::progressed;
}

Route::Step Route::deliver() {
    StageCall call;
    const sluice_emitter e = call.emitter();
    std::string err;
    const std::string& label = spec_.sink.label;
    begin_call(sink_.get(), &label);
    auto s = sink_->process(pending_.batch(), &e, err);
    if (!end_call()) {
        s = SLUICE_FATAL;
        err = "did not return within call_timeout_ms";
    }
    const bool stop_on_error = spec_.options.on_error == RouteOptions::OnError::stop;
    std::uint32_t& retry_ms = sink_retry_ms_;
    switch (s) {
        case SLUICE_OK: {
            std::vector<std::size_t> retry;
            std::size_t errors = 0;
            for (const auto& [index, status, reason] : call.distinct_rejects(pending_.size())) {
                if (status == SLUICE_RETRY) {
                    retry.push_back(index);
                } else {
                    if (stop_on_error) {
                        fail(label, "on_error is stop: " + reason);
                        return Step::halted;
                    }
                    handle_error(pending_, index, label, reason);
                    ++errors;
                }
            }
            counters_.delivered.fetch_add(pending_.size() - retry.size() - errors,
                                          std::memory_order_relaxed);
            {
                std::vector<bool> not_delivered(pending_.size(), false);
                for (const auto& [index, status, reason] : call.distinct_rejects(pending_.size())) {
                    not_delivered[index] = true;
                }
                const std::int64_t now = wall_ms();
                for (std::size_t i = 0; i < pending_.size(); ++i) {
                    if (!not_delivered[i]) note_delivered(pending_.at(i), now);
                }
            }
            if (!retry.empty()) {
                scratch_.clear();
                for (auto index : retry) scratch_.append_from(pending_, index);
                pending_.swap(scratch_);
                scratch_.clear();
                counters_.retries.fetch_add(1, std::memory_order_relaxed);
                back_off();
                return Step::idle;
            }
            pending_.clear();
            retry_ms = kSinkRetryInitialMs;
            {
                std::lock_guard lock(state_mu_);
                if (state_ == RouteState::degraded && degraded_stage_ == label) {
                    state_ = RouteState::running;
                    reason_.clear();
                    degraded_stage_.clear();
                    log::info("route " + spec_.name, label + " recovered");
                }
            }
            return Step::progressed;
        }
        case SLUICE_RETRY:
            counters_.retries.fetch_add(1, std::memory_order_relaxed);
            on_report_state(label, SLUICE_RETRY, err.c_str());
            back_off();
            return Step::idle;
        case SLUICE_ERROR:
            if (stop_on_error) {
                fail(label, "on_error is stop: " + err);
                return Step::halted;
            }
            for (std::size_t j = 0; j < pending_.size(); ++j) handle_error(pending_, j, label, err);
            pending_.clear();
            return Step::progressed;
        default:
            fail(label, err);
            return Step::failed;
    }
}

Route::Step Route::refuse_flagged() {
    // Messages over max_payload_bytes were buffered only so that dead_letter and stop apply
    // in order with the rest; they never reach a transform or the sink.
    bool any = false;
    for (std::size_t i = 0; i < ingress_.size() && !any; ++i) {
        any = (ingress_.at(i).flags & kRouteFlagOversize) != 0;
    }
    if (!any) return Step::progressed;
    const std::string reason = "payload larger than max_payload_bytes (" +
                               std::to_string(spec_.options.max_payload_bytes) + ")";
    if (spec_.options.on_error == RouteOptions::OnError::stop) {
        fail(spec_.source.label, "on_error is stop: " + reason);
        return Step::halted;
    }
    scratch_.clear();
    for (std::size_t i = 0; i < ingress_.size(); ++i) {
        if ((ingress_.at(i).flags & kRouteFlagOversize) != 0) {
            handle_error(ingress_, i, spec_.source.label, reason);
        } else {
            scratch_.append_from(ingress_, i);
        }
    }
    ingress_.swap(scratch_);
    scratch_.clear();
    return Step::progressed;
}

Route::Step Route::deliver_dead_letters() {
    StageCall call;
    const sluice_emitter e = call.emitter();
    std::string err;
    const std::string& label = spec_.dead_letter.label;
    begin_call(dead_letter_.get(), &label);
    auto s = dead_letter_->process(dead_letters_.batch(), &e, err);
    if (!end_call()) {
        s = SLUICE_FATAL;
        err = "did not return within call_timeout_ms";
    }
    if (s == SLUICE_FATAL) {
        fail(label, err);
        return Step::failed;  // dead_letters_ is kept for the rebuilt sink
    }
    if (s == SLUICE_RETRY) {
        counters_.retries.fetch_add(1, std::memory_order_relaxed);
        on_report_state(label, SLUICE_RETRY, err.c_str());
        back_off();
        return Step::idle;
    }
    // As for the main sink: RETRY rejects go again, the rest is done one way or the other.
    std::size_t refused = 0;
    std::string why = err;
    scratch_.clear();
    if (s == SLUICE_OK) {
        for (const auto& [index, status, reason] : call.distinct_rejects(dead_letters_.size())) {
            if (status == SLUICE_RETRY) {
                scratch_.append_from(dead_letters_, index);
            } else {
                ++refused;
                why = reason;
            }
        }
    } else {
        refused = dead_letters_.size();
    }
    counters_.dead_lettered.fetch_add(dead_letters_.size() - refused - scratch_.size(),
                                      std::memory_order_relaxed);
    if (refused > 0) {
        counters_.dead_letter_failed.fetch_add(refused, std::memory_order_relaxed);
        log::error("route " + spec_.name, label + " refused " + std::to_string(refused) +
                                              " failed message(s); they are dropped: " + why);
    }
    dead_letters_.swap(scratch_);
    scratch_.clear();
    if (!dead_letters_.empty()) {
        counters_.retries.fetch_add(1, std::memory_order_relaxed);
        back_off();
        return Step::idle;
    }
    sink_retry_ms_ = kSinkRetryInitialMs;
    return Step::progressed;
}

void Route::back_off() {
    // A timer, not a sleep: the pool thread goes on with other routes. Capped at the drain
    // deadline while stopping: a back-off must never outlast it.
    retry_at_ = std::min(Clock::now() + jittered(sink_retry_ms_),
                         stopping() ? drain_deadline() : Clock::time_point::max());
    sink_retry_ms_ = std::min(sink_retry_ms_ * 2, kSinkRetryMaxMs);
}

void Route::begin_call(PluginInstance* instance, const std::string* stage) {
    std::lock_guard lock(call_mu_);
    calling_ = instance;
    call_overdue_.store(false);
    in_call_.store(stage, std::memory_order_release);
}

bool Route::end_call() {
    std::lock_guard lock(call_mu_);
    calling_ = nullptr;
    in_call_.store(nullptr, std::memory_order_release);
    return !call_overdue_.exchange(false);
}

void Route::interrupt_if_overdue() {
    if (!stopping()) return;
    // Past the drain deadline the route must run once more to finish its stop, whatever woke
    // it or did not: a missed wake-up would otherwise keep it (and the process's exit)
    // waiting until the process gives up on it.
    if (Clock::now() >= drain_deadline() && !done_.load()) again();
    if (in_call_.load(std::memory_order_acquire) == nullptr &&
        in_flight_count_.load(std::memory_order_relaxed) == 0) {
        return;
    }
    if (Clock::now() < drain_deadline()) return;
    std::lock_guard lock(call_mu_);
    if (calling_ != nullptr) calling_->interrupt();
    // A pipelined sink settles what it has in flight (unconfirmed: retry) at once.
    if (submitted_to_ != nullptr && submitted_to_ != calling_) submitted_to_->interrupt();
}

void Route::confirm_batch() {
    if (batch_read_ == 0) return;
    buffer_->confirm(batch_read_);
    batch_read_ = 0;
    release_source_if_room();
}

Route::Step Route::step() {
    if (Clock::now() < retry_at_) return Step::idle;  // a back-off is running
    return sink_->can_submit() ? step_pipelined() : step_serial();
}

Route::Step Route::step_serial() {
    if (ingress_.empty() && pending_.empty()) {
        // What failed goes to the dead-letter sink before the batch is confirmed, so that a
        // crash in between replays it rather than losing it.
        if (!dead_letters_.empty()) return deliver_dead_letters();
        confirm_batch();
        ingress_.clear();
        batch_read_ = buffer_->read(ingress_, spec_.options.batch_size);
        if (batch_read_ == 0) {
            // A hold asked for just as the worker emptied the buffer would otherwise never be
            // released: no confirm would follow it.
            release_source_if_room();
            return Step::empty;
        }
        if (const Step s = refuse_flagged(); s != Step::progressed) return s;
        pass_transformed();
        if (ingress_.empty() && pending_.empty()) return Step::progressed;
    }
    Step s;
    if (pending_.empty()) {
        s = run_transforms();
        if (s == Step::progressed && !pending_.empty()) s = deliver();
    } else {
        s = deliver();
    }
    if (s == Step::progressed && ingress_.empty() && pending_.empty()) {
        if (!dead_letters_.empty()) return deliver_dead_letters();
        confirm_batch();
    }
    return s;
}

}  // namespace sluice

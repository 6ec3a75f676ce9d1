// Pipelined delivery to a sink that takes batches with submit() (ABI 1.2): up to
// max_in_flight batches of a route are out at once, their completions arrive on the sink's
// thread and are recorded for the route's next slice, and batches are confirmed to the buffer
// strictly in the order they were read.
//
// The ordering rule: when a batch comes back with messages to retry, nothing newer is sent;
// once every batch in flight has settled, the route resends, in the original order, every
// message from the first one to retry on (also those the destination confirmed after it: they
// go again, as duplicates). So a retry never lets a message overtake an older one of the same
// key; it may repeat messages that were already delivered.
#include <algorithm>

#include "sluice/core/backoff.hpp"
#include "sluice/core/log.hpp"
#include "sluice/core/route.hpp"
#include "sluice/core/runtime/memory_release.hpp"

namespace sluice {

namespace {

// Per-message verdicts of a settled batch.
enum class Verdict : std::uint8_t { ok, retry, error };

constexpr std::size_t kKeepArenaBytes = 64u << 10;
// Recycled batch arenas an idle route keeps (it may keep max_in_flight while busy): 10,000
// quiet routes must not each hold dozens.
constexpr std::size_t kIdleSpareArenas = 2;

}  // namespace

void Route::on_complete(std::uint64_t token, sluice_status status, const char* reason,
                        std::size_t n_rejects, const sluice_reject* rejects) {
    // The sink's thread (librdkafka's poll thread, shared with other routes): record and
    // schedule, nothing else. Nothing may unwind into it.
    try {
        Completion c{token,
                     status >= SLUICE_OK && status <= SLUICE_FATAL ? status : SLUICE_FATAL,
                     reason != nullptr ? reason : "",
                     {}};
        if (rejects != nullptr) {
            c.rejects.reserve(n_rejects);
            for (std::size_t i = 0; i < n_rejects; ++i) {
                c.rejects.emplace_back(
                    rejects[i].index, rejects[i].status,
                    rejects[i].reason != nullptr ? rejects[i].reason : "rejected");
            }
        }
        std::lock_guard lock(completions_mu_);
        completions_.push_back(std::move(c));
    } catch (const std::exception&) {
        // Out of memory: the batch stays unsettled and goes again once the route stops or the
        // sink is rebuilt (settle_all_in_flight), never lost.
        return;
    }
    again();
}

void Route::absorb_completions() {
    std::vector<Completion> got;
    {
        std::lock_guard lock(completions_mu_);
        got.swap(completions_);
    }
    for (auto& c : got) {
        // Tokens are unique per route; a completion for a batch no longer in flight (settled
        // by a stop, resent meanwhile) is stale.
        for (auto& f : in_flight_) {
            if (f.token == c.token && !f.settled) {
                f.settled = true;
                f.outcome = std::move(c);
                break;
            }
        }
    }
}

void Route::settle_all_in_flight(const std::string& why) {
    absorb_completions();
    for (auto& f : in_flight_) {
        if (!f.settled) {
            f.settled = true;
            f.outcome = Completion{f.token, SLUICE_RETRY, why, {}};
        }
    }
}

std::size_t Route::in_flight_messages() const {
    std::size_t n = 0;
    for (const auto& f : in_flight_) n += f.batch.size();
    return n;
}

namespace {

// What happened to each message of a settled batch; `first_retry` is the first to go again.
std::vector<Verdict> verdicts_of(const std::optional<Route::Completion>& c, std::size_t n,
                                 std::size_t& first_retry) {
    first_retry = n;
    const sluice_status whole = c ? c->status : SLUICE_RETRY;
    if (whole == SLUICE_RETRY || whole == SLUICE_FATAL) {
        first_retry = 0;
        return std::vector<Verdict>(n, Verdict::retry);
    }
    if (whole == SLUICE_ERROR) return std::vector<Verdict>(n, Verdict::error);
    std::vector<Verdict> v(n, Verdict::ok);
    for (const auto& [index, status, reason] : c->rejects) {
        // The first reject of an index counts; indexes out of range are ignored.
        if (index >= n || v[index] != Verdict::ok) continue;
        v[index] = status == SLUICE_RETRY ? Verdict::retry : Verdict::error;
        if (status == SLUICE_RETRY) first_retry = std::min(first_retry, index);
    }
    return v;
}

const std::string& reason_for(const Route::Completion& c, std::size_t index) {
    for (const auto& [i, status, reason] : c.rejects) {
        if (i == index) return reason;
    }
    return c.reason;
}

}  // namespace

Route::Step Route::settle_in_order(bool& progressed) {
    const std::string& label = spec_.sink.label;
    const bool stop_on_error = spec_.options.on_error == RouteOptions::OnError::stop;
    while (!in_flight_.empty() && in_flight_.front().settled && !resend_due_) {
        InFlight& f = in_flight_.front();
        if (!f.applied) {
            if (f.outcome && f.outcome->status == SLUICE_FATAL) {
                // The batch goes again with the rebuilt sink.
                const std::string why = f.outcome->reason;
                f.outcome->status = SLUICE_RETRY;
                fail(label, why);
                return Step::failed;
            }
            std::size_t first_retry = 0;
            const auto v = verdicts_of(f.outcome, f.batch.size(), first_retry);
            if (first_retry < f.batch.size()) {
                resend_due_ = true;  // go_back() applies this batch's outcome with the rest
                break;
            }
            std::size_t delivered = 0;
            const std::int64_t now = wall_ms();
            for (std::size_t i = 0; i < v.size(); ++i) {
                if (v[i] == Verdict::ok) {
                    ++delivered;
                    note_delivered(f.batch.at(i), now);
                    continue;
                }
                if (stop_on_error) {
                    fail(label, "on_error is stop: " + reason_for(*f.outcome, i));
                    return Step::halted;
                }
                handle_error(f.batch, i, label, reason_for(*f.outcome, i));
            }
            counters_.delivered.fetch_add(delivered, std::memory_order_relaxed);
            f.applied = true;
            if (delivered > 0) on_report_state(label, SLUICE_OK, nullptr);
        }
        // What failed goes to the dead-letter sink before the batch is confirmed, so that a
        // crash in between replays it rather than losing it.
        if (!dead_letters_.empty()) {
            const Step s = deliver_dead_letters();
            if (s != Step::progressed) return s;
        }
        buffer_->confirm(f.read);
        f.batch.clear();
        if (spare_arenas_.size() < spec_.options.max_in_flight) {
            spare_arenas_.emplace_back();
            spare_arenas_.back().swap(f.batch);
        }
        in_flight_.pop_front();
        in_flight_count_.store(in_flight_.size(), std::memory_order_relaxed);
        progressed = true;
        release_source_if_room();
    }
    return Step::progressed;
}

void Route::go_back() {
    // Every batch in flight has settled. From the first message to retry on, everything goes
    // again in its original order, ahead of what was waiting to be submitted.
    const std::string& label = spec_.sink.label;
    scratch_.clear();
    std::size_t reads = 0;
    std::size_t delivered = 0;
    std::size_t resent = 0;
    bool resending = false;
    const std::int64_t now = wall_ms();
    for (auto& f : in_flight_) {
        reads += f.read;
        std::size_t first_retry = 0;
        const auto v = verdicts_of(f.outcome, f.batch.size(), first_retry);
        for (std::size_t i = 0; i < v.size(); ++i) {
            if (!resending && i == first_retry) resending = true;
            if (v[i] == Verdict::error) {
                if (!f.applied) handle_error(f.batch, i, label, reason_for(*f.outcome, i));
                continue;
            }
            if (!resending) {
                if (!f.applied && v[i] == Verdict::ok) {
                    ++delivered;
                    note_delivered(f.batch.at(i), now);
                }
                continue;
            }
            if (v[i] == Verdict::ok) ++resent;
            scratch_.append_from(f.batch, i);
        }
    }
    for (std::size_t i = 0; i < pending_.size(); ++i) scratch_.append_from(pending_, i);
    pending_.swap(scratch_);
    scratch_.clear();
    pending_read_ += reads;
    in_flight_.clear();
    in_flight_count_.store(0, std::memory_order_relaxed);
    resend_due_ = false;
    counters_.delivered.fetch_add(delivered, std::memory_order_relaxed);
    counters_.resent.fetch_add(resent, std::memory_order_relaxed);
    counters_.retries.fetch_add(1, std::memory_order_relaxed);
    back_off();
}

Route::Step Route::submit_pending() {
    const std::string& label = spec_.sink.label;
    InFlight& f = in_flight_.emplace_back();
    if (!spare_arenas_.empty()) {
        f.batch.swap(spare_arenas_.back());
        spare_arenas_.pop_back();
    }
    f.batch.swap(pending_);
    f.read = pending_read_;
    f.token = next_token_++;
    {
        std::lock_guard lock(call_mu_);
        submitted_to_ = sink_.get();
    }
    in_flight_count_.store(in_flight_.size(), std::memory_order_relaxed);
    std::string err;
    begin_call(sink_.get(), &label);
    // The completion may come before submit returns: it is only recorded (absorb_completions).
    auto s = sink_->submit(f.batch.batch(), f.token, &completion_, err);
    if (!end_call()) {
        s = SLUICE_FATAL;
        err = "did not return within call_timeout_ms";
    }
    switch (s) {
        case SLUICE_OK:
            pending_read_ = 0;
            return Step::progressed;
        case SLUICE_ERROR:
            // Not a documented answer to submit: the batch goes to the error policy, as
            // process() returning ERROR would.
            f.settled = true;
            f.outcome = Completion{f.token, SLUICE_ERROR, err, {}};
            pending_read_ = 0;
            return Step::progressed;
        default:
            // RETRY: the sink cannot take it now; FATAL: it goes with the rebuilt sink.
            pending_.swap(f.batch);
            in_flight_.pop_back();
            in_flight_count_.store(in_flight_.size(), std::memory_order_relaxed);
            if (s == SLUICE_FATAL) {
                fail(label, err);
                return Step::failed;
            }
            counters_.retries.fetch_add(1, std::memory_order_relaxed);
            // A full local queue empties as batches in flight complete: their completions
            // schedule the route before the back-off ends.
            back_off();
            return Step::idle;
    }
}

Route::Step Route::step_pipelined() {
    absorb_completions();
    bool progressed = false;
    if (const Step s = settle_in_order(progressed); s != Step::progressed) return s;
    if (resend_due_) {
        for (const auto& f : in_flight_) {
            if (!f.settled) return Step::waiting;
        }
        go_back();
        return Step::idle;
    }
    const bool window_full = in_flight_.size() >= spec_.options.max_in_flight;
    if (!pending_.empty()) {
        if (window_full) return progressed ? Step::progressed : Step::waiting;
        return submit_pending();
    }
    if (window_full) return progressed ? Step::progressed : Step::waiting;
    if (ingress_.empty()) {
        ingress_.clear();
        batch_read_ = buffer_->read(ingress_, spec_.options.batch_size);
        if (batch_read_ == 0) {
            // A hold asked for just as the route emptied the buffer would otherwise never be
            // released: no confirm would follow it.
            release_source_if_room();
            return progressed ? Step::progressed : Step::empty;
        }
        if (const Step s = refuse_flagged(); s != Step::progressed) return s;
        if (const std::size_t k = pass_transformed(); k > 0) {
            // Handed over by the route's previous version: sent on their own, and confirmed
            // before the rest of the batch, which goes through the transforms next.
            pending_read_ += k;
            batch_read_ -= k;
            return submit_pending();
        }
    }
    if (!ingress_.empty()) {
        if (const Step s = run_transforms(); s != Step::progressed) return s;
    }
    pending_read_ += batch_read_;
    batch_read_ = 0;
    if (pending_.empty()) {
        // Everything filtered or handed to the error policy: confirmed in its turn.
        InFlight& f = in_flight_.emplace_back();
        f.read = pending_read_;
        f.token = next_token_++;
        f.settled = f.applied = true;
        pending_read_ = 0;
        in_flight_count_.store(in_flight_.size(), std::memory_order_relaxed);
        return Step::progressed;
    }
    return submit_pending();
}

std::uint64_t Route::spare_footprint() const {
    std::uint64_t n = buffer_->spare_bytes();
    for (const MessageArena* a :
         {&ingress_, &pending_, &scratch_, &work_a_, &work_b_, &dead_letters_}) {
        n += a->footprint();
    }
    for (const auto& a : spare_arenas_) n += a.footprint();
    return n;
}

void Route::trim_memory() {
    const std::uint64_t before = spare_footprint();
    for (MessageArena* a : {&ingress_, &pending_, &scratch_, &work_a_, &work_b_, &dead_letters_}) {
        a->shrink(kKeepArenaBytes);
    }
    if (spare_arenas_.size() > kIdleSpareArenas) spare_arenas_.resize(kIdleSpareArenas);
    for (auto& a : spare_arenas_) a.shrink(kKeepArenaBytes);
    buffer_->trim();
    const std::uint64_t after = spare_footprint();
    spare_bytes_.store(after, std::memory_order_relaxed);
    if (before > after) memory::released(before - after);
}

}  // namespace sluice

// A reload that changes a route with a memory buffer: what its old version could not deliver
// by its drain deadline (the usual reason for the change is a sink that cannot deliver) passes
// to the new version instead of being lost. The old version collects it, oldest first, once its
// stages have stopped; the new version puts it into its buffer before its source starts, so it
// goes out ahead of anything newer. Messages that already went through the old version's
// transforms are flagged and go to the new sink as they are: a transform never sees a message
// twice. A disk spool needs none of this: the new version opens the spool the old one closed.
#include "sluice/core/backoff.hpp"
#include "sluice/core/log.hpp"
#include "sluice/core/route.hpp"

namespace sluice {

namespace {

void append_flagged(MessageArena& out, MessageArena& from, std::size_t index) {
    sluice_message m = from.at(index);
    m.flags |= kRouteFlagTransformed;
    out.append(m);
}

}  // namespace

void Route::collect_leftovers() {
    // The stages have stopped: every batch in flight is settled (teardown_downstream), and
    // whatever a completion said is known. Nothing here calls a plugin.
    MessageArena& out = leftovers_;
    std::size_t delivered = 0;
    const std::int64_t now = wall_ms();
    // Batches in flight, in the order they were sent. As for a go-back retry, everything from
    // the first message to send again on goes, so that no message overtakes an older one.
    bool resending = false;
    for (auto& f : in_flight_) {
        if (f.applied) continue;  // confirmed or handed to the error policy already
        const sluice_status whole = f.outcome ? f.outcome->status : SLUICE_RETRY;
        std::vector<bool> done(f.batch.size(), whole == SLUICE_OK);
        if (whole == SLUICE_OK) {
            for (const auto& [index, status, reason] : f.outcome->rejects) {
                if (index < done.size()) done[index] = false;
            }
        }
        for (std::size_t i = 0; i < f.batch.size(); ++i) {
            if (!done[i]) resending = true;
            if (done[i] && !resending) {
                ++delivered;
                note_delivered(f.batch.at(i), now);
            } else {
                append_flagged(out, f.batch, i);
            }
        }
    }
    counters_.delivered.fetch_add(delivered, std::memory_order_relaxed);
    in_flight_.clear();
    in_flight_count_.store(0, std::memory_order_relaxed);
    // Transformed and waiting for the sink, then read and not yet transformed, then unread.
    for (std::size_t i = 0; i < pending_.size(); ++i) append_flagged(out, pending_, i);
    pending_.clear();
    pending_read_ = 0;
    for (std::size_t i = 0; i < ingress_.size(); ++i) out.append_from(ingress_, i);
    ingress_.clear();
    while (buffer_->read(out, spec_.options.batch_size) > 0) {
    }
    buffer_->confirm(static_cast<std::size_t>(buffer_->messages()));
    batch_read_ = 0;
    counters_.undelivered.fetch_add(out.size());
}

MessageArena Route::take_leftovers() {
    counters_.undelivered.fetch_sub(leftovers_.size());
    return std::move(leftovers_);
}

void Route::append_taken_over() {
    if (taken_over_.empty()) return;
    const std::string scope = "route " + spec_.name;
    std::size_t failed = 0;
    std::string error;
    for (std::size_t i = 0; i < taken_over_.size(); ++i) {
        // Past the buffer's limit if need be: the source is held back until it has drained.
        std::string why;
        if (buffer_->append(taken_over_.at(i), UINT64_MAX, &why) != RouteBuffer::Append::ok) {
            ++failed;
            if (error.empty()) error = why;
        }
    }
    const std::size_t taken = taken_over_.size() - failed;
    counters_.taken_over.store(taken);
    log::info(scope, "took over " + std::to_string(taken) +
                         " undelivered messages from its previous version");
    if (failed > 0) {
        counters_.buffer_failures.fetch_add(failed);
        counters_.undelivered.fetch_add(failed);
        log::error(scope, std::to_string(failed) +
                              " messages of its previous version could not be buffered and are "
                              "lost: " +
                              error);
    }
    taken_over_ = MessageArena();
}

std::size_t Route::pass_transformed() {
    // Handed-over messages come first in the buffer, so the transformed ones lead a batch.
    std::size_t k = 0;
    while (k < ingress_.size() && (ingress_.at(k).flags & kRouteFlagTransformed) != 0) ++k;
    if (k == 0) return 0;
    for (std::size_t i = 0; i < k; ++i) {
        sluice_message m = ingress_.at(i);
        m.flags &= ~kRouteHostFlags;
        pending_.append(m);
    }
    scratch_.clear();
    for (std::size_t i = k; i < ingress_.size(); ++i) scratch_.append_from(ingress_, i);
    ingress_.swap(scratch_);
    scratch_.clear();
    if (taps_.active()) taps_.publish(pending_);
    return k;
}

}  // namespace sluice

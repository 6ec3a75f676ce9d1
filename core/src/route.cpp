#include "sluice/core/route.hpp"

#include <algorithm>
#include <random>

#include "sluice/core/log.hpp"

namespace sluice {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kIdleWait = milliseconds(100);
constexpr std::uint32_t kSinkRetryInitialMs = 100;
constexpr std::uint32_t kSinkRetryMaxMs = 5000;
constexpr std::uint32_t kStopDeadlineMs = 5000;

std::int64_t now_ms() {
    return std::chrono::duration_cast<milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// ±20 % jitter so that routes failing together do not retry in lockstep.
milliseconds jittered(std::uint32_t ms) {
    thread_local std::minstd_rand rng{std::random_device{}()};
    std::uniform_real_distribution<double> d(0.8, 1.2);
    return milliseconds(static_cast<std::int64_t>(ms * d(rng)));
}

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

const char* route_state_name(RouteState s) {
    switch (s) {
        case RouteState::starting: return "starting";
        case RouteState::running: return "running";
        case RouteState::degraded: return "degraded";
        case RouteState::failed: return "failed";
        case RouteState::stopped: return "stopped";
    }
    return "unknown";
}

Route::Route(RouteSpec spec)
    : spec_(std::move(spec)),
      queue_(spec_.options.queue_capacity, spec_.options.batch_size,
             spec_.options.when_full == RouteOptions::WhenFull::drop_newest) {}

Route::~Route() {
    request_stop();
    join();
}

void Route::start() { worker_ = std::thread([this] { run(); }); }

void Route::request_stop() {
    {
        std::lock_guard lock(wait_mu_);
        if (stop_requested_) return;
        drain_deadline_ = Clock::now() + milliseconds(spec_.options.drain_timeout_ms);
        stop_requested_ = true;
        wake_ = true;
    }
    queue_.wake();
    wait_cv_.notify_all();
}

std::string Route::fatal_reason() {
    std::lock_guard lock(wait_mu_);
    return fatal_reason_;
}

Clock::time_point Route::drain_deadline() {
    std::lock_guard lock(wait_mu_);
    return drain_deadline_;
}

void Route::join() {
    if (worker_.joinable()) worker_.join();
}

RouteStatus Route::status() const {
    std::lock_guard lock(state_mu_);
    return {spec_.name,
            state_,
            reason_,
            counters_.received.load(),
            counters_.delivered.load(),
            counters_.filtered.load(),
            counters_.errors.load(),
            counters_.dropped_full.load(),
            counters_.retries.load(),
            counters_.restarts.load(),
            queue_.size() + held_.load(),
            counters_.undelivered.load()};
}

void Route::set_state(RouteState s, std::string reason) {
    std::lock_guard lock(state_mu_);
    state_ = s;
    reason_ = std::move(reason);
    if (s != RouteState::degraded) degraded_stage_.clear();
}

bool Route::wait_for(Clock::time_point until) {
    // Woken once per event (a stop request, a FATAL report), not for as long as the event
    // holds: a retry back-off while draining must still sleep, not spin.
    std::unique_lock lock(wait_mu_);
    const bool woken = wait_cv_.wait_until(lock, until, [this] { return wake_; });
    wake_ = false;
    return !woken;
}

sluice_status Route::on_emit(const sluice_message& in) {
    if (in.payload_len > spec_.options.max_payload_bytes) {
        counters_.errors.fetch_add(1);
        log::warn("route " + spec_.name,
                  "source message on '" + std::string(in.topic, in.topic_len) + "' has " +
                      std::to_string(in.payload_len) + " bytes, over max_payload_bytes " +
                      std::to_string(spec_.options.max_payload_bytes) + ": dropped");
        return SLUICE_ERROR;
    }
    sluice_message m = in;
    if (m.timestamp_ms == 0) m.timestamp_ms = now_ms();
    RouteQueue::Push pushed;
    try {
        pushed = queue_.push(m);
    } catch (const std::exception& e) {  // nothing may unwind into the plugin's thread
        counters_.errors.fetch_add(1);
        log::error("route " + spec_.name, std::string("cannot queue a message: ") + e.what());
        return SLUICE_ERROR;
    }
    switch (pushed) {
        case RouteQueue::Push::ok:
            counters_.received.fetch_add(1, std::memory_order_relaxed);
            return SLUICE_OK;
        case RouteQueue::Push::dropped:
            counters_.dropped_full.fetch_add(1, std::memory_order_relaxed);
            return SLUICE_ERROR;
        case RouteQueue::Push::closed:
            break;
    }
    return SLUICE_FATAL;
}

void Route::on_end_of_input() {
    input_ended_ = true;
    queue_.wake();
}

void Route::on_report_state(const std::string& stage, sluice_status state, const char* reason) {
    const std::string why = reason ? reason : "";
    if (state == SLUICE_FATAL) {
        // Acted on by the worker: it owns the stages.
        (stage == spec_.source.label ? source_failed_ : downstream_failed_) = true;
        std::lock_guard lock(wait_mu_);
        fatal_reason_ = stage + ": " + (why.empty() ? "gave up" : why);
        wake_ = true;
        wait_cv_.notify_all();
        queue_.wake();
        return;
    }
    std::lock_guard lock(state_mu_);
    if (state == SLUICE_OK) {
        if (state_ == RouteState::degraded && degraded_stage_ == stage) {
            state_ = RouteState::running;
            reason_.clear();
            degraded_stage_.clear();
            log::info("route " + spec_.name, stage + " recovered");
        }
    } else if (state_ == RouteState::running || state_ == RouteState::degraded ||
               state_ == RouteState::starting) {
        if (reason_ != stage + ": " + why) {
            log::warn("route " + spec_.name, stage + ": " + why);
        }
        state_ = RouteState::degraded;
        reason_ = stage + ": " + why;
        degraded_stage_ = stage;
    }
}

Route::StageHost* Route::make_host(const StageSpec& s) {
    auto h = std::make_unique<StageHost>();
    h->route = this;
    h->stage = s.label;
    h->scope = "route " + spec_.name + " > " + s.label;
    h->api = {};
    h->api.struct_size = sizeof(sluice_host_api);
    h->api.abi_major = SLUICE_ABI_MAJOR;
    h->api.abi_minor = SLUICE_ABI_MINOR;
    h->api.max_payload_bytes = spec_.options.max_payload_bytes;
    h->api.ctx = h.get();
    h->api.log = [](void* ctx, int level, const char* message) {
        log::write(static_cast<sluice_log_level>(level), static_cast<StageHost*>(ctx)->scope,
                   message ? message : "");
    };
    h->api.log_enabled = [](void*, int level) {
        return log::enabled(static_cast<sluice_log_level>(level)) ? 1 : 0;
    };
    h->api.report_state = [](void* ctx, sluice_status state, const char* reason) {
        auto* host = static_cast<StageHost*>(ctx);
        host->route->on_report_state(host->stage, state, reason);
    };
    auto* raw = h.get();
    (&s == &spec_.source ? source_host_ : downstream_hosts_.emplace_back()) = std::move(h);
    return raw;
}

bool Route::build_downstream(std::string& error) {
    const StageSpec* current = &spec_.sink;
    try {
        sink_ = std::make_unique<PluginInstance>(*spec_.sink.plugin, *spec_.sink.config,
                                                 &make_host(spec_.sink)->api);
        for (const auto& t : spec_.transforms) {
            current = &t;
            transforms_.push_back(
                std::make_unique<PluginInstance>(*t.plugin, *t.config, &make_host(t)->api));
        }
    } catch (const StageFailure& f) {
        error = current->label + ": " + f.message;
        return false;
    }
    std::string err;
    if (sink_->start(nullptr, err) != SLUICE_OK) {
        error = spec_.sink.label + ": start failed: " + err;
        return false;
    }
    for (std::size_t i = 0; i < transforms_.size(); ++i) {
        if (transforms_[i]->start(nullptr, err) != SLUICE_OK) {
            error = spec_.transforms[i].label + ": start failed: " + err;
            return false;
        }
    }
    return true;
}

bool Route::build_source(std::string& error) {
    try {
        source_ = std::make_unique<PluginInstance>(*spec_.source.plugin, *spec_.source.config,
                                                   &make_host(spec_.source)->api);
    } catch (const StageFailure& f) {
        error = spec_.source.label + ": " + f.message;
        return false;
    }
    source_emitter_ = {};
    source_emitter_.struct_size = sizeof source_emitter_;
    source_emitter_.ctx = this;
    source_emitter_.emit = [](void* ctx, const sluice_message* m) {
        return m == nullptr ? SLUICE_ERROR : static_cast<Route*>(ctx)->on_emit(*m);
    };
    source_emitter_.reject = [](void*, std::size_t, sluice_status, const char*) {};
    source_emitter_.end_of_input = [](void* ctx) { static_cast<Route*>(ctx)->on_end_of_input(); };
    std::string err;
    if (source_->start(&source_emitter_, err) != SLUICE_OK) {
        error = spec_.source.label + ": start failed: " + err;
        return false;
    }
    return true;
}

void Route::teardown_source(std::uint32_t deadline_ms) {
    // A source blocked on a full queue must be able to return, or stop() would wait forever.
    queue_.set_unbounded(true);
    std::string err;
    if (source_ && source_->stop(deadline_ms, err) != SLUICE_OK) {
        log::warn("route " + spec_.name, spec_.source.label + ": stop: " + err);
    }
    source_.reset();
    source_host_.reset();
    queue_.set_unbounded(false);
}

void Route::teardown_downstream(std::uint32_t deadline_ms) {
    std::string err;
    for (std::size_t i = 0; i < transforms_.size(); ++i) {
        if (transforms_[i]->stop(deadline_ms, err) != SLUICE_OK) {
            log::warn("route " + spec_.name, spec_.transforms[i].label + ": stop: " + err);
        }
    }
    if (sink_ && sink_->stop(deadline_ms, err) != SLUICE_OK) {
        log::warn("route " + spec_.name, spec_.sink.label + ": stop: " + err);
    }
    transforms_.clear();
    sink_.reset();
    downstream_hosts_.clear();
}

void Route::handle_error(MessageArena& arena, std::size_t index, const std::string& stage,
                         const std::string& reason) {
    counters_.errors.fetch_add(1, std::memory_order_relaxed);
    // One warning per second per route at most: a flood of bad payloads must not become a
    // flood of log lines. The counter keeps the exact figure.
    const auto now = Clock::now();
    if (now - last_error_log_ < std::chrono::seconds(1)) {
        ++suppressed_errors_;
        return;
    }
    last_error_log_ = now;
    const auto& m = arena.at(index);
    std::string line = stage + ": message on '" + std::string(m.topic, m.topic_len) + "' " +
                       (spec_.options.on_error == RouteOptions::OnError::drop ? "dropped"
                                                                               : "failed") +
                       ": " + reason;
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
    MessageArena* in = &ingress_;
    for (std::size_t i = 0; i < transforms_.size(); ++i) {
        MessageArena* out = in == &work_a_ ? &work_b_ : &work_a_;
        out->clear();
        StageCall call;
        call.out = out;
        const sluice_emitter e = call.emitter();
        std::string err;
        const auto s = transforms_[i]->process(in->batch(), &e, err);
        const std::string& label = spec_.transforms[i].label;
        if (s == SLUICE_FATAL) {
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
    ingress_.clear();
    work_a_.clear();
    work_b_.clear();
    return Step::progressed;
}

Route::Step Route::deliver() {
    StageCall call;
    const sluice_emitter e = call.emitter();
    std::string err;
    const auto s = sink_->process(pending_.batch(), &e, err);
    const std::string& label = spec_.sink.label;
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
            if (!retry.empty()) {
                scratch_.clear();
                for (auto index : retry) scratch_.append_from(pending_, index);
                pending_.swap(scratch_);
                scratch_.clear();
                counters_.retries.fetch_add(1, std::memory_order_relaxed);
                wait_for(Clock::now() + jittered(retry_ms));
                retry_ms = std::min(retry_ms * 2, kSinkRetryMaxMs);
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
            wait_for(std::min(Clock::now() + jittered(retry_ms),
                              stopping() ? drain_deadline() : Clock::time_point::max()));
            retry_ms = std::min(retry_ms * 2, kSinkRetryMaxMs);
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

Route::Step Route::step() {
    Step s;
    if (pending_.empty() && ingress_.empty() && !queue_.take(ingress_, kIdleWait)) {
        s = Step::idle;
    } else if (pending_.empty()) {
        s = run_transforms();
        if (s == Step::progressed && !pending_.empty()) s = deliver();
    } else {
        s = deliver();
    }
    held_.store(ingress_.size() + pending_.size(), std::memory_order_relaxed);
    return s;
}

void Route::fail(const std::string& stage, const std::string& message) {
    const std::string reason = stage.empty() ? message : stage + ": " + message;
    set_state(RouteState::failed, reason);
    log::error("route " + spec_.name, reason);
}

void Route::run() {
    queue_.set_consumer(std::this_thread::get_id());
    try {
        run_loop();
    } catch (const std::exception& e) {
        // A host bug or exhausted memory: fail this route, not the process.
        fail("", std::string("internal error: ") + e.what());
        counters_.undelivered.store(queue_.size() + ingress_.size() + pending_.size());
        done_ = true;
    }
}

void Route::run_loop() {
    const std::string scope = "route " + spec_.name;
    std::uint32_t backoff = spec_.options.restart_initial_ms;
    auto next_attempt = Clock::now();
    bool halted = false;
    bool finished = false;
    std::uint32_t failures = 0;
    auto schedule_restart = [&] {
        ++failures;
        const auto delay = jittered(backoff);
        log::warn(scope, "restarting in " + std::to_string(delay.count()) + " ms");
        next_attempt = Clock::now() + delay;
        backoff = std::min(backoff * 2, spec_.options.restart_max_ms);
    };
    // Only the failed part is rebuilt: when a sink fails, the source keeps its connection
    // and its messages wait in the queue; when the source fails, the sink keeps delivering.
    bool source_up = false;
    bool downstream_up = false;
    while (!stopping()) {
        if (source_failed_.exchange(false) && source_up) {
            fail("", fatal_reason());
            teardown_source(kStopDeadlineMs);
            source_up = false;
            schedule_restart();
        }
        if (downstream_failed_.exchange(false) && downstream_up) {
            fail("", fatal_reason());
            teardown_downstream(kStopDeadlineMs);
            downstream_up = false;
            schedule_restart();
        }
        if (!source_up || !downstream_up) {
            if (halted) {
                wait_for(Clock::time_point::max());
                continue;
            }
            if (Clock::now() < next_attempt) {
                if (downstream_up) {
                    // Only the source is down: what the route holds still goes out.
                    if (step() == Step::idle) wait_for(std::min(next_attempt,
                                                                Clock::now() + kIdleWait));
                } else {
                    wait_for(next_attempt);
                }
                continue;
            }
            std::string error;
            if (failures > 0) counters_.restarts.fetch_add(1);
            if (!downstream_up) {
                downstream_up = build_downstream(error);
                if (!downstream_up) teardown_downstream(kStopDeadlineMs);
            }
            if (downstream_up && !source_up) {
                source_up = build_source(error);
                if (!source_up) teardown_source(kStopDeadlineMs);
            }
            if (source_up && downstream_up) {
                {
                    std::lock_guard lock(state_mu_);
                    if (state_ != RouteState::degraded) {
                        state_ = RouteState::running;
                        reason_.clear();
                    }
                }
                log::info(scope, failures > 0 ? "restarted" : "started");
            } else {
                fail("", error);
                schedule_restart();
            }
            continue;
        }
        const Step s = step();
        if (s == Step::failed) {
            teardown_downstream(kStopDeadlineMs);
            downstream_up = false;
            schedule_restart();
        } else if (s == Step::halted) {
            halted = true;
            teardown_source(kStopDeadlineMs);
            teardown_downstream(kStopDeadlineMs);
            source_up = downstream_up = false;
            log::error(scope, "halted (on_error: stop); fix the cause and reload the route");
        } else if (s == Step::progressed) {
            backoff = spec_.options.restart_initial_ms;
        } else if (input_ended_ && queue_.size() == 0 && ingress_.empty() && pending_.empty()) {
            finished = true;
            break;
        }
    }
    if (!downstream_up && !halted &&
        (queue_.size() > 0 || !ingress_.empty() || !pending_.empty())) {
        // Stopping while the sink side waits for its restart: one more try, so that what the
        // route holds is delivered if the destination is back, rather than dropped.
        std::string error;
        downstream_up = build_downstream(error);
        if (!downstream_up) {
            log::error(scope, "cannot deliver what the route holds on stop: " + error);
            teardown_downstream(kStopDeadlineMs);
        }
    }
    const bool built = downstream_up;
    if (built) {
        // Graceful stop: no new input, deliver what we hold until the drain deadline.
        std::string err;
        teardown_source(kStopDeadlineMs);
        while ((queue_.size() > 0 || !ingress_.empty() || !pending_.empty()) &&
               Clock::now() < (finished ? Clock::time_point::max() : drain_deadline())) {
            const Step s = step();
            if (s == Step::failed || s == Step::halted) break;
        }
        const std::size_t left = queue_.size() + ingress_.size() + pending_.size();
        if (left > 0) {
            log::error(scope, std::to_string(left) +
                                  " messages were not delivered before the drain deadline");
        }
        counters_.undelivered.store(left);
        const auto remaining = std::chrono::duration_cast<milliseconds>(
            drain_deadline() - Clock::now());
        teardown_downstream(static_cast<std::uint32_t>(
            std::clamp<std::int64_t>(remaining.count(), 1000, kStopDeadlineMs)));
    } else {
        teardown_source(kStopDeadlineMs);
        teardown_downstream(kStopDeadlineMs);
        const std::size_t left = queue_.size() + ingress_.size() + pending_.size();
        if (left > 0) {
            log::error(scope, std::to_string(left) + " messages were not delivered: the route " +
                                  (halted ? "was halted" : "could not deliver"));
        }
        counters_.undelivered.store(left);
    }
    const auto c = status();
    log::info(scope, std::string(finished ? "input finished" : "stopped") + ": received " +
                         std::to_string(c.received) + ", delivered " +
                         std::to_string(c.delivered) + ", errors " + std::to_string(c.errors) +
                         ", restarts " + std::to_string(c.restarts));
    {
        std::lock_guard lock(state_mu_);
        if (state_ != RouteState::failed || !halted) {
            state_ = RouteState::stopped;
            reason_ = finished ? "input finished" : "stopped";
        }
    }
    done_ = true;
}

}  // namespace sluice

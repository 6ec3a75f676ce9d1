// A route's lifecycle: opening its buffer, building and restarting its stages, stopping and
// draining. The pipeline itself is in route_pipeline.cpp, what the source hands over in
// route_ingress.cpp.
#include "sluice/core/route.hpp"

#include <algorithm>

#include "sluice/core/backoff.hpp"
#include "sluice/core/buffer/spool_buffer.hpp"
#include "sluice/core/log.hpp"

namespace sluice {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kIdleWait = milliseconds(100);
constexpr std::uint32_t kStopDeadlineMs = 5000;

}  // namespace

const char* route_state_name(RouteState s) {
    switch (s) {
        case RouteState::starting:
            return "starting";
        case RouteState::running:
            return "running";
        case RouteState::degraded:
            return "degraded";
        case RouteState::failed:
            return "failed";
        case RouteState::stopped:
            return "stopped";
    }
    return "unknown";
}

Route::Route(RouteSpec spec, std::filesystem::path state_dir)
    : spec_(std::move(spec)), state_dir_(std::move(state_dir)) {}

Route::~Route() {
    request_stop();
    join();
}

void Route::start() {
    worker_ = std::thread([this] { run(); });
}

void Route::request_stop() {
    {
        std::lock_guard lock(wait_mu_);
        if (stop_requested_) return;
        drain_deadline_ = Clock::now() + milliseconds(spec_.options.drain_timeout_ms);
        stop_requested_ = true;
        wake_ = true;
    }
    wait_cv_.notify_all();
    // Take nothing more from now on: the worker may still be inside a sink call, and what the
    // source receives meanwhile is better left with the broker (a persistent session keeps it)
    // than in a buffer that may not drain in time.
    std::lock_guard lock(flow_mu_);
    stopping_hold_ = true;
    if (!held_.load() && hold_target_ != nullptr) {
        held_.store(true);
        hold_target_->hold_input(true);
    }
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
    const std::string* call = in_call_.load(std::memory_order_acquire);
    return {spec_.name,
            state_,
            reason_,
            counters_.received.load(),
            counters_.delivered.load(),
            counters_.filtered.load(),
            counters_.errors.load(),
            counters_.dropped_full.load(),
            counters_.dropped_overflow.load(),
            counters_.dropped_oversize.load(),
            counters_.dead_lettered.load(),
            counters_.retries.load(),
            counters_.restarts.load(),
            buffer_ ? buffer_->messages() : 0,
            buffer_ ? buffer_->bytes() : 0,
            counters_.undelivered.load(),
            spec_.options.buffer.type == BufferOptions::Type::disk,
            call != nullptr ? *call : std::string(),
            counters_.holds.load(),
            counters_.dead_letter_failed.load()};
}

std::string Route::summary() const {
    // Dropped: lost to the buffer's limits. Oversize messages went to the error policy, which
    // may have dead-lettered them.
    const auto c = status();
    return "received " + std::to_string(c.received) + ", delivered " + std::to_string(c.delivered) +
           ", errors " + std::to_string(c.errors) + ", dropped " +
           std::to_string(c.dropped_full + c.dropped_overflow) + " (full " +
           std::to_string(c.dropped_full) + ", overflow " + std::to_string(c.dropped_overflow) +
           "), oversize " + std::to_string(c.dropped_oversize) + ", dead-lettered " +
           std::to_string(c.dead_lettered) + ", restarts " + std::to_string(c.restarts);
}

bool Route::holds_nothing() const {
    return buffer_->messages() == 0 && ingress_.empty() && pending_.empty() &&
           dead_letters_.empty();
}

bool Route::open_buffer(std::string& error) {
    const auto& b = spec_.options.buffer;
    try {
        std::unique_ptr<RouteBuffer> buffer;
        if (b.type == BufferOptions::Type::memory) {
            buffer = make_memory_buffer(spec_.options.batch_size);
        } else {
            const auto dir = state_dir_ / "routes" / spec_.name / "spool";
            SpoolReport report;
            buffer = make_disk_buffer(dir, b, report);
            if (report.records > 0 || report.torn_bytes > 0 || report.corrupt_records > 0) {
                log::info("route " + spec_.name,
                          "spool recovered " + std::to_string(report.records) + " messages (" +
                              std::to_string(report.bytes) + " bytes); skipped: torn tail " +
                              std::to_string(report.torn_bytes) + " bytes, corrupt records " +
                              std::to_string(report.corrupt_records) + " (" +
                              std::to_string(report.corrupt_bytes) + " bytes)");
            }
            if (report.torn_bytes > 0 || report.corrupt_records > 0) {
                log::warn("route " + spec_.name,
                          "the spool in " + dir.string() +
                              " had damaged records (a crash during a write, or a disk "
                              "fault); they were skipped, never delivered");
            }
        }
        std::lock_guard lock(state_mu_);
        buffer_ = std::move(buffer);
        return true;
    } catch (const std::exception& e) {
        error = std::string("cannot open the route's buffer: ") + e.what();
        return false;
    }
}

void Route::set_state(RouteState s, std::string reason) {
    std::lock_guard lock(state_mu_);
    state_ = s;
    reason_ = std::move(reason);
    if (s != RouteState::degraded) degraded_stage_.clear();
}

bool Route::wait_for(Clock::time_point until) {
    // Woken once per event (a stop request, a FATAL report), not for as long as the event
    // holds: a retry back-off while draining must still sleep, not spin. New input does not
    // end a back-off.
    std::unique_lock lock(wait_mu_);
    const bool woken = wait_cv_.wait_until(lock, until, [this] { return wake_; });
    wake_ = false;
    return !woken;
}

void Route::wait_for_input(Clock::time_point until) {
    std::unique_lock lock(wait_mu_);
    worker_waiting_.store(true);
    // seq_cst pairs with take(): either this sees the new message, or take() sees us waiting.
    if (buffer_->unread() == 0) {
        wait_cv_.wait_until(lock, until, [this] { return wake_ || input_ready_; });
    }
    worker_waiting_.store(false);
    input_ready_ = false;
    wake_ = false;
}

void Route::on_end_of_input() {
    input_ended_ = true;
    std::lock_guard lock(wait_mu_);
    wake_ = true;
    wait_cv_.notify_all();
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
        if (spec_.dead_letter.plugin != nullptr) {
            current = &spec_.dead_letter;
            dead_letter_ = std::make_unique<PluginInstance>(*spec_.dead_letter.plugin,
                                                            *spec_.dead_letter.config,
                                                            &make_host(spec_.dead_letter)->api);
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
    if (dead_letter_ && dead_letter_->start(nullptr, err) != SLUICE_OK) {
        error = spec_.dead_letter.label + ": start failed: " + err;
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
    source_can_hold_.store(source_->can_hold_input());
    std::string err;
    if (source_->start(&source_emitter_, err) != SLUICE_OK) {
        error = spec_.source.label + ": start failed: " + err;
        return false;
    }
    set_hold_target(source_.get());
    return true;
}

void Route::teardown_source(std::uint32_t deadline_ms) {
    // No more hold requests to an instance being stopped; and a source waiting for room
    // (ABI 1.0) must be able to return, or stop() would wait forever. What it still emits
    // while stopping is taken: it was acknowledged to its origin already.
    set_hold_target(nullptr);
    releasing_source_.store(true);
    room_cv_.notify_all();
    std::string err;
    if (source_ && source_->stop(deadline_ms, err) != SLUICE_OK) {
        log::warn("route " + spec_.name, spec_.source.label + ": stop: " + err);
    }
    source_.reset();
    source_host_.reset();
    releasing_source_.store(false);
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
    if (dead_letter_ && dead_letter_->stop(deadline_ms, err) != SLUICE_OK) {
        log::warn("route " + spec_.name, spec_.dead_letter.label + ": stop: " + err);
    }
    transforms_.clear();
    sink_.reset();
    dead_letter_.reset();
    downstream_hosts_.clear();
}

void Route::fail(const std::string& stage, const std::string& message) {
    const std::string reason = stage.empty() ? message : stage + ": " + message;
    set_state(RouteState::failed, reason);
    log::error("route " + spec_.name, reason);
}

void Route::run() {
    worker_id_ = std::this_thread::get_id();
    try {
        run_loop();
    } catch (const std::exception& e) {
        // A host bug or exhausted memory: fail this route, not the process. Its source must
        // not keep acknowledging messages that nothing will take.
        closed_ = true;
        fail("", std::string("internal error: ") + e.what());
        try {
            teardown_source(kStopDeadlineMs);
            teardown_downstream(kStopDeadlineMs);
        } catch (const std::exception&) {
        }
        if (buffer_ && !buffer_->durable()) counters_.undelivered.store(buffer_->messages());
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
    while (!stopping() && !buffer_) {
        std::string error;
        if (open_buffer(error)) break;
        // A spool that cannot be opened (permissions, a full disk) may be fixed meanwhile.
        fail("", error);
        schedule_restart();
        wait_for(next_attempt);
    }
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
                    const Step s = step();
                    if (s == Step::empty) {
                        wait_for_input(std::min(next_attempt, Clock::now() + kIdleWait));
                    }
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
        } else if (s == Step::empty) {
            if (input_ended_ && holds_nothing()) {
                finished = true;
                break;
            }
            wait_for_input(Clock::now() + kIdleWait);
        }
    }
    if (!buffer_) {
        closed_ = true;
        teardown_source(kStopDeadlineMs);
        teardown_downstream(kStopDeadlineMs);
        set_state(RouteState::stopped, "stopped before its buffer could be opened");
        done_ = true;
        return;
    }
    if (!downstream_up && !halted && !holds_nothing()) {
        // Stopping while the sink side waits for its restart: one more try, so that what the
        // route holds is delivered if the destination is back, rather than dropped.
        std::string error;
        downstream_up = build_downstream(error);
        if (!downstream_up) {
            log::error(scope, "cannot deliver what the route holds on stop: " + error);
            teardown_downstream(kStopDeadlineMs);
        }
    }
    const bool durable = buffer_->durable();
    if (downstream_up) {
        // Graceful stop: no new input, deliver what we hold until the drain deadline.
        teardown_source(kStopDeadlineMs);
        closed_ = true;
        while (!holds_nothing() &&
               Clock::now() < (finished ? Clock::time_point::max() : drain_deadline())) {
            const Step s = step();
            if (s == Step::failed || s == Step::halted) break;
        }
        const auto remaining =
            std::chrono::duration_cast<milliseconds>(drain_deadline() - Clock::now());
        teardown_downstream(static_cast<std::uint32_t>(
            std::clamp<std::int64_t>(remaining.count(), 1000, kStopDeadlineMs)));
    } else {
        teardown_source(kStopDeadlineMs);
        closed_ = true;
        teardown_downstream(kStopDeadlineMs);
    }
    // A disk spool keeps everything it has not confirmed (and replays a partly delivered
    // batch whole); what was not delivered is what was never read plus what is in flight.
    const std::uint64_t left =
        durable ? buffer_->messages()
                : buffer_->unread() + ingress_.size() + pending_.size() + dead_letters_.size();
    if (left > 0 && durable) {
        log::warn(scope, std::to_string(left) +
                             " messages were not delivered before the route stopped; they stay "
                             "in its disk spool and are delivered after the next start");
    } else if (left > 0) {
        log::error(scope, std::to_string(left) + " messages were not delivered and are lost: " +
                              (halted          ? "the route was halted"
                               : downstream_up ? "the drain deadline passed"
                                               : "the route could not deliver") +
                              " (a disk buffer would have kept them)");
        counters_.undelivered.store(left);
    }
    buffer_->flush();
    log::info(scope, std::string(finished ? "input finished" : "stopped") + ": " + summary());
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

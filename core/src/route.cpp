// A route's lifecycle as a state machine run in slices on the executor: opening its buffer,
// building and restarting its stages, stopping and draining. Nothing here sleeps: a back-off
// or a restart delay is a timer, waiting for input is a flag that the next message clears.
// The pipeline itself is in route_pipeline.cpp, what the source hands over in
// route_ingress.cpp.
#include "sluice/core/route.hpp"

#include <algorithm>
#include <cstdio>
#include <random>

#include "sluice/core/backoff.hpp"
#include "sluice/core/buffer/spool_buffer.hpp"
#include "sluice/core/log.hpp"

namespace sluice {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::uint32_t kStopDeadlineMs = 5000;

// The route whose slice this thread runs: a source emitting from inside its own start() or
// stop() runs on it, and must never wait for room only that slice could make.
thread_local const Route* t_running = nullptr;

}  // namespace

bool Route::on_own_thread() const { return t_running == this; }

namespace {

// FNV-1a 64 under a key drawn once per process: equal manifests give equal hashes within the
// process (what a reload compares), and the hash of a manifest that holds a password cannot be
// looked up in a table made elsewhere.
std::string config_hash_of(const std::string& fingerprint) {
    static const std::uint64_t key = [] {
        std::random_device rd;
        return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    }();
    std::uint64_t h = 14695981039346656037ull ^ key;
    for (const char c : fingerprint) {
        h ^= static_cast<unsigned char>(c);
        h *= 1099511628211ull;
    }
    char out[17];
    std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
    return out;
}

std::vector<std::pair<std::string, std::string>> plugins_of(const RouteSpec& spec) {
    std::vector<std::pair<std::string, std::string>> out;
    const auto add = [&out](const StageSpec& s) {
        if (s.plugin != nullptr) out.emplace_back(s.label, s.plugin->id + " " + s.plugin->version);
    };
    add(spec.source);
    for (const auto& t : spec.transforms) add(t);
    add(spec.sink);
    add(spec.dead_letter);
    return out;
}

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

Route::Route(RouteSpec spec, Executor& executor, std::filesystem::path state_dir,
             std::uint64_t memory_budget)
    : spec_(std::move(spec)),
      executor_(executor),
      state_dir_(std::move(state_dir)),
      memory_budget_(memory_budget) {
    backoff_ms_ = spec_.options.restart_initial_ms;
    config_hash_ = config_hash_of(spec_.fingerprint());
    stop_labels_.push_back(spec_.source.label + " (stop)");
    for (const auto& t : spec_.transforms) stop_labels_.push_back(t.label + " (stop)");
    stop_labels_.push_back(spec_.sink.label + " (stop)");
    stop_labels_.push_back(spec_.dead_letter.label + " (stop)");
    stop_labels_.push_back("destroying the sink side");
    stop_labels_.push_back(spec_.source.label + " (destroy)");
    state_since_ms_ = wall_ms();
    completion_.struct_size = sizeof completion_;
    completion_.ctx = this;
    completion_.complete = [](void* ctx, std::uint64_t token, sluice_status status,
                              const char* reason, std::size_t n, const sluice_reject* rejects) {
        static_cast<Route*>(ctx)->on_complete(token, status, reason, n, rejects);
    };
}

Route::~Route() {
    request_stop();
    join();
    if (slot_) executor_.remove(*slot_);
}

void Route::start() {
    slot_ = executor_.add(*this);
    executor_.schedule(*slot_);
}

void Route::again() {
    if (slot_) executor_.schedule(*slot_);
}

void Route::wake_at(Clock::time_point when) {
    if (slot_) executor_.schedule_at(*slot_, when);
}

void Route::wait_input() {
    idle_.store(true);
    // seq_cst pairs with take(): either this sees the new message, or take() sees us idle.
    if (buffer_->unread() > 0 && idle_.exchange(false)) again();
}

void Route::request_stop(Leftovers leftovers) {
    {
        std::lock_guard lock(wait_mu_);
        if (stop_requested_) return;
        hand_over_ = leftovers == Leftovers::hand_over;
        drain_deadline_ = Clock::now() + milliseconds(spec_.options.drain_timeout_ms);
        stop_requested_ = true;
    }
    // Take nothing more from now on: the route may still be inside a sink call, and what the
    // source receives meanwhile is better left with the broker (a persistent session keeps it)
    // than in a buffer that may not drain in time.
    {
        std::lock_guard lock(flow_mu_);
        stopping_hold_ = true;
        if (!held_.load() && hold_target_ != nullptr) {
            held_.store(true);
            hold_target_->hold_input(true);
        }
    }
    again();
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
    if (!slot_) return;
    std::unique_lock lock(wait_mu_);
    done_cv_.wait(lock, [this] { return done_.load(); });
}

RouteStatus Route::status() const {
    std::lock_guard lock(state_mu_);
    const std::string* call = in_call_.load(std::memory_order_acquire);
    const RouteCounters& c = counters_;
    RouteStatus s{};
    s.name = spec_.name;
    s.state = state_;
    s.reason = reason_;
    s.received = c.received.load();
    s.delivered = c.delivered.load();
    s.filtered = c.filtered.load();
    s.errors = c.errors.load();
    s.dropped_full = c.dropped_full.load();
    s.dropped_overflow = c.dropped_overflow.load();
    s.dropped_oversize = c.dropped_oversize.load();
    s.dead_lettered = c.dead_lettered.load();
    s.retries = c.retries.load();
    s.restarts = c.restarts.load();
    s.buffered = buffer_ ? buffer_->messages() : 0;
    s.buffered_bytes = buffer_ ? buffer_->bytes() : 0;
    s.undelivered = c.undelivered.load();
    s.taken_over = c.taken_over.load();
    s.durable = spec_.options.buffer.type == BufferOptions::Type::disk;
    s.stuck_in = call != nullptr ? *call : std::string();
    s.holds = c.holds.load();
    s.dead_letter_failed = c.dead_letter_failed.load();
    s.in_flight = in_flight_count_.load();
    s.spare_bytes = spare_bytes_.load();
    s.bytes_received = c.bytes_received.load();
    s.bytes_delivered = c.bytes_delivered.load();
    for (std::size_t i = 0; i < s.latency.size(); ++i) s.latency[i] = c.latency[i].load();
    s.latency_sum_ms = c.latency_sum_ms.load();
    s.file = spec_.where.file;
    s.config_hash = config_hash_;
    s.plugins = plugins_of(spec_);
    s.state_since_ms = state_since_ms_;
    s.last_error = last_error_;
    s.last_error_ms = last_error_ms_;
    return s;
}

void Route::note_delivered(const sluice_message& m, std::int64_t now_ms) {
    counters_.bytes_delivered.fetch_add(m.payload_len, std::memory_order_relaxed);
    const std::uint64_t ms = m.timestamp_ms > 0 && now_ms > m.timestamp_ms
                                 ? static_cast<std::uint64_t>(now_ms - m.timestamp_ms)
                                 : 0;
    std::size_t b = 0;
    while (b < kLatencyBucketsMs.size() && ms > kLatencyBucketsMs[b]) ++b;
    counters_.latency[b].fetch_add(1, std::memory_order_relaxed);
    counters_.latency_sum_ms.fetch_add(ms, std::memory_order_relaxed);
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
           dead_letters_.empty() && in_flight_.empty() && pending_read_ == 0;
}

std::uint64_t Route::held_in_memory() const {
    return buffer_->unread() + ingress_.size() + pending_.size() + dead_letters_.size() +
           in_flight_messages();
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
    if (s != state_) state_since_ms_ = wall_ms();
    if (s == RouteState::failed || s == RouteState::degraded) note_error(reason);
    state_ = s;
    reason_ = std::move(reason);
    if (s != RouteState::degraded) degraded_stage_.clear();
}

void Route::note_error(const std::string& reason) {
    if (reason.empty()) return;
    last_error_ = reason;
    last_error_ms_ = wall_ms();
}

void Route::on_end_of_input() {
    input_ended_ = true;
    again();
}

void Route::on_report_state(const std::string& stage, sluice_status state, const char* reason) {
    const std::string why = reason ? reason : "";
    if (state == SLUICE_FATAL) {
        // Acted on by the route's next slice: it owns the stages.
        (stage == spec_.source.label ? source_failed_ : downstream_failed_) = true;
        {
            std::lock_guard lock(wait_mu_);
            fatal_reason_ = stage + ": " + (why.empty() ? "gave up" : why);
        }
        again();
        return;
    }
    std::lock_guard lock(state_mu_);
    if (state == SLUICE_OK) {
        if (state_ == RouteState::degraded && degraded_stage_ == stage) {
            state_ = RouteState::running;
            state_since_ms_ = wall_ms();
            reason_.clear();
            degraded_stage_.clear();
            log::info("route " + spec_.name, stage + " recovered");
        }
    } else if (state_ == RouteState::running || state_ == RouteState::degraded ||
               state_ == RouteState::starting) {
        if (reason_ != stage + ": " + why) {
            log::warn("route " + spec_.name, stage + ": " + why);
            note_error(stage + ": " + why);
        }
        if (state_ != RouteState::degraded) state_since_ms_ = wall_ms();
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
    h->api.memory_budget_bytes = memory_budget_;
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

void Route::install(std::unique_ptr<PluginInstance>& slot, std::unique_ptr<PluginInstance> made) {
    {
        std::lock_guard lock(instances_mu_);
        slot.swap(made);
    }
    // `made` now holds the old instance: destroyed here, where a scrape does not wait for it.
}

void Route::plugin_metrics(std::vector<PluginMetric>& out) const {
    PluginMetricCollector collector(out, spec_.name);
    const auto collect = [&](const PluginInstance* instance, const StageSpec& stage) {
        if (instance == nullptr || stage.plugin == nullptr) return;
        instance->metrics(
            collector.writer_for(stage.label.substr(0, stage.label.find(' ')), stage.plugin->id));
    };
    std::lock_guard lock(instances_mu_);
    collect(source_.get(), spec_.source);
    for (std::size_t i = 0; i < transforms_.size() && i < spec_.transforms.size(); ++i) {
        collect(transforms_[i].get(), spec_.transforms[i]);
    }
    collect(sink_.get(), spec_.sink);
    collect(dead_letter_.get(), spec_.dead_letter);
}

bool Route::build_downstream(std::string& error) {
    const StageSpec* current = &spec_.sink;
    try {
        install(sink_, std::make_unique<PluginInstance>(*spec_.sink.plugin, *spec_.sink.config,
                                                        &make_host(spec_.sink)->api));
        for (const auto& t : spec_.transforms) {
            current = &t;
            auto made = std::make_unique<PluginInstance>(*t.plugin, *t.config, &make_host(t)->api);
            std::lock_guard lock(instances_mu_);
            transforms_.push_back(std::move(made));
        }
        if (spec_.dead_letter.plugin != nullptr) {
            current = &spec_.dead_letter;
            install(dead_letter_, std::make_unique<PluginInstance>(
                                      *spec_.dead_letter.plugin, *spec_.dead_letter.config,
                                      &make_host(spec_.dead_letter)->api));
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
        install(source_,
                std::make_unique<PluginInstance>(*spec_.source.plugin, *spec_.source.config,
                                                 &make_host(spec_.source)->api));
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
    // Until start() returns the source cannot be asked to hold back (abi.h): what it emits
    // meanwhile, on its own threads, is taken whatever the headroom, and the hold follows
    // at once if the buffer filled.
    starting_source_.store(true);
    const bool started = source_->start(&source_emitter_, err) == SLUICE_OK;
    if (!started) {
        starting_source_.store(false);
        error = spec_.source.label + ": start failed: " + err;
        return false;
    }
    set_hold_target(source_.get());
    starting_source_.store(false);
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
    in_call_.store(&stop_labels_.front(), std::memory_order_release);
    if (source_ && source_->stop(deadline_ms, err) != SLUICE_OK) {
        log::warn("route " + spec_.name, spec_.source.label + ": stop: " + err);
    }
    // Destroying a client library's connection can block as well (paho joins its threads).
    in_call_.store(&stop_labels_.back(), std::memory_order_release);
    install(source_, nullptr);
    source_host_.reset();
    in_call_.store(nullptr, std::memory_order_release);
    releasing_source_.store(false);
}

void Route::teardown_downstream(std::uint32_t deadline_ms) {
    {
        std::lock_guard lock(call_mu_);
        submitted_to_ = nullptr;
    }
    std::string err;
    // A stop() that never returns shows in the status and in the give-up message at exit
    // (stuck_in), as a call in progress does.
    // stop_labels_: the source, each transform, the sink, the dead-letter sink, destroying the
    // sink side, destroying the source.
    const auto stopping = [this](std::size_t k) {
        in_call_.store(&stop_labels_[k], std::memory_order_release);
    };
    for (std::size_t i = 0; i < transforms_.size(); ++i) {
        stopping(1 + i);
        if (transforms_[i]->stop(deadline_ms, err) != SLUICE_OK) {
            log::warn("route " + spec_.name, spec_.transforms[i].label + ": stop: " + err);
        }
    }
    const std::size_t after = 1 + spec_.transforms.size();
    stopping(after);
    if (sink_ && sink_->stop(deadline_ms, err) != SLUICE_OK) {
        log::warn("route " + spec_.name, spec_.sink.label + ": stop: " + err);
    }
    stopping(after + 1);
    if (dead_letter_ && dead_letter_->stop(deadline_ms, err) != SLUICE_OK) {
        log::warn("route " + spec_.name, spec_.dead_letter.label + ": stop: " + err);
    }
    stopping(after + 2);
    {
        std::vector<std::unique_ptr<PluginInstance>> gone;
        {
            std::lock_guard lock(instances_mu_);
            gone.swap(transforms_);
        }
    }
    install(sink_, nullptr);
    // The sink's stop() settled what it had in flight; a sink that did not is taken at its
    // word that nothing more comes: what it held goes again with the rebuilt sink.
    settle_all_in_flight("the sink stopped without confirming it");
    install(dead_letter_, nullptr);
    in_call_.store(nullptr, std::memory_order_release);
    downstream_hosts_.clear();
}

void Route::fail(const std::string& stage, const std::string& message) {
    const std::string reason = stage.empty() ? message : stage + ": " + message;
    set_state(RouteState::failed, reason);
    log::error("route " + spec_.name, reason);
}

void Route::schedule_restart() {
    ++failures_;
    const auto delay = jittered(backoff_ms_);
    log::warn("route " + spec_.name, "restarting in " + std::to_string(delay.count()) + " ms");
    next_attempt_ = Clock::now() + delay;
    backoff_ms_ = std::min(backoff_ms_ * 2, spec_.options.restart_max_ms);
}

void Route::run_slice() {
    t_running = this;
    try {
        slice();
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
        phase_ = Phase::done;
        std::lock_guard lock(wait_mu_);
        done_ = true;
        done_cv_.notify_all();
    }
    t_running = nullptr;
}

void Route::on_overdue(milliseconds elapsed) {
    // The watchdog, while this route's slice is still running. A plugin call past
    // call_timeout_ms fails the route: asked to end, and restarted once it has returned.
    const std::string* call = in_call_.load(std::memory_order_acquire);
    if (call == nullptr || elapsed < milliseconds(spec_.options.call_timeout_ms)) return;
    if (call_overdue_.exchange(true)) return;
    const std::string reason = *call + ": has not returned for " + std::to_string(elapsed.count()) +
                               " ms (call_timeout_ms " +
                               std::to_string(spec_.options.call_timeout_ms) + ")";
    set_state(RouteState::failed, reason);
    log::error("route " + spec_.name, reason + "; asking it to end, other routes go on");
    std::lock_guard lock(call_mu_);
    if (calling_ != nullptr) calling_->interrupt();
}

void Route::slice() {
    switch (phase_) {
        case Phase::opening:
            slice_opening();
            return;
        case Phase::running:
            slice_running();
            return;
        case Phase::draining:
            slice_draining();
            return;
        case Phase::done:
            return;
    }
}

void Route::slice_opening() {
    if (stopping()) {
        closed_ = true;
        if (!taken_over_.empty()) {
            if (hand_over_) {
                leftovers_ = std::move(taken_over_);
            } else {
                counters_.undelivered.fetch_add(taken_over_.size());
                log::error("route " + spec_.name,
                           std::to_string(taken_over_.size()) +
                               " messages taken over from its previous version are lost: the "
                               "route stopped before its buffer could be opened");
            }
        }
        finish(RouteState::stopped, "stopped before its buffer could be opened");
        return;
    }
    if (Clock::now() < next_attempt_) {
        wake_at(next_attempt_);
        return;
    }
    std::string error;
    if (open_buffer(error)) {
        append_taken_over();
        phase_ = Phase::running;
        failures_ = 0;
        backoff_ms_ = spec_.options.restart_initial_ms;
        next_attempt_ = {};
        again();
        return;
    }
    // A spool that cannot be opened (permissions, a full disk) may be fixed meanwhile.
    fail("", error);
    schedule_restart();
    wake_at(next_attempt_);
}

void Route::slice_running() {
    const std::string scope = "route " + spec_.name;
    if (stopping()) {
        begin_drain();
        return;
    }
    if (source_failed_.exchange(false) && source_up_) {
        fail("", fatal_reason());
        teardown_source(kStopDeadlineMs);
        source_up_ = false;
        schedule_restart();
    }
    if (downstream_failed_.exchange(false) && downstream_up_) {
        fail("", fatal_reason());
        teardown_downstream(kStopDeadlineMs);
        downstream_up_ = false;
        schedule_restart();
    }
    // Only the failed part is rebuilt: when a sink fails, the source keeps its connection
    // and its messages wait in the buffer; when the source fails, the sink keeps delivering.
    if (!source_up_ || !downstream_up_) {
        if (halted_) return;  // until stopped (a reload will replace it)
        const auto now = Clock::now();
        if (now < next_attempt_) {
            if (downstream_up_) {
                // Only the source is down: what the route holds still goes out.
                const Step s = step();
                if (s == Step::progressed) {
                    again();
                } else if (s == Step::idle) {
                    wake_at(retry_at_);
                } else if (s == Step::empty) {
                    wait_input();
                }
            }
            wake_at(next_attempt_);
            return;
        }
        std::string error;
        if (failures_ > 0) counters_.restarts.fetch_add(1);
        if (!downstream_up_) {
            downstream_up_ = build_downstream(error);
            if (!downstream_up_) teardown_downstream(kStopDeadlineMs);
        }
        if (downstream_up_ && !source_up_) {
            source_up_ = build_source(error);
            if (!source_up_) teardown_source(kStopDeadlineMs);
        }
        if (source_up_ && downstream_up_) {
            {
                std::lock_guard lock(state_mu_);
                if (state_ != RouteState::degraded) {
                    state_ = RouteState::running;
                    reason_.clear();
                }
            }
            log::info(scope, failures_ > 0 ? "restarted" : "started");
        } else {
            fail("", error);
            schedule_restart();
        }
        again();
        return;
    }
    const Step s = step();
    switch (s) {
        case Step::failed:
            teardown_downstream(kStopDeadlineMs);
            downstream_up_ = false;
            schedule_restart();
            wake_at(next_attempt_);
            return;
        case Step::halted:
            halted_ = true;
            teardown_source(kStopDeadlineMs);
            teardown_downstream(kStopDeadlineMs);
            source_up_ = downstream_up_ = false;
            log::error(scope, "halted (on_error: stop); fix the cause and reload the route");
            return;
        case Step::progressed:
            backoff_ms_ = spec_.options.restart_initial_ms;
            again();
            return;
        case Step::idle:
            wake_at(retry_at_);
            return;
        case Step::waiting:
            return;  // a completion schedules the route
        case Step::empty:
            if (input_ended_ && holds_nothing()) {
                finished_ = true;
                begin_drain();
                return;
            }
            trim_memory();
            wait_input();
            return;
    }
}

void Route::begin_drain() {
    const std::string scope = "route " + spec_.name;
    const bool handing_over = hand_over_ && !buffer_->durable();
    if (!downstream_up_ && !halted_ && !handing_over && !holds_nothing()) {
        // Stopping while the sink side waits for its restart: one more try, so that what the
        // route holds is delivered if the destination is back, rather than dropped. (A route
        // that hands what it holds to its new version lets that one try, with its new config.)
        std::string error;
        downstream_up_ = build_downstream(error);
        if (!downstream_up_) {
            log::error(scope, "cannot deliver what the route holds on stop: " + error);
            teardown_downstream(kStopDeadlineMs);
        }
    }
    // Graceful stop: no new input, deliver what we hold until the drain deadline.
    teardown_source(kStopDeadlineMs);
    source_up_ = false;
    closed_ = true;
    phase_ = Phase::draining;
    again();
}

void Route::slice_draining() {
    const auto deadline = finished_ ? Clock::time_point::max() : drain_deadline();
    if (downstream_up_ && !holds_nothing() && Clock::now() < deadline) {
        const Step s = step();
        switch (s) {
            case Step::failed:
            case Step::halted:
                break;
            case Step::progressed:
                again();
                return;
            case Step::idle:
                wake_at(std::min(retry_at_, deadline));
                return;
            case Step::waiting:
            case Step::empty:
                // What is left is in flight: its completion (or the deadline) wakes us.
                if (!in_flight_.empty()) {
                    wake_at(deadline);
                    return;
                }
                again();
                return;
        }
    }
    finish_drain();
}

void Route::finish_drain() {
    const std::string scope = "route " + spec_.name;
    const bool durable = buffer_->durable();
    if (downstream_up_) {
        const auto remaining =
            std::chrono::duration_cast<milliseconds>(drain_deadline() - Clock::now());
        teardown_downstream(static_cast<std::uint32_t>(
            std::clamp<std::int64_t>(remaining.count(), 1000, kStopDeadlineMs)));
    } else {
        teardown_downstream(kStopDeadlineMs);
    }
    // What a sink settled while it stopped is not delivered: count it with the rest.
    absorb_completions();
    if (hand_over_ && !durable) {
        collect_leftovers();
        if (!leftovers_.empty()) {
            log::info(scope, std::to_string(leftovers_.size()) +
                                 " undelivered messages are handed to the route's new version");
        }
    }
    // A disk spool keeps everything it has not confirmed (and replays a partly delivered
    // batch whole); what was not delivered is what was never read plus what is in flight.
    const std::uint64_t left = durable ? buffer_->messages() : held_in_memory();
    if (left > 0 && durable) {
        log::warn(scope, std::to_string(left) +
                             " messages were not delivered before the route stopped; they stay "
                             "in its disk spool and are delivered after the next start");
    } else if (left > 0) {
        log::error(scope, std::to_string(left) + " messages were not delivered and are lost: " +
                              (halted_          ? "the route was halted"
                               : downstream_up_ ? "the drain deadline passed"
                                                : "the route could not deliver") +
                              " (a disk buffer would have kept them)");
        counters_.undelivered.fetch_add(left);
    }
    buffer_->flush();
    log::info(scope, std::string(finished_ ? "input finished" : "stopped") + ": " + summary());
    {
        std::lock_guard lock(state_mu_);
        if (state_ != RouteState::failed || !halted_) {
            state_ = RouteState::stopped;
            reason_ = finished_ ? "input finished" : "stopped";
        }
    }
    phase_ = Phase::done;
    std::lock_guard lock(wait_mu_);
    done_ = true;
    done_cv_.notify_all();
}

void Route::finish(RouteState state, const std::string& reason) {
    teardown_source(kStopDeadlineMs);
    teardown_downstream(kStopDeadlineMs);
    set_state(state, reason);
    phase_ = Phase::done;
    std::lock_guard lock(wait_mu_);
    done_ = true;
    done_cv_.notify_all();
}

}  // namespace sluice

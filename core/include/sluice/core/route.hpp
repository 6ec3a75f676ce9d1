// A route: one isolated pipeline (source -> transforms -> sink) with its own plugin instances,
// buffer (memory or durable disk spool, bounded in bytes), counters and state. It runs as a
// task on the shared Executor: a strand of short slices, scheduled only when it has something
// to do, so that thousands of idle routes cost no thread and no wake-up. A failing stage fails
// only its route, which restarts itself with exponential back-off while keeping the messages it
// holds. The parts live in their own files: route.cpp (lifecycle: build, restart, stop and
// drain, as a state machine), route_ingress.cpp (what the source hands over, flow control),
// route_pipeline.cpp (transforms, delivery, retries, the error policy) and route_inflight.cpp
// (pipelined delivery: batches in flight, completions, go-back-N retries); route_handover.cpp
// (what a memory buffer's old version passes to the new one at a reload).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "sluice/core/buffer/route_buffer.hpp"
#include "sluice/core/manifest.hpp"
#include "sluice/core/message_arena.hpp"
#include "sluice/core/plugin_instance.hpp"
#include "sluice/core/plugin_metric.hpp"
#include "sluice/core/runtime/executor.hpp"
#include "sluice/core/tap.hpp"

namespace sluice {

enum class RouteState { starting, running, degraded, failed, stopped };

/// sluice_message.flags bits the host keeps for itself inside a route (never seen by plugins):
/// the message is over max_payload_bytes and goes to the error policy, not the pipeline.
constexpr std::uint32_t kRouteFlagOversize = 0x80000000u;
/// The message went through the transforms of the route's previous version, which handed it
/// over at a reload: the new version sends it to its sink as it is.
constexpr std::uint32_t kRouteFlagTransformed = 0x40000000u;
constexpr std::uint32_t kRouteHostFlags = 0xff000000u;
const char* route_state_name(RouteState s);

/// Upper bounds, in milliseconds, of the delivery latency histogram's buckets (then +Inf).
inline constexpr std::array<std::uint64_t, 13> kLatencyBucketsMs{
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};

struct RouteCounters {
    std::atomic<std::uint64_t> received{0};            // taken from the source
    std::atomic<std::uint64_t> delivered{0};           // confirmed by the sink
    std::atomic<std::uint64_t> filtered{0};            // removed by transforms on purpose
    std::atomic<std::uint64_t> errors{0};              // handed to the error policy
    std::atomic<std::uint64_t> dropped_full{0};        // dropped by when_full (newest or oldest)
    std::atomic<std::uint64_t> dropped_overflow{0};    // past the headroom while holding back
    std::atomic<std::uint64_t> dropped_oversize{0};    // over max_payload_bytes
    std::atomic<std::uint64_t> dead_lettered{0};       // handed to the dead-letter sink
    std::atomic<std::uint64_t> dead_letter_failed{0};  // refused by the dead-letter sink
    std::atomic<std::uint64_t> buffer_failures{0};     // the spool could not take a message
    std::atomic<std::uint64_t> holds{0};               // times the source was held back
    std::atomic<std::uint64_t> retries{0};             // sink retries
    std::atomic<std::uint64_t> restarts{0};            // times the route was rebuilt after failing
    std::atomic<std::uint64_t> undelivered{0};         // held when the route stopped, not delivered
    std::atomic<std::uint64_t> taken_over{0};          // given by the previous version at a reload
    std::atomic<std::uint64_t> resent{0};  // sent again by a go-back retry after Kafka confirmed
    std::atomic<std::uint64_t> bytes_received{0};   // payload bytes taken from the source
    std::atomic<std::uint64_t> bytes_delivered{0};  // payload bytes the sink confirmed
    // Receipt (the message's timestamp) to the sink's confirmation, in the buckets of
    // kLatencyBucketsMs (the last one counts the rest); sum in milliseconds.
    std::array<std::atomic<std::uint64_t>, 14> latency{};
    std::atomic<std::uint64_t> latency_sum_ms{0};
};

struct RouteStatus {
    std::string name;
    RouteState state;
    std::string reason;
    std::uint64_t received, delivered, filtered, errors, dropped_full, dropped_overflow,
        dropped_oversize, dead_lettered, retries, restarts;
    std::uint64_t buffered, buffered_bytes;
    std::uint64_t undelivered;
    std::uint64_t taken_over;  // from the route's previous version at a reload
    bool durable;              // what is buffered survives a restart (disk spool)
    std::string stuck_in;      // the plugin call in progress, when the worker is inside one
    std::uint64_t holds;       // times the source was held back (buffer full)
    std::uint64_t dead_letter_failed;
    std::uint64_t in_flight;  // batches handed to a pipelined sink, not yet confirmed
    // Heap the route kept for reuse (empty arenas) when it last went idle: what a burst left.
    std::uint64_t spare_bytes;
    std::uint64_t bytes_received, bytes_delivered;
    std::array<std::uint64_t, 14> latency;  // per bucket of kLatencyBucketsMs, then the rest
    std::uint64_t latency_sum_ms;
    // What the route was made from, for the admin API.
    std::string file;         // its manifest
    std::string config_hash;  // 16 hex digits: equal for equal manifests within this process
    std::vector<std::pair<std::string, std::string>> plugins;  // (stage, "id version")
    std::int64_t state_since_ms;  // wall clock of the last change of state
    std::string last_error;       // the last reason the route was degraded or failed
    std::int64_t last_error_ms;   // its wall clock time; 0: none yet
    // The last reload (set by the supervisor): when, what it did to this route (unchanged,
    // changed, added, rejected), and why it was rejected.
    std::int64_t last_reload_ms = 0;
    std::string last_reload_change;
    std::vector<std::string> reload_errors;
};

class Route : private Executor::Task {
public:
    /// `state_dir`: where a disk buffer keeps its spool (routes/<name>/spool). `executor` runs
    /// the route and must outlive it.
    /// `memory_budget`: what the process's memory budget leaves beyond the routes' buffers,
    /// told to its plugins (sluice_host_api.memory_budget_bytes; 0: unknown).
    Route(RouteSpec spec, Executor& executor, std::filesystem::path state_dir = {},
          std::uint64_t memory_budget = 0);
    ~Route() override;
    Route(const Route&) = delete;
    Route& operator=(const Route&) = delete;

    const std::string& name() const { return spec_.name; }
    const RouteSpec& spec() const { return spec_; }

    /// Schedules the route: its first slices open the buffer and build the stages.
    void start();
    /// What a stopping route does with what it could not deliver by its drain deadline.
    /// A disk spool keeps it either way.
    enum class Leftovers {
        count,      // counted undelivered and logged (shutdown, a removed route)
        hand_over,  // kept for the route's new version (a reload changed it): take_leftovers()
    };
    /// Asks the route to stop: the source stops, what the route holds is delivered within
    /// `drain_timeout_ms`, then the stages stop. Returns at once; join() waits.
    void request_stop(Leftovers leftovers = Leftovers::count);
    /// After join(), of a route stopped with Leftovers::hand_over and a memory buffer: what it
    /// did not deliver, oldest first; what went through its transforms carries
    /// kRouteFlagTransformed.
    /// Until taken, they count as undelivered.
    MessageArena take_leftovers();
    /// Before start(): messages of the route's previous version (take_leftovers()), delivered
    /// ahead of anything the source brings.
    void take_over(MessageArena leftovers) { taken_over_ = std::move(leftovers); }
    /// Waits until the route has ended (see done()).
    void join();
    /// True once the worker has ended (stopped, or its finite input is fully delivered).
    bool done() const { return done_.load(); }

    RouteStatus status() const;
    /// What the route's plugin instances publish of their own (ABI 1.4), appended to `out`.
    /// Waits only for an instance being installed or removed, never for a plugin call.
    /// THREAD: any.
    void plugin_metrics(std::vector<PluginMetric>& out) const;
    /// A tap on what leaves the transforms (the status page); closed when the last copy of the
    /// pointer goes. THREAD: any.
    std::shared_ptr<Tap> open_tap() { return taps_.open(); }

    /// Stopping and past its drain deadline while a plugin call has not returned: asks that
    /// call to end early (plugins that support it). ANY thread; cheap when nothing is due.
    void interrupt_if_overdue();

    // Called back by stages through the host API (any thread).
    sluice_status on_emit(const sluice_message& m);
    void on_end_of_input();
    void on_report_state(const std::string& stage, sluice_status state, const char* reason);

    /// Per-stage context behind each sluice_host_api.
    struct StageHost {
        Route* route;
        std::string scope;  // "route temperature > sink kafka-sink"
        std::string stage;
        sluice_host_api api;
    };

    /// A settled batch of a pipelined sink, as its completion reported it.
    struct Completion {
        std::uint64_t token;
        sluice_status status;
        std::string reason;
        std::vector<std::tuple<std::size_t, sluice_status, std::string>> rejects;
    };
    struct InFlight {
        MessageArena batch;
        std::size_t read = 0;  // buffer messages it accounts for, confirmed when it is done
        std::uint64_t token = 0;
        bool settled = false;
        bool applied = false;  // its outcome went to the counters and the error policy
        std::optional<Completion> outcome;
    };

private:
    enum class Step { empty, idle, waiting, progressed, failed, halted };
    enum class Phase { opening, running, draining, done };

    // Executor::Task
    void run_slice() override;
    void on_overdue(std::chrono::milliseconds elapsed) override;

    void slice();
    void slice_opening();
    void slice_running();
    void slice_draining();
    void begin_drain();
    void finish_drain();
    void finish(RouteState state, const std::string& reason);
    /// Runs a slice again soon (at the back of the queue), at `when`, or once input arrives.
    void again();
    void wake_at(std::chrono::steady_clock::time_point when);
    void wait_input();
    void schedule_restart();
    bool open_buffer(std::string& error);
    // route_handover.cpp
    void collect_leftovers();
    void append_taken_over();
    std::size_t pass_transformed();
    StageHost* make_host(const StageSpec& s);
    bool build_downstream(std::string& error);
    bool build_source(std::string& error);
    void teardown_source(std::uint32_t deadline_ms);
    void teardown_downstream(std::uint32_t deadline_ms);
    std::string fatal_reason();
    void fail(const std::string& stage, const std::string& message);
    void set_state(RouteState s, std::string reason);
    void note_error(const std::string& reason);  // with state_mu_ held
    // The sink confirmed `m` (counters: bytes, latency from its receipt).
    void note_delivered(const sluice_message& m, std::int64_t now_ms);
    bool stopping() const { return stop_requested_.load(); }
    std::chrono::steady_clock::time_point drain_deadline();
    bool holds_nothing() const;
    std::string summary() const;
    std::uint64_t held_in_memory() const;
    bool on_own_thread() const;
    /// An idle route gives back what a burst made its arenas grow to.
    // The route is idle: gives back what a burst made its arenas grow to, and records what it
    // keeps (spare_bytes_).
    void trim_memory();
    std::uint64_t spare_footprint() const;

    // route_ingress.cpp
    sluice_status take(const sluice_message& m);
    void hold_source();
    void release_source_if_room();
    void set_hold_target(PluginInstance* source);
    void warn_drop(const char* why, const sluice_message& m);

    // route_pipeline.cpp
    Step step();
    Step step_serial();
    Step run_transforms();
    Step deliver();
    Step deliver_dead_letters();
    void back_off();
    Step refuse_flagged();
    void confirm_batch();
    void handle_error(MessageArena& arena, std::size_t index, const std::string& stage,
                      const std::string& reason);
    // Around every call into a transform or sink: what status() shows and what
    // interrupt_if_overdue() may interrupt.
    void begin_call(PluginInstance* instance, const std::string* stage);
    /// False when the watchdog found the call overdue (call_timeout_ms): the stage counts as
    /// failed, whatever it returned.
    bool end_call();

    // route_inflight.cpp: pipelined delivery to a sink with submit (ABI 1.2).
    Step step_pipelined();
    Step submit_pending();
    Step settle_in_order(bool& progressed);
    bool apply_outcome(InFlight& f, std::size_t& resend_from);
    void go_back();
    void absorb_completions();
    void on_complete(std::uint64_t token, sluice_status status, const char* reason,
                     std::size_t n_rejects, const sluice_reject* rejects);
    void settle_all_in_flight(const std::string& why);
    std::size_t in_flight_messages() const;

    RouteSpec spec_;
    Executor& executor_;
    std::shared_ptr<Executor::Slot> slot_;
    std::filesystem::path state_dir_;
    std::uint64_t memory_budget_ = 0;
    std::unique_ptr<RouteBuffer> buffer_;
    RouteCounters counters_;

    std::unique_ptr<StageHost> source_host_;
    std::vector<std::unique_ptr<StageHost>> downstream_hosts_;
    // The instances below are replaced only by the route's worker, under instances_mu_, so
    // that plugin_metrics() can read them from another thread; destroyed outside it.
    mutable std::mutex instances_mu_;
    void install(std::unique_ptr<PluginInstance>& slot, std::unique_ptr<PluginInstance> made);
    std::unique_ptr<PluginInstance> source_;
    std::vector<std::unique_ptr<PluginInstance>> transforms_;
    std::unique_ptr<PluginInstance> sink_;
    std::unique_ptr<PluginInstance> dead_letter_;
    sluice_emitter source_emitter_{};

    MessageArena ingress_;  // read from the buffer, not yet transformed
    MessageArena pending_;  // transformed, not yet confirmed by the sink
    MessageArena scratch_;  // sink retries
    MessageArena work_a_;   // transform chain, alternating
    MessageArena work_b_;
    MessageArena dead_letters_;  // failed messages with their error headers, for dead_letter_
    std::vector<sluice_header> dl_headers_;
    std::size_t batch_read_ = 0;      // messages of the current batch, confirmed when it is done
    std::size_t pending_read_ = 0;    // pipelined: the same, for pending_ (not yet submitted)
    std::deque<InFlight> in_flight_;  // pipelined: submitted, confirmed in this order
    std::vector<MessageArena> spare_arenas_;  // recycled batches of in_flight_
    bool resend_due_ = false;  // a retry came back: resend from the first unconfirmed
    std::uint64_t next_token_ = 1;
    sluice_completion completion_{};
    std::mutex completions_mu_;
    std::vector<Completion> completions_;          // guarded by completions_mu_
    std::atomic<std::size_t> in_flight_count_{0};  // for status()
    std::atomic<std::uint64_t> spare_bytes_{0};    // for status(), set by trim_memory()
    std::string config_hash_;                      // set once, by the constructor
    TapSet taps_;
    // Guarded by state_mu_.
    std::int64_t state_since_ms_ = 0;
    std::string last_error_;
    std::int64_t last_error_ms_ = 0;
    std::uint64_t policy_errors_ = 0;  // handed to the error policy by the current chain run

    // The state machine (the route's own slices only).
    Phase phase_ = Phase::opening;
    bool source_up_ = false;
    bool downstream_up_ = false;
    bool halted_ = false;
    bool finished_ = false;  // the input ended and everything was delivered
    std::uint32_t failures_ = 0;
    std::uint32_t backoff_ms_ = 0;
    std::chrono::steady_clock::time_point next_attempt_{};
    std::chrono::steady_clock::time_point retry_at_{};  // a sink back-off ends
    std::atomic<bool> idle_{false};  // waiting for input: take() schedules the route

    std::atomic<bool> stop_requested_{false};
    std::atomic<bool> hand_over_{false};  // set before stop_requested_
    MessageArena leftovers_;              // for the new version, once done
    MessageArena taken_over_;             // from the previous version, until the buffer opens
    std::atomic<bool> input_ended_{false};
    std::atomic<bool> done_{false};
    std::atomic<bool> source_failed_{false};  // a stage reported SLUICE_FATAL
    std::atomic<bool> downstream_failed_{false};
    std::atomic<const std::string*> in_call_{nullptr};  // label of the stage being called
    std::atomic<bool> call_overdue_{false};  // the watchdog gave up on the call in progress
    std::mutex call_mu_;                     // held to interrupt, so the instance outlives the call
    PluginInstance* calling_ = nullptr;      // guarded by call_mu_
    PluginInstance* submitted_to_ = nullptr;     // guarded by call_mu_: sink with batches in flight
    std::string fatal_reason_;                   // guarded by wait_mu_
    std::atomic<bool> closed_{false};            // the route takes nothing more
    std::atomic<bool> releasing_source_{false};  // the source is being stopped: never wait
    std::atomic<bool> starting_source_{false};   // inside its start(): it cannot be held yet
    // What in_call_ points to while a stage's stop() runs; made once, never changed.
    std::vector<std::string> stop_labels_;
    std::atomic<bool> source_can_hold_{false};
    std::chrono::steady_clock::time_point drain_deadline_{};  // guarded by wait_mu_
    std::uint32_t sink_retry_ms_ = 100;
    std::mutex wait_mu_;
    std::condition_variable done_cv_;  // with wait_mu_: join() waits for done_

    // Flow control. A source that can hold its input back is asked to when the buffer passes
    // max_bytes and to resume below a quarter of it; one that cannot (ABI 1.0) waits in emit on
    // its own thread (room_cv_), as that ABI allowed.
    std::mutex flow_mu_;
    PluginInstance* hold_target_ = nullptr;   // guarded by flow_mu_: the running source
    std::atomic<bool> held_{false};           // written under flow_mu_
    std::atomic<bool> stopping_hold_{false};  // written under flow_mu_: held for good
    std::condition_variable room_cv_;

    mutable std::mutex state_mu_;
    RouteState state_ = RouteState::starting;
    std::string reason_;
    std::string degraded_stage_;  // the stage whose report_state made us degraded

    std::chrono::steady_clock::time_point last_error_log_{};
    std::uint64_t suppressed_errors_ = 0;
    std::mutex drop_log_mu_;
    std::chrono::steady_clock::time_point last_drop_log_{};
    std::uint64_t suppressed_drops_ = 0;
};

}  // namespace sluice

// A route: one isolated pipeline (source -> transforms -> sink) with its own plugin instances,
// bounded queue, worker thread, counters and state. A failing stage fails only its route,
// which restarts itself with exponential back-off while keeping the messages it holds.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sluice/core/manifest.hpp"
#include "sluice/core/message_arena.hpp"
#include "sluice/core/plugin_instance.hpp"
#include "sluice/core/route_queue.hpp"

namespace sluice {

enum class RouteState { starting, running, degraded, failed, stopped };
const char* route_state_name(RouteState s);

struct RouteCounters {
    std::atomic<std::uint64_t> received{0};   // taken from the source
    std::atomic<std::uint64_t> delivered{0};  // confirmed by the sink
    std::atomic<std::uint64_t> filtered{0};   // removed by transforms on purpose
    std::atomic<std::uint64_t> errors{0};     // handed to the error policy
    std::atomic<std::uint64_t> dropped_full{0};  // dropped by `when_full: drop_newest`
    std::atomic<std::uint64_t> retries{0};    // sink retries
    std::atomic<std::uint64_t> restarts{0};   // times the route was rebuilt after failing
    std::atomic<std::uint64_t> undelivered{0};  // held when the route stopped, not delivered
};

struct RouteStatus {
    std::string name;
    RouteState state;
    std::string reason;
    std::uint64_t received, delivered, filtered, errors, dropped_full, retries, restarts;
    std::size_t queued;
    std::uint64_t undelivered;
};

class Route {
public:
    explicit Route(RouteSpec spec);
    ~Route();
    Route(const Route&) = delete;
    Route& operator=(const Route&) = delete;

    const std::string& name() const { return spec_.name; }
    const RouteSpec& spec() const { return spec_; }

    /// Starts the worker thread, which builds the stages and runs them.
    void start();
    /// Asks the route to stop: the source stops, what the route holds is delivered within
    /// `drain_timeout_ms`, then the stages stop. Returns at once; join() waits.
    void request_stop();
    void join();
    /// True once the worker has ended (stopped, or its finite input is fully delivered).
    bool done() const { return done_.load(); }

    RouteStatus status() const;

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

private:
    void run();
    void run_loop();
    StageHost* make_host(const StageSpec& s);
    bool build_downstream(std::string& error);
    bool build_source(std::string& error);
    void teardown_source(std::uint32_t deadline_ms);
    void teardown_downstream(std::uint32_t deadline_ms);
    std::string fatal_reason();
    enum class Step { idle, progressed, failed, halted };
    Step step();
    Step run_transforms();
    Step deliver();
    void handle_error(MessageArena& arena, std::size_t index, const std::string& stage,
                      const std::string& reason);
    void fail(const std::string& stage, const std::string& message);
    void set_state(RouteState s, std::string reason);
    bool wait_for(std::chrono::steady_clock::time_point until);
    bool stopping() const { return stop_requested_.load(); }
    std::chrono::steady_clock::time_point drain_deadline();

    RouteSpec spec_;
    RouteQueue queue_;
    RouteCounters counters_;

    std::unique_ptr<StageHost> source_host_;
    std::vector<std::unique_ptr<StageHost>> downstream_hosts_;
    std::unique_ptr<PluginInstance> source_;
    std::vector<std::unique_ptr<PluginInstance>> transforms_;
    std::unique_ptr<PluginInstance> sink_;
    sluice_emitter source_emitter_{};

    MessageArena ingress_;  // taken from the queue, not yet transformed
    MessageArena pending_;  // transformed, not yet confirmed by the sink
    MessageArena scratch_;  // sink retries
    MessageArena work_a_;   // transform chain, alternating
    MessageArena work_b_;

    std::atomic<bool> stop_requested_{false};
    std::atomic<bool> input_ended_{false};
    std::atomic<bool> done_{false};
    std::atomic<bool> source_failed_{false};      // a stage reported SLUICE_FATAL
    std::atomic<bool> downstream_failed_{false};
    std::string fatal_reason_;  // guarded by wait_mu_
    bool wake_ = false;         // guarded by wait_mu_: wait_for() returns early once
    std::chrono::steady_clock::time_point drain_deadline_{};  // guarded by wait_mu_
    std::atomic<std::size_t> held_{0};  // in ingress_ + pending_, for status()
    std::uint32_t sink_retry_ms_ = 100;
    std::mutex wait_mu_;
    std::condition_variable wait_cv_;

    mutable std::mutex state_mu_;
    RouteState state_ = RouteState::starting;
    std::string reason_;
    std::string degraded_stage_;  // the stage whose report_state made us degraded

    std::chrono::steady_clock::time_point last_error_log_{};
    std::uint64_t suppressed_errors_ = 0;

    std::thread worker_;
};

}  // namespace sluice

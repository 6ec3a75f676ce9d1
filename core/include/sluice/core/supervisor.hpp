// Owns the running routes and the executor they run on. Each route restarts itself after a
// failure; the supervisor starts them, reports on them and stops them all together (in
// parallel, each draining).
#pragma once

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "sluice/core/reload/reload_plan.hpp"
#include "sluice/core/route.hpp"
#include "sluice/core/runtime/executor.hpp"

namespace sluice {

class Supervisor {
public:
    /// `state_dir`: where routes with a disk buffer keep their spools.
    /// `threads`: the executor's pool (0: one per core, at least 2).
    explicit Supervisor(std::filesystem::path state_dir = "var/sluice", unsigned threads = 0)
        : executor_(threads), state_dir_(std::move(state_dir)) {}
    ~Supervisor();
    /// What the process's memory budget leaves beyond the routes' buffers, told to every
    /// plugin instance of the routes started from now on (sluice_host_api).
    void set_memory_budget(std::uint64_t bytes) { memory_budget_ = bytes; }
    /// `leftovers`: what the route's previous version handed over (Route::take_over).
    void start(RouteSpec spec, MessageArena leftovers = {});
    /// Asks every route to stop and drain; returns at once.
    void request_stop_all();
    /// Interrupts plugin calls of routes that are past their drain deadline (see Route).
    void interrupt_overdue();
    /// Asks every route to stop and drain, then waits for all of them.
    void stop_all();
    /// True when every route has ended on its own (finite inputs fully delivered); never while
    /// a reload is being applied.
    bool all_done() const;
    std::vector<RouteStatus> status() const;
    /// Every route's plugin metrics (ABI 1.4), for /metrics; or one route's. Plugins must not
    /// block in them (abi.h): the routes are looked at under the supervisor's lock.
    std::vector<PluginMetric> plugin_metrics() const;
    std::vector<PluginMetric> plugin_metrics(const std::string& route) const;
    /// A tap on route `name` (see Route::open_tap); nullptr when there is no such route.
    std::shared_ptr<Tap> open_tap(const std::string& name);
    const Executor& executor() const { return executor_; }

    /// The routes as a reload plan needs them.
    std::vector<RunningRoute> running() const;
    /// Carries out a plan: routes it adds start at once; routes it changes or removes are
    /// asked to stop and drain, all together, and each changed one is replaced by its new
    /// version the moment its old one has ended (so that a persistent MQTT session and a disk
    /// spool pass from one to the other, and what a memory buffer's old version could not
    /// deliver goes to the new one). Unchanged routes are not touched. Returns when every
    /// old version has ended, or has been given up on past its drain deadline (then it is
    /// kept aside and its replacement starts), or when `abandon` is set (the process stops).
    void apply(ReloadPlan& plan, const std::atomic<bool>& abandon);
    /// Records what a reload did to each route, for status().
    void note_reload(const ReloadReport& report);
    /// What routes that a reload stopped or replaced did not deliver (with the old versions
    /// that were given up on, once they have stopped).
    std::uint64_t retired_undelivered() const;

private:
    struct ReloadNote {
        std::int64_t at_ms = 0;
        std::string change;
        std::vector<std::string> errors;
        std::string file;
    };
    std::unique_ptr<Route> make_route(RouteSpec spec, MessageArena leftovers);
    /// Waits for a route that is stopping, destroys it and returns what it handed over.
    MessageArena retire(std::unique_ptr<Route> route);

    Executor executor_;  // first: outlives the routes that run on it
    std::filesystem::path state_dir_;
    std::uint64_t memory_budget_ = 0;
    mutable std::mutex mu_;
    std::vector<std::unique_ptr<Route>> routes_;
    // Old versions that did not end in time during a reload: stopped with the others at exit.
    std::vector<std::unique_ptr<Route>> given_up_;
    std::map<std::string, ReloadNote> reload_notes_;  // guarded by mu_
    std::atomic<std::uint64_t> retired_undelivered_{0};
    std::atomic<bool> applying_{false};
};

}  // namespace sluice

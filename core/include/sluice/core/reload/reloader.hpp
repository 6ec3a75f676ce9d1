// One reload, from start to report: reads and validates the whole new set (host config,
// plugins, manifests) first, plans against what runs, refuses what cannot be applied live,
// applies the rest and says what it did (log, JSON, /api/routes, metrics). One reload at a
// time: the caller serializes them (the run loop's reload thread).
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "sluice/core/manifest.hpp"
#include "sluice/core/reload/reload_plan.hpp"
#include "sluice/core/supervisor.hpp"

namespace sluice {

/// What the configuration on disk says now.
struct LoadedSet {
    HostConfig host;
    std::vector<RouteSpec> routes;  // the routes that validated
    std::vector<Rejection> rejected;
    /// Problems that refuse the whole reload: an invalid host config, a route path that is
    /// gone (a directory deleted by mistake must not stop every route in it).
    std::vector<std::string> errors;
    /// Plugins that could not be loaded (the routes that use them are rejected).
    std::vector<std::string> warnings;
};

class Reloader {
public:
    using LoadFn = std::function<LoadedSet()>;
    /// Called with a plan before it is applied; a non-empty answer refuses the reload (e.g.
    /// a disk route is added and the state directory cannot be locked).
    using PrepareFn = std::function<std::string(const ReloadPlan&)>;

    Reloader(Supervisor& supervisor, HostConfig running, LoadFn load, PrepareFn prepare = nullptr);

    /// Runs one reload; `abandon` set: the process is stopping, stop waiting for old versions.
    ReloadReport reload(const std::string& trigger, const std::atomic<bool>& abandon);
    ReloadStats stats() const;
    /// The last reload's report as JSON; "" before the first.
    std::string last_report_json() const;
    /// What to watch for changes: the route paths and the host config of the running set.
    std::vector<std::filesystem::path> watched_paths() const;

private:
    void apply(ReloadReport& report, const std::atomic<bool>& abandon);
    void log_report(const ReloadReport& report) const;

    Supervisor& supervisor_;
    HostConfig running_;  // guarded by mu_
    LoadFn load_;
    PrepareFn prepare_;
    mutable std::mutex mu_;
    ReloadStats stats_;      // guarded by mu_
    std::string last_json_;  // guarded by mu_
};

}  // namespace sluice

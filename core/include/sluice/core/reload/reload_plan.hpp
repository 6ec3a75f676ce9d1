// What a reload does, decided before anything is touched: the routes running now against the
// routes the manifests describe now. Per route: unchanged (same normalized config and plugin
// libraries: not even paused), changed (drained and replaced), added, removed (drained and
// stopped) or rejected (it did not validate: the running version, if any, keeps running).
// Pure functions, so that every rule is a unit test; the Reloader applies the plan.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sluice/core/manifest.hpp"

namespace sluice {

enum class RouteChange { unchanged, changed, added, removed, rejected };
const char* route_change_name(RouteChange change);

/// A route the supervisor runs, as the plan needs to know it.
struct RunningRoute {
    std::string name;
    std::string file;                       // its manifest
    std::string fingerprint;                // RouteSpec::fingerprint()
    std::uint64_t memory_buffer_bytes = 0;  // what its memory buffer may hold (0: disk)
};

struct RoutePlan {
    std::string name;  // "": a whole file that was rejected (no route in it is known)
    RouteChange change = RouteChange::unchanged;
    std::string file;
    std::vector<std::string> errors;  // rejected: as `sluice check` prints them
    bool kept = false;                // rejected: the running version keeps running
};

struct ReloadPlan {
    std::vector<RoutePlan> routes;  // sorted by name; whole-file rejections last
    std::vector<RouteSpec> start;   // the new versions of changed and added routes
    /// Problems with the reload as a whole (host config, memory budget): when any, the plan
    /// changes nothing.
    std::vector<std::string> errors;

    bool changes_anything() const;
    bool has_rejections() const;
};

/// The plan from `running` to `loaded` (the routes that validated), given what did not
/// (`rejected`). A running route that is missing from `loaded` is removed only when its
/// manifest file validated entirely (or is gone): a file with errors keeps its routes.
ReloadPlan plan_reload(const std::vector<RunningRoute>& running, std::vector<RouteSpec> loaded,
                       const std::vector<Rejection>& rejected);

/// The settings of the host config that a running process cannot change (state_dir, log,
/// admin), one message per setting that differs.
std::vector<std::string> host_changes_not_live(const HostConfig& running, const HostConfig& wanted);

/// The result of one reload: logged, returned by `sluice reload` and POST /api/reload.
struct ReloadReport {
    std::string trigger;          // "file change", "SIGHUP", "api"
    std::int64_t started_ms = 0;  // wall clock
    std::uint64_t duration_ms = 0;
    std::vector<RoutePlan> routes;
    std::vector<std::string> errors;    // the reload was refused as a whole
    std::vector<std::string> warnings;  // plugins that could not be loaded

    /// "applied" (everything took effect), "partial" (some of it was rejected) or
    /// "rejected" (nothing changed, and something was refused).
    std::string result() const;
    std::string to_json() const;
    /// One line for the log: the counts per change.
    std::string summary() const;
};

/// Counts for /metrics.
struct ReloadStats {
    std::uint64_t applied = 0, partial = 0, rejected = 0;
    std::int64_t last_ms = 0;  // wall clock of the last reload's start; 0: none yet
    std::uint64_t last_duration_ms = 0;
    std::string last_result;
};

}  // namespace sluice

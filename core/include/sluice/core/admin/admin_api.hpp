// The admin endpoints: what the process and every route are doing, for operators and
// Prometheus. Every answer is built from snapshots (Supervisor::status(), /proc), so a route that
// is draining, restarting or stuck in a plugin call still shows and never holds up an answer.
//
//   GET /healthz          200 while the process answers (no token needed)
//   GET /readyz           200 when every route runs, else 503 naming the others (no token)
//   GET /metrics          Prometheus text format 0.0.4
//   GET /api/routes       JSON: every route
//   GET /api/routes/NAME  JSON: one route, 404 when there is none of that name
//   GET /                 the status page (self-contained HTML: table, live chart, tap)
//   GET /api/events       server-sent events: every route's figures once a second
//   GET /api/tap/NAME     server-sent events: messages as they leave the route's transforms
//   POST /api/reload      reload the routes; answers with the report when done (JSON; 200
//                         when it applied, 409 when something was rejected)
//   GET /api/reload       the last reload's report (404 before the first)
//
// With a token set, everything but /healthz, /readyz and the page itself needs
// "Authorization: Bearer <token>", or ?token=<token> for the event streams (EventSource cannot
// set headers).
#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <vector>

#include "sluice/core/admin/http_server.hpp"
#include "sluice/core/plugin_metric.hpp"
#include "sluice/core/reload/reload_plan.hpp"
#include "sluice/core/route.hpp"
#include "sluice/core/tap.hpp"

namespace sluice::admin {

struct ProcessInfo {
    std::uint64_t rss_bytes = 0;
    std::uint64_t threads = 0;
    std::uint64_t open_fds = 0;
};

/// This process's figures from /proc/self.
ProcessInfo read_process_info();

class AdminApi {
public:
    using StatusFn = std::function<std::vector<RouteStatus>()>;
    /// Opens a tap on a route; nullptr when there is no such route.
    using TapFn = std::function<std::shared_ptr<Tap>(const std::string&)>;
    /// What the routes' plugin instances publish of their own (Supervisor::plugin_metrics).
    using PluginMetricsFn = std::function<std::vector<PluginMetric>()>;
    /// The same for one route (an empty vector when there is none of that name).
    using RouteMetricsFn = std::function<std::vector<PluginMetric>(const std::string&)>;
    AdminApi(StatusFn status, TapFn open_tap, std::string token,
             PluginMetricsFn plugin_metrics = nullptr, RouteMetricsFn route_metrics = nullptr);

    struct ReloadAnswer {
        bool applied = false;
        std::string json;  // the report
    };
    /// Asks for a reload; the answer once it is done (a reload already under way is not
    /// what the caller asked for: the next one is).
    using ReloadFn = std::function<std::shared_future<ReloadAnswer>()>;
    using LastReloadFn = std::function<std::string()>;  // the last report, "" before the first
    using ReloadStatsFn = std::function<ReloadStats()>;
    /// Enables /api/reload and the reload metrics. Before the server starts.
    void set_reload(ReloadFn start, LastReloadFn last, ReloadStatsFn stats);

    Response handle(const Request& request) const;

    /// The Prometheus text for these routes and process figures (tests call it directly).
    static std::string metrics_text(const std::vector<RouteStatus>& routes,
                                    const ProcessInfo& process, double uptime_s,
                                    const std::vector<PluginMetric>& plugin_metrics = {},
                                    const ReloadStats* reload = nullptr);
    static std::string route_json(const RouteStatus& route,
                                  const std::vector<PluginMetric>& plugin_metrics = {});

private:
    bool authorized(const Request& request) const;

    StatusFn status_;
    TapFn open_tap_;
    PluginMetricsFn plugin_metrics_;
    RouteMetricsFn route_metrics_;
    ReloadFn reload_;
    LastReloadFn last_reload_;
    ReloadStatsFn reload_stats_;
    std::string token_;
    std::chrono::steady_clock::time_point started_;
};

/// The admin token from `admin.token_file` (its first line) or the environment variable named
/// by `admin.token_env`; "" when neither is set. Throws std::runtime_error naming the file or
/// variable when it is set but unusable (unreadable, empty, readable by others).
std::string load_token(const std::string& token_file, const std::string& token_env);

}  // namespace sluice::admin

#include "sluice/core/reload/reloader.hpp"

#include <algorithm>
#include <chrono>

#include "sluice/core/backoff.hpp"
#include "sluice/core/log.hpp"

namespace sluice {

Reloader::Reloader(Supervisor& supervisor, HostConfig running, LoadFn load, PrepareFn prepare)
    : supervisor_(supervisor),
      running_(std::move(running)),
      load_(std::move(load)),
      prepare_(std::move(prepare)) {}

ReloadReport Reloader::reload(const std::string& trigger, const std::atomic<bool>& abandon) {
    const auto t0 = std::chrono::steady_clock::now();
    ReloadReport report;
    report.trigger = trigger;
    report.started_ms = wall_ms();
    // Nothing in a reload may end the process: a file system or allocation error refuses it.
    try {
        apply(report, abandon);
    } catch (const std::exception& e) {
        report.routes.clear();
        report.errors.push_back(std::string("internal error, nothing more was changed: ") +
                                e.what());
    }
    report.duration_ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count());
    if (report.errors.empty()) supervisor_.note_reload(report);
    {
        std::lock_guard lock(mu_);
        const std::string result = report.result();
        ++(result == "applied"   ? stats_.applied
           : result == "partial" ? stats_.partial
                                 : stats_.rejected);
        stats_.last_ms = report.started_ms;
        stats_.last_duration_ms = report.duration_ms;
        stats_.last_result = result;
        last_json_ = report.to_json();
    }
    log_report(report);
    return report;
}

void Reloader::apply(ReloadReport& report, const std::atomic<bool>& abandon) {
    LoadedSet loaded = load_();
    report.errors = std::move(loaded.errors);
    report.warnings = std::move(loaded.warnings);
    if (report.errors.empty()) {
        std::lock_guard lock(mu_);
        report.errors = host_changes_not_live(running_, loaded.host);
    }
    ReloadPlan plan;
    if (report.errors.empty()) {
        const auto running = supervisor_.running();
        plan = plan_reload(running, std::move(loaded.routes), loaded.rejected);
        // The memory buffers of what will run must fit together, as at start.
        std::uint64_t total = memory_buffers_bytes(plan.start);
        for (const auto& r : running) {
            const bool stays = std::any_of(plan.routes.begin(), plan.routes.end(), [&](auto& p) {
                return p.name == r.name && (p.change == RouteChange::unchanged || p.kept);
            });
            if (stays) total += r.memory_buffer_bytes;
        }
        if (total > loaded.host.memory_limit) {
            std::string routes;
            for (const auto& r : plan.start) {
                if (r.options.buffer.type != BufferOptions::Type::memory) continue;
                routes += (routes.empty() ? "" : ", ") + r.name + " (" + r.where.file + ", " +
                          std::to_string(r.options.buffer.max_bytes) + ")";
            }
            report.errors.push_back(
                "the memory buffers of the routes would hold " + std::to_string(total) +
                " bytes together, over memory_limit " + std::to_string(loaded.host.memory_limit) +
                "; new or changed routes with memory buffers: " + routes +
                ". Lower their buffer.max_bytes, or use buffer: { type: disk }");
        }
        if (report.errors.empty() && prepare_) {
            if (auto why = prepare_(plan); !why.empty()) report.errors.push_back(std::move(why));
        }
    }
    if (report.errors.empty()) {
        report.routes = plan.routes;
        supervisor_.apply(plan, abandon);
        std::lock_guard lock(mu_);
        running_.plugin_dirs = loaded.host.plugin_dirs;
        running_.route_paths = loaded.host.route_paths;
    }
}

void Reloader::log_report(const ReloadReport& report) const {
    for (const auto& e : report.errors) log::error("", "reload refused: " + e);
    for (const auto& w : report.warnings) log::warn("", "reload: " + w);
    for (const auto& r : report.routes) {
        const std::string scope = r.name.empty() ? std::string() : "route " + r.name;
        switch (r.change) {
            case RouteChange::unchanged:
                break;
            case RouteChange::rejected:
                log::error(scope, std::string("reload: change rejected") +
                                      (r.kept ? ", the running version keeps running" : "") + " (" +
                                      r.file + ")");
                for (const auto& e : r.errors) log::error(scope, e);
                break;
            default:
                log::info(scope, std::string("reload: ") + route_change_name(r.change) + " (" +
                                     r.file + ")");
        }
    }
    if (report.result() == "applied") {
        log::info("", report.summary());
    } else {
        log::warn("", report.summary());
    }
}

ReloadStats Reloader::stats() const {
    std::lock_guard lock(mu_);
    return stats_;
}

std::string Reloader::last_report_json() const {
    std::lock_guard lock(mu_);
    return last_json_;
}

std::vector<std::filesystem::path> Reloader::watched_paths() const {
    std::lock_guard lock(mu_);
    auto out = running_.route_paths;
    if (!running_.file.empty()) out.push_back(running_.file);
    return out;
}

}  // namespace sluice

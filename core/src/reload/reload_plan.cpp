#include "sluice/core/reload/reload_plan.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "sluice/sdk/json.hpp"

namespace sluice {

const char* route_change_name(RouteChange change) {
    switch (change) {
        case RouteChange::unchanged:
            return "unchanged";
        case RouteChange::changed:
            return "changed";
        case RouteChange::added:
            return "added";
        case RouteChange::removed:
            return "removed";
        case RouteChange::rejected:
            return "rejected";
    }
    return "unknown";
}

bool ReloadPlan::changes_anything() const {
    if (!errors.empty()) return false;
    return std::any_of(routes.begin(), routes.end(), [](const RoutePlan& r) {
        return r.change != RouteChange::unchanged && r.change != RouteChange::rejected;
    });
}

bool ReloadPlan::has_rejections() const {
    return !errors.empty() || std::any_of(routes.begin(), routes.end(), [](const RoutePlan& r) {
        return r.change == RouteChange::rejected;
    });
}

ReloadPlan plan_reload(const std::vector<RunningRoute>& running, std::vector<RouteSpec> loaded,
                       const std::vector<Rejection>& rejected) {
    ReloadPlan plan;
    std::map<std::string, const RunningRoute*> by_name;
    for (const auto& r : running) by_name.emplace(r.name, &r);
    std::set<std::string> files_with_errors;
    std::map<std::string, std::vector<const Rejection*>> rejected_by_name;
    std::map<std::string, std::vector<std::string>> file_errors;
    for (const auto& r : rejected) {
        files_with_errors.insert(r.file);
        if (r.route.empty()) {
            auto& e = file_errors[r.file];
            e.insert(e.end(), r.errors.begin(), r.errors.end());
        } else {
            rejected_by_name[r.route].push_back(&r);
        }
    }
    std::set<std::string> in_new_set;
    for (auto& spec : loaded) {
        in_new_set.insert(spec.name);
        RoutePlan p{spec.name, RouteChange::added, spec.where.file, {}, false};
        if (const auto it = by_name.find(spec.name); it != by_name.end()) {
            p.change = it->second->fingerprint == spec.fingerprint() ? RouteChange::unchanged
                                                                     : RouteChange::changed;
        }
        plan.routes.push_back(std::move(p));
        if (plan.routes.back().change != RouteChange::unchanged) {
            plan.start.push_back(std::move(spec));
        }
    }
    for (const auto& [name, rejections] : rejected_by_name) {
        for (const auto* r : rejections) {
            // A duplicate of a route that validated elsewhere rejects the duplicate only.
            const bool kept = by_name.count(name) != 0 && in_new_set.count(name) == 0;
            plan.routes.push_back({name, RouteChange::rejected, r->file, r->errors, kept});
        }
        in_new_set.insert(name);
    }
    for (const auto& r : running) {
        if (in_new_set.count(r.name) != 0) continue;
        if (files_with_errors.count(r.file) != 0) {
            // The file's errors may be why the route is missing: keep what runs.
            const auto it = file_errors.find(r.file);
            std::vector<std::string> errors;
            if (it != file_errors.end()) errors = it->second;
            if (errors.empty()) {
                errors.push_back(r.file +
                                 ": the manifest has errors (see the other routes of "
                                 "this file); the running version is kept");
            }
            plan.routes.push_back({r.name, RouteChange::rejected, r.file, errors, true});
        } else {
            plan.routes.push_back({r.name, RouteChange::removed, r.file, {}, false});
        }
    }
    std::stable_sort(plan.routes.begin(), plan.routes.end(),
                     [](const RoutePlan& a, const RoutePlan& b) { return a.name < b.name; });
    // A file's own errors are listed once: with the routes they kept, or on their own.
    for (const auto& entry : file_errors) {
        const std::string& file = entry.first;
        const auto& errors = entry.second;
        const bool shown = std::any_of(plan.routes.begin(), plan.routes.end(), [&](auto& p) {
            return p.change == RouteChange::rejected && p.file == file && p.kept &&
                   p.errors == errors;
        });
        if (!shown) plan.routes.push_back({"", RouteChange::rejected, file, errors, false});
    }
    return plan;
}

std::vector<std::string> host_changes_not_live(const HostConfig& running,
                                               const HostConfig& wanted) {
    std::vector<std::string> out;
    const std::string where = wanted.file.empty() ? "host config" : wanted.file.string();
    const auto differs = [&](const char* key, const std::string& a, const std::string& b) {
        if (a != b) {
            out.push_back(where + ": " + key + " changed from '" + a + "' to '" + b +
                          "': this takes a restart; nothing was changed");
        }
    };
    differs("state_dir", running.state_dir.string(), wanted.state_dir.string());
    differs("log.level", running.log_level, wanted.log_level);
    differs("log.format", running.log_format, wanted.log_format);
    differs("admin.listen", running.admin_listen, wanted.admin_listen);
    differs("admin.token_file", running.admin_token_file.string(),
            wanted.admin_token_file.string());
    differs("admin.token_env", running.admin_token_env, wanted.admin_token_env);
    differs("memory_limit", std::to_string(running.memory_limit),
            std::to_string(wanted.memory_limit));
    return out;
}

std::string ReloadReport::result() const {
    if (!errors.empty()) return "rejected";
    bool applied = false;
    bool refused = false;
    for (const auto& r : routes) {
        refused = refused || r.change == RouteChange::rejected;
        applied =
            applied || (r.change != RouteChange::rejected && r.change != RouteChange::unchanged);
    }
    if (!refused) return "applied";
    return applied ? "partial" : "rejected";
}

std::string ReloadReport::to_json() const {
    using sdk::json::append_quoted;
    std::string o = "{\"result\":";
    append_quoted(o, result());
    o += ",\"trigger\":";
    append_quoted(o, trigger);
    o += ",\"started_ms\":" + std::to_string(started_ms) +
         ",\"duration_ms\":" + std::to_string(duration_ms) + ",\"errors\":[";
    for (std::size_t i = 0; i < errors.size(); ++i) {
        if (i) o += ',';
        append_quoted(o, errors[i]);
    }
    o += "],\"warnings\":[";
    for (std::size_t i = 0; i < warnings.size(); ++i) {
        if (i) o += ',';
        append_quoted(o, warnings[i]);
    }
    o += "],\"routes\":[";
    for (std::size_t i = 0; i < routes.size(); ++i) {
        const auto& r = routes[i];
        if (i) o += ',';
        o += "{\"route\":";
        if (r.name.empty()) {
            o += "null";
        } else {
            append_quoted(o, r.name);
        }
        o += ",\"change\":";
        append_quoted(o, route_change_name(r.change));
        o += ",\"file\":";
        append_quoted(o, r.file);
        if (r.change == RouteChange::rejected) {
            o += std::string(",\"kept_running\":") + (r.kept ? "true" : "false") + ",\"errors\":[";
            for (std::size_t j = 0; j < r.errors.size(); ++j) {
                if (j) o += ',';
                append_quoted(o, r.errors[j]);
            }
            o += ']';
        }
        o += '}';
    }
    o += "]}";
    return o;
}

std::string ReloadReport::summary() const {
    std::map<RouteChange, std::size_t> counts;
    for (const auto& r : routes) ++counts[r.change];
    std::string out =
        "reload (" + trigger + ") " + result() + " in " + std::to_string(duration_ms) + " ms:";
    for (const auto c : {RouteChange::unchanged, RouteChange::changed, RouteChange::added,
                         RouteChange::removed, RouteChange::rejected}) {
        out += " " + std::to_string(counts[c]) + " " + route_change_name(c);
    }
    return out;
}

}  // namespace sluice

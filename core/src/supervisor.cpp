#include "sluice/core/supervisor.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>

#include "sluice/core/log.hpp"

namespace sluice {

Supervisor::~Supervisor() {
    stop_all();
    // Routes go before the executor they run on.
    std::lock_guard lock(mu_);
    routes_.clear();
    given_up_.clear();
}

std::unique_ptr<Route> Supervisor::make_route(RouteSpec spec, MessageArena leftovers) {
    auto route = std::make_unique<Route>(std::move(spec), executor_, state_dir_, memory_budget_);
    route->take_over(std::move(leftovers));
    route->start();
    return route;
}

void Supervisor::start(RouteSpec spec, MessageArena leftovers) {
    auto route = make_route(std::move(spec), std::move(leftovers));
    std::lock_guard lock(mu_);
    routes_.push_back(std::move(route));
}

void Supervisor::request_stop_all() {
    std::lock_guard lock(mu_);
    for (auto& r : routes_) r->request_stop();
    for (auto& r : given_up_) r->request_stop();
}

void Supervisor::interrupt_overdue() {
    std::lock_guard lock(mu_);
    for (auto& r : routes_) r->interrupt_if_overdue();
    for (auto& r : given_up_) r->interrupt_if_overdue();
}

void Supervisor::stop_all() {
    std::vector<Route*> routes;
    {
        // Not held while joining: status() must keep answering while routes drain.
        std::lock_guard lock(mu_);
        for (auto& r : routes_) routes.push_back(r.get());
        for (auto& r : given_up_) routes.push_back(r.get());
    }
    for (auto* r : routes) r->request_stop();
    for (auto* r : routes) r->join();
}

bool Supervisor::all_done() const {
    if (applying_) return false;
    std::lock_guard lock(mu_);
    for (const auto& r : routes_) {
        if (!r->done()) return false;
    }
    return !routes_.empty();
}

std::vector<RouteStatus> Supervisor::status() const {
    std::lock_guard lock(mu_);
    std::vector<RouteStatus> out;
    for (const auto& r : routes_) {
        out.push_back(r->status());
        auto& st = out.back();
        if (const auto it = reload_notes_.find(st.name); it != reload_notes_.end()) {
            st.last_reload_ms = it->second.at_ms;
            st.last_reload_change = it->second.change;
            st.reload_errors = it->second.errors;
            if (!it->second.file.empty()) st.file = it->second.file;
        }
    }
    return out;
}

std::vector<RunningRoute> Supervisor::running() const {
    std::lock_guard lock(mu_);
    std::vector<RunningRoute> out;
    for (const auto& r : routes_) {
        const auto& spec = r->spec();
        const auto note = reload_notes_.find(spec.name);
        out.push_back({spec.name,
                       note != reload_notes_.end() && !note->second.file.empty() ? note->second.file
                                                                                 : spec.where.file,
                       spec.fingerprint(), 0});
        if (spec.options.buffer.type == BufferOptions::Type::memory) {
            out.back().memory_buffer_bytes =
                spec.options.buffer.max_bytes + spec.options.buffer.headroom();
        }
    }
    return out;
}

std::uint64_t Supervisor::retired_undelivered() const {
    std::lock_guard lock(mu_);
    std::uint64_t n = retired_undelivered_.load();
    for (const auto& r : given_up_) n += r->status().undelivered;
    return n;
}

MessageArena Supervisor::retire(std::unique_ptr<Route> route) {
    route->join();
    MessageArena leftovers = route->take_leftovers();
    retired_undelivered_ += route->status().undelivered;
    route.reset();  // outside mu_: destroying its instances may take a moment
    return leftovers;
}

void Supervisor::apply(ReloadPlan& plan, const std::atomic<bool>& abandon) {
    using clock = std::chrono::steady_clock;
    // Old versions that have ended are not "every route's input has ended" (all_done()).
    applying_ = true;
    struct Clear {
        std::atomic<bool>& flag;
        ~Clear() { flag = false; }
    } clear{applying_};
    struct Leaving {
        Route* old;
        std::optional<RouteSpec> next;  // changed: its new version
        clock::time_point give_up;
    };
    std::vector<Leaving> leaving;
    std::vector<RouteSpec> added;
    std::map<std::string, RouteSpec*> next_by_name;
    for (auto& spec : plan.start) next_by_name.emplace(spec.name, &spec);
    {
        std::lock_guard lock(mu_);
        for (const auto& p : plan.routes) {
            if (p.change != RouteChange::changed && p.change != RouteChange::removed) continue;
            const auto it = std::find_if(routes_.begin(), routes_.end(),
                                         [&](const auto& r) { return r->name() == p.name; });
            if (it == routes_.end()) continue;
            Leaving l{it->get(), std::nullopt,
                      clock::now() +
                          std::chrono::milliseconds((*it)->spec().options.drain_timeout_ms) +
                          std::chrono::seconds(3)};
            if (p.change == RouteChange::changed) {
                if (auto n = next_by_name.find(p.name); n != next_by_name.end()) {
                    l.next = std::move(*n->second);
                }
            }
            // A changed route's old version hands what it cannot deliver to the new one.
            (*it)->request_stop(l.next ? Route::Leftovers::hand_over : Route::Leftovers::count);
            leaving.push_back(std::move(l));
        }
        for (const auto& p : plan.routes) {
            if (p.change != RouteChange::added) continue;
            if (auto n = next_by_name.find(p.name); n != next_by_name.end()) {
                added.push_back(std::move(*n->second));
            }
        }
    }
    for (auto& spec : added) start(std::move(spec));
    // Each old version is replaced the moment it has ended: polled often, so that the gap
    // between the old version's last message and the new one's first stays small.
    while (!leaving.empty() && !abandon.load()) {
        for (auto it = leaving.begin(); it != leaving.end();) {
            const bool ended = it->old->done();
            const bool overdue = !ended && clock::now() > it->give_up;
            if (!ended && !overdue) {
                ++it;
                continue;
            }
            std::unique_ptr<Route> old;
            {
                std::lock_guard lock(mu_);
                const auto at = std::find_if(routes_.begin(), routes_.end(),
                                             [&](const auto& r) { return r.get() == it->old; });
                old = std::move(*at);
                routes_.erase(at);
                if (overdue) {
                    log::error("route " + old->name(),
                               "the old version did not stop within its drain deadline during "
                               "a reload; it is kept aside and stopped at exit");
                    given_up_.push_back(std::move(old));
                }
            }
            // Destroyed before its successor starts: what the old version holds open (a disk
            // spool's lock) is free for the new one.
            MessageArena leftovers;
            if (old) leftovers = retire(std::move(old));
            if (it->next) start(std::move(*it->next), std::move(leftovers));
            it = leaving.erase(it);
        }
        interrupt_overdue();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

void Supervisor::note_reload(const ReloadReport& report) {
    std::lock_guard lock(mu_);
    for (const auto& r : report.routes) {
        if (r.name.empty()) continue;
        if (r.change == RouteChange::removed) {
            reload_notes_.erase(r.name);
            continue;
        }
        if (r.change == RouteChange::rejected && !r.kept) continue;
        auto& note = reload_notes_[r.name];
        note.at_ms = report.started_ms;
        note.change = route_change_name(r.change);
        note.errors = r.errors;
        // A route that is unchanged but now comes from another file shows that file.
        if (r.change != RouteChange::rejected) note.file = r.file;
    }
}

std::vector<PluginMetric> Supervisor::plugin_metrics() const {
    std::lock_guard lock(mu_);
    std::vector<PluginMetric> out;
    for (const auto& r : routes_) r->plugin_metrics(out);
    return out;
}

std::vector<PluginMetric> Supervisor::plugin_metrics(const std::string& route) const {
    std::lock_guard lock(mu_);
    std::vector<PluginMetric> out;
    for (const auto& r : routes_) {
        if (r->name() == route) r->plugin_metrics(out);
    }
    return out;
}

std::shared_ptr<Tap> Supervisor::open_tap(const std::string& name) {
    std::lock_guard lock(mu_);
    for (auto& r : routes_) {
        if (r->name() == name) return r->open_tap();
    }
    return nullptr;
}

}  // namespace sluice

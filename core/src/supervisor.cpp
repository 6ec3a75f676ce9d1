#include "sluice/core/supervisor.hpp"

namespace sluice {

Supervisor::~Supervisor() {
    stop_all();
    // Routes go before the executor they run on.
    std::lock_guard lock(mu_);
    routes_.clear();
}

void Supervisor::start(RouteSpec spec) {
    auto route = std::make_unique<Route>(std::move(spec), executor_, state_dir_, memory_budget_);
    route->start();
    std::lock_guard lock(mu_);
    routes_.push_back(std::move(route));
}

void Supervisor::request_stop_all() {
    std::lock_guard lock(mu_);
    for (auto& r : routes_) r->request_stop();
}

void Supervisor::interrupt_overdue() {
    std::lock_guard lock(mu_);
    for (auto& r : routes_) r->interrupt_if_overdue();
}

void Supervisor::stop_all() {
    std::vector<Route*> routes;
    {
        // Not held while joining: status() must keep answering while routes drain.
        std::lock_guard lock(mu_);
        for (auto& r : routes_) routes.push_back(r.get());
    }
    for (auto* r : routes) r->request_stop();
    for (auto* r : routes) r->join();
}

bool Supervisor::all_done() const {
    std::lock_guard lock(mu_);
    for (const auto& r : routes_) {
        if (!r->done()) return false;
    }
    return !routes_.empty();
}

std::vector<RouteStatus> Supervisor::status() const {
    std::lock_guard lock(mu_);
    std::vector<RouteStatus> out;
    for (const auto& r : routes_) out.push_back(r->status());
    return out;
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

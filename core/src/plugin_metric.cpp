#include "sluice/core/plugin_metric.hpp"

#include <cstring>

#include "sluice/core/log_hygiene.hpp"

namespace sluice {

bool reserved_metric_name(std::string_view name) {
    for (const std::string_view prefix : {"route_", "process_", "build_", "reloads_"}) {
        if (name.substr(0, prefix.size()) == prefix) return true;
    }
    return false;
}

bool valid_metric_name(std::string_view name) {
    if (name.empty() || name.size() > 100 || name[0] < 'a' || name[0] > 'z') return false;
    for (const char c : name) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return true;
}

PluginMetricCollector::PluginMetricCollector(std::vector<PluginMetric>& out, std::string route)
    : out_(out), route_(std::move(route)) {
    writer_.struct_size = sizeof writer_;
    writer_.ctx = this;
    writer_.put = &PluginMetricCollector::put;
}

const sluice_metric_writer* PluginMetricCollector::writer_for(std::string stage,
                                                              std::string plugin) {
    stage_ = std::move(stage);
    plugin_ = std::move(plugin);
    return &writer_;
}

void PluginMetricCollector::put(void* ctx, const sluice_metric* m) {
    // Called by plugin code: nothing may unwind into it, and nothing it passes is trusted.
    try {
        auto* self = static_cast<PluginMetricCollector*>(ctx);
        if (m == nullptr || m->struct_size < offsetof(sluice_metric, label_name)) return;
        if (m->name == nullptr || !valid_metric_name(m->name) || reserved_metric_name(m->name)) {
            return;
        }
        if (m->type != SLUICE_METRIC_COUNTER && m->type != SLUICE_METRIC_GAUGE) return;
        PluginMetric pm;
        const bool has_label =
            m->struct_size >= offsetof(sluice_metric, label_value) + sizeof m->label_value &&
            m->label_name != nullptr;
        if (has_label) {
            // A label the host sets itself cannot be overridden by a plugin.
            const std::string_view l = m->label_name;
            if (!valid_metric_name(l) || l == "route" || l == "stage" || l == "plugin") return;
            pm.label_name = l;
            // Prometheus refuses a whole scrape over one label value that is not UTF-8.
            pm.label_value = log::valid_utf8(m->label_value != nullptr ? m->label_value : "");
        }
        pm.route = self->route_;
        pm.stage = self->stage_;
        pm.plugin = self->plugin_;
        pm.name = m->name;
        pm.help = log::valid_utf8(m->help != nullptr ? m->help : "");
        pm.type = static_cast<sluice_metric_type>(m->type);
        pm.value = m->value;
        self->out_.push_back(std::move(pm));
    } catch (...) {
    }
}

}  // namespace sluice

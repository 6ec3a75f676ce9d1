// A figure a plugin instance published through its `metrics` callback (ABI 1.4), copied out
// with the route and stage it belongs to, for /metrics and /api/routes/<name>.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/abi.h"

namespace sluice {

struct PluginMetric {
    std::string route;
    std::string stage;   // "source", "transforms[0]", "sink", "dead_letter"
    std::string plugin;  // the plugin's id
    std::string name;    // as the plugin wrote it; published as sluice_<name>
    std::string help;
    sluice_metric_type type = SLUICE_METRIC_GAUGE;
    double value = 0;
    std::string label_name;  // empty: none
    std::string label_value;
};

/// [a-z][a-z0-9_]*, at most 100 characters: what a plugin may name a metric or its label.
bool valid_metric_name(std::string_view name);
/// The host's own families (route_, process_, build_, reloads_): not a plugin's to publish.
bool reserved_metric_name(std::string_view name);

/// A sluice_metric_writer that appends what a plugin writes to `out`, labelled with the
/// route, stage and plugin; malformed entries (bad names, unknown types) are dropped.
class PluginMetricCollector {
public:
    PluginMetricCollector(std::vector<PluginMetric>& out, std::string route);
    /// The writer for one instance; valid until the next call.
    const sluice_metric_writer* writer_for(std::string stage, std::string plugin);

private:
    static void put(void* ctx, const sluice_metric* m);

    std::vector<PluginMetric>& out_;
    std::string route_, stage_, plugin_;
    sluice_metric_writer writer_{};
};

}  // namespace sluice

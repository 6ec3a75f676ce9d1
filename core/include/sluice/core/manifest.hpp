// Host config (sluice.yaml) and route manifests: parsing, `${VAR}` interpolation, and
// validation against each plugin's config spec. Everything is checked before anything starts,
// and every problem is reported at once with file:line:col and the key's path.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "sluice/core/diagnostics.hpp"
#include "sluice/core/interpolate.hpp"
#include "sluice/core/plugin_registry.hpp"
#include "sluice/core/stage_config.hpp"

namespace sluice {

struct HostConfig {
    std::filesystem::path file;  // empty: embedded defaults
    std::vector<std::filesystem::path> plugin_dirs;
    std::vector<std::filesystem::path> route_paths;
    std::filesystem::path state_dir = "var/sluice";
    std::string log_level = "info";
    std::string log_format = "text";
    std::string admin_listen;  // accepted now, served by a later version
};

/// Parses sluice.yaml. Relative paths are taken relative to the file's directory.
HostConfig load_host_config(const std::filesystem::path& file, Diagnostics& diag,
                            const EnvLookup& env);

/// Options every route has (keys at the top level of a route manifest).
struct RouteOptions {
    std::size_t queue_capacity = 10000;
    enum class WhenFull { block, drop_newest } when_full = WhenFull::block;
    enum class OnError { drop, stop } on_error = OnError::drop;
    std::size_t max_payload_bytes = 1 << 20;
    std::size_t batch_size = 500;
    uint32_t restart_initial_ms = 500;
    uint32_t restart_max_ms = 30000;
    uint32_t drain_timeout_ms = 10000;
};

/// The spec table of route-level options, for validation and `sluice check` docs.
const std::vector<sluice_field_spec>& route_option_fields();

struct StageSpec {
    const PluginInfo* plugin = nullptr;
    std::unique_ptr<StageConfig> config;
    std::string label;  // "source mqtt-source", "transforms[0] json-transform"
};

struct RouteSpec {
    std::string name;
    SourceLocation where;
    RouteOptions options;
    StageSpec source;
    std::vector<StageSpec> transforms;
    StageSpec sink;
    /// Equal fingerprints: same plugins, same options.
    std::string fingerprint() const;
};

/// Collects route manifests from files and directories (*.yaml, *.yml, sorted).
std::vector<std::filesystem::path> manifest_files(const std::vector<std::filesystem::path>& paths,
                                                  Diagnostics& diag);

/// Parses and validates all route manifests; returns only the valid routes, and reports every
/// problem in `diag`.
std::vector<RouteSpec> load_routes(const std::vector<std::filesystem::path>& files,
                                   const PluginRegistry& registry, Diagnostics& diag,
                                   const EnvLookup& env);

}  // namespace sluice

// Host config (sluice.yaml) and route manifests: parsing, `${VAR}` interpolation, and
// validation against each plugin's config spec. Everything is checked before anything starts,
// and every problem is reported at once with file:line:col and the key's path.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/core/diagnostics.hpp"
#include "sluice/core/interpolate.hpp"
#include "sluice/core/plugin_registry.hpp"
#include "sluice/core/route_options.hpp"
#include "sluice/core/stage_config.hpp"

namespace YAML {
class Node;
}

namespace sluice {

struct HostConfig {
    std::filesystem::path file;  // empty: embedded defaults
    std::vector<std::filesystem::path> plugin_dirs;
    std::vector<std::filesystem::path> route_paths;
    std::filesystem::path state_dir = "var/sluice";
    std::string log_level = "info";
    std::string log_format = "text";
    std::string admin_listen;                // host:port of the admin HTTP endpoints; "" none
    std::filesystem::path admin_token_file;  // the bearer token's file, or
    std::string admin_token_env;             // the variable that holds it
    /// What the memory buffers of all routes may hold together (their max_bytes plus
    /// headroom); checked when routes are loaded.
    std::uint64_t memory_limit = 2ull << 30;
    /// `env_allow`: the only environment variables route manifests may read (name patterns);
    /// without the key, any.
    std::optional<std::vector<std::string>> env_allow;
    /// `plugin_settings`: per plugin id, the options that only the host config may set
    /// (SLUICE_FIELD_HOST), as parsed, and where they are; checked against the plugins' specs
    /// once the plugins are loaded (check_plugin_settings).
    struct PluginSettings {
        std::shared_ptr<const YAML::Node> node;
        SourceLocation where;
    };
    std::map<std::string, PluginSettings> plugin_settings;
};

/// What route manifests read `${VAR}` from: the process environment, limited by `env_allow`.
EnvLookup manifest_env(const HostConfig& host);

/// The host-only options (SLUICE_FIELD_HOST) of every plugin that has any, validated, with
/// their defaults, by plugin id: what each route's stage of that plugin gets.
using HostPluginOptions = std::map<std::string, std::vector<StageConfig::Entry>>;

/// Checks `host.plugin_settings` against the plugins' specs: an unknown plugin id, an option
/// that is not host-only, a bad value are reported in `diag` (at the host config's lines).
HostPluginOptions check_plugin_settings(const HostConfig& host, const PluginRegistry& registry,
                                        Diagnostics& diag, const EnvLookup& env);

/// Parses sluice.yaml. Relative paths are taken relative to the file's directory.
HostConfig load_host_config(const std::filesystem::path& file, Diagnostics& diag,
                            const EnvLookup& env);

struct StageSpec {
    /// Shared: a route keeps its plugin's descriptor when a reload rebuilds the registry.
    std::shared_ptr<const PluginInfo> plugin;
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
    /// With on_error: dead_letter, the sink that receives failed messages (else no plugin).
    StageSpec dead_letter;
    /// Equal fingerprints: same plugins, same options.
    std::string fingerprint() const;
};

/// Collects route manifests from files and directories (*.yaml, *.yml, sorted).
std::vector<std::filesystem::path> manifest_files(const std::vector<std::filesystem::path>& paths,
                                                  Diagnostics& diag);

/// A route (or a whole file) that did not validate, with its errors as `sluice check` prints
/// them. A reload keeps the running version of what was rejected.
struct Rejection {
    std::string file;
    std::string route;  // "": the whole file (unparseable, or a document without a valid name)
    std::vector<std::string> errors;
};

/// Parses and validates all route manifests; returns only the valid routes, and reports every
/// problem in `diag` (and, when `rejected` is given, what each problem rejects). A manifest
/// that sets a host-only option is refused; each stage gets its plugin's `host_options`
/// (without them: the defaults).
std::vector<RouteSpec> load_routes(const std::vector<std::filesystem::path>& files,
                                   const PluginRegistry& registry, Diagnostics& diag,
                                   const EnvLookup& env, std::vector<Rejection>* rejected = nullptr,
                                   const HostPluginOptions* host_options = nullptr);

/// What the routes' memory buffers may hold together: their max_bytes plus headroom.
std::uint64_t memory_buffers_bytes(const std::vector<RouteSpec>& routes);

/// The routes' memory buffers must fit in the host's memory_limit together; reports the
/// largest routes when they do not.
void check_memory_budget(const std::vector<RouteSpec>& routes, const HostConfig& host,
                         Diagnostics& diag);

}  // namespace sluice

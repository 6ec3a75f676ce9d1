// What the parts of the `sluice` binary share: the parsed command line, exit codes, and loading
// the configuration. main.cpp parses and dispatches (help, plugins, check), config_loading.cpp
// finds and validates the configuration, run_command.cpp is the daemon, reload_command.cpp the
// client of a running daemon's reload.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "sluice/core/manifest.hpp"
#include "sluice/core/plugin_registry.hpp"
#include "sluice/core/reload/reloader.hpp"

namespace sluice::cli {

constexpr int kExitOk = 0;
constexpr int kExitInvalid = 1;  // invalid configuration, or a failure at run time
constexpr int kExitUsage = 2;

struct Options {
    std::string command;
    std::vector<std::string> args;  // positional after the command
    std::optional<std::filesystem::path> config;
    std::vector<std::filesystem::path> plugins;
    std::vector<std::filesystem::path> routes;
    std::string log_level;
    std::string log_format;
    std::optional<std::filesystem::path> state_dir;
    std::string format = "text";
    std::string kind;                          // plugins new
    std::optional<std::filesystem::path> dir;  // plugins new
    std::string admin;                         // reload: the daemon's admin host:port
    bool help = false;
};

int usage_error(const std::string& message);
std::filesystem::path self_dir();

/// Host config from -c, ./sluice.yaml or defaults, with the command line's overrides.
HostConfig resolve_config(const Options& o, Diagnostics& diag);
void print_plugin_errors(const std::vector<std::string>& errors);

struct Loaded {
    HostConfig host;
    std::vector<RouteSpec> routes;
    std::size_t files = 0;
};
/// Loads plugins and validates everything; prints all problems. nullopt when invalid.
std::optional<Loaded> load_everything(const Options& o, PluginRegistry& registry,
                                      bool plugin_errors_are_fatal);
/// The same for a reload, with a registry of its own: what validated, what did not, and what
/// refuses the reload as a whole. Prints nothing (the reload's report says it all).
LoadedSet load_for_reload(const Options& o);

int cmd_run(const Options& o);
int cmd_reload(const Options& o);

}  // namespace sluice::cli

// Finding and validating the configuration: for `check`, for `run` at start, and for every
// reload of a running daemon.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "cli.hpp"
#include "sluice/core/log.hpp"
#include "sluice/core/log_hygiene.hpp"

namespace sluice::cli {

namespace fs = std::filesystem;

int usage_error(const std::string& message) {
    std::cerr << "sluice: " << message << "\nRun 'sluice --help' for usage.\n";
    return kExitUsage;
}

fs::path self_dir() {
    std::error_code ec;
    const auto exe = fs::read_symlink("/proc/self/exe", ec);
    return ec ? fs::current_path() : exe.parent_path();
}

namespace {

std::vector<fs::path> default_plugin_dirs() {
    std::vector<fs::path> dirs;
    if (const char* env = std::getenv("SLUICE_PLUGIN_PATH")) {
        std::string s = env;
        std::size_t start = 0;
        while (start <= s.size()) {
            const auto colon = s.find(':', start);
            const auto part = s.substr(start, colon - start);
            if (!part.empty()) dirs.emplace_back(part);
            if (colon == std::string::npos) break;
            start = colon + 1;
        }
    }
    const fs::path here = self_dir();
    std::vector<fs::path> candidates = {here / "plugins",
                                        here / ".." / "lib" / "sluice" / "plugins"};
#ifdef SLUICE_INSTALL_PLUGIN_DIR_FROM_BINDIR
    // Where `cmake --install` put the plugins, relative to this binary: differs from the
    // above when the install's libdir is not "lib" (e.g. lib/x86_64-linux-gnu on Debian).
    candidates.push_back(here / SLUICE_INSTALL_PLUGIN_DIR_FROM_BINDIR);
#endif
    for (const auto& candidate : candidates) {
        std::error_code ec;
        const auto dir = candidate.lexically_normal();
        if (fs::is_directory(dir, ec) && std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) {
            dirs.push_back(dir);
        }
    }
    return dirs;
}

}  // namespace

HostConfig resolve_config(const Options& o, Diagnostics& diag) {
    HostConfig host;
    std::optional<fs::path> file = o.config;
    if (!file && fs::exists("sluice.yaml")) file = "sluice.yaml";
    if (file) {
        if (!fs::exists(*file)) {
            diag.add({file->string(), 0, 0}, "", "host config file does not exist");
        } else {
            host = load_host_config(*file, diag, process_env());
        }
    }
    if (!o.plugins.empty()) host.plugin_dirs = o.plugins;
    if (host.plugin_dirs.empty()) host.plugin_dirs = default_plugin_dirs();
    if (!o.routes.empty()) host.route_paths = o.routes;
    if (!o.log_level.empty()) host.log_level = o.log_level;
    if (!o.log_format.empty()) host.log_format = o.log_format;
    if (o.state_dir) host.state_dir = *o.state_dir;
    static const std::vector<std::string> kLevels = {"trace", "debug", "info", "warn", "error"};
    if (std::find(kLevels.begin(), kLevels.end(), host.log_level) == kLevels.end()) {
        diag.add({"--log-level", 0, 0}, "",
                 "'" + host.log_level + "' is not one of: trace, debug, info, warn, error");
    }
    if (host.log_format != "text" && host.log_format != "json") {
        diag.add({"--log-format", 0, 0}, "", "'" + host.log_format + "' is not one of: text, json");
    }
    return host;
}

void print_plugin_errors(const std::vector<std::string>& errors) {
    for (const auto& e : errors) std::cerr << "error: " << sluice::log::escape_text(e) << "\n";
}

std::optional<Loaded> load_everything(const Options& o, PluginRegistry& registry,
                                      bool plugin_errors_are_fatal) {
    Diagnostics diag;
    Loaded out;
    out.host = resolve_config(o, diag);
    const auto plugin_errors = registry.load_directories(out.host.plugin_dirs);
    print_plugin_errors(plugin_errors);
    const auto files = manifest_files(out.host.route_paths, diag);
    out.files = files.size();
    const auto host_options = check_plugin_settings(out.host, registry, diag, process_env());
    out.routes = load_routes(files, registry, diag, manifest_env(out.host), nullptr, &host_options);
    check_memory_budget(out.routes, out.host, diag);
    if (!diag.empty()) {
        std::cerr << diag.to_string();
        std::cerr << diag.size() << (diag.size() == 1 ? " error" : " errors") << " in "
                  << files.size() << " manifest file(s)"
                  << (out.host.file.empty() ? "" : " and " + out.host.file.string()) << "\n";
        return std::nullopt;
    }
    if (plugin_errors_are_fatal && !plugin_errors.empty()) return std::nullopt;
    return out;
}

LoadedSet load_for_reload(const Options& o) {
    LoadedSet out;
    Diagnostics host_diag;
    out.host = resolve_config(o, host_diag);
    for (const auto& d : host_diag.items()) out.errors.push_back(d.to_string());
    if (!out.errors.empty()) return out;
    // A registry of its own: unchanged libraries are shared with the running routes', a
    // library replaced on disk is loaded beside the old one (see PluginRegistry).
    PluginRegistry registry;
    out.warnings = registry.load_directories(out.host.plugin_dirs);
    Diagnostics path_diag;
    const auto files = manifest_files(out.host.route_paths, path_diag);
    for (const auto& d : path_diag.items()) out.errors.push_back(d.to_string());
    if (!out.errors.empty()) return out;
    Diagnostics settings_diag;
    const auto host_options =
        check_plugin_settings(out.host, registry, settings_diag, process_env());
    for (const auto& d : settings_diag.items()) out.errors.push_back(d.to_string());
    if (!out.errors.empty()) return out;
    Diagnostics diag;
    out.routes =
        load_routes(files, registry, diag, manifest_env(out.host), &out.rejected, &host_options);
    return out;
}

}  // namespace sluice::cli

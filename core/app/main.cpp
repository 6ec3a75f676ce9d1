// `sluice`: the daemon and its CLI (run, check, plugins list|describe|new, version).
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "sluice/core/admin/admin_api.hpp"
#include "sluice/core/admin/http_server.hpp"
#include "sluice/core/log.hpp"
#include "sluice/core/manifest.hpp"
#include "sluice/core/plugin_docs.hpp"
#include "sluice/core/plugin_registry.hpp"
#include "sluice/core/scaffold.hpp"
#include "sluice/core/state_dir_lock.hpp"
#include "sluice/core/supervisor.hpp"

namespace fs = std::filesystem;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitInvalid = 1;  // invalid configuration, or a failure at run time
constexpr int kExitUsage = 2;

const char* const kMainHelp = R"(sluice: isolated MQTT -> Kafka routes with plugins

Usage:
  sluice run [options]                 run the routes until SIGTERM/SIGINT
  sluice check [options]               validate config and manifests, start nothing
  sluice plugins list [options]        list the plugins found
  sluice plugins describe <id> [--format text|markdown|json]
  sluice plugins new <id> --kind source|transform|sink [--dir PATH]
                                       write a plugin project (default PATH: ./<id>)
  sluice options                       the route options, as Markdown
  sluice version

Options (run, check, plugins):
  -c, --config FILE    host config (default: ./sluice.yaml if present, else embedded defaults)
  --plugins DIR        plugin directory; repeatable; replaces the config's `plugins`
  --routes PATH        route manifest file or directory; repeatable; replaces `routes`
  --log-level LEVEL    trace, debug, info, warn, error (default: config, else info)
  --log-format FORMAT  text or json
  --state-dir DIR      durable state (disk spools); replaces the config's `state_dir`
  -h, --help           this help

Without a config, plugins are searched in $SLUICE_PLUGIN_PATH (colon-separated), then
<sluice dir>/plugins and <sluice dir>/../lib/sluice/plugins.
Exit codes: 0 ok, 1 invalid configuration or failure, 2 usage error.
)";

struct Options {
    std::string command;
    std::vector<std::string> args;  // positional after the command
    std::optional<fs::path> config;
    std::vector<fs::path> plugins;
    std::vector<fs::path> routes;
    std::string log_level;
    std::string log_format;
    std::optional<fs::path> state_dir;
    std::string format = "text";
    std::string kind;             // plugins new
    std::optional<fs::path> dir;  // plugins new
    bool help = false;
};

int usage_error(const std::string& message) {
    std::cerr << "sluice: " << message << "\nRun 'sluice --help' for usage.\n";
    return kExitUsage;
}

std::optional<Options> parse_args(int argc, char** argv, std::string& error) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&](const char* name) -> std::optional<std::string> {
            if (i + 1 >= argc) {
                error = std::string(name) + " needs a value";
                return std::nullopt;
            }
            return std::string(argv[++i]);
        };
        if (a == "-h" || a == "--help") {
            o.help = true;
        } else if (a == "-c" || a == "--config") {
            auto v = value("--config");
            if (!v) return std::nullopt;
            o.config = *v;
        } else if (a == "--plugins") {
            auto v = value("--plugins");
            if (!v) return std::nullopt;
            o.plugins.emplace_back(*v);
        } else if (a == "--routes") {
            auto v = value("--routes");
            if (!v) return std::nullopt;
            o.routes.emplace_back(*v);
        } else if (a == "--log-level") {
            auto v = value("--log-level");
            if (!v) return std::nullopt;
            o.log_level = *v;
        } else if (a == "--state-dir") {
            auto v = value("--state-dir");
            if (!v) return std::nullopt;
            o.state_dir = *v;
        } else if (a == "--log-format") {
            auto v = value("--log-format");
            if (!v) return std::nullopt;
            o.log_format = *v;
        } else if (a == "--format") {
            auto v = value("--format");
            if (!v) return std::nullopt;
            o.format = *v;
        } else if (a == "--kind") {
            auto v = value("--kind");
            if (!v) return std::nullopt;
            o.kind = *v;
        } else if (a == "--dir") {
            auto v = value("--dir");
            if (!v) return std::nullopt;
            o.dir = fs::path(*v);
        } else if (a.starts_with("-")) {
            error = "unknown option '" + a + "'";
            return std::nullopt;
        } else if (o.command.empty()) {
            o.command = a;
        } else {
            o.args.push_back(a);
        }
    }
    return o;
}

fs::path self_dir() {
    std::error_code ec;
    const auto exe = fs::read_symlink("/proc/self/exe", ec);
    return ec ? fs::current_path() : exe.parent_path();
}

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

// Host config from -c, ./sluice.yaml or defaults, with the command line's overrides.
sluice::HostConfig resolve_config(const Options& o, sluice::Diagnostics& diag) {
    sluice::HostConfig host;
    std::optional<fs::path> file = o.config;
    if (!file && fs::exists("sluice.yaml")) file = "sluice.yaml";
    if (file) {
        if (!fs::exists(*file)) {
            diag.add({file->string(), 0, 0}, "", "host config file does not exist");
        } else {
            host = sluice::load_host_config(*file, diag, sluice::process_env());
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
    for (const auto& e : errors) std::cerr << "error: " << e << "\n";
}

// `sluice plugins new <id> --kind K [--dir PATH]`: the logic is in core/src/scaffold.cpp.
int cmd_plugins_new(const Options& o) {
    if (o.args.size() != 2) return usage_error("plugins new needs one plugin id");
    const std::string& id = o.args[1];
    if (const auto why = sluice::check_plugin_id(id); !why.empty()) {
        return usage_error("invalid plugin id '" + id + "': " + why +
                           " (kebab-case, e.g. my-sink)");
    }
    const auto kind = sluice::parse_kind(o.kind);
    if (!kind) return usage_error("plugins new needs --kind source, transform or sink");
    const fs::path dir = o.dir ? *o.dir : fs::path(id);
    try {
        const auto files = sluice::scaffold_plugin(id, *kind, dir);
        std::cout << "created " << o.kind << " plugin '" << id << "' in " << dir.string() << ":\n";
        for (const auto& f : files) std::cout << "  " << (dir / f).string() << "\n";
        // An installed sluice sits in <prefix>/bin beside the SDK package: say where it is.
        const fs::path prefix = self_dir().parent_path();
        const std::string prefix_hint = fs::exists(prefix / "include" / "sluice" / "sdk.hpp")
                                            ? " -DCMAKE_PREFIX_PATH=" + prefix.string()
                                            : " -DCMAKE_PREFIX_PATH=<Sluice install prefix>";
        std::cout << "next:\n  cmake -S " << dir.string() << " -B " << (dir / "build").string()
                  << prefix_hint << "\n  cmake --build " << (dir / "build").string()
                  << "\n  ctest --test-dir " << (dir / "build").string()
                  << "\n  sluice plugins list --plugins " << (dir / "build" / "plugins").string()
                  << "\n";
    } catch (const sluice::ScaffoldError& e) {
        std::cerr << "sluice: " << e.what() << "\n";
        return kExitInvalid;
    }
    return kExitOk;
}

int cmd_plugins(const Options& o) {
    if (o.help || o.args.empty()) {
        std::cout << "Usage:\n  sluice plugins list [--plugins DIR]... [-c FILE]\n"
                     "  sluice plugins describe <id> [--format text|markdown|json]\n"
                     "  sluice plugins new <id> --kind source|transform|sink [--dir PATH]\n";
        return o.help ? kExitOk : kExitUsage;
    }
    if (o.args[0] == "new") return cmd_plugins_new(o);
    sluice::Diagnostics diag;
    const auto host = resolve_config(o, diag);
    if (!diag.empty()) {
        std::cerr << diag.to_string();
        return kExitInvalid;
    }
    sluice::PluginRegistry registry;
    const auto errors = registry.load_directories(host.plugin_dirs);
    print_plugin_errors(errors);
    const std::string& sub = o.args[0];
    if (sub == "list") {
        const auto all = registry.all();
        if (all.empty()) {
            std::cerr << "no plugins found in:";
            for (const auto& d : host.plugin_dirs) std::cerr << " " << d.string();
            std::cerr << "\n";
            return kExitInvalid;
        }
        std::size_t width = 2;
        for (const auto* p : all) width = std::max(width, p->id.size());
        for (const auto* p : all) {
            std::string id = p->id;
            id.resize(width, ' ');
            std::string kind = sluice::kind_name(p->kind);
            kind.resize(9, ' ');
            std::cout << id << "  " << kind << "  " << p->version << "  "
                      << (p->descriptor.summary ? p->descriptor.summary : "") << "\n";
        }
        return errors.empty() ? kExitOk : kExitInvalid;
    }
    if (sub == "describe") {
        if (o.args.size() != 2) return usage_error("plugins describe needs one plugin id");
        const auto* p = registry.find(o.args[1]);
        if (p == nullptr) {
            std::cerr << "sluice: unknown plugin '" << o.args[1]
                      << "' (known: " << registry.known_ids() << ")\n";
            return kExitInvalid;
        }
        sluice::DocFormat format;
        if (o.format == "text") {
            format = sluice::DocFormat::text;
        } else if (o.format == "markdown") {
            format = sluice::DocFormat::markdown;
        } else if (o.format == "json") {
            format = sluice::DocFormat::json;
        } else {
            return usage_error("--format must be text, markdown or json");
        }
        std::cout << sluice::describe_plugin(*p, format);
        return kExitOk;
    }
    return usage_error("unknown plugins subcommand '" + sub + "'");
}

struct Loaded {
    sluice::HostConfig host;
    std::vector<sluice::RouteSpec> routes;
    std::size_t files = 0;
};

// Loads plugins and validates everything; prints all problems. Returns nullopt when invalid.
std::optional<Loaded> load_everything(const Options& o, sluice::PluginRegistry& registry,
                                      bool plugin_errors_are_fatal) {
    sluice::Diagnostics diag;
    Loaded out;
    out.host = resolve_config(o, diag);
    const auto plugin_errors = registry.load_directories(out.host.plugin_dirs);
    print_plugin_errors(plugin_errors);
    const auto files = sluice::manifest_files(out.host.route_paths, diag);
    out.files = files.size();
    out.routes = sluice::load_routes(files, registry, diag, sluice::process_env());
    sluice::check_memory_budget(out.routes, out.host, diag);
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

int cmd_check(const Options& o) {
    if (o.help) {
        std::cout << "Usage: sluice check [-c FILE] [--plugins DIR]... [--routes PATH]...\n"
                     "Validates the host config, every route manifest and plugin; starts "
                     "nothing.\nExit 0 when valid; 1 with every problem listed otherwise.\n";
        return kExitOk;
    }
    sluice::PluginRegistry registry;
    const auto loaded = load_everything(o, registry, true);
    if (!loaded) return kExitInvalid;
    std::cout << "ok: " << loaded->routes.size() << " route(s) in " << loaded->files
              << " manifest file(s) are valid\n";
    for (const auto& r : loaded->routes) {
        std::cout << "  " << r.name << ": " << r.source.plugin->id;
        for (const auto& t : r.transforms) std::cout << " -> " << t.plugin->id;
        std::cout << " -> " << r.sink.plugin->id << "\n";
    }
    return kExitOk;
}

// A spool left by a route that is no longer configured (renamed, removed) is never delivered:
// say so at every start rather than let it sit unnoticed.
void warn_orphan_spools(const fs::path& state_dir, const std::vector<sluice::RouteSpec>& routes) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(state_dir / "routes", ec)) {
        const std::string name = entry.path().filename().string();
        const bool configured = std::any_of(routes.begin(), routes.end(), [&](const auto& r) {
            return r.name == name && r.options.buffer.type == sluice::BufferOptions::Type::disk;
        });
        std::error_code seg_ec;
        if (configured || !fs::is_directory(entry.path() / "spool", seg_ec)) continue;
        bool has_segments = false;
        for (const auto& f : fs::directory_iterator(entry.path() / "spool", seg_ec)) {
            has_segments = has_segments || f.path().extension() == ".seg";
        }
        if (!has_segments) continue;
        sluice::log::warn("", "state_dir has a spool for route '" + name +
                                  "', which is not configured with a disk buffer: what it holds "
                                  "is not delivered. Configure the route again to drain it, or "
                                  "remove " +
                                  (entry.path() / "spool").string());
    }
}

// Ends the process without waiting for routes that did not stop: writes out the queued log
// lines first, but not for longer than a second (stderr itself may be what is stuck).
// The soft limit on open files is often 1024, far below what thousands of routes need; the
// hard limit is the administrator's word. Returns the limit now in force.
rlim_t raise_open_file_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
    if (limit.rlim_cur < limit.rlim_max) {
        const rlim_t wanted = limit.rlim_max;
        limit.rlim_cur = wanted;
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0) getrlimit(RLIMIT_NOFILE, &limit);
    }
    return limit.rlim_cur;
}

[[noreturn]] void exit_now(int code) {
    std::thread([] { sluice::log::shutdown(); }).detach();
    for (int i = 0; i < 100 && !sluice::log::is_shut_down(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::_Exit(code);
}

int cmd_run(const Options& o) {
    if (o.help) {
        std::cout << "Usage: sluice run [-c FILE] [--plugins DIR]... [--routes PATH]... "
                     "[--log-level L] [--log-format text|json]\n"
                     "Runs every route until SIGTERM or SIGINT (then drains and exits 0), or "
                     "until every route's input has ended.\n";
        return kExitOk;
    }
    // Signals are taken synchronously by this thread; every thread started later inherits
    // the mask, so none of them is interrupted by a signal meant for the process.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    sluice::PluginRegistry registry;
    auto loaded = load_everything(o, registry, false);
    if (!loaded) return kExitInvalid;
    sluice::log::setup(loaded->host.log_level, loaded->host.log_format);
    if (loaded->routes.empty()) {
        sluice::log::error("", "no routes configured: give --routes or `routes:` in the config");
        sluice::log::shutdown();
        return kExitInvalid;
    }
    std::string admin_token;
    try {
        admin_token = sluice::admin::load_token(loaded->host.admin_token_file.string(),
                                                loaded->host.admin_token_env);
    } catch (const std::exception& e) {
        sluice::log::error("", e.what());
        sluice::log::shutdown();
        return kExitInvalid;
    }
    // Spools are the state: one process per state_dir, or two would deliver (and trim) the
    // same messages.
    std::optional<sluice::StateDirLock> state_lock;
    std::uint32_t longest_drain_ms = 0;
    for (const auto& r : loaded->routes) {
        longest_drain_ms = std::max(longest_drain_ms, r.options.drain_timeout_ms);
        if (r.options.buffer.type == sluice::BufferOptions::Type::disk && !state_lock) {
            try {
                state_lock.emplace(sluice::StateDirLock::acquire(loaded->host.state_dir));
            } catch (const std::exception& e) {
                sluice::log::error("", std::string("route ") + r.name + ": " + e.what());
                sluice::log::shutdown();
                return kExitInvalid;
            }
        }
    }
    warn_orphan_spools(loaded->host.state_dir, loaded->routes);
    const rlim_t files = raise_open_file_limit();
    // Every MQTT route keeps a connection of its own: a few per route, plus the producers'.
    if (files != RLIM_INFINITY && files < loaded->routes.size() * 2 + 256) {
        sluice::log::warn("", "the open-file limit (" + std::to_string(files) + ") is low for " +
                                  std::to_string(loaded->routes.size()) +
                                  " routes; raise it (ulimit -n, systemd LimitNOFILE=)");
    }
    sluice::Supervisor supervisor(loaded->host.state_dir);
    // check_memory_budget() made sure the buffers fit.
    supervisor.set_memory_budget(
        loaded->host.memory_limit -
        std::min(loaded->host.memory_limit, sluice::memory_buffers_bytes(loaded->routes)));
    sluice::log::info("", "sluice " SLUICE_SDK_VERSION_STRING " starting " +
                              std::to_string(loaded->routes.size()) + " route(s) on " +
                              std::to_string(supervisor.executor().base_threads()) +
                              " executor threads");
    // Before the routes: what they do from their first moment shows. Destroyed before the
    // supervisor whose status it serves (declared after it).
    std::unique_ptr<sluice::admin::HttpServer> admin_http;
    if (!loaded->host.admin_listen.empty()) {
        std::string host;
        std::uint16_t port = 0;
        std::string error;
        sluice::admin::parse_listen(loaded->host.admin_listen, host, port, error);
        auto api = std::make_shared<sluice::admin::AdminApi>(
            [&supervisor] { return supervisor.status(); },
            [&supervisor](const std::string& route) { return supervisor.open_tap(route); },
            admin_token, [&supervisor] { return supervisor.plugin_metrics(); },
            [&supervisor](const std::string& route) { return supervisor.plugin_metrics(route); });
        try {
            admin_http = std::make_unique<sluice::admin::HttpServer>(
                host, port, [api](const sluice::admin::Request& r) { return api->handle(r); });
        } catch (const std::exception& e) {
            sluice::log::error("", std::string("admin.listen: ") + e.what());
            sluice::log::shutdown();
            return kExitInvalid;
        }
        const std::string shown = host.find(':') != std::string::npos ? "[" + host + "]" : host;
        sluice::log::info(
            "", "admin HTTP on http://" + shown + ":" + std::to_string(admin_http->port()) +
                    (admin_token.empty() ? " (no token)" : " (bearer token required)"));
    }
    for (auto& r : loaded->routes) supervisor.start(std::move(r));
    auto drain_all = [&] {
        // Draining can take a while; a second SIGINT/SIGTERM meanwhile means "now". A route
        // whose plugin call never returns cannot be joined: a moment past the longest drain
        // deadline (sinks get what is left of it, at least 1 s, to flush), the process ends
        // without it (its disk spool, if any, keeps what it held).
        const auto give_up = std::chrono::steady_clock::now() +
                             std::chrono::milliseconds(longest_drain_ms) + std::chrono::seconds(3);
        std::atomic<bool> stopped{false};
        supervisor.request_stop_all();
        std::thread stopper([&] {
            supervisor.stop_all();
            stopped = true;
        });
        const timespec slice{0, 100'000'000};
        while (!stopped) {
            const int again = sigtimedwait(&signals, nullptr, &slice);
            if (again == SIGINT || again == SIGTERM) {
                sluice::log::error("", "second signal: exiting without finishing the drain");
                exit_now(kExitInvalid);
            }
            supervisor.interrupt_overdue();
            if (std::chrono::steady_clock::now() > give_up) {
                for (const auto& st : supervisor.status()) {
                    if (st.state == sluice::RouteState::stopped) continue;
                    sluice::log::error(
                        "route " + st.name,
                        "did not stop in time" +
                            (st.stuck_in.empty()
                                 ? std::string()
                                 : ": a call into " + st.stuck_in + " has not returned") +
                            (st.durable
                                 ? "; its disk spool keeps the " + std::to_string(st.buffered) +
                                       " messages it held for the next start"
                                 : "; " + std::to_string(st.buffered) +
                                       " messages were not delivered and are lost"));
                }
                sluice::log::error("", "exiting without the routes that did not stop");
                exit_now(kExitInvalid);
            }
        }
        stopper.join();
    };

    const timespec tick{0, 200'000'000};
    while (true) {
        const int sig = sigtimedwait(&signals, nullptr, &tick);
        if (sig == SIGINT || sig == SIGTERM) {
            sluice::log::info("", std::string("received ") +
                                      (sig == SIGINT ? "SIGINT" : "SIGTERM") + ": draining routes");
            break;
        }
        if (sig == SIGHUP) {
            sluice::log::warn("",
                              "SIGHUP: reload is not supported by this version yet; "
                              "restart sluice to apply manifest changes");
        }
        if (supervisor.all_done()) {
            sluice::log::info("", "every route's input has ended");
            break;
        }
    }
    drain_all();
    std::uint64_t undelivered = 0;
    for (const auto& s : supervisor.status()) {
        if (s.state == sluice::RouteState::failed) {
            sluice::log::warn("", "route " + s.name + " ended failed: " + s.reason);
        }
        undelivered += s.undelivered;
    }
    if (undelivered > 0) {
        // Exit non-zero so that service managers and scripts notice the loss.
        sluice::log::error(
            "", "stopped with " + std::to_string(undelivered) + " messages not delivered");
        sluice::log::shutdown();
        return kExitInvalid;
    }
    sluice::log::info("", "stopped");
    sluice::log::shutdown();
    return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
    // A log reader that goes away (a closed pipe on stderr) must not kill the process before
    // it drains: write errors are enough.
    std::signal(SIGPIPE, SIG_IGN);
    std::string error;
    const auto options = parse_args(argc, argv, error);
    if (!options) return usage_error(error);
    const Options& o = *options;
    if (o.command.empty() || o.command == "help") {
        std::cout << kMainHelp;
        return o.command.empty() && !o.help ? kExitUsage : kExitOk;
    }
    try {
        if (o.command == "version") {
            std::cout << "sluice " << SLUICE_SDK_VERSION_STRING << " (plugin ABI "
                      << SLUICE_ABI_MAJOR << "." << SLUICE_ABI_MINOR << ")\n";
            return kExitOk;
        }
        if (o.command == "options") {
            std::cout << sluice::describe_route_options();
            return kExitOk;
        }
        if (o.command == "run") return cmd_run(o);
        if (o.command == "check") return cmd_check(o);
        if (o.command == "plugins") return cmd_plugins(o);
    } catch (const std::exception& e) {
        std::cerr << "sluice: " << e.what() << "\n";
        return kExitInvalid;
    }
    return usage_error("unknown command '" + o.command + "'");
}

// `sluice`: the daemon and its CLI (run, reload, check, plugins list|describe|new, options,
// version): parses the command line and dispatches; the commands that are more than a few
// lines live beside it (see cli.hpp).
#include <algorithm>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"
#include "sluice/core/log_hygiene.hpp"
#include "sluice/core/plugin_docs.hpp"
#include "sluice/core/scaffold.hpp"

namespace fs = std::filesystem;
using namespace sluice::cli;

namespace {

const char* const kMainHelp = R"(sluice: isolated MQTT -> Kafka routes with plugins

Usage:
  sluice run [options]                 run the routes until SIGTERM/SIGINT
  sluice reload [-c FILE] [--admin HOST:PORT]
                                       make the running sluice reload its routes
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
  --admin HOST:PORT    reload: the daemon's admin endpoint (default: the config's admin.listen)
  -h, --help           this help

Without a config, plugins are searched in $SLUICE_PLUGIN_PATH (colon-separated), then
<sluice dir>/plugins and <sluice dir>/../lib/sluice/plugins.
Exit codes: 0 ok, 1 invalid configuration or failure, 2 usage error.
)";

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
        } else if (a == "--admin") {
            auto v = value("--admin");
            if (!v) return std::nullopt;
            o.admin = *v;
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
            // A library's strings reach the terminal: escaped like everything a plugin says.
            std::cout << sluice::log::escape_text(id) << "  " << kind << "  "
                      << sluice::log::escape_text(p->version) << "  "
                      << sluice::log::escape_text(p->descriptor.summary ? p->descriptor.summary
                                                                        : "")
                      << "\n";
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
        std::cout << "  " << sluice::log::escape_text(r.name) << ": " << r.source.plugin->id;
        for (const auto& t : r.transforms) std::cout << " -> " << t.plugin->id;
        std::cout << " -> " << r.sink.plugin->id << "\n";
    }
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
        if (o.command == "reload") return cmd_reload(o);
        if (o.command == "check") return cmd_check(o);
        if (o.command == "plugins") return cmd_plugins(o);
    } catch (const std::exception& e) {
        std::cerr << "sluice: " << e.what() << "\n";
        return kExitInvalid;
    }
    return usage_error("unknown command '" + o.command + "'");
}

#include "sluice/core/manifest.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <optional>
#include <regex>
#include <set>

#include "sluice/core/admin/http_server.hpp"
#include "sluice/core/config_file.hpp"
#include "sluice/core/yaml_documents.hpp"
#include "sluice/sdk/template.hpp"

namespace sluice {

namespace fs = std::filesystem;

namespace {

SourceLocation location(const std::string& file, const YAML::Mark& mark) {
    if (mark.line < 0) return {file, 0, 0};
    return {file, mark.line + 1, mark.column + 1};
}

SourceLocation location(const std::string& file, const YAML::Node& node,
                        const SourceLocation& fallback) {
    const auto m = node.Mark();
    return m.line < 0 ? fallback : location(file, m);
}

std::string type_name(uint32_t type) {
    switch (type) {
        case SLUICE_FIELD_STRING:
            return "string";
        case SLUICE_FIELD_INT:
            return "integer";
        case SLUICE_FIELD_FLOAT:
            return "number";
        case SLUICE_FIELD_BOOL:
            return "boolean";
        case SLUICE_FIELD_ENUM:
            return "enum";
        case SLUICE_FIELD_LIST:
            return "list of strings";
        case SLUICE_FIELD_MAP:
            return "map of strings";
        case SLUICE_FIELD_TEMPLATE:
            return "template";
        case SLUICE_FIELD_TEMPLATE_MAP:
            return "map of templates";
        default:
            return "unknown";
    }
}

std::string node_kind(const YAML::Node& n) {
    if (n.IsSequence()) return "a list";
    if (n.IsMap()) return "a map";
    if (n.IsNull()) return "nothing";
    return "'" + n.Scalar() + "'";
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
    return out;
}

std::string format_number(double v) {
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
        return std::to_string(static_cast<long long>(v));
    }
    return std::to_string(v);
}

// Checks one value against its field spec and produces the normalised entry.
// Interpolation happens here, per scalar, so errors point at the scalar that holds `${VAR}`.
class FieldChecker {
public:
    FieldChecker(const std::string& file, Diagnostics& diag, const EnvLookup& env)
        : file_(file), diag_(diag), env_(env) {}

    std::optional<StageConfig::Entry> check(const sluice_field_spec& f, const YAML::Node& value,
                                            const SourceLocation& where, const std::string& path) {
        StageConfig::Entry e;
        e.key = f.name;
        e.type = f.type;
        e.secret = (f.flags & SLUICE_FIELD_SECRET) != 0;
        secret_ = e.secret;
        const auto fail = [&](const std::string& message) {
            diag_.add(where, path, message);
            return std::nullopt;
        };
        switch (f.type) {
            case SLUICE_FIELD_LIST: {
                if (value.IsScalar()) {
                    auto s = scalar(value, where, path);
                    if (!s) return std::nullopt;
                    e.items.push_back(*s);
                    return e;
                }
                if (value.IsNull()) return e;
                if (!value.IsSequence()) {
                    return fail("expected a list of strings, got " + node_kind(value));
                }
                bool ok = true;
                for (std::size_t i = 0; i < value.size(); ++i) {
                    const auto item = value[i];
                    const auto item_where = location(file_, item, where);
                    if (!item.IsScalar()) {
                        diag_.add(item_where, path + "[" + std::to_string(i) + "]",
                                  "expected a string, got " + node_kind(item));
                        ok = false;
                        continue;
                    }
                    auto s = scalar(item, item_where, path);
                    if (!s) {
                        ok = false;
                        continue;
                    }
                    e.items.push_back(*s);
                }
                if (!ok) return std::nullopt;
                return e;
            }
            case SLUICE_FIELD_MAP:
            case SLUICE_FIELD_TEMPLATE_MAP: {
                if (value.IsNull()) return e;
                if (!value.IsMap()) {
                    return fail("expected a map, got " + node_kind(value));
                }
                bool ok = true;
                std::set<std::string> seen;
                for (auto it = value.begin(); it != value.end(); ++it) {
                    const auto key_where = location(file_, it->first.Mark());
                    const std::string key = it->first.Scalar();
                    const std::string item_path = path + "." + key;
                    if (!seen.insert(key).second) {
                        diag_.add(key_where, item_path, "duplicate key '" + key + "'");
                        ok = false;
                        continue;
                    }
                    const auto val_where = location(file_, it->second, key_where);
                    if (!it->second.IsScalar()) {
                        diag_.add(val_where, item_path,
                                  "expected a string, got " + node_kind(it->second));
                        ok = false;
                        continue;
                    }
                    auto s = scalar(it->second, val_where, item_path);
                    if (!s) {
                        ok = false;
                        continue;
                    }
                    if (f.type == SLUICE_FIELD_TEMPLATE_MAP &&
                        !check_template(*s, val_where, item_path)) {
                        ok = false;
                        continue;
                    }
                    e.items.push_back(key);
                    e.values.push_back(*s);
                }
                if (!ok) return std::nullopt;
                return e;
            }
            default:
                break;
        }
        if (!value.IsScalar()) {
            return fail("expected " + expected(f) + ", got " + node_kind(value));
        }
        auto text = scalar(value, where, path);
        if (!text) return std::nullopt;
        // What the messages below quote of a secret value is its mask, never the value.
        const std::string shown = e.secret ? std::string(kSecretMask) : *text;
        switch (f.type) {
            case SLUICE_FIELD_STRING:
                break;
            case SLUICE_FIELD_TEMPLATE:
                if (!check_template(*text, where, path)) return std::nullopt;
                break;
            case SLUICE_FIELD_BOOL: {
                std::string lower = *text;
                std::transform(lower.begin(), lower.end(), lower.begin(),
                               [](unsigned char c) { return std::tolower(c); });
                if (lower == "true" || lower == "yes" || lower == "on") {
                    *text = "true";
                } else if (lower == "false" || lower == "no" || lower == "off") {
                    *text = "false";
                } else {
                    return fail("expected true or false, got '" + shown + "'");
                }
                break;
            }
            case SLUICE_FIELD_INT: {
                long long v = 0;
                const auto [end, ec] =
                    std::from_chars(text->data(), text->data() + text->size(), v);
                if (ec != std::errc{} || end != text->data() + text->size()) {
                    return fail("expected an integer, got '" + shown + "'");
                }
                if (!in_range(f, static_cast<double>(v), where, path)) return std::nullopt;
                break;
            }
            case SLUICE_FIELD_FLOAT: {
                double v = 0;
                try {
                    std::size_t used = 0;
                    v = std::stod(*text, &used);
                    if (used != text->size()) throw std::invalid_argument(*text);
                } catch (const std::exception&) {
                    return fail("expected a number, got '" + shown + "'");
                }
                if (!in_range(f, v, where, path)) return std::nullopt;
                break;
            }
            case SLUICE_FIELD_ENUM: {
                std::vector<std::string> allowed;
                for (auto p = f.enum_values; p != nullptr && *p != nullptr; ++p) {
                    allowed.emplace_back(*p);
                }
                if (std::find(allowed.begin(), allowed.end(), *text) == allowed.end()) {
                    return fail("'" + shown + "' is not one of: " + join(allowed));
                }
                break;
            }
            default:
                return fail("unsupported option type " + std::to_string(f.type) +
                            " in the plugin's spec");
        }
        e.value = *text;
        return e;
    }

private:
    std::optional<std::string> scalar(const YAML::Node& n, const SourceLocation& where,
                                      const std::string& path) {
        std::string error;
        auto out = interpolate(n.Scalar(), env_, error);
        if (!out) diag_.add(where, path, secret_ ? redacted(error, n.Scalar()) : error);
        return out;
    }

    // `message` with every copy of `value` masked (interpolation errors quote the text).
    static std::string redacted(std::string message, const std::string& value) {
        if (value.empty()) return message;
        for (auto at = message.find(value); at != std::string::npos;
             at = message.find(value, at + kSecretMask.size())) {
            message.replace(at, value.size(), kSecretMask);
        }
        return message;
    }

    bool check_template(const std::string& text, const SourceLocation& where,
                        const std::string& path) {
        try {
            sdk::Template::compile(text);
            return true;
        } catch (const sdk::TemplateError& e) {
            diag_.add(where, path,
                      std::string("bad template '") + (secret_ ? std::string(kSecretMask) : text) +
                          "': " + (secret_ ? redacted(e.what(), text) : std::string(e.what())));
            return false;
        }
    }

    bool in_range(const sluice_field_spec& f, double v, const SourceLocation& where,
                  const std::string& path) {
        if ((f.flags & SLUICE_FIELD_RANGE) == 0) return true;
        if (v >= f.min_value && v <= f.max_value) return true;
        diag_.add(where, path,
                  (secret_ ? std::string(kSecretMask) : format_number(v)) + " is outside " +
                      format_number(f.min_value) + ".." + format_number(f.max_value));
        return false;
    }

    static std::string expected(const sluice_field_spec& f) {
        if (f.type == SLUICE_FIELD_ENUM) {
            std::vector<std::string> allowed;
            for (auto p = f.enum_values; p != nullptr && *p != nullptr; ++p) {
                allowed.emplace_back(*p);
            }
            return "one of: " + join(allowed);
        }
        return "a " + type_name(f.type);
    }

    static constexpr std::string_view kSecretMask = "***";

    const std::string& file_;
    Diagnostics& diag_;
    const EnvLookup& env_;
    bool secret_ = false;  // the option being checked is secret
};

// Validates a mapping against a field table; returns the entries, including defaults.
std::vector<StageConfig::Entry> check_fields(const std::vector<sluice_field_spec>& fields,
                                             const YAML::Node& node,
                                             const std::set<std::string>& ignored_keys,
                                             const SourceLocation& where, const std::string& path,
                                             const std::string& file, Diagnostics& diag,
                                             const EnvLookup& env, bool& ok,
                                             const std::set<std::string>& reported_keys = {}) {
    FieldChecker checker(file, diag, env);
    std::vector<StageConfig::Entry> entries;
    std::set<std::string> seen;
    const std::size_t errors_before = diag.size();
    if (node && !node.IsNull() && !node.IsMap()) {
        diag.add(location(file, node, where), path,
                 "expected a map of options, got " + node_kind(node));
        ok = false;
        return entries;
    }
    if (node && node.IsMap()) {
        for (auto it = node.begin(); it != node.end(); ++it) {
            const std::string key = it->first.Scalar();
            const auto key_where = location(file, it->first.Mark());
            // Ignored keys are someone else's to check; reported ones are errors already
            // explained by the caller and not offered as allowed.
            if (ignored_keys.count(key) || reported_keys.count(key)) continue;
            const std::string key_path = path.empty() ? key : path + " > " + key;
            if (!seen.insert(key).second) {
                diag.add(key_where, key_path, "duplicate key '" + key + "'");
                continue;
            }
            const auto spec = std::find_if(fields.begin(), fields.end(),
                                           [&](const auto& f) { return key == f.name; });
            if (spec == fields.end()) {
                std::vector<std::string> allowed;
                for (const auto& f : fields) allowed.emplace_back(f.name);
                for (const auto& k : ignored_keys) allowed.push_back(k);
                std::sort(allowed.begin(), allowed.end());
                diag.add(key_where, key_path,
                         "unknown key '" + key + "' (allowed: " + join(allowed) + ")");
                continue;
            }
            const auto value_where = location(file, it->second, key_where);
            if (auto e = checker.check(*spec, it->second, value_where, key_path)) {
                entries.push_back(std::move(*e));
            }
        }
    }
    for (const auto& f : fields) {
        if (seen.count(f.name)) continue;
        if (f.default_value != nullptr) {
            // Scalar defaults are taken literally ("," stays a comma); lists and maps are YAML.
            const bool structured = f.type == SLUICE_FIELD_LIST || f.type == SLUICE_FIELD_MAP ||
                                    f.type == SLUICE_FIELD_TEMPLATE_MAP;
            YAML::Node def;
            try {
                def = structured ? YAML::Load(f.default_value) : YAML::Node(f.default_value);
            } catch (const YAML::Exception& e) {
                diag.add(where, path.empty() ? f.name : path + " > " + f.name,
                         std::string("the plugin's default is not valid YAML: ") + e.what());
                continue;
            }
            if (auto e = checker.check(f, def, where, path + " > " + f.name)) {
                entries.push_back(std::move(*e));
            }
        } else if ((f.flags & SLUICE_FIELD_REQUIRED) != 0) {
            diag.add(where, path, std::string("missing required key '") + f.name + "'");
        }
    }
    if (diag.size() != errors_before) ok = false;
    return entries;
}

// Keys of a route manifest that are not plain options: checked on their own.
const std::set<std::string> kRouteStructureKeys = {"route", "source", "transforms",
                                                   "sink",  "buffer", "dead_letter"};

// Room for a message's topic and headers beside its payload, when a buffer must be able to
// hold at least one message of max_payload_bytes.
constexpr std::uint64_t kMessageOverhead = 4096;

// Keys earlier versions accepted, with where their meaning went.
const std::map<std::string, std::string> kMovedRouteKeys = {
    {"queue_capacity",
     "routes are bounded in bytes now: use 'buffer: { max_bytes: N }' (16777216 by default)"},
    {"when_full", "it moved into the buffer block: 'buffer: { when_full: block }'"},
};

}  // namespace

EnvLookup manifest_env(const HostConfig& host) {
    return host.env_allow ? restrict_env(process_env(), *host.env_allow) : process_env();
}

HostConfig load_host_config(const fs::path& file, Diagnostics& diag, const EnvLookup& env) {
    HostConfig host;
    host.file = file;
    const std::string name = file.string();
    YAML::Node doc;
    Diagnostic unreadable;
    const auto text = read_config_file(file, unreadable);
    if (!text) {
        diag.add(unreadable.where, "", "host config " + unreadable.message);
        return host;
    }
    Diagnostic malformed;
    const auto docs = parse_yaml_documents(*text, name, malformed);
    if (!docs) {
        diag.add(malformed.where, "", malformed.message);
        return host;
    }
    if (!docs->empty()) doc = docs->front();
    static const char* const levels[] = {"trace", "debug", "info", "warn", "error", nullptr};
    static const char* const formats[] = {"text", "json", nullptr};
    std::vector<sluice_field_spec> fields = {
        field_spec("plugins", SLUICE_FIELD_LIST, "[]", "Plugin directories."),
        field_spec("routes", SLUICE_FIELD_LIST, "[]", "Route manifest files or directories."),
        field_spec("state_dir", SLUICE_FIELD_STRING, "var/sluice", "Durable state."),
        field_spec("memory_limit", SLUICE_FIELD_INT, "2147483648",
                   "Bytes the memory buffers of all routes may hold together.", 1 << 20,
                   1024.0 * 1024 * 1024 * 1024),
        field_spec("admin", SLUICE_FIELD_MAP, "{}", "Admin HTTP settings."),
        field_spec("log", SLUICE_FIELD_MAP, "{}", "Logging: level and format."),
        field_spec("env_allow", SLUICE_FIELD_LIST, nullptr,
                   "The environment variables route manifests may read."),
    };
    bool ok = true;
    const SourceLocation where = location(name, doc.Mark());
    auto entries = check_fields(fields, doc, {"plugin_settings"}, where, "", name, diag, env, ok);
    if (const auto ps = doc.IsMap() ? doc["plugin_settings"] : YAML::Node(); ps && !ps.IsNull()) {
        // Checked against the plugins' specs once they are loaded (check_plugin_settings).
        if (!ps.IsMap()) {
            diag.add(location(name, ps, where), "plugin_settings",
                     "expected a map of plugin ids to their options, got " + node_kind(ps));
        } else {
            for (auto it = ps.begin(); it != ps.end(); ++it) {
                host.plugin_settings[it->first.Scalar()] = {
                    std::make_shared<const YAML::Node>(it->second),
                    location(name, it->first.Mark())};
            }
        }
    }
    const fs::path base = file.parent_path();
    auto resolve = [&](const std::string& p) {
        fs::path path(p);
        return path.is_absolute() ? path : (base / path).lexically_normal();
    };
    for (const auto& e : entries) {
        if (e.key == "plugins") {
            for (const auto& p : e.items) host.plugin_dirs.push_back(resolve(p));
        } else if (e.key == "routes") {
            for (const auto& p : e.items) host.route_paths.push_back(resolve(p));
        } else if (e.key == "state_dir") {
            host.state_dir = resolve(*e.value);
        } else if (e.key == "memory_limit") {
            host.memory_limit = std::stoull(*e.value);
        } else if (e.key == "env_allow") {
            host.env_allow = e.items;
            for (const auto& p : e.items) {
                if (auto why = env_pattern_error(p); !why.empty()) {
                    diag.add(location(name, doc["env_allow"], where), "env_allow", why);
                }
            }
        } else if (e.key == "log" || e.key == "admin") {
            for (std::size_t i = 0; i < e.items.size(); ++i) {
                const auto& k = e.items[i];
                const auto& v = e.values[i];
                const SourceLocation at = location(name, doc[e.key][k].Mark());
                const std::string path = e.key + " > " + k;
                if (e.key == "admin" && k == "listen") {
                    host.admin_listen = v;
                    std::string h, error;
                    std::uint16_t port = 0;
                    if (!admin::parse_listen(v, h, port, error)) diag.add(at, path, error);
                } else if (e.key == "admin" && k == "token_file") {
                    host.admin_token_file = resolve(v);
                } else if (e.key == "admin" && k == "token_env") {
                    host.admin_token_env = v;
                } else if (e.key == "log" && k == "level") {
                    if (std::find_if(std::begin(levels), std::end(levels) - 1, [&](const char* l) {
                            return v == l;
                        }) == std::end(levels) - 1) {
                        diag.add(at, path,
                                 "'" + v + "' is not one of: trace, debug, info, warn, error");
                    }
                    host.log_level = v;
                } else if (e.key == "log" && k == "format") {
                    if (v != formats[0] && v != formats[1]) {
                        diag.add(at, path, "'" + v + "' is not one of: text, json");
                    }
                    host.log_format = v;
                } else {
                    diag.add(
                        at, path,
                        "unknown key '" + k + "' (allowed: " +
                            (e.key == "log" ? "format, level" : "listen, token_file, token_env") +
                            ")");
                }
            }
        }
    }
    if (!host.admin_token_file.empty() && !host.admin_token_env.empty()) {
        diag.add(where, "admin", "set token_file or token_env, not both");
    }
    {
        std::string h, error;
        std::uint16_t port = 0;
        if (!host.admin_listen.empty() && admin::parse_listen(host.admin_listen, h, port, error) &&
            !admin::is_loopback(h) && host.admin_token_file.empty() &&
            host.admin_token_env.empty()) {
            diag.add(where, "admin > listen",
                     "'" + host.admin_listen +
                         "' is not a loopback address: set admin.token_file or admin.token_env, "
                         "so that only holders of the token can read the admin API");
        }
    }
    return host;
}

std::vector<fs::path> manifest_files(const std::vector<fs::path>& paths, Diagnostics& diag) {
    std::vector<fs::path> files;
    for (const auto& p : paths) {
        std::error_code ec;
        if (fs::is_directory(p, ec)) {
            std::vector<fs::path> found;
            for (const auto& entry : fs::directory_iterator(p, ec)) {
                const auto ext = entry.path().extension();
                if (ext != ".yaml" && ext != ".yml") continue;
                // Anything else named like a manifest (a FIFO, a dangling link) is passed on
                // so that reading it reports what it is, instead of it vanishing silently.
                // A directory named x.yaml is not a manifest.
                if (!entry.is_directory(ec)) found.push_back(entry.path());
            }
            std::sort(found.begin(), found.end());
            files.insert(files.end(), found.begin(), found.end());
        } else if (fs::exists(fs::symlink_status(p, ec))) {
            files.push_back(p);  // not a regular file: reading it says what it is
        } else {
            diag.add({p.string(), 0, 0}, "", "route manifest path does not exist");
        }
    }
    return files;
}

std::string RouteSpec::fingerprint() const {
    std::string out = name;
    auto add = [&out](const StageSpec& s) {
        // The library's identity too: a rebuilt plugin of the same version is a change.
        out += '\x1d' + s.plugin->id + '@' + s.plugin->version + '@' +
               (s.plugin->library ? s.plugin->library->identity : std::string()) + '\x1d' +
               s.config->fingerprint();
    };
    add(source);
    for (const auto& t : transforms) add(t);
    add(sink);
    if (dead_letter.plugin != nullptr) add(dead_letter);
    out += '\x1d' + options_fingerprint(options);
    return out;
}

namespace {

struct DiagSink {
    Diagnostics* diag;
    const std::string* file;
    const YAML::Node* config;
    SourceLocation stage_where;
    std::string path;
};

// Maps a key reported by a plugin's validate() ("properties.linger.ms") to its location.
SourceLocation locate_key(const DiagSink& s, const std::string& key) {
    if (key.empty() || !s.config->IsMap()) return s.stage_where;
    const auto dot = key.find('.');
    const std::string head = key.substr(0, dot);
    for (auto it = s.config->begin(); it != s.config->end(); ++it) {
        if (it->first.Scalar() != head) continue;
        if (dot != std::string::npos && it->second.IsMap()) {
            const std::string rest = key.substr(dot + 1);
            for (auto jt = it->second.begin(); jt != it->second.end(); ++jt) {
                if (jt->first.Scalar() == rest) return location(*s.file, jt->first.Mark());
            }
        }
        return location(*s.file, it->first.Mark());
    }
    return s.stage_where;
}

// A plugin's host-only options from `settings` (its plugin_settings block; null: none set),
// with their defaults.
std::vector<StageConfig::Entry> host_entries(const PluginInfo& plugin, const YAML::Node& settings,
                                             const SourceLocation& where, Diagnostics& diag,
                                             const EnvLookup& env, bool& ok) {
    std::vector<sluice_field_spec> host_fields;
    std::vector<std::string> route_fields;
    for (const auto& f : plugin.fields) {
        if ((f.flags & SLUICE_FIELD_HOST) != 0) {
            host_fields.push_back(f);
        } else {
            route_fields.emplace_back(f.name);
        }
    }
    const std::string path = "plugin_settings > " + plugin.id;
    std::set<std::string> route_keys;
    if (settings.IsMap()) {
        for (auto it = settings.begin(); it != settings.end(); ++it) {
            const std::string key = it->first.Scalar();
            if (std::find(route_fields.begin(), route_fields.end(), key) == route_fields.end()) {
                continue;
            }
            route_keys.insert(key);
            diag.add(location(where.file, it->first.Mark()), path + " > " + key,
                     "'" + key + "' is a route option: set it in the route manifests");
            ok = false;
        }
    }
    if (host_fields.empty() && settings.IsMap() && settings.size() > route_keys.size()) {
        diag.add(where, path, "the plugin has no host-only options");
        ok = false;
        return {};
    }
    return check_fields(host_fields, settings, {}, where, path, where.file, diag, env, ok,
                        route_keys);
}

std::optional<StageSpec> check_stage(const YAML::Node& node, const std::string& stage,
                                     sluice_kind kind, const std::string& route,
                                     const SourceLocation& where, const std::string& file,
                                     const PluginRegistry& registry, Diagnostics& diag,
                                     const EnvLookup& env, const HostPluginOptions* host_options) {
    const std::string route_path = "route " + route + " > " + stage;
    if (!node.IsMap() || node.size() != 1) {
        diag.add(location(file, node, where), route_path,
                 std::string("expected exactly one plugin, as `") + stage +
                     ": { <plugin-id>: { options } }`, got " + node_kind(node));
        return std::nullopt;
    }
    const auto it = node.begin();
    const std::string id = it->first.Scalar();
    const auto id_where = location(file, it->first.Mark());
    const std::string path = route_path + " " + id;
    std::shared_ptr<const PluginInfo> plugin = registry.share(id);
    if (plugin == nullptr) {
        diag.add(id_where, path,
                 "unknown plugin '" + id + "' (known: " + registry.known_ids() + ")");
        return std::nullopt;
    }
    if (plugin->kind != kind) {
        diag.add(
            id_where, path,
            "'" + id + "' is a " + kind_name(plugin->kind) + " plugin, not a " + kind_name(kind));
        return std::nullopt;
    }
    bool ok = true;
    const YAML::Node config = it->second;
    // Host-only options are the operator's (plugin_settings in the host config): a route that
    // sets one is refused, whatever the value.
    std::set<std::string> host_keys;
    for (const auto& f : plugin->fields) {
        if ((f.flags & SLUICE_FIELD_HOST) != 0) host_keys.insert(f.name);
    }
    if (config.IsMap()) {
        for (auto k = config.begin(); k != config.end(); ++k) {
            const std::string key = k->first.Scalar();
            if (host_keys.count(key) == 0) continue;
            diag.add(location(file, k->first.Mark()), path + " > " + key,
                     "'" + key + "' can be set only by the operator, in the host config " +
                         "(plugin_settings: { " + id + ": { " + key +
                         ": ... } } in sluice.yaml), not in a route manifest");
            ok = false;
        }
    }
    std::vector<sluice_field_spec> route_fields;
    for (const auto& f : plugin->fields) {
        if ((f.flags & SLUICE_FIELD_HOST) == 0) route_fields.push_back(f);
    }
    auto entries =
        check_fields(route_fields, config, {}, id_where, path, file, diag, env, ok, host_keys);
    if (!ok) return std::nullopt;
    if (!host_keys.empty()) {
        const auto given =
            host_options ? host_options->find(id) : HostPluginOptions::const_iterator{};
        if (host_options != nullptr && given != host_options->end()) {
            entries.insert(entries.end(), given->second.begin(), given->second.end());
        } else {
            auto defaults = host_entries(*plugin, YAML::Node(), id_where, diag, env, ok);
            if (!ok) return std::nullopt;
            entries.insert(entries.end(), defaults.begin(), defaults.end());
        }
    }
    StageSpec spec;
    spec.plugin = plugin;
    spec.label = stage + " " + id;
    spec.config = std::make_unique<StageConfig>(route, stage, std::move(entries));
    if (plugin->descriptor.validate != nullptr) {
        DiagSink sink{&diag, &file, &config, id_where, path};
        sluice_diagnostics d{
            sizeof(sluice_diagnostics), &sink, [](void* ctx, const char* key, const char* message) {
                auto* s = static_cast<DiagSink*>(ctx);
                const std::string k = key ? key : "";
                s->diag->add(locate_key(*s, k), k.empty() ? s->path : s->path + " > " + k,
                             message ? message : "invalid");
            }};
        if (plugin->descriptor.validate(spec.config->c(), &d) != SLUICE_OK) return std::nullopt;
    }
    return spec;
}

}  // namespace

HostPluginOptions check_plugin_settings(const HostConfig& host, const PluginRegistry& registry,
                                        Diagnostics& diag, const EnvLookup& env) {
    HostPluginOptions out;
    for (const auto& [id, settings] : host.plugin_settings) {
        if (registry.find(id) == nullptr) {
            diag.add(settings.where, "plugin_settings > " + id,
                     "unknown plugin '" + id + "' (known: " + registry.known_ids() + ")");
        }
    }
    for (const PluginInfo* p : registry.all()) {
        const bool has_host_fields =
            std::any_of(p->fields.begin(), p->fields.end(),
                        [](const auto& f) { return (f.flags & SLUICE_FIELD_HOST) != 0; });
        const auto given = host.plugin_settings.find(p->id);
        if (!has_host_fields && given == host.plugin_settings.end()) continue;
        YAML::Node node;
        SourceLocation where{host.file.string(), 0, 0};
        if (given != host.plugin_settings.end()) {
            where = given->second.where;
            node = *given->second.node;
            if (!node.IsNull() && !node.IsMap()) {
                diag.add(where, "plugin_settings > " + p->id,
                         "expected a map of options, got " + node_kind(node));
                continue;
            }
        }
        bool ok = true;
        auto entries = host_entries(*p, node, where, diag, env, ok);
        if (ok && has_host_fields) out.emplace(p->id, std::move(entries));
    }
    return out;
}

std::uint64_t memory_buffers_bytes(const std::vector<RouteSpec>& routes) {
    std::uint64_t total = 0;
    for (const auto& r : routes) {
        if (r.options.buffer.type != BufferOptions::Type::memory) continue;
        total += r.options.buffer.max_bytes + r.options.buffer.headroom();
    }
    return total;
}

void check_memory_budget(const std::vector<RouteSpec>& routes, const HostConfig& host,
                         Diagnostics& diag) {
    const std::uint64_t total = memory_buffers_bytes(routes);
    std::vector<const RouteSpec*> memory_routes;
    for (const auto& r : routes) {
        if (r.options.buffer.type == BufferOptions::Type::memory) memory_routes.push_back(&r);
    }
    if (total <= host.memory_limit) return;
    std::sort(memory_routes.begin(), memory_routes.end(), [](const auto* a, const auto* b) {
        return a->options.buffer.max_bytes > b->options.buffer.max_bytes;
    });
    std::string largest;
    for (std::size_t i = 0; i < memory_routes.size() && i < 3; ++i) {
        largest += (i ? ", " : "") + memory_routes[i]->name + " (" +
                   std::to_string(memory_routes[i]->options.buffer.max_bytes) + ")";
    }
    const SourceLocation where = host.file.empty() ? SourceLocation{"memory_limit", 0, 0}
                                                   : SourceLocation{host.file.string(), 0, 0};
    diag.add(where, "memory_limit",
             "the memory buffers of " + std::to_string(memory_routes.size()) + " routes may hold " +
                 std::to_string(total) +
                 " bytes together (buffer.max_bytes plus half of it for headroom), over "
                 "memory_limit " +
                 std::to_string(host.memory_limit) + "; largest: " + largest +
                 ". Lower their buffer.max_bytes, use buffer: { type: disk }, or raise "
                 "memory_limit in the host config");
}

std::vector<RouteSpec> load_routes(const std::vector<fs::path>& files,
                                   const PluginRegistry& registry, Diagnostics& diag,
                                   const EnvLookup& env, std::vector<Rejection>* rejected,
                                   const HostPluginOptions* host_options) {
    static const std::regex kRouteName("[a-z0-9][a-z0-9-]*");
    std::vector<RouteSpec> routes;
    std::map<std::string, SourceLocation> defined;
    // What was added to `diag` since `from`, as one rejection.
    const auto reject = [&](const std::string& file, const std::string& route, std::size_t from) {
        if (rejected == nullptr || diag.size() == from) return;
        Rejection r{file, route, {}};
        for (std::size_t i = from; i < diag.size(); ++i) {
            r.errors.push_back(diag.items()[i].to_string());
        }
        rejected->push_back(std::move(r));
    };
    for (const auto& path : files) {
        const std::string file = path.string();
        const std::size_t file_errors_before = diag.size();
        std::vector<YAML::Node> docs;
        Diagnostic unreadable;
        const auto text = read_config_file(path, unreadable);
        if (!text) {
            diag.add(unreadable.where, "", "route manifest " + unreadable.message);
            reject(file, "", file_errors_before);
            continue;
        }
        Diagnostic malformed;
        auto parsed = parse_yaml_documents(*text, file, malformed);
        if (!parsed) {
            diag.add(malformed.where, "", malformed.message);
            reject(file, "", file_errors_before);
            continue;
        }
        docs = std::move(*parsed);
        for (const auto& doc : docs) {
            if (doc.IsNull()) continue;
            const SourceLocation doc_where = location(file, doc.Mark());
            const std::size_t errors_before = diag.size();
            if (!doc.IsMap()) {
                diag.add(doc_where, "",
                         "a route manifest is a map with route, source, transforms and sink; "
                         "got " +
                             node_kind(doc));
                reject(file, "", errors_before);  // which route it was is unknown
                continue;
            }
            const auto name_node = doc["route"];
            std::string name;
            bool named = false;
            if (!name_node || !name_node.IsScalar()) {
                diag.add(doc_where, "", "missing required key 'route' (the route's name)");
                name = "<unnamed>";
            } else {
                name = name_node.Scalar();
                const auto name_where = location(file, name_node.Mark());
                named = true;
                if (!std::regex_match(name, kRouteName)) {
                    named = false;
                    diag.add(name_where, "route " + name,
                             "route name must match [a-z0-9][a-z0-9-]* (lower case, digits, "
                             "dashes)");
                } else if (auto prev = defined.find(name); prev != defined.end()) {
                    diag.add(name_where, "route " + name,
                             "duplicate route name: already defined at " + prev->second.file + ":" +
                                 std::to_string(prev->second.line));
                } else {
                    defined.emplace(name, name_where);
                }
            }
            RouteSpec route;
            route.name = name;
            route.where = doc_where;
            bool ok = true;
            for (const auto& [key, hint] : kMovedRouteKeys) {
                if (const auto n = doc[key]) {
                    diag.add(location(file, n, doc_where), "route " + name + " > " + key,
                             "'" + key + "' is no longer a route option: " + hint);
                    ok = false;
                }
            }
            std::set<std::string> moved;
            for (const auto& m : kMovedRouteKeys) moved.insert(m.first);
            auto apply = [&](const std::vector<RouteOptionDef>& defs,
                             const std::vector<StageConfig::Entry>& entries) {
                for (const auto& e : entries) {
                    for (const auto& d : defs) {
                        if (e.key == d.spec.name) d.apply(route.options, *e.value);
                    }
                }
            };
            apply(route_option_defs(),
                  check_fields(route_option_fields(), doc, kRouteStructureKeys, doc_where,
                               "route " + name, file, diag, env, ok, moved));
            const auto buffer = doc["buffer"];
            apply(buffer_option_defs(),
                  check_fields(buffer_option_fields(), buffer, {},
                               buffer ? location(file, buffer, doc_where) : doc_where,
                               "route " + name + " > buffer", file, diag, env, ok));
            auto stage = [&](const char* key, sluice_kind kind) -> std::optional<StageSpec> {
                const auto n = doc[key];
                if (!n) {
                    diag.add(doc_where, "route " + name,
                             std::string("missing required key '") + key + "'");
                    return std::nullopt;
                }
                return check_stage(n, key, kind, name, location(file, n, doc_where), file, registry,
                                   diag, env, host_options);
            };
            auto source = stage("source", SLUICE_KIND_SOURCE);
            auto sink = stage("sink", SLUICE_KIND_SINK);
            if (const auto t = doc["transforms"]; t && !t.IsNull()) {
                if (!t.IsSequence()) {
                    diag.add(location(file, t, doc_where), "route " + name + " > transforms",
                             "expected a list of transforms, got " + node_kind(t));
                } else {
                    for (std::size_t i = 0; i < t.size(); ++i) {
                        auto spec = check_stage(t[i], "transforms[" + std::to_string(i) + "]",
                                                SLUICE_KIND_TRANSFORM, name,
                                                location(file, t[i], doc_where), file, registry,
                                                diag, env, host_options);
                        if (spec) route.transforms.push_back(std::move(*spec));
                    }
                }
            }
            if (route.options.max_payload_bytes + kMessageOverhead >
                route.options.buffer.max_bytes) {
                const auto b = doc["buffer"];
                diag.add(
                    b && b["max_bytes"] ? location(file, b["max_bytes"], doc_where) : doc_where,
                    "route " + name + " > buffer > max_bytes",
                    "the buffer (" + std::to_string(route.options.buffer.max_bytes) +
                        " bytes) cannot hold one message of max_payload_bytes (" +
                        std::to_string(route.options.max_payload_bytes) +
                        ") with its topic and headers: raise buffer.max_bytes to at least " +
                        std::to_string(route.options.max_payload_bytes + kMessageOverhead) +
                        " or lower max_payload_bytes");
            }
            std::optional<StageSpec> dead_letter;
            const auto dl = doc["dead_letter"];
            if (route.options.on_error == RouteOptions::OnError::dead_letter) {
                if (!dl) {
                    diag.add(doc_where, "route " + name + " > on_error",
                             "on_error is dead_letter but the route has no 'dead_letter:' sink "
                             "block (e.g. dead_letter: { file-sink: { path: dead.jsonl } })");
                } else {
                    dead_letter = check_stage(dl, "dead_letter", SLUICE_KIND_SINK, name,
                                              location(file, dl, doc_where), file, registry, diag,
                                              env, host_options);
                }
            } else if (dl) {
                diag.add(location(file, dl, doc_where), "route " + name + " > dead_letter",
                         "a dead_letter sink is only used with 'on_error: dead_letter'");
            }
            if (diag.size() != errors_before || !source || !sink || !ok) {
                if (diag.size() == errors_before) {
                    diag.add(doc_where, "route " + name,
                             "a plugin refused the route's options without saying why");
                }
                reject(file, named ? name : std::string(), errors_before);
                continue;
            }
            route.source = std::move(*source);
            route.sink = std::move(*sink);
            if (dead_letter) route.dead_letter = std::move(*dead_letter);
            routes.push_back(std::move(route));
        }
    }
    return routes;
}

}  // namespace sluice

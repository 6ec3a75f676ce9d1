#include "sluice/core/interpolate.hpp"

#include <fnmatch.h>

#include <cstdlib>

namespace sluice {

EnvLookup process_env() {
    return [](const std::string& name) -> std::optional<std::string> {
        if (const char* v = std::getenv(name.c_str())) return std::string(v);
        return std::nullopt;
    };
}

EnvLookup restrict_env(EnvLookup env, std::vector<std::string> patterns) {
    return [env = std::move(env),
            patterns = std::move(patterns)](const std::string& name) -> std::optional<std::string> {
        for (const auto& p : patterns) {
            if (::fnmatch(p.c_str(), name.c_str(), 0) == 0) return env(name);
        }
        std::string listed;
        for (const auto& p : patterns) listed += (listed.empty() ? "" : ", ") + p;
        throw EnvNotAllowed("environment variable '" + name +
                            "' may not be read by route manifests: the host config's env_allow " +
                            (listed.empty() ? "is empty" : "lists only " + listed));
    };
}

std::string env_pattern_error(std::string_view pattern) {
    if (pattern.empty()) return "an empty pattern matches nothing";
    for (char c : pattern) {
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '_' || c == '*';
        if (!ok) {
            return "'" + std::string(pattern) +
                   "': a pattern is letters, digits, '_' and '*' (e.g. MQTT_*)";
        }
    }
    return {};
}

std::optional<std::string> interpolate(std::string_view text, const EnvLookup& env,
                                       std::string& error) {
    std::string out;
    out.reserve(text.size());
    std::size_t pos = 0;
    while (pos < text.size()) {
        const std::size_t dollar = text.find('$', pos);
        if (dollar == std::string_view::npos || dollar + 1 >= text.size()) {
            out.append(text.substr(pos));
            break;
        }
        out.append(text.substr(pos, dollar - pos));
        const char next = text[dollar + 1];
        if (next == '$') {
            out.push_back('$');
            pos = dollar + 2;
            continue;
        }
        if (next != '{') {
            out.push_back('$');
            pos = dollar + 1;
            continue;
        }
        const std::size_t close = text.find('}', dollar + 2);
        if (close == std::string_view::npos) {
            error = "unclosed '${' in '" + std::string(text) + "'";
            return std::nullopt;
        }
        const std::string_view body = text.substr(dollar + 2, close - dollar - 2);
        const std::size_t sep = body.find(":-");
        const std::string name(body.substr(0, sep));
        if (name.empty()) {
            error = "empty variable name in '" + std::string(text) + "'";
            return std::nullopt;
        }
        for (char c : name) {
            const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '_';
            if (!ok) {
                error = "invalid variable name '" + name + "'";
                return std::nullopt;
            }
        }
        std::optional<std::string> value;
        try {
            value = env(name);
        } catch (const EnvNotAllowed& e) {
            error = e.what();
            return std::nullopt;
        }
        if (value && !value->empty()) {
            out.append(*value);
        } else if (sep != std::string_view::npos) {
            out.append(body.substr(sep + 2));
        } else if (value) {
            out.append(*value);
        } else {
            error = "environment variable '" + name + "' is not set (use ${" + name +
                    ":-default} for a default)";
            return std::nullopt;
        }
        pos = close + 1;
    }
    return out;
}

}  // namespace sluice

// The environment the config targets interpolate `${VAR}` from: a few set variables, one of
// them hostile (an escape sequence and a byte that is not UTF-8), the rest unset.
#pragma once

#include <optional>
#include <string>

#include "sluice/core/interpolate.hpp"

namespace sluice::fuzz {

inline EnvLookup fuzz_env() {
    return [](const std::string& name) -> std::optional<std::string> {
        if (name == "HOST") return "127.0.0.1";
        if (name == "PORT") return "1883";
        if (name == "EVIL") return "\x1b[2J\xff\n";
        return std::nullopt;
    };
}

}  // namespace sluice::fuzz

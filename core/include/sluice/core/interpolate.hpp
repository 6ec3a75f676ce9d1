// `${VAR}` and `${VAR:-default}` in manifest values, replaced from the environment when the
// manifest is read. `$$` stands for a literal `$`.
#pragma once

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

/// The process environment.
EnvLookup process_env();

/// Thrown by a lookup for a variable it may not read; interpolate() reports its message.
struct EnvNotAllowed : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// `env` limited to the variables whose names match one of `patterns` (`*` matches any run of
/// characters): the host config's `env_allow`, so that a route manifest cannot copy any
/// variable of the daemon's environment into a value that leaves the machine.
EnvLookup restrict_env(EnvLookup env, std::vector<std::string> patterns);

/// Returns "" when `pattern` is a valid env_allow entry ([A-Za-z0-9_*]+), else why not.
std::string env_pattern_error(std::string_view pattern);

/// Returns the interpolated text, or sets `error` (naming the variable) and returns nullopt.
std::optional<std::string> interpolate(std::string_view text, const EnvLookup& env,
                                       std::string& error);

}  // namespace sluice

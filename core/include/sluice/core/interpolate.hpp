// `${VAR}` and `${VAR:-default}` in manifest values, replaced from the environment when the
// manifest is read. `$$` stands for a literal `$`.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

/// The process environment.
EnvLookup process_env();

/// Returns the interpolated text, or sets `error` (naming the variable) and returns nullopt.
std::optional<std::string> interpolate(std::string_view text, const EnvLookup& env,
                                       std::string& error);

}  // namespace sluice

// Reading the files an operator names (sluice.yaml, route manifests, plugin.yaml): only regular
// files of a sane size that are valid UTF-8. A FIFO or /dev/zero given by mistake must give an
// error at once, not a read that never ends, and bytes yaml-cpp would pass through unchecked
// must not reach names, topics and logs.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>

#include "sluice/core/diagnostics.hpp"

namespace sluice {

/// Far more than any hand-written configuration; a larger file is a mistake.
inline constexpr std::size_t kMaxConfigFileBytes = 16u << 20;

/// The whole text of `file`, or nullopt with `error` set: `error.where` has the file, and the
/// line and column of the first invalid UTF-8 byte when that is the problem. A leading UTF-8
/// byte-order mark is dropped.
std::optional<std::string> read_config_file(const std::filesystem::path& file, Diagnostic& error);

/// What `st_mode` is, for messages: "a directory", "a FIFO", "a character device", ...
std::string file_type_name(unsigned mode);

}  // namespace sluice

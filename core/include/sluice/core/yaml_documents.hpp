// Parsing the YAML of configuration files (sluice.yaml, route manifests, plugin.yaml) into
// yaml-cpp nodes, safely whatever the text. yaml-cpp 0.7 (Debian 12's) loops forever, taking
// memory as it goes, on some malformed text: a document that starts with `,`
// (jbeder/yaml-cpp#1040; fixed upstream in 0.8 by #1318 and #1319), found by our fuzzer. So
// libyaml, the reference C parser that OSS-Fuzz fuzzes continuously, reads the text first; only
// text it accepts reaches yaml-cpp. The same pass bounds what a tree may cost to walk: nesting
// depth (yaml-cpp and our validators recurse) and the size with aliases expanded (a "billion
// laughs" file is small until something walks it).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "sluice/core/diagnostics.hpp"

namespace YAML {
class Node;
}

namespace sluice {

inline constexpr std::size_t kMaxYamlDepth = 128;
inline constexpr std::size_t kMaxYamlExpandedNodes = 1'000'000;

/// The documents of `text` (from `file`, for messages), or nullopt with `error` set at the
/// line and column of the problem.
std::optional<std::vector<YAML::Node>> parse_yaml_documents(const std::string& text,
                                                            const std::string& file,
                                                            Diagnostic& error);

}  // namespace sluice

// `sluice plugins new`: writes a new plugin project (CMake, plugin.yaml, a skeleton class and
// its unit test) that builds out of tree against the installed SluiceSDK package.
#pragma once

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/abi.h"

namespace sluice {

/// A scaffold that cannot be written; what() says why and what to do instead.
class ScaffoldError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// "" when `id` is a valid plugin id (kebab-case, starting with a letter, at most 64
/// characters), else the reason it is not.
std::string check_plugin_id(std::string_view id);

/// "source", "transform" or "sink"; nullopt for anything else.
std::optional<sluice_kind> parse_kind(std::string_view text);

/// `my-kafka-sink` -> `MyKafkaSink`.
std::string class_name_for(std::string_view id);

/// Creates `dir` (which must not exist) holding a project for plugin `id` of `kind`:
/// CMakeLists.txt, plugin.yaml, src/<id>.cpp, tests/<id>_test.cpp, README.md.
/// Returns the files written, relative to `dir`. Throws ScaffoldError.
std::vector<std::filesystem::path> scaffold_plugin(const std::string& id, sluice_kind kind,
                                                   const std::filesystem::path& dir);

}  // namespace sluice

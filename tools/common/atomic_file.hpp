// Writes a small file so that readers never see it half-written.
#pragma once

#include <string>

namespace sluice::tools {

// Writes `content` to a temporary file beside `path`, then renames it over `path`.
// Returns an empty string on success, otherwise a message naming the file and the cause.
std::string write_file_atomically(const std::string& path, const std::string& content);

}  // namespace sluice::tools

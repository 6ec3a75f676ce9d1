#include "sluice/core/diagnostics.hpp"

#include "sluice/core/log_hygiene.hpp"

namespace sluice {

// Names and values in a message come from manifests and may hold escape sequences or invalid
// UTF-8; `sluice check` prints this to a terminal.
std::string Diagnostic::to_string() const {
    std::string out = log::escape_text(where.file);
    if (where.line > 0) {
        out += ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
    }
    out += ": ";
    if (!path.empty()) out += log::escape_text(path) + ": ";
    out += log::escape_text(message);
    return out;
}

void Diagnostics::add(SourceLocation where, std::string path, std::string message) {
    items_.push_back({std::move(where), std::move(path), std::move(message)});
}

std::string Diagnostics::to_string() const {
    std::string out;
    for (const auto& d : items_) out += d.to_string() + "\n";
    return out;
}

}  // namespace sluice

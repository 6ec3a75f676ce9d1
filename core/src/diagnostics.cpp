#include "sluice/core/diagnostics.hpp"

namespace sluice {

std::string Diagnostic::to_string() const {
    std::string out = where.file;
    if (where.line > 0) {
        out += ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
    }
    out += ": ";
    if (!path.empty()) out += path + ": ";
    out += message;
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

// Problems found in configuration, each pinned to file:line:col and the path of the offending
// key ("route temperature > sink kafka-sink > topic"). Validation collects all of them.
#pragma once

#include <string>
#include <vector>

namespace sluice {

struct SourceLocation {
    std::string file;
    int line = 0;    // 1-based; 0 = unknown
    int column = 0;  // 1-based
};

struct Diagnostic {
    SourceLocation where;
    std::string path;
    std::string message;

    /// "file:line:col: path: message", the form editors and CI logs link to.
    std::string to_string() const;
};

class Diagnostics {
public:
    void add(SourceLocation where, std::string path, std::string message);
    bool empty() const { return items_.empty(); }
    std::size_t size() const { return items_.size(); }
    const std::vector<Diagnostic>& items() const { return items_; }
    std::string to_string() const;

private:
    std::vector<Diagnostic> items_;
};

}  // namespace sluice

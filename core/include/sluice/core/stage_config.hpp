// A stage's validated options, owned by the host, with the C view (sluice_config) that
// `validate` and `create` receive. Not copyable: the view points into its own storage.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/abi.h"

namespace sluice {

class StageConfig {
public:
    struct Entry {
        std::string key;
        uint32_t type = 0;
        std::optional<std::string> value;  // scalars
        std::vector<std::string> items;    // list items or map keys
        std::vector<std::string> values;   // map values
        bool secret = false;
    };

    StageConfig(std::string route, std::string stage, std::vector<Entry> entries);
    StageConfig(const StageConfig&) = delete;
    StageConfig& operator=(const StageConfig&) = delete;

    const sluice_config* c() const { return &c_; }
    const std::vector<Entry>& entries() const { return entries_; }
    const std::string& stage() const { return stage_; }
    /// Stable text of all values, for telling changed routes from unchanged ones.
    std::string fingerprint() const;

private:
    std::string route_;
    std::string stage_;
    std::vector<Entry> entries_;
    std::vector<std::vector<const char*>> item_ptrs_;
    std::vector<std::vector<const char*>> value_ptrs_;
    std::vector<sluice_config_entry> c_entries_;
    sluice_config c_{};
};

}  // namespace sluice

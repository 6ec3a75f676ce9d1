#include "sluice/core/stage_config.hpp"

namespace sluice {

StageConfig::StageConfig(std::string route, std::string stage, std::vector<Entry> entries)
    : route_(std::move(route)), stage_(std::move(stage)), entries_(std::move(entries)) {
    item_ptrs_.resize(entries_.size());
    value_ptrs_.resize(entries_.size());
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        const Entry& e = entries_[i];
        for (const auto& s : e.items) item_ptrs_[i].push_back(s.c_str());
        for (const auto& s : e.values) value_ptrs_[i].push_back(s.c_str());
        sluice_config_entry c{};
        c.key = e.key.c_str();
        c.type = e.type;
        c.value = e.value ? e.value->c_str() : nullptr;
        c.n_items = e.items.size();
        c.items = item_ptrs_[i].empty() ? nullptr : item_ptrs_[i].data();
        c.item_values = value_ptrs_[i].empty() ? nullptr : value_ptrs_[i].data();
        c_entries_.push_back(c);
    }
    c_.struct_size = sizeof(sluice_config);
    c_.route = route_.c_str();
    c_.stage = stage_.c_str();
    c_.n_entries = c_entries_.size();
    c_.entries = c_entries_.empty() ? nullptr : c_entries_.data();
}

std::string StageConfig::fingerprint() const {
    std::string out = stage_;
    for (const auto& e : entries_) {
        out += '\x1f' + e.key + '=' + e.value.value_or("");
        for (std::size_t i = 0; i < e.items.size(); ++i) {
            out += '\x1e' + e.items[i];
            if (i < e.values.size()) out += ':' + e.values[i];
        }
    }
    return out;
}

}  // namespace sluice

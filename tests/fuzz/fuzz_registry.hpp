// The plugins the config targets validate against: json-transform and file-sink, built in the
// fuzz tree (SLUICE_FUZZ_PLUGIN_DIR), loaded once per process.
#pragma once

#include "fuzz_support.hpp"
#include "sluice/core/plugin_registry.hpp"

namespace sluice::fuzz {

inline const PluginRegistry& registry() {
    static const PluginRegistry loaded = [] {
        PluginRegistry r;
        for (const auto& error : r.load_directories({SLUICE_FUZZ_PLUGIN_DIR})) {
            fail("cannot load the fuzz plugins", error);
        }
        if (r.find("json-transform") == nullptr || r.find("file-sink") == nullptr) {
            fail("json-transform and file-sink are not in", SLUICE_FUZZ_PLUGIN_DIR);
        }
        return r;
    }();
    return loaded;
}

}  // namespace sluice::fuzz

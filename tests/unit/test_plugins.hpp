// The shipped plugins (test-source, json-transform, file-sink), loaded once per test program.
#pragma once

#include <stdexcept>

#include "sluice/core/plugin_registry.hpp"

namespace sluice::test {

inline const PluginRegistry& shipped_plugins() {
    static const PluginRegistry r = [] {
        PluginRegistry reg;
        const auto errors = reg.load_directories({SLUICE_TEST_PLUGIN_DIR});
        if (!errors.empty()) throw std::runtime_error(errors.front());
        return reg;
    }();
    return r;
}

}  // namespace sluice::test

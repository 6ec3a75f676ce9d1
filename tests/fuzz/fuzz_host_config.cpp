// sluice.yaml: whatever the file holds, load_host_config() and the plugin_settings check report
// problems (printable, at a location) and return; no crash, leak, hang or undefined behaviour.
#include <cstddef>
#include <cstdint>

#include "fuzz_env.hpp"
#include "fuzz_registry.hpp"
#include "fuzz_support.hpp"
#include "sluice/core/manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const sluice::fuzz::ScratchFile file("sluice.yaml");
    file.write(data, size);
    sluice::Diagnostics diag;
    const auto env = sluice::fuzz::fuzz_env();
    const sluice::HostConfig host = sluice::load_host_config(file.path(), diag, env);
    if (diag.empty()) {
        sluice::check_plugin_settings(host, sluice::fuzz::registry(), diag, env);
        try {
            (void)sluice::manifest_env(host)("HOST");
        } catch (const sluice::EnvNotAllowed&) {
            // What env_allow is for; the message is checked like a diagnostic.
        }
    }
    sluice::fuzz::require_printable(diag);
    return 0;
}

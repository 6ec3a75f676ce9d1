// Route manifests: whatever a file holds (several documents, anchors, deep nesting, `${VAR}`,
// bad UTF-8), load_routes() returns the valid routes and reports the rest printably; a route
// that validates has a fingerprint. No crash, leak, hang or undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_env.hpp"
#include "fuzz_registry.hpp"
#include "fuzz_support.hpp"
#include "sluice/core/manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const sluice::fuzz::ScratchFile file("route.yaml");
    file.write(data, size);
    sluice::Diagnostics diag;
    std::vector<sluice::Rejection> rejected;
    const auto routes = sluice::load_routes({file.path()}, sluice::fuzz::registry(), diag,
                                            sluice::fuzz::fuzz_env(), &rejected);
    for (const auto& r : routes) {
        if (r.name.empty()) sluice::fuzz::fail("a route without a name validated");
        (void)r.fingerprint();
    }
    if (!rejected.empty() && diag.empty()) sluice::fuzz::fail("a rejection without a diagnostic");
    sluice::fuzz::require_printable(diag);
    return 0;
}

#include "version.hpp"

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <string>

// The Arduino library metadata must repeat the version (the format has no include); this keeps
// version.hpp the one place that is edited.
TEST_CASE("library.properties carries the firmware version", "[version]") {
    std::FILE* f = std::fopen(SLUICE_FW_LIBRARY_PROPERTIES, "r");
    REQUIRE(f != nullptr);
    std::string version;
    char line[256];
    while (std::fgets(line, sizeof line, f) != nullptr) {
        if (std::strncmp(line, "version=", 8) == 0) {
            version = line + 8;
            while (!version.empty() && (version.back() == '\n' || version.back() == '\r')) {
                version.pop_back();
            }
        }
    }
    std::fclose(f);
    CHECK(version == sluice::firmware::kFirmwareVersion);
}

#include "client_id.hpp"

#include <unistd.h>

#include <array>
#include <cstdio>

namespace sluice::plugins::mqtt_source {

std::uint32_t stable_hash(std::string_view text) {
    std::uint32_t h = 2166136261u;
    for (const char c : text) {
        h ^= static_cast<unsigned char>(c);
        h *= 16777619u;
    }
    return h;
}

std::string default_client_id(std::string_view route, std::string_view hostname) {
    std::array<char, 9> hex{};
    std::snprintf(hex.data(), hex.size(), "%08x", stable_hash(hostname));
    return "sluice-" + std::string(route) + "-" + hex.data();
}

std::string local_hostname() {
    std::array<char, 256> name{};
    if (gethostname(name.data(), name.size() - 1) != 0 || name[0] == '\0') return "localhost";
    return name.data();
}

}  // namespace sluice::plugins::mqtt_source

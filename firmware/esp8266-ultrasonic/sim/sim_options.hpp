// Command line of sluice-sim-device.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sluice::firmware::sim {

struct sim_options {
    std::string url = "tcp://127.0.0.1:1883";
    int devices = 1;
    std::string id_prefix = "tank-";
    std::uint32_t interval_ms = 1000;
    std::uint32_t count = 0;  // readings per device, 0 = until SIGINT/SIGTERM
    std::uint32_t seed = 1;
    int qos = 1;
};

// Either options or an error message for stderr; `--help` yields the usage text as the error
// with `help` set.
struct parse_result {
    std::optional<sim_options> options;
    std::string message;
    bool help = false;
};

parse_result parse_sim_options(const std::vector<std::string>& args);

std::string usage_text();

}  // namespace sluice::firmware::sim

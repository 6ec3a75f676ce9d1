// Command line of sluice-replay.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace sluice::replay {

// How the gaps between CSV timestamps become gaps between publishes.
struct Pace {
    enum class Mode { kMax, kScaled };
    Mode mode = Mode::kMax;
    double factor = 1.0;  // kScaled only: 1 = real time, 60 = sixty times faster
    std::string text;     // as given, for reports
};

struct Options {
    std::string url = "tcp://127.0.0.1:1883";
    std::string file = "../shared/data/occupancy_estimation.csv";
    Pace pace{Pace::Mode::kScaled, 1.0, "real"};
    int qos = 1;
    std::optional<std::uint64_t> rows;
    std::string topic_prefix = "sensors";
    std::string client_id;  // empty: derived from the process id
    int max_inflight = 1000;
    std::string summary_json;
    bool help = false;
};

// Parses argv; on a usage error returns nullopt and sets `error`.
std::optional<Options> parse_options(int argc, char** argv, std::string& error);

std::string usage_text(const char* program);

}  // namespace sluice::replay

#include "options.hpp"

#include <charconv>
#include <cmath>
#include <string_view>

namespace sluice::replay {
namespace {

// paho.mqtt.c counts in-flight messages in an int and caps them at MQTT's packet id space.
constexpr int kMaxInflightLimit = 65535;

template <typename T>
std::optional<T> parse_number(std::string_view text) {
    T value{};
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc{} || ptr != end) {
        return std::nullopt;
    }
    return value;
}

std::optional<Pace> parse_pace(std::string_view text) {
    if (text == "max") {
        return Pace{Pace::Mode::kMax, 0.0, "max"};
    }
    if (text == "real") {
        return Pace{Pace::Mode::kScaled, 1.0, "real"};
    }
    const auto factor = parse_number<double>(text);
    if (!factor || !std::isfinite(*factor) || *factor <= 0.0) {
        return std::nullopt;
    }
    return Pace{Pace::Mode::kScaled, *factor, std::string(text)};
}

}  // namespace

std::string usage_text(const char* program) {
    return std::string("Usage: ") + program +
           " [options]\n"
           "Publishes the Room Occupancy Estimation data set to MQTT, one topic per sensor:\n"
           "<prefix>/<kind>/<node>, payload {\"ts\":\"2017-12-22T10:49:41\",\"value\":24.94}.\n"
           "\n"
           "Options:\n"
           "  --url URL             MQTT broker (default tcp://127.0.0.1:1883)\n"
           "  --file PATH           CSV data set (default\n"
           "                        ../shared/data/occupancy_estimation.csv, relative to\n"
           "                        the current directory)\n"
           "  --pace real|max|F     real: the gaps between CSV timestamps; F: F times faster\n"
           "                        (e.g. 60); max: as fast as possible (default real)\n"
           "  --qos 0|1|2           MQTT QoS (default 1)\n"
           "  --rows N              only the first N data rows of the file\n"
           "  --topic-prefix P      first topic level (default sensors)\n"
           "  --client-id ID        MQTT client id (default sluice-replay-<pid>)\n"
           "  --max-inflight N      unacknowledged publishes allowed at once (default 1000)\n"
           "  --summary-json PATH   write counts per topic and totals as JSON to PATH\n"
           "  --help                show this help\n"
           "\n"
           "Exit status: 0 when every message was sent (and, for QoS 1/2, acknowledged),\n"
           "1 on a failed publish, unreachable broker or unreadable file, 2 on a usage\n"
           "error, 130 when interrupted by SIGINT/SIGTERM.\n";
}

std::optional<Options> parse_options(int argc, char** argv, std::string& error) {
    Options options;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        std::string_view inline_value;
        bool has_inline_value = false;
        if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
            inline_value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
            has_inline_value = true;
        }
        if (arg == "--help" || arg == "-h") {
            options.help = true;
            continue;
        }
        std::string_view value;
        if (has_inline_value) {
            value = inline_value;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            error = "option " + std::string(arg) + " needs a value (see --help)";
            return std::nullopt;
        }

        if (arg == "--url") {
            options.url = value;
        } else if (arg == "--file") {
            options.file = value;
        } else if (arg == "--pace") {
            const auto pace = parse_pace(value);
            if (!pace) {
                error = "--pace must be real, max or a factor > 0 such as 60, not '" +
                        std::string(value) + "'";
                return std::nullopt;
            }
            options.pace = *pace;
        } else if (arg == "--qos") {
            const auto qos = parse_number<int>(value);
            if (!qos || *qos < 0 || *qos > 2) {
                error = "--qos must be 0, 1 or 2, not '" + std::string(value) + "'";
                return std::nullopt;
            }
            options.qos = *qos;
        } else if (arg == "--rows") {
            const auto rows = parse_number<std::uint64_t>(value);
            if (!rows || *rows == 0) {
                error = "--rows must be a positive integer, not '" + std::string(value) + "'";
                return std::nullopt;
            }
            options.rows = *rows;
        } else if (arg == "--topic-prefix") {
            options.topic_prefix = value;
        } else if (arg == "--client-id") {
            options.client_id = value;
        } else if (arg == "--max-inflight") {
            const auto n = parse_number<int>(value);
            if (!n || *n < 1 || *n > kMaxInflightLimit) {
                error = "--max-inflight must be an integer from 1 to " +
                        std::to_string(kMaxInflightLimit) + ", not '" + std::string(value) + "'";
                return std::nullopt;
            }
            options.max_inflight = *n;
        } else if (arg == "--summary-json") {
            options.summary_json = value;
        } else {
            error = "unknown option '" + std::string(argv[i]) + "' (see --help)";
            return std::nullopt;
        }
    }
    if (options.url.empty()) {
        error = "--url must not be empty";
        return std::nullopt;
    }
    return options;
}

}  // namespace sluice::replay

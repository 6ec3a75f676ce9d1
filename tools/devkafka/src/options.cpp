#include "options.hpp"

#include <charconv>
#include <string_view>

namespace sluice::devkafka {
namespace {

constexpr int kMaxBrokers = 64;
constexpr int kMaxPartitions = 10000;

std::optional<int> parse_int(std::string_view text, int min, int max) {
    int value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc{} || ptr != end || value < min || value > max) {
        return std::nullopt;
    }
    return value;
}

}  // namespace

std::string usage_text(const char* program) {
    return std::string("Usage: ") + program +
           " [options]\n"
           "Runs librdkafka's mock Kafka cluster on loopback until SIGTERM/SIGINT.\n"
           "The bootstrap address is printed on stdout as the first line.\n"
           "\n"
           "Options:\n"
           "  --brokers N              number of mock brokers (default 1)\n"
           "  --bootstrap-file PATH    also write the bootstrap address to PATH (atomically)\n"
           "  --topic NAME[:PARTS]     pre-create a topic (repeatable); PARTS defaults to\n"
           "                           --partitions\n"
           "  --partitions N           partitions of --topic entries without :PARTS\n"
           "                           (default 4, which is also what topics auto-created\n"
           "                           by clients get; librdkafka offers no way to change\n"
           "                           that)\n"
           "  --nagle                  leave Nagle's algorithm on for accepted connections, as\n"
           "                           librdkafka's mock does by itself (real brokers, and\n"
           "                           this tool by default, set TCP_NODELAY)\n"
           "  --help                   show this help\n"
           "\n"
           "Signals: SIGUSR1 takes all brokers down, SIGUSR2 brings them up again.\n";
}

std::optional<Options> parse_options(int argc, char** argv, std::string& error) {
    Options options;
    // Raw topic arguments are resolved after the loop so that --partitions applies
    // regardless of where it appears on the command line.
    std::vector<std::string> raw_topics;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        std::string_view value;
        bool has_inline_value = false;
        if (const auto eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
            value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
            has_inline_value = true;
        }
        const auto next_value = [&]() -> std::optional<std::string_view> {
            if (has_inline_value) {
                return value;
            }
            if (i + 1 >= argc) {
                error = std::string("option ") + std::string(arg) + " needs a value";
                return std::nullopt;
            }
            return std::string_view(argv[++i]);
        };

        if (arg == "--help" || arg == "-h") {
            options.help = true;
        } else if (arg == "--nagle") {
            options.nagle = true;
        } else if (arg == "--brokers") {
            const auto text = next_value();
            if (!text) {
                return std::nullopt;
            }
            const auto parsed = parse_int(*text, 1, kMaxBrokers);
            if (!parsed) {
                error = "--brokers must be an integer from 1 to " + std::to_string(kMaxBrokers);
                return std::nullopt;
            }
            options.brokers = *parsed;
        } else if (arg == "--partitions") {
            const auto text = next_value();
            if (!text) {
                return std::nullopt;
            }
            const auto parsed = parse_int(*text, 1, kMaxPartitions);
            if (!parsed) {
                error =
                    "--partitions must be an integer from 1 to " + std::to_string(kMaxPartitions);
                return std::nullopt;
            }
            options.default_partitions = *parsed;
        } else if (arg == "--bootstrap-file") {
            const auto text = next_value();
            if (!text) {
                return std::nullopt;
            }
            if (text->empty()) {
                error = "--bootstrap-file needs a non-empty path";
                return std::nullopt;
            }
            options.bootstrap_file = std::string(*text);
        } else if (arg == "--topic") {
            const auto text = next_value();
            if (!text) {
                return std::nullopt;
            }
            raw_topics.emplace_back(*text);
        } else {
            error = "unknown option '" + std::string(argv[i]) + "'";
            return std::nullopt;
        }
    }

    for (const auto& raw : raw_topics) {
        TopicSpec spec;
        const auto colon = raw.rfind(':');
        spec.name = raw.substr(0, colon);
        spec.partitions = options.default_partitions;
        if (colon != std::string::npos) {
            const auto parsed =
                parse_int(std::string_view(raw).substr(colon + 1), 1, kMaxPartitions);
            if (!parsed) {
                error = "--topic '" + raw + "': partitions must be an integer from 1 to " +
                        std::to_string(kMaxPartitions);
                return std::nullopt;
            }
            spec.partitions = *parsed;
        }
        if (spec.name.empty()) {
            error = "--topic '" + raw + "': empty topic name";
            return std::nullopt;
        }
        options.topics.push_back(std::move(spec));
    }
    return options;
}

}  // namespace sluice::devkafka

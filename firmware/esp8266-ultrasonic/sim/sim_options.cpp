#include "sim_options.hpp"

#include <charconv>
#include <limits>

#include "command.hpp"
#include "topics.hpp"

namespace sluice::firmware::sim {

namespace {

template <typename T>
bool parse_number(const std::string& text, T min, T max, T* out) {
    T value{};
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc{} || ptr != end || value < min || value > max) return false;
    *out = value;
    return true;
}

}  // namespace

std::string usage_text() {
    return "usage: sluice-sim-device [options]\n"
           "Simulates ESP8266 ultrasonic tank sensors over MQTT, running the firmware's core.\n"
           "  --url URL           broker (default tcp://127.0.0.1:1883)\n"
           "  --devices N         number of devices, 1..1000 (default 1)\n"
           "  --id-prefix P       device ids are P1..PN (default tank-)\n"
           "  --interval-ms MS    between readings, 100..3600000 (default 1000)\n"
           "  --count N           readings per device, then exit; 0 = until SIGINT/SIGTERM\n"
           "  --seed N            random seed for the simulated tanks (default 1)\n"
           "  --qos Q             QoS of published readings, 0..2 (default 1)\n";
}

parse_result parse_sim_options(const std::vector<std::string>& args) {
    parse_result result;
    sim_options o;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string name = args[i];
        std::string value;
        bool has_value = false;
        if (const auto eq = name.find('='); name.rfind("--", 0) == 0 && eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            has_value = true;
        }
        if (name == "--help" || name == "-h") {
            result.help = true;
            result.message = usage_text();
            return result;
        }
        const bool known = name == "--url" || name == "--devices" || name == "--id-prefix" ||
                           name == "--interval-ms" || name == "--count" || name == "--seed" ||
                           name == "--qos";
        if (!known) {
            result.message = "unknown option '" + name + "'\n" + usage_text();
            return result;
        }
        if (!has_value) {
            if (i + 1 >= args.size()) {
                result.message = "option " + name + " needs a value";
                return result;
            }
            value = args[++i];
        }
        bool ok = true;
        if (name == "--url") {
            o.url = value;
            ok = !value.empty();
        } else if (name == "--devices") {
            ok = parse_number(value, 1, 1000, &o.devices);
        } else if (name == "--id-prefix") {
            o.id_prefix = value;
        } else if (name == "--interval-ms") {
            ok = parse_number(value, kMinIntervalMs, kMaxIntervalMs, &o.interval_ms);
        } else if (name == "--count") {
            ok = parse_number(value, std::uint32_t{0}, std::numeric_limits<std::uint32_t>::max(),
                              &o.count);
        } else if (name == "--seed") {
            ok = parse_number(value, std::uint32_t{0}, std::numeric_limits<std::uint32_t>::max(),
                              &o.seed);
        } else if (name == "--qos") {
            ok = parse_number(value, 0, 2, &o.qos);
        }
        if (!ok) {
            result.message = "invalid value '" + value + "' for " + name;
            return result;
        }
    }
    // The longest id decides: every id must be usable as topic level and client id.
    const std::string longest = o.id_prefix + std::to_string(o.devices);
    if (!is_valid_device_id(longest.c_str())) {
        result.message =
            "device id '" + longest + "' is invalid: ids are 1..32 characters of [A-Za-z0-9_-]";
        return result;
    }
    result.options = o;
    return result;
}

}  // namespace sluice::firmware::sim

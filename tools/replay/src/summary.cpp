#include "summary.hpp"

#include "atomic_file.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace sluice::replay {
namespace {

std::string json_string(const std::string& text) {
    std::string out = "\"";
    for (const char c : text) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char escaped[8];
                    std::snprintf(escaped, sizeof escaped, "\\u%04x",
                                  static_cast<unsigned>(static_cast<unsigned char>(c)));
                    out += escaped;
                } else {
                    out += c;
                }
        }
    }
    return out + "\"";
}

std::string fixed(double value, int decimals) {
    char text[64];
    std::snprintf(text, sizeof text, "%.*f", decimals, value);
    return text;
}

}  // namespace

double Summary::rate() const {
    return elapsed_s > 0 ? static_cast<double>(counters.sent) / elapsed_s : 0.0;
}

std::string format_summary(const Summary& summary) {
    std::ostringstream out;
    if (!summary.error.empty()) {
        out << "sluice-replay: error: " << summary.error << "\n";
    }
    out << "sluice-replay: "
        << (!summary.error.empty() ? "FAILED"
            : summary.interrupted  ? "interrupted"
                                   : "done")
        << " (" << summary.url << ", QoS " << summary.qos << ", pace " << summary.pace << ")\n"
        << "  rows:     " << summary.rows_published << " published of " << summary.rows_read
        << " read, " << summary.rows_malformed << " malformed skipped\n"
        << "  messages: " << summary.counters.sent << " sent, ";
    if (summary.qos > 0) {
        out << summary.counters.acknowledged << " acknowledged, ";
    } else {
        out << "(QoS 0: no acknowledgements), ";
    }
    out << summary.counters.failed << " failed\n"
        << "  elapsed:  " << fixed(summary.elapsed_s, 3) << " s, " << fixed(summary.rate(), 0)
        << " msg/s\n";
    return out.str();
}

std::string write_summary_json(const Summary& summary, const std::string& path) {
    std::ostringstream json;
    json << "{\n"
         << "  \"url\": " << json_string(summary.url) << ",\n"
         << "  \"file\": " << json_string(summary.file) << ",\n"
         << "  \"qos\": " << summary.qos << ",\n"
         << "  \"pace\": " << json_string(summary.pace) << ",\n"
         << "  \"rows_read\": " << summary.rows_read << ",\n"
         << "  \"rows_published\": " << summary.rows_published << ",\n"
         << "  \"rows_malformed\": " << summary.rows_malformed << ",\n"
         << "  \"messages_sent\": " << summary.counters.sent << ",\n"
         << "  \"messages_acknowledged\": "
         << (summary.qos > 0 ? std::to_string(summary.counters.acknowledged) : "null") << ",\n"
         << "  \"messages_failed\": " << summary.counters.failed << ",\n"
         << "  \"elapsed_s\": " << fixed(summary.elapsed_s, 3) << ",\n"
         << "  \"rate_msg_per_s\": " << fixed(summary.rate(), 1) << ",\n"
         << "  \"interrupted\": " << (summary.interrupted ? "true" : "false") << ",\n"
         << "  \"ok\": " << (summary.error.empty() ? "true" : "false") << ",\n"
         << "  \"error\": " << (summary.error.empty() ? "null" : json_string(summary.error))
         << ",\n"
         << "  \"topics\": {";
    for (std::size_t i = 0; i < summary.topics.size(); ++i) {
        json << (i == 0 ? "\n" : ",\n") << "    " << json_string(summary.topics[i].first) << ": "
             << summary.topics[i].second;
    }
    json << (summary.topics.empty() ? "}\n" : "\n  }\n") << "}\n";

    return tools::write_file_atomically(path, json.str());
}

}  // namespace sluice::replay

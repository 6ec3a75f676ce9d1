#include "sluice/core/log.hpp"

#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>

#include "sluice/core/log_hygiene.hpp"
#include "sluice/sdk/json.hpp"

namespace sluice::log {

namespace {

std::atomic<bool> g_json{false};
std::atomic<bool> g_stopped{false};
std::atomic<bool> g_shut_down{false};
// Our own reference: spdlog::shutdown() drops the registry's, while a thread that outlives it
// (a plugin's, when the process gives up on a stuck route) may still be logging.
std::shared_ptr<spdlog::logger> g_logger;
// Warnings and errors: at most 10 identical lines per 10 s (a broker that refuses every
// message of a busy route would otherwise write thousands a second).
constexpr std::size_t kFloodBurst = 10;
constexpr auto kFloodWindow = std::chrono::seconds(10);
FloodLimiter g_flood(kFloodBurst, kFloodWindow);
constexpr char kKeySep = '\x1f';

spdlog::level::level_enum to_spdlog(sluice_log_level level) {
    switch (level) {
        case SLUICE_LOG_TRACE:
            return spdlog::level::trace;
        case SLUICE_LOG_DEBUG:
            return spdlog::level::debug;
        case SLUICE_LOG_INFO:
            return spdlog::level::info;
        case SLUICE_LOG_WARN:
            return spdlog::level::warn;
        case SLUICE_LOG_ERROR:
            return spdlog::level::err;
    }
    return spdlog::level::info;
}

}  // namespace

void setup(const std::string& level, const std::string& format) {
    // Asynchronous, dropping the oldest lines when the queue is full: a log call may come
    // from a thread every route shares (paho's receive thread), so it must never wait for a
    // slow or blocked stderr.
    spdlog::init_thread_pool(32768, 1);
    g_logger = spdlog::create_async_nb<spdlog::sinks::stderr_sink_mt>("sluice");
    spdlog::set_default_logger(g_logger);
    g_json = format == "json";
    // JSON lines carry their own escaped message; spdlog only adds nothing around it.
    spdlog::set_pattern(g_json ? "%v" : "%Y-%m-%d %H:%M:%S.%e %l %v");
    spdlog::set_level(spdlog::level::from_str(level == "warn" ? "warning" : level));
    spdlog::flush_on(spdlog::level::warn);
}

void shutdown() {
    // What a flood left out is said before the end.
    for (const auto& [key, count] : g_flood.take_suppressed()) {
        const auto a = key.find(kKeySep);
        const auto b = key.find(kKeySep, a + 1);
        write(static_cast<sluice_log_level>(std::stoi(key.substr(a + 1, b - a - 1))),
              key.substr(0, a),
              std::to_string(count) + " more identical line(s) were left out: " + key.substr(b + 1),
              false);
    }
    // Lines logged from now on are dropped; the queued ones are written out first.
    g_stopped = true;
    spdlog::shutdown();
    g_shut_down = true;
}

bool is_shut_down() { return g_shut_down; }

namespace {
spdlog::logger* logger() { return g_logger ? g_logger.get() : spdlog::default_logger_raw(); }
}  // namespace

bool enabled(sluice_log_level level) {
    return !g_stopped && logger()->should_log(to_spdlog(level));
}

void write(sluice_log_level level, std::string_view scope, std::string_view message) {
    write(level, scope, message, true);
}

void write(sluice_log_level level, std::string_view scope, std::string_view raw_message,
           bool limit) {
    const auto lvl = to_spdlog(level);
    if (g_stopped) return;
    spdlog::logger* out = logger();
    if (!out->should_log(lvl)) return;
    std::string limited;
    std::string_view message = raw_message;
    if (limit && level >= SLUICE_LOG_WARN) {
        std::string key(scope);
        key += kKeySep;
        key += std::to_string(static_cast<int>(level));
        key += kKeySep;
        key += raw_message;
        const auto d = g_flood.decide(key, FloodLimiter::Clock::now());
        if (!d.write) return;
        if (d.suppressed > 0) {
            limited = std::string(raw_message) + " (" + std::to_string(d.suppressed) +
                      " more identical line(s) were left out before this one)";
            message = limited;
        }
    }
    if (g_json) {
        std::string line = "{\"time\":\"";
        const auto now = std::chrono::system_clock::now();
        const auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
        line += std::to_string(ms);
        line += "\",\"level\":\"";
        line += spdlog::level::to_string_view(lvl).data();
        line += "\",\"scope\":";
        sdk::json::append_quoted(line, valid_utf8(scope));
        line += ",\"msg\":";
        sdk::json::append_quoted(line, valid_utf8(message));
        line += "}";
        out->log(lvl, "{}", line);
    } else if (scope.empty()) {
        out->log(lvl, "{}", escape_text(message));
    } else {
        out->log(lvl, "[{}] {}", escape_text(scope), escape_text(message));
    }
}

}  // namespace sluice::log

#include "sluice/core/log.hpp"

#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>

#include "sluice/sdk/json.hpp"

namespace sluice::log {

namespace {

std::atomic<bool> g_json{false};
std::atomic<bool> g_stopped{false};
std::atomic<bool> g_shut_down{false};
// Our own reference: spdlog::shutdown() drops the registry's, while a thread that outlives it
// (a plugin's, when the process gives up on a stuck route) may still be logging.
std::shared_ptr<spdlog::logger> g_logger;

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
    const auto lvl = to_spdlog(level);
    if (g_stopped) return;
    spdlog::logger* out = logger();
    if (!out->should_log(lvl)) return;
    if (g_json) {
        std::string line = "{\"time\":\"";
        const auto now = std::chrono::system_clock::now();
        const auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
        line += std::to_string(ms);
        line += "\",\"level\":\"";
        line += spdlog::level::to_string_view(lvl).data();
        line += "\",\"scope\":";
        sdk::json::append_quoted(line, scope);
        line += ",\"msg\":";
        sdk::json::append_quoted(line, message);
        line += "}";
        out->log(lvl, "{}", line);
    } else if (scope.empty()) {
        out->log(lvl, "{}", message);
    } else {
        out->log(lvl, "[{}] {}", scope, message);
    }
}

}  // namespace sluice::log

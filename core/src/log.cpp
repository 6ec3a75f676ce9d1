#include "sluice/core/log.hpp"

#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>

#include "sluice/sdk/json.hpp"

namespace sluice::log {

namespace {

std::atomic<bool> g_json{false};

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
    auto logger = spdlog::create_async_nb<spdlog::sinks::stderr_sink_mt>("sluice");
    spdlog::set_default_logger(logger);
    g_json = format == "json";
    // JSON lines carry their own escaped message; spdlog only adds nothing around it.
    spdlog::set_pattern(g_json ? "%v" : "%Y-%m-%d %H:%M:%S.%e %l %v");
    spdlog::set_level(spdlog::level::from_str(level == "warn" ? "warning" : level));
    spdlog::flush_on(spdlog::level::warn);
}

void shutdown() { spdlog::shutdown(); }

bool enabled(sluice_log_level level) { return spdlog::should_log(to_spdlog(level)); }

void write(sluice_log_level level, std::string_view scope, std::string_view message) {
    const auto lvl = to_spdlog(level);
    if (!spdlog::should_log(lvl)) return;
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
        spdlog::log(lvl, "{}", line);
    } else if (scope.empty()) {
        spdlog::log(lvl, "{}", message);
    } else {
        spdlog::log(lvl, "[{}] {}", scope, message);
    }
}

}  // namespace sluice::log

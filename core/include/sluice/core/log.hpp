// The host's logging: spdlog to stderr, as text or JSON lines. Plugins log through the host
// API and land here with their route and stage as the scope.
#pragma once

#include <string>
#include <string_view>

#include "sluice/abi.h"

namespace sluice::log {

/// level: trace, debug, info, warn, error; format: text or json.
void setup(const std::string& level, const std::string& format);
/// Writes out what is queued and stops the log thread; call before the process ends.
void shutdown();
/// True once shutdown() has written everything out.
bool is_shut_down();
bool enabled(sluice_log_level level);
/// `scope` names who speaks ("route temperature > sink kafka-sink"), may be empty. Both are
/// escaped (log_hygiene.hpp); warnings and errors repeated many times are cut down to a few
/// per 10 s, with a count of what was left out.
void write(sluice_log_level level, std::string_view scope, std::string_view message);
/// The same; `limit` false writes it whatever the flood limiter would say.
void write(sluice_log_level level, std::string_view scope, std::string_view message, bool limit);

inline void debug(std::string_view scope, std::string_view m) { write(SLUICE_LOG_DEBUG, scope, m); }
inline void info(std::string_view scope, std::string_view m) { write(SLUICE_LOG_INFO, scope, m); }
inline void warn(std::string_view scope, std::string_view m) { write(SLUICE_LOG_WARN, scope, m); }
inline void error(std::string_view scope, std::string_view m) { write(SLUICE_LOG_ERROR, scope, m); }

}  // namespace sluice::log

// The default MQTT client id: stable across restarts, so a persistent session is resumed, and
// different for every route, so two routes of one process never take over each other's
// session (a client-id collision makes the broker disconnect one client per connect, forever).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::plugins::mqtt_source {

/// FNV-1a, 32 bits: a hash whose value never changes between builds, compilers or platforms
/// (std::hash gives no such promise).
std::uint32_t stable_hash(std::string_view text);

/// `sluice-<route>-<8 hex digits of stable_hash(hostname)>`.
std::string default_client_id(std::string_view route, std::string_view hostname);

/// This machine's host name, or "localhost" when it cannot be read.
std::string local_hostname();

}  // namespace sluice::plugins::mqtt_source

// The validated options of one mqtt-source instance, and the cross-field rules that the config
// spec cannot express (shared by validate(), which reports every problem, and the constructor).
#pragma once

#include <chrono>
#include <cstdint>
#include <sluice/sdk.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::plugins::mqtt_source {

enum class ProtocolVersion { v3_1_1, v5 };

struct Settings {
    std::vector<std::string> urls;
    std::vector<std::string> topics;
    int qos = 1;
    std::string client_id;
    bool client_id_derived = false;  // true when client_id was not configured
    bool clean_session = false;
    std::uint32_t session_expiry_s = 86400;
    ProtocolVersion version = ProtocolVersion::v5;
    int keepalive_s = 30;
    int connect_timeout_s = 10;
    std::chrono::milliseconds reconnect_min{500};
    std::chrono::milliseconds reconnect_max{30000};
    std::string username;
    std::string password;
    bool has_password = false;
    std::string ca_file;
    std::string cert_file;
    std::string key_file;
    bool verify = true;
    bool metadata_headers = true;
    // connection: shared. One connection and session for every route with equal settings
    // (shared_connection.hpp).
    bool shared = false;

    bool uses_tls() const;
    /// The urls joined with ", ", for messages.
    std::string url_list() const;
};

/// Room for what an MQTT 5 PUBLISH carries besides its payload, which the route's
/// max_payload_bytes does not count: fixed header (up to 5 bytes), packet id (2), the topic (up
/// to 2 + 65535: a wildcard filter says nothing about the longest topic it matches) and up to
/// 64 KiB of properties (user properties become headers).
inline constexpr std::uint64_t kPublishAllowance = 128 * 1024;
/// The largest packet MQTT can express (Remaining Length of 4 bytes).
inline constexpr std::uint64_t kMaxMqttPacket = 268435455;

/// The MQTT 5 Maximum Packet Size to ask of the broker for a route that refuses payloads over
/// `max_payload_bytes`: that plus kPublishAllowance, at most kMaxMqttPacket. 0 when
/// `max_payload_bytes` is 0 (unknown): then no limit is sent.
std::uint32_t maximum_packet_size(std::uint64_t max_payload_bytes);

/// Returns "" when `url` is `tcp://host:port` or `ssl://host:port`, else why it is not.
std::string url_error(std::string_view url);

/// True when the url's host is this machine (localhost, 127.0.0.0/8, ::1).
bool loopback_url(std::string_view url);

/// What a valid configuration still does unsafely, logged as warnings at start: TLS without
/// verification, a password sent over tcp:// to another machine.
std::vector<std::string> start_warnings(const Settings& settings);

/// Reports every cross-field problem of a configuration to `diag`.
void check_settings(const sdk::Config& config, sdk::Diagnostics& diag);

/// Reads the options; `hostname` feeds the default client id. Throws sdk::ConfigError for a
/// value that check_settings() would have reported.
Settings read_settings(const sdk::Config& config, std::string_view hostname);

}  // namespace sluice::plugins::mqtt_source

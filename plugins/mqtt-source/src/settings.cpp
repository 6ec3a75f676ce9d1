#include "settings.hpp"

#include <algorithm>
#include <charconv>
#include <set>

#include "client_id.hpp"
#include "topic_filter.hpp"

namespace sluice::plugins::mqtt_source {

bool Settings::uses_tls() const {
    for (const auto& u : urls) {
        if (u.rfind("ssl://", 0) == 0) return true;
    }
    return false;
}

std::string Settings::url_list() const {
    std::string out;
    for (const auto& u : urls) {
        if (!out.empty()) out += ", ";
        out += u;
    }
    return out;
}

std::uint32_t maximum_packet_size(std::uint64_t max_payload_bytes) {
    if (max_payload_bytes == 0) return 0;
    if (max_payload_bytes >= kMaxMqttPacket - kPublishAllowance) {
        return static_cast<std::uint32_t>(kMaxMqttPacket);
    }
    return static_cast<std::uint32_t>(max_payload_bytes + kPublishAllowance);
}

std::string url_error(std::string_view url) {
    std::string_view rest;
    if (url.rfind("tcp://", 0) == 0 || url.rfind("ssl://", 0) == 0) {
        rest = url.substr(6);
    } else {
        return "'" + std::string(url) + "' is not tcp://host:port or ssl://host:port";
    }
    if (rest.find('/') != std::string_view::npos) {
        return "'" + std::string(url) + "' has a path; use tcp://host:port or ssl://host:port";
    }
    // A bracketed IPv6 literal carries colons of its own: the port follows the ']'.
    std::size_t host_end = rest.rfind(':');
    if (!rest.empty() && rest.front() == '[') {
        const std::size_t close = rest.find(']');
        if (close == std::string_view::npos) {
            return "'" + std::string(url) + "': unclosed '[' in the host";
        }
        host_end = rest.find(':', close);
    }
    if (host_end == std::string_view::npos) {
        return "'" + std::string(url) + "' has no port (tcp:// is usually 1883, ssl:// 8883)";
    }
    if (host_end == 0) return "'" + std::string(url) + "' has no host";
    const std::string_view port_text = rest.substr(host_end + 1);
    unsigned port = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || port == 0 ||
        port > 65535) {
        return "'" + std::string(url) + "': the port must be a number from 1 to 65535";
    }
    return {};
}

bool loopback_url(std::string_view url) {
    std::string_view host = url.substr(url.find("://") == std::string_view::npos ? 0 : 6);
    if (!host.empty() && host.front() == '[') {
        host = host.substr(1, host.find(']') - 1);
    } else {
        host = host.substr(0, host.rfind(':'));
    }
    const bool ipv4_literal =
        !host.empty() && host.find_first_not_of("0123456789.") == std::string_view::npos;
    return host == "localhost" || host == "::1" || (ipv4_literal && host.rfind("127.", 0) == 0);
}

std::vector<std::string> start_warnings(const Settings& s) {
    std::vector<std::string> out;
    if (s.uses_tls() && !s.verify) {
        out.push_back(
            "verify: false: the broker's certificate is not checked, so anyone on the "
            "network path can pose as the broker and read or change the data");
    }
    if (s.has_password) {
        for (const auto& u : s.urls) {
            if (u.rfind("tcp://", 0) == 0 && !loopback_url(u)) {
                out.push_back("the password goes to " + u +
                              " unencrypted: use ssl:// for a broker that is not on this machine");
            }
        }
    }
    return out;
}

void check_settings(const sdk::Config& c, sdk::Diagnostics& d) {
    const auto urls = c.list("url");
    if (urls.empty()) d.report("url", "set at least one broker url, e.g. tcp://127.0.0.1:1883");
    for (std::size_t i = 0; i < urls.size(); ++i) {
        const std::string e = url_error(urls[i]);
        if (!e.empty()) d.report("url", "item " + std::to_string(i + 1) + ": " + e);
    }
    const auto tls_urls = std::count_if(urls.begin(), urls.end(),
                                        [](const auto& u) { return u.rfind("ssl://", 0) == 0; });
    if (tls_urls != 0 && tls_urls != static_cast<std::ptrdiff_t>(urls.size())) {
        // A fail-over from ssl:// to tcp:// would send the password and the data in the clear.
        d.report("url",
                 "mixes ssl:// and tcp:// urls: a fail-over would drop TLS; use ssl:// "
                 "for every url");
    }

    const auto topics = c.list("topics");
    if (topics.empty()) d.report("topics", "set at least one topic filter, e.g. sensors/#");
    std::set<std::string> seen;
    for (std::size_t i = 0; i < topics.size(); ++i) {
        const std::string item = "item " + std::to_string(i + 1) + " '" + topics[i] + "': ";
        const std::string e = topic_filter_error(topics[i]);
        if (!e.empty()) d.report("topics", item + e);
        if (!seen.insert(topics[i]).second) d.report("topics", item + "listed twice");
    }

    const bool v311 = c.string_or("mqtt_version", "5") == "3.1.1";
    if (c.has("client_id")) {
        const std::string id = c.string("client_id");
        if (id.empty()) {
            d.report("client_id", "must not be empty; leave it out to use the default");
        } else if (id.size() > 65535) {
            d.report("client_id", "is at most 65535 bytes");
        }
    }
    if (!v311 && c.has("session_expiry_s") && c.integer("session_expiry_s") == 0 &&
        !(c.has("clean_session") && c.boolean("clean_session"))) {
        d.report("session_expiry_s",
                 "0 ends the session at every disconnect, so clean_session: false keeps nothing; "
                 "set a positive expiry or clean_session: true");
    }
    if (v311 && c.has("connection") && c.string("connection") == "shared") {
        d.report("connection",
                 "shared needs mqtt_version: 5: messages are matched to their routes by MQTT 5 "
                 "subscription identifiers");
    }
    if (c.has("password") && !c.has("username") && v311) {
        d.report("password", "MQTT 3.1.1 sends a password only with a username: set username");
    }
    if (c.has("reconnect_min_ms") && c.has("reconnect_max_ms") &&
        c.integer("reconnect_min_ms") > c.integer("reconnect_max_ms")) {
        d.report("reconnect_max_ms", "must not be less than reconnect_min_ms (" +
                                         std::to_string(c.integer("reconnect_min_ms")) + ")");
    }

    if (c.has("cert_file") != c.has("key_file")) {
        d.report(c.has("cert_file") ? "key_file" : "cert_file",
                 "a client certificate needs both cert_file and key_file");
    }
    bool tls = false;
    for (const auto& u : urls) tls = tls || u.rfind("ssl://", 0) == 0;
    if (!tls) {
        for (const char* key : {"ca_file", "cert_file", "key_file"}) {
            if (c.has(key)) {
                d.report(key, "is set but no url uses ssl://; use ssl://host:8883 for TLS");
            }
        }
    }
}

Settings read_settings(const sdk::Config& c, std::string_view hostname) {
    Settings s;
    s.urls = c.list("url");
    s.topics = c.list("topics");
    for (const auto& u : s.urls) {
        if (const std::string e = url_error(u); !e.empty()) throw sdk::ConfigError("url", e);
    }
    if (s.urls.empty()) throw sdk::ConfigError("url", "no broker url");
    if (s.topics.empty()) throw sdk::ConfigError("topics", "no topic filter");
    for (const auto& t : s.topics) {
        if (const std::string e = topic_filter_error(t); !e.empty()) {
            throw sdk::ConfigError("topics", "'" + t + "': " + e);
        }
    }
    s.qos = static_cast<int>(c.integer("qos"));
    if (s.qos < 0 || s.qos > 2) throw sdk::ConfigError("qos", "must be 0, 1 or 2");
    s.client_id_derived = !c.has("client_id");
    s.client_id =
        s.client_id_derived ? default_client_id(c.route(), hostname) : c.string("client_id");
    s.clean_session = c.boolean("clean_session");
    s.session_expiry_s = static_cast<std::uint32_t>(c.integer("session_expiry_s"));
    s.version = c.string("mqtt_version") == "3.1.1" ? ProtocolVersion::v3_1_1 : ProtocolVersion::v5;
    s.keepalive_s = static_cast<int>(c.integer("keepalive_s"));
    s.connect_timeout_s = static_cast<int>(c.integer("connect_timeout_s"));
    s.reconnect_min = std::chrono::milliseconds(c.integer("reconnect_min_ms"));
    s.reconnect_max = std::chrono::milliseconds(c.integer("reconnect_max_ms"));
    if (s.reconnect_max < s.reconnect_min) s.reconnect_max = s.reconnect_min;
    s.username = c.string_or("username", "");
    s.has_password = c.has("password");
    s.password = c.string_or("password", "");
    s.ca_file = c.string_or("ca_file", "");
    s.cert_file = c.string_or("cert_file", "");
    s.key_file = c.string_or("key_file", "");
    s.verify = c.boolean("verify");
    s.metadata_headers = c.boolean("metadata_headers");
    s.shared = c.string("connection") == "shared";
    if (s.shared && s.version != ProtocolVersion::v5) {
        throw sdk::ConfigError("connection", "shared needs mqtt_version: 5");
    }
    return s;
}

}  // namespace sluice::plugins::mqtt_source

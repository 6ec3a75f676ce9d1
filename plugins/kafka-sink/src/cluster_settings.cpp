#include "cluster_settings.hpp"

#include <algorithm>
#include <array>

namespace sluice::plugins::kafka {

namespace {

// librdkafka properties the plugin sets from its own options. Setting them again through
// `properties` would silently fight the option (and message.timeout.ms also bounds how long
// write() waits), so they are refused with a pointer to the option.
struct OwnedProperty {
    std::string_view property;
    std::string_view option;
};
constexpr std::array kOwnedProperties{
    OwnedProperty{"bootstrap.servers", "brokers"},
    OwnedProperty{"metadata.broker.list", "brokers"},
    OwnedProperty{"compression.type", "compression"},
    OwnedProperty{"compression.codec", "compression"},
    OwnedProperty{"acks", "acks"},
    OwnedProperty{"request.required.acks", "acks"},
    OwnedProperty{"enable.idempotence", "idempotence"},
    OwnedProperty{"linger.ms", "linger_ms"},
    OwnedProperty{"queue.buffering.max.ms", "linger_ms"},
    OwnedProperty{"message.timeout.ms", "delivery_timeout_ms"},
    OwnedProperty{"delivery.timeout.ms", "delivery_timeout_ms"},
};

// librdkafka properties that make the daemon load code, run a command or read or write a file
// of the manifest's choosing; rd_kafka_conf_set acts on some of them at once (a library named
// in plugin.library.paths is loaded inside the call). A route's author must not decide that:
// they are refused before anything reaches librdkafka unless the operator allows them in the
// host config (plugin_settings: { kafka-sink: { allow_properties: [...] } }).
struct PrivilegedProperty {
    std::string_view property;
    std::string_view does;
};
constexpr std::array kPrivilegedProperties{
    PrivilegedProperty{"plugin.library.paths", "loads a library into the process"},
    PrivilegedProperty{"ssl.engine.location", "loads an OpenSSL engine library"},
    PrivilegedProperty{"ssl.engine.id", "loads an OpenSSL engine"},
    PrivilegedProperty{"ssl.providers", "loads OpenSSL provider modules"},
    PrivilegedProperty{"sasl.kerberos.kinit.cmd", "runs a shell command"},
    PrivilegedProperty{"sasl.kerberos.keytab", "reads a file"},
    PrivilegedProperty{"ssl.ca.location", "reads a file or directory"},
    PrivilegedProperty{"ssl.certificate.location", "reads a file"},
    PrivilegedProperty{"ssl.key.location", "reads a file"},
    PrivilegedProperty{"ssl.crl.location", "reads a file"},
    PrivilegedProperty{"ssl.keystore.location", "reads a file"},
    PrivilegedProperty{"ssl.truststore.location", "reads a file"},
    PrivilegedProperty{"ssl.ca.certificate.stores", "reads system certificate stores"},
    PrivilegedProperty{"offset.store.path", "writes a file"},
};

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

// librdkafka's local queue limits are per producer, and routes share producers: its own
// default of 1 GiB lets a handful of producers hold gigabytes for a slow cluster. These bound
// it; a full queue answers "cannot take it now" (retry) instead. `properties` may override
// them, so they are not in kOwnedProperties.
struct DefaultProperty {
    const char* property;
    const char* value;
};
constexpr std::array kDefaultProperties{
    DefaultProperty{"queue.buffering.max.messages", "100000"},
};
constexpr std::uint64_t kMinQueueKbytes = 1024;
constexpr std::uint64_t kMaxQueueKbytes = 65536;

bool contains_ci(std::string_view text, std::string_view word) {
    return std::search(text.begin(), text.end(), word.begin(), word.end(), [](char a, char b) {
               const auto lower = [](char c) {
                   return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
               };
               return lower(a) == lower(b);
           }) != text.end();
}

// librdkafka quotes the refused value in its error text; a secret must not reach the logs
// or `sluice check` output that way.
std::string redact(std::string text, std::string_view secret) {
    if (secret.empty()) return text;
    for (std::size_t pos = text.find(secret); pos != std::string::npos;
         pos = text.find(secret, pos + 3)) {
        text.replace(pos, secret.size(), "***");
    }
    return text;
}

void append_field(std::string& out, std::string_view value) {
    // Length-prefixed so that no choice of values can make two settings collide.
    out.append(std::to_string(value.size()));
    out.push_back(':');
    out.append(value);
}

}  // namespace

std::uint64_t queue_kbytes_for(std::uint64_t budget_bytes) {
    if (budget_bytes == 0) return kMaxQueueKbytes;
    return std::clamp<std::uint64_t>(budget_bytes / 4 / 1024, kMinQueueKbytes, kMaxQueueKbytes);
}

bool is_secret_property(std::string_view name) {
    if (contains_ci(name, "password") || contains_ci(name, "secret")) return true;
    const std::string n = lower(name);
    // Private keys, inline (ssl.key.pem, ssl_key) or not; certificates and CA files are public.
    if (n.starts_with("ssl") && contains_ci(n, "key")) return true;
    if (n.ends_with(".key.pem")) return true;
    // SASL settings carry credentials in more forms than one can list (oauthbearer.config holds
    // tokens, kerberos a keytab path): all are hidden but those that only say what is used.
    static constexpr std::string_view kPublicSasl[] = {"sasl.mechanism",
                                                       "sasl.mechanisms",
                                                       "sasl.username",
                                                       "sasl.kerberos.service.name",
                                                       "sasl.kerberos.principal",
                                                       "sasl.oauthbearer.method",
                                                       "sasl.oauthbearer.client.id",
                                                       "sasl.oauthbearer.scope",
                                                       "sasl.oauthbearer.token.endpoint.url"};
    if (n.starts_with("sasl.")) {
        return std::find(std::begin(kPublicSasl), std::end(kPublicSasl), n) ==
               std::end(kPublicSasl);
    }
    return false;
}

ClusterSettings ClusterSettings::from_config(const sdk::Config& config) {
    ClusterSettings s;
    s.brokers = config.string("brokers");
    s.compression = config.string_or("compression", s.compression);
    s.acks = config.string_or("acks", s.acks);
    if (config.has("idempotence")) s.idempotence = config.boolean("idempotence");
    if (config.has("linger_ms")) s.linger_ms = config.integer("linger_ms");
    if (config.has("delivery_timeout_ms")) {
        s.delivery_timeout_ms = config.integer("delivery_timeout_ms");
    }
    s.properties = config.map("properties");
    if (config.has("allow_properties")) {
        for (const auto& name : config.list("allow_properties")) s.allowed.push_back(lower(name));
    }
    return s;
}

const char* privileged_property(std::string_view name) {
    // librdkafka matches names exactly; compared without case anyway, so that no spelling
    // slips past this check.
    const std::string n = lower(name);
    for (const auto& p : kPrivilegedProperties) {
        if (n == p.property) return p.does.data();
    }
    return nullptr;
}

int ClusterSettings::check_allowed(const ReportFn& report) const {
    int problems = 0;
    for (const auto& name : allowed) {
        if (privileged_property(name) == nullptr) {
            ++problems;
            std::string known;
            for (const auto& p : kPrivilegedProperties) {
                known += (known.empty() ? "" : ", ") + std::string(p.property);
            }
            report("allow_properties",
                   "'" + name + "' needs no allowing (only these do: " + known + ")");
        }
    }
    for (const auto& [name, value] : properties) {
        const char* does = privileged_property(name);
        if (does == nullptr) continue;
        if (std::find(allowed.begin(), allowed.end(), lower(name)) != allowed.end()) continue;
        ++problems;
        report("properties." + name,
               "'" + name + "' " + does +
                   ", which a route manifest may not decide; the operator can allow it in the "
                   "host config: plugin_settings: { kafka-sink: { allow_properties: [" +
                   lower(name) + "] } }");
    }
    return problems;
}

std::string ClusterSettings::canonical_key() const {
    std::string key;
    append_field(key, brokers);
    append_field(key, compression);
    append_field(key, acks);
    append_field(key, idempotence ? "1" : "0");
    append_field(key, std::to_string(linger_ms));
    append_field(key, std::to_string(delivery_timeout_ms));
    append_field(key, std::to_string(queue_kbytes));
    auto sorted = properties;
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [name, value] : sorted) {
        append_field(key, name);
        append_field(key, value);
    }
    return key;
}

std::string ClusterSettings::describe() const {
    std::string out = "brokers=" + brokers + " compression=" + compression + " acks=" + acks +
                      " idempotence=" + (idempotence ? "true" : "false") +
                      " linger_ms=" + std::to_string(linger_ms) +
                      " delivery_timeout_ms=" + std::to_string(delivery_timeout_ms) +
                      " queue.buffering.max.kbytes=" + std::to_string(queue_kbytes);
    for (const auto& [name, value] : properties) {
        out += " " + name + "=" + (is_secret_property(name) ? std::string("***") : value);
    }
    return out;
}

int ClusterSettings::apply(rd_kafka_conf_t* conf, const ReportFn& report) const {
    // Nothing reaches librdkafka while a property the operator did not allow is set.
    int problems = check_allowed(report);
    if (problems > 0) return problems;
    std::array<char, 512> errstr{};
    const auto set = [&](const std::string& key, const std::string& name,
                         const std::string& value) {
        errstr[0] = '\0';
        if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), errstr.data(), errstr.size()) !=
            RD_KAFKA_CONF_OK) {
            ++problems;
            std::string why = errstr.data();
            if (is_secret_property(name)) why = redact(std::move(why), value);
            report(key, why);
        }
    };
    set("brokers", "bootstrap.servers", brokers);
    set("compression", "compression.type", compression);
    set("acks", "acks", acks);
    set("idempotence", "enable.idempotence", idempotence ? "true" : "false");
    set("linger_ms", "linger.ms", std::to_string(linger_ms));
    set("delivery_timeout_ms", "message.timeout.ms", std::to_string(delivery_timeout_ms));
    // Before `properties`, which override them when set there.
    set("properties", "queue.buffering.max.kbytes", std::to_string(queue_kbytes));
    for (const auto& d : kDefaultProperties) set("properties", d.property, d.value);
    for (const auto& [name, value] : properties) {
        const auto owned = std::find_if(kOwnedProperties.begin(), kOwnedProperties.end(),
                                        [&](const OwnedProperty& p) { return p.property == name; });
        if (owned != kOwnedProperties.end()) {
            ++problems;
            report("properties." + name, "'" + name + "' is set by the option `" +
                                             std::string(owned->option) +
                                             "`; set it there instead");
            continue;
        }
        set("properties." + name, name, value);
    }
    return problems;
}

int ClusterSettings::check_consistency(const ReportFn& report) const {
    int problems = 0;
    if (idempotence && acks != "all") {
        ++problems;
        report("acks", "idempotence: true requires acks: all (got " + acks +
                           "); set acks: all or idempotence: false");
    }
    if (delivery_timeout_ms <= linger_ms) {
        ++problems;
        report("delivery_timeout_ms",
               "must be greater than linger_ms (" + std::to_string(linger_ms) + ")");
    }
    return problems;
}

}  // namespace sluice::plugins::kafka

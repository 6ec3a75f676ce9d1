// The settings that decide which librdkafka producer a route uses. Routes whose settings are
// equal share one producer, so everything that reaches rd_kafka_conf_set lives here and
// nothing else does.
#pragma once

#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <functional>
#include <sluice/sdk.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::plugins::kafka {

/// Receives one configuration problem: the option it belongs to ("acks",
/// "properties.linger.ms") and what is wrong.
using ReportFn = std::function<void(const std::string& key, const std::string& message)>;

struct ClusterSettings {
    std::string brokers;
    std::string compression = "none";
    std::string acks = "all";
    bool idempotence = true;
    std::int64_t linger_ms = 5;
    std::int64_t delivery_timeout_ms = 30000;
    /// queue.buffering.max.kbytes unless `properties` sets it (queue_kbytes_for()).
    std::uint64_t queue_kbytes = 65536;
    /// Passed to rd_kafka_conf_set as written, in manifest order.
    std::vector<std::pair<std::string, std::string>> properties;
    /// Privileged properties (they load code, run commands, touch files) that the operator
    /// allows routes to set: the host-only option `allow_properties`.
    std::vector<std::string> allowed;

    /// Reads the options; throws sdk::ConfigError naming the option.
    static ClusterSettings from_config(const sdk::Config& config);

    /// Equal for settings that may share a producer; property order does not matter. Holds
    /// secrets: never log it.
    std::string canonical_key() const;

    /// One line for logs, with the values of secret-looking properties masked.
    std::string describe() const;

    /// Reports each privileged property that is set and not allowed, and each allowed name
    /// that is not a privileged property. Returns the number of reports.
    int check_allowed(const ReportFn& report) const;

    /// Sets every option on `conf`, reporting each value librdkafka refuses and each property
    /// that duplicates one of the plugin's own options. Sets nothing when check_allowed()
    /// reports anything. Returns the number of reports.
    int apply(rd_kafka_conf_t* conf, const ReportFn& report) const;

    /// Cross-field rules librdkafka would only enforce when the producer is created.
    int check_consistency(const ReportFn& report) const;
};

/// The producer queue's bound (queue.buffering.max.kbytes) for a process whose memory budget
/// leaves `budget_bytes` beyond the routes' buffers (0: unknown): a quarter of that, from
/// 1 MiB to 64 MiB. A quarter: the budget is the whole process's, and several producers and
/// other plugins share it.
std::uint64_t queue_kbytes_for(std::uint64_t budget_bytes);

/// True for property names whose values must never appear in logs or messages.
bool is_secret_property(std::string_view name);

/// What a privileged librdkafka property does ("loads a library into the process"), or
/// nullptr for any other property.
const char* privileged_property(std::string_view name);

}  // namespace sluice::plugins::kafka

// Metrics a plugin instance publishes (ABI 1.4): give the class a member
//
//   void metrics(sluice::sdk::Metrics& out) const;
//
// and SLUICE_MODULE wires it. The host calls it when it is scraped, from its admin thread, at
// the same time as the instance's other calls: read atomics, never wait.
#ifndef SLUICE_SDK_METRICS_HPP
#define SLUICE_SDK_METRICS_HPP

#include <cstdint>
#include <string>

#include "sluice/abi.h"

namespace sluice::sdk {

/// Writes figures to the host, which publishes `name` as `sluice_<name>` with the labels
/// route, stage and plugin (and `label`, if given). Names: [a-z][a-z0-9_]*, unit in the name,
/// counters end in `_total`.
class Metrics {
public:
    explicit Metrics(const sluice_metric_writer* out) : out_(out) {}

    /// Something that only grows while the instance lives (connects, delivery errors).
    void counter(const char* name, const char* help, std::uint64_t value) const {
        put(name, help, SLUICE_METRIC_COUNTER, static_cast<double>(value), nullptr, nullptr);
    }
    void counter(const char* name, const char* help, std::uint64_t value, const char* label,
                 const std::string& label_value) const {
        put(name, help, SLUICE_METRIC_COUNTER, static_cast<double>(value), label,
            label_value.c_str());
    }
    /// A current value (connected, queue depth).
    void gauge(const char* name, const char* help, double value) const {
        put(name, help, SLUICE_METRIC_GAUGE, value, nullptr, nullptr);
    }
    void gauge(const char* name, const char* help, double value, const char* label,
               const std::string& label_value) const {
        put(name, help, SLUICE_METRIC_GAUGE, value, label, label_value.c_str());
    }

private:
    void put(const char* name, const char* help, sluice_metric_type type, double value,
             const char* label, const char* label_value) const {
        if (out_ == nullptr || out_->put == nullptr) return;
        sluice_metric m{};
        m.struct_size = sizeof m;
        m.name = name;
        m.help = help;
        m.type = static_cast<std::uint32_t>(type);
        m.value = value;
        m.label_name = label;
        m.label_value = label_value;
        out_->put(out_->ctx, &m);
    }

    const sluice_metric_writer* out_;
};

}  // namespace sluice::sdk

#endif  // SLUICE_SDK_METRICS_HPP

// One created plugin instance. Holds its library first, so the library is released last.
#pragma once

#include <memory>
#include <string>

#include "sluice/core/plugin_registry.hpp"
#include "sluice/core/stage_config.hpp"

namespace sluice {

/// A status other than OK from a plugin call, with the plugin's message.
struct StageFailure {
    sluice_status status;
    std::string message;
};

class PluginInstance {
public:
    /// Creates the instance; `host` must outlive it. Throws StageFailure.
    PluginInstance(const PluginInfo& plugin, const StageConfig& config,
                   const sluice_host_api* host);
    ~PluginInstance();
    PluginInstance(const PluginInstance&) = delete;
    PluginInstance& operator=(const PluginInstance&) = delete;

    sluice_status start(const sluice_emitter* out, std::string& error);
    sluice_status process(const sluice_batch& batch, const sluice_emitter* out, std::string& error);
    sluice_status stop(uint32_t deadline_ms, std::string& error);
    /// Sources built against ABI >= 1.1 may hold their input back at its origin.
    bool can_hold_input() const { return descriptor_.hold_input != nullptr; }
    void hold_input(bool hold) {
        if (descriptor_.hold_input != nullptr && started_) descriptor_.hold_input(instance_, hold);
    }
    /// Sinks built against ABI >= 1.2 may take batches without waiting for their delivery.
    bool can_submit() const { return descriptor_.submit != nullptr; }
    sluice_status submit(const sluice_batch& batch, std::uint64_t token,
                         const sluice_completion* done, std::string& error);
    /// Asks a process() call in progress on another thread to return early (ABI 1.1).
    bool can_interrupt() const { return descriptor_.interrupt != nullptr; }
    void interrupt() {
        if (descriptor_.interrupt != nullptr) descriptor_.interrupt(instance_);
    }
    /// The instance's own figures (ABI 1.4); nothing from a plugin without the callback.
    void metrics(const sluice_metric_writer* out) const {
        if (descriptor_.metrics != nullptr) descriptor_.metrics(instance_, out);
    }

private:
    std::shared_ptr<PluginLibrary> library_;  // first: destroyed last
    // A copy: the instance must not depend on the registry that created it.
    sluice_plugin_descriptor descriptor_;
    void* instance_ = nullptr;
    bool started_ = false;
};

}  // namespace sluice

#include "sluice/core/plugin_instance.hpp"

#include <cstring>

namespace sluice {

namespace {

sluice_status normalise(sluice_status s) {
    // A plugin returning garbage is treated as a fatal bug of that plugin, not of the host.
    return s >= SLUICE_OK && s <= SLUICE_FATAL ? s : SLUICE_FATAL;
}

std::string message_of(const sluice_error& e, sluice_status s) {
    if (e.message[0] != '\0') return std::string(e.message, strnlen(e.message, sizeof e.message));
    return s == SLUICE_RETRY ? "retry requested" : "failed without a message";
}

}  // namespace

PluginInstance::PluginInstance(const PluginInfo& plugin, const StageConfig& config,
                               const sluice_host_api* host)
    : library_(plugin.library), descriptor_(plugin.descriptor) {
    sluice_error err{};
    const auto s = normalise(descriptor_.create(host, config.c(), &instance_, &err));
    if (s != SLUICE_OK || instance_ == nullptr) {
        instance_ = nullptr;
        throw StageFailure{s == SLUICE_OK ? SLUICE_FATAL : s,
                           "create failed: " + message_of(err, s)};
    }
}

PluginInstance::~PluginInstance() {
    if (instance_ != nullptr) descriptor_.destroy(instance_);
}

sluice_status PluginInstance::start(const sluice_emitter* out, std::string& error) {
    sluice_error err{};
    const auto s = normalise(descriptor_.start(instance_, out, &err));
    if (s != SLUICE_OK) {
        error = message_of(err, s);
    } else {
        started_ = true;
    }
    return s;
}

sluice_status PluginInstance::process(const sluice_batch& batch, const sluice_emitter* out,
                                      std::string& error) {
    sluice_error err{};
    const auto s = normalise(descriptor_.process(instance_, &batch, out, &err));
    if (s != SLUICE_OK) error = message_of(err, s);
    return s;
}

sluice_status PluginInstance::submit(const sluice_batch& batch, std::uint64_t token,
                                     const sluice_completion* done, std::string& error) {
    sluice_error err{};
    const auto s = normalise(descriptor_.submit(instance_, &batch, token, done, &err));
    if (s != SLUICE_OK) error = message_of(err, s);
    return s;
}

sluice_status PluginInstance::stop(uint32_t deadline_ms, std::string& error) {
    if (!started_) return SLUICE_OK;
    started_ = false;
    sluice_error err{};
    const auto s = normalise(descriptor_.stop(instance_, deadline_ms, &err));
    if (s != SLUICE_OK) error = message_of(err, s);
    return s;
}

}  // namespace sluice

// Write a plugin as a plain C++ class; SLUICE_MODULE turns it into the C ABI of abi.h.
//
//   class MySink : public sluice::sdk::Sink {
//   public:
//       static sluice::sdk::Spec spec();                    // id, version, options
//       MySink(const sluice::sdk::Config&, sluice::sdk::Host&);
//       sluice::sdk::Status write(const sluice::sdk::BatchView&, sluice::sdk::Emitter&) override;
//   };
//   SLUICE_MODULE("my-module", MySink)
//
// Optional: `static void validate(const Config&, Diagnostics&)` for cross-field checks.
// Optional, sources: `void hold_input(bool hold)` for flow control (ABI 1.1): hold back input at
// its origin while the route's buffer is full; emit() then never waits.
// Optional, transforms and sinks: `void interrupt()` (ABI 1.1), called from another thread to
// end a process()/write() in progress early (a sink returns retry for what it could not confirm).
// Optional, sinks: `Status submit(const BatchView&, Completion done)` (ABI 1.2), pipelined
// delivery: take the batch, return at once, and finish `done` when the destination answered
// (see Completion). write() stays mandatory: the host uses it for dead letters and older hosts.
// Optional, every kind: `void metrics(Metrics& out) const` (ABI 1.4), the instance's own figures
// (connections, queue depths) for the host's /metrics; see sluice/sdk/metrics.hpp.
// Every exception thrown by plugin code is caught here and becomes a status with its message:
// sdk::Retry -> SLUICE_RETRY, sdk::Fatal -> SLUICE_FATAL, anything else -> SLUICE_ERROR
// (SLUICE_FATAL from create: an instance that cannot be built is not retried sooner).
#ifndef SLUICE_SDK_PLUGIN_HPP
#define SLUICE_SDK_PLUGIN_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "sluice/abi.h"
#include "sluice/sdk/config.hpp"
#include "sluice/sdk/message.hpp"
#include "sluice/sdk/metrics.hpp"

namespace sluice::sdk {

enum class Status : int {
    ok = SLUICE_OK,
    retry = SLUICE_RETRY,
    error = SLUICE_ERROR,
    fatal = SLUICE_FATAL
};

/// Throw to ask the host to retry the same input after a back-off.
class Retry : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};
/// Throw when the instance is unusable: the route fails and is restarted.
class Fatal : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Host services for one plugin instance. THREAD: every member may be called from any thread.
class Host {
public:
    explicit Host(const sluice_host_api* api) : api_(api) {}

    void log(sluice_log_level level, const std::string& message) const {
        if (api_ != nullptr && api_->log != nullptr) {
            api_->log(api_->ctx, level, message.c_str());
        }
    }
    bool enabled(sluice_log_level level) const {
        return api_ != nullptr && api_->log_enabled != nullptr &&
               api_->log_enabled(api_->ctx, level) != 0;
    }
    void debug(const std::string& m) const { log(SLUICE_LOG_DEBUG, m); }
    void info(const std::string& m) const { log(SLUICE_LOG_INFO, m); }
    void warn(const std::string& m) const { log(SLUICE_LOG_WARN, m); }
    void error(const std::string& m) const { log(SLUICE_LOG_ERROR, m); }

    /// Connection health: Status::ok, Status::retry (degraded, with reason), Status::fatal.
    void report_state(Status state, const std::string& reason = {}) const {
        if (api_ != nullptr && api_->report_state != nullptr) {
            api_->report_state(api_->ctx, static_cast<sluice_status>(state),
                               reason.empty() ? nullptr : reason.c_str());
        }
    }

    /// The route's max_payload_bytes; 0 when the host is older than ABI 1.1 (unknown).
    std::uint64_t max_payload_bytes() const {
        if (api_ == nullptr ||
            api_->struct_size < offsetof(sluice_host_api, max_payload_bytes) + sizeof(uint64_t)) {
            return 0;
        }
        return api_->max_payload_bytes;
    }

    /// The process's memory budget left beyond the routes' buffers (abi.h); 0 when the host
    /// is older than ABI 1.3 (unknown).
    std::uint64_t memory_budget_bytes() const {
        if (api_ == nullptr ||
            api_->struct_size < offsetof(sluice_host_api, memory_budget_bytes) + sizeof(uint64_t)) {
            return 0;
        }
        return api_->memory_budget_bytes;
    }

private:
    const sluice_host_api* api_;
};

/// How a stage passes messages on; see sluice_emitter in abi.h for threads and blocking.
class Emitter {
public:
    explicit Emitter(const sluice_emitter* e) : e_(e) {}
    Status emit(const sluice_message& m) const {
        return static_cast<Status>(e_->emit(e_->ctx, &m));
    }
    void reject(std::size_t index, Status status, const std::string& reason) const {
        e_->reject(e_->ctx, index, static_cast<sluice_status>(status), reason.c_str());
    }
    void reject(std::size_t index, const std::string& reason) const {
        reject(index, Status::error, reason);
    }
    void end_of_input() const { e_->end_of_input(e_->ctx); }

private:
    const sluice_emitter* e_;
};

/// Where validate() reports problems; `key` names the option ("properties.linger.ms").
class Diagnostics {
public:
    explicit Diagnostics(const sluice_diagnostics* d) : d_(d) {}
    void report(const std::string& key, const std::string& message) {
        ++count_;
        d_->report(d_->ctx, key.c_str(), message.c_str());
    }
    int count() const { return count_; }

private:
    const sluice_diagnostics* d_;
    int count_ = 0;
};

namespace detail {

inline constexpr const char* kDroppedCompletion =
    "the sink dropped the batch without completing it";

// What a Completion and the submit() adapter share. The adapter keeps a reference so that a
// submit() that throws or answers "retry" can disarm the Completion wherever it went: the ABI
// allows no complete() for a batch that submit() did not take.
struct CompletionState {
    struct Reject {
        std::size_t index;
        Status status;
        std::string reason;
    };

    CompletionState(const sluice_completion* d, std::uint64_t t) : done(d), token(t) {}

    // Calls the host once; `mu` held. Reasons are copied by the host before it returns.
    void complete_locked(Status status, const std::string& reason) {
        std::vector<sluice_reject> list;
        list.reserve(rejects.size());
        for (const auto& r : rejects) {
            list.push_back({r.index, static_cast<sluice_status>(r.status),
                            r.reason.empty() ? nullptr : r.reason.c_str()});
        }
        settled = true;  // only now: nothing above may leave the batch marked but never sent
        done->complete(done->ctx, token, static_cast<sluice_status>(status),
                       reason.empty() ? nullptr : reason.c_str(), list.size(), list.data());
        rejects.clear();
    }

    std::mutex mu;
    const sluice_completion* done;
    std::uint64_t token;
    std::vector<Reject> rejects;
    bool settled = false;   // completed, or disarmed by the adapter
    bool in_submit = true;  // the submit() call that took it has not returned yet
    bool dropped = false;   // destroyed without complete() while in_submit
};

}  // namespace detail

/// The outcome of one batch a sink took with submit(): collect the messages that were not
/// confirmed with reject(), then finish with complete(), once, when the destination answered.
///
/// THREAD: any, e.g. a client library's callback thread; one thread at a time uses a given
/// Completion (moving it hands it over to another thread). It may also be completed inside
/// submit() itself.
/// OWNERSHIP: movable, not copyable; the host's completion table behind it stays valid until
/// the instance's stop() returns, so every Completion must be finished (or destroyed) by then.
/// A Completion destroyed without complete() completes its batch as Status::retry with a
/// reason saying so, so a batch is never silently lost; a moved-from or finished one does
/// nothing. If submit() throws or answers retry, its Completion is disarmed: complete() on it
/// (or on what it was moved to) then does nothing, as the ABI wants no outcome for a batch that
/// was not taken.
/// May block: no; complete() only hands the outcome to the host.
class Completion {
public:
    Completion() = default;
    /// Made by SLUICE_MODULE's submit adapter, not by plugins.
    explicit Completion(std::shared_ptr<detail::CompletionState> state)
        : state_(std::move(state)) {}
    Completion(Completion&&) noexcept = default;
    Completion& operator=(Completion&& other) noexcept {
        if (this != &other) {
            abandon();
            state_ = std::move(other.state_);
        }
        return *this;
    }
    Completion(const Completion&) = delete;
    Completion& operator=(const Completion&) = delete;
    ~Completion() { abandon(); }

    /// Message `index` of the submitted batch was not confirmed: Status::retry sends it again,
    /// Status::error hands it to the route's error policy. Reported with complete().
    void reject(std::size_t index, Status status, std::string reason) {
        if (!state_ || status == Status::ok) return;
        std::lock_guard lock(state_->mu);
        if (!state_->settled) state_->rejects.push_back({index, status, std::move(reason)});
    }
    void reject(std::size_t index, std::string reason) {
        reject(index, Status::error, std::move(reason));
    }

    /// Settles the batch: Status::ok, every message not rejected is confirmed; retry, the
    /// whole batch is sent again; error, every message goes to the error policy; fatal, the
    /// instance is unusable. Calls the host exactly once; later calls do nothing.
    void complete(Status status = Status::ok, std::string_view reason = {}) {
        if (!state_) return;
        {
            std::lock_guard lock(state_->mu);
            if (!state_->settled) state_->complete_locked(status, std::string(reason));
        }
        state_.reset();  // not before: should that throw, the destructor still completes it
    }

    /// True until complete() (or a move, or the adapter disarming it after submit()).
    bool pending() const {
        if (!state_) return false;
        std::lock_guard lock(state_->mu);
        return !state_->settled;
    }

private:
    void abandon() noexcept {
        if (!state_) return;
        const auto state = std::move(state_);
        try {
            std::lock_guard lock(state->mu);
            if (state->settled) return;
            // Still inside submit(): the adapter decides after it returns (an exception may be
            // unwinding through here, and then nothing may be completed).
            if (state->in_submit) {
                state->dropped = true;
                return;
            }
            state->complete_locked(Status::retry, detail::kDroppedCompletion);
        } catch (...) {  // out of memory for the reject list: nothing better to do here
        }
    }

    std::shared_ptr<detail::CompletionState> state_;
};

/// A source produces messages from its own threads (or a client library's) through the emitter
/// given to start(), until stop() returns.
class Source {
public:
    virtual ~Source() = default;
    virtual void start(Emitter out) = 0;
    /// Stop emitting and join every thread started; return within `deadline`.
    virtual void stop(std::chrono::milliseconds deadline) = 0;
};

/// A transform turns each input message into zero or more output messages.
class Transform {
public:
    virtual ~Transform() = default;
    virtual void start() {}
    /// Emit outputs through `out`; report a bad input with out.reject(index, reason).
    virtual void process(const BatchView& in, Emitter& out) = 0;
    virtual void stop(std::chrono::milliseconds /*deadline*/) {}
};

/// A sink delivers messages; write() returns Status::ok only once the destination confirmed
/// every message it did not reject.
///
/// Pipelined delivery (ABI 1.2, optional): a sink that also defines
///
///     Status submit(const BatchView& batch, Completion done);   // or void submit(...)
///
/// lets the host keep several batches of its route in flight. submit() sends the batch
/// (copy what you keep: `batch` is valid only during the call) and returns without waiting;
/// `done` is finished later, from any thread, with the per-message rejects (see Completion).
/// Send batches in the order they were submitted. Returning Status::ok (or from a void
/// submit(), returning) means the batch was taken; Status::retry or throwing sdk::Retry means
/// "cannot take it now" (the host submits it again after a completion or a back-off, and `done`
/// is disarmed); Status::error completes it as error (every message to the error policy);
/// Status::fatal or any other exception fails the instance (FATAL with the message; `done` is
/// disarmed). If `done` was already completed when submit() throws, the batch stays settled as
/// completed and the failure is reported through Host::report_state(Status::fatal).
/// THREAD: the route's executor (a shared thread pool), never two calls at once, never at the
/// same time as write(). May block: no: answer retry instead of waiting for room.
/// A sink's interrupt() then settles every batch in flight at once (unconfirmed messages as
/// retry), and stop() finishes every Completion before it returns.
class Sink {
public:
    virtual ~Sink() = default;
    virtual void start() {}
    virtual Status write(const BatchView& in, Emitter& results) = 0;
    /// Flush what is pending and join every thread started; return within `deadline`.
    virtual void stop(std::chrono::milliseconds /*deadline*/) {}
};

namespace detail {

inline void set_error(sluice_error* error, const char* message) {
    if (error == nullptr) return;
    std::snprintf(error->message, sizeof(error->message), "%s", message);
}

// Runs plugin code, turning exceptions into statuses; `fallback` is the status for an
// exception that is neither Retry nor Fatal.
template <class F>
sluice_status guarded(sluice_error* error, sluice_status fallback, F&& f) noexcept {
    try {
        return f();
    } catch (const Retry& e) {
        set_error(error, e.what());
        return SLUICE_RETRY;
    } catch (const Fatal& e) {
        set_error(error, e.what());
        return SLUICE_FATAL;
    } catch (const std::exception& e) {
        set_error(error, e.what());
        return fallback;
    } catch (...) {
        set_error(error, "unknown exception");
        return fallback;
    }
}

template <class T>
struct Instance {
    Host host;
    std::unique_ptr<T> plugin;
};

template <class T>
concept HasValidate = requires(const Config& c, Diagnostics& d) {
    T::validate(c, d);
};

/// Sources with `void hold_input(bool hold)` take part in flow control (ABI 1.1).
template <class T>
concept HasHoldInput = requires(T& t, bool hold) {
    t.hold_input(hold);
};

/// Transforms and sinks with `void interrupt()` can be asked to end a process()/write() in
/// progress early (ABI 1.1). Called from another thread: set a flag, wake your wait, return.
template <class T>
concept HasInterrupt = requires(T& t) {
    t.interrupt();
};

/// Sinks with `submit(const BatchView&, Completion)` deliver pipelined (ABI 1.2).
template <class T>
concept HasSubmit = requires(T& t, const BatchView& b, Completion c) {
    t.submit(b, std::move(c));
};

/// Plugins with `void metrics(Metrics&) const` publish figures of their own (ABI 1.4).
template <class T>
concept HasMetrics = requires(const T& t, Metrics& m) {
    t.metrics(m);
};

// Turns what a submit() call ended with into the ABI's answer, consistently with what
// happened to its Completion meanwhile (completed inside the call, dropped, or still out).
inline sluice_status finish_submit(CompletionState& state, sluice_status returned,
                                   sluice_error* error, const Host& host) {
    std::lock_guard lock(state.mu);
    state.in_submit = false;
    switch (returned) {
        case SLUICE_OK:
            if (!state.settled && state.dropped) {
                state.complete_locked(Status::retry, kDroppedCompletion);
            }
            return SLUICE_OK;
        case SLUICE_ERROR:
            if (!state.settled) state.complete_locked(Status::error, "submit() refused the batch");
            return SLUICE_OK;
        default:
            break;
    }
    if (!state.settled) {
        state.settled = true;  // disarmed: the host expects no outcome for this batch
        return returned;
    }
    // Completed before the call gave up: the batch was taken after all.
    if (returned == SLUICE_FATAL) {
        host.report_state(Status::fatal, error != nullptr ? error->message : "submit() failed");
    }
    return SLUICE_OK;
}

template <class T>
constexpr sluice_kind kind_of() {
    if constexpr (std::is_base_of_v<Source, T>) {
        return SLUICE_KIND_SOURCE;
    } else if constexpr (std::is_base_of_v<Transform, T>) {
        return SLUICE_KIND_TRANSFORM;
    } else {
        static_assert(std::is_base_of_v<Sink, T>,
                      "a plugin derives from Source, Transform or Sink");
        return SLUICE_KIND_SINK;
    }
}

template <class T>
const sluice_plugin_descriptor* descriptor() {
    struct Holder {
        Spec spec = T::spec();
        sluice_plugin_descriptor d{};
        Holder() {
            d.struct_size = sizeof(sluice_plugin_descriptor);
            d.kind = kind_of<T>();
            spec.lower(d);
            if constexpr (HasValidate<T>) {
                d.validate = [](const sluice_config* c, const sluice_diagnostics* diag) {
                    Diagnostics diagnostics(diag);
                    sluice_error ignored{};
                    const sluice_status s = guarded(&ignored, SLUICE_ERROR, [&] {
                        T::validate(Config(*c), diagnostics);
                        return SLUICE_OK;
                    });
                    if (s != SLUICE_OK) diagnostics.report("", ignored.message);
                    return diagnostics.count() == 0 ? SLUICE_OK : SLUICE_ERROR;
                };
            }
            d.create = [](const sluice_host_api* host, const sluice_config* config, void** instance,
                          sluice_error* error) {
                return guarded(error, SLUICE_FATAL, [&] {
                    auto inst = std::make_unique<Instance<T>>(Instance<T>{Host(host), nullptr});
                    inst->plugin = std::make_unique<T>(Config(*config), inst->host);
                    *instance = inst.release();
                    return SLUICE_OK;
                });
            };
            d.start = [](void* instance, const sluice_emitter* out, sluice_error* error) {
                auto* inst = static_cast<Instance<T>*>(instance);
                return guarded(error, SLUICE_FATAL, [&] {
                    if constexpr (std::is_base_of_v<Source, T>) {
                        inst->plugin->start(Emitter(out));
                    } else {
                        inst->plugin->start();
                    }
                    return SLUICE_OK;
                });
            };
            if constexpr (!std::is_base_of_v<Source, T>) {
                d.process = [](void* instance, const sluice_batch* batch, const sluice_emitter* out,
                               sluice_error* error) {
                    auto* inst = static_cast<Instance<T>*>(instance);
                    return guarded(error, SLUICE_ERROR, [&] {
                        Emitter emitter(out);
                        if constexpr (std::is_base_of_v<Transform, T>) {
                            inst->plugin->process(BatchView(*batch), emitter);
                            return SLUICE_OK;
                        } else {
                            return static_cast<sluice_status>(
                                inst->plugin->write(BatchView(*batch), emitter));
                        }
                    });
                };
            }
            if constexpr (std::is_base_of_v<Sink, T> && HasSubmit<T>) {
                d.submit = [](void* instance, const sluice_batch* batch, uint64_t token,
                              const sluice_completion* done, sluice_error* error) {
                    auto* inst = static_cast<Instance<T>*>(instance);
                    std::shared_ptr<CompletionState> state;
                    const sluice_status s = guarded(error, SLUICE_FATAL, [&] {
                        state = std::make_shared<CompletionState>(done, token);
                        Completion completion(state);
                        using R = decltype(inst->plugin->submit(BatchView(*batch),
                                                                std::move(completion)));
                        if constexpr (std::is_void_v<R>) {
                            inst->plugin->submit(BatchView(*batch), std::move(completion));
                            return SLUICE_OK;
                        } else {
                            return static_cast<sluice_status>(
                                inst->plugin->submit(BatchView(*batch), std::move(completion)));
                        }
                    });
                    if (state == nullptr) return s;  // no Completion was ever made
                    return finish_submit(*state, s, error, inst->host);
                };
            }
            d.stop = [](void* instance, uint32_t deadline_ms, sluice_error* error) {
                auto* inst = static_cast<Instance<T>*>(instance);
                return guarded(error, SLUICE_ERROR, [&] {
                    inst->plugin->stop(std::chrono::milliseconds(deadline_ms));
                    return SLUICE_OK;
                });
            };
            if constexpr (std::is_base_of_v<Source, T> && HasHoldInput<T>) {
                d.hold_input = [](void* instance, int hold) {
                    auto* inst = static_cast<Instance<T>*>(instance);
                    sluice_error ignored{};
                    // Nothing may unwind into the host; a source that cannot hold back keeps
                    // receiving and the route's headroom and counters take over.
                    guarded(&ignored, SLUICE_ERROR, [&] {
                        inst->plugin->hold_input(hold != 0);
                        return SLUICE_OK;
                    });
                };
            }
            if constexpr (!std::is_base_of_v<Source, T> && HasInterrupt<T>) {
                d.interrupt = [](void* instance) {
                    auto* inst = static_cast<Instance<T>*>(instance);
                    sluice_error ignored{};
                    guarded(&ignored, SLUICE_ERROR, [&] {
                        inst->plugin->interrupt();
                        return SLUICE_OK;
                    });
                };
            }
            if constexpr (HasMetrics<T>) {
                d.metrics = [](void* instance, const sluice_metric_writer* out) {
                    const auto* inst = static_cast<const Instance<T>*>(instance);
                    Metrics metrics(out);
                    // A scrape must not take the process down: what was written before a
                    // throw is kept, the rest is missing from this scrape only.
                    try {
                        std::as_const(*inst->plugin).metrics(metrics);
                    } catch (...) {
                    }
                };
            }
            d.destroy = [](void* instance) {
                // A destructor that throws would terminate; the SDK's contract is that
                // destroy never fails, so swallow and move on.
                try {
                    delete static_cast<Instance<T>*>(instance);
                } catch (...) {
                }
            };
        }
    };
    static const Holder holder;
    return &holder.d;
}

template <class... Plugins>
const sluice_module* module(const char* name) {
    static const sluice_plugin_descriptor* const plugins[] = {descriptor<Plugins>()...};
    static const sluice_module m{sizeof(sluice_module), SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR, name,
                                 sizeof...(Plugins),    plugins};
    return &m;
}

}  // namespace detail
}  // namespace sluice::sdk

/// Declares the library's entry point, listing its plugin classes. Use once per library.
#define SLUICE_MODULE(NAME, ...)                                                                   \
    extern "C" __attribute__((visibility("default"))) const sluice_module* sluice_module_entry_v1( \
        void) {                                                                                    \
        return ::sluice::sdk::detail::module<__VA_ARGS__>(NAME);                                   \
    }

#endif  // SLUICE_SDK_PLUGIN_HPP

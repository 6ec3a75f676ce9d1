// Testing kit for plugin authors: run a plugin class through the real C ABI adapter without
// the `sluice` host. Header-only, standard library only.
//
//   sluice::sdk::testing::Harness<MyTransform> h({{"parse", "number"}});
//   h.process({sluice::sdk::testing::message("sensors/t/1", "21.5")});
//   REQUIRE(h.emitted().at(0).payload == R"({"value":21.5})");
//
// Pipelined sinks (submit, ABI 1.2):
//   auto s = h.submit({message("t", "a")});             // s.status, s.token
//   auto done = h.wait_completion(s.token);             // std::optional<Completed>
//   REQUIRE(done && done->status == SLUICE_OK && done->rejects.empty());
#ifndef SLUICE_SDK_TESTING_HPP
#define SLUICE_SDK_TESTING_HPP

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/sdk.hpp"

namespace sluice::sdk::testing {

/// A config value as a test writes it: a scalar, a list, or a map.
struct Value {
    std::string scalar;
    std::vector<std::string> items;
    std::vector<std::pair<std::string, std::string>> map;
    enum class Kind { scalar, list, map } kind = Kind::scalar;

    Value(const char* s) : scalar(s) {}             // NOLINT: implicit on purpose, for brace lists
    Value(std::string s) : scalar(std::move(s)) {}  // NOLINT
    Value(std::initializer_list<std::string> list) : items(list), kind(Kind::list) {}
    static Value of_map(std::vector<std::pair<std::string, std::string>> m) {
        Value v("");
        v.map = std::move(m);
        v.kind = Kind::map;
        return v;
    }
};

/// Builds a sluice_config the way the host would: the given values plus the spec's defaults
/// for scalars. No validation: the host does that; tests feed what validation would let
/// through.
class ConfigBuilder {
public:
    ConfigBuilder(const sluice_plugin_descriptor& d, std::map<std::string, Value> values,
                  std::string route = "test-route")
        : route_(std::move(route)) {
        for (std::size_t i = 0; i < d.n_fields; ++i) {
            const auto& f = *d.fields[i];
            auto it = values.find(f.name);
            if (it != values.end()) {
                add(f.name, f.type, it->second);
                values.erase(it);
            } else if (f.default_value != nullptr) {
                add(f.name, f.type, default_of(f));
            }
        }
        if (!values.empty()) {
            throw std::invalid_argument("option '" + values.begin()->first +
                                        "' is not in the plugin's spec");
        }
        finish();
    }
    ConfigBuilder(const ConfigBuilder&) = delete;
    ConfigBuilder& operator=(const ConfigBuilder&) = delete;

    const sluice_config* get() const { return &config_; }

private:
    // Scalar defaults are literal text; list and map defaults are YAML flow collections
    // ("[a, b]", "{k: v}"), of which the flat forms specs use are understood here.
    static Value default_of(const sluice_field_spec& f) {
        const std::string text = f.default_value;
        if (f.type != SLUICE_FIELD_LIST && f.type != SLUICE_FIELD_MAP &&
            f.type != SLUICE_FIELD_TEMPLATE_MAP) {
            return Value(text);
        }
        const auto trim = [](std::string s) {
            const auto b = s.find_first_not_of(" \t");
            const auto e = s.find_last_not_of(" \t");
            s = b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
            if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front()) {
                s = s.substr(1, s.size() - 2);
            }
            return s;
        };
        std::vector<std::string> parts;
        const std::string inner = text.size() >= 2 ? text.substr(1, text.size() - 2) : "";
        std::size_t start = 0;
        while (start < inner.size()) {
            const auto comma = inner.find(',', start);
            parts.push_back(trim(inner.substr(start, comma - start)));
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
        std::erase_if(parts, [](const std::string& p) { return p.empty(); });
        if (f.type == SLUICE_FIELD_LIST) {
            Value v("");
            v.items = parts;
            v.kind = Value::Kind::list;
            return v;
        }
        std::vector<std::pair<std::string, std::string>> m;
        for (const auto& p : parts) {
            const auto colon = p.find(':');
            m.emplace_back(trim(p.substr(0, colon)),
                           colon == std::string::npos ? "" : trim(p.substr(colon + 1)));
        }
        return Value::of_map(std::move(m));
    }

    struct Stored {
        std::string key;
        uint32_t type;
        Value value;
        std::vector<const char*> items, values;
    };
    void add(const std::string& key, uint32_t type, const Value& v) {
        stored_.push_back({key, type, v, {}, {}});
    }
    void finish() {
        for (auto& s : stored_) {
            sluice_config_entry e{};
            e.key = s.key.c_str();
            e.type = s.type;
            if (s.value.kind == Value::Kind::scalar) {
                e.value = s.value.scalar.c_str();
            } else if (s.value.kind == Value::Kind::list) {
                for (auto& i : s.value.items) s.items.push_back(i.c_str());
            } else {
                for (auto& [k, v] : s.value.map) {
                    s.items.push_back(k.c_str());
                    s.values.push_back(v.c_str());
                }
            }
            e.n_items = s.items.size();
            e.items = s.items.data();
            e.item_values = s.values.empty() ? nullptr : s.values.data();
            entries_.push_back(e);
        }
        config_ = {sizeof(sluice_config), route_.c_str(), "test", entries_.size(), entries_.data()};
    }

    std::string route_;
    std::vector<Stored> stored_;
    std::vector<sluice_config_entry> entries_;
    sluice_config config_{};
};

/// Records what a plugin logs and reports. Thread-safe.
class FakeHost {
public:
    FakeHost() {
        api_.struct_size = sizeof api_;
        api_.abi_major = SLUICE_ABI_MAJOR;
        api_.abi_minor = SLUICE_ABI_MINOR;
        api_.ctx = this;
        api_.log = [](void* ctx, int level, const char* m) {
            auto* self = static_cast<FakeHost*>(ctx);
            // As a log that cannot keep up would (stderr into a full pipe): for tests that a
            // plugin never logs from a thread that must not wait.
            while (self->stall_logs_.load())
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            std::lock_guard lock(self->mu_);
            self->logs_.emplace_back(level, m);
        };
        api_.log_enabled = [](void*, int) { return 1; };
        api_.report_state = [](void* ctx, sluice_status s, const char* reason) {
            auto* self = static_cast<FakeHost*>(ctx);
            std::lock_guard lock(self->mu_);
            self->states_.emplace_back(s, reason ? reason : "");
        };
    }
    FakeHost(const FakeHost&) = delete;
    FakeHost& operator=(const FakeHost&) = delete;

    const sluice_host_api* api() const { return &api_; }
    /// The route limit the host announces (ABI 1.1); 0: unknown, as from an older host.
    void set_max_payload_bytes(std::uint64_t bytes) { api_.max_payload_bytes = bytes; }
    void set_memory_budget_bytes(std::uint64_t bytes) { api_.memory_budget_bytes = bytes; }
    /// While set, every log call waits.
    void stall_logs(bool stall) { stall_logs_.store(stall); }
    std::vector<std::pair<int, std::string>> logs() const {
        std::lock_guard lock(mu_);
        return logs_;
    }
    std::vector<std::pair<sluice_status, std::string>> states() const {
        std::lock_guard lock(mu_);
        return states_;
    }

private:
    sluice_host_api api_{};
    std::atomic<bool> stall_logs_{false};
    mutable std::mutex mu_;
    std::vector<std::pair<int, std::string>> logs_;
    std::vector<std::pair<sluice_status, std::string>> states_;
};

struct Rejection {
    std::size_t index;
    sluice_status status;
    std::string reason;
};

/// Captures what a stage emits and rejects. Thread-safe (sources emit from their threads).
class CaptureEmitter {
public:
    CaptureEmitter() {
        e_.struct_size = sizeof e_;
        e_.ctx = this;
        e_.emit = [](void* ctx, const sluice_message* m) {
            auto* self = static_cast<CaptureEmitter*>(ctx);
            std::lock_guard lock(self->mu_);
            if (self->refuse_) return SLUICE_RETRY;
            self->messages_.push_back(OwnedMessage::from(MessageView(*m)));
            return SLUICE_OK;
        };
        e_.reject = [](void* ctx, std::size_t index, sluice_status s, const char* reason) {
            auto* self = static_cast<CaptureEmitter*>(ctx);
            std::lock_guard lock(self->mu_);
            self->rejections_.push_back({index, s, reason ? reason : ""});
        };
        e_.end_of_input = [](void* ctx) {
            auto* self = static_cast<CaptureEmitter*>(ctx);
            std::lock_guard lock(self->mu_);
            self->ended_ = true;
        };
    }
    CaptureEmitter(const CaptureEmitter&) = delete;
    CaptureEmitter& operator=(const CaptureEmitter&) = delete;

    const sluice_emitter* get() const { return &e_; }
    std::vector<OwnedMessage> messages() const {
        std::lock_guard lock(mu_);
        return messages_;
    }
    std::vector<Rejection> rejections() const {
        std::lock_guard lock(mu_);
        return rejections_;
    }
    bool ended() const {
        std::lock_guard lock(mu_);
        return ended_;
    }
    /// While set, emit() answers SLUICE_RETRY, as a full route queue would.
    void refuse(bool on) {
        std::lock_guard lock(mu_);
        refuse_ = on;
    }
    void clear() {
        std::lock_guard lock(mu_);
        messages_.clear();
        rejections_.clear();
    }

private:
    sluice_emitter e_{};
    mutable std::mutex mu_;
    std::vector<OwnedMessage> messages_;
    std::vector<Rejection> rejections_;
    bool ended_ = false;
    bool refuse_ = false;
};

/// One `complete` call as a host receives it.
struct Completed {
    sluice_status status;
    std::string reason;
    std::vector<Rejection> rejects;
    std::thread::id thread;  // the thread that called complete
};

/// The sluice_completion a host hands to submit(): records every complete() by token and what
/// a correct sink must never do (complete a batch twice, complete one submit() did not take,
/// complete after stop() returned). Thread-safe; complete() never waits.
class CaptureCompletion {
public:
    CaptureCompletion() {
        c_.struct_size = sizeof c_;
        c_.ctx = this;
        c_.complete = [](void* ctx, std::uint64_t token, sluice_status status, const char* reason,
                         std::size_t n_rejects, const sluice_reject* rejects) {
            auto* self = static_cast<CaptureCompletion*>(ctx);
            Completed done{status, reason ? reason : "", {}, std::this_thread::get_id()};
            for (std::size_t i = 0; i < n_rejects; ++i) {
                done.rejects.push_back({rejects[i].index, rejects[i].status,
                                        rejects[i].reason ? rejects[i].reason : ""});
            }
            std::lock_guard lock(self->mu_);
            if (self->closed_) ++self->late_;
            auto it = self->taken_.find(token);
            if (it == self->taken_.end()) {
                ++self->unexpected_;
            } else if (it->second) {
                ++self->duplicates_;
            } else {
                it->second = true;
                self->done_[token] = std::move(done);
            }
            self->cv_.notify_all();
        };
    }
    CaptureCompletion(const CaptureCompletion&) = delete;
    CaptureCompletion& operator=(const CaptureCompletion&) = delete;

    const sluice_completion* get() const { return &c_; }

    /// The host's side of submit(): a batch with `token` was taken (SLUICE_OK).
    void taken(std::uint64_t token) {
        std::lock_guard lock(mu_);
        taken_.emplace(token, false);
    }
    /// submit() did not take `token` after all: a completion for it is unexpected.
    void forget(std::uint64_t token) {
        std::lock_guard lock(mu_);
        if (auto it = taken_.find(token); it != taken_.end() && !it->second) taken_.erase(it);
    }
    /// From now on every complete() counts as late (the instance's stop() returned).
    void close() {
        std::lock_guard lock(mu_);
        closed_ = true;
    }

    /// The first completion of `token`, waiting up to `timeout` for it.
    std::optional<Completed> wait(std::uint64_t token, std::chrono::milliseconds timeout) const {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, timeout, [&] { return done_.count(token) != 0; });
        const auto it = done_.find(token);
        if (it == done_.end()) return std::nullopt;
        return it->second;
    }
    std::optional<Completed> find(std::uint64_t token) const { return wait(token, {}); }
    /// Taken batches not completed yet.
    std::size_t pending() const {
        std::lock_guard lock(mu_);
        std::size_t n = 0;
        for (const auto& [token, completed] : taken_) n += completed ? 0 : 1;
        return n;
    }
    std::size_t duplicates() const {
        std::lock_guard lock(mu_);
        return duplicates_;
    }
    std::size_t unexpected() const {
        std::lock_guard lock(mu_);
        return unexpected_;
    }
    std::size_t late() const {
        std::lock_guard lock(mu_);
        return late_;
    }

private:
    sluice_completion c_{};
    mutable std::mutex mu_;
    mutable std::condition_variable cv_;
    std::map<std::uint64_t, bool> taken_;  // token -> completed
    std::map<std::uint64_t, Completed> done_;
    std::size_t duplicates_ = 0;
    std::size_t unexpected_ = 0;
    std::size_t late_ = 0;
    bool closed_ = false;
};

/// A message for tests.
inline OwnedMessage message(std::string topic, std::string payload) {
    OwnedMessage m;
    m.topic = std::move(topic);
    m.payload = std::move(payload);
    m.qos = 1;
    m.timestamp_ms = 1700000000000;
    return m;
}

/// One figure a plugin wrote through its metrics() callback (ABI 1.4).
struct MetricSample {
    std::string name;
    sluice_metric_type type;
    double value;
    std::string label_name;  // "" when none
    std::string label_value;
};

/// One problem a plugin's validate() reported: the option at fault ("" for none) and why.
struct Reported {
    std::string key;
    std::string message;
};

/// Drives one plugin class through its C descriptor: create, start, process, stop, destroy,
/// exactly as the host calls them.
template <class T>
class Harness {
public:
    using Options = std::initializer_list<std::pair<const std::string, Value>>;

    /// Runs the plugin's validate() as `sluice check` does and returns what it reported; a
    /// plugin that reports nothing must have returned SLUICE_OK, and the other way round.
    static std::vector<Reported> validate(std::map<std::string, Value> values) {
        const sluice_plugin_descriptor& d = *detail::descriptor<T>();
        std::vector<Reported> out;
        if (d.validate == nullptr) return out;
        ConfigBuilder config(d, std::move(values));
        const sluice_diagnostics diag{sizeof(sluice_diagnostics), &out,
                                      [](void* ctx, const char* key, const char* message) {
                                          static_cast<std::vector<Reported>*>(ctx)->push_back(
                                              {key ? key : "", message ? message : ""});
                                      }};
        const sluice_status s = d.validate(config.get(), &diag);
        if ((s == SLUICE_OK) != out.empty()) {
            out.push_back({"", "validate() returned a status that disagrees with its reports"});
        }
        return out;
    }

    /// What the host tells the plugin about its route.
    struct RouteLimits {
        std::uint64_t max_payload_bytes = 0;    // 0: unknown (a host older than ABI 1.1)
        std::uint64_t memory_budget_bytes = 0;  // 0: unknown (a host older than ABI 1.3)
    };

    /// Options as in a manifest, e.g. {{"parse", "csv"}, {"columns", {"a", "b"}}}; the route
    /// is named "test-route".
    Harness(Options values) : Harness(std::map<std::string, Value>(values)) {}
    explicit Harness(std::map<std::string, Value> values, RouteLimits limits = {})
        : d_(detail::descriptor<T>()), config_(*d_, std::move(values)) {
        host_.set_max_payload_bytes(limits.max_payload_bytes);
        host_.set_memory_budget_bytes(limits.memory_budget_bytes);
        sluice_error err{};
        if (d_->create(host_.api(), config_.get(), &instance_, &err) != SLUICE_OK) {
            throw std::runtime_error(std::string("create failed: ") + err.message);
        }
        if (d_->start(instance_, d_->kind == SLUICE_KIND_SOURCE ? out_.get() : nullptr, &err) !=
            SLUICE_OK) {
            d_->destroy(instance_);
            throw std::runtime_error(std::string("start failed: ") + err.message);
        }
    }
    ~Harness() {
        stop(std::chrono::milliseconds(1000));
        d_->destroy(instance_);
    }

    /// Stops the instance as the host does (once); the destructor then only destroys it.
    sluice_status stop(std::chrono::milliseconds deadline) {
        if (stopped_) return SLUICE_OK;
        stopped_ = true;
        sluice_error err{};
        const auto s = d_->stop(instance_, static_cast<std::uint32_t>(deadline.count()), &err);
        completions_.close();
        last_error_ = err.message;
        return s;
    }

    /// Sources: flow control through the descriptor, as the host calls it. False when the
    /// plugin does not take part (no hold_input exported).
    bool hold_input(bool hold) {
        if (d_->hold_input == nullptr) return false;
        d_->hold_input(instance_, hold ? 1 : 0);
        return true;
    }
    static bool can_hold_input() { return detail::descriptor<T>()->hold_input != nullptr; }

    /// Transforms and sinks: asks the process() in progress (on another thread) to end early,
    /// as the host does past a route's drain deadline. False when the plugin cannot be.
    bool interrupt() {
        if (d_->interrupt == nullptr) return false;
        d_->interrupt(instance_);
        return true;
    }
    Harness(const Harness&) = delete;
    Harness& operator=(const Harness&) = delete;

    /// What the instance publishes (ABI 1.4) right now, as a host's scrape would collect it;
    /// empty for a plugin without metrics().
    std::vector<MetricSample> metrics() const {
        std::vector<MetricSample> out;
        if (d_->metrics == nullptr) return out;
        const sluice_metric_writer w{
            sizeof(sluice_metric_writer), &out, [](void* ctx, const sluice_metric* m) {
                static_cast<std::vector<MetricSample>*>(ctx)->push_back(
                    {m->name, static_cast<sluice_metric_type>(m->type), m->value,
                     m->label_name ? m->label_name : "", m->label_value ? m->label_value : ""});
            }};
        d_->metrics(instance_, &w);
        return out;
    }
    /// The value of metric `name` (with that label value, when given); nullopt when absent.
    std::optional<double> metric(const std::string& name,
                                 const std::optional<std::string>& label_value = {}) const {
        for (const auto& m : metrics()) {
            if (m.name == name && (!label_value || m.label_value == *label_value)) return m.value;
        }
        return std::nullopt;
    }

    /// Transforms and sinks: one batch. Returns the status; `last_error()` has the message.
    sluice_status process(const std::vector<OwnedMessage>& batch) {
        std::vector<std::vector<sluice_header>> headers(batch.size());
        std::vector<sluice_message> views;
        for (std::size_t i = 0; i < batch.size(); ++i) views.push_back(batch[i].view(headers[i]));
        const sluice_batch b{sizeof(sluice_batch), sizeof(sluice_message), views.size(),
                             views.data()};
        sluice_error err{};
        const auto s = d_->process(instance_, &b, out_.get(), &err);
        last_error_ = err.message;
        return s;
    }

    /// Sinks with submit() (ABI 1.2): what one submit call answered; `token` identifies its
    /// completion (1, 2, ... in submission order).
    struct Submitted {
        sluice_status status;
        std::uint64_t token;
        std::string error;  // set when status is not SLUICE_OK
    };
    static bool can_submit() { return detail::descriptor<T>()->submit != nullptr; }

    /// Submits one batch as the host does (throws std::logic_error when the plugin has no
    /// submit). A batch taken (SLUICE_OK) is completed later: wait_completion(token).
    Submitted submit(const std::vector<OwnedMessage>& batch) {
        if (d_->submit == nullptr) throw std::logic_error("the plugin does not implement submit");
        std::vector<std::vector<sluice_header>> headers(batch.size());
        std::vector<sluice_message> views;
        for (std::size_t i = 0; i < batch.size(); ++i) views.push_back(batch[i].view(headers[i]));
        const sluice_batch b{sizeof(sluice_batch), sizeof(sluice_message), views.size(),
                             views.data()};
        const std::uint64_t token = ++next_token_;
        sluice_error err{};
        // Recorded before the call: the plugin may complete from inside submit.
        completions_.taken(token);
        const auto s = d_->submit(instance_, &b, token, completions_.get(), &err);
        if (s != SLUICE_OK) completions_.forget(token);
        return {s, token, s == SLUICE_OK ? std::string() : std::string(err.message)};
    }
    /// The completion of the batch submitted with `token`, waiting up to `timeout`.
    std::optional<Completed> wait_completion(
        std::uint64_t token, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const {
        return completions_.wait(token, timeout);
    }
    /// Every complete() the instance made, and its mistakes (duplicates, late, unexpected).
    const CaptureCompletion& completions() const { return completions_; }

    std::vector<OwnedMessage> emitted() const { return out_.messages(); }
    std::vector<Rejection> rejections() const { return out_.rejections(); }
    CaptureEmitter& output() { return out_; }
    const FakeHost& host() const { return host_; }
    FakeHost& host() { return host_; }
    const std::string& last_error() const { return last_error_; }
    static const sluice_plugin_descriptor& descriptor() { return *detail::descriptor<T>(); }

private:
    const sluice_plugin_descriptor* d_;
    FakeHost host_;
    CaptureEmitter out_;
    CaptureCompletion completions_;
    std::uint64_t next_token_ = 0;
    ConfigBuilder config_;
    void* instance_ = nullptr;
    bool stopped_ = false;
    std::string last_error_;
};

}  // namespace sluice::sdk::testing

#endif  // SLUICE_SDK_TESTING_HPP

// This example demonstrates: a source plugin. It owns a thread between start() and stop(),
// emits `count` numbered messages through the host's emitter (waiting while the route asks it
// to retry), logs through the host, and ends its input so the route drains and stops.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <sluice/sdk.hpp>
#include <string>
#include <thread>

namespace sdk = sluice::sdk;

class CounterSource : public sdk::Source {
public:
    static sdk::Spec spec() {
        sdk::Spec s("counter-source", "1.0.0");  // must match plugin.yaml
        s.summary("Emits `count` messages \"message 1\", \"message 2\", ... then ends.");
        s.field(sdk::Field::integer("count").default_value("10").range(1, 1e9).description(
            "How many messages to emit."));
        s.field(sdk::Field::string("topic").default_value("counter").description("Their topic."));
        s.field(sdk::Field::integer("interval_ms")
                    .default_value("0")
                    .range(0, 60000)
                    .description("Pause between messages."));
        return s;
    }

    // Runs on the supervisor's thread; a throw here fails the route with its message.
    CounterSource(const sdk::Config& c, sdk::Host& host)
        : count_(c.integer("count")),
          topic_(c.string("topic")),
          interval_(c.integer("interval_ms")),
          host_(host) {}
    ~CounterSource() override { stop(std::chrono::milliseconds(0)); }

    // The route's thread calls start(): hand the work to our own thread and return at once.
    void start(sdk::Emitter out) override {
        thread_ = std::thread([this, out] { run(out); });
    }
    // stop() must return within the deadline with no thread of ours left running.
    void stop(std::chrono::milliseconds /*deadline*/) override {
        stopping_ = true;
        if (thread_.joinable()) thread_.join();
    }

private:
    void run(sdk::Emitter out) {
        for (std::int64_t n = 1; n <= count_; ++n) {
            const std::string payload = "message " + std::to_string(n);
            sluice_message m{};
            m.struct_size = sizeof m;
            m.topic = topic_.data();
            m.topic_len = topic_.size();
            m.payload = payload.data();  // copied by emit(): a local buffer is fine
            m.payload_len = payload.size();
            m.timestamp_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
            sdk::Status s = out.emit(m);
            while (s == sdk::Status::retry && !stopping_) {  // route queue full: offer again
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
                s = out.emit(m);
            }
            if (s == sdk::Status::fatal || stopping_) return;  // the route is stopping
            if (interval_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(interval_));
        }
        host_.info("emitted " + std::to_string(count_) + " messages");
        out.end_of_input();
    }

    std::int64_t count_;
    std::string topic_;
    std::int64_t interval_;
    sdk::Host& host_;
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

SLUICE_MODULE("counter-source", CounterSource)

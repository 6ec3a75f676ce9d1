// test-source: emits messages from a file (one payload per line), from a list in the manifest,
// or from a counter, so that routes can be tried and tested without any broker. Finite input
// ends the route once everything is delivered.
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sluice/sdk.hpp>
#include <thread>

namespace sluice::plugins {

class TestSource : public sdk::Source {
public:
    static sdk::Spec spec() {
        using sdk::Field;
        sdk::Spec s("test-source", "1.0.0");
        s.summary("Emits messages from a file, a list or a counter; for tests and demos.")
            .description(
                "Input, in this order of preference: `file` (each line is one payload), "
                "`messages` (payloads listed in the manifest), or `generate` (that many "
                "payloads `{\"seq\":N}`). The input is played `repeat` times (0: forever), "
                "then the route drains and ends.");
        s.field(Field::string("topic").default_value("test").description(
            "Topic of every message (use `/` levels to try templates)."));
        s.field(Field::string("file").description("File whose lines are the payloads."));
        s.field(Field::list("messages").description("Payloads, one message each."));
        s.field(Field::integer("generate")
                    .default_value("0")
                    .range(0, 1e12)
                    .description("Generate this many `{\"seq\":N}` payloads (N from 0)."));
        s.field(Field::integer("repeat").default_value("1").range(0, 1e9).description(
            "How many times to play the input; 0 repeats forever."));
        s.field(Field::integer("interval_ms")
                    .default_value("0")
                    .range(0, 3.6e6)
                    .description("Pause between messages; 0 emits as fast as the route takes "
                                 "them."));
        s.field(Field::boolean("skip_header")
                    .default_value("false")
                    .description("Skip the first line of `file` (a CSV header)."));
        return s;
    }

    static void validate(const sdk::Config& c, sdk::Diagnostics& d) {
        const int inputs = (c.has("file") ? 1 : 0) + (c.list("messages").empty() ? 0 : 1) +
                           (c.integer("generate") > 0 ? 1 : 0);
        if (inputs != 1) d.report("", "set exactly one of `file`, `messages` or `generate`");
    }

    TestSource(const sdk::Config& c, sdk::Host& host)
        : topic_(c.string("topic")),
          file_(c.string_or("file", "")),
          messages_(c.list("messages")),
          generate_(c.integer("generate")),
          repeat_(c.integer("repeat")),
          interval_(c.integer("interval_ms")),
          skip_header_(c.boolean("skip_header")),
          host_(host) {
        if (!file_.empty()) {
            std::ifstream in(file_);
            if (!in) throw sdk::Fatal("cannot read file '" + file_ + "'");
            std::string line;
            bool first = true;
            while (std::getline(in, line)) {
                if (first && skip_header_) {
                    first = false;
                    continue;
                }
                first = false;
                if (!line.empty() && line.back() == '\r') line.pop_back();
                messages_.push_back(line);
            }
        }
    }

    ~TestSource() override { stop(std::chrono::milliseconds(0)); }

    void start(sdk::Emitter out) override {
        thread_ = std::thread([this, out] { run(out); });
    }

    void stop(std::chrono::milliseconds) override {
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

private:
    // Emits one payload; waits while the route says RETRY (queue full, drop policy) so the
    // test input is never silently thinned out.
    bool emit(const sdk::Emitter& out, const std::string& payload) {
        sluice_message m{};
        m.struct_size = sizeof m;
        m.topic = topic_.data();
        m.topic_len = topic_.size();
        m.payload = payload.data();
        m.payload_len = payload.size();
        m.qos = 1;
        while (!stopping_) {
            const auto s = out.emit(m);
            if (s == sdk::Status::ok || s == sdk::Status::error) break;
            if (s == sdk::Status::fatal) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (interval_ > 0) {
            // Ends early at stop: a long interval must not hold the route's stop.
            std::unique_lock lock(mu_);
            cv_.wait_for(lock, std::chrono::milliseconds(interval_),
                         [this] { return stopping_.load(); });
        }
        return !stopping_;
    }

    void run(sdk::Emitter out) {
        std::string payload;
        for (std::int64_t round = 0; repeat_ == 0 || round < repeat_; ++round) {
            if (generate_ > 0) {
                for (std::int64_t i = 0; i < generate_; ++i) {
                    payload = "{\"seq\":" + std::to_string(i) + "}";
                    if (!emit(out, payload)) return;
                }
            } else {
                for (const auto& m : messages_) {
                    if (!emit(out, m)) return;
                }
            }
        }
        host_.debug("input finished");
        out.end_of_input();
    }

    std::string topic_;
    std::string file_;
    std::vector<std::string> messages_;
    std::int64_t generate_;
    std::int64_t repeat_;
    std::int64_t interval_;
    bool skip_header_;
    sdk::Host& host_;
    std::atomic<bool> stopping_{false};
    std::mutex mu_;
    std::condition_variable cv_;
    std::thread thread_;
};

}  // namespace sluice::plugins

SLUICE_MODULE("sluice-test-source", sluice::plugins::TestSource)

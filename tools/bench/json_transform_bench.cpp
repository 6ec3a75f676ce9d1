// Throughput of json-transform on one core, through its C ABI entry points exactly as a route
// calls it, with the host's own arena copying every output message.
//   sluice-bench-json-transform [--messages N] [--batch N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <sluice/sdk/testing.hpp>

#include "../../plugins/json-transform/src/json_transform.hpp"
#include "sluice/core/message_arena.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Scenario {
    const char* name;
    std::map<std::string, sluice::sdk::testing::Value> options;
    std::vector<std::string> payloads;
};

double run(const Scenario& s, std::size_t total, std::size_t batch_size) {
    const auto& d = sluice::sdk::testing::Harness<sluice::plugins::JsonTransform>::descriptor();
    sluice::sdk::testing::ConfigBuilder config(d, s.options, "bench");
    sluice::sdk::testing::FakeHost host;
    void* instance = nullptr;
    sluice_error err{};
    if (d.create(host.api(), config.get(), &instance, &err) != SLUICE_OK) {
        std::fprintf(stderr, "create failed: %s\n", err.message);
        std::exit(1);
    }
    // Inputs as the route queue holds them: one arena per batch, topics like the replay's.
    sluice::MessageArena input;
    for (std::size_t i = 0; i < batch_size; ++i) {
        const std::string topic = "sensors/temperature/s" + std::to_string(1 + i % 4);
        const std::string& p = s.payloads[i % s.payloads.size()];
        sluice_message m{};
        m.struct_size = sizeof m;
        m.topic = topic.data();
        m.topic_len = topic.size();
        m.payload = p.data();
        m.payload_len = p.size();
        m.qos = 1;
        m.timestamp_ms = 1700000000000;
        input.append(m);
    }
    const sluice_batch& batch = input.batch();
    sluice::MessageArena output;
    std::size_t rejected = 0;
    sluice_emitter out{};
    out.struct_size = sizeof out;
    struct Ctx {
        sluice::MessageArena* arena;
        std::size_t* rejected;
    } ctx{&output, &rejected};
    out.ctx = &ctx;
    out.emit = [](void* c, const sluice_message* m) {
        static_cast<Ctx*>(c)->arena->append(*m);
        return SLUICE_OK;
    };
    out.reject = [](void* c, std::size_t, sluice_status, const char*) {
        ++*static_cast<Ctx*>(c)->rejected;
    };
    const std::size_t rounds = total / batch_size;
    // Warm-up: buffers reach their steady-state capacity.
    for (int i = 0; i < 3; ++i) {
        output.clear();
        d.process(instance, &batch, &out, &err);
    }
    const auto start = Clock::now();
    std::size_t bytes = 0;
    for (std::size_t r = 0; r < rounds; ++r) {
        output.clear();
        d.process(instance, &batch, &out, &err);
        bytes += output.payload_bytes();
    }
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    const double rate = static_cast<double>(rounds * batch_size) / secs;
    output.clear();
    d.process(instance, &batch, &out, &err);
    const auto& sample = output.at(0);
    std::printf("%-28s %10.0f msg/s  %6.1f ns/msg  out %.0f B/msg  rejected %zu\n", s.name, rate,
                1e9 / rate, static_cast<double>(bytes) / static_cast<double>(rounds * batch_size),
                rejected);
    std::printf("%-28s sample: %.*s\n", "", static_cast<int>(sample.payload_len),
                static_cast<const char*>(sample.payload));
    d.stop(instance, 100, &err);
    d.destroy(instance);
    return rate;
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t total = 5'000'000;
    std::size_t batch = 500;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--messages") == 0) total = std::strtoul(argv[i + 1], nullptr, 10);
        if (std::strcmp(argv[i], "--batch") == 0) batch = std::strtoul(argv[i + 1], nullptr, 10);
    }
    using sluice::sdk::testing::Value;
    const std::vector<Scenario> scenarios = {
        {"json + set(topic) + key",
         {{"set", Value::of_map({{"node", "{{topic.2}}"}, {"sensor", "{{topic.1}}"}})},
          {"key", "{{json.node}}"}},
         {R"({"ts":"2017-12-22T10:49:41","value":24.94})",
          R"({"ts":"2017-12-22T10:50:12","value":25.44})"}},
        {"number + set(topic) + key",
         {{"parse", "number"},
          {"set", Value::of_map({{"node", "{{topic.2}}"}})},
          {"key", "{{topic.2}}"}},
         {"24.94", "390", "0.769230769"}},
        {"json passthrough", {}, {R"({"ts":"2017-12-22T10:49:41","value":24.94})"}},
    };
    std::printf("json-transform, one thread, %zu messages per scenario, batches of %zu\n", total,
                batch);
    double worst = 1e18;
    for (const auto& s : scenarios) worst = std::min(worst, run(s, total, batch));
    std::printf("slowest scenario: %.2f M msg/s (target: 1.00)\n", worst / 1e6);
    return 0;
}

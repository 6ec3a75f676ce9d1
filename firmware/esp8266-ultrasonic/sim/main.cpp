// sluice-sim-device: N simulated ESP8266 tank sensors, each running the firmware core against a
// real MQTT broker, one thread per device.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "backoff.hpp"
#include "device.hpp"
#include "mqtt_platform.hpp"
#include "sim_options.hpp"
#include "tank_model.hpp"
#include "version.hpp"

namespace {

using namespace sluice::firmware;
using namespace sluice::firmware::sim;

std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void on_signal(int) { g_stop.store(true); }

// How long a device thread sleeps when nothing arrives; well below the shortest interval.
constexpr auto kTickPeriod = std::chrono::milliseconds(10);

struct sim_device {
    std::string id;
    tank_model tank;
    mqtt_platform platform;
    xorshift32 rng;
    device dev;
    std::atomic<std::uint32_t> published{0};

    sim_device(const sim_options& o, int index, std::chrono::steady_clock::time_point epoch)
        : id(o.id_prefix + std::to_string(index)),
          tank(o.seed, index),
          platform(o.url, id, o.qos, tank, epoch),
          // xorshift32 must not start at zero.
          rng{((o.seed ^ 0x9e3779b9u) + static_cast<std::uint32_t>(index) * 2654435761u) | 1u},
          dev(platform, &xorshift32::source, &rng) {}

    void run(const sim_options& o) {
        device_config config;
        config.device_id = id.c_str();
        config.interval_ms = o.interval_ms;
        if (!dev.begin(config)) {
            platform.log((id + " invalid configuration").c_str());
            return;
        }
        while (!g_stop.load() && (o.count == 0 || dev.readings_published() < o.count)) {
            dev.tick();
            for (const auto& msg : platform.wait_for_messages(kTickPeriod)) {
                dev.on_message(msg.topic.c_str(), msg.payload.data(), msg.payload.size());
            }
            published.store(dev.readings_published());
        }
        dev.shutdown();
        platform.disconnect();
        published.store(dev.readings_published());
    }
};

}  // namespace

int main(int argc, char** argv) {
    const auto parsed = parse_sim_options(std::vector<std::string>(argv + 1, argv + argc));
    if (!parsed.options) {
        std::fprintf(parsed.help ? stdout : stderr, "%s\n", parsed.message.c_str());
        return parsed.help ? 0 : 2;
    }
    const sim_options& options = *parsed.options;

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    const auto epoch = std::chrono::steady_clock::now();
    std::vector<std::unique_ptr<sim_device>> devices;
    for (int i = 1; i <= options.devices; ++i) {
        devices.push_back(std::make_unique<sim_device>(options, i, epoch));
    }
    std::printf("sluice-sim-device %s: %d device(s) -> %s, interval %u ms, count %u\n",
                kFirmwareVersion, options.devices, options.url.c_str(), options.interval_ms,
                options.count);
    std::fflush(stdout);

    std::vector<std::thread> threads;
    for (auto& d : devices) threads.emplace_back([&d, &options] { d->run(options); });
    for (auto& t : threads) t.join();

    std::uint64_t total = 0;
    for (const auto& d : devices) {
        std::printf("summary %s readings=%u\n", d->id.c_str(), d->published.load());
        total += d->published.load();
    }
    std::printf("summary total readings=%llu\n", static_cast<unsigned long long>(total));
    return 0;
}

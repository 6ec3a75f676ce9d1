// How many mqtt-source instances one process carries: N instances (one connection each, as N
// routes would have) against a local mosquitto, started here. Reports the time until all are
// subscribed, the process's threads and RSS, bytes per instance, the CPU of the process while
// the connected instances are idle, and the time to stop them all.
//
//   mqtt-source-scale-bench [--count N] [--rate R] [--burst B] [--in-flight C] [--idle S]
//                           [--url tcp://host:port]
//
// --rate/--burst/--in-flight set the connect pacer (defaults: the plugin's). Without --url it
// starts its own mosquitto (max_connections -1) and raises the open-file limit for both (run as
// root for more than the hard limit allows). Each run uses fresh client ids.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sluice/sdk/testing.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../src/connection_driver.hpp"
#include "../src/mqtt_source.hpp"
#include "mosquitto.hpp"

namespace {

using sluice::plugins::MqttSource;
using sluice::plugins::mqtt_source::ConnectionDriver;
using sluice::plugins::mqtt_source::PacerLimits;
using Source = sluice::sdk::testing::Harness<MqttSource>;
using Clock = std::chrono::steady_clock;

std::string status_field(const std::string& name) {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind(name + ":", 0) == 0) {
            auto v = line.substr(name.size() + 1);
            v.erase(0, v.find_first_not_of(" \t"));
            return v;
        }
    }
    return "?";
}

long rss_kib() { return std::atol(status_field("VmRSS").c_str()); }
int threads() { return std::atoi(status_field("Threads").c_str()); }

// utime + stime of this process, in clock ticks (/proc/self/stat fields 14 and 15).
long cpu_ticks() {
    std::ifstream in("/proc/self/stat");
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream rest(all.substr(all.rfind(')') + 2));
    std::string field;
    long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) utime = std::atol(field.c_str());
        if (i == 15) stime = std::atol(field.c_str());
    }
    return utime + stime;
}

bool is_ok(const Source& s) {
    for (const auto& [st, reason] : s.host().states()) {
        if (st == SLUICE_OK) return true;
    }
    return false;
}

void raise_open_file_limit(rlim_t want) {
    rlimit r{};
    ::getrlimit(RLIMIT_NOFILE, &r);
    if (r.rlim_max < want) r.rlim_max = want;  // root only
    r.rlim_cur = r.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &r) != 0) {
        ::getrlimit(RLIMIT_NOFILE, &r);
        r.rlim_cur = r.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &r);
    }
    ::getrlimit(RLIMIT_NOFILE, &r);
    std::printf("open-file limit          %llu\n", static_cast<unsigned long long>(r.rlim_cur));
}

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

int main(int argc, char** argv) {
    int count = 1000;
    int idle_s = 10;
    std::string url;
    PacerLimits limits = ConnectionDriver::pacer_limits();
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        const char* v = argv[i + 1];
        if (a == "--count") {
            count = std::atoi(v);
        } else if (a == "--rate") {
            limits.connects_per_second = std::atof(v);
        } else if (a == "--burst") {
            limits.burst = std::atof(v);
        } else if (a == "--in-flight") {
            limits.in_flight_per_broker = static_cast<std::size_t>(std::atol(v));
        } else if (a == "--idle") {
            idle_s = std::atoi(v);
        } else if (a == "--url") {
            url = v;
        } else {
            std::fprintf(stderr, "unknown option %s\n", a.c_str());
            return 2;
        }
    }
    ConnectionDriver::set_pacer_limits(limits);
    raise_open_file_limit(static_cast<rlim_t>(count) * 2 + 1024);

    std::optional<sluice::testing::Mosquitto> broker;
    if (url.empty()) {
        sluice::testing::MosquittoOptions options;
        options.extra_config = {"max_connections -1"};
        broker.emplace(options);
        url = broker->url();
    }
    std::printf("instances                %d\n", count);
    std::printf("pacer                    %.0f/s, burst %.0f, %zu in flight per broker\n",
                limits.connects_per_second, limits.burst, limits.in_flight_per_broker);

    const long rss_before = rss_kib();
    const int threads_before = threads();
    const std::string run = std::to_string(::getpid());
    std::vector<std::unique_ptr<Source>> sources;
    sources.reserve(static_cast<std::size_t>(count));
    const auto started = Clock::now();
    for (int i = 0; i < count; ++i) {
        const std::string n = std::to_string(i);
        sources.push_back(
            std::make_unique<Source>(std::map<std::string, sluice::sdk::testing::Value>{
                {"url", {url}},
                {"topics", {"bench/" + n + "/#"}},
                {"client_id", "bench-" + run + "-" + n}}));
    }
    const auto created = Clock::now();
    int max_threads = threads();
    std::size_t ok = 0;
    const auto give_up = started + std::chrono::seconds(300);
    while (Clock::now() < give_up) {
        ok = 0;
        for (const auto& s : sources) ok += is_ok(*s) ? 1 : 0;
        max_threads = std::max(max_threads, threads());
        if (ok == sources.size()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const auto subscribed = Clock::now();
    std::size_t retries = 0;
    for (const auto& s : sources) {
        for (const auto& [st, reason] : s->host().states()) retries += st == SLUICE_RETRY;
    }
    std::printf("created in               %.2f s\n", seconds(created - started));
    std::printf("subscribed               %zu of %d after %.2f s\n", ok, count,
                seconds(subscribed - started));
    std::printf("RETRY states on the way  %zu\n", retries);
    std::printf("threads                  %d before, %d connected (at most %d)\n", threads_before,
                threads(), max_threads);
    const long rss_after = rss_kib();
    std::printf("RSS                      %ld KiB before, %ld KiB connected\n", rss_before,
                rss_after);
    std::printf("bytes per instance       %.0f\n",
                static_cast<double>(rss_after - rss_before) * 1024.0 / count);

    const long hz = ::sysconf(_SC_CLK_TCK);
    const long t0 = cpu_ticks();
    const auto w0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(idle_s));
    const long t1 = cpu_ticks();
    const double wall = seconds(Clock::now() - w0);
    std::printf("idle CPU                 %.2f %% of one core over %.1f s (%ld ticks at %ld Hz)\n",
                100.0 * static_cast<double>(t1 - t0) / static_cast<double>(hz) / wall, wall,
                t1 - t0, hz);

    const auto stopping = Clock::now();
    for (auto& s : sources) s->stop(std::chrono::milliseconds(1000));
    std::printf("stopped all in           %.2f s\n", seconds(Clock::now() - stopping));
    const auto destroying = Clock::now();
    sources.clear();
    std::printf("destroyed all in         %.2f s\n", seconds(Clock::now() - destroying));
    return ok == static_cast<std::size_t>(count) ? 0 : 1;
}

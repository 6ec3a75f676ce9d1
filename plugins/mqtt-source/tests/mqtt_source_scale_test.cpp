// Many mqtt-source instances in one process against a real mosquitto: they connect through the
// pacer on the one driver thread, a broker that never answers holds back only its own routes,
// and stop() ends cleanly while connects are still waiting or under way.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <memory>
#include <sluice/sdk/testing.hpp>
#include <string>
#include <thread>
#include <vector>

#include "../src/connection_driver.hpp"
#include "../src/mqtt_source.hpp"
#include "mosquitto.hpp"

using sluice::plugins::MqttSource;
using sluice::plugins::mqtt_source::ConnectionDriver;
using sluice::plugins::mqtt_source::PacerLimits;
using sluice::sdk::testing::Harness;
using sluice::sdk::testing::Value;
using sluice::testing::Mosquitto;
using sluice::testing::MosquittoOptions;
using sluice::testing::wait_until;
using namespace std::chrono_literals;

namespace {

using Source = Harness<MqttSource>;
using Clock = std::chrono::steady_clock;

std::map<std::string, Value> options(const std::string& url, const std::string& topic,
                                     const std::string& client_id) {
    return {{"url", {url}},
            {"topics", {topic}},
            {"client_id", client_id},
            {"reconnect_min_ms", "50"},
            {"reconnect_max_ms", "200"}};
}

bool is_ok(const Source& s) {
    for (const auto& [st, reason] : s.host().states()) {
        if (st == SLUICE_OK) return true;
    }
    return false;
}

std::size_t count_ok(const std::vector<std::unique_ptr<Source>>& sources) {
    std::size_t n = 0;
    for (const auto& s : sources) n += is_ok(*s) ? 1 : 0;
    return n;
}

int threads_now() {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
    }
    return -1;
}

// Every instance keeps a socket, and so does the broker for each.
void raise_open_file_limit() {
    rlimit r{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &r) == 0);
    r.rlim_cur = r.rlim_max;
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &r) == 0);
}

// Pacer limits for the drivers the test starts; the test's instances are its only ones.
class PacerScope {
public:
    explicit PacerScope(PacerLimits limits) : saved_(ConnectionDriver::pacer_limits()) {
        ConnectionDriver::set_pacer_limits(limits);
    }
    ~PacerScope() { ConnectionDriver::set_pacer_limits(saved_); }
    PacerScope(const PacerScope&) = delete;
    PacerScope& operator=(const PacerScope&) = delete;

private:
    PacerLimits saved_;
};

// A broker that never answers: a listening socket that accepts nothing. Its accept queue takes
// one connection (which never gets a CONNACK); after that the kernel drops the SYNs.
class BlackHole {
public:
    BlackHole() {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = 0;
        ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        socklen_t len = sizeof a;
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(fd_, 0) == 0);
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
        port_ = ntohs(a.sin_port);
    }
    ~BlackHole() { ::close(fd_); }
    BlackHole(const BlackHole&) = delete;
    BlackHole& operator=(const BlackHole&) = delete;
    std::string url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

// As the host stops routes at shutdown: all at once, each on its own thread.
void stop_all(std::vector<std::unique_ptr<Source>>& sources, std::chrono::milliseconds deadline) {
    std::vector<std::thread> threads;
    for (auto& s : sources) threads.emplace_back([&s, deadline] { s->stop(deadline); });
    for (auto& t : threads) t.join();
}

std::size_t count_in(const std::string& text, const std::string& part) {
    std::size_t n = 0;
    for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
    return n;
}

bool connected_at(const std::string& log, const std::string& client_id) {
    return count_in(log, " as " + client_id + " (") >
           count_in(log, "Client " + client_id + " disconnected");
}

}  // namespace

TEST_CASE("300 instances connect through the pacer on one thread and all subscribe",
          "[mqtt-source][broker][scale]") {
    raise_open_file_limit();
    Mosquitto broker;
    constexpr int kCount = 300;
    constexpr PacerLimits kLimits{200, 20, 300};
    PacerScope pacer(kLimits);

    std::vector<std::unique_ptr<Source>> sources;
    const auto make = [&](int i) {
        sources.push_back(std::make_unique<Source>(options(
            broker.url(), "scale/" + std::to_string(i) + "/#", "scale-" + std::to_string(i))));
    };
    // The first instance starts the driver and paho's send and receive threads.
    make(0);
    REQUIRE(wait_until([&] { return is_ok(*sources[0]); }));
    const int threads_with_one = threads_now();

    const auto started = Clock::now();
    for (int i = 1; i < kCount; ++i) make(i);
    const int threads_with_all = threads_now();
    const bool all = wait_until([&] { return count_ok(sources) == kCount; }, 30s);
    const auto took = Clock::now() - started;
    INFO(count_ok(sources) << " of " << kCount << " subscribed after "
                           << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                           << " ms");
    REQUIRE(all);
    CHECK(threads_now() == threads_with_one);
    CHECK(threads_with_all == threads_with_one);
    // The pacer let them in at its rate, after the first burst.
    CHECK(took >= std::chrono::duration<double>((kCount - 1 - kLimits.burst) /
                                                kLimits.connects_per_second) -
                      100ms);

    for (const int i : {0, 7, kCount - 1}) {
        broker.publish("scale/" + std::to_string(i) + "/x", "to " + std::to_string(i));
    }
    for (const int i : {0, 7, kCount - 1}) {
        const auto& s = *sources[static_cast<std::size_t>(i)];
        REQUIRE(wait_until([&] { return s.emitted().size() == 1; }));
        CHECK(s.emitted()[0].payload == "to " + std::to_string(i));
    }
    CHECK(sources[1]->emitted().empty());
    stop_all(sources, 1000ms);
}

TEST_CASE("instances whose broker never answers do not delay the others",
          "[mqtt-source][broker][scale]") {
    raise_open_file_limit();
    Mosquitto broker;
    BlackHole hole;
    // More hanging attempts than a broker has slots: with one cap for the whole process they
    // would hold every slot for connect_timeout_s.
    constexpr PacerLimits kLimits{1000, 100, 64};
    PacerScope pacer(kLimits);
    const int dead_count = static_cast<int>(kLimits.in_flight_per_broker) + 16;
    constexpr int kLive = 100;
    constexpr auto kDeadTimeout = 6s;

    std::vector<std::unique_ptr<Source>> dead;
    for (int i = 0; i < dead_count; ++i) {
        auto opts = options(hole.url(), "dead/#", "dead-" + std::to_string(i));
        opts.insert_or_assign("connect_timeout_s", std::to_string(kDeadTimeout.count()));
        dead.push_back(std::make_unique<Source>(opts));
    }
    std::this_thread::sleep_for(100ms);  // their attempts are under way

    const auto started = Clock::now();
    std::vector<std::unique_ptr<Source>> live;
    for (int i = 0; i < kLive; ++i) {
        live.push_back(
            std::make_unique<Source>(options(broker.url(), "live/#", "live-" + std::to_string(i))));
    }
    const bool all = wait_until([&] { return count_ok(live) == kLive; }, 20s);
    const auto took = Clock::now() - started;
    INFO(count_ok(live) << " of " << kLive << " subscribed after "
                        << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                        << " ms");
    REQUIRE(all);
    // Well within one attempt of the dead ones. (A new connection waits for paho's receive
    // thread to finish its poll() of the sockets it has, up to 1.1 s while they are quiet.)
    CHECK(took < kDeadTimeout - 1s);
    CHECK(count_ok(dead) == 0);

    // The hanging attempts end on their own, with the reason.
    const auto failed = [](const Source& s) {
        for (const auto& [st, reason] : s.host().states()) {
            if (st == SLUICE_RETRY && reason.find("cannot connect") != std::string::npos) {
                return true;
            }
        }
        return false;
    };
    CHECK(wait_until(
        [&] {
            for (const auto& s : dead) {
                if (!failed(*s)) return false;
            }
            return true;
        },
        kDeadTimeout + 10s));
    stop_all(dead, 500ms);
    stop_all(live, 1000ms);
}

TEST_CASE("stop() while connects wait for the pacer or for the broker",
          "[mqtt-source][broker][scale]") {
    raise_open_file_limit();
    Mosquitto broker;
    BlackHole hole;
    // Slow enough that most instances still wait for a slot when they are stopped.
    constexpr PacerLimits kLimits{40, 4, 4};
    PacerScope pacer(kLimits);
    constexpr int kCount = 60;

    std::vector<std::unique_ptr<Source>> sources;
    std::vector<std::string> ids;
    for (int i = 0; i < kCount; ++i) {
        ids.push_back("pending-" + std::to_string(i));
        sources.push_back(std::make_unique<Source>(options(broker.url(), "pending/#", ids.back())));
    }
    // One that is stuck waiting for a CONNACK when it is stopped.
    sources.push_back(std::make_unique<Source>(options(hole.url(), "pending/#", "pending-hole")));
    REQUIRE(wait_until([&] { return count_ok(sources) >= 5; }));
    REQUIRE(count_ok(sources) < kCount / 2);

    constexpr auto kDeadline = 500ms;
    std::vector<std::chrono::steady_clock::duration> took(sources.size());
    std::vector<sluice_status> status(sources.size());
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < sources.size(); ++i) {
        threads.emplace_back([&, i] {
            const auto t0 = Clock::now();
            status[i] = sources[i]->stop(kDeadline);
            took[i] = Clock::now() - t0;
        });
    }
    for (auto& t : threads) t.join();
    for (std::size_t i = 0; i < sources.size(); ++i) {
        INFO("instance " << i);
        CHECK(status[i] == SLUICE_OK);
        CHECK(took[i] < kDeadline + 100ms);
    }

    // Nothing calls into a stopped instance, and no connection is left or made afterwards.
    std::vector<std::size_t> logs, states;
    for (const auto& s : sources) {
        logs.push_back(s->host().logs().size());
        states.push_back(s->host().states().size());
    }
    broker.publish("pending/after", "after stop");
    std::this_thread::sleep_for(1s);
    const std::string log = broker.log();
    for (std::size_t i = 0; i < sources.size(); ++i) {
        INFO("instance " << i);
        CHECK(sources[i]->host().logs().size() == logs[i]);
        CHECK(sources[i]->host().states().size() == states[i]);
        CHECK(sources[i]->emitted().empty());
        if (i < ids.size()) CHECK_FALSE(connected_at(log, ids[i]));
    }
}

// The connect pacer on a clock of its own: the rate, the cap per broker, and that one broker's
// stuck attempts never take another broker's turn.
#include "../src/connect_pacer.hpp"

#include <catch2/catch.hpp>
#include <set>

using sluice::plugins::mqtt_source::ConnectPacer;
using sluice::plugins::mqtt_source::PacerLimits;
using namespace std::chrono_literals;

namespace {

using Clock = ConnectPacer::Clock;

std::vector<ConnectPacer::Id> grant(ConnectPacer& p, Clock::time_point now) {
    Clock::time_point next;
    return p.grant(now, next);
}

}  // namespace

TEST_CASE("the pacer grants a burst, then at its rate", "[mqtt-source][pacer]") {
    const auto t0 = Clock::now();
    ConnectPacer p(PacerLimits{100, 10, 1000}, t0);
    for (ConnectPacer::Id id = 1; id <= 50; ++id) p.request(id, "tcp://a:1883");
    Clock::time_point next;
    const auto first = p.grant(t0, next);
    CHECK(first.size() == 10);
    CHECK(next > t0);
    CHECK(next <= t0 + 11ms);  // one token per 10 ms
    CHECK(p.waiting() == 40);
    CHECK(grant(p, t0 + 100ms).size() == 10);
    CHECK(grant(p, t0 + 150ms).size() == 5);
    // First come, first served.
    CHECK(first.front() == 1);
    CHECK(first.back() == 10);
}

TEST_CASE("the pacer caps the attempts in progress per broker", "[mqtt-source][pacer]") {
    const auto t0 = Clock::now();
    ConnectPacer p(PacerLimits{1e6, 1e6, 3}, t0);
    for (ConnectPacer::Id id = 1; id <= 5; ++id) p.request(id, "tcp://a:1883");
    Clock::time_point next;
    const auto granted = p.grant(t0, next);
    REQUIRE(granted == std::vector<ConnectPacer::Id>{1, 2, 3});
    CHECK(next == Clock::time_point::max());  // only a finish() frees a slot
    CHECK(p.granted(2));
    CHECK_FALSE(p.granted(4));
    CHECK(grant(p, t0 + 1s).empty());
    p.finish(2);
    CHECK(grant(p, t0 + 1s) == std::vector<ConnectPacer::Id>{4});
    CHECK(p.in_flight() == 3);
}

TEST_CASE("a broker whose attempts hang does not hold back another broker",
          "[mqtt-source][pacer]") {
    const auto t0 = Clock::now();
    ConnectPacer p(PacerLimits{1e6, 1e6, 2}, t0);
    for (ConnectPacer::Id id = 1; id <= 10; ++id) p.request(id, "tcp://dead:1883");
    for (ConnectPacer::Id id = 11; id <= 20; ++id) p.request(id, "tcp://live:1883");
    const auto granted = grant(p, t0);
    const std::set<ConnectPacer::Id> got(granted.begin(), granted.end());
    CHECK(got == std::set<ConnectPacer::Id>{1, 2, 11, 12});
    // The live broker answers; the dead one never does.
    for (ConnectPacer::Id id = 11; id <= 20; ++id) {
        p.finish(id);
        const auto more = grant(p, t0);
        if (id + 2 <= 20) CHECK(more == std::vector<ConnectPacer::Id>{id + 2});
    }
    CHECK(p.waiting() == 8);
    CHECK(p.in_flight() == 2);
}

TEST_CASE("brokers take turns when tokens are scarce", "[mqtt-source][pacer]") {
    const auto t0 = Clock::now();
    ConnectPacer p(PacerLimits{10, 4, 100}, t0);
    for (ConnectPacer::Id id = 1; id <= 10; ++id) p.request(id, "tcp://a:1883");
    for (ConnectPacer::Id id = 11; id <= 20; ++id) p.request(id, "tcp://b:1883");
    const auto granted = grant(p, t0);
    REQUIRE(granted.size() == 4);
    int a = 0;
    for (const auto id : granted) a += id <= 10 ? 1 : 0;
    CHECK(a == 2);
}

TEST_CASE("a withdrawn request is skipped and a request is not queued twice",
          "[mqtt-source][pacer]") {
    const auto t0 = Clock::now();
    ConnectPacer p(PacerLimits{1e6, 1e6, 100}, t0);
    p.request(1, "tcp://a:1883");
    p.request(2, "tcp://a:1883");
    p.request(2, "tcp://a:1883");
    p.request(3, "tcp://a:1883");
    p.finish(2);
    CHECK(p.waiting() == 2);
    CHECK(grant(p, t0) == std::vector<ConnectPacer::Id>{1, 3});
    p.finish(1);
    p.finish(3);
    p.finish(3);  // twice: no effect
    CHECK(p.in_flight() == 0);
    CHECK(p.waiting() == 0);
    p.request(2, "tcp://a:1883");
    CHECK(grant(p, t0) == std::vector<ConnectPacer::Id>{2});
}

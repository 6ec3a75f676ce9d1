// connection: shared against a real mosquitto: one connection for many routes, each route gets
// exactly what its filters match, a persistent session's backlog reaches routes that join after
// it arrived, and a route that leaves takes nothing from the others.
#include "../src/shared_connection.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <set>
#include <sluice/sdk/testing.hpp>
#include <string>
#include <thread>
#include <vector>

#include "../src/mqtt_source.hpp"
#include "../src/topic_filter.hpp"
#include "mosquitto.hpp"

using sluice::plugins::MqttSource;
using sluice::plugins::mqtt_source::subscription_id;
using sluice::plugins::mqtt_source::topic_matches;
using sluice::sdk::testing::Harness;
using sluice::sdk::testing::Value;
using sluice::testing::Mosquitto;
using sluice::testing::MosquittoOptions;
using sluice::testing::wait_until;
using namespace std::chrono_literals;

namespace {

using Source = Harness<MqttSource>;

std::map<std::string, Value> shared(const std::string& url, std::vector<std::string> topics) {
    Value t("");
    t.kind = Value::Kind::list;
    t.items = std::move(topics);
    return {{"url", {url}},
            {"topics", t},
            {"connection", "shared"},
            {"reconnect_min_ms", "50"},
            {"reconnect_max_ms", "200"}};
}

bool ok(const Source& s) {
    const auto states = s.host().states();
    return !states.empty() && states.back().first == SLUICE_OK;
}

void wait_ok(const Source& s) {
    const bool ready = wait_until([&] { return ok(s); });
    if (!ready) {
        for (const auto& [level, text] : s.host().logs()) UNSCOPED_INFO("log: " << text);
        for (const auto& [st, why] : s.host().states()) UNSCOPED_INFO("state " << st << " " << why);
    }
    REQUIRE(ready);
}

std::vector<std::string> topics_of(const Source& s) {
    std::vector<std::string> out;
    for (const auto& m : s.emitted()) out.push_back(m.topic);
    return out;
}

std::size_t count_of(const std::string& text, const std::string& part) {
    std::size_t n = 0;
    for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
    return n;
}

}  // namespace

TEST_CASE("topic_matches follows the broker's rules", "[mqtt-source][shared][topics]") {
    CHECK(topic_matches("a/b", "a/b"));
    CHECK_FALSE(topic_matches("a/b", "a/c"));
    CHECK_FALSE(topic_matches("a/b", "a/b/c"));
    CHECK_FALSE(topic_matches("a/b/c", "a/b"));
    CHECK(topic_matches("a/+", "a/b"));
    CHECK(topic_matches("a/+", "a/"));  // an empty level is a level
    CHECK_FALSE(topic_matches("a/+", "a/b/c"));
    CHECK_FALSE(topic_matches("a/+", "a"));
    CHECK(topic_matches("+/+", "/b"));
    CHECK(topic_matches("a/#", "a"));  // '#' includes the parent level
    CHECK(topic_matches("a/#", "a/b/c"));
    CHECK_FALSE(topic_matches("a/#", "ab"));
    CHECK(topic_matches("#", "a/b"));
    CHECK(topic_matches("+/b/#", "x/b"));
    CHECK_FALSE(topic_matches("#", "$SYS/broker"));
    CHECK_FALSE(topic_matches("+/broker", "$SYS/broker"));
    CHECK(topic_matches("$SYS/#", "$SYS/broker"));
    CHECK(topic_matches("$share/g/a/+", "a/b"));
    CHECK_FALSE(topic_matches("$share/g/a/+", "g/a/b"));
}

TEST_CASE("subscription identifiers are stable and in MQTT's range", "[mqtt-source][shared]") {
    CHECK(subscription_id("sensors/#") == subscription_id(std::string("sensors/") + "#"));
    CHECK(subscription_id("sensors/#") != subscription_id("sensors/+"));
    for (const char* f : {"", "a", "#", "scale/r00001/+"}) {
        CHECK(subscription_id(f) >= 1);
        CHECK(subscription_id(f) <= 268435455u);
    }
}

TEST_CASE("routes on a shared connection get what their filters match, over one connection",
          "[mqtt-source][shared][broker]") {
    Mosquitto broker;
    Source a(shared(broker.url(), {"a/#"}));
    Source b(shared(broker.url(), {"b/+", "c/1"}));
    Source ax(shared(broker.url(), {"a/x"}));  // overlaps a/#
    wait_ok(a);
    wait_ok(b);
    wait_ok(ax);

    broker.publish("a/1", "1", 1);
    broker.publish("b/2", "2", 1);
    broker.publish("a/x", "3", 1);
    broker.publish("c/1", "4", 1);
    broker.publish("d/1", "nobody's", 1);
    REQUIRE(wait_until([&] {
        return a.emitted().size() >= 2 && b.emitted().size() >= 2 && ax.emitted().size() >= 1;
    }));
    std::this_thread::sleep_for(200ms);  // anything extra would have come by now
    CHECK(topics_of(a) == std::vector<std::string>{"a/1", "a/x"});
    CHECK(topics_of(b) == std::vector<std::string>{"b/2", "c/1"});
    CHECK(topics_of(ax) == std::vector<std::string>{"a/x"});

    // One connection at the broker for the three routes (the others are mosquitto_pub's),
    // under the derived shared client id.
    CHECK(count_of(broker.log(), " as sluice-") == 1);
    CHECK(count_of(broker.log(), " as sluice-shared-") == 1);
    // Each route shows the connection it uses: one connect, under the shared client id.
    for (const Source* s : {&a, &b, &ax}) {
        CHECK(s->metric("mqtt_connects_total") == 1.0);
        CHECK(s->metric("mqtt_connected") == 1.0);
        bool shared_id = false;
        for (const auto& m : s->metrics()) {
            shared_id = shared_id || m.label_value.rfind("sluice-shared-", 0) == 0;
        }
        CHECK(shared_id);
    }
}

TEST_CASE("a persistent shared session keeps the backlog for routes that join after it came",
          "[mqtt-source][shared][broker][session]") {
    MosquittoOptions config;
    config.extra_config = {"max_queued_messages 10000"};
    Mosquitto broker(config);
    {
        Source one(shared(broker.url(), {"p/1/#"}));
        Source two(shared(broker.url(), {"p/2/#"}));
        wait_ok(one);
        wait_ok(two);
    }
    std::vector<std::string> payloads;
    for (int i = 0; i < 20; ++i) payloads.push_back(std::to_string(i));
    broker.publish_lines("p/1/away", payloads, 1);
    broker.publish_lines("p/2/away", payloads, 1);

    // The first route to join reconnects the session, whose backlog for p/2/# arrives before
    // the second route exists: it waits for it.
    Source one(shared(broker.url(), {"p/1/#"}));
    REQUIRE(wait_until([&] { return one.emitted().size() >= 20; }));
    std::this_thread::sleep_for(200ms);
    Source two(shared(broker.url(), {"p/2/#"}));
    REQUIRE(wait_until([&] { return two.emitted().size() >= 20; }));
    for (const Source* s : {&one, &two}) {
        REQUIRE(s->emitted().size() == 20);
        for (std::size_t i = 0; i < 20; ++i) CHECK(s->emitted()[i].payload == std::to_string(i));
    }
}

TEST_CASE("routes leaving a shared session one after the other leave their messages queued",
          "[mqtt-source][shared][broker][session]") {
    // As when the process stops: paho acknowledges what it hands over, so a message that
    // arrived for a route that already left would be lost with the process. The connection
    // closes before a route leaves, and stays closed while the others follow.
    MosquittoOptions config;
    config.extra_config = {"max_queued_messages 100000"};
    Mosquitto broker(config);
    auto first = std::make_unique<Source>(shared(broker.url(), {"l/#"}));
    auto other = std::make_unique<Source>(shared(broker.url(), {"s/#"}));
    wait_ok(*first);
    wait_ok(*other);

    constexpr int kMessages = 3000;
    std::vector<std::string> payloads;
    for (int i = 0; i < kMessages; ++i) payloads.push_back(std::to_string(i));
    std::thread publisher([&] { broker.publish_lines("l/seq", payloads, 1); });
    REQUIRE(wait_until([&] { return first->emitted().size() >= 100; }));
    first->stop(1000ms);
    std::set<int> seen;
    for (const auto& m : first->emitted()) seen.insert(std::stoi(m.payload));
    const std::size_t before = seen.size();
    std::this_thread::sleep_for(50ms);  // messages keep coming for the route that left
    other->stop(1000ms);
    publisher.join();
    first.reset();
    other.reset();

    // The route comes back (the process restarted) and gets the rest from the session.
    Source again(shared(broker.url(), {"l/#"}));
    REQUIRE(wait_until(
        [&] {
            std::set<int> all = seen;
            for (const auto& m : again.emitted()) all.insert(std::stoi(m.payload));
            return all.size() == static_cast<std::size_t>(kMessages);
        },
        20s));
    INFO("the first instance took " << before);
    CHECK(before < static_cast<std::size_t>(kMessages));  // the stop came while traffic flowed
}

TEST_CASE("routes leaving a shared session at the same time leave their messages queued",
          "[mqtt-source][shared][broker][session]") {
    // As when the host stops every route at once, on several threads: one of them is last and
    // closes the connection; nothing arrives for a route that already left.
    MosquittoOptions config;
    config.extra_config = {"max_queued_messages 100000"};
    Mosquitto broker(config);
    auto one = std::make_unique<Source>(shared(broker.url(), {"c/1"}));
    auto two = std::make_unique<Source>(shared(broker.url(), {"c/2"}));
    wait_ok(*one);
    wait_ok(*two);
    constexpr int kMessages = 2000;
    std::vector<std::string> payloads;
    for (int i = 0; i < kMessages; ++i) payloads.push_back(std::to_string(i));
    std::thread p1([&] { broker.publish_lines("c/1", payloads, 1); });
    std::thread p2([&] { broker.publish_lines("c/2", payloads, 1); });
    REQUIRE(wait_until([&] { return one->emitted().size() >= 50 && two->emitted().size() >= 50; }));
    std::thread s1([&] { one->stop(1000ms); });
    std::thread s2([&] { two->stop(1000ms); });
    s1.join();
    s2.join();
    std::set<std::string> seen1, seen2;
    for (const auto& m : one->emitted()) seen1.insert(m.payload);
    for (const auto& m : two->emitted()) seen2.insert(m.payload);
    p1.join();
    p2.join();
    one.reset();
    two.reset();

    Source again1(shared(broker.url(), {"c/1"}));
    Source again2(shared(broker.url(), {"c/2"}));
    REQUIRE(wait_until(
        [&] {
            std::set<std::string> a = seen1, b = seen2;
            for (const auto& m : again1.emitted()) a.insert(m.payload);
            for (const auto& m : again2.emitted()) b.insert(m.payload);
            return a.size() == static_cast<std::size_t>(kMessages) &&
                   b.size() == static_cast<std::size_t>(kMessages);
        },
        20s));
}

TEST_CASE("a restarting route gets its copy of a message another route took meanwhile",
          "[mqtt-source][shared][broker][session]") {
    Mosquitto broker;
    Source wide(shared(broker.url(), {"w/#"}));
    auto narrow = std::make_unique<Source>(shared(broker.url(), {"w/n"}));
    wait_ok(wide);
    wait_ok(*narrow);
    narrow.reset();  // restarting: the session keeps its subscription, the message waits
    broker.publish("w/n", "both", 1);
    REQUIRE(wait_until([&] { return wide.emitted().size() == 1; }));
    Source back(shared(broker.url(), {"w/n"}));
    REQUIRE(wait_until([&] { return back.emitted().size() == 1; }));
    CHECK(back.emitted()[0].payload == "both");
    std::this_thread::sleep_for(200ms);
    CHECK(wide.emitted().size() == 1);
}

TEST_CASE("a shared connection reconnects for all its routes when the broker comes back",
          "[mqtt-source][shared][broker][reconnect]") {
    Mosquitto broker;
    Source a(shared(broker.url(), {"r/a"}));
    Source b(shared(broker.url(), {"r/b"}));
    wait_ok(a);
    wait_ok(b);
    broker.stop();
    REQUIRE(wait_until([&] { return !ok(a) && !ok(b); }));
    broker.start();
    wait_ok(a);
    wait_ok(b);
    broker.publish("r/a", "1", 1);
    broker.publish("r/b", "2", 1);
    REQUIRE(wait_until([&] { return a.emitted().size() == 1 && b.emitted().size() == 1; }));
    // The connection's lines are logged once, through one route, not once per route.
    std::size_t lost_lines = 0;
    for (const Source* s : {&a, &b}) {
        for (const auto& [level, text] : s->host().logs()) {
            lost_lines += text.find("shared connection") != std::string::npos &&
                          text.find("lost") != std::string::npos;
        }
    }
    CHECK(lost_lines == 1);
}

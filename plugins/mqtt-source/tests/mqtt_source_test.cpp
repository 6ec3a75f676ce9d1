// mqtt-source against a real mosquitto broker, driven through the SDK's Harness exactly as the
// host drives it. Every wait is bounded.
#include "../src/mqtt_source.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <set>
#include <sluice/sdk/testing.hpp>
#include <string>
#include <thread>
#include <vector>

#include "mosquitto.hpp"

using sluice::plugins::MqttSource;
using sluice::sdk::OwnedMessage;
using sluice::sdk::testing::Harness;
using sluice::sdk::testing::Value;
using sluice::testing::Mosquitto;
using sluice::testing::MosquittoOptions;
using sluice::testing::MosquittoTls;
using sluice::testing::wait_until;
using namespace std::chrono_literals;

namespace {

using Source = Harness<MqttSource>;

template <class S>
bool has_state(const S& s, sluice_status state, const std::string& part = {}) {
    for (const auto& [st, reason] : s.host().states()) {
        if (st == state && reason.find(part) != std::string::npos) return true;
    }
    return false;
}

// Connected and subscribed: the plugin reports OK only after the SUBACK.
template <class S>
void wait_ready(const S& s, std::size_t oks = 1) {
    const bool ready = wait_until([&] {
        std::size_t n = 0;
        for (const auto& [st, reason] : s.host().states()) n += st == SLUICE_OK ? 1 : 0;
        return n >= oks;
    });
    if (!ready) {
        for (const auto& [level, text] : s.host().logs()) UNSCOPED_INFO("log: " << text);
    }
    REQUIRE(ready);
}

template <class S>
std::vector<OwnedMessage> wait_for_messages(const S& s, std::size_t n,
                                            std::chrono::milliseconds timeout = 10s) {
    wait_until([&] { return s.emitted().size() >= n; }, timeout);
    return s.emitted();
}

std::string header(const OwnedMessage& m, const std::string& key) {
    for (const auto& [k, v] : m.headers) {
        if (k == key) return v;
    }
    return "<none>";
}

std::map<std::string, Value> options(const std::string& url, std::vector<std::string> topics,
                                     const std::string& client_id) {
    Value t("");
    t.kind = Value::Kind::list;
    t.items = std::move(topics);
    return {{"url", {url}},
            {"topics", t},
            {"client_id", client_id},
            {"reconnect_min_ms", "50"},
            {"reconnect_max_ms", "200"}};
}

}  // namespace

TEST_CASE("QoS 0, 1 and 2 messages arrive with topic, payload and QoS", "[mqtt-source][broker]") {
    Mosquitto broker;
    auto opts = options(broker.url(), {"t/#"}, "qos-test");
    opts.insert_or_assign("qos", "2");
    Source source(opts);
    wait_ready(source);

    const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    broker.publish("t/zero", "p0", 0);
    broker.publish("t/one", "p1", 1);
    broker.publish("t/two", std::string("p2\0bin", 6), 2);
    const auto got = wait_for_messages(source, 3);
    REQUIRE(got.size() == 3);
    CHECK(got[0].topic == "t/zero");
    CHECK(got[0].payload == "p0");
    CHECK(got[0].qos == 0);
    CHECK(got[1].topic == "t/one");
    CHECK(got[1].qos == 1);
    CHECK(got[2].topic == "t/two");
    CHECK(got[2].payload == std::string("p2\0bin", 6));
    CHECK(got[2].qos == 2);
    for (const auto& m : got) {
        CHECK(m.timestamp_ms >= before);
        CHECK_FALSE(m.key.has_value());
        CHECK(header(m, "mqtt.topic") == m.topic);
        CHECK(header(m, "mqtt.qos") == std::to_string(m.qos));
        CHECK(header(m, "mqtt.retain") == "false");
        CHECK((m.flags & SLUICE_MESSAGE_RETAIN) == 0);
    }

    SECTION("the subscription QoS caps the delivered QoS") {
        auto capped = options(broker.url(), {"c/#"}, "qos-cap");
        capped.insert_or_assign("qos", "0");
        Source low(capped);
        wait_ready(low);
        broker.publish("c/x", "q2", 2);
        const auto m = wait_for_messages(low, 1);
        REQUIRE(m.size() == 1);
        CHECK(m[0].qos == 0);
    }
}

TEST_CASE("MQTT 5 user properties become headers in order, then mqtt.* headers",
          "[mqtt-source][broker][headers]") {
    Mosquitto broker;
    const std::vector<std::pair<std::string, std::string>> props{
        {"device", "d1"}, {"unit", "C"}, {"device", "d2"}};

    SECTION("with metadata headers") {
        Source source(options(broker.url(), {"h/#"}, "headers-test"));
        wait_ready(source);
        broker.publish("h/1", "21.5", 1, false, props);
        const auto got = wait_for_messages(source, 1);
        REQUIRE(got.size() == 1);
        const std::vector<std::pair<std::string, std::string>> expected{
            {"device", "d1"},      {"unit", "C"},     {"device", "d2"},
            {"mqtt.topic", "h/1"}, {"mqtt.qos", "1"}, {"mqtt.retain", "false"}};
        CHECK(got[0].headers == expected);
    }
    SECTION("without metadata headers") {
        auto opts = options(broker.url(), {"h/#"}, "headers-plain");
        opts.insert_or_assign("metadata_headers", "false");
        Source source(opts);
        wait_ready(source);
        broker.publish("h/2", "x", 1, false, props);
        const auto got = wait_for_messages(source, 1);
        REQUIRE(got.size() == 1);
        REQUIRE(got[0].headers.size() == 3);
        CHECK(got[0].headers[2] == std::pair<std::string, std::string>{"device", "d2"});
    }
    SECTION("retained messages carry the retain flag") {
        broker.publish("h/retained", "last", 1, true);
        Source source(options(broker.url(), {"h/retained"}, "headers-retain"));
        const auto got = wait_for_messages(source, 1);
        REQUIRE(got.size() == 1);
        CHECK((got[0].flags & SLUICE_MESSAGE_RETAIN) != 0);
        CHECK(header(got[0], "mqtt.retain") == "true");
    }
}

TEST_CASE("wildcard filters select the matching topics", "[mqtt-source][broker][topics]") {
    Mosquitto broker;
    Source source(options(broker.url(), {"s/+/temp", "x/#"}, "wildcards"));
    wait_ready(source);
    for (const char* t : {"s/a/temp", "s/a/b/temp", "s/b/temp", "s/b/hum", "x", "x/y/z", "y/x"}) {
        broker.publish(t, t);
    }
    broker.publish("x/end", "end");
    const bool ended = wait_until([&] {
        for (const auto& m : source.emitted()) {
            if (m.topic == "x/end") return true;
        }
        return false;
    });
    REQUIRE(ended);
    std::multiset<std::string> topics;
    for (const auto& m : source.emitted()) topics.insert(m.topic);
    CHECK(topics == std::multiset<std::string>{"s/a/temp", "s/b/temp", "x", "x/y/z", "x/end"});
}

TEST_CASE("a shared subscription splits the messages between two routes",
          "[mqtt-source][broker][shared]") {
    Mosquitto broker;
    Source a(options(broker.url(), {"$share/g/jobs/#"}, "shared-a"));
    Source b(options(broker.url(), {"$share/g/jobs/#"}, "shared-b"));
    wait_ready(a);
    wait_ready(b);
    constexpr int kCount = 100;
    std::vector<std::string> payloads;
    for (int i = 0; i < kCount; ++i) payloads.push_back(std::to_string(i));
    broker.publish_lines("jobs/7", payloads);
    REQUIRE(wait_until([&] { return a.emitted().size() + b.emitted().size() >= kCount; }));
    std::this_thread::sleep_for(200ms);  // a duplicate would show up now
    std::multiset<std::string> got;
    for (const auto& m : a.emitted()) got.insert(m.payload);
    for (const auto& m : b.emitted()) got.insert(m.payload);
    CHECK(a.emitted().size() > 0);
    CHECK(b.emitted().size() > 0);
    REQUIRE(got.size() == kCount);
    for (const auto& p : payloads) CHECK(got.count(p) == 1);
}

TEST_CASE("broker down at start: RETRY is reported, then messages flow",
          "[mqtt-source][broker][reconnect]") {
    MosquittoOptions down;
    down.start = false;
    Mosquitto broker(down);
    Source source(options(broker.url(), {"r/#"}, "down-at-start"));
    REQUIRE(wait_until(
        [&] { return has_state(source, SLUICE_RETRY, "cannot connect to " + broker.url()); }));
    CHECK_FALSE(has_state(source, SLUICE_OK));

    broker.start();
    wait_ready(source);
    {
        broker.publish("r/1", "after start");
        REQUIRE(wait_for_messages(source, 1).size() == 1);
    }

    CHECK(source.metric("mqtt_connects_total", "down-at-start") == 1.0);
    CHECK(source.metric("mqtt_connected") == 1.0);
    CHECK(source.metric("mqtt_connection_losses_total") == 0.0);

    SECTION("a lost connection is re-established and re-subscribed") {
        broker.stop();
        REQUIRE(wait_until([&] { return has_state(source, SLUICE_RETRY, "lost"); }));
        CHECK(source.metric("mqtt_connected") == 0.0);
        CHECK(source.metric("mqtt_connection_losses_total") == 1.0);
        broker.start();  // no persistence: the session is new and must be subscribed again
        wait_ready(source, 2);
        CHECK(source.metric("mqtt_connects_total") == 2.0);
        CHECK(source.metric("mqtt_session_present") == 0.0);
        broker.publish("r/2", "after restart");
        const auto got = wait_for_messages(source, 2);
        REQUIRE(got.size() == 2);
        CHECK(got[1].payload == "after restart");
    }
}

TEST_CASE("a persistent session keeps messages while the route is stopped",
          "[mqtt-source][broker][session]") {
    MosquittoOptions config;
    config.extra_config = {"max_queued_messages 10000"};
    Mosquitto broker(config);
    const std::string version = GENERATE(as<std::string>{}, "5", "3.1.1");
    INFO("MQTT " << version);
    auto opts = options(broker.url(), {"p/#"}, "persistent-" + version);
    opts.insert_or_assign("mqtt_version", version);
    {
        Source first(opts);
        wait_ready(first);
    }
    {
        std::vector<std::string> payloads;
        for (int i = 0; i < 20; ++i) payloads.push_back(std::to_string(i));
        broker.publish_lines("p/away", payloads, 1);
    }
    Source second(opts);
    const auto got = wait_for_messages(second, 20);
    REQUIRE(got.size() == 20);
    for (int i = 0; i < 20; ++i)
        CHECK(got[static_cast<std::size_t>(i)].payload == std::to_string(i));
    bool resumed = false;
    for (const auto& [level, text] : second.host().logs()) {
        resumed = resumed || text.find("session resumed") != std::string::npos;
    }
    CHECK(resumed);
    CHECK(second.metric("mqtt_session_present") == 1.0);
}

TEST_CASE("clean_session true drops what was published while away",
          "[mqtt-source][broker][session]") {
    Mosquitto broker;
    auto opts = options(broker.url(), {"c/#"}, "clean");
    opts.insert_or_assign("clean_session", "true");
    {
        Source first(opts);
        wait_ready(first);
    }
    broker.publish("c/away", "lost");
    Source second(opts);
    wait_ready(second);
    broker.publish("c/back", "kept");
    const auto got = wait_for_messages(second, 1);
    std::this_thread::sleep_for(100ms);
    REQUIRE(second.emitted().size() == 1);
    CHECK(got[0].payload == "kept");
}

TEST_CASE("the default client id is derived from the route", "[mqtt-source][broker][client-id]") {
    Mosquitto broker;
    Source source({{"url", {broker.url()}}, {"topics", {"d/#"}}});
    wait_ready(source);
    bool logged = false;
    for (const auto& [level, text] : source.host().logs()) {
        logged = logged || text.find("client id 'sluice-test-route-") != std::string::npos;
    }
    CHECK(logged);
    CHECK_THAT(broker.log(), Catch::Contains("sluice-test-route-"));
}

TEST_CASE("messages the route does not take are counted and logged",
          "[mqtt-source][broker][backpressure]") {
    Mosquitto broker;
    Source source(options(broker.url(), {"f/#"}, "full-queue"));
    wait_ready(source);
    source.output().refuse(true);
    broker.publish("f/1", "a");
    broker.publish("f/2", "b");
    REQUIRE(wait_until([&] {
        for (const auto& [level, text] : source.host().logs()) {
            if (text.find("queue is full") != std::string::npos) return true;
        }
        return false;
    }));
    source.output().refuse(false);
    broker.publish("f/3", "c");
    const auto got = wait_for_messages(source, 1);
    REQUIRE(got.size() == 1);
    CHECK(got[0].payload == "c");
}

namespace {

struct TestCertificates {
    std::filesystem::path dir;
    std::filesystem::path ca, cert, key;

    TestCertificates() {
        char pattern[] = "/tmp/sluice-tls-XXXXXX";
        REQUIRE(::mkdtemp(pattern) != nullptr);
        dir = pattern;
        ca = dir / "ca.pem";
        cert = dir / "server.pem";
        key = dir / "server.key";
        const std::string d = dir.string();
        const std::string script =
            "cd '" + d +
            "' && "
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
            "-keyout ca.key -out ca.pem -days 2 -subj /CN=sluice-test-ca "
            "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign,cRLSign && "
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
            "-keyout server.key -out server.csr -subj /CN=localhost && "
            "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' "
            "> ext.cnf && "
            "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
            "-out server.pem -days 2 -extfile ext.cnf";
        const int rc = std::system(("(" + script + ") > '" + d + "/openssl.log' 2>&1").c_str());
        INFO("openssl failed; see " << d << "/openssl.log");
        REQUIRE(rc == 0);
    }
    ~TestCertificates() {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
    }
    TestCertificates(const TestCertificates&) = delete;
    TestCertificates& operator=(const TestCertificates&) = delete;
};

}  // namespace

TEST_CASE("TLS: ssl:// with ca_file verifies the broker", "[mqtt-source][broker][tls]") {
    TestCertificates certs;
    MosquittoOptions config;
    config.tls = MosquittoTls{certs.ca, certs.cert, certs.key, false};
    Mosquitto broker(config);

    SECTION("trusted CA: messages flow") {
        auto opts = options(broker.tls_url(), {"tls/#"}, "tls-ok");
        opts.insert_or_assign("ca_file", certs.ca.string());
        Source source(opts);
        wait_ready(source);
        broker.publish("tls/1", "secret reading");
        const auto got = wait_for_messages(source, 1);
        REQUIRE(got.size() == 1);
        CHECK(got[0].payload == "secret reading");
    }
    SECTION("unknown CA: RETRY with the reason, never connected") {
        Source source(options(broker.tls_url(), {"tls/#"}, "tls-untrusted"));
        REQUIRE(wait_until([&] { return has_state(source, SLUICE_RETRY, "cannot connect"); }));
        CHECK_FALSE(has_state(source, SLUICE_OK));
        const auto states = source.host().states();
        CHECK_THAT(states.front().second,
                   Catch::Contains(broker.tls_url()) && Catch::Contains("ca_file"));
    }
    SECTION("verify: false accepts any certificate") {
        auto opts = options(broker.tls_url(), {"tls/#"}, "tls-noverify");
        opts.insert_or_assign("verify", "false");
        Source source(opts);
        wait_ready(source);
    }
}

TEST_CASE("several urls fail over to the first that answers", "[mqtt-source][broker][reconnect]") {
    Mosquitto broker;
    const std::string dead = "tcp://127.0.0.1:" + std::to_string(Mosquitto::free_port());
    auto opts = options(dead, {"fo/#"}, "failover");
    opts.insert_or_assign("url", Value{dead, broker.url()});
    Source source(opts);
    wait_ready(source);
    broker.publish("fo/1", "x");
    REQUIRE(wait_for_messages(source, 1).size() == 1);
}

TEST_CASE("the password is never logged", "[mqtt-source][broker][secret]") {
    Mosquitto broker;
    auto opts = options(broker.url(), {"pw/#"}, "password");
    opts.insert_or_assign("username", "sluice");
    opts.insert_or_assign("password", "hunter2-very-secret");
    {
        Source source(opts);
        wait_ready(source);
        for (const auto& [level, text] : source.host().logs()) {
            CHECK_THAT(text, !Catch::Contains("hunter2"));
        }
    }
}

namespace {

std::size_t count_logs(const Source& s, const std::string& part) {
    std::size_t n = 0;
    for (const auto& [level, text] : s.host().logs()) n += text.find(part) != std::string::npos;
    return n;
}

std::size_t count_in(const std::string& text, const std::string& part) {
    std::size_t n = 0;
    for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
    return n;
}

bool last_state_is(const Source& s, sluice_status state, const std::string& part = {}) {
    const auto states = s.host().states();
    return !states.empty() && states.back().first == state &&
           states.back().second.find(part) != std::string::npos;
}

// The broker's log says the client is connected now.
bool connected_at(const Mosquitto& broker, const std::string& client_id) {
    const std::string log = broker.log();
    return count_in(log, " as " + client_id + " (") >
           count_in(log, "Client " + client_id + " disconnected");
}

std::vector<std::string> numbered(const std::string& prefix, int count) {
    std::vector<std::string> out;
    for (int i = 0; i < count; ++i) out.push_back(prefix + std::to_string(i));
    return out;
}

}  // namespace

TEST_CASE(
    "hold_input on a persistent session disconnects and the broker keeps what arrives meanwhile",
    "[mqtt-source][broker][hold]") {
    REQUIRE(Source::can_hold_input());
    MosquittoOptions config;
    config.extra_config = {"max_queued_messages 10000"};
    Mosquitto broker(config);
    const std::string version = GENERATE(as<std::string>{}, "5", "3.1.1");
    INFO("MQTT " << version);
    const std::string client_id = "hold-" + version;
    auto opts = options(broker.url(), {"hold/#"}, client_id);
    opts.insert_or_assign("mqtt_version", version);
    Source source(opts);
    wait_ready(source);
    broker.publish("hold/before", "before");
    REQUIRE(wait_for_messages(source, 1).size() == 1);

    source.hold_input(true);
    REQUIRE(wait_until([&] { return last_state_is(source, SLUICE_RETRY, "holding back"); }));
    REQUIRE(wait_until(
        [&] { return count_in(broker.log(), "Client " + client_id + " disconnected") == 1; }));
    const auto held = numbered("held-", 100);
    broker.publish_lines("hold/during", held, 1);
    std::this_thread::sleep_for(300ms);
    CHECK(source.emitted().size() == 1);

    source.hold_input(false);
    wait_ready(source, 2);
    const auto got = wait_for_messages(source, 1 + held.size());
    std::this_thread::sleep_for(200ms);  // a duplicate would show up now
    REQUIRE(source.emitted().size() == 1 + held.size());
    for (std::size_t i = 0; i < held.size(); ++i) CHECK(got[i + 1].payload == held[i]);
    CHECK(count_logs(source, "holding back") == 1);
    CHECK(count_logs(source, "room again") == 1);
    CHECK(count_logs(source, "(session resumed)") == 1);
}

TEST_CASE("a storm of hold and resume requests ends in the last one and loses nothing",
          "[mqtt-source][broker][hold]") {
    REQUIRE(Source::can_hold_input());
    MosquittoOptions config;
    config.extra_config = {"max_queued_messages 100000"};
    Mosquitto broker(config);
    Source source(options(broker.url(), {"storm/#"}, "storm"));
    wait_ready(source);

    std::vector<std::string> published;
    const auto storm_while_publishing = [&](int calls, int round) {
        const auto payloads = numbered("r" + std::to_string(round) + "-", 400);
        published.insert(published.end(), payloads.begin(), payloads.end());
        std::exception_ptr failed;
        std::thread publisher([&] {
            try {
                for (std::size_t i = 0; i < payloads.size(); i += 100) {
                    broker.publish_lines("storm/t",
                                         {payloads.begin() + static_cast<std::ptrdiff_t>(i),
                                          payloads.begin() + static_cast<std::ptrdiff_t>(i + 100)});
                }
            } catch (...) {
                failed = std::current_exception();
            }
        });
        // As the host calls it: one thread, never two calls at once, starting with a hold.
        std::thread host([&] {
            for (int i = 0; i < calls; ++i) {
                source.hold_input(i % 2 == 0);
                std::this_thread::sleep_for(std::chrono::milliseconds((i * 7) % 11));
            }
        });
        host.join();
        publisher.join();
        if (failed) std::rethrow_exception(failed);
    };
    const auto all_arrived = [&] {
        std::set<std::string> got;
        for (const auto& m : source.emitted()) got.insert(m.payload);
        for (const auto& p : published) {
            if (got.count(p) == 0) return false;
        }
        return true;
    };

    SECTION("ending with resume: connected and receiving") {
        storm_while_publishing(50, 1);
        REQUIRE(wait_until(all_arrived, 20s));
        REQUIRE(wait_until([&] { return last_state_is(source, SLUICE_OK); }));
        broker.publish("storm/after", "after");
        REQUIRE(wait_until([&] { return source.emitted().back().payload == "after"; }));
    }
    SECTION("ending with hold: disconnected until resumed") {
        storm_while_publishing(51, 2);
        const auto held = [&] {
            return last_state_is(source, SLUICE_RETRY, "holding back") &&
                   !connected_at(broker, "storm");
        };
        REQUIRE(wait_until(held));
        // A hold that lands while a resume's reconnect is under way lets that connection's
        // first messages in before it disconnects again: wait until nothing more arrives.
        std::size_t seen = source.emitted().size();
        REQUIRE(wait_until([&] {
            std::this_thread::sleep_for(500ms);
            const auto now = source.emitted().size();
            const bool quiet = now == seen;
            seen = now;
            return quiet && held();
        }));
        const auto before = source.emitted().size();
        broker.publish_lines("storm/t", {"while-held"});
        std::this_thread::sleep_for(300ms);
        CHECK(source.emitted().size() == before);
        published.push_back("while-held");
        source.hold_input(false);
        REQUIRE(wait_until(all_arrived, 20s));
        REQUIRE(wait_until([&] { return last_state_is(source, SLUICE_OK); }));
    }
    // QoS 1 is at least once: a message in flight when a hold disconnects comes again, marked
    // as a redelivery.
    std::map<std::string, int> copies;
    std::set<std::string> redelivered;
    for (const auto& m : source.emitted()) {
        ++copies[m.payload];
        if ((m.flags & SLUICE_MESSAGE_DUP) != 0) redelivered.insert(m.payload);
    }
    for (const auto& [payload, n] : copies) {
        if (n > 1) CHECK(redelivered.count(payload) == 1);
    }
}

TEST_CASE("a hold that comes while the broker is down keeps the source away until resumed",
          "[mqtt-source][broker][hold]") {
    REQUIRE(Source::can_hold_input());
    MosquittoOptions down;
    down.start = false;
    Mosquitto broker(down);
    Source source(options(broker.url(), {"hd/#"}, "hold-down"));
    REQUIRE(wait_until([&] { return has_state(source, SLUICE_RETRY, "cannot connect"); }));
    source.hold_input(true);
    REQUIRE(wait_until([&] { return last_state_is(source, SLUICE_RETRY, "holding back"); }));
    broker.start();
    std::this_thread::sleep_for(500ms);  // more than reconnect_max_ms
    CHECK(count_in(broker.log(), " as hold-down (") == 0);

    source.hold_input(false);
    wait_ready(source);
    broker.publish("hd/1", "after resume");
    REQUIRE(wait_for_messages(source, 1).size() == 1);
}

TEST_CASE("stop() joins within its deadline while hold requests keep coming",
          "[mqtt-source][broker][hold]") {
    REQUIRE(Source::can_hold_input());
    Mosquitto broker;
    Source source(options(broker.url(), {"hs/#"}, "hold-stop"));
    wait_ready(source);
    std::atomic<bool> done{false};
    std::atomic<int> calls{0};
    std::thread host([&] {
        for (bool hold = true; !done; hold = !hold) {
            source.hold_input(hold);
            ++calls;
            std::this_thread::sleep_for(1ms);
        }
    });
    std::this_thread::sleep_for(300ms);  // holds, connects and disconnects under way
    const auto started = std::chrono::steady_clock::now();
    const auto status = source.stop(1000ms);
    const auto took = std::chrono::steady_clock::now() - started;
    const int calls_at_stop = calls;
    std::this_thread::sleep_for(20ms);  // requests after stop() change nothing
    done = true;
    host.join();
    CHECK(status == SLUICE_OK);
    CHECK(took < 1000ms);
    CHECK(calls > calls_at_stop);
    CHECK(count_logs(source, "stopped after") == 1);
}

TEST_CASE("a source that cannot hold back at the broker keeps receiving and says so once",
          "[mqtt-source][broker][hold]") {
    REQUIRE(Source::can_hold_input());
    Mosquitto broker;
    const auto [option, value] =
        GENERATE(std::pair<std::string, std::string>{"clean_session", "true"},
                 std::pair<std::string, std::string>{"qos", "0"});
    INFO(option << ": " << value);
    const std::string client_id = "no-hold-" + option;
    auto opts = options(broker.url(), {"nh/#"}, client_id);
    opts.insert_or_assign(option, value);
    Source source(opts);
    wait_ready(source);

    source.hold_input(true);
    REQUIRE(wait_until([&] { return count_logs(source, "cannot hold back") == 1; }));
    CHECK(count_logs(source, "cannot hold back at the broker with " + option + ": " + value) == 1);
    broker.publish("nh/1", "one");
    REQUIRE(wait_for_messages(source, 1).size() == 1);
    source.hold_input(false);
    source.hold_input(true);
    broker.publish("nh/2", "two");
    REQUIRE(wait_for_messages(source, 2).size() == 2);
    std::this_thread::sleep_for(100ms);
    CHECK(count_logs(source, "cannot hold back") == 1);
    CHECK_FALSE(has_state(source, SLUICE_RETRY));
    CHECK(count_in(broker.log(), "Client " + client_id + " disconnected") == 0);
}

TEST_CASE("a route whose log cannot keep up does not hold up other routes' messages",
          "[mqtt-source][broker][callback]") {
    // paho calls every client's message callback on one thread: a callback that waits for a
    // log line stalls every connection of the process.
    Mosquitto broker;
    Source slow(options(broker.url(), {"slow/#"}, "slow-log"));
    Source other(options(broker.url(), {"other/#"}, "other"));
    wait_ready(slow);
    wait_ready(other);
    slow.output().refuse(true);
    slow.host().stall_logs(true);
    broker.publish("slow/1", "refused, to be logged");
    broker.publish("other/1", "on time");
    const bool on_time = wait_for_messages(other, 1, 3s).size() == 1;
    slow.host().stall_logs(false);
    CHECK(on_time);
    REQUIRE(wait_until([&] { return count_logs(slow, "queue is full") == 1; }));
}

TEST_CASE("MQTT 5: the broker does not send what is over the route's max_payload_bytes",
          "[mqtt-source][broker][max-packet]") {
    Mosquitto broker;
    constexpr std::uint64_t kLimit = 1024;
    const std::string oversize(kLimit + sluice::plugins::mqtt_source::kPublishAllowance, 'x');
    // Over max_payload_bytes, but within the allowance for topic and properties: the broker
    // sends it and the route refuses (and counts) it.
    const std::string within(kLimit + 1, 'y');

    SECTION("MQTT 5 sends Maximum Packet Size") {
        Source source(options(broker.url(), {"mp/#"}, "max-packet"), {kLimit});
        wait_ready(source);
        CHECK(count_logs(source,
                         "maximum packet size " +
                             std::to_string(kLimit +
                                            sluice::plugins::mqtt_source::kPublishAllowance)) == 1);
        broker.publish("mp/big", oversize, 1);
        broker.publish("mp/within", within, 1);
        broker.publish("mp/small", "ok", 1);
        const auto got = wait_for_messages(source, 2);
        std::this_thread::sleep_for(200ms);
        REQUIRE(source.emitted().size() == 2);
        CHECK(got[0].payload == within);
        CHECK(got[1].payload == "ok");
        CHECK_THAT(broker.log(),
                   Catch::Contains("Dropping too large outgoing PUBLISH for max-packet"));
    }
    SECTION("MQTT 3.1.1 has no such property: everything arrives") {
        auto opts = options(broker.url(), {"mp/#"}, "max-packet-311");
        opts.insert_or_assign("mqtt_version", "3.1.1");
        Source source(opts, {kLimit});
        wait_ready(source);
        CHECK(count_logs(source, "maximum packet size") == 0);
        broker.publish("mp/big", oversize, 1);
        broker.publish("mp/small", "ok", 1);
        REQUIRE(wait_for_messages(source, 2).size() == 2);
    }
    SECTION("no limit when the host does not tell max_payload_bytes") {
        Source source(options(broker.url(), {"mp/#"}, "max-packet-unknown"));
        wait_ready(source);
        broker.publish("mp/big", oversize, 1);
        REQUIRE(wait_for_messages(source, 1).size() == 1);
    }
}

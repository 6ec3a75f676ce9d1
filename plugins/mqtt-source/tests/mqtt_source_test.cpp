// mqtt-source against a real mosquitto broker, driven through the SDK's Harness exactly as the
// host drives it. Every wait is bounded.
#include "../src/mqtt_source.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sluice/sdk/testing.hpp>

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

bool has_state(const Source& s, sluice_status state, const std::string& part = {}) {
    for (const auto& [st, reason] : s.host().states()) {
        if (st == state && reason.find(part) != std::string::npos) return true;
    }
    return false;
}

// Connected and subscribed: the plugin reports OK only after the SUBACK.
void wait_ready(const Source& s, std::size_t oks = 1) {
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

std::vector<OwnedMessage> wait_for_messages(const Source& s, std::size_t n) {
    wait_until([&] { return s.emitted().size() >= n; });
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

    SECTION("a lost connection is re-established and re-subscribed") {
        broker.stop();
        REQUIRE(wait_until([&] { return has_state(source, SLUICE_RETRY, "lost"); }));
        broker.start();  // no persistence: the session is new and must be subscribed again
        wait_ready(source, 2);
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
        const int rc =
            std::system(("(" + script + ") > '" + d + "/openssl.log' 2>&1").c_str());
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

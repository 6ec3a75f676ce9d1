// Option checks that need no broker: topic filters, urls, default client ids, validate().
#include "../src/settings.hpp"

#include <catch2/catch.hpp>
#include <sluice/sdk/testing.hpp>

#include "../src/client_id.hpp"
#include "../src/mqtt_source.hpp"
#include "../src/topic_filter.hpp"

using sluice::plugins::MqttSource;
using sluice::plugins::mqtt_source::default_client_id;
using sluice::plugins::mqtt_source::kMaxMqttPacket;
using sluice::plugins::mqtt_source::kPublishAllowance;
using sluice::plugins::mqtt_source::loopback_url;
using sluice::plugins::mqtt_source::maximum_packet_size;
using sluice::plugins::mqtt_source::Settings;
using sluice::plugins::mqtt_source::stable_hash;
using sluice::plugins::mqtt_source::start_warnings;
using sluice::plugins::mqtt_source::topic_filter_error;
using sluice::plugins::mqtt_source::url_error;
using sluice::sdk::testing::ConfigBuilder;
using sluice::sdk::testing::Harness;
using sluice::sdk::testing::Reported;
using sluice::sdk::testing::Value;

namespace {

std::vector<Reported> validate(std::map<std::string, Value> values) {
    return Harness<MqttSource>::validate(std::move(values));
}

std::map<std::string, Value> base() {
    return {{"url", {"tcp://127.0.0.1:1883"}}, {"topics", {"a/#"}}};
}

std::string all(const std::vector<Reported>& r) {
    std::string s;
    for (const auto& x : r) s += x.key + ": " + x.message + "\n";
    return s;
}

}  // namespace

TEST_CASE("topic filters follow the MQTT rules", "[mqtt-source][topics]") {
    for (const char* ok : {"a", "a/b", "#", "+", "a/#", "a/+/c", "+/+", "/", "a//b", "/#", "$SYS/#",
                           "$share/g/a/#", "$share/group-1/+/t"}) {
        INFO(ok);
        CHECK(topic_filter_error(ok).empty());
    }
    CHECK_THAT(topic_filter_error("a/#/b"), Catch::Contains("'#' must be the last level"));
    CHECK_THAT(topic_filter_error("a/b#"), Catch::Contains("'#' must be a whole level"));
    CHECK_THAT(topic_filter_error("a/b+/c"), Catch::Contains("'+' must be a whole level"));
    CHECK_THAT(topic_filter_error(""), Catch::Contains("empty"));
    CHECK_THAT(topic_filter_error("$share/g"), Catch::Contains("filter is missing"));
    CHECK_THAT(topic_filter_error("$share//a"), Catch::Contains("group"));
    CHECK_THAT(topic_filter_error("$share/g+/a"), Catch::Contains("group"));
    CHECK_THAT(topic_filter_error("$share/g/a/#/b"), Catch::Contains("shared subscription"));
    CHECK_THAT(topic_filter_error("$share/g/"), Catch::Contains("empty"));
}

TEST_CASE("broker urls are tcp:// or ssl:// with host and port", "[mqtt-source][url]") {
    for (const char* ok :
         {"tcp://127.0.0.1:1883", "ssl://broker.example:8883", "tcp://[::1]:1883"}) {
        INFO(ok);
        CHECK(url_error(ok).empty());
    }
    CHECK_THAT(url_error("mqtt://h:1883"), Catch::Contains("not tcp://host:port"));
    CHECK_THAT(url_error("tcp://h"), Catch::Contains("no port"));
    CHECK_THAT(url_error("tcp://:1883"), Catch::Contains("no host"));
    CHECK_THAT(url_error("tcp://h:0"), Catch::Contains("1 to 65535"));
    CHECK_THAT(url_error("tcp://h:99999"), Catch::Contains("1 to 65535"));
    CHECK_THAT(url_error("tcp://h:1883/x"), Catch::Contains("path"));
}

TEST_CASE("Maximum Packet Size leaves room for topic and properties, within MQTT's limit",
          "[mqtt-source][max-packet]") {
    CHECK(maximum_packet_size(0) == 0);  // unknown: no limit sent
    CHECK(maximum_packet_size(1) == 1 + kPublishAllowance);
    CHECK(maximum_packet_size(1048576) == 1048576 + kPublishAllowance);
    CHECK(maximum_packet_size(kMaxMqttPacket - kPublishAllowance - 1) == kMaxMqttPacket - 1);
    CHECK(maximum_packet_size(kMaxMqttPacket - kPublishAllowance) == kMaxMqttPacket);
    CHECK(maximum_packet_size(UINT64_MAX) == kMaxMqttPacket);
}

TEST_CASE("default client ids are stable and differ per route", "[mqtt-source][client-id]") {
    // FNV-1a test vectors: the hash, and so every default client id, never changes.
    CHECK(stable_hash("") == 0x811c9dc5u);
    CHECK(stable_hash("a") == 0xe40c292cu);
    CHECK(default_client_id("temperature", "host-1") == default_client_id("temperature", "host-1"));
    CHECK(default_client_id("temperature", "host-1") != default_client_id("humidity", "host-1"));
    CHECK(default_client_id("temperature", "host-1") != default_client_id("temperature", "host-2"));
    CHECK_THAT(default_client_id("temperature", "host-1"),
               Catch::Matches("sluice-temperature-[0-9a-f]{8}"));
}

TEST_CASE("validate reports each problem with its option", "[mqtt-source][validate]") {
    SECTION("a valid configuration passes") { CHECK(validate(base()).empty()); }
    SECTION("bad topic filter names the item") {
        auto v = base();
        v.insert_or_assign("topics", Value{"ok/+", "a/#/b"});
        const auto r = validate(v);
        REQUIRE(r.size() == 1);
        CHECK(r[0].key == "topics");
        CHECK_THAT(r[0].message, Catch::Contains("item 2 'a/#/b'") &&
                                     Catch::Contains("'#' must be the last level"));
    }
    SECTION("connection: shared with MQTT 3.1.1") {
        auto v = base();
        v.insert_or_assign("connection", "shared");
        v.insert_or_assign("mqtt_version", "3.1.1");
        const auto r = validate(v);
        REQUIRE(r.size() == 1);
        CHECK(r[0].key == "connection");
        CHECK_THAT(r[0].message, Catch::Contains("mqtt_version: 5"));
    }
    SECTION("duplicate topic") {
        auto v = base();
        v.insert_or_assign("topics", Value{"a/b", "a/b"});
        CHECK_THAT(all(validate(v)), Catch::Contains("listed twice"));
    }
    SECTION("bad url") {
        auto v = base();
        v.insert_or_assign("url", Value{"tcp://127.0.0.1:1883", "http://x:80"});
        const auto r = validate(v);
        REQUIRE(r.size() == 1);
        CHECK(r[0].key == "url");
        CHECK_THAT(r[0].message, Catch::Contains("item 2"));
    }
    SECTION("cert_file without key_file") {
        auto v = base();
        v.insert_or_assign("url", Value{"ssl://broker:8883"});
        v.insert_or_assign("cert_file", "client.pem");
        const auto r = validate(v);
        REQUIRE(r.size() == 1);
        CHECK(r[0].key == "key_file");
    }
    SECTION("ssl:// and tcp:// in one list: a fail-over must not drop TLS") {
        auto v = base();
        v.insert_or_assign("url", Value{"ssl://a:8883", "tcp://b:1883"});
        const auto r = validate(v);
        REQUIRE(r.size() == 1);
        CHECK(r[0].key == "url");
        CHECK(r[0].message ==
              "mixes ssl:// and tcp:// urls: a fail-over would drop TLS; use ssl:// for every url");
    }
    SECTION("ssl:// without ca_file uses the system CAs") {
        auto v = base();
        v.insert_or_assign("url", Value{"ssl://broker:8883"});
        CHECK(validate(v).empty());
    }
    SECTION("TLS files with only tcp:// urls") {
        auto v = base();
        v.insert_or_assign("ca_file", "ca.pem");
        const auto r = validate(v);
        REQUIRE(r.size() == 1);
        CHECK(r[0].key == "ca_file");
    }
    SECTION("session_expiry_s is ignored with MQTT 3.1.1") {
        auto v = base();
        v.insert_or_assign("mqtt_version", "3.1.1");
        v.insert_or_assign("session_expiry_s", "0");
        CHECK(validate(v).empty());
    }
    SECTION("MQTT 5 persistent session with expiry 0 keeps nothing") {
        auto v = base();
        v.insert_or_assign("session_expiry_s", "0");
        const auto r = validate(v);
        REQUIRE(r.size() == 1);
        CHECK(r[0].key == "session_expiry_s");
        v.insert_or_assign("clean_session", "true");
        CHECK(validate(v).empty());
    }
    SECTION("reconnect bounds") {
        auto v = base();
        v.insert_or_assign("reconnect_min_ms", "5000");
        v.insert_or_assign("reconnect_max_ms", "1000");
        CHECK_THAT(all(validate(v)), Catch::Contains("reconnect_max_ms"));
    }
    SECTION("MQTT 3.1.1 password needs a username") {
        auto v = base();
        v.insert_or_assign("mqtt_version", "3.1.1");
        v.insert_or_assign("password", "s3cret");
        const auto r = validate(v);
        REQUIRE(r.size() == 1);
        CHECK(r[0].key == "password");
        CHECK_THAT(r[0].message, !Catch::Contains("s3cret"));
    }
}

TEST_CASE("the password is a secret in the spec", "[mqtt-source][spec]") {
    const auto& d = Harness<MqttSource>::descriptor();
    CHECK(std::string(d.id) == "mqtt-source");
    CHECK(std::string(d.version) == "1.0.0");
    CHECK(d.kind == SLUICE_KIND_SOURCE);
    bool found = false;
    for (std::size_t i = 0; i < d.n_fields; ++i) {
        const auto& f = *d.fields[i];
        CHECK(std::string(f.description).size() > 20);
        if (std::string(f.name) == "password") {
            found = true;
            CHECK((f.flags & SLUICE_FIELD_SECRET) != 0);
        }
    }
    CHECK(found);
}

TEST_CASE("an instance that never started is destroyed cleanly", "[mqtt-source][lifecycle]") {
    const auto& d = Harness<MqttSource>::descriptor();
    ConfigBuilder config(d, base());
    sluice::sdk::testing::FakeHost host;
    void* instance = nullptr;
    sluice_error err{};
    REQUIRE(d.create(host.api(), config.get(), &instance, &err) == SLUICE_OK);
    d.destroy(instance);
}

TEST_CASE("an unreadable ca_file fails create with the option named", "[mqtt-source][tls]") {
    const auto& d = Harness<MqttSource>::descriptor();
    auto v = base();
    v.insert_or_assign("url", Value{"ssl://127.0.0.1:8883"});
    v.insert_or_assign("ca_file", "/nonexistent/ca.pem");
    ConfigBuilder config(d, v);
    sluice::sdk::testing::FakeHost host;
    void* instance = nullptr;
    sluice_error err{};
    CHECK(d.create(host.api(), config.get(), &instance, &err) == SLUICE_FATAL);
    CHECK_THAT(std::string(err.message), Catch::Contains("ca_file"));
}

TEST_CASE("unsafe but valid settings are warned about at start", "[mqtt-source][security]") {
    for (const char* local : {"tcp://localhost:1883", "tcp://127.0.0.1:1883", "tcp://127.8.9.1:1",
                              "tcp://[::1]:1883"}) {
        INFO(local);
        CHECK(loopback_url(local));
    }
    for (const char* remote : {"tcp://broker:1883", "tcp://10.0.0.1:1883", "tcp://[::2]:1883",
                               "tcp://127.example.com:1883"}) {
        INFO(remote);
        CHECK_FALSE(loopback_url(remote));
    }
    Settings s;
    s.urls = {"tcp://127.0.0.1:1883", "tcp://broker.example:1883"};
    CHECK(start_warnings(s).empty());  // no password: nothing secret goes in the clear
    s.has_password = true;
    CHECK(start_warnings(s) ==
          std::vector<std::string>{"the password goes to tcp://broker.example:1883 unencrypted: "
                                   "use ssl:// for a broker that is not on this machine"});
    s.urls = {"ssl://broker.example:8883"};
    CHECK(start_warnings(s).empty());
    s.verify = false;
    const auto w = start_warnings(s);
    REQUIRE(w.size() == 1);
    CHECK_THAT(w[0], Catch::StartsWith("verify: false: the broker's certificate is not checked"));
}

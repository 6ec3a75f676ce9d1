// The admin API's answers without a network: token rules, Prometheus text, route JSON, and the
// listen address parser.
#include "sluice/core/admin/admin_api.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <tuple>
#include <vector>

using sluice::RouteState;
using sluice::RouteStatus;
using sluice::admin::AdminApi;
using sluice::admin::Request;

namespace {

RouteStatus status(const std::string& name, RouteState state) {
    RouteStatus s{};
    s.name = name;
    s.state = state;
    s.received = 7;
    s.delivered = 5;
    s.config_hash = "0123456789abcdef";
    s.file = "/etc/sluice/routes/a\"b.yaml";
    s.plugins = {{"source mqtt-source", "mqtt-source 1.0.0"}};
    return s;
}

Request get(const std::string& target, const std::string& auth = {}) {
    return Request{"GET", target, auth};
}

}  // namespace

TEST_CASE("admin: the token guards everything but health and readiness", "[admin]") {
    AdminApi api([] { return std::vector<RouteStatus>{status("a", RouteState::running)}; }, nullptr,
                 "tok");
    CHECK(api.handle(get("/healthz")).status == 200);
    CHECK(api.handle(get("/readyz")).status == 200);
    CHECK(api.handle(get("/metrics")).status == 401);
    CHECK(api.handle(get("/metrics", "Bearer nope")).status == 401);
    CHECK(api.handle(get("/metrics", "Bearer tok2")).status == 401);
    CHECK(api.handle(get("/metrics", "Basic tok")).status == 401);
    CHECK(api.handle(get("/metrics", "Bearer tok")).status == 200);
    CHECK(api.handle(get("/api/routes?x=1", "Bearer tok")).status == 200);
    CHECK(api.handle(Request{"POST", "/api/routes", "Bearer tok"}).status == 405);
}

TEST_CASE("admin: readiness names the routes that do not run", "[admin]") {
    AdminApi api(
        [] {
            return std::vector<RouteStatus>{status("a", RouteState::running),
                                            status("b", RouteState::degraded)};
        },
        nullptr, "");
    const auto r = api.handle(get("/readyz"));
    CHECK(r.status == 503);
    CHECK_THAT(r.body, Catch::Contains("b: degraded"));
    CHECK_THAT(r.body, !Catch::Contains("a: "));
}

TEST_CASE("admin: Prometheus text has one family per metric and escaped labels", "[admin]") {
    const auto text = AdminApi::metrics_text({status("r\"1", RouteState::running)}, {}, 1.5);
    CHECK_THAT(text, Catch::Contains("# TYPE sluice_route_messages_received_total counter\n"));
    CHECK_THAT(text, Catch::Contains("sluice_route_messages_received_total{route=\"r\\\"1\"} 7\n"));
    CHECK_THAT(text, Catch::Contains("sluice_route_state{route=\"r\\\"1\",state=\"running\"} 1\n"));
    CHECK_THAT(text, Catch::Contains("sluice_route_state{route=\"r\\\"1\",state=\"failed\"} 0\n"));
    CHECK_THAT(text, Catch::Contains("file=\"/etc/sluice/routes/a\\\"b.yaml\""));
    CHECK_THAT(text, Catch::Contains("sluice_process_uptime_seconds 1.500\n"));
    CHECK_THAT(text, Catch::Contains("# TYPE sluice_route_delivery_latency_seconds histogram\n"));
    // Each family's HELP appears once whatever the number of routes.
    const auto two = AdminApi::metrics_text(
        {status("a", RouteState::running), status("b", RouteState::running)}, {}, 0);
    std::size_t helps = 0;
    for (auto at = two.find("# HELP sluice_route_errors_total"); at != std::string::npos;
         at = two.find("# HELP sluice_route_errors_total", at + 1)) {
        ++helps;
    }
    CHECK(helps == 1);
}

TEST_CASE("admin: the latency histogram's buckets are cumulative", "[admin]") {
    auto s = status("h", RouteState::running);
    s.latency = {};
    s.latency[0] = 2;   // <= 1 ms
    s.latency[3] = 3;   // <= 10 ms
    s.latency[13] = 1;  // over 10 s
    s.latency_sum_ms = 20500;
    const auto text = AdminApi::metrics_text({s}, {}, 0);
    const std::string b = "sluice_route_delivery_latency_seconds_bucket{route=\"h\",le=";
    CHECK_THAT(text, Catch::Contains(b + "\"0.001\"} 2\n"));
    CHECK_THAT(text, Catch::Contains(b + "\"0.005\"} 2\n"));
    CHECK_THAT(text, Catch::Contains(b + "\"0.01\"} 5\n"));
    CHECK_THAT(text, Catch::Contains(b + "\"10\"} 5\n"));
    CHECK_THAT(text, Catch::Contains(b + "\"+Inf\"} 6\n"));
    CHECK_THAT(text,
               Catch::Contains("sluice_route_delivery_latency_seconds_count{route=\"h\"} 6\n"));
    CHECK_THAT(text,
               Catch::Contains("sluice_route_delivery_latency_seconds_sum{route=\"h\"} 20.500\n"));
}

TEST_CASE("admin: route JSON is valid and escapes what it quotes", "[admin]") {
    auto s = status("a", RouteState::degraded);
    s.last_error = "broker \"x\" down\n";
    s.last_error_ms = 1700000000000;
    const auto j = AdminApi::route_json(s);
    CHECK_THAT(j, Catch::Contains("\"state\":\"degraded\""));
    CHECK_THAT(j, Catch::Contains("\"message\":\"broker \\\"x\\\" down\\n\""));
    CHECK_THAT(j, Catch::Contains("{\"stage\":\"source mqtt-source\",\"id\":\"mqtt-source\","
                                  "\"version\":\"1.0.0\"}"));
    CHECK_THAT(j, Catch::Contains("\"received\":7"));
}

TEST_CASE("admin: listen addresses", "[admin]") {
    std::string host, error;
    std::uint16_t port = 1;
    CHECK(sluice::admin::parse_listen("127.0.0.1:9464", host, port, error));
    CHECK((host == "127.0.0.1" && port == 9464));
    CHECK(sluice::admin::parse_listen("[::1]:0", host, port, error));
    CHECK((host == "::1" && port == 0));
    CHECK_FALSE(sluice::admin::parse_listen("9464", host, port, error));
    CHECK_FALSE(sluice::admin::parse_listen("h:99999", host, port, error));
    CHECK_FALSE(sluice::admin::parse_listen("[::1]9464", host, port, error));
    CHECK(sluice::admin::is_loopback("127.0.0.1"));
    CHECK(sluice::admin::is_loopback("127.8.0.1"));
    CHECK(sluice::admin::is_loopback("::1"));
    CHECK(sluice::admin::is_loopback("localhost"));
    CHECK_FALSE(sluice::admin::is_loopback("0.0.0.0"));
    CHECK_FALSE(sluice::admin::is_loopback("192.168.1.2"));
}

TEST_CASE("tap: bounded, newest kept, losses counted, closed when nobody watches", "[admin][tap]") {
    sluice::TapSet set;
    CHECK_FALSE(set.active());
    auto tap = set.open();
    CHECK(set.active());
    sluice::MessageArena batch;
    for (int i = 0; i < 250; ++i) {
        const std::string payload = "p" + std::to_string(i);
        sluice_message m{};
        m.struct_size = sizeof m;
        m.topic = "t";
        m.topic_len = 1;
        m.payload = payload.data();
        m.payload_len = payload.size();
        batch.append(m);
        if (batch.size() == 50) {
            set.publish(batch);
            batch.clear();
        }
    }
    std::uint64_t lost = 0;
    const auto got = tap->take(lost);
    REQUIRE(got.size() == sluice::Tap::kCapacity);
    CHECK(lost == 50);
    CHECK_THAT(got.back(), Catch::Contains("\"payload\":\"p249\""));
    CHECK_THAT(got.front(), Catch::Contains("\"payload\":\"p50\""));
    tap.reset();
    set.publish(batch);  // notices that nobody watches any more
    CHECK_FALSE(set.active());
}

namespace {

// What a plugin writes through its metrics callback, as the route collects it.
std::vector<sluice::PluginMetric> collect(
    const std::string& route, const std::string& stage,
    const std::vector<std::tuple<const char*, std::uint32_t, double, const char*, const char*>>&
        written) {
    std::vector<sluice::PluginMetric> out;
    sluice::PluginMetricCollector collector(out, route);
    const sluice_metric_writer* w = collector.writer_for(stage, "some-plugin");
    for (const auto& [name, type, value, label, label_value] : written) {
        sluice_metric m{};
        m.struct_size = sizeof m;
        m.name = name;
        m.help = "Some help.\nSecond line";
        m.type = type;
        m.value = value;
        m.label_name = label;
        m.label_value = label_value;
        w->put(w->ctx, &m);
    }
    w->put(w->ctx, nullptr);  // ignored, not a crash
    return out;
}

}  // namespace

TEST_CASE("admin: plugin metrics are labelled, grouped and checked", "[admin][metrics]") {
    auto a = collect("a", "source",
                     {{"mqtt_connects_total", SLUICE_METRIC_COUNTER, 3, "client_id", "c\"1"},
                      {"Bad-Name", SLUICE_METRIC_GAUGE, 1, nullptr, nullptr},
                      {"mqtt_connected", SLUICE_METRIC_GAUGE, 1, "route", "spoofed"},
                      {"mqtt_connected", 7u, 1, nullptr, nullptr},
                      {"route_messages_received_total", SLUICE_METRIC_COUNTER, 9, nullptr, nullptr},
                      {"kafka_queue_ratio", SLUICE_METRIC_GAUGE, 0.25, nullptr, nullptr}});
    // Bad names, unknown types and a label that would override the host's are dropped here.
    // ... and so are the host's own families (route_*): two are left.
    REQUIRE(a.size() == 2);
    const auto b = collect("b", "sink",
                           {{"mqtt_connects_total", SLUICE_METRIC_COUNTER, 1, nullptr, nullptr},
                            {"kafka_queue_ratio", SLUICE_METRIC_COUNTER, 5, nullptr, nullptr}});
    a.insert(a.end(), b.begin(), b.end());
    const auto text = AdminApi::metrics_text({status("a", RouteState::running)}, {}, 0, a);
    CHECK_THAT(text, Catch::Contains("# HELP sluice_mqtt_connects_total Some help. Second line\n"
                                     "# TYPE sluice_mqtt_connects_total counter\n"
                                     "sluice_mqtt_connects_total{route=\"a\",stage=\"source\","
                                     "plugin=\"some-plugin\",client_id=\"c\\\"1\"} 3\n"
                                     "sluice_mqtt_connects_total{route=\"b\",stage=\"sink\","
                                     "plugin=\"some-plugin\"} 1\n"));
    CHECK_THAT(text, Catch::Contains("} 0.25\n"));
    // One name, one type: b's counter of a gauge's name is left out; and a plugin cannot
    // publish into the host's own families.
    CHECK_THAT(text, !Catch::Contains("sluice_kafka_queue_ratio{route=\"b\""));
    CHECK_THAT(text, !Catch::Contains("sluice_route_messages_received_total{route=\"a\",stage"));
    CHECK_THAT(text, !Catch::Contains("Bad-Name"));
    CHECK_THAT(text, !Catch::Contains("spoofed"));

    const auto j = AdminApi::route_json(status("a", RouteState::running), b);
    CHECK_THAT(j, Catch::Contains("\"plugin_metrics\":[{\"stage\":\"sink\",\"plugin\":"
                                  "\"some-plugin\",\"name\":\"sluice_mqtt_connects_total\","
                                  "\"type\":\"counter\",\"value\":1}"));
}

TEST_CASE("admin: plugin label values are escaped, made UTF-8, and a series appears once",
          "[admin][metrics]") {
    const auto m =
        collect("r", "sink",
                {{"kafka_delivery_errors_total", SLUICE_METRIC_COUNTER, 1, "error", "a\\b\nc\xff"},
                 {"kafka_delivery_errors_total", SLUICE_METRIC_COUNTER, 1, "error", "a\\b\nc\xff"},
                 {"kafka_ratio", SLUICE_METRIC_GAUGE, std::nan(""), nullptr, nullptr},
                 {"kafka_limit", SLUICE_METRIC_GAUGE, HUGE_VAL, nullptr, nullptr}});
    const auto text = AdminApi::metrics_text({}, {}, 0, m);
    const std::string series =
        "sluice_kafka_delivery_errors_total{route=\"r\",stage=\"sink\","
        "plugin=\"some-plugin\",error=\"a\\\\b\\nc\\\\xff\"} 1\n";
    CHECK_THAT(text, Catch::Contains(series));
    CHECK(text.find(series) == text.rfind(series));  // written twice, published once
    CHECK_THAT(text, Catch::Contains("plugin=\"some-plugin\"} NaN\n"));
    CHECK_THAT(text, Catch::Contains("plugin=\"some-plugin\"} +Inf\n"));
}

// Manifest parsing and validation: a YAML snippet in, the exact diagnostics out.
#include "sluice/core/manifest.hpp"

#include <catch2/catch.hpp>
#include <fstream>

#include "test_plugins.hpp"

namespace fs = std::filesystem;

namespace {

const sluice::PluginRegistry& registry() { return sluice::test::shipped_plugins(); }

sluice::EnvLookup env() {
    return [](const std::string& name) -> std::optional<std::string> {
        if (name == "OUT_DIR") return "/tmp/out";
        return std::nullopt;
    };
}

struct Result {
    std::vector<sluice::RouteSpec> routes;
    std::vector<std::string> errors;
    std::string file;
};

Result load(const std::string& yaml) {
    static int n = 0;
    const fs::path dir =
        fs::temp_directory_path() / ("sluice-manifest-test-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const fs::path file = dir / ("m" + std::to_string(n++) + ".yaml");
    std::ofstream(file) << yaml;
    sluice::Diagnostics diag;
    Result r;
    r.routes = sluice::load_routes({file}, registry(), diag, env());
    for (const auto& d : diag.items()) r.errors.push_back(d.to_string());
    r.file = file.string();
    return r;
}

const char* const kValid = R"(route: temps
source:
  test-source:
    topic: sensors/temperature/s1
    messages: ["21.5", "22"]
transforms:
  - json-transform:
      parse: number
      set: { node: "{{topic.2}}" }
      key: "{{json.node}}"
sink:
  file-sink:
    path: ${OUT_DIR}/{{route}}.jsonl
)";

}  // namespace

TEST_CASE("a valid manifest loads with defaults filled in", "[core][manifest]") {
    const auto r = load(kValid);
    REQUIRE(r.errors.empty());
    REQUIRE(r.routes.size() == 1);
    const auto& route = r.routes[0];
    CHECK(route.name == "temps");
    CHECK(route.options.buffer.max_bytes == 16u << 20);
    CHECK(route.options.buffer.type == sluice::BufferOptions::Type::memory);
    CHECK(route.options.buffer.when_full == sluice::BufferOptions::WhenFull::block);
    CHECK(route.source.plugin->id == "test-source");
    REQUIRE(route.transforms.size() == 1);
    CHECK(route.sink.plugin->id == "file-sink");
    const auto& entries = route.sink.config->entries();
    const auto path =
        std::find_if(entries.begin(), entries.end(), [](const auto& e) { return e.key == "path"; });
    REQUIRE(path != entries.end());
    CHECK(path->value == "/tmp/out/{{route}}.jsonl");  // ${VAR} replaced, template kept
    const auto format = std::find_if(entries.begin(), entries.end(),
                                     [](const auto& e) { return e.key == "format"; });
    REQUIRE(format != entries.end());
    CHECK(format->value == "jsonl");  // default
}

TEST_CASE("several routes per file, and route options", "[core][manifest]") {
    const auto r = load(std::string(kValid) + "---\n" +
                        "route: second\nmax_payload_bytes: 900\n"
                        "buffer: {max_bytes: 5000, when_full: drop_oldest, "
                        "type: disk, fsync: always}\n"
                        "on_error: stop\nsource: {test-source: {generate: 3}}\n"
                        "sink: {file-sink: {path: /tmp/x}}\n");
    REQUIRE(r.errors.empty());
    REQUIRE(r.routes.size() == 2);
    CHECK(r.routes[1].options.buffer.max_bytes == 5000);
    CHECK(r.routes[1].options.buffer.when_full == sluice::BufferOptions::WhenFull::drop_oldest);
    CHECK(r.routes[1].options.buffer.type == sluice::BufferOptions::Type::disk);
    CHECK(r.routes[1].options.buffer.fsync == sluice::BufferOptions::Fsync::always);
    CHECK(r.routes[1].options.on_error == sluice::RouteOptions::OnError::stop);
    CHECK(r.routes[0].fingerprint() != r.routes[1].fingerprint());
    CHECK(load(kValid).routes[0].fingerprint() == r.routes[0].fingerprint());
}

TEST_CASE("validation errors name file:line:col, the path and the remedy", "[core][manifest]") {
    struct Case {
        const char* what;
        std::string yaml;
        std::vector<std::string> expected;  // each must appear in one error, same count
    };
    const std::string head = "route: r1\nsource:\n  test-source:\n    generate: 1\n";
    const std::string sink = "sink:\n  file-sink:\n    path: /tmp/x\n";
    const std::vector<Case> cases = {
        {"unknown key lists the allowed keys",
         head + "    topik: a\n" + sink,
         {":5:5: route r1 > source test-source > topik: unknown key 'topik' (allowed: file, "
          "generate, interval_ms, messages, repeat, skip_header, topic)"}},
        {"wrong type",
         head + "    repeat: many\n" + sink,
         {":5:13: route r1 > source test-source > repeat: expected an integer, got 'many'"}},
        {"value out of range",
         head + "    repeat: -1\n" + sink,
         {":5:13: route r1 > source test-source > repeat: -1 is outside 0..1000000000"}},
        {"missing required key",
         head + "sink:\n  file-sink:\n    format: raw\n",
         {":6:3: route r1 > sink file-sink: missing required key 'path'"}},
        {"value outside its enum",
         head + sink + "    format: xml\n",
         {":8:13: route r1 > sink file-sink > format: 'xml' is not one of: jsonl, raw"}},
        {"unknown plugin lists the known ones",
         head + "sink:\n  kafak-sink: {}\n",
         {":6:3: route r1 > sink kafak-sink: unknown plugin 'kafak-sink' (known: "}},
        {"plugin of the wrong kind",
         head + "sink:\n  test-source: {generate: 1}\n",
         {"'test-source' is a source plugin, not a sink"}},
        {"bad template",
         head + "sink:\n  file-sink:\n    path: \"/tmp/{{topic.x}}\"\n",
         {":7:11: route r1 > sink file-sink > path: bad template '/tmp/{{topic.x}}': topic "
          "level in '{{topic.x}}' must be a number"}},
        {"bad template in a map",
         head + "transforms:\n  - json-transform:\n      set: {a: \"{{nope}}\"}\n" + sink,
         {"route r1 > transforms[0] json-transform > set.a: bad template '{{nope}}'"}},
        {"unset environment variable",
         head + "sink:\n  file-sink:\n    path: ${NOT_SET}/x\n",
         {":7:11: route r1 > sink file-sink > path: environment variable 'NOT_SET' is not set"}},
        {"malformed YAML", "route: r1\nsource: [unclosed\n", {":3:1: malformed YAML: "}},
        {"unknown route-level key",
         head + sink + "queue: 5\n",
         {":8:1: route r1 > queue: unknown key 'queue' (allowed: batch_size, buffer, "
          "call_timeout_ms, dead_letter, drain_timeout_ms, max_in_flight, max_payload_bytes, "
          "on_error, restart_initial_ms, restart_max_ms, route, sink, source, transforms)"}},
        {"a key from an earlier version says where it went",
         head + sink + "queue_capacity: 5\nwhen_full: drop_newest\n",
         {":8:17: route r1 > queue_capacity: 'queue_capacity' is no longer a route option: "
          "routes are bounded in bytes now",
          ":9:12: route r1 > when_full: 'when_full' is no longer a route option: it moved into "
          "the buffer block"}},
        {"unknown buffer key and bad buffer value",
         head + sink + "buffer:\n  max_byte: 5\n  when_full: wait\n",
         {":9:3: route r1 > buffer > max_byte: unknown key 'max_byte' (allowed: fsync, "
          "fsync_interval_ms, max_bytes, type, when_full)",
          ":10:14: route r1 > buffer > when_full: 'wait' is not one of: block, drop_oldest, "
          "drop_newest"}},
        {"a buffer too small for one message",
         head + sink + "buffer: {max_bytes: 65536}\n",
         {":8:21: route r1 > buffer > max_bytes: the buffer (65536 bytes) cannot hold one "
          "message of max_payload_bytes (983040) with its topic and headers: raise "
          "buffer.max_bytes to at least 987136 or lower max_payload_bytes"}},
        {"dead_letter without its sink",
         head + sink + "on_error: dead_letter\n",
         {"route r1 > on_error: on_error is dead_letter but the route has no 'dead_letter:' "
          "sink block"}},
        {"a dead_letter sink without on_error: dead_letter",
         head + sink + "dead_letter: {file-sink: {path: /tmp/d}}\n",
         {":8:14: route r1 > dead_letter: a dead_letter sink is only used with 'on_error: "
          "dead_letter'"}},
        {"dead_letter must be a sink",
         head + sink + "on_error: dead_letter\ndead_letter: {test-source: {generate: 1}}\n",
         {"'test-source' is a source plugin, not a sink"}},
        {"bad route name",
         "route: Bad_Name\nsource: {test-source: {generate: 1}}\n" + sink,
         {":1:8: route Bad_Name: route name must match [a-z0-9][a-z0-9-]*"}},
        {"stage with two plugins",
         head + "sink:\n  file-sink: {path: /x}\n  other: {}\n",
         {"route r1 > sink: expected exactly one plugin"}},
        {"plugin's own validate() (cross-field)",
         head + "transforms:\n  - json-transform: {parse: csv}\n" + sink,
         {":6:5: route r1 > transforms[0] json-transform > columns: parse: csv needs `columns`"}},
        {"duplicate key",
         head + "    generate: 2\n" + sink,
         {":5:5: route r1 > source test-source > generate: duplicate key 'generate'"}},
        {"missing source", "route: r1\n" + sink, {"route r1: missing required key 'source'"}},
        {"transforms not a list",
         head + "transforms: {json-transform: {}}\n" + sink,
         {"route r1 > transforms: expected a list of transforms, got a map"}},
        {"duplicate route name",
         std::string(kValid) + "---\n" + kValid,
         {"route temps: duplicate route name: already defined at "}},
    };
    for (const auto& c : cases) {
        INFO(c.what << "\n" << c.yaml);
        const auto r = load(c.yaml);
        for (const auto& e : r.errors) UNSCOPED_INFO("got: " << e);
        CHECK(r.errors.size() == c.expected.size());
        for (const auto& want : c.expected) {
            const bool found = std::any_of(r.errors.begin(), r.errors.end(), [&](const auto& e) {
                return e.find(want) != std::string::npos && e.rfind(r.file, 0) == 0;
            });
            CHECK(found);
        }
        if (c.expected.size() == 1 && std::string(c.what) != "duplicate route name") {
            CHECK(r.routes.empty());
        }
    }
}

TEST_CASE("all errors of a manifest are reported at once", "[core][manifest]") {
    const auto r = load(R"(route: five
source:
  test-source:
    generate: lots
    colour: red
transforms:
  - json-transform:
      parse: yaml
sink:
  file-sink:
    path: "{{topic"
    fsync: maybe
)");
    REQUIRE(r.errors.size() == 5);
    CHECK_THAT(r.errors[0], Catch::Contains(":4:15:"));
    CHECK_THAT(r.errors[1], Catch::Contains(":5:5:"));
}

TEST_CASE("host config: paths relative to the file, log and admin", "[core][manifest]") {
    const fs::path dir =
        fs::temp_directory_path() / ("sluice-host-test-" + std::to_string(::getpid()));
    fs::create_directories(dir / "conf");
    std::ofstream(dir / "conf/sluice.yaml")
        << "plugins: [../plugins]\nroutes: [routes, /abs/r.yaml]\nstate_dir: state\n"
           "log: {level: debug, format: json}\nadmin: {listen: 127.0.0.1:9464}\n";
    sluice::Diagnostics diag;
    const auto host = sluice::load_host_config(dir / "conf/sluice.yaml", diag, env());
    INFO(diag.to_string());
    REQUIRE(diag.empty());
    CHECK(host.plugin_dirs.at(0) == dir / "plugins");
    CHECK(host.route_paths.at(0) == dir / "conf/routes");
    CHECK(host.route_paths.at(1) == "/abs/r.yaml");
    CHECK(host.log_level == "debug");
    CHECK(host.log_format == "json");
    CHECK(host.admin_listen == "127.0.0.1:9464");

    std::ofstream(dir / "conf/bad.yaml") << "plugin: [x]\nlog: {level: loud, colour: red}\n";
    sluice::Diagnostics bad;
    sluice::load_host_config(dir / "conf/bad.yaml", bad, env());
    REQUIRE(bad.size() == 3);
    CHECK_THAT(bad.to_string(),
               Catch::Contains(":1:1: plugin: unknown key 'plugin' (allowed: "
                               "admin, env_allow, log, memory_limit, plugin_settings, "
                               "plugins, routes, state_dir)"));
    CHECK_THAT(bad.to_string(), Catch::Contains("log > level: 'loud' is not one of"));
    CHECK_THAT(bad.to_string(), Catch::Contains("log > colour: unknown key 'colour'"));
}

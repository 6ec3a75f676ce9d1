// Routes in process: isolation, restart with back-off, error policies, draining.
#include <catch2/catch.hpp>

#include <fstream>
#include <thread>

#include "sluice/core/manifest.hpp"
#include "sluice/core/supervisor.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const sluice::PluginRegistry& registry() {
    static const sluice::PluginRegistry r = [] {
        sluice::PluginRegistry reg;
        auto errors = reg.load_directories(
            {SLUICE_TEST_PLUGIN_DIR, fs::path(SLUICE_TEST_FIXTURE_DIR) / "sdk-fixtures"});
        if (!errors.empty()) throw std::runtime_error(errors.front());
        return reg;
    }();
    return r;
}

fs::path scratch_dir() {
    static int n = 0;
    const fs::path dir = fs::temp_directory_path() /
                         ("sluice-runtime-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

std::vector<sluice::RouteSpec> routes(const fs::path& dir, const std::string& yaml) {
    std::ofstream(dir / "routes.yaml") << yaml;
    sluice::Diagnostics diag;
    auto out = sluice::load_routes({dir / "routes.yaml"}, registry(), diag,
                                   [&](const std::string& name) -> std::optional<std::string> {
                                       if (name == "DIR") return dir.string();
                                       return std::nullopt;
                                   });
    INFO(diag.to_string());
    REQUIRE(diag.empty());
    return out;
}

std::size_t lines(const fs::path& file) {
    std::ifstream in(file);
    std::size_t n = 0;
    std::string line;
    while (std::getline(in, line)) ++n;
    return n;
}

bool wait_until(const std::function<bool()>& done, std::chrono::seconds limit = 30s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        if (done()) return true;
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

const sluice::RouteStatus& find(const std::vector<sluice::RouteStatus>& all, const std::string& n) {
    for (const auto& s : all) {
        if (s.name == n) return s;
    }
    throw std::runtime_error("no route " + n);
}

}  // namespace

TEST_CASE("a failing route restarts while another route's output is complete", "[runtime]") {
    const auto dir = scratch_dir();
    sluice::Supervisor sup;
    for (auto& r : routes(dir, R"(route: steady
source: {test-source: {generate: 5000}}
sink: {file-sink: {path: "${DIR}/steady.jsonl"}}
---
route: flaky
restart_initial_ms: 20
batch_size: 100
source: {test-source: {generate: 300}}
sink: {flaky-sink: {path: "${DIR}/flaky.txt", fail_first: 3}}
)")) {
        sup.start(std::move(r));
    }
    REQUIRE(wait_until([&] { return sup.all_done(); }));
    const auto status = sup.status();
    CHECK(lines(dir / "steady.jsonl") == 5000);
    CHECK(find(status, "steady").restarts == 0);
    CHECK(find(status, "steady").delivered == 5000);
    // The flaky route lost nothing across three restarts of all its stages.
    CHECK(find(status, "flaky").restarts == 3);
    CHECK(find(status, "flaky").delivered == 300);
    CHECK(lines(dir / "flaky.txt") == 300);
}

TEST_CASE("after a transform fails, the restarted chain starts from the original input",
          "[runtime]") {
    const auto dir = scratch_dir();
    sluice::Supervisor sup;
    for (auto& r : routes(dir, R"(route: chain
restart_initial_ms: 10
source: {test-source: {messages: ["a", "b"]}}
transforms:
  - json-transform: {parse: string, set: {tag: x}}
  - flaky-transform: {fail_first: 1}
sink: {file-sink: {path: "${DIR}/chain.txt", format: raw}}
)")) {
        sup.start(std::move(r));
    }
    REQUIRE(wait_until([&] { return sup.all_done(); }));
    std::ifstream in(dir / "chain.txt");
    const std::string all((std::istreambuf_iterator<char>(in)), {});
    // json-transform ran once per message: its output was not fed to it again.
    CHECK(all == "{\"value\":\"a\",\"tag\":\"x\"}\n{\"value\":\"b\",\"tag\":\"x\"}\n");
    CHECK(find(sup.status(), "chain").restarts == 1);
}

TEST_CASE("a message rejected twice is retried once, and bad indexes are ignored", "[runtime]") {
    const auto dir = scratch_dir();
    sluice::Supervisor sup;
    for (auto& r : routes(dir, R"(route: rejects
batch_size: 10
source: {test-source: {generate: 10}}
sink: {double-reject-sink: {path: "${DIR}/out.txt"}}
)")) {
        sup.start(std::move(r));
    }
    REQUIRE(wait_until([&] { return sup.all_done(); }));
    CHECK(lines(dir / "out.txt") == 10);  // not 11: the retried message comes back once
    const auto s = find(sup.status(), "rejects");
    CHECK(s.delivered == 10);
    CHECK(s.errors == 0);
    CHECK(s.retries == 1);
}

TEST_CASE("a plugin whose create throws fails only its route, which keeps retrying",
          "[runtime]") {
    const auto dir = scratch_dir();
    sluice::Supervisor sup;
    for (auto& r : routes(dir, R"(route: good
source: {test-source: {generate: 1000}}
sink: {file-sink: {path: "${DIR}/good.jsonl"}}
---
route: broken
restart_initial_ms: 10
restart_max_ms: 40
source: {test-source: {generate: 10}}
sink: {throwing-create: {}}
)")) {
        sup.start(std::move(r));
    }
    REQUIRE(wait_until([&] { return lines(dir / "good.jsonl") == 1000; }));
    REQUIRE(wait_until([&] { return find(sup.status(), "broken").restarts >= 3; }));
    const auto broken = find(sup.status(), "broken");
    CHECK(broken.state == sluice::RouteState::failed);
    CHECK_THAT(broken.reason, Catch::Contains("sink throwing-create: create failed: fixture "
                                              "refuses to be created"));
    CHECK(wait_until([&] { return find(sup.status(), "good").state == sluice::RouteState::stopped; }));
    sup.stop_all();
}

TEST_CASE("malformed payloads are dropped and counted by default and on_error stop halts",
          "[runtime]") {
    const auto dir = scratch_dir();
    sluice::Supervisor sup;
    for (auto& r : routes(dir, R"(route: drops
source: {test-source: {messages: ["1", "x", "2", "{", "3"]}}
transforms: [{json-transform: {parse: number}}]
sink: {file-sink: {path: "${DIR}/drops.jsonl", format: raw}}
---
route: halts
on_error: stop
source: {test-source: {messages: ["1", "x", "2"]}}
transforms: [{json-transform: {parse: number}}]
sink: {file-sink: {path: "${DIR}/halts.jsonl", format: raw}}
)")) {
        sup.start(std::move(r));
    }
    REQUIRE(wait_until([&] { return find(sup.status(), "drops").state == sluice::RouteState::stopped; }));
    REQUIRE(wait_until([&] { return find(sup.status(), "halts").state == sluice::RouteState::failed; }));
    const auto drops = find(sup.status(), "drops");
    CHECK(drops.errors == 2);
    CHECK(drops.delivered == 3);
    std::ifstream in(dir / "drops.jsonl");
    std::string all((std::istreambuf_iterator<char>(in)), {});
    CHECK(all == "{\"value\":1}\n{\"value\":2}\n{\"value\":3}\n");
    const auto halts = find(sup.status(), "halts");
    CHECK_THAT(halts.reason, Catch::Contains("on_error is stop: payload 'x' is not a number"));
    // "1" may already have gone through in an earlier batch; nothing after "x" does.
    CHECK(halts.delivered <= 1);
    std::ifstream halted(dir / "halts.jsonl");
    const std::string halted_out((std::istreambuf_iterator<char>(halted)), {});
    CHECK(halted_out.find("\"value\":2") == std::string::npos);
    sup.stop_all();
}

TEST_CASE("an unwritable path fails the route with a clear error, not the process",
          "[runtime]") {
    const auto dir = scratch_dir();
    fs::create_directories(dir / "locked");
    std::ofstream(dir / "locked" / "blocker") << "a file where a directory is needed";
    sluice::Supervisor sup;
    for (auto& r : routes(dir, R"(route: unwritable
restart_initial_ms: 50
source: {test-source: {generate: 10}}
sink: {file-sink: {path: "${DIR}/locked/blocker/out.jsonl"}}
)")) {
        sup.start(std::move(r));
    }
    REQUIRE(wait_until([&] { return find(sup.status(), "unwritable").restarts >= 1; }));
    const auto s = find(sup.status(), "unwritable");
    CHECK_THAT(s.reason, Catch::Contains("sink file-sink"));
    CHECK_THAT(s.reason, Catch::Contains("locked/blocker"));
    CHECK(s.queued == 10);  // nothing lost: the messages wait for the path to be fixed
    fs::remove(dir / "locked" / "blocker");
    REQUIRE(wait_until([&] { return find(sup.status(), "unwritable").delivered == 10; }));
    sup.stop_all();
}

TEST_CASE("stopping drains what the route holds", "[runtime]") {
    const auto dir = scratch_dir();
    sluice::Supervisor sup;
    for (auto& r : routes(dir, R"(route: endless
source: {test-source: {generate: 1000, repeat: 0}}
transforms: [{json-transform: {set: {route: "{{route}}"}}}]
sink: {file-sink: {path: "${DIR}/endless.jsonl", format: raw}}
)")) {
        sup.start(std::move(r));
    }
    REQUIRE(wait_until([&] { return find(sup.status(), "endless").delivered > 2000; }));
    sup.stop_all();
    const auto s = find(sup.status(), "endless");
    CHECK(s.state == sluice::RouteState::stopped);
    CHECK(s.received == s.delivered);
    CHECK(lines(dir / "endless.jsonl") == s.delivered);
}

// Routes in process: isolation, restart with back-off, error policies, draining.
#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "sluice/core/manifest.hpp"
#include "sluice/core/runtime/memory_release.hpp"
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
    const fs::path dir =
        fs::temp_directory_path() /
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

TEST_CASE("plugin metrics are read while a route fails, restarts and stops", "[runtime][metrics]") {
    // The admin thread scrapes while the route's worker destroys and rebuilds its instances:
    // under ASan a scrape touching a destroyed instance fails this test.
    const auto dir = scratch_dir();
    sluice::Supervisor sup;
    for (auto& r : routes(dir, R"(route: scraped
restart_initial_ms: 1
restart_max_ms: 2
batch_size: 10
source: {test-source: {generate: 30000}}
sink: {flaky-sink: {path: "${DIR}/scraped.txt", fail_first: 40, counter: scraped}}
)")) {
        sup.start(std::move(r));
    }
    std::atomic<bool> done{false};
    std::size_t scrapes = 0;
    double last = 0;
    std::thread scraper([&] {
        while (!done.load()) {
            for (const auto& m : sup.plugin_metrics()) {
                if (m.name == "fixture_written_total" && m.route == "scraped" &&
                    m.stage == "sink" && m.plugin == "flaky-sink") {
                    last = m.value;
                }
            }
            ++scrapes;
        }
    });
    REQUIRE(wait_until([&] { return sup.all_done(); }));
    done.store(true);
    scraper.join();
    CHECK(find(sup.status(), "scraped").restarts == 40);
    CHECK(lines(dir / "scraped.txt") == 30000);
    CHECK(scrapes > 10);
    // The instance that wrote everything, seen before the route stopped (30,000 messages keep
    // it running long enough for a scrape to see it on a loaded machine).
    CHECK(last > 0);
    CHECK(last <= 30000);
    // Stopped: no instance is left to ask.
    CHECK(sup.plugin_metrics().empty());
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

TEST_CASE("a plugin whose create throws fails only its route, which keeps retrying", "[runtime]") {
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
    CHECK(wait_until(
        [&] { return find(sup.status(), "good").state == sluice::RouteState::stopped; }));
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
    REQUIRE(wait_until(
        [&] { return find(sup.status(), "drops").state == sluice::RouteState::stopped; }));
    REQUIRE(wait_until(
        [&] { return find(sup.status(), "halts").state == sluice::RouteState::failed; }));
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

TEST_CASE("an unwritable path fails the route with a clear error, not the process", "[runtime]") {
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
    CHECK(s.buffered == 10);  // nothing lost: the messages wait for the path to be fixed
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

namespace {

std::vector<long> numbers(const fs::path& file) {
    std::vector<long> out;
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) out.push_back(std::stol(line));
    return out;
}

bool in_order_from_zero(const std::vector<long>& v) {
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (v[i] != static_cast<long>(i)) return false;
    }
    return true;
}

}  // namespace

TEST_CASE("a full route holds its source back: nothing lost and nothing waits in emit",
          "[runtime][buffer]") {
    const auto dir = scratch_dir();
    sluice::Supervisor sup;
    for (auto& r : routes(dir, R"(route: held
buffer: {max_bytes: 65536}
max_payload_bytes: 16384
source: {burst-source: {count: 3000, payload_bytes: 500, holds_file: "${DIR}/holds"}}
sink: {gate-sink: {path: "${DIR}/out", gate: "${DIR}/gate"}}
)")) {
        sup.start(std::move(r));
    }
    // The sink hangs: the buffer fills to its bound and the source is asked to hold back.
    REQUIRE(wait_until([&] { return find(sup.status(), "held").holds >= 1; }));
    std::this_thread::sleep_for(100ms);
    const auto full = find(sup.status(), "held");
    // Held back: nothing more arrives while the sink hangs. (Within max_bytes + headroom,
    // unless the source sent more while its start() still ran, when it could not be held yet:
    // that is taken, not dropped.)
    std::this_thread::sleep_for(200ms);
    CHECK(find(sup.status(), "held").buffered_bytes == full.buffered_bytes);
    CHECK(full.received < 3000);
    CHECK(full.dropped_full + full.dropped_overflow == 0);
    std::ofstream(dir / "gate") << "open";
    REQUIRE(wait_until([&] { return sup.all_done(); }));
    const auto done = find(sup.status(), "held");
    CHECK(done.delivered == 3000);
    CHECK(done.dropped_full + done.dropped_overflow == 0);
    const auto out = numbers(dir / "out");
    CHECK(out.size() == 3000);
    CHECK(in_order_from_zero(out));
    sup.stop_all();
    CHECK(numbers(dir / "holds").front() >= 1);
}

TEST_CASE("when_full drop_newest and drop_oldest count every drop", "[runtime][buffer]") {
    for (const std::string policy : {"drop_newest", "drop_oldest"}) {
        DYNAMIC_SECTION(policy) {
            const auto dir = scratch_dir();
            sluice::Supervisor sup;
            for (auto& r : routes(dir,
                                  "route: drops\nmax_payload_bytes: 16384\nbuffer: {max_bytes: "
                                  "65536, when_full: " +
                                      policy + "}\nbatch_size: 50\n" + R"(
source: {burst-source: {count: 3000, payload_bytes: 500}}
sink: {gate-sink: {path: "${DIR}/out", gate: "${DIR}/gate"}}
)")) {
                sup.start(std::move(r));
            }
            REQUIRE(wait_until([&] { return find(sup.status(), "drops").dropped_full > 0; }));
            std::ofstream(dir / "gate") << "open";
            REQUIRE(wait_until([&] { return sup.all_done(); }));
            const auto s = find(sup.status(), "drops");
            CHECK(s.holds == 0);
            CHECK(s.delivered + s.dropped_full == 3000);
            const auto out = numbers(dir / "out");
            CHECK(out.size() == s.delivered);
            CHECK(std::is_sorted(out.begin(), out.end()));
            if (policy == "drop_newest") {
                CHECK(out.front() == 0);  // the oldest were kept
            } else {
                CHECK(out.back() == 2999);  // the newest were kept
            }
            sup.stop_all();
        }
    }
}

TEST_CASE("dead_letter receives failed and oversize messages unchanged with why and where",
          "[runtime][policy]") {
    const auto dir = scratch_dir();
    std::ofstream(dir / "in.txt") << "1\nnot-a-number\n3\n" << std::string(300, 'y') << "\n5\n";
    sluice::Supervisor sup;
    for (auto& r : routes(dir, R"(route: dl
max_payload_bytes: 200
on_error: dead_letter
source: {test-source: {file: "${DIR}/in.txt"}}
transforms:
  - json-transform: {parse: number}
sink: {file-sink: {path: "${DIR}/good.jsonl", format: raw}}
dead_letter: {file-sink: {path: "${DIR}/dead.jsonl"}}
)")) {
        sup.start(std::move(r));
    }
    REQUIRE(wait_until([&] { return sup.all_done(); }));
    const auto s = find(sup.status(), "dl");
    CHECK(s.delivered == 3);
    CHECK(s.dead_lettered == 2);
    CHECK(s.dropped_oversize == 1);
    CHECK(lines(dir / "good.jsonl") == 3);
    std::ifstream in(dir / "dead.jsonl");
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(all.find("\"payload\":\"not-a-number\"") != std::string::npos);
    CHECK(all.find(std::string(300, 'y')) != std::string::npos);
    CHECK(all.find("\"sluice.error.stage\":\"transforms[0] json-transform\"") != std::string::npos);
    CHECK(all.find("\"sluice.error.route\":\"dl\"") != std::string::npos);
    CHECK(all.find("larger than max_payload_bytes") != std::string::npos);
    CHECK(all.find("sluice.error.time_ms") != std::string::npos);
    CHECK(all.find("\"sluice.original.topic\"") != std::string::npos);
    sup.stop_all();
}

TEST_CASE("a route stuck in a plugin call shows where while other routes finish", "[runtime]") {
    const auto dir = scratch_dir();
    sluice::Supervisor sup;
    for (auto& r : routes(dir, R"(route: stuck
source: {test-source: {generate: 10}}
sink: {gate-sink: {path: "${DIR}/stuck", gate: "${DIR}/gate"}}
---
route: free
source: {test-source: {generate: 2000}}
sink: {file-sink: {path: "${DIR}/free.jsonl"}}
)")) {
        sup.start(std::move(r));
    }
    REQUIRE(wait_until(
        [&] { return find(sup.status(), "free").state == sluice::RouteState::stopped; }));
    CHECK(lines(dir / "free.jsonl") == 2000);
    CHECK(find(sup.status(), "stuck").stuck_in == "sink gate-sink");
    std::ofstream(dir / "gate") << "open";
    sup.stop_all();
    CHECK(lines(dir / "stuck") == 10);
}

TEST_CASE("a sink call past the drain deadline is interrupted and the route stops", "[runtime]") {
    const auto dir = scratch_dir();
    sluice::Supervisor sup;
    for (auto& r : routes(dir, R"(route: late
drain_timeout_ms: 200
source: {test-source: {generate: 10}}
sink: {gate-sink: {path: "${DIR}/late", gate: "${DIR}/gate", interruptible: true}}
)")) {
        sup.start(std::move(r));
    }
    REQUIRE(wait_until([&] { return find(sup.status(), "late").stuck_in == "sink gate-sink"; }));
    sup.request_stop_all();
    const auto start = std::chrono::steady_clock::now();
    REQUIRE(wait_until([&] {
        sup.interrupt_overdue();  // what `sluice run` does while it waits for the drain
        return find(sup.status(), "late").state == sluice::RouteState::stopped;
    }));
    CHECK(std::chrono::steady_clock::now() - start < 5s);
    const auto s = find(sup.status(), "late");
    CHECK(s.delivered == 0);
    CHECK(s.undelivered == 10);  // a memory buffer: counted as lost, and said so
    sup.stop_all();
}

TEST_CASE("a transform failing after an earlier one rejected does not dead-letter twice",
          "[runtime][policy]") {
    const auto dir = scratch_dir();
    sluice::Supervisor sup;
    for (auto& r : routes(dir, R"(route: twice
restart_initial_ms: 10
on_error: dead_letter
source: {test-source: {messages: ["1", "x", "3"]}}
transforms:
  - json-transform: {parse: number}
  - flaky-transform: {fail_first: 1, counter: twice}
sink: {file-sink: {path: "${DIR}/good.txt", format: raw}}
dead_letter: {file-sink: {path: "${DIR}/dead.jsonl"}}
)")) {
        sup.start(std::move(r));
    }
    REQUIRE(wait_until([&] { return sup.all_done(); }));
    const auto s = find(sup.status(), "twice");
    CHECK(s.restarts == 1);
    CHECK(s.errors == 1);
    CHECK(s.dead_lettered == 1);
    CHECK(lines(dir / "dead.jsonl") == 1);
    CHECK(lines(dir / "good.txt") == 2);
}

TEST_CASE("a dead-letter sink that fails keeps the failed messages for its restart",
          "[runtime][policy]") {
    const auto dir = scratch_dir();
    sluice::Supervisor sup;
    for (auto& r : routes(dir, R"(route: dlfail
restart_initial_ms: 10
on_error: dead_letter
source: {test-source: {messages: ["1", "x", "3"]}}
transforms:
  - json-transform: {parse: number}
sink: {file-sink: {path: "${DIR}/good.txt", format: raw}}
dead_letter: {flaky-sink: {path: "${DIR}/dead.txt", fail_first: 2, counter: dlfail}}
)")) {
        sup.start(std::move(r));
    }
    REQUIRE(wait_until([&] { return sup.all_done(); }));
    const auto s = find(sup.status(), "dlfail");
    CHECK(s.restarts >= 1);
    CHECK(s.dead_lettered == 1);
    CHECK(s.dead_letter_failed == 0);
    CHECK(lines(dir / "dead.txt") == 1);
    CHECK(lines(dir / "good.txt") == 2);
}

TEST_CASE("idle routes run no slices: no thread per route, no polling", "[runtime][scale]") {
    const auto dir = scratch_dir();
    sluice::Supervisor sup(dir / "state", 2);
    std::string yaml;
    constexpr int kRoutes = 200;
    for (int i = 0; i < kRoutes; ++i) {
        // One message, then the source waits an hour: the route has nothing to do.
        yaml += "route: idle-" + std::to_string(i) +
                "\nsource: {test-source: {generate: 2, interval_ms: 3600000}}\n"
                "sink: {file-sink: {path: \"${DIR}/idle-" +
                std::to_string(i) + ".jsonl\"}}\n---\n";
    }
    yaml.resize(yaml.size() - 4);
    for (auto& r : routes(dir, yaml)) sup.start(std::move(r));
    REQUIRE(wait_until([&] {
        const auto all = sup.status();
        return std::all_of(all.begin(), all.end(), [](const auto& s) { return s.delivered == 1; });
    }));
    std::this_thread::sleep_for(200ms);
    const auto before = sup.executor().slices();
    std::this_thread::sleep_for(1s);
    // 200 idle routes, one second: not one slice (the old runtime woke each route 10 times a
    // second).
    CHECK(sup.executor().slices() == before);
    CHECK(sup.executor().threads() == 2);
    sup.stop_all();
}

TEST_CASE("a sink call past call_timeout_ms fails its route only, and the route recovers",
          "[runtime][watchdog]") {
    const auto dir = scratch_dir();
    // One pool thread: the free route can only run because the stuck call does not hold it.
    sluice::Supervisor sup(dir / "state", 1);
    for (auto& r : routes(dir, R"(route: stuck
call_timeout_ms: 300
restart_initial_ms: 50
source: {test-source: {generate: 5}}
sink: {gate-sink: {path: "${DIR}/stuck", gate: "${DIR}/gate"}}
---
route: free
source: {test-source: {generate: 1000}}
sink: {file-sink: {path: "${DIR}/free.jsonl"}}
)")) {
        sup.start(std::move(r));
    }
    REQUIRE(wait_until(
        [&] { return find(sup.status(), "free").state == sluice::RouteState::stopped; }));
    CHECK(lines(dir / "free.jsonl") == 1000);
    REQUIRE(wait_until(
        [&] { return find(sup.status(), "stuck").state == sluice::RouteState::failed; }));
    CHECK_THAT(find(sup.status(), "stuck").reason, Catch::Contains("call_timeout_ms"));
    CHECK(find(sup.status(), "stuck").stuck_in == "sink gate-sink");
    // The call returns at last: the route rebuilds its sink and delivers what it held.
    std::ofstream(dir / "gate") << "open";
    REQUIRE(wait_until([&] { return sup.all_done(); }));
    CHECK(find(sup.status(), "stuck").delivered == 5);
    CHECK(find(sup.status(), "stuck").restarts >= 1);
    CHECK(lines(dir / "stuck") >= 5);
}

namespace {

// The `seq` of every line `{"seq":N}` of a file, in file order.
std::vector<long> seqs(const fs::path& file) {
    std::vector<long> out;
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
        const auto colon = line.find(':');
        if (colon != std::string::npos) out.push_back(std::stol(line.substr(colon + 1)));
    }
    return out;
}

long number_in(const fs::path& file) {
    std::ifstream in(file);
    long n = 0;
    in >> n;
    return n;
}

}  // namespace

TEST_CASE("a route gives back what a burst made its arenas grow to once it is idle",
          "[runtime][memory]") {
    // 5,000 messages of 8 KB against a sink that takes its time: batches of 500 (4 MB each)
    // fill the route's arenas. Idle again, the route keeps at most a few small spares (a
    // handful of arenas of at most 64 KiB of bytes and a batch's bookkeeping each), and the
    // process hands the freed pages back to the system (malloc_trim).
    const auto dir = scratch_dir();
    sluice::Supervisor sup(dir / "state", 2);
    const auto trims_before = sluice::memory::trims();
    for (auto& r : routes(dir, R"(route: burst
batch_size: 500
buffer: {max_bytes: 67108864}
source: {burst-source: {count: 5000, payload_bytes: 8000, end_of_input: false}}
sink: {async-sink: {delay_ms: 5, file: "${DIR}/out"}}
)")) {
        sup.start(std::move(r));
    }
    REQUIRE(wait_until([&] { return find(sup.status(), "burst").delivered == 5000; }));
    REQUIRE(wait_until([&] {
        const auto s = find(sup.status(), "burst");
        return s.buffered == 0 && s.in_flight == 0 && s.spare_bytes > 0;
    }));
    const auto s = find(sup.status(), "burst");
    INFO("spare bytes after the burst: " << s.spare_bytes);
    CHECK(s.spare_bytes < (1u << 20));
    CHECK(sluice::memory::trims() > trims_before);
    sup.stop_all();
}

TEST_CASE("a pipelined sink has several batches in flight, confirmed in order",
          "[runtime][pipeline]") {
    const auto dir = scratch_dir();
    sluice::Supervisor sup(dir / "state", 2);
    for (auto& r : routes(dir, R"(route: piped
batch_size: 100
max_in_flight: 4
source: {test-source: {generate: 5000}}
sink: {async-sink: {delay_ms: 20, file: "${DIR}/out", max_in_flight_seen_file: "${DIR}/seen"}}
)")) {
        sup.start(std::move(r));
    }
    REQUIRE(wait_until([&] { return sup.all_done(); }));
    const auto got = seqs(dir / "out");
    REQUIRE(got.size() == 5000);
    for (long i = 0; i < 5000; ++i) REQUIRE(got[static_cast<std::size_t>(i)] == i);
    // The window was used, and never exceeded (the fixture counts a batch until just after its
    // completion returned, by which time the route may have sent the next one: one more).
    CHECK(number_in(dir / "seen") > 1);
    CHECK(number_in(dir / "seen") <= 5);
    const auto s = find(sup.status(), "piped");
    CHECK(s.delivered == 5000);
    CHECK(s.in_flight == 0);
}

TEST_CASE("a retry of a pipelined batch goes back to the first unconfirmed message",
          "[runtime][pipeline]") {
    const auto dir = scratch_dir();
    sluice::Supervisor sup(dir / "state", 2);
    for (auto& r : routes(dir, R"(route: goback
batch_size: 50
max_in_flight: 4
source: {test-source: {generate: 3000}}
sink: {async-sink: {delay_ms: 2, retry_every: 7, file: "${DIR}/out"}}
)")) {
        sup.start(std::move(r));
    }
    REQUIRE(wait_until([&] { return sup.all_done(); }));
    const auto got = seqs(dir / "out");
    // Nothing lost; resent messages appear again, but the last copy of every message comes
    // after the last copy of every older one: no message overtakes an older one for good.
    std::vector<long> last(3000, -1);
    for (std::size_t pos = 0; pos < got.size(); ++pos) {
        REQUIRE(got[pos] >= 0);
        REQUIRE(got[pos] < 3000);
        last[static_cast<std::size_t>(got[pos])] = static_cast<long>(pos);
    }
    for (std::size_t i = 0; i < last.size(); ++i) {
        INFO("message " << i);
        REQUIRE(last[i] >= 0);
        if (i > 0) REQUIRE(last[i] > last[i - 1]);
    }
    const auto s = find(sup.status(), "goback");
    CHECK(s.delivered == 3000);
    CHECK(s.retries > 0);
    CHECK(got.size() > 3000);  // the go-back resent confirmed messages too
}

TEST_CASE("stopping drains the batches in flight of a pipelined sink", "[runtime][pipeline]") {
    const auto dir = scratch_dir();
    sluice::Supervisor sup(dir / "state", 2);
    for (auto& r : routes(dir, R"(route: drain
batch_size: 10
max_in_flight: 8
drain_timeout_ms: 10000
source: {test-source: {generate: 100000, interval_ms: 1}}
sink: {async-sink: {delay_ms: 300, file: "${DIR}/out"}}
)")) {
        sup.start(std::move(r));
    }
    REQUIRE(wait_until([&] { return find(sup.status(), "drain").in_flight > 1; }));
    sup.stop_all();
    const auto s = find(sup.status(), "drain");
    CHECK(s.state == sluice::RouteState::stopped);
    CHECK(s.undelivered == 0);
    CHECK(s.in_flight == 0);
    CHECK(s.delivered == s.received);
    CHECK(seqs(dir / "out").size() == s.received);
}

TEST_CASE("a changed route's old version hands what it could not deliver to the new one",
          "[runtime][reload]") {
    const auto dir = scratch_dir();
    sluice::Supervisor sup(dir / "state", 2);
    // The old version's sink never confirms: its window fills with transformed batches and
    // the rest waits in its memory buffer.
    for (auto& r : routes(dir, R"(route: h
batch_size: 10
max_in_flight: 2
drain_timeout_ms: 200
source: {test-source: {generate: 100000, interval_ms: 1}}
transforms: [{json-transform: {set: {via: old}}}]
sink: {async-sink: {delay_ms: 60000}}
)")) {
        sup.start(std::move(r));
    }
    REQUIRE(wait_until([&] { return find(sup.status(), "h").received >= 100; }));
    // The new version delivers, and its transform would strip what the old one added.
    auto next = routes(dir, R"(route: h
batch_size: 10
source: {test-source: {messages: ['{"seq":-1}']}}
transforms: [{json-transform: {keep: [seq]}}]
sink: {file-sink: {path: "${DIR}/out", format: raw}}
)");
    auto plan = sluice::plan_reload(sup.running(), std::move(next), {});
    REQUIRE(plan.routes.size() == 1);
    REQUIRE(plan.routes[0].change == sluice::RouteChange::changed);
    const std::atomic<bool> abandon{false};
    sup.apply(plan, abandon);
    REQUIRE(wait_until([&] { return sup.all_done(); }));
    CHECK(sup.retired_undelivered() == 0);

    const auto s = find(sup.status(), "h");
    REQUIRE(s.taken_over >= 100);
    CHECK(s.undelivered == 0);
    CHECK(s.delivered == s.taken_over + 1);
    // Everything the old version took, once and in order, then the new version's own.
    const auto got = seqs(dir / "out");
    REQUIRE(got.size() == s.taken_over + 1);
    for (std::size_t i = 0; i < s.taken_over; ++i) REQUIRE(got[i] == static_cast<long>(i));
    CHECK(got.back() == -1);
    // The batches it had in flight went through its transform, and only through that one;
    // the rest through the new version's.
    std::ifstream in(dir / "out");
    std::string line;
    std::size_t via_old = 0, n = 0;
    bool prefix = true;
    while (std::getline(in, line)) {
        ++n;
        if (line.find("\"via\":\"old\"") == std::string::npos) continue;
        if (++via_old != n) prefix = false;
    }
    CHECK(via_old >= 2);  // max_in_flight batches of one message or more
    CHECK(prefix);
}

// What a reload plans, from real manifests: unchanged routes are left alone, changed ones
// replaced, and whatever does not validate keeps its running version.
#include "sluice/core/reload/reload_plan.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>

#include "sluice/core/manifest.hpp"
#include "test_plugins.hpp"

namespace fs = std::filesystem;
using sluice::RouteChange;

namespace {

const sluice::PluginRegistry& registry() { return sluice::test::shipped_plugins(); }

std::string route(const std::string& name, const std::string& path = "/tmp/out.jsonl") {
    return "route: " + name +
           "\nsource: {test-source: {generate: 3}}\nsink: {file-sink: {path: " + path + "}}\n";
}

// A directory of manifest files, loaded as a reload loads them.
struct Dir {
    fs::path root;
    Dir() {
        static int n = 0;
        root = fs::temp_directory_path() /
               ("sluice-reload-plan-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
        fs::remove_all(root);
        fs::create_directories(root);
    }
    ~Dir() { fs::remove_all(root); }
    std::string write(const std::string& name, const std::string& text) {
        std::ofstream(root / name) << text;
        return (root / name).string();
    }
    void remove(const std::string& name) { fs::remove(root / name); }
    struct Loaded {
        std::vector<sluice::RouteSpec> routes;
        std::vector<sluice::Rejection> rejected;
    };
    Loaded load() const {
        sluice::Diagnostics diag;
        Loaded out;
        const auto files = sluice::manifest_files({root}, diag);
        out.routes = sluice::load_routes(
            files, registry(), diag, [](const std::string&) { return std::nullopt; },
            &out.rejected);
        return out;
    }
};

std::vector<sluice::RunningRoute> running(const std::vector<sluice::RouteSpec>& routes) {
    std::vector<sluice::RunningRoute> out;
    for (const auto& r : routes) out.push_back({r.name, r.where.file, r.fingerprint(), 0});
    return out;
}

std::map<std::string, RouteChange> changes(const sluice::ReloadPlan& plan) {
    std::map<std::string, RouteChange> out;
    for (const auto& r : plan.routes) out[r.name] = r.change;
    return out;
}

const sluice::RoutePlan& find(const sluice::ReloadPlan& plan, const std::string& name) {
    for (const auto& r : plan.routes) {
        if (r.name == name) return r;
    }
    throw std::runtime_error("no plan for " + name);
}

}  // namespace

TEST_CASE("reload: unchanged, changed, added and removed routes", "[core][reload]") {
    Dir d;
    d.write("a.yaml", route("a"));
    d.write("b.yaml", route("b"));
    d.write("e.yaml", route("e"));
    const auto before = running(d.load().routes);
    d.write("b.yaml", route("b", "/tmp/other.jsonl"));
    d.write("c.yaml", route("c"));
    d.remove("e.yaml");
    auto now = d.load();
    REQUIRE(now.rejected.empty());
    const auto plan = sluice::plan_reload(before, std::move(now.routes), now.rejected);
    CHECK(changes(plan) == std::map<std::string, RouteChange>{{"a", RouteChange::unchanged},
                                                              {"b", RouteChange::changed},
                                                              {"c", RouteChange::added},
                                                              {"e", RouteChange::removed}});
    REQUIRE(plan.start.size() == 2);  // only what changed or is new gets built
    CHECK(plan.start[0].name == "b");
    CHECK(plan.start[1].name == "c");
    CHECK(plan.changes_anything());
    CHECK_FALSE(plan.has_rejections());
}

TEST_CASE("reload: nothing changed plans nothing, even with the file rewritten", "[core][reload]") {
    Dir d;
    d.write("a.yaml", route("a"));
    const auto before = running(d.load().routes);
    // Same meaning, other spelling: comments, flow vs block style.
    d.write("a.yaml",
            "# rewritten\nroute: a\nsource:\n  test-source:\n    generate: 3\n"
            "sink:\n  file-sink: {path: /tmp/out.jsonl}\n");
    auto now = d.load();
    const auto plan = sluice::plan_reload(before, std::move(now.routes), now.rejected);
    CHECK(changes(plan) == std::map<std::string, RouteChange>{{"a", RouteChange::unchanged}});
    CHECK(plan.start.empty());
    CHECK_FALSE(plan.changes_anything());
}

TEST_CASE("reload: an invalid route keeps its running version", "[core][reload]") {
    Dir d;
    d.write("a.yaml", route("a") + "---\n" + route("b"));
    const auto before = running(d.load().routes);
    d.write("a.yaml", route("a", "/tmp/changed.jsonl") + "---\n" + route("b") + "batch_sizee: 3\n");
    auto now = d.load();
    REQUIRE(now.rejected.size() == 1);
    CHECK(now.rejected[0].route == "b");
    const auto plan = sluice::plan_reload(before, std::move(now.routes), now.rejected);
    // The valid route of the same file still changes.
    CHECK(changes(plan) == std::map<std::string, RouteChange>{{"a", RouteChange::changed},
                                                              {"b", RouteChange::rejected}});
    const auto& b = find(plan, "b");
    CHECK(b.kept);
    REQUIRE(b.errors.size() == 1);
    CHECK_THAT(b.errors[0], Catch::Contains("a.yaml:") && Catch::Contains("batch_sizee"));
    CHECK(plan.has_rejections());
}

TEST_CASE("reload: an unparseable file keeps every route in it", "[core][reload]") {
    Dir d;
    d.write("a.yaml", route("a") + "---\n" + route("b"));
    d.write("c.yaml", route("c"));
    const auto before = running(d.load().routes);
    d.write("a.yaml", "route: a\nsource: [unclosed\n");
    d.remove("c.yaml");
    auto now = d.load();
    REQUIRE(now.rejected.size() == 1);
    CHECK(now.rejected[0].route.empty());
    const auto plan = sluice::plan_reload(before, std::move(now.routes), now.rejected);
    CHECK(changes(plan) == std::map<std::string, RouteChange>{{"a", RouteChange::rejected},
                                                              {"b", RouteChange::rejected},
                                                              {"c", RouteChange::removed}});
    CHECK(find(plan, "a").kept);
    CHECK(find(plan, "b").kept);
    CHECK_THAT(find(plan, "b").errors.at(0), Catch::Contains("malformed YAML"));
}

TEST_CASE("reload: a new file that does not parse is reported as a file", "[core][reload]") {
    Dir d;
    d.write("a.yaml", route("a"));
    const auto before = running(d.load().routes);
    d.write("new.yaml", "{{{{ not yaml");
    auto now = d.load();
    const auto plan = sluice::plan_reload(before, std::move(now.routes), now.rejected);
    REQUIRE(plan.routes.size() == 2);
    CHECK(plan.routes[0].name == "a");
    CHECK(plan.routes[0].change == RouteChange::unchanged);
    CHECK(plan.routes[1].name.empty());
    CHECK(plan.routes[1].change == RouteChange::rejected);
    CHECK_THAT(plan.routes[1].file, Catch::EndsWith("new.yaml"));
}

TEST_CASE("reload: a duplicate name rejects the duplicate, not the original", "[core][reload]") {
    Dir d;
    d.write("a.yaml", route("a"));
    const auto before = running(d.load().routes);
    d.write("b.yaml", route("a", "/tmp/dup.jsonl"));
    auto now = d.load();
    const auto plan = sluice::plan_reload(before, std::move(now.routes), now.rejected);
    REQUIRE(plan.routes.size() == 2);
    CHECK(plan.routes[0].change == RouteChange::unchanged);
    CHECK(plan.routes[1].change == RouteChange::rejected);
    CHECK_FALSE(plan.routes[1].kept);
    CHECK_THAT(plan.routes[1].errors.at(0), Catch::Contains("duplicate route name"));
    CHECK(plan.start.empty());
}

TEST_CASE("reload: renaming a route removes the old name and adds the new", "[core][reload]") {
    Dir d;
    d.write("a.yaml", route("old-name"));
    const auto before = running(d.load().routes);
    d.write("a.yaml", route("new-name"));
    auto now = d.load();
    const auto plan = sluice::plan_reload(before, std::move(now.routes), now.rejected);
    CHECK(changes(plan) == std::map<std::string, RouteChange>{{"new-name", RouteChange::added},
                                                              {"old-name", RouteChange::removed}});
}

TEST_CASE("reload: host settings that need a restart are named", "[core][reload]") {
    sluice::HostConfig a;
    a.file = "/etc/sluice/sluice.yaml";
    auto b = a;
    b.route_paths = {"/etc/sluice/routes.d"};  // live
    b.plugin_dirs = {"/opt/plugins"};          // live
    CHECK(sluice::host_changes_not_live(a, b).empty());
    b.state_dir = "/var/lib/other";
    b.admin_listen = "127.0.0.1:9999";
    const auto why = sluice::host_changes_not_live(a, b);
    REQUIRE(why.size() == 2);
    CHECK_THAT(why[0], Catch::StartsWith("/etc/sluice/sluice.yaml: state_dir changed") &&
                           Catch::Contains("restart"));
    CHECK_THAT(why[1], Catch::Contains("admin.listen"));
}

TEST_CASE("reload: the report's result and JSON", "[core][reload]") {
    sluice::ReloadReport r;
    r.trigger = "SIGHUP";
    r.routes = {{"a", RouteChange::unchanged, "/r/a.yaml", {}, false}};
    CHECK(r.result() == "applied");
    r.routes.push_back(
        {"b", RouteChange::rejected, "/r/b.yaml", {"/r/b.yaml:3:1: bad \"x\""}, true});
    CHECK(r.result() == "rejected");  // nothing else changed
    r.routes.push_back({"c", RouteChange::added, "/r/c.yaml", {}, false});
    CHECK(r.result() == "partial");
    const std::string json = r.to_json();
    CHECK_THAT(json, Catch::StartsWith("{\"result\":\"partial\",\"trigger\":\"SIGHUP\""));
    CHECK_THAT(json, Catch::Contains("{\"route\":\"b\",\"change\":\"rejected\",\"file\":\"/r/"
                                     "b.yaml\",\"kept_running\":true,\"errors\":[\"/r/b.yaml:3:1: "
                                     "bad \\\"x\\\"\"]}"));
    CHECK_THAT(r.summary(), Catch::Contains("1 unchanged 0 changed 1 added 0 removed 1 rejected"));
    r.errors = {"sluice.yaml: state_dir changed"};
    CHECK(r.result() == "rejected");
}

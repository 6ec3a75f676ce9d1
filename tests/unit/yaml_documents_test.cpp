#include "sluice/core/yaml_documents.hpp"

#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>
#include <string>

namespace {

struct Parsed {
    bool ok = false;
    std::size_t documents = 0;
    std::string error;  // Diagnostic::to_string()
};

Parsed parse(const std::string& text) {
    sluice::Diagnostic error;
    const auto docs = sluice::parse_yaml_documents(text, "m.yaml", error);
    if (!docs) return {false, 0, error.to_string()};
    return {true, docs->size(), ""};
}

}  // namespace

// Each of these made yaml-cpp 0.7 loop forever, allocating (found by fuzz_route_manifest and
// fuzz_host_config): `sluice check`, a reload or the daemon's start would never have returned.
TEST_CASE("text that hangs yaml-cpp is refused with a location", "[core][yaml]") {
    for (const std::string text : {",", ",\n", " ,:", "# a comment\n ,:\n", "a: 1\n---\n,\n"}) {
        INFO(text);
        const auto p = parse(text);
        CHECK_FALSE(p.ok);
        CHECK_THAT(p.error, Catch::StartsWith("m.yaml:") && Catch::Contains(": malformed YAML: "));
    }
    CHECK_THAT(parse("a: 1\n---\n,\n").error, Catch::StartsWith("m.yaml:3:1: malformed YAML"));
}

TEST_CASE("a control character is refused at its line and column", "[core][yaml]") {
    const auto p = parse("a: 1\nb: x\x01y\n");
    CHECK_FALSE(p.ok);
    CHECK_THAT(p.error, Catch::StartsWith("m.yaml:2:5: malformed YAML: control characters"));
}

TEST_CASE("nesting deeper than the bound is refused", "[core][yaml]") {
    const auto deep = [](std::size_t n) {
        return "a: " + std::string(n, '[') + std::string(n, ']') + "\n";
    };
    CHECK(parse(deep(sluice::kMaxYamlDepth - 1)).ok);
    const auto p = parse(deep(100000));  // would overflow the stack of a recursive walk
    CHECK_FALSE(p.ok);
    CHECK_THAT(p.error, Catch::Contains("nested deeper than 128 levels"));
}

TEST_CASE("aliases may not expand past the bound; ordinary anchors work", "[core][yaml]") {
    std::string laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (int i = 1; i < 9; ++i) {
        const std::string prev = "*a" + std::to_string(i - 1);
        laughs += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
        for (int k = 0; k < 10; ++k) laughs += (k ? ", " : "") + prev;
        laughs += "]\n";
    }
    const auto p = parse(laughs);
    CHECK_FALSE(p.ok);
    CHECK_THAT(p.error, Catch::Contains("values with aliases expanded"));

    const auto ok = parse(
        "defaults: &d {batch_size: 10, buffer: {type: disk}}\nroute: r\n<<: *d\n---\nroute: s\n");
    CHECK(ok.ok);
    CHECK(ok.documents == 2);
}

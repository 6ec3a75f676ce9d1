#include "sluice/core/interpolate.hpp"

#include <catch2/catch.hpp>

namespace {

sluice::EnvLookup env() {
    return [](const std::string& name) -> std::optional<std::string> {
        if (name == "BROKERS") return "k1:9092,k2:9092";
        if (name == "EMPTY") return "";
        return std::nullopt;
    };
}

std::string ok(const std::string& text) {
    std::string error;
    const auto out = sluice::interpolate(text, env(), error);
    INFO(error);
    REQUIRE(out);
    return *out;
}

std::string fails(const std::string& text) {
    std::string error;
    REQUIRE_FALSE(sluice::interpolate(text, env(), error));
    return error;
}

}  // namespace

TEST_CASE("interpolation replaces variables and defaults", "[core][interpolate]") {
    CHECK(ok("${BROKERS}") == "k1:9092,k2:9092");
    CHECK(ok("x-${BROKERS}-y") == "x-k1:9092,k2:9092-y");
    CHECK(ok("${MISSING:-localhost:9092}") == "localhost:9092");
    CHECK(ok("${EMPTY:-fallback}") == "fallback");
    CHECK(ok("${EMPTY}") == "");
    CHECK(ok("${MISSING:-}") == "");
    CHECK(ok("no variables, $ alone and $5") == "no variables, $ alone and $5");
    CHECK(ok("$${BROKERS}") == "${BROKERS}");
    CHECK(ok("{{topic.1}}") == "{{topic.1}}");
}

TEST_CASE("interpolation errors name the variable", "[core][interpolate]") {
    CHECK_THAT(fails("${MISSING}"), Catch::Contains("'MISSING' is not set"));
    CHECK_THAT(fails("${BROKERS"), Catch::Contains("unclosed"));
    CHECK_THAT(fails("${}"), Catch::Contains("empty variable name"));
    CHECK_THAT(fails("${A-B}"), Catch::Contains("invalid variable name 'A-B'"));
}

TEST_CASE("env_allow limits which variables a manifest may read", "[core][interpolate][security]") {
    const auto limited = sluice::restrict_env(env(), {"BROK*", "EMPTY"});
    std::string error;
    CHECK(sluice::interpolate("${BROKERS}", limited, error) == "k1:9092,k2:9092");
    CHECK(sluice::interpolate("x${EMPTY:-d}", limited, error) == "xd");
    // Not listed: refused even with a default, so that a mistake is seen, not papered over.
    CHECK_FALSE(sluice::interpolate("${HOME:-/root}", limited, error));
    CHECK(error ==
          "environment variable 'HOME' may not be read by route manifests: the host config's "
          "env_allow lists only BROK*, EMPTY");
    CHECK_FALSE(sluice::interpolate("${BROKERS}", sluice::restrict_env(env(), {}), error));
    CHECK_THAT(error, Catch::EndsWith("env_allow is empty"));

    CHECK(sluice::env_pattern_error("MQTT_*").empty());
    CHECK(sluice::env_pattern_error("MQTT-*") ==
          "'MQTT-*': a pattern is letters, digits, '_' and '*' (e.g. MQTT_*)");
    CHECK_FALSE(sluice::env_pattern_error("").empty());
}

#include "sim_options.hpp"

#include <catch2/catch.hpp>

using namespace sluice::firmware::sim;

TEST_CASE("simulator defaults", "[sim]") {
    const auto r = parse_sim_options({});
    REQUIRE(r.options);
    CHECK(r.options->url == "tcp://127.0.0.1:1883");
    CHECK(r.options->devices == 1);
    CHECK(r.options->id_prefix == "tank-");
    CHECK(r.options->interval_ms == 1000);
    CHECK(r.options->count == 0);
    CHECK(r.options->qos == 1);
}

TEST_CASE("simulator options, both spellings", "[sim]") {
    const auto r =
        parse_sim_options({"--url", "tcp://127.0.0.1:1999", "--devices=3", "--interval-ms", "250",
                           "--count", "20", "--seed=42", "--qos", "0", "--id-prefix", "well-"});
    REQUIRE(r.options);
    CHECK(r.options->url == "tcp://127.0.0.1:1999");
    CHECK(r.options->devices == 3);
    CHECK(r.options->interval_ms == 250);
    CHECK(r.options->count == 20);
    CHECK(r.options->seed == 42);
    CHECK(r.options->qos == 0);
    CHECK(r.options->id_prefix == "well-");
}

TEST_CASE("bad simulator options are refused with a message", "[sim]") {
    const std::vector<std::vector<std::string>> bad = {
        {"--qos", "3"},
        {"--devices", "0"},
        {"--devices", "x"},
        {"--interval-ms", "50"},
        {"--count", "-1"},
        {"--bogus"},
        {"--url"},
        {"--id-prefix", "a/b-"},
        {"--id-prefix", std::string(32, 'x')},
    };
    for (const auto& args : bad) {
        INFO(args.front());
        const auto r = parse_sim_options(args);
        CHECK_FALSE(r.options);
        CHECK_FALSE(r.message.empty());
        CHECK_FALSE(r.help);
    }
    const auto help = parse_sim_options({"--help"});
    CHECK(help.help);
    CHECK(help.message.find("--devices") != std::string::npos);
}

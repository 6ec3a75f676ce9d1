#include <catch2/catch.hpp>

#include <sluice/sdk/json.hpp>

namespace json = sluice::sdk::json;

TEST_CASE("json validation accepts exactly JSON", "[sdk][json]") {
    for (const char* good : {"0", "-1.5e+3", "\"a\\u00e9\\n\"", "true", "null", "[]", "{}",
                             " { \"a\" : [ 1 , { } ] } ", "[1,[2,[3]]]"}) {
        INFO(good);
        CHECK(json::is_valid(good));
    }
    for (const char* bad : {"", "01", "1.", "-", "+1", "'a'", "[1,]", "{\"a\"}", "{a:1}",
                            "\"\x01\"", "\"\\x\"", "nul", "[1] [2]", "{\"a\":1,}", "1e"}) {
        INFO(bad);
        CHECK_FALSE(json::is_valid(bad));
    }
    CHECK_FALSE(json::is_valid(std::string(200, '[') + std::string(200, ']')));  // too deep
}

TEST_CASE("json strings round-trip through quote and unescape", "[sdk][json]") {
    const std::string text = "tab\t \"q\" back\\ nl\n ctl\x01 é";
    std::string quoted;
    json::append_quoted(quoted, text);
    CHECK(json::is_valid(quoted));
    std::string back;
    json::append_unescaped(back, quoted);
    CHECK(back == text);
    std::string pair;
    json::append_unescaped(pair, "\"\\ud83d\\ude00\"");
    CHECK(pair == "\xF0\x9F\x98\x80");
}

TEST_CASE("json paths and minify", "[sdk][json]") {
    const std::string doc = R"({ "a" : { "b" : [ 1, { "c" : "d" } ] }, "e": null })";
    CHECK(json::find_path(doc, "a.b.1.c") == std::optional<std::string_view>("\"d\""));
    CHECK(json::find_path(doc, "e") == std::optional<std::string_view>("null"));
    CHECK_FALSE(json::find_path(doc, "a.b.2"));
    CHECK_FALSE(json::find_path(doc, "a.x"));
    CHECK_FALSE(json::find_path("[1", "0.a"));
    std::string out;
    json::append_minified(out, R"({ "a b" : [ 1 , 2 ] })");
    CHECK(out == R"({"a b":[1,2]})");
}

#include <catch2/catch.hpp>

#include <sluice/sdk/testing.hpp>

#include "../src/json_transform.hpp"

using sluice::plugins::JsonTransform;
using sluice::sdk::testing::Harness;
using sluice::sdk::testing::message;
using sluice::sdk::testing::Value;

namespace {

std::string one(Harness<JsonTransform>& h, const std::string& topic, const std::string& payload) {
    h.output().clear();
    REQUIRE(h.process({message(topic, payload)}) == SLUICE_OK);
    const auto out = h.emitted();
    REQUIRE(h.rejections().empty());
    REQUIRE(out.size() == 1);
    return out[0].payload;
}

}  // namespace

TEST_CASE("json-transform parses each payload kind", "[plugin][json-transform]") {
    SECTION("json object keeps field order and minifies") {
        Harness<JsonTransform> h({});
        CHECK(one(h, "t", R"( { "b" : 1, "a" : [1, 2 ], "c": {"x": "y z"} } )") ==
              R"({"b":1,"a":[1,2],"c":{"x":"y z"}})");
    }
    SECTION("json scalar goes into field") {
        Harness<JsonTransform> h({{"field", "reading"}});
        CHECK(one(h, "t", "42.5") == R"({"reading":42.5})");
        CHECK(one(h, "t", R"("on")") == R"({"reading":"on"})");
    }
    SECTION("number") {
        Harness<JsonTransform> h({{"parse", "number"}});
        CHECK(one(h, "t", " -3.25e2\n") == R"({"value":-3.25e2})");
    }
    SECTION("string is escaped") {
        Harness<JsonTransform> h({{"parse", "string"}});
        CHECK(one(h, "t", "a \"quoted\"\tline") == R"({"value":"a \"quoted\"\tline"})");
    }
    SECTION("csv: numbers stay numbers, text is quoted") {
        Harness<JsonTransform> h({{"parse", "csv"}, {"columns", {"date", "temp", "pir"}}});
        CHECK(one(h, "t", "2017/12/22, 24.94 ,0") == R"({"date":"2017/12/22","temp":24.94,"pir":0})");
    }
    SECTION("csv with another separator") {
        Harness<JsonTransform> h(
            {{"parse", "csv"}, {"columns", {"a", "b"}}, {"separator", ";"}});
        CHECK(one(h, "t", "1;x") == R"({"a":1,"b":"x"})");
    }
}

TEST_CASE("json-transform reshapes: rename, set, drop, keep, key", "[plugin][json-transform]") {
    SECTION("set from topic levels appends in config order; key from output") {
        Harness<JsonTransform> h(
            {{"parse", "number"},
             {"set", Value::of_map({{"node", "{{topic.2}}"}, {"sensor", "{{topic.1}}"}})},
             {"key", "{{json.node}}"}});
        h.process({message("sensors/temperature/s3", "24.5")});
        const auto out = h.emitted();
        REQUIRE(out.size() == 1);
        CHECK(out[0].payload == R"({"value":24.5,"node":"s3","sensor":"temperature"})");
        REQUIRE(out[0].key);
        CHECK(*out[0].key == "s3");
        CHECK(out[0].topic == "sensors/temperature/s3");
    }
    SECTION("set replaces an existing field in place and can read parsed fields") {
        Harness<JsonTransform> h(
            {{"set", Value::of_map({{"a", "was {{json.a}}"}, {"copy", "{{json.b.c}}"}})}});
        CHECK(one(h, "t", R"({"a":1,"b":{"c":"x"}})") ==
              R"({"a":"was 1","b":{"c":"x"},"copy":"x"})");
    }
    SECTION("rename then drop then keep") {
        Harness<JsonTransform> h({{"rename", Value::of_map({{"t", "temperature"}})},
                                  {"drop", {"debug"}},
                                  {"keep", {"temperature", "debug", "id"}}});
        CHECK(one(h, "t", R"({"id":7,"t":21,"debug":true,"other":0})") ==
              R"({"id":7,"temperature":21})");
    }
    SECTION("escaped keys in the input still match names") {
        Harness<JsonTransform> h({{"drop", {"a"}}});
        CHECK(one(h, "t", R"({"\u0061":1,"b":2})") == R"({"b":2})");
    }
    SECTION("without key option the input key is kept") {
        Harness<JsonTransform> h({});
        auto m = message("t", "{}");
        m.key = "k1";
        h.process({m});
        REQUIRE(h.emitted().at(0).key);
        CHECK(*h.emitted().at(0).key == "k1");
    }
}

TEST_CASE("json-transform rejects what does not parse and goes on", "[plugin][json-transform]") {
    struct Case {
        std::map<std::string, Value> config;
        std::string payload;
        std::string reason;
    };
    const std::vector<Case> cases = {
        {{}, R"({"a":1)", "payload is not valid JSON"},
        {{}, "hello", "payload is not valid JSON: 'hello'"},
        {{}, R"({"a":1} trailing)", "payload is not valid JSON"},
        {{{"parse", "number"}}, "12abc", "payload '12abc' is not a number"},
        {{{"parse", "number"}}, "", "is not a number"},
        {{{"parse", "csv"}, {"columns", {"a", "b"}}}, "1,2,3", "more than the 2 values"},
        {{{"parse", "csv"}, {"columns", {"a", "b"}}}, "1", "CSV line has 1 values, `columns` names 2"},
    };
    for (const auto& c : cases) {
        Harness<JsonTransform> h(c.config);
        const bool csv = c.config.count("columns") > 0;
        REQUIRE(h.process({message("t", c.payload), message("t", csv ? "7,8" : "7")}) ==
                SLUICE_OK);
        const auto rejected = h.rejections();
        INFO("payload: " << c.payload);
        REQUIRE(rejected.size() == 1);
        CHECK(rejected[0].index == 0);
        CHECK(rejected[0].status == SLUICE_ERROR);
        CHECK_THAT(rejected[0].reason, Catch::Contains(c.reason));
        // The good message after the bad one still comes out.
        REQUIRE(h.emitted().size() == 1);
    }
}

TEST_CASE("json-transform survives hostile payloads", "[plugin][json-transform]") {
    Harness<JsonTransform> h({});
    std::string deep(100000, '[');
    REQUIRE(h.process({message("t", deep), message("t", std::string("{\"a\":\"\x01\"}")),
                       message("t", "{\"a\":\"\\uZZZZ\"}")}) == SLUICE_OK);
    CHECK(h.rejections().size() == 3);
    CHECK(h.emitted().empty());
}

// Found by fuzz_json_transform: a reason quoted the payload's bytes raw (invalid UTF-8, DEL,
// C1 and bidi controls), and cut it inside a character. Reasons reach logs, dead-letter
// headers and /api/routes, so they are escaped like the host's log lines.
TEST_CASE("json-transform quotes a bad payload printably in its reason",
          "[plugin][json-transform]") {
    Harness<JsonTransform> h({{"parse", "csv"}, {"columns", {"a", "b", "c"}}});
    const std::string payload =
        "\xff\x7f\xc2\x9b" "31m\xe2\x80\xae" "1," + std::string(40, 'x') + "\xc3\xa9";
    REQUIRE(h.process({message("t", payload)}) == SLUICE_OK);
    const auto rejected = h.rejections();
    REQUIRE(rejected.size() == 1);
    CHECK_THAT(rejected[0].reason,
               Catch::Contains(std::string("'\\xff\\x7f\\xc2\\x9b31m\\u{202e}1,") +
                               std::string(28, 'x') + "...'"));

    Harness<JsonTransform> n({{"parse", "number"}});
    REQUIRE(n.process({message("t", std::string(39, '1') + "\xc3\xa9")}) == SLUICE_OK);
    // 39 bytes and a 2-byte character: cut before the character, never inside it.
    CHECK(n.rejections().at(0).reason ==
          "payload '" + std::string(39, '1') + "...' is not a number");
}

#include "command.hpp"

#include <catch2/catch.hpp>
#include <string>

using namespace sluice::firmware;

namespace {

command_error parse(const std::string& text, device_command* out) {
    return parse_command(text.data(), text.size(), out);
}

}  // namespace

TEST_CASE("plain-text LED commands", "[command]") {
    const std::pair<const char*, bool> cases[] = {
        {"led on", true},     {"led off", false},   {"LED ON", true},      {"Led Off", false},
        {"led 1", true},      {"led 0", false},     {"led true", true},    {"led false", false},
        {"  led on\n", true}, {"led\t off", false}, {"led   on\r\n", true}};
    for (const auto& [text, on] : cases) {
        INFO(text);
        device_command c;
        REQUIRE(parse(text, &c) == command_error::ok);
        CHECK(c.set_led);
        CHECK(c.led_on == on);
        CHECK_FALSE(c.set_interval);
    }
}

TEST_CASE("plain-text interval commands", "[command]") {
    device_command c;
    REQUIRE(parse("interval 5000", &c) == command_error::ok);
    CHECK(c.set_interval);
    CHECK(c.interval_ms == 5000);
    CHECK_FALSE(c.set_led);
    REQUIRE(parse("interval 100", &c) == command_error::ok);  // lower edge
    CHECK(c.interval_ms == 100);
    REQUIRE(parse("INTERVAL 3600000", &c) == command_error::ok);  // upper edge
    CHECK(c.interval_ms == 3600000);
}

TEST_CASE("JSON commands", "[command]") {
    device_command c;
    REQUIRE(parse(R"({"led":"on"})", &c) == command_error::ok);
    CHECK((c.set_led && c.led_on && !c.set_interval));
    REQUIRE(parse(R"( { "led" : "OFF" } )", &c) == command_error::ok);
    CHECK((c.set_led && !c.led_on));
    REQUIRE(parse(R"({"led":true})", &c) == command_error::ok);
    CHECK(c.led_on);
    REQUIRE(parse(R"({"led":false})", &c) == command_error::ok);
    CHECK_FALSE(c.led_on);
    REQUIRE(parse(R"({"interval_ms":5000})", &c) == command_error::ok);
    CHECK((c.set_interval && c.interval_ms == 5000 && !c.set_led));
    REQUIRE(parse("{\"led\":\"on\",\n \"interval_ms\": 250}", &c) == command_error::ok);
    CHECK((c.set_led && c.led_on && c.set_interval && c.interval_ms == 250));
}

TEST_CASE("bad commands are rejected with a reason", "[command]") {
    const std::pair<const char*, command_error> cases[] = {
        {"", command_error::empty},
        {"  \n", command_error::empty},
        {"{}", command_error::empty},
        {"led", command_error::bad_value},
        {"led maybe", command_error::bad_value},
        {"led on now", command_error::syntax},
        {"blink", command_error::unknown_command},
        {"reboot now", command_error::unknown_command},
        {"interval", command_error::bad_value},
        {"interval 5s", command_error::bad_value},
        {"interval 5000.0", command_error::bad_value},
        {"interval 99", command_error::out_of_range},
        {"interval 0", command_error::out_of_range},
        {"interval 3600001", command_error::out_of_range},
        {"interval 99999999999999999999", command_error::out_of_range},
        {"interval -5", command_error::out_of_range},
        {R"({"led":"on")", command_error::syntax},
        {R"({"led":"on"} trailing)", command_error::syntax},
        {R"({"led":maybe})", command_error::bad_value},
        {R"({"led":"on","led":"off"})", command_error::syntax},
        {R"({"led":{"x":1}})", command_error::syntax},
        {R"({"led":"o\"n"})", command_error::syntax},
        {R"({led:"on"})", command_error::syntax},
        {R"({"led":"on",})", command_error::syntax},
        {R"({"colour":"red"})", command_error::unknown_command},
        {R"({"interval_ms":"5000"})", command_error::bad_value},
        {R"({"interval_ms":5000.5})", command_error::bad_value},
        {R"({"interval_ms":5e3})", command_error::bad_value},
        {R"({"interval_ms":-1})", command_error::out_of_range},
        {R"({"interval_ms":50})", command_error::out_of_range},
    };
    for (const auto& [text, expected] : cases) {
        INFO(text);
        device_command c;
        CHECK(parse(text, &c) == expected);
        CHECK_FALSE(c.set_led);  // nothing takes effect from a rejected command
        CHECK_FALSE(c.set_interval);
    }
}

TEST_CASE("a rejected JSON field cancels the valid ones", "[command]") {
    device_command c;
    CHECK(parse(R"({"led":"on","interval_ms":1})", &c) == command_error::out_of_range);
    CHECK_FALSE(c.set_led);
}

TEST_CASE("payloads are length-bounded, not NUL-terminated", "[command]") {
    const char raw[] = "led onXYZ";
    device_command c;
    REQUIRE(parse_command(raw, 6, &c) == command_error::ok);
    CHECK(c.led_on);
    const std::string with_nul("led on\0x", 8);
    CHECK(parse(with_nul, &c) == command_error::syntax);
    CHECK(parse(std::string(kMaxCommandLength, ' '), &c) == command_error::empty);
    CHECK(parse(std::string(kMaxCommandLength + 1, ' '), &c) == command_error::too_long);
}

TEST_CASE("command errors have stable names", "[command]") {
    CHECK(std::string(to_string(command_error::ok)) == "ok");
    CHECK(std::string(to_string(command_error::out_of_range)) == "out_of_range");
    CHECK(std::string(to_string(command_error::unknown_command)) == "unknown_command");
}

#include <catch2/catch.hpp>

#include <sluice/sdk/template.hpp>
#include <sluice/sdk/testing.hpp>

using sluice::sdk::MessageView;
using sluice::sdk::RenderContext;
using sluice::sdk::Template;
using sluice::sdk::TemplateError;

namespace {

struct Rendered {
    std::string text;
    bool complete;
};

Rendered render(const std::string& tmpl, sluice::sdk::OwnedMessage m) {
    std::vector<sluice_header> headers;
    const sluice_message view = m.view(headers);
    std::string out;
    const bool complete = Template::compile(tmpl).render(MessageView(view), RenderContext{"r1"}, out);
    return {out, complete};
}

sluice::sdk::OwnedMessage msg() {
    auto m = sluice::sdk::testing::message("sensors/temperature/s1",
                                           R"({"a":{"b":[10,{"c":"x\ny"}]},"n":1.5,"s":"t"})");
    m.key = "k";
    m.timestamp_ms = 1234;
    m.headers = {{"device", "esp-1"}};
    return m;
}

}  // namespace

TEST_CASE("templates render every variable", "[sdk][template]") {
    CHECK(render("{{topic}}", msg()).text == "sensors/temperature/s1");
    CHECK(render("{{topic.0}}.{{topic.1}}.{{topic.2}}", msg()).text == "sensors.temperature.s1");
    CHECK(render("{{ topic.1 }}", msg()).text == "temperature");
    CHECK(render("{{json.n}}/{{json.s}}", msg()).text == "1.5/t");
    CHECK(render("{{json.a.b.0}}", msg()).text == "10");
    CHECK(render("{{json.a.b.1.c}}", msg()).text == "x\ny");
    CHECK(render("{{json.a.b}}", msg()).text == R"([10,{"c":"x\ny"}])");
    CHECK(render("{{key}}|{{route}}|{{timestamp_ms}}", msg()).text == "k|r1|1234");
    CHECK(render("{{header.device}}", msg()).text == "esp-1");
    CHECK(render("plain", msg()).text == "plain");
    CHECK(Template::compile("plain").is_constant());
    CHECK_FALSE(Template::compile("a{{topic}}").is_constant());
    CHECK(Template::compile("{{json.x}}").uses_payload());
}

TEST_CASE("missing values render empty and are reported", "[sdk][template]") {
    const auto r = render("[{{topic.7}}]", msg());
    CHECK(r.text == "[]");
    CHECK_FALSE(r.complete);
    CHECK_FALSE(render("{{json.nope}}", msg()).complete);
    CHECK_FALSE(render("{{header.nope}}", msg()).complete);
    auto no_key = msg();
    no_key.key.reset();
    CHECK_FALSE(render("{{key}}", no_key).complete);
    auto not_json = msg();
    not_json.payload = "21.5";
    CHECK_FALSE(render("{{json.a}}", not_json).complete);
    CHECK(render("{{topic.2}}", msg()).complete);
}

TEST_CASE("bad templates are rejected with the column", "[sdk][template]") {
    struct Case {
        const char* text;
        const char* error;
    };
    const Case cases[] = {
        {"{{topic", "unclosed '{{' at column 1"},
        {"ab{{nope}}", "unknown variable '{{nope}}' at column 3"},
        {"{{topic.x}}", "topic level in '{{topic.x}}' must be a number"},
        {"{{topic.}}", "must be a number"},
        {"{{json.a..b}}", "empty field name"},
        {"{{json.}}", "unknown variable"},
    };
    for (const auto& c : cases) {
        INFO(c.text);
        try {
            Template::compile(c.text);
            FAIL("compiled");
        } catch (const TemplateError& e) {
            CHECK_THAT(e.what(), Catch::Contains(c.error));
        }
    }
}

// The SDK's template engine (sdk/template.hpp): kafka-sink topics and keys, file-sink paths.
// Input: a template, a newline, a topic, a newline, then the payload. Properties: compiling
// either succeeds or throws TemplateError; a constant template renders to its source; a
// rendering with a cleaning callback hands it only offsets within what was rendered.
#include <cstddef>
#include <cstdint>
#include <sluice/sdk/template.hpp>
#include <sluice/sdk/testing.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"

using sluice::fuzz::fail;

namespace {

std::string_view next_line(std::string_view& rest) {
    const std::size_t nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view rest(reinterpret_cast<const char*>(data), size);
    const std::string_view text = next_line(rest);
    const std::string_view topic = next_line(rest);

    sluice::sdk::Template t;
    try {
        t = sluice::sdk::Template::compile(text);
    } catch (const sluice::sdk::TemplateError&) {
        return 0;
    }
    auto owned = sluice::sdk::testing::message(std::string(topic), std::string(rest));
    if (!topic.empty()) owned.key = std::string(topic.substr(0, topic.size() / 2));
    owned.headers.emplace_back("device", std::string(rest.substr(0, 16)));
    std::vector<sluice_header> headers;
    const sluice_message raw = owned.view(headers);
    const sluice::sdk::MessageView view(raw);

    std::string out;
    const bool complete = t.render(view, {"route"}, out);
    if (t.is_constant() && (!complete || out != t.source())) {
        fail("a constant template rendered something else", out);
    }
    std::string cleaned;
    t.render(view, {"route"}, cleaned, [](std::string& s, std::size_t from) {
        if (from > s.size()) fail("clean() got an offset past the rendering");
    });
    if (cleaned != out) fail("rendering with a no-op clean() differs", cleaned);
    return 0;
}

// The SDK's JSON scanner (sdk/json.hpp), which reads device payloads in json-transform and in
// every `{{json.x}}` template. Input: a dotted path, a newline, then the document.
// Properties: a valid document minifies to a valid document that minifies to itself; a value
// found in a valid document is valid and lies inside it; quoting any text and unquoting it
// gives the text back.
#include <cstddef>
#include <cstdint>
#include <sluice/sdk/json.hpp>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"

namespace json = sluice::sdk::json;
using sluice::fuzz::fail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::size_t nl = input.find('\n');
    const std::string_view path =
        nl == std::string_view::npos ? std::string_view{} : input.substr(0, nl);
    const std::string_view doc = nl == std::string_view::npos ? input : input.substr(nl + 1);

    const bool valid = json::is_valid(doc);
    if (valid) {
        const std::size_t begin = json::skip_ws(doc, 0);
        const std::string_view value = doc.substr(begin, json::skip_value(doc, begin) - begin);
        std::string once;
        json::append_minified(once, value);
        if (!json::is_valid(once)) fail("minified JSON is not valid", once);
        std::string twice;
        json::append_minified(twice, once);
        if (twice != once) fail("minifying is not idempotent", once);
    }
    json::for_each_member(doc, [](std::string_view key, std::string_view value) {
        std::string text;
        json::append_unescaped(text, key);
        json::append_text(text, value);
        return true;
    });

    const auto found = json::find_path(doc, path);
    if (found) {
        if (found->data() < doc.data() || found->data() + found->size() > doc.data() + doc.size()) {
            fail("find_path returned a view outside the document");
        }
        if (valid && !json::is_valid(*found)) fail("find_path found an invalid value", *found);
        std::string text;
        json::append_text(text, *found);
    }

    std::string quoted;
    json::append_quoted(quoted, doc);
    if (!json::is_valid(quoted)) fail("a quoted string is not valid JSON", quoted);
    std::string back;
    json::append_unescaped(back, quoted);
    if (back != doc) fail("quoting does not round-trip", quoted);
    return 0;
}

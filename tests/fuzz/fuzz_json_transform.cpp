// json-transform's payload path, where device bytes meet our parsers: JSON, bare numbers,
// text and CSV, reshaped by rename/set/drop/keep and a templated key. Input: a first byte that
// picks the configuration, then the payload. Properties: every message is either emitted as
// one valid JSON object or rejected with a printable reason; nothing else comes out.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <sluice/sdk/json.hpp>
#include <sluice/sdk/testing.hpp>
#include <string>
#include <vector>

#include "../../plugins/json-transform/src/json_transform.hpp"
#include "fuzz_support.hpp"

using sluice::fuzz::fail;
using sluice::plugins::JsonTransform;
using sluice::sdk::testing::Harness;
using sluice::sdk::testing::Value;

namespace {

std::vector<std::unique_ptr<Harness<JsonTransform>>> make_harnesses() {
    std::vector<std::unique_ptr<Harness<JsonTransform>>> h;
    h.push_back(std::make_unique<Harness<JsonTransform>>(Harness<JsonTransform>::Options{
        {"rename", Value::of_map({{"t", "temperature"}})},
        {"set", Value::of_map({{"room", "{{topic.1}}"}, {"copy", "{{json.a.b}}"}})},
        {"drop", {"debug"}},
        {"key", "{{json.room}}-{{json.id}}"}}));
    h.push_back(std::make_unique<Harness<JsonTransform>>(
        Harness<JsonTransform>::Options{{"parse", "number"}, {"field", "reading"}}));
    h.push_back(std::make_unique<Harness<JsonTransform>>(
        Harness<JsonTransform>::Options{{"parse", "string"}}));
    h.push_back(std::make_unique<Harness<JsonTransform>>(Harness<JsonTransform>::Options{
        {"parse", "csv"}, {"columns", {"date", "time", "s1", "s2"}}, {"keep", {"s1", "time"}}}));
    return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const auto harnesses = make_harnesses();
    if (size == 0) return 0;
    auto& h = *harnesses[data[0] % harnesses.size()];
    const std::string payload(reinterpret_cast<const char*>(data + 1), size - 1);

    h.output().clear();
    if (h.process({sluice::sdk::testing::message("sensors/room1/t", payload)}) != SLUICE_OK) {
        fail("process() failed the whole batch", payload);
    }
    const auto emitted = h.emitted();
    const auto rejections = h.rejections();
    if (emitted.size() + rejections.size() != 1)
        fail("a message neither emitted nor rejected, or both");
    for (const auto& m : emitted) {
        if (!sluice::sdk::json::is_valid(m.payload) || m.payload.front() != '{') {
            fail("json-transform emitted something that is not a JSON object", m.payload);
        }
    }
    for (const auto& r : rejections) sluice::fuzz::require_printable(r.reason);
    return 0;
}

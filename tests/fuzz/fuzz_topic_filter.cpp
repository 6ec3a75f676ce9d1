// mqtt-source's MQTT topic filter check and matcher. Input: a filter, a newline, a topic.
// Properties: every filter is either accepted or refused with a reason; for an accepted
// filter, topic_matches() agrees with a plain level-by-level reading of MQTT 5 section 4.7.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../../plugins/mqtt-source/src/topic_filter.hpp"
#include "fuzz_support.hpp"

using sluice::fuzz::fail;

namespace {

std::vector<std::string_view> levels(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t from = 0;
    while (true) {
        const std::size_t slash = s.find('/', from);
        out.push_back(s.substr(from, slash - from));
        if (slash == std::string_view::npos) return out;
        from = slash + 1;
    }
}

// The reference: slow and obvious.
bool reference_match(std::string_view filter, std::string_view topic) {
    if (filter.starts_with("$share/")) {
        const std::size_t group_end = filter.find('/', 7);
        filter = filter.substr(group_end + 1);
    }
    const auto f = levels(filter);
    const auto t = levels(topic);
    const bool dollar = !topic.empty() && topic.front() == '$';
    for (std::size_t i = 0; i < f.size(); ++i) {
        if (f[i] == "#") return !(i == 0 && dollar);
        if (i >= t.size()) return false;
        if (f[i] == "+") {
            if (i == 0 && dollar) return false;
            continue;
        }
        if (f[i] != t[i]) return false;
    }
    if (f.size() == t.size()) return true;
    return false;
}

bool ends_with_parent_wildcard(std::string_view filter, std::string_view topic) {
    // "a/#" also matches "a": the reference loop above runs out of topic levels first.
    return filter.ends_with("/#") && reference_match(filter.substr(0, filter.size() - 2), topic);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::size_t nl = input.find('\n');
    const std::string_view filter = input.substr(0, nl);
    const std::string_view topic =
        nl == std::string_view::npos ? std::string_view{} : input.substr(nl + 1);

    const std::string error = sluice::plugins::mqtt_source::topic_filter_error(filter);
    if (!error.empty()) return 0;
    if (topic.find_first_of("+#") != std::string_view::npos || topic.empty()) return 0;
    const bool got = sluice::plugins::mqtt_source::topic_matches(filter, topic);
    const bool want = reference_match(filter, topic) || ends_with_parent_wildcard(filter, topic);
    if (got != want) {
        fail(got ? "topic_matches() matched a topic it should not"
                 : "topic_matches() missed a topic",
             std::string(filter) + " <- " + std::string(topic));
    }
    if (sluice::plugins::mqtt_source::is_shared_subscription(filter) !=
        filter.starts_with("$share/")) {
        fail("is_shared_subscription() disagrees", filter);
    }
    return 0;
}

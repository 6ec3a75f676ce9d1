#include "topic_filter.hpp"

#include <algorithm>
#include <cstddef>

namespace sluice::plugins::mqtt_source {
namespace {

constexpr std::string_view kSharePrefix = "$share/";
// MQTT encodes strings with a 16-bit length.
constexpr std::size_t kMaxTopicBytes = 65535;

std::string plain_filter_error(std::string_view filter) {
    if (filter.empty()) return "a topic filter must not be empty";
    if (filter.find('\0') != std::string_view::npos) return "a topic filter must not contain NUL";
    std::size_t level_start = 0;
    for (std::size_t i = 0; i <= filter.size(); ++i) {
        if (i < filter.size() && filter[i] != '/') continue;
        const std::string_view level = filter.substr(level_start, i - level_start);
        const bool last = i == filter.size();
        if (level.find('#') != std::string_view::npos) {
            if (level != "#")
                return "'#' must be a whole level (as in a/#), found '" + std::string(level) + "'";
            if (!last) return "'#' must be the last level (as in a/b/#)";
        }
        if (level.find('+') != std::string_view::npos && level != "+") {
            return "'+' must be a whole level (as in a/+/c), found '" + std::string(level) + "'";
        }
        level_start = i + 1;
    }
    return {};
}

}  // namespace

bool is_shared_subscription(std::string_view filter) {
    return filter.substr(0, kSharePrefix.size()) == kSharePrefix;
}

bool topic_matches(std::string_view filter, std::string_view topic) {
    if (is_shared_subscription(filter)) {
        filter.remove_prefix(kSharePrefix.size());
        filter.remove_prefix(std::min(filter.size(), filter.find('/') + 1));
    }
    if (!topic.empty() && topic.front() == '$' && !filter.empty() &&
        (filter.front() == '+' || filter.front() == '#')) {
        return false;
    }
    std::size_t f = 0;
    std::size_t t = 0;
    for (;;) {
        const std::size_t f_end = std::min(filter.find('/', f), filter.size());
        const std::string_view level = filter.substr(f, f_end - f);
        if (level == "#") return true;  // also matches the parent level: a/# matches a
        const std::size_t t_end = std::min(topic.find('/', t), topic.size());
        if (level != "+" && level != topic.substr(t, t_end - t)) return false;
        const bool filter_done = f_end == filter.size();
        const bool topic_done = t_end == topic.size();
        if (filter_done || topic_done) {
            if (filter_done && topic_done) return true;
            // "a/#" matches "a": the filter's next and last level is '#'.
            return topic_done && filter.substr(f_end) == "/#";
        }
        f = f_end + 1;
        t = t_end + 1;
    }
}

std::string topic_filter_error(std::string_view filter) {
    if (filter.size() > kMaxTopicBytes) return "a topic filter is at most 65535 bytes";
    if (!is_shared_subscription(filter)) return plain_filter_error(filter);
    const std::string_view rest = filter.substr(kSharePrefix.size());
    const std::size_t slash = rest.find('/');
    if (slash == std::string_view::npos) {
        return "a shared subscription is $share/<group>/<filter>; the filter is missing";
    }
    const std::string_view group = rest.substr(0, slash);
    if (group.empty()) return "the share group of $share/<group>/<filter> must not be empty";
    if (group.find_first_of("+#") != std::string_view::npos) {
        return "the share group '" + std::string(group) + "' must not contain '+' or '#'";
    }
    const std::string inner = plain_filter_error(rest.substr(slash + 1));
    return inner.empty() ? inner : "in shared subscription: " + inner;
}

}  // namespace sluice::plugins::mqtt_source

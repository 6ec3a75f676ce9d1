// Kafka topic names: which characters are legal, and how a rendered topic template is made into
// a name Kafka accepts. Kafka refuses a produce to an illegal name with an error that would
// cost the whole message, so illegal characters are replaced before anything is sent.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice::plugins::kafka {

/// Kafka's limit (kafka.common.internals.Topic.MAX_NAME_LENGTH).
constexpr std::size_t kMaxTopicLength = 249;

constexpr bool is_legal_topic_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/// Replaces every character Kafka does not allow in `name` by `replacement`, in place, and
/// returns how many were replaced. Bytes of a multi-byte UTF-8 character are each replaced.
std::size_t sanitize_topic(std::string& name, char replacement);

/// Why `name` cannot be a Kafka topic even with legal characters (empty, too long, "." or
/// ".."), or an empty view when it can.
std::string_view topic_name_problem(std::string_view name);

}  // namespace sluice::plugins::kafka

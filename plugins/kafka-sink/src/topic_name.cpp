#include "topic_name.hpp"

namespace sluice::plugins::kafka {

std::size_t sanitize_topic(std::string& name, char replacement) {
    std::size_t replaced = 0;
    for (char& c : name) {
        if (!is_legal_topic_char(c)) {
            c = replacement;
            ++replaced;
        }
    }
    return replaced;
}

std::string_view topic_name_problem(std::string_view name) {
    if (name.empty()) return "the topic name is empty";
    if (name.size() > kMaxTopicLength) return "the topic name is longer than 249 characters";
    // Kafka reserves these two as path components of its log directories.
    if (name == "." || name == "..") return "'.' and '..' are not valid topic names";
    for (char c : name) {
        if (!is_legal_topic_char(c)) return "the topic name has characters outside [a-zA-Z0-9._-]";
    }
    return {};
}

}  // namespace sluice::plugins::kafka

#include "sluice/core/yaml_documents.hpp"

#include <yaml-cpp/yaml.h>
#include <yaml.h>

#include <map>
#include <memory>

namespace sluice {

namespace {

struct ParserDeleter {
    void operator()(yaml_parser_t* p) const {
        yaml_parser_delete(p);
        delete p;
    }
};

SourceLocation at(const std::string& file, const yaml_mark_t& mark) {
    return {file, static_cast<int>(mark.line) + 1, static_cast<int>(mark.column) + 1};
}

// A reader error (bad encoding, a control character) has only a byte offset.
SourceLocation at_offset(const std::string& file, const std::string& text, std::size_t offset) {
    SourceLocation where{file, 1, 1};
    for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++where.line;
            where.column = 1;
        } else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
            ++where.column;
        }
    }
    return where;
}

// libyaml's verdict on `text`, with the depth and alias-expansion bounds: "" when acceptable.
std::string check_syntax(const std::string& text, const std::string& file, SourceLocation& where) {
    const std::unique_ptr<yaml_parser_t, ParserDeleter> parser(new yaml_parser_t{});
    if (yaml_parser_initialize(parser.get()) == 0) return "out of memory";
    yaml_parser_set_input_string(parser.get(), reinterpret_cast<const unsigned char*>(text.data()),
                                 text.size());
    struct Open {
        std::string anchor;  // "" when the collection has none
        std::size_t first;   // `expanded` when it started
    };
    std::vector<Open> open;
    std::map<std::string, std::size_t, std::less<>> anchor_sizes;
    std::size_t expanded = 0;
    const auto anchor_of = [](const yaml_char_t* a) {
        return a == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(a));
    };
    while (true) {
        yaml_event_t event;
        if (yaml_parser_parse(parser.get(), &event) == 0) {
            const yaml_parser_t& p = *parser;
            std::string message = p.problem != nullptr ? p.problem : "malformed";
            if (p.error == YAML_READER_ERROR) {
                where = at_offset(file, text, p.problem_offset);
            } else {
                where = at(file, p.problem_mark);
                if (p.context != nullptr) message += std::string(" (") + p.context + ")";
            }
            return message;
        }
        const std::unique_ptr<yaml_event_t, decltype(&yaml_event_delete)> owned(&event,
                                                                                yaml_event_delete);
        std::size_t adds = 0;
        switch (event.type) {
            case YAML_STREAM_END_EVENT:
                return "";
            case YAML_SEQUENCE_START_EVENT:
            case YAML_MAPPING_START_EVENT: {
                if (open.size() >= kMaxYamlDepth) {
                    where = at(file, event.start_mark);
                    return "nested deeper than " + std::to_string(kMaxYamlDepth) + " levels";
                }
                const yaml_char_t* anchor = event.type == YAML_SEQUENCE_START_EVENT
                                                ? event.data.sequence_start.anchor
                                                : event.data.mapping_start.anchor;
                open.push_back({anchor_of(anchor), expanded});
                adds = 1;
                break;
            }
            case YAML_SEQUENCE_END_EVENT:
            case YAML_MAPPING_END_EVENT:
                if (!open.empty()) {
                    if (!open.back().anchor.empty()) {
                        anchor_sizes[open.back().anchor] = expanded - open.back().first;
                    }
                    open.pop_back();
                }
                break;
            case YAML_SCALAR_EVENT:
                adds = 1;
                if (event.data.scalar.anchor != nullptr) {
                    anchor_sizes[anchor_of(event.data.scalar.anchor)] = 1;
                }
                break;
            case YAML_ALIAS_EVENT: {
                const auto it = anchor_sizes.find(anchor_of(event.data.alias.anchor));
                adds = it == anchor_sizes.end() ? 1 : it->second;
                break;
            }
            default:
                break;
        }
        expanded += adds;
        if (expanded > kMaxYamlExpandedNodes) {
            where = at(file, event.start_mark);
            return "more than " + std::to_string(kMaxYamlExpandedNodes) +
                   " values with aliases expanded (an alias of an alias of ... is refused)";
        }
    }
}

}  // namespace

std::optional<std::vector<YAML::Node>> parse_yaml_documents(const std::string& text,
                                                            const std::string& file,
                                                            Diagnostic& error) {
    SourceLocation where;
    if (const std::string problem = check_syntax(text, file, where); !problem.empty()) {
        error = {where, "", "malformed YAML: " + problem};
        return std::nullopt;
    }
    try {
        return YAML::LoadAll(text);
    } catch (const YAML::Exception& e) {
        error = {{file, e.mark.line + 1, e.mark.column + 1}, "", "malformed YAML: " + e.msg};
        if (e.mark.line < 0) error.where = {file, 0, 0};
        return std::nullopt;
    }
}

}  // namespace sluice

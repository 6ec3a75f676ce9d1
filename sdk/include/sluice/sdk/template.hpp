// The one template engine every plugin and the host use: `{{topic}}`, `{{topic.N}}` (0-based
// topic level), `{{json.a.b}}` (a field of the JSON payload), `{{key}}`, `{{route}}`,
// `{{timestamp_ms}}` and `{{header.NAME}}`. A template is compiled once per route, then
// rendered per message without parsing the template again.
#ifndef SLUICE_SDK_TEMPLATE_HPP
#define SLUICE_SDK_TEMPLATE_HPP

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/sdk/json.hpp"
#include "sluice/sdk/message.hpp"

namespace sluice::sdk {

/// A template that does not compile; what() names the problem and its column (1-based).
class TemplateError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// What a template can see besides the message itself.
struct RenderContext {
    std::string_view route;
};

class Template {
public:
    Template() = default;

    /// Compiles `text`; throws TemplateError.
    static Template compile(std::string_view text) {
        Template t;
        t.source_ = text;
        std::size_t pos = 0;
        while (pos < text.size()) {
            const std::size_t open = text.find("{{", pos);
            if (open == std::string_view::npos) {
                t.add_literal(text.substr(pos));
                break;
            }
            t.add_literal(text.substr(pos, open - pos));
            const std::size_t close = text.find("}}", open + 2);
            if (close == std::string_view::npos) {
                throw TemplateError("unclosed '{{' at column " + std::to_string(open + 1));
            }
            t.add_variable(trim(text.substr(open + 2, close - open - 2)), open + 1);
            pos = close + 2;
        }
        return t;
    }

    const std::string& source() const { return source_; }
    /// True when the template has no variables: render() always gives source().
    bool is_constant() const {
        for (const auto& p : parts_) {
            if (p.kind != Kind::literal) return false;
        }
        return true;
    }
    bool uses_payload() const {
        for (const auto& p : parts_) {
            if (p.kind == Kind::json) return true;
        }
        return false;
    }

    /// Appends the rendering for `m` to `out`. Returns false when a variable had no value
    /// (missing topic level, JSON field, key or header): it rendered as empty text.
    bool render(MessageView m, const RenderContext& ctx, std::string& out) const {
        return render(m, ctx, out, [](std::string&, std::size_t) {});
    }

    /// As render(), and `clean(out, from)` is called after each variable with the offset
    /// where its text starts: for plugins that build names (files, topics) of what a message
    /// carries, so that a message cannot put a separator or a control character there. The
    /// template's literal text is the manifest's and is left as written.
    template <class Clean>
    bool render(MessageView m, const RenderContext& ctx, std::string& out, Clean&& clean) const {
        bool complete = true;
        for (const auto& p : parts_) {
            const std::size_t from = out.size();
            switch (p.kind) {
                case Kind::literal:
                    out.append(p.text);
                    break;
                case Kind::topic:
                    out.append(m.topic());
                    break;
                case Kind::topic_level: {
                    const auto level = topic_level(m.topic(), p.index);
                    if (level.data() == nullptr) complete = false;
                    out.append(level);
                    break;
                }
                case Kind::json: {
                    const auto value = json::find_path(m.payload(), p.text);
                    if (!value) {
                        complete = false;
                    } else {
                        json::append_text(out, *value);
                    }
                    break;
                }
                case Kind::key:
                    if (!m.has_key()) complete = false;
                    out.append(m.key());
                    break;
                case Kind::route:
                    out.append(ctx.route);
                    break;
                case Kind::timestamp_ms:
                    out.append(std::to_string(m.timestamp_ms()));
                    break;
                case Kind::header: {
                    const auto value = m.header(p.text);
                    if (!value) complete = false;
                    out.append(value.value_or(std::string_view{}));
                    break;
                }
            }
            if (p.kind != Kind::literal) clean(out, from);
        }
        return complete;
    }

    /// The template's text before its first variable (all of it when it has none).
    std::string_view constant_prefix() const {
        if (!parts_.empty() && parts_.front().kind == Kind::literal) return parts_.front().text;
        return {};
    }

    /// Level `index` (0-based) of an MQTT topic; a null view when it has fewer levels.
    static std::string_view topic_level(std::string_view topic, std::size_t index) {
        std::size_t begin = 0;
        for (std::size_t i = 0; i < index; ++i) {
            const std::size_t slash = topic.find('/', begin);
            if (slash == std::string_view::npos) return {};
            begin = slash + 1;
        }
        const std::size_t end = topic.find('/', begin);
        return topic.substr(begin, end == std::string_view::npos ? end : end - begin);
    }

private:
    enum class Kind : std::uint8_t {
        literal,
        topic,
        topic_level,
        json,
        key,
        route,
        timestamp_ms,
        header
    };
    struct Part {
        Kind kind;
        std::string text;  // literal text, JSON path or header name
        std::size_t index = 0;
    };

    static std::string_view trim(std::string_view s) {
        while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
        while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
        return s;
    }

    void add_literal(std::string_view text) {
        if (text.empty()) return;
        if (!parts_.empty() && parts_.back().kind == Kind::literal) {
            parts_.back().text.append(text);
        } else {
            parts_.push_back({Kind::literal, std::string(text)});
        }
    }

    void add_variable(std::string_view name, std::size_t column) {
        const std::string where = " at column " + std::to_string(column);
        if (name == "topic") return parts_.push_back({Kind::topic, {}});
        if (name == "key") return parts_.push_back({Kind::key, {}});
        if (name == "route") return parts_.push_back({Kind::route, {}});
        if (name == "timestamp_ms") return parts_.push_back({Kind::timestamp_ms, {}});
        if (name.starts_with("topic.")) {
            const std::string_view digits = name.substr(6);
            std::size_t index = 0;
            if (digits.empty() || digits.size() > 4) {
                throw TemplateError("topic level in '{{" + std::string(name) +
                                    "}}' must be a number" + where);
            }
            for (char c : digits) {
                if (c < '0' || c > '9') {
                    throw TemplateError("topic level in '{{" + std::string(name) +
                                        "}}' must be a number" + where);
                }
                index = index * 10 + static_cast<std::size_t>(c - '0');
            }
            return parts_.push_back({Kind::topic_level, {}, index});
        }
        if (name.starts_with("json.") && name.size() > 5) {
            const std::string_view path = name.substr(5);
            if (path.find("..") != std::string_view::npos || path.back() == '.') {
                throw TemplateError("empty field name in '{{" + std::string(name) + "}}'" + where);
            }
            return parts_.push_back({Kind::json, std::string(path)});
        }
        if (name.starts_with("header.") && name.size() > 7) {
            return parts_.push_back({Kind::header, std::string(name.substr(7))});
        }
        throw TemplateError("unknown variable '{{" + std::string(name) + "}}'" + where +
                            " (known: topic, topic.N, json.<path>, key, route, timestamp_ms, "
                            "header.<name>)");
    }

    std::string source_;
    std::vector<Part> parts_;
};

}  // namespace sluice::sdk

#endif  // SLUICE_SDK_TEMPLATE_HPP

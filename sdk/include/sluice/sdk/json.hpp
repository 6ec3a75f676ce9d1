// Minimal JSON scanning and writing over string_view, for the SDK's template engine and for
// plugins that reshape payloads. Nothing here allocates except the std::string you append to:
// values are handed around as raw text slices of the input (`raw` = exact JSON text of one
// value), which is what a bridge needs to move fields without building a DOM.
#ifndef SLUICE_SDK_JSON_HPP
#define SLUICE_SDK_JSON_HPP

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::sdk::json {

inline constexpr std::size_t npos = std::string_view::npos;
// Deep enough for any sensor payload; bounded so hostile input cannot exhaust the stack.
inline constexpr int kMaxDepth = 64;

inline std::size_t skip_ws(std::string_view s, std::size_t pos) {
    while (pos < s.size() &&
           (s[pos] == ' ' || s[pos] == '\n' || s[pos] == '\r' || s[pos] == '\t')) {
        ++pos;
    }
    return pos;
}

namespace detail {

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_hex(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// pos at the opening quote; returns the position after the closing quote, or npos.
inline std::size_t skip_string(std::string_view s, std::size_t pos) {
    ++pos;
    while (pos < s.size()) {
        const auto c = static_cast<unsigned char>(s[pos]);
        if (c == '"') return pos + 1;
        if (c < 0x20) return npos;
        if (c == '\\') {
            if (++pos >= s.size()) return npos;
            switch (s[pos]) {
                case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                    ++pos;
                    break;
                case 'u':
                    if (pos + 4 >= s.size()) return npos;
                    for (std::size_t i = 1; i <= 4; ++i) {
                        if (!is_hex(s[pos + i])) return npos;
                    }
                    pos += 5;
                    break;
                default:
                    return npos;
            }
            continue;
        }
        ++pos;
    }
    return npos;
}

inline std::size_t skip_number(std::string_view s, std::size_t pos) {
    if (pos < s.size() && s[pos] == '-') ++pos;
    if (pos >= s.size()) return npos;
    if (s[pos] == '0') {
        ++pos;
    } else if (is_digit(s[pos])) {
        while (pos < s.size() && is_digit(s[pos])) ++pos;
    } else {
        return npos;
    }
    if (pos < s.size() && s[pos] == '.') {
        ++pos;
        if (pos >= s.size() || !is_digit(s[pos])) return npos;
        while (pos < s.size() && is_digit(s[pos])) ++pos;
    }
    if (pos < s.size() && (s[pos] == 'e' || s[pos] == 'E')) {
        ++pos;
        if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) ++pos;
        if (pos >= s.size() || !is_digit(s[pos])) return npos;
        while (pos < s.size() && is_digit(s[pos])) ++pos;
    }
    return pos;
}

inline std::size_t skip_literal(std::string_view s, std::size_t pos, std::string_view word) {
    return s.substr(pos, word.size()) == word ? pos + word.size() : npos;
}

}  // namespace detail

/// Skips one value starting at or after `pos` (leading whitespace allowed).
/// Returns the position just after it, or npos when the text is not valid JSON there.
inline std::size_t skip_value(std::string_view s, std::size_t pos, int depth = 0) {
    pos = skip_ws(s, pos);
    if (pos >= s.size() || depth > kMaxDepth) return npos;
    switch (s[pos]) {
        case '"':
            return detail::skip_string(s, pos);
        case '{': {
            pos = skip_ws(s, pos + 1);
            if (pos < s.size() && s[pos] == '}') return pos + 1;
            while (true) {
                pos = skip_ws(s, pos);
                if (pos >= s.size() || s[pos] != '"') return npos;
                pos = skip_ws(s, detail::skip_string(s, pos));
                if (pos >= s.size() || s[pos] != ':') return npos;
                pos = skip_value(s, pos + 1, depth + 1);
                if (pos == npos) return npos;
                pos = skip_ws(s, pos);
                if (pos >= s.size()) return npos;
                if (s[pos] == '}') return pos + 1;
                if (s[pos] != ',') return npos;
                ++pos;
            }
        }
        case '[': {
            pos = skip_ws(s, pos + 1);
            if (pos < s.size() && s[pos] == ']') return pos + 1;
            while (true) {
                pos = skip_value(s, pos, depth + 1);
                if (pos == npos) return npos;
                pos = skip_ws(s, pos);
                if (pos >= s.size()) return npos;
                if (s[pos] == ']') return pos + 1;
                if (s[pos] != ',') return npos;
                ++pos;
            }
        }
        case 't':
            return detail::skip_literal(s, pos, "true");
        case 'f':
            return detail::skip_literal(s, pos, "false");
        case 'n':
            return detail::skip_literal(s, pos, "null");
        default:
            return detail::skip_number(s, pos);
    }
}

/// True when `s` is exactly one JSON value, optionally surrounded by whitespace.
inline bool is_valid(std::string_view s) {
    const auto end = skip_value(s, 0);
    return end != npos && skip_ws(s, end) == s.size();
}

/// True when `s` is exactly one JSON number (no whitespace).
inline bool is_number(std::string_view s) {
    return !s.empty() && detail::skip_number(s, 0) == s.size();
}

/// Calls f(raw_key, raw_value) for each member of the object `raw_object` (raw_key keeps its
/// quotes). Stops early when f returns false. Returns false when `raw_object` is not a valid
/// object, in which case f may already have seen some members.
template <class F>
bool for_each_member(std::string_view s, F&& f) {
    std::size_t pos = skip_ws(s, 0);
    if (pos >= s.size() || s[pos] != '{') return false;
    pos = skip_ws(s, pos + 1);
    if (pos < s.size() && s[pos] == '}') return skip_ws(s, pos + 1) == s.size();
    while (true) {
        pos = skip_ws(s, pos);
        if (pos >= s.size() || s[pos] != '"') return false;
        const std::size_t key_end = detail::skip_string(s, pos);
        if (key_end == npos) return false;
        const std::string_view key = s.substr(pos, key_end - pos);
        pos = skip_ws(s, key_end);
        if (pos >= s.size() || s[pos] != ':') return false;
        const std::size_t value_begin = skip_ws(s, pos + 1);
        const std::size_t value_end = skip_value(s, value_begin, 1);
        if (value_end == npos) return false;
        if (!f(key, s.substr(value_begin, value_end - value_begin))) return true;
        pos = skip_ws(s, value_end);
        if (pos >= s.size()) return false;
        if (s[pos] == '}') return skip_ws(s, pos + 1) == s.size();
        if (s[pos] != ',') return false;
        ++pos;
    }
}

/// Appends the decoded text of a raw JSON string (with quotes) to `out`.
inline void append_unescaped(std::string& out, std::string_view raw) {
    if (raw.size() < 2) return;
    raw = raw.substr(1, raw.size() - 2);
    std::size_t i = 0;
    while (i < raw.size()) {
        const std::size_t esc = raw.find('\\', i);
        if (esc == npos) {
            out.append(raw.substr(i));
            return;
        }
        out.append(raw.substr(i, esc - i));
        if (esc + 1 >= raw.size()) return;
        const char c = raw[esc + 1];
        i = esc + 2;
        switch (c) {
            case 'b': out.push_back('\b'); break;
            case 'f': out.push_back('\f'); break;
            case 'n': out.push_back('\n'); break;
            case 'r': out.push_back('\r'); break;
            case 't': out.push_back('\t'); break;
            case 'u': {
                if (esc + 6 > raw.size()) return;
                auto hex = [](std::string_view h) {
                    std::uint32_t v = 0;
                    for (char d : h) {
                        v <<= 4;
                        v |= static_cast<std::uint32_t>(d <= '9'   ? d - '0'
                                                        : d <= 'F' ? d - 'A' + 10
                                                                   : d - 'a' + 10);
                    }
                    return v;
                };
                std::uint32_t cp = hex(raw.substr(esc + 2, 4));
                i = esc + 6;
                // A high surrogate followed by an escaped low surrogate forms one code point.
                if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 <= raw.size() && raw[i] == '\\' &&
                    raw[i + 1] == 'u') {
                    const std::uint32_t lo = hex(raw.substr(i + 2, 4));
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        i += 6;
                    }
                }
                auto put = [&out](std::uint32_t b) { out.push_back(static_cast<char>(b)); };
                if (cp < 0x80) {
                    put(cp);
                } else if (cp < 0x800) {
                    put(0xC0 | (cp >> 6));
                    put(0x80 | (cp & 0x3F));
                } else if (cp < 0x10000) {
                    put(0xE0 | (cp >> 12));
                    put(0x80 | ((cp >> 6) & 0x3F));
                    put(0x80 | (cp & 0x3F));
                } else {
                    put(0xF0 | (cp >> 18));
                    put(0x80 | ((cp >> 12) & 0x3F));
                    put(0x80 | ((cp >> 6) & 0x3F));
                    put(0x80 | (cp & 0x3F));
                }
                break;
            }
            default: out.push_back(c); break;  // " \ /
        }
    }
}

/// True when raw key `raw_key` (with quotes, possibly escaped) equals the plain text `name`.
/// Keys with escapes are compared after decoding.
inline bool key_equals(std::string_view raw_key, std::string_view name) {
    const std::string_view inner = raw_key.substr(1, raw_key.size() - 2);
    if (inner.find('\\') == npos) return inner == name;
    std::string decoded;
    append_unescaped(decoded, raw_key);
    return decoded == name;
}

/// Appends `text` as a quoted JSON string, escaping what JSON requires.
inline void append_quoted(std::string& out, std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    out.push_back('"');
    std::size_t run = 0;  // start of the pending run of bytes that need no escaping
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        out.append(text.substr(run, i - run));
        run = i + 1;
        switch (c) {
            case '"': out.append("\\\""); break;
            case '\\': out.append("\\\\"); break;
            case '\n': out.append("\\n"); break;
            case '\r': out.append("\\r"); break;
            case '\t': out.append("\\t"); break;
            default:
                out.append("\\u00");
                out.push_back(kHex[c >> 4]);
                out.push_back(kHex[c & 0xF]);
        }
    }
    out.append(text.substr(run));
    out.push_back('"');
}

/// Appends a raw JSON value without insignificant whitespace.
inline void append_minified(std::string& out, std::string_view raw) {
    bool in_string = false;
    std::size_t run = 0;
    for (std::size_t i = 0; i < raw.size(); ++i) {
        const char c = raw[i];
        if (in_string) {
            if (c == '\\') {
                ++i;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            out.append(raw.substr(run, i - run));
            run = i + 1;
        }
    }
    out.append(raw.substr(run));
}

/// Appends a raw value as text: strings decoded without quotes, anything else minified.
/// This is how `{{json.x}}` renders inside templates.
inline void append_text(std::string& out, std::string_view raw) {
    if (!raw.empty() && raw.front() == '"') {
        append_unescaped(out, raw);
    } else {
        append_minified(out, raw);
    }
}

/// Finds the value at a dotted path ("a.b.0.c": object members by name, array elements by
/// index) in the JSON document `doc`. Returns its raw text, or nullopt when absent or when the
/// document is malformed on the way.
inline std::optional<std::string_view> find_path(std::string_view doc, std::string_view path) {
    std::string_view current = doc;
    while (true) {
        const std::size_t dot = path.find('.');
        const std::string_view step = path.substr(0, dot);
        const std::size_t pos = skip_ws(current, 0);
        if (pos >= current.size()) return std::nullopt;
        std::optional<std::string_view> next;
        if (current[pos] == '{') {
            const bool ok = for_each_member(current, [&](std::string_view k, std::string_view v) {
                if (key_equals(k, step)) {
                    next = v;
                    return false;
                }
                return true;
            });
            if (!ok && !next) return std::nullopt;
        } else if (current[pos] == '[') {
            std::size_t index = 0;
            if (step.empty()) return std::nullopt;
            for (char c : step) {
                if (!detail::is_digit(c)) return std::nullopt;
                index = index * 10 + static_cast<std::size_t>(c - '0');
            }
            std::size_t p = skip_ws(current, pos + 1);
            for (std::size_t i = 0;; ++i) {
                if (p >= current.size() || current[p] == ']') return std::nullopt;
                const std::size_t begin = skip_ws(current, p);
                const std::size_t end = skip_value(current, begin, 1);
                if (end == npos) return std::nullopt;
                if (i == index) {
                    next = current.substr(begin, end - begin);
                    break;
                }
                p = skip_ws(current, end);
                if (p >= current.size() || current[p] != ',') return std::nullopt;
                ++p;
            }
        } else {
            return std::nullopt;
        }
        if (!next) return std::nullopt;
        if (dot == npos) return next;
        current = *next;
        path = path.substr(dot + 1);
    }
}

}  // namespace sluice::sdk::json

#endif  // SLUICE_SDK_JSON_HPP

// Text that came from outside (payloads, topics, manifests) made safe to show: on a terminal, in
// a log line, in an error reason. The host's log uses the same functions, so a plugin's reasons
// and the host's lines escape alike.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>

namespace sluice::sdk::text {

namespace detail {

// The length of the valid UTF-8 sequence at `s[i]` (1 to 4), or 0 when it is not one
// (overlong forms, surrogates and code points past U+10FFFF are not valid).
inline std::size_t utf8_length(std::string_view s, std::size_t i, char32_t& cp) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
    const unsigned char c = b(0);
    std::size_t n = 0;
    if (c < 0x80) {
        cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        if ((b(k) & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (b(k) & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return n;
}

inline void append_hex(std::string& out, unsigned char c) {
    char text[5];
    std::snprintf(text, sizeof text, "\\x%02x", c);
    out += text;
}

inline bool is_bidi_control(char32_t cp) {
    return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E ||
           cp == 0x200F || cp == 0x061C;
}

}  // namespace detail

/// For text lines: control characters (C0, DEL, C1), backslash and invalid UTF-8 bytes become
/// `\n`, `\t`, `\r`, `\\` or `\xNN`; Unicode bidirectional overrides and isolates become
/// `\u{NNNN}`, so that a line reads the way its bytes are ordered. Everything else (printable
/// ASCII, valid UTF-8) is kept.
inline std::string escape_text(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    for (std::size_t i = 0; i < raw.size();) {
        const auto c = static_cast<unsigned char>(raw[i]);
        if (c >= 0x20 && c < 0x7F && c != '\\') {
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        switch (c) {
            case '\\':
                out += "\\\\";
                ++i;
                continue;
            case '\n':
                out += "\\n";
                ++i;
                continue;
            case '\r':
                out += "\\r";
                ++i;
                continue;
            case '\t':
                out += "\\t";
                ++i;
                continue;
            default:
                break;
        }
        char32_t cp = 0;
        const std::size_t n = c < 0x80 ? 0 : detail::utf8_length(raw, i, cp);
        if (n == 0) {  // C0 control, DEL, or a byte that is not valid UTF-8 here
            detail::append_hex(out, c);
            ++i;
        } else if (cp < 0xA0) {  // C1 control (U+0080..U+009F): CSI and friends
            for (std::size_t k = 0; k < n; ++k)
                detail::append_hex(out, static_cast<unsigned char>(raw[i + k]));
            i += n;
        } else if (detail::is_bidi_control(cp)) {
            char text[16];
            std::snprintf(text, sizeof text, "\\u{%04x}", static_cast<unsigned>(cp));
            out += text;
            i += n;
        } else {
            out.append(raw.substr(i, n));
            i += n;
        }
    }
    return out;
}

/// For JSON lines, whose quoting escapes control characters itself: only invalid UTF-8 bytes
/// become the text `\xNN`, so that every line is valid UTF-8 (and so valid JSON).
inline std::string valid_utf8(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    for (std::size_t i = 0; i < raw.size();) {
        char32_t cp = 0;
        const std::size_t n = detail::utf8_length(raw, i, cp);
        if (n == 0) {
            detail::append_hex(out, static_cast<unsigned char>(raw[i]));
            ++i;
        } else {
            out.append(raw.substr(i, n));
            i += n;
        }
    }
    return out;
}

/// The offset of the first byte that does not start a valid UTF-8 sequence, or npos.
inline std::size_t invalid_utf8_at(std::string_view raw) {
    for (std::size_t i = 0; i < raw.size();) {
        char32_t cp = 0;
        const std::size_t n = detail::utf8_length(raw, i, cp);
        if (n == 0) return i;
        i += n;
    }
    return std::string_view::npos;
}

/// At most about `max_bytes` of `raw` (cut at a character, never inside one), escaped as
/// escape_text() does, with "..." when something was cut: for quoting a payload in a reason.
inline std::string excerpt(std::string_view raw, std::size_t max_bytes = 40) {
    std::size_t cut = 0;
    while (cut < raw.size() && cut < max_bytes) {
        char32_t cp = 0;
        const std::size_t n = detail::utf8_length(raw, cut, cp);
        if (cut + (n == 0 ? 1 : n) > max_bytes) break;
        cut += n == 0 ? 1 : n;
    }
    std::string out = escape_text(raw.substr(0, cut));
    if (cut < raw.size()) out += "...";
    return out;
}

}  // namespace sluice::sdk::text

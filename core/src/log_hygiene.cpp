#include "sluice/core/log_hygiene.hpp"

#include <cstdio>
#include <utility>

namespace sluice::log {
namespace {

// The length of the valid UTF-8 sequence at `s[i]` (1 to 4), or 0 when it is not one
// (overlong forms, surrogates and code points past U+10FFFF are not valid).
std::size_t utf8_length(std::string_view s, std::size_t i, char32_t& cp) {
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

void append_hex(std::string& out, unsigned char c) {
    char text[5];
    std::snprintf(text, sizeof text, "\\x%02x", c);
    out += text;
}

bool is_bidi_control(char32_t cp) {
    return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E ||
           cp == 0x200F || cp == 0x061C;
}

}  // namespace

std::string escape_text(std::string_view raw) {
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
        const std::size_t n = c < 0x80 ? 0 : utf8_length(raw, i, cp);
        if (n == 0) {  // C0 control, DEL, or a byte that is not valid UTF-8 here
            append_hex(out, c);
            ++i;
        } else if (cp < 0xA0) {  // C1 control (U+0080..U+009F): CSI and friends
            for (std::size_t k = 0; k < n; ++k)
                append_hex(out, static_cast<unsigned char>(raw[i + k]));
            i += n;
        } else if (is_bidi_control(cp)) {
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

std::string valid_utf8(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    for (std::size_t i = 0; i < raw.size();) {
        char32_t cp = 0;
        const std::size_t n = utf8_length(raw, i, cp);
        if (n == 0) {
            append_hex(out, static_cast<unsigned char>(raw[i]));
            ++i;
        } else {
            out.append(raw.substr(i, n));
            i += n;
        }
    }
    return out;
}

std::size_t invalid_utf8_at(std::string_view raw) {
    for (std::size_t i = 0; i < raw.size();) {
        char32_t cp = 0;
        const std::size_t n = utf8_length(raw, i, cp);
        if (n == 0) return i;
        i += n;
    }
    return std::string_view::npos;
}

FloodLimiter::FloodLimiter(std::size_t burst, Clock::duration window, std::size_t max_keys)
    : burst_(burst), window_(window), max_keys_(max_keys) {}

FloodLimiter::Decision FloodLimiter::decide(std::string_view key, Clock::time_point now) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(std::string(key));
    if (it == entries_.end()) {
        if (entries_.size() >= max_keys_) {
            // Forget windows that are over and reported; a flood of distinct lines is not
            // limited by this (each is written once).
            std::erase_if(entries_, [&](const auto& e) {
                return e.second.suppressed == 0 && now - e.second.window_start >= window_;
            });
            if (entries_.size() >= max_keys_) return {};
        }
        entries_.emplace(std::string(key), Entry{now, 1, 0});
        return {};
    }
    Entry& e = it->second;
    if (now - e.window_start >= window_) {
        const std::uint64_t left_out = e.suppressed;
        e = Entry{now, 1, 0};
        return {true, left_out};
    }
    if (e.in_window < burst_) {
        ++e.in_window;
        return {};
    }
    ++e.suppressed;
    return {false, 0};
}

std::vector<std::pair<std::string, std::uint64_t>> FloodLimiter::take_suppressed() {
    std::lock_guard lock(mu_);
    std::vector<std::pair<std::string, std::uint64_t>> out;
    for (auto& [key, e] : entries_) {
        if (e.suppressed > 0) out.emplace_back(key, std::exchange(e.suppressed, 0));
    }
    return out;
}

}  // namespace sluice::log

#include "command.hpp"

namespace sluice::firmware {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// A (pointer, length) view; the core has no std::string_view on the ESP8266 toolchain.
struct text {
    const char* data;
    size_t size;
};

bool equals_ignore_case(text t, const char* word) {
    const size_t n = strlen(word);
    if (t.size != n) return false;
    for (size_t i = 0; i < n; ++i) {
        if (to_lower(t.data[i]) != word[i]) return false;
    }
    return true;
}

command_error parse_led_word(text value, bool* on) {
    if (equals_ignore_case(value, "on") || equals_ignore_case(value, "true") ||
        equals_ignore_case(value, "1")) {
        *on = true;
        return command_error::ok;
    }
    if (equals_ignore_case(value, "off") || equals_ignore_case(value, "false") ||
        equals_ignore_case(value, "0")) {
        *on = false;
        return command_error::ok;
    }
    return command_error::bad_value;
}

// Plain decimal digits only: a sign, fraction or exponent in a millisecond count is a mistake
// worth reporting, not rounding away.
command_error parse_interval_digits(text value, bool negative, uint32_t* out) {
    if (value.size == 0) return command_error::bad_value;
    uint32_t result = 0;
    bool overflow = false;
    for (size_t i = 0; i < value.size; ++i) {
        const char c = value.data[i];
        if (c < '0' || c > '9') return command_error::bad_value;
        const uint32_t digit = static_cast<uint32_t>(c - '0');
        if (result > (UINT32_MAX - digit) / 10) overflow = true;
        if (!overflow) result = result * 10 + digit;
    }
    if (negative || overflow || result < kMinIntervalMs || result > kMaxIntervalMs) {
        return command_error::out_of_range;
    }
    *out = result;
    return command_error::ok;
}

text trim(text t) {
    while (t.size > 0 && is_space(t.data[0])) {
        ++t.data;
        --t.size;
    }
    while (t.size > 0 && is_space(t.data[t.size - 1])) --t.size;
    return t;
}

command_error parse_plain(text input, device_command* out) {
    size_t i = 0;
    while (i < input.size && !is_space(input.data[i])) ++i;
    const text word{input.data, i};
    const text value = trim({input.data + i, input.size - i});
    for (size_t k = 0; k < value.size; ++k) {
        if (is_space(value.data[k])) return command_error::syntax;  // `led on now`
    }
    if (equals_ignore_case(word, "led")) {
        if (value.size == 0) return command_error::bad_value;
        out->set_led = true;
        return parse_led_word(value, &out->led_on);
    }
    if (equals_ignore_case(word, "interval")) {
        bool negative = value.size > 0 && value.data[0] == '-';
        const text digits = negative ? text{value.data + 1, value.size - 1} : value;
        out->set_interval = true;
        return parse_interval_digits(digits, negative, &out->interval_ms);
    }
    return command_error::unknown_command;
}

// Just enough JSON for a flat object whose values are strings without escapes, unsigned
// integers, true or false. Anything richer is refused rather than half understood.
class json_cursor {
public:
    explicit json_cursor(text input) : input_(input) {}

    void skip_space() {
        while (pos_ < input_.size && is_space(input_.data[pos_])) ++pos_;
    }
    bool at_end() const { return pos_ >= input_.size; }
    char peek() const { return at_end() ? '\0' : input_.data[pos_]; }
    bool consume(char c) {
        if (peek() != c || at_end()) return false;
        ++pos_;
        return true;
    }

    bool read_string(text* out) {
        if (!consume('"')) return false;
        const size_t start = pos_;
        while (!at_end() && input_.data[pos_] != '"') {
            const char c = input_.data[pos_];
            if (c == '\\' || static_cast<unsigned char>(c) < 0x20) return false;
            ++pos_;
        }
        if (at_end()) return false;
        *out = {input_.data + start, pos_ - start};
        ++pos_;
        return true;
    }

    // A bare token: number, true, false, null. Stops at the delimiters of a flat object.
    bool read_bare(text* out) {
        const size_t start = pos_;
        while (!at_end()) {
            const char c = input_.data[pos_];
            if (c == ',' || c == '}' || is_space(c)) break;
            if (c == '"' || c == '{' || c == '[' || c == ':') return false;
            ++pos_;
        }
        *out = {input_.data + start, pos_ - start};
        return out->size > 0;
    }

private:
    text input_;
    size_t pos_ = 0;
};

command_error apply_json_field(text key, text value, bool quoted, device_command* out) {
    if (key.size == 3 && memcmp(key.data, "led", 3) == 0) {
        if (out->set_led) return command_error::syntax;  // duplicate key
        out->set_led = true;
        // `"on"`, `"off"`, true, false; a bare 1/0 is as clear as the plain-text form.
        return parse_led_word(value, &out->led_on);
    }
    if (key.size == 11 && memcmp(key.data, "interval_ms", 11) == 0) {
        if (out->set_interval) return command_error::syntax;
        out->set_interval = true;
        if (quoted) return command_error::bad_value;
        bool negative = value.size > 0 && value.data[0] == '-';
        const text digits = negative ? text{value.data + 1, value.size - 1} : value;
        return parse_interval_digits(digits, negative, &out->interval_ms);
    }
    return command_error::unknown_command;
}

command_error parse_json(text input, device_command* out) {
    json_cursor cur(input);
    cur.skip_space();
    if (!cur.consume('{')) return command_error::syntax;
    cur.skip_space();
    if (cur.consume('}')) {
        cur.skip_space();
        return cur.at_end() ? command_error::empty : command_error::syntax;
    }
    // Report the first semantic error but keep checking the syntax of the whole object, so a
    // truncated payload is called what it is.
    command_error first_error = command_error::ok;
    for (;;) {
        text key{};
        text value{};
        cur.skip_space();
        if (!cur.read_string(&key)) return command_error::syntax;
        cur.skip_space();
        if (!cur.consume(':')) return command_error::syntax;
        cur.skip_space();
        const bool quoted = cur.peek() == '"';
        if (quoted ? !cur.read_string(&value) : !cur.read_bare(&value)) {
            return command_error::syntax;
        }
        const command_error e = apply_json_field(key, value, quoted, out);
        if (e == command_error::syntax) return e;
        if (first_error == command_error::ok) first_error = e;
        cur.skip_space();
        if (cur.consume(',')) continue;
        if (cur.consume('}')) break;
        return command_error::syntax;
    }
    cur.skip_space();
    if (!cur.at_end()) return command_error::syntax;
    return first_error;
}

}  // namespace

command_error parse_command(const char* payload, size_t length, device_command* out) {
    *out = device_command{};
    if (length > kMaxCommandLength) return command_error::too_long;
    for (size_t i = 0; i < length; ++i) {
        if (payload[i] == '\0') return command_error::syntax;
    }
    const text input = trim({payload, length});
    if (input.size == 0) return command_error::empty;
    const command_error e = input.data[0] == '{' ? parse_json(input, out) : parse_plain(input, out);
    if (e != command_error::ok) *out = device_command{};
    return e;
}

const char* to_string(command_error error) {
    switch (error) {
        case command_error::ok:
            return "ok";
        case command_error::empty:
            return "empty";
        case command_error::too_long:
            return "too_long";
        case command_error::syntax:
            return "syntax";
        case command_error::unknown_command:
            return "unknown_command";
        case command_error::bad_value:
            return "bad_value";
        case command_error::out_of_range:
            return "out_of_range";
    }
    return "unknown";
}

}  // namespace sluice::firmware

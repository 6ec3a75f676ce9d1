// Log lines never carry raw control characters or invalid UTF-8, and floods of identical lines
// are cut down with a count of what was left out.
#include "sluice/core/log_hygiene.hpp"

#include <catch2/catch.hpp>

using sluice::log::escape_text;
using sluice::log::FloodLimiter;
using sluice::log::valid_utf8;

TEST_CASE("log text: control characters and invalid UTF-8 are escaped", "[log]") {
    CHECK(escape_text("plain text, 21.5 \xc2\xb0"
                      "C") ==
          "plain text, 21.5 \xc2\xb0"
          "C");
    CHECK(escape_text("a\nb\tc\rd") == "a\\nb\\tc\\rd");
    CHECK(escape_text("back\\slash") == "back\\\\slash");
    // A terminal escape sequence (clear screen, colours) is shown, not run.
    CHECK(escape_text("\x1b[2J\x1b[31mred") == "\\x1b[2J\\x1b[31mred");
    CHECK(escape_text(std::string("nul\0here", 8)) == "nul\\x00here");
    CHECK(escape_text("del\x7f") == "del\\x7f");
    // C1 controls in UTF-8 form (U+009B is CSI for some terminals).
    CHECK(escape_text("\xc2\x9b"
                      "2J") == "\\xc2\\x9b2J");
    // Invalid UTF-8: a lone continuation byte, a truncated sequence, an overlong '/', a
    // surrogate.
    CHECK(escape_text("\x80") == "\\x80");
    CHECK(escape_text("caf\xc3") == "caf\\xc3");
    CHECK(escape_text("\xc0\xaf") == "\\xc0\\xaf");
    CHECK(escape_text("\xed\xa0\x80") == "\\xed\\xa0\\x80");
    // Bidirectional overrides cannot reorder what an operator reads (Trojan Source).
    CHECK(escape_text("abc\xe2\x80\xae"
                      "fed") == "abc\\u{202e}fed");
    // Valid multi-byte text stays.
    CHECK(escape_text("\xe6\xb8\xa9\xe5\xba\xa6 \xf0\x9f\x8c\xa1") ==
          "\xe6\xb8\xa9\xe5\xba\xa6 \xf0\x9f\x8c\xa1");
}

TEST_CASE("log JSON: only invalid UTF-8 is replaced", "[log]") {
    CHECK(valid_utf8("ok \xc2\xb0") == "ok \xc2\xb0");
    CHECK(valid_utf8("a\nb") == "a\nb");  // JSON quoting escapes this itself
    CHECK(valid_utf8("bad\xff\xfe") == "bad\\xff\\xfe");
}

TEST_CASE("flood limiter: a burst per window, then a count of what was left out", "[log]") {
    using namespace std::chrono_literals;
    FloodLimiter f(3, 10s);
    const auto t0 = FloodLimiter::Clock::time_point{} + 1h;
    for (int i = 0; i < 3; ++i) CHECK(f.decide("k", t0 + std::chrono::seconds(i)).write);
    for (int i = 0; i < 5; ++i) CHECK_FALSE(f.decide("k", t0 + 5s).write);
    CHECK(f.decide("other", t0 + 5s).write);  // a different line is not held back
    const auto next = f.decide("k", t0 + 11s);
    CHECK(next.write);
    CHECK(next.suppressed == 5);
    CHECK(f.decide("k", t0 + 12s).suppressed == 0);
    // Left out and never followed by another line: reported at shutdown.
    for (int i = 0; i < 4; ++i) f.decide("k", t0 + 13s);
    const auto left = f.take_suppressed();
    REQUIRE(left.size() == 1);
    CHECK(left[0].first == "k");
    CHECK(left[0].second == 3);
    CHECK(f.take_suppressed().empty());
}

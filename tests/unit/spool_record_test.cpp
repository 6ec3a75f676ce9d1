#include "sluice/core/buffer/spool_record.hpp"

#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <sluice/sdk/testing.hpp>
#include <string>
#include <vector>

#include "sluice/core/buffer/crc32c.hpp"
#include "sluice/core/message_arena.hpp"

using sluice::sdk::MessageView;
using sluice::sdk::OwnedMessage;
namespace spool = sluice::spool;

namespace {

std::string encode(const OwnedMessage& m) {
    std::vector<sluice_header> hs;
    const sluice_message v = m.view(hs);
    const std::size_t n = spool::encoded_size(v);
    REQUIRE(n > 0);
    std::string out(n, '\0');
    spool::encode(v, out.data());
    CHECK(spool::body_crc(v) == sluice::crc32c(out.data(), out.size()));
    return out;
}

OwnedMessage decode(const std::string& bytes) {
    spool::DecodedMessage d;
    REQUIRE(spool::decode(bytes.data(), bytes.size(), d));
    // Through an arena, as the spool's reader uses the view.
    sluice::MessageArena arena;
    arena.append(d.message);
    return OwnedMessage::from(MessageView(arena.at(0)));
}

void check_same(const OwnedMessage& a, const OwnedMessage& b) {
    CHECK(a.topic == b.topic);
    CHECK(a.key == b.key);
    CHECK(a.payload == b.payload);
    CHECK(a.headers == b.headers);
    CHECK(a.timestamp_ms == b.timestamp_ms);
    CHECK(a.qos == b.qos);
    CHECK(a.flags == b.flags);
}

OwnedMessage full_message() {
    OwnedMessage m = sluice::sdk::testing::message("sensors/t/1", std::string("a\0b\xff\x00z", 6));
    m.key = "node-7";
    m.headers = {{"content-type", "application/json"}, {"", ""}, {"bin", std::string("\0\1", 2)}};
    m.timestamp_ms = -1234567890123;
    m.qos = 2;
    m.flags = SLUICE_MESSAGE_RETAIN | SLUICE_MESSAGE_DUP;
    return m;
}

}  // namespace

TEST_CASE("crc32c matches the known vectors in both implementations", "[spool][crc]") {
    const std::string digits = "123456789";
    CHECK(sluice::crc32c(digits.data(), digits.size()) == 0xE3069283u);
    CHECK(sluice::crc32c_portable(digits.data(), digits.size()) == 0xE3069283u);
    const std::string zeros(32, '\0');
    CHECK(sluice::crc32c(zeros.data(), zeros.size()) == 0x8A9136AAu);  // RFC 3720 B.4
    const std::string ones(32, '\xff');
    CHECK(sluice::crc32c(ones.data(), ones.size()) == 0x62A8AB43u);
    std::string ascending(32, '\0');
    for (int i = 0; i < 32; ++i) ascending[i] = static_cast<char>(i);
    CHECK(sluice::crc32c(ascending.data(), ascending.size()) == 0x46DD794Eu);
    CHECK(sluice::crc32c(nullptr, 0) == 0);

    // Every length and alignment, chained in two pieces, agrees with the portable version
    // (this covers the 3-way blocks of the hardware version and their combination).
    std::mt19937 rng(7);
    std::string data(20000, '\0');
    for (auto& c : data) c = static_cast<char>(rng());
    for (std::size_t len :
         {0,   1,   2,   3,   4,   5,   6,    7,    8,     9,     63,    64,    191,
          192, 193, 200, 767, 768, 769, 1000, 2048, 12287, 12288, 12289, 13100, 19990}) {
        for (std::size_t align = 0; align < 8; ++align) {
            const char* p = data.data() + align;
            const std::uint32_t whole = sluice::crc32c_portable(p, len);
            CHECK(sluice::crc32c(p, len) == whole);
            const std::size_t cut = len / 3;
            CHECK(sluice::crc32c(p + cut, len - cut, sluice::crc32c(p, cut)) == whole);
        }
    }
}

TEST_CASE("a record body round-trips every field", "[spool][record]") {
    SECTION("key, headers, binary payload with NULs, flags, negative timestamp") {
        const OwnedMessage m = full_message();
        check_same(decode(encode(m)), m);
    }
    SECTION("no key is not an empty key") {
        OwnedMessage none = sluice::sdk::testing::message("t", "p");
        const OwnedMessage got = decode(encode(none));
        CHECK_FALSE(got.key.has_value());
        OwnedMessage empty = none;
        empty.key = "";
        const OwnedMessage got_empty = decode(encode(empty));
        REQUIRE(got_empty.key.has_value());
        CHECK(got_empty.key->empty());
    }
    SECTION("everything empty") {
        OwnedMessage m;
        check_same(decode(encode(m)), m);
    }
    SECTION("null pointers with zero lengths") {
        sluice_message m{};
        m.struct_size = sizeof m;
        const std::size_t n = spool::encoded_size(m);
        REQUIRE(n == spool::kBodyFixedSize);
        std::string out(n, '\0');
        spool::encode(m, out.data());
        spool::DecodedMessage d;
        REQUIRE(spool::decode(out.data(), out.size(), d));
        CHECK(d.message.key == nullptr);
        CHECK(d.message.n_headers == 0);
        CHECK(d.message.payload_len == 0);
    }
}

TEST_CASE("frame, segment and position headers check themselves", "[spool][record]") {
    unsigned char frame[spool::kFrameHeaderSize];
    spool::write_frame_header(frame, 1234, 0x0102030405060708ull, 0xCAFEBABEu);
    spool::FrameHeader h;
    REQUIRE(spool::read_frame_header(frame, h));
    CHECK(h.body_len == 1234);
    CHECK(h.seq == 0x0102030405060708ull);
    CHECK(h.body_crc == 0xCAFEBABEu);
    for (std::size_t i = 0; i < sizeof frame; ++i) {
        for (int bit = 0; bit < 8; ++bit) {
            frame[i] ^= static_cast<unsigned char>(1 << bit);
            CHECK_FALSE(spool::read_frame_header(frame, h));
            frame[i] ^= static_cast<unsigned char>(1 << bit);
        }
    }

    unsigned char seg[spool::kSegmentHeaderSize];
    spool::write_segment_header(seg, 42, spool::kSegmentReused);
    spool::SegmentHeader sh;
    REQUIRE(spool::read_segment_header(seg, sizeof seg, sh));
    CHECK(sh.version == spool::kFormatVersion);
    CHECK(sh.first_seq == 42);
    CHECK(sh.flags == spool::kSegmentReused);
    CHECK_FALSE(spool::read_segment_header(seg, sizeof seg - 1, sh));
    seg[17] ^= 1;
    CHECK_FALSE(spool::read_segment_header(seg, sizeof seg, sh));

    unsigned char slot[spool::kPositionSlotSize];
    spool::write_position_slot(slot, {9, 100, 200});
    spool::Position p;
    REQUIRE(spool::read_position_slot(slot, p));
    CHECK(p.generation == 9);
    CHECK(p.confirmed_seq == 100);
    CHECK(p.next_seq == 200);
    slot[30] ^= 0x10;
    CHECK_FALSE(spool::read_position_slot(slot, p));
}

TEST_CASE("decoding malformed bytes fails cleanly and never reads out of range",
          "[spool][record][robustness]") {
    // Each input is copied into a buffer of exactly its size, so that AddressSanitizer
    // catches a read one byte past it.
    auto check = [](const std::string& input) {
        std::vector<char> exact(input.begin(), input.end());
        spool::DecodedMessage d;
        const bool ok = spool::decode(exact.empty() ? nullptr : exact.data(), exact.size(), d);
        if (!ok) return false;
        // A view that decoded must lie inside the input.
        const char* lo = exact.data();
        const char* hi = lo + exact.size();
        auto inside = [&](const void* p, std::size_t n) {
            const char* c = static_cast<const char*>(p);
            return n == 0 || (c >= lo && c + n <= hi);
        };
        CHECK(inside(d.message.topic, d.message.topic_len));
        CHECK(inside(d.message.payload, d.message.payload_len));
        if (d.message.key) CHECK(inside(d.message.key, d.message.key_len));
        for (std::size_t i = 0; i < d.message.n_headers; ++i) {
            CHECK(inside(d.message.headers[i].key, d.message.headers[i].key_len));
            CHECK(inside(d.message.headers[i].value, d.message.headers[i].value_len));
        }
        sluice::MessageArena arena;
        arena.append(d.message);
        return true;
    };

    const std::string valid = encode(full_message());
    CHECK(check(valid));
    for (std::size_t n = 0; n < valid.size(); ++n) CHECK_FALSE(check(valid.substr(0, n)));
    CHECK_FALSE(check(valid + "x"));

    std::mt19937 rng(12345);
    int decoded = 0;
    for (int round = 0; round < 5000; ++round) {
        std::string input;
        switch (round % 3) {
            case 0: {  // random bytes of random length
                input.resize(rng() % 200);
                for (auto& c : input) c = static_cast<char>(rng());
                break;
            }
            case 1: {  // a valid body with a few bytes changed
                input = valid;
                for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) {
                    input[rng() % input.size()] = static_cast<char>(rng());
                }
                break;
            }
            default: {  // plausible small lengths in the fixed part, random rest
                input.resize(spool::kBodyFixedSize + rng() % 64);
                for (auto& c : input) c = static_cast<char>(rng() % 4);
                break;
            }
        }
        if (check(input)) ++decoded;
    }
    CHECK(decoded < 5000);
}

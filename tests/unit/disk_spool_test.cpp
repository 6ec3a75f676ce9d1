#include "sluice/core/buffer/disk_spool.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sluice/sdk/testing.hpp>
#include <string>
#include <thread>
#include <vector>

#include "scratch.hpp"
#include "sluice/core/buffer/crc32c.hpp"
#include "sluice/core/buffer/spool_record.hpp"

namespace fs = std::filesystem;
using sluice::DiskSpool;
using sluice::FsyncMode;
using sluice::SpoolOptions;
using sluice::SpoolRecovery;
using sluice::sdk::MessageView;
using sluice::sdk::OwnedMessage;
namespace spool = sluice::spool;

namespace {

constexpr std::uint64_t kNoLimit = ~std::uint64_t{0};

struct TempDir : sluice::test::TempDir {
    TempDir() : sluice::test::TempDir("sluice-spool-test") {}
};

SpoolOptions options(const fs::path& dir, std::uint64_t segment = 64 << 10) {
    SpoolOptions o;
    o.dir = dir / "spool";
    o.segment_bytes = segment;
    o.min_segment_bytes = segment;
    return o;
}

std::unique_ptr<DiskSpool> open(const SpoolOptions& o, SpoolRecovery* r = nullptr) {
    SpoolRecovery ignored;
    return DiskSpool::open(o, r ? r : &ignored);
}

std::string num(std::size_t i) {
    const std::string digits = std::to_string(i);
    return std::string(digits.size() < 6 ? 6 - digits.size() : 0, '0') + digits;
}

// Message i; all of one payload size encode to the same number of bytes, so that tests can
// compute where a record lies in a segment.
OwnedMessage msg(std::size_t i, std::size_t payload_size = 0) {
    std::string payload = "p" + num(i);
    if (payload.size() < payload_size)
        payload.resize(payload_size, static_cast<char>('a' + i % 26));
    OwnedMessage m = sluice::sdk::testing::message("t/" + std::to_string(i % 4), payload);
    m.key = "k" + num(i);
    m.headers = {{"h", num(i)}};
    return m;
}

// The encoded size of msg(i) in the spool: what bytes() counts.
std::uint64_t frame_of(const OwnedMessage& m) {
    std::vector<sluice_header> hs;
    return spool::frame_size(spool::encoded_size(m.view(hs)));
}

DiskSpool::Append append(DiskSpool& s, const OwnedMessage& m, std::uint64_t limit = kNoLimit,
                         std::string* error = nullptr) {
    std::vector<sluice_header> hs;
    return s.append(m.view(hs), limit, error);
}

void append_range(DiskSpool& s, std::size_t from, std::size_t to, std::size_t payload = 0) {
    for (std::size_t i = from; i < to; ++i)
        REQUIRE(append(s, msg(i, payload)) == DiskSpool::Append::ok);
}

std::vector<OwnedMessage> read_some(DiskSpool& s, std::size_t max, bool confirm) {
    sluice::MessageArena arena;
    const std::size_t n = s.read(arena, max);
    REQUIRE(n == arena.size());
    std::vector<OwnedMessage> out;
    for (std::size_t i = 0; i < n; ++i) out.push_back(OwnedMessage::from(MessageView(arena.at(i))));
    if (confirm) s.confirm(n);
    return out;
}

std::vector<std::string> drain(DiskSpool& s, bool confirm = true, std::size_t batch = 37) {
    std::vector<std::string> payloads;
    for (;;) {
        const auto got = read_some(s, batch, confirm);
        if (got.empty()) return payloads;
        for (const auto& m : got) payloads.push_back(m.payload);
    }
}

std::vector<std::string> expected(std::size_t from, std::size_t to, std::size_t payload = 0) {
    std::vector<std::string> out;
    for (std::size_t i = from; i < to; ++i) out.push_back(msg(i, payload).payload);
    return out;
}

std::vector<fs::path> segment_files(const SpoolOptions& o) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(o.dir)) {
        if (e.path().extension() == ".seg") out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

void patch(const fs::path& file, std::uint64_t offset, const std::string& bytes) {
    const int fd = ::open(file.c_str(), O_WRONLY);
    REQUIRE(fd >= 0);
    REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)) ==
            static_cast<ssize_t>(bytes.size()));
    ::close(fd);
}

std::string peek(const fs::path& file, std::uint64_t offset, std::size_t n) {
    std::string out(n, '\0');
    const int fd = ::open(file.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    REQUIRE(::pread(fd, out.data(), n, static_cast<off_t>(offset)) == static_cast<ssize_t>(n));
    ::close(fd);
    return out;
}

// Offset of record `index` in a segment holding only same-sized records from its start.
std::uint64_t record_offset(std::size_t index, std::uint64_t frame) {
    return spool::kSegmentHeaderSize + index * frame;
}

using sluice::test::in_child;

}  // namespace

TEST_CASE("spool returns every field as it was appended, before and after a reopen", "[spool]") {
    TempDir tmp;
    const auto o = options(tmp.path);
    OwnedMessage full = sluice::sdk::testing::message("a/b", std::string("x\0y\0\xff", 5));
    full.key = "key";
    full.headers = {{"k1", "v1"}, {"", std::string("\0", 1)}};
    full.timestamp_ms = -42;
    full.qos = 2;
    full.flags = SLUICE_MESSAGE_RETAIN;
    OwnedMessage empty_key = sluice::sdk::testing::message("c", "");
    empty_key.key = "";
    const OwnedMessage no_key = sluice::sdk::testing::message("d", "payload");
    const std::vector<OwnedMessage> in = {full, empty_key, no_key};

    auto check = [&](const std::vector<OwnedMessage>& got) {
        REQUIRE(got.size() == in.size());
        for (std::size_t i = 0; i < in.size(); ++i) {
            CHECK(got[i].topic == in[i].topic);
            CHECK(got[i].key == in[i].key);
            CHECK(got[i].payload == in[i].payload);
            CHECK(got[i].headers == in[i].headers);
            CHECK(got[i].timestamp_ms == in[i].timestamp_ms);
            CHECK(got[i].qos == in[i].qos);
            CHECK(got[i].flags == in[i].flags);
        }
    };
    {
        auto s = open(o);
        for (const auto& m : in) REQUIRE(append(*s, m) == DiskSpool::Append::ok);
        check(read_some(*s, 10, false));
    }
    SpoolRecovery r;
    auto s = open(o, &r);
    CHECK(r.records == 3);
    CHECK(r.oldest_format == 1);
    check(read_some(*s, 10, true));
}

TEST_CASE("confirmed records are not replayed after a reopen and unconfirmed ones are in order",
          "[spool]") {
    TempDir tmp;
    const auto o = options(tmp.path);
    SECTION("all confirmed") {
        {
            auto s = open(o);
            append_range(*s, 0, 500);
            CHECK(s->messages() == 500);
            CHECK(s->unread() == 500);
            CHECK(drain(*s) == expected(0, 500));
            CHECK(s->messages() == 0);
            CHECK(s->bytes() == 0);
        }
        SpoolRecovery r;
        auto s = open(o, &r);
        CHECK(r.records == 0);
        CHECK(r.torn_bytes == 0);
        CHECK(r.corrupt_records == 0);
        CHECK(drain(*s).empty());
        // Sequence numbers go on rising: a new segment is named after its first record.
        const auto before = segment_files(o);
        append_range(*s, 500, 510);
        const auto after = segment_files(o);
        REQUIRE(!after.empty());
        if (!before.empty()) CHECK(after.back().filename() > before.back().filename());
        CHECK(drain(*s) == expected(500, 510));
    }
    SECTION("none confirmed") {
        std::uint64_t bytes = 0;
        {
            auto s = open(o);
            append_range(*s, 0, 500);
            bytes = s->bytes();
            CHECK(drain(*s, false).size() == 500);  // read, never confirmed
        }
        SpoolRecovery r;
        auto s = open(o, &r);
        CHECK(r.records == 500);
        CHECK(r.bytes == bytes);
        CHECK(s->bytes() == bytes);
        CHECK(s->unread() == 500);
        CHECK(drain(*s) == expected(0, 500));
    }
    SECTION("half confirmed") {
        {
            auto s = open(o);
            append_range(*s, 0, 500);
            read_some(*s, 250, true);
            read_some(*s, 100, false);
        }
        SpoolRecovery r;
        auto s = open(o, &r);
        CHECK(r.records == 250);
        CHECK(drain(*s) == expected(250, 500));
    }
}

TEST_CASE("rewind hands out the unconfirmed records again", "[spool]") {
    TempDir tmp;
    auto s = open(options(tmp.path));
    append_range(*s, 0, 20);
    CHECK(read_some(*s, 10, false).size() == 10);
    s->confirm(3);
    CHECK(s->messages() == 17);
    CHECK(s->unread() == 10);
    s->rewind();
    CHECK(s->unread() == 17);
    std::vector<std::string> got;
    for (const auto& m : read_some(*s, 4, false)) got.push_back(m.payload);
    CHECK(got == expected(3, 7));
    s->rewind();
    CHECK(drain(*s) == expected(3, 20));
    CHECK(s->messages() == 0);
    CHECK(s->unread() == 0);
}

TEST_CASE("segment files are deleted once every record in them is confirmed", "[spool]") {
    TempDir tmp;
    const auto o = options(tmp.path);
    auto s = open(o);
    append_range(*s, 0, 3000, 100);  // ~130 bytes a frame: 6+ segments of 64 KiB
    const auto files = segment_files(o);
    CHECK(files.size() >= 6);
    // Half of them read and confirmed.
    read_some(*s, 1500, true);
    const auto half = segment_files(o);
    CHECK(half.size() < files.size());
    CHECK(half.size() > 1);
    CHECK(drain(*s) == expected(1500, 3000, 100));
    // What is left: the segment being appended to (and at most one spare kept for reuse).
    CHECK(segment_files(o).size() == 1);
    std::size_t others = 0;
    for (const auto& e : fs::directory_iterator(o.dir)) {
        const auto name = e.path().filename().string();
        if (e.path().extension() != ".seg" && name != "position") ++others;
    }
    CHECK(others <= 1);
    // Appending again reuses the spare: still correct.
    append_range(*s, 3000, 4000, 100);
    CHECK(drain(*s) == expected(3000, 4000, 100));
}

TEST_CASE("a reused segment file recovers without stale records or false damage", "[spool]") {
    TempDir tmp;
    const auto o = options(tmp.path);
    {
        auto s = open(o);
        // Cycle through many segments with the consumer keeping up, so files are reused
        // (each round fills less than a segment: the spare is there when one is needed).
        for (int round = 0; round < 25; ++round) {
            append_range(*s, round * 200, round * 200 + 200, 100);
            CHECK(drain(*s) == expected(round * 200, round * 200 + 200, 100));
        }
        append_range(*s, 5000, 5007, 100);  // not confirmed
    }
    // The newest file is a reused one: older frames follow its last record.
    const auto files = segment_files(o);
    REQUIRE(!files.empty());
    const std::string header = peek(files.back(), 0, spool::kSegmentHeaderSize);
    spool::SegmentHeader h;
    REQUIRE(spool::read_segment_header(header.data(), header.size(), h));
    CHECK((h.flags & spool::kSegmentReused) != 0);
    SECTION("clean") {
        SpoolRecovery r;
        auto s = open(o, &r);
        CHECK(r.records == 7);
        CHECK(r.torn_bytes == 0);
        CHECK(r.corrupt_records == 0);
        CHECK(r.corrupt_bytes == 0);
        CHECK(drain(*s) == expected(5000, 5007, 100));
    }
    SECTION("the last record torn") {
        const std::uint64_t frame = frame_of(msg(5000, 100));
        // Find the last record: the 7 are the newest in this file (or span two files).
        const std::uint64_t seq_of_last = h.first_seq;  // lower bound, scan for the real one
        std::uint64_t off = spool::kSegmentHeaderSize, last = 0;
        for (;; off += frame) {
            const std::string fh = peek(files.back(), off, spool::kFrameHeaderSize);
            spool::FrameHeader parsed;
            if (!spool::read_frame_header(fh.data(), parsed) || parsed.seq < seq_of_last) break;
            last = off;
        }
        patch(files.back(), last + spool::kFrameHeaderSize + 8, "torn!");
        SpoolRecovery r;
        auto s = open(o, &r);
        CHECK(r.records == 6);
        CHECK(r.torn_bytes == frame);
        CHECK(r.corrupt_records == 0);
        CHECK(drain(*s) == expected(5000, 5006, 100));
    }
}

TEST_CASE("append answers full when the limit would be exceeded", "[spool]") {
    TempDir tmp;
    auto s = open(options(tmp.path));
    const std::uint64_t frame = frame_of(msg(0));
    const std::uint64_t limit = 10 * frame;
    std::size_t i = 0;
    while (append(*s, msg(i), limit) == DiskSpool::Append::ok) ++i;
    CHECK(i == 10);
    CHECK(s->bytes() == 10 * frame);
    CHECK(append(*s, msg(i), limit) == DiskSpool::Append::full);
    // Reading does not free space; confirming does.
    read_some(*s, 3, false);
    CHECK(append(*s, msg(i), limit) == DiskSpool::Append::full);
    s->confirm(3);
    CHECK(append(*s, msg(i), limit) == DiskSpool::Append::ok);
    CHECK(s->bytes() == 8 * frame);
}

TEST_CASE("drop_oldest_unread drops unread records only, and they stay dropped", "[spool]") {
    TempDir tmp;
    const auto o = options(tmp.path);
    const std::uint64_t frame = frame_of(msg(10));  // msg(10..99) are all the same size
    {
        auto s = open(o);
        append_range(*s, 10, 100);
        CHECK(read_some(*s, 5, false).size() == 5);  // 10..14 in flight
        // Keep 20 records: the 5 in flight stay, 15..84 go, 85..99 remain.
        CHECK(s->drop_oldest_unread(20 * frame) == 70);
        CHECK(s->bytes() == 20 * frame);
        CHECK(s->messages() == 20);
        CHECK(s->unread() == 15);
        // The in-flight ones are never dropped, even when asked for nothing.
        CHECK(s->drop_oldest_unread(0) == 15);
        CHECK(s->messages() == 5);
        CHECK(s->unread() == 0);
        append_range(*s, 100, 103);
        s->rewind();
        auto want = expected(10, 15);
        for (const auto& p : expected(100, 103)) want.push_back(p);
        CHECK(drain(*s, false) == want);
        s->confirm(5);
    }
    SpoolRecovery r;
    auto s = open(o, &r);
    CHECK(r.records == 3);
    CHECK(drain(*s) == expected(100, 103));
}

TEST_CASE("records appended by a process killed with SIGKILL are all recovered", "[spool][crash]") {
    TempDir tmp;
    const auto o = options(tmp.path);
    constexpr std::size_t n = 20000;  // several segments
    const int rc = in_child([&] {
        auto s = DiskSpool::open(o, nullptr);
        for (std::size_t i = 0; i < n; ++i) {
            if (append(*s, msg(i, 40)) != DiskSpool::Append::ok) return 1;
        }
        // Some read and confirmed, the position perhaps written, then killed mid-stride.
        sluice::MessageArena arena;
        s->confirm(s->read(arena, 1000));
        s->sync();
        s->confirm(s->read(arena, 500));
        ::kill(::getpid(), SIGKILL);
        return 2;
    });
    REQUIRE(rc == -SIGKILL);
    SpoolRecovery r;
    auto s = open(o, &r);
    // The first 1000 were confirmed and recorded; the next 500 confirmed but not recorded
    // may come back (replay, never loss).
    CHECK(r.records >= n - 1500);
    CHECK(r.records <= n - 1000);
    CHECK(r.torn_bytes == 0);
    CHECK(r.corrupt_records == 0);
    const auto got = drain(*s);
    CHECK(got == expected(n - r.records, n, 40));
}

TEST_CASE("SIGKILL while the consumer keeps up and segment files are reused", "[spool][crash]") {
    TempDir tmp;
    const auto o = options(tmp.path);
    constexpr std::size_t rounds = 60, per_round = 300, confirmed_per_round = 290;
    const int rc = in_child([&] {
        auto s = DiskSpool::open(o, nullptr);
        sluice::MessageArena arena;
        for (std::size_t r = 0; r < rounds; ++r) {
            append_range(*s, r * per_round, (r + 1) * per_round, 60);
            std::size_t confirmed = 0;
            while (confirmed < confirmed_per_round) {
                arena.clear();
                const std::size_t n = s->read(arena, confirmed_per_round - confirmed);
                s->confirm(n);
                confirmed += n;
            }
            if (r % 7 == 0) s->sync();
        }
        ::kill(::getpid(), SIGKILL);
        return 2;
    });
    REQUIRE(rc == -SIGKILL);
    SpoolRecovery r;
    auto s = open(o, &r);
    const std::size_t total = rounds * per_round;
    const std::size_t unconfirmed = total - rounds * confirmed_per_round;
    CHECK(r.records >= unconfirmed);
    CHECK(r.torn_bytes == 0);
    CHECK(r.corrupt_records == 0);
    CHECK(r.corrupt_bytes == 0);
    CHECK(drain(*s) == expected(total - r.records, total, 60));
}

TEST_CASE("a torn tail is cut off and counted and the records before it are delivered",
          "[spool][recovery]") {
    TempDir tmp;
    const auto o = options(tmp.path);
    const std::uint64_t frame = frame_of(msg(10));
    {
        auto s = open(o);
        append_range(*s, 10, 20);
    }
    const auto files = segment_files(o);
    REQUIRE(files.size() == 1);
    SECTION("the file ends in the middle of a record") {
        fs::resize_file(files[0], record_offset(9, frame) + 11);
        SpoolRecovery r;
        auto s = open(o, &r);
        CHECK(r.records == 9);
        CHECK(r.torn_bytes == 11);
        CHECK(r.corrupt_records == 0);
        CHECK(drain(*s) == expected(10, 19));
    }
    SECTION("a partial frame header after the last record") {
        const std::string header = peek(files[0], record_offset(0, frame), 12);
        patch(files[0], record_offset(10, frame), header);  // magic, length, half a seq
        SpoolRecovery r;
        auto s = open(o, &r);
        CHECK(r.records == 10);
        CHECK(r.torn_bytes > 0);
        CHECK(r.corrupt_records == 0);
        CHECK(drain(*s) == expected(10, 20));
    }
    SECTION("a frame header whose body was not written") {
        patch(files[0], record_offset(9, frame) + spool::kFrameHeaderSize,
              std::string(frame - spool::kFrameHeaderSize, '\0'));
        SpoolRecovery r;
        auto s = open(o, &r);
        CHECK(r.records == 9);
        CHECK(r.torn_bytes == frame);
        CHECK(drain(*s) == expected(10, 19));
    }
    SECTION("zeroes after the last record are the normal end") {
        SpoolRecovery r;
        auto s = open(o, &r);
        CHECK(r.records == 10);
        CHECK(r.torn_bytes == 0);
        CHECK(r.corrupt_bytes == 0);
    }
}

TEST_CASE("a damaged record in the middle is skipped and counted and the others are delivered",
          "[spool][recovery]") {
    TempDir tmp;
    const auto o = options(tmp.path);
    const std::uint64_t frame = frame_of(msg(10));
    {
        auto s = open(o);
        append_range(*s, 10, 30);
    }
    const auto file = segment_files(o).at(0);
    auto flip = [&](std::uint64_t offset) {
        std::string b = peek(file, offset, 1);
        b[0] = static_cast<char>(b[0] ^ 0x20);
        patch(file, offset, b);
    };
    std::vector<std::string> want = expected(10, 30);
    want.erase(want.begin() + 9);
    SECTION("a byte of its body") {
        flip(record_offset(9, frame) + spool::kFrameHeaderSize + spool::kBodyFixedSize + 4);
        SpoolRecovery r;
        auto s = open(o, &r);
        CHECK(r.corrupt_records == 1);
        CHECK(r.corrupt_bytes == frame);
        CHECK(r.torn_bytes == 0);
        CHECK(r.records == 19);
        CHECK(drain(*s) == want);
    }
    SECTION("a byte of its length: the reader resynchronises on the next frame") {
        flip(record_offset(9, frame) + 5);
        SpoolRecovery r;
        auto s = open(o, &r);
        CHECK(r.corrupt_records == 1);
        CHECK(r.corrupt_bytes == frame);
        CHECK(drain(*s) == want);
    }
    SECTION("the segment header") {
        flip(3);
        SpoolRecovery r;
        auto s = open(o, &r);
        CHECK(r.corrupt_records == 0);
        CHECK(r.corrupt_bytes == spool::kSegmentHeaderSize);
        CHECK(drain(*s) == expected(10, 30));
    }
}

TEST_CASE("a damaged record at the end of an older segment is corrupt, not torn",
          "[spool][recovery]") {
    TempDir tmp;
    const auto o = options(tmp.path, 4096);
    const std::uint64_t frame = frame_of(msg(10));
    const std::size_t per_segment = (4096 - spool::kSegmentHeaderSize) / frame;
    {
        auto s = open(o);
        append_range(*s, 10, 10 + 3 * per_segment);
    }
    const auto files = segment_files(o);
    REQUIRE(files.size() == 3);
    patch(files[0], record_offset(per_segment - 1, frame) + spool::kFrameHeaderSize + 2, "XYZ");
    SpoolRecovery r;
    auto s = open(o, &r);
    CHECK(r.corrupt_records == 1);
    CHECK(r.torn_bytes == 0);
    CHECK(r.records == 3 * per_segment - 1);
    auto want = expected(10, 10 + 3 * per_segment);
    want.erase(want.begin() + static_cast<std::ptrdiff_t>(per_segment - 1));
    CHECK(drain(*s) == want);
}

TEST_CASE("a damaged position file falls back to replaying, never to losing", "[spool]") {
    TempDir tmp;
    const auto o = options(tmp.path);
    {
        auto s = open(o);
        append_range(*s, 0, 10);
        read_some(*s, 5, true);
        s->sync();  // generation 1: 5 confirmed
        read_some(*s, 5, true);
    }  // close: generation 2, 10 confirmed
    const fs::path position = o.dir / "position";
    SECTION("the newer slot torn: the older one is used") {
        patch(position, 0, "garbage");
        SpoolRecovery r;
        auto s = open(o, &r);
        CHECK(r.records == 5);
        CHECK(drain(*s) == expected(5, 10));
    }
    SECTION("both slots torn: everything still on disk comes back") {
        patch(position, 0, "garbage");
        patch(position, spool::kPositionSlotStride, "garbage");
        SpoolRecovery r;
        auto s = open(o, &r);
        CHECK(r.records == 10);
        CHECK(drain(*s) == expected(0, 10));
    }
    SECTION("the file gone") {
        fs::remove(position);
        SpoolRecovery r;
        auto s = open(o, &r);
        CHECK(r.records == 10);
    }
    SECTION("intact") {
        SpoolRecovery r;
        auto s = open(o, &r);
        CHECK(r.records == 0);
    }
}

TEST_CASE("a full disk fails the append with the file named, and the spool goes on",
          "[spool][diskfull]") {
    TempDir tmp;
    const auto o = options(tmp.path);
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    const int rc = in_child([&] {
        ::close(pipe_fds[0]);
        std::signal(SIGXFSZ, SIG_IGN);
        auto s = DiskSpool::open(o, nullptr);
        // The limit is per file: below the segment size, the next segment cannot be made.
        if (append(*s, msg(0, 100)) != DiskSpool::Append::ok) return 9;
        rlimit small{32 << 10, RLIM_INFINITY};
        if (::setrlimit(RLIMIT_FSIZE, &small) != 0) return 10;
        std::size_t ok = 1;
        std::string error;
        DiskSpool::Append a = DiskSpool::Append::ok;
        while ((a = append(*s, msg(ok, 100), kNoLimit, &error)) == DiskSpool::Append::ok) ++ok;
        if (a != DiskSpool::Append::failed) return 11;
        if (error.find(".seg") == std::string::npos) return 12;
        if (error.find("too large") == std::string::npos) return 13;
        // Still failing, still no crash.
        if (append(*s, msg(ok, 100)) != DiskSpool::Append::failed) return 14;
        // Space again: appends succeed, nothing before was lost.
        rlimit big{RLIM_INFINITY, RLIM_INFINITY};
        if (::setrlimit(RLIMIT_FSIZE, &big) != 0) return 15;
        if (append(*s, msg(ok, 100)) != DiskSpool::Append::ok) return 16;
        ++ok;
        if (drain(*s, false) != expected(0, ok, 100)) return 17;
        const std::string report = std::to_string(ok) + "\n" + error;
        if (::write(pipe_fds[1], report.data(), report.size()) < 0) return 18;
        return 0;
    });
    ::close(pipe_fds[1]);
    std::string report(4096, '\0');
    const ssize_t got = ::read(pipe_fds[0], report.data(), report.size());
    ::close(pipe_fds[0]);
    REQUIRE(rc == 0);
    report.resize(static_cast<std::size_t>(std::max<ssize_t>(got, 0)));
    INFO(report);
    const std::size_t ok = std::stoul(report);
    CHECK(ok > 100);
    SpoolRecovery r;
    auto s = open(o, &r);
    CHECK(r.records == ok);
    CHECK(drain(*s) == expected(0, ok, 100));
}

TEST_CASE("a directory that became unwritable fails the append naming the file and then recovers",
          "[spool][diskfull]") {
    TempDir tmp;
    const auto o = options(tmp.path, 4096);
    // Root may write anywhere: the child runs as another user, owning the directory.
    constexpr uid_t kNobody = 65534;
    if (::geteuid() == 0) REQUIRE(::chown(tmp.path.c_str(), kNobody, kNobody) == 0);
    const int rc = in_child([&] {
        if (::geteuid() == 0 && (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)) return 10;
        auto s = DiskSpool::open(o, nullptr);
        std::size_t ok = 0;
        if (append(*s, msg(ok++)) != DiskSpool::Append::ok) return 11;
        if (::chmod(o.dir.c_str(), 0500) != 0) return 12;
        std::string error;
        DiskSpool::Append a = DiskSpool::Append::ok;
        while ((a = append(*s, msg(ok), kNoLimit, &error)) == DiskSpool::Append::ok) ++ok;
        if (a != DiskSpool::Append::failed) return 13;
        if (error.find(o.dir.string()) == std::string::npos ||
            error.find(".seg") == std::string::npos ||
            error.find("ermission denied") == std::string::npos) {
            return 14;
        }
        if (::chmod(o.dir.c_str(), 0700) != 0) return 15;
        if (append(*s, msg(ok++)) != DiskSpool::Append::ok) return 16;
        return drain(*s) == expected(0, ok) ? 0 : 17;
    });
    CHECK(rc == 0);
}

TEST_CASE("concurrent appenders and one consumer: every record exactly once, in order per thread",
          "[spool][threads]") {
    TempDir tmp;
    auto o = options(tmp.path);
    o.min_segment_bytes = 16 << 10;  // segments of changing size, reused
    auto s = open(o);
    constexpr int kThreads = 4;
    constexpr int kPerThread = 20000;
    std::atomic<int> producers_done{0};
    std::vector<std::thread> producers;
    for (int t = 0; t < kThreads; ++t) {
        producers.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) {
                OwnedMessage m = sluice::sdk::testing::message(
                    "t/" + std::to_string(t), std::to_string(t) + ":" + std::to_string(i));
                while (append(*s, m, 512 << 10) == DiskSpool::Append::full) {
                    std::this_thread::yield();
                }
            }
            ++producers_done;
        });
    }
    std::vector<int> next(kThreads, 0);
    int total = 0;
    bool in_order = true;
    sluice::MessageArena arena;
    for (;;) {
        arena.clear();
        const bool finished = producers_done.load() == kThreads;
        const std::size_t n = s->read(arena, 64);
        for (std::size_t i = 0; i < n; ++i) {
            const std::string p(MessageView(arena.at(i)).payload());
            const int t = std::stoi(p.substr(0, p.find(':')));
            const int seq = std::stoi(p.substr(p.find(':') + 1));
            if (seq != next[t]) in_order = false;
            next[t] = seq + 1;
            ++total;
        }
        s->confirm(n);
        if (n == 0 && finished) break;
        if (n == 0) std::this_thread::yield();
    }
    for (auto& p : producers) p.join();
    CHECK(in_order);
    CHECK(total == kThreads * kPerThread);
    CHECK(next == std::vector<int>(kThreads, kPerThread));
    CHECK(s->messages() == 0);
    CHECK(s->bytes() == 0);
}

TEST_CASE("a timer thread syncs while segments are appended, confirmed and reused",
          "[spool][threads]") {
    TempDir tmp;
    auto o = options(tmp.path, 16 << 10);
    o.fsync = FsyncMode::interval;
    o.fsync_interval = std::chrono::milliseconds(1);
    auto s = open(o);
    std::atomic<bool> stop{false};
    std::thread timer([&] {
        while (!stop.load()) {
            s->sync_if_due(std::chrono::steady_clock::now());
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    });
    constexpr std::size_t kCount = 20000;
    std::thread producer([&] {
        for (std::size_t i = 0; i < kCount; ++i) {
            while (append(*s, msg(i), 64 << 10) == DiskSpool::Append::full) {
                std::this_thread::yield();
            }
        }
    });
    std::vector<std::string> got;
    while (got.size() < kCount) {
        const auto batch = read_some(*s, 64, true);
        for (const auto& m : batch) got.push_back(m.payload);
        if (batch.empty()) std::this_thread::yield();
    }
    producer.join();
    stop = true;
    timer.join();
    CHECK(s->last_sync_error().empty());
    CHECK(got == expected(0, kCount));
}

TEST_CASE("drop_oldest_unread from another thread while the consumer reads", "[spool][threads]") {
    TempDir tmp;
    auto s = open(options(tmp.path));
    constexpr int kCount = 20000;
    std::atomic<bool> done{false};
    std::atomic<bool> append_failed{false};
    std::atomic<std::size_t> dropped{0};
    std::thread producer([&] {
        for (int i = 0; i < kCount; ++i) {
            if (append(*s, msg(static_cast<std::size_t>(i))) != DiskSpool::Append::ok) {
                append_failed = true;
            }
            if (i % 100 == 0) dropped += s->drop_oldest_unread(4 << 10);
        }
        done = true;
    });
    std::size_t seen = 0;
    int last = -1;
    bool increasing = true;
    for (;;) {
        const bool finished = done.load();
        const auto got = read_some(*s, 50, true);
        for (const auto& m : got) {
            const int i = std::stoi(m.payload.substr(1));
            if (i <= last) increasing = false;
            last = i;
        }
        seen += got.size();
        if (got.empty() && finished) break;
    }
    producer.join();
    CHECK_FALSE(append_failed);
    CHECK(increasing);
    CHECK(seen + dropped.load() == kCount);
    CHECK(s->messages() == 0);
}

TEST_CASE("a record larger than a segment gets a segment of its own", "[spool]") {
    TempDir tmp;
    const auto o = options(tmp.path);
    {
        auto s = open(o);
        append_range(*s, 0, 3);
        REQUIRE(append(*s, msg(3, 300 << 10)) == DiskSpool::Append::ok);
        append_range(*s, 4, 6);
        const auto files = segment_files(o);
        CHECK(files.size() >= 2);
        CHECK(std::any_of(files.begin(), files.end(),
                          [](const fs::path& f) { return fs::file_size(f) > (300 << 10); }));
    }
    SpoolRecovery r;
    auto s = open(o, &r);
    CHECK(r.records == 6);
    const auto got = drain(*s);
    REQUIRE(got.size() == 6);
    CHECK(got[3] == msg(3, 300 << 10).payload);
    CHECK(got[5] == msg(5).payload);
}

TEST_CASE("fsync modes keep the same contents", "[spool]") {
    TempDir tmp;
    for (const auto mode : {FsyncMode::interval, FsyncMode::always}) {
        auto o = options(tmp.path);
        o.dir = tmp.path / (mode == FsyncMode::always ? "always" : "interval");
        o.fsync = mode;
        o.fsync_interval = std::chrono::milliseconds(1);
        {
            auto s = open(o);
            append_range(*s, 0, 600);
            read_some(*s, 100, true);
            s->sync_if_due(std::chrono::steady_clock::now() + std::chrono::seconds(1));
            CHECK(s->last_sync_error().empty());
            read_some(*s, 100, true);
        }
        SpoolRecovery r;
        auto s = open(o, &r);
        CHECK(r.records == 400);
        CHECK(drain(*s) == expected(200, 600));
    }
}

TEST_CASE("open names the path and the cause when it cannot use the directory", "[spool]") {
    TempDir tmp;
    SECTION("not a directory") {
        std::ofstream(tmp.path / "file") << "x";
        SpoolOptions o;
        o.dir = tmp.path / "file" / "spool";
        CHECK_THROWS_WITH(
            DiskSpool::open(o, nullptr),
            Catch::Contains((tmp.path / "file").string()) && Catch::Contains("ot a directory"));
    }
    SECTION("already open") {
        const auto o = options(tmp.path);
        auto s = open(o);
        CHECK_THROWS_WITH(DiskSpool::open(o, nullptr),
                          Catch::Contains(o.dir.string()) && Catch::Contains("already open"));
        s.reset();
        CHECK_NOTHROW(open(o));
    }
    SECTION("permission denied") {
        const auto o = options(tmp.path);
        open(o);  // exists, 0700, owned by us
        const int rc = in_child([&] {
            // Another user (root cannot be refused anything otherwise).
            if (::geteuid() == 0 && ::setuid(65534) != 0) return 20;
            try {
                DiskSpool::open(o, nullptr);
            } catch (const std::runtime_error& e) {
                const std::string what = e.what();
                std::fprintf(stderr, "the error: %s\n", e.what());  // shown when this fails
                // EACCES, or EPERM where the kernel (or a sandbox's) says so.
                const bool cause = what.find("ermission denied") != std::string::npos ||
                                   what.find("not permitted") != std::string::npos;
                return what.find(o.dir.string()) != std::string::npos && cause ? 0 : 21;
            }
            return 22;
        });
        CHECK(rc == 0);
    }
    SECTION("a segment written by a newer format") {
        const auto o = options(tmp.path);
        {
            auto s = open(o);
            append_range(*s, 0, 1);
        }
        const auto file = segment_files(o).at(0);
        unsigned char header[spool::kSegmentHeaderSize];
        spool::write_segment_header(header, 0, 0);
        header[8] = 2;  // version 2, checksum made right again
        const std::uint32_t crc = sluice::crc32c(header, 28);
        std::memcpy(header + 28, &crc, 4);
        patch(file, 0, std::string(reinterpret_cast<const char*>(header), sizeof header));
        CHECK_THROWS_WITH(DiskSpool::open(o, nullptr),
                          Catch::Contains(file.string()) && Catch::Contains("format version 2"));
    }
}

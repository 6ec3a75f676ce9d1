// The disk spool's recovery (DiskSpool::open) of a segment file that a crash, a full disk or
// another program damaged: what a restart reads before any route runs. Input: a mode byte,
// then the segment's bytes. Mode bit 0 writes a valid segment header first (so the frames are
// reached); bit 1 repairs the checksums of every frame header the bytes contain (so bodies
// are reached). Properties: open() recovers or refuses with an error, never crashes; every
// record it counts is read back exactly once, and only well-formed records are.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "sluice/core/buffer/crc32c.hpp"
#include "sluice/core/buffer/disk_spool.hpp"
#include "sluice/core/buffer/spool_record.hpp"
#include "sluice/core/message_arena.hpp"

namespace fs = std::filesystem;
namespace spool = sluice::spool;
using sluice::fuzz::fail;

namespace {

void repair_frames(std::vector<std::uint8_t>& seg) {
    for (std::size_t at = spool::kSegmentHeaderSize; at + spool::kFrameHeaderSize <= seg.size();
         at += 8) {
        if (!spool::has_frame_magic(seg.data() + at)) continue;
        std::uint32_t body_len = 0;
        std::uint64_t seq = 0;
        std::memcpy(&body_len, seg.data() + at + 4, 4);
        std::memcpy(&seq, seg.data() + at + 8, 8);
        const std::size_t body = at + spool::kFrameHeaderSize;
        if (body_len > seg.size() - body) continue;
        spool::write_frame_header(seg.data() + at, body_len, seq,
                                  sluice::crc32c(seg.data() + body, body_len));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const fs::path dir =
        fs::temp_directory_path() / ("sluice-fuzz-spool-" + std::to_string(::getpid()));
    if (size == 0) return 0;
    const std::uint8_t mode = data[0];
    std::vector<std::uint8_t> seg;
    if ((mode & 1) != 0) {
        seg.resize(spool::kSegmentHeaderSize);
        spool::write_segment_header(seg.data(), 0, 0);
    }
    seg.insert(seg.end(), data + 1, data + size);
    if ((mode & 2) != 0) repair_frames(seg);

    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::create_directories(dir);
    fs::permissions(dir, fs::perms::owner_all);
    {
        std::ofstream out(dir / "00000000000000000000.seg", std::ios::binary);
        out.write(reinterpret_cast<const char*>(seg.data()),
                  static_cast<std::streamsize>(seg.size()));
    }

    sluice::SpoolOptions options;
    options.dir = dir;
    options.min_segment_bytes = 4096;
    options.segment_bytes = 1 << 20;
    sluice::SpoolRecovery recovery;
    std::unique_ptr<sluice::DiskSpool> s;
    try {
        s = sluice::DiskSpool::open(options, &recovery);
    } catch (const std::runtime_error& e) {
        sluice::fuzz::require_printable(e.what());
        return 0;
    }
    if (s->messages() != recovery.records) fail("recovery counted other records than it holds");
    std::uint64_t read = 0;
    while (true) {
        sluice::MessageArena arena;
        const std::size_t n = s->read(arena, 64);
        if (n == 0) break;
        for (std::size_t i = 0; i < n; ++i) {
            const sluice_message& m = arena.at(i);
            std::vector<std::uint8_t> body(spool::encoded_size(m));
            if (body.empty()) fail("a recovered record cannot be encoded again");
            spool::encode(m, body.data());
            spool::DecodedMessage back;
            if (!spool::decode(body.data(), body.size(), back))
                fail("a recovered record is malformed");
        }
        s->confirm(n);
        read += n;
    }
    if (read + s->skipped_on_read() != recovery.records) {
        fail("recovered records were not all read back, or more were",
             std::to_string(read) + " read, " + std::to_string(s->skipped_on_read()) +
                 " skipped, " + std::to_string(recovery.records) + " recovered");
    }
    return 0;
}

// The disk spool's record format (core/buffer/spool_record), read back from files that a crash,
// a full disk or another program may have damaged. Input: bytes taken as a record body, then
// as a frame header, a segment header and a position slot. Properties: decode() never reads
// outside the bytes; a body that decodes encodes back to the same bytes; the headers'
// checksums are what decide.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_support.hpp"
#include "sluice/core/buffer/spool_record.hpp"

namespace spool = sluice::spool;
using sluice::fuzz::fail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // An exact-size copy, so that ASan sees a read one byte past the end.
    const std::vector<std::uint8_t> bytes(data, data + size);

    spool::DecodedMessage decoded;
    if (spool::decode(bytes.data(), bytes.size(), decoded)) {
        const std::size_t n = spool::encoded_size(decoded.message);
        if (n != bytes.size()) fail("a decoded body re-encodes to another size");
        std::vector<std::uint8_t> again(n);
        spool::encode(decoded.message, again.data());
        if (again != bytes) fail("a decoded body re-encodes to other bytes");
        (void)spool::body_crc(decoded.message);
    }

    if (bytes.size() >= spool::kFrameHeaderSize) {
        spool::FrameHeader h;
        if (spool::read_frame_header(bytes.data(), h)) {
            std::uint8_t rewritten[spool::kFrameHeaderSize];
            spool::write_frame_header(rewritten, h.body_len, h.seq, h.body_crc);
            if (std::memcmp(rewritten, bytes.data(), sizeof rewritten) != 0) {
                fail("an accepted frame header is not what write_frame_header() writes");
            }
        }
    }
    spool::SegmentHeader s;
    (void)spool::read_segment_header(bytes.data(), bytes.size(), s);
    if (bytes.size() >= spool::kPositionSlotSize) {
        spool::Position p;
        (void)spool::read_position_slot(bytes.data(), p);
    }
    return 0;
}

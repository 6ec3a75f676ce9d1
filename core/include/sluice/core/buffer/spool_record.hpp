// The disk spool's on-disk format, version 1: the segment header, the frame around each record,
// and the record body (one sluice_message). All integers are little-endian.
//
// Segment file <first_seq, 20 digits>.seg:
//   header (kSegmentHeaderSize bytes)  magic "SLUICESG" u64 | version u32 | header_size u32 |
//                                      first_seq u64 | flags u32 | crc32c of the above u32
//   frames, each at a multiple of 8 from header_size, then zeroes; or, in a reused file (flag
//   kSegmentReused), whatever an older incarnation left there, whose frames have sequence
//   numbers below first_seq
// Frame:
//   magic u32 | body_len u32 | seq u64 | crc32c(body) u32 | crc32c of the 20 bytes before u32 |
//   body (body_len bytes) | zero padding to a multiple of 8
//   The header has its own checksum so that a reader resynchronising after a damaged record
//   can recognise the next frame without trusting a length it cannot check.
// Body:
//   flags u32 | qos u32 | timestamp_ms i64 | topic_len u32 | key_len u32 (kNoKey: no key) |
//   payload_len u32 | n_headers u32 | n_headers x (key_len u32, value_len u32) |
//   topic | key | payload | header key, value, key, value...
//   The lengths come first so that decoding is one bounds check per field and no scan.
// Position file "position": two kPositionSlotSize-byte slots at 0 and kPositionSlotStride,
// written alternately (generation % 2); the valid slot with the higher generation wins:
//   magic "SLUICEPO" u64 | version u32 | reserved u32 | generation u64 | confirmed_seq u64 |
//   next_seq u64 | crc32c of the above u32 | reserved u32
//   confirmed_seq: every record below it is confirmed. next_seq: the writer's next sequence
//   number then, so that numbers keep rising across restarts even when no segment is left.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sluice/abi.h"

namespace sluice::spool {

constexpr std::uint32_t kFormatVersion = 1;  // the newest version this code writes and reads
constexpr std::size_t kSegmentHeaderSize = 32;
constexpr std::size_t kFrameHeaderSize = 24;
constexpr std::size_t kBodyFixedSize = 32;
constexpr std::uint32_t kNoKey = 0xFFFFFFFFu;
constexpr std::uint32_t kFrameMagic = 0x5CD1A7E5u;
constexpr std::uint32_t kSegmentReused = 0x1u;  // segment header flag

/// Frame bytes for a body of `body_len` bytes (header + body + padding).
constexpr std::uint64_t frame_size(std::uint64_t body_len) {
    return kFrameHeaderSize + ((body_len + 7) & ~std::uint64_t{7});
}

/// Bytes of the encoded body of `m`, or 0 when it cannot be encoded (a field of 4 GiB or more,
/// or a body whose frame would not fit a 32-bit length).
std::size_t encoded_size(const sluice_message& m) noexcept;

/// Writes the body of `m` (encoded_size(m) bytes, which must not be 0) at `out`.
void encode(const sluice_message& m, void* out) noexcept;

/// crc32c of the body encode() writes, computed from `m` itself, so that a writer can checksum
/// before it holds the lock under which it copies.
std::uint32_t body_crc(const sluice_message& m) noexcept;

/// A decoded body: `message` points into the decoded bytes and into `headers`, so it is valid
/// while both live and this object is neither moved nor copied. Reuse one for many decodes:
/// `headers` keeps its capacity.
struct DecodedMessage {
    DecodedMessage() = default;
    DecodedMessage(const DecodedMessage&) = delete;
    DecodedMessage& operator=(const DecodedMessage&) = delete;

    sluice_message message{};
    std::vector<sluice_header> headers;
};

/// Decodes a body of exactly `size` bytes. Safe on any input: every length is checked against
/// `size` before use; returns false (and leaves `out` unspecified) when the bytes are not one
/// well-formed body.
bool decode(const void* data, std::size_t size, DecodedMessage& out);

struct FrameHeader {
    std::uint32_t body_len = 0;
    std::uint64_t seq = 0;
    std::uint32_t body_crc = 0;
};

/// Writes a frame header at `out` (kFrameHeaderSize bytes).
void write_frame_header(void* out, std::uint32_t body_len, std::uint64_t seq,
                        std::uint32_t body_crc) noexcept;

/// The same in two steps, for a writer that checksums the body where it wrote it: begin
/// before the body (magic, length, seq; the checksums zero, so that a write cut short reads
/// as a torn frame, not as the zeroes of the normal end), finish after it.
void begin_frame_header(void* out, std::uint32_t body_len, std::uint64_t seq) noexcept;
void finish_frame_header(void* out, std::uint32_t body_crc) noexcept;

/// Reads the kFrameHeaderSize bytes at `p`: true when magic and header checksum are right (the
/// body is not checked here).
bool read_frame_header(const void* p, FrameHeader& out) noexcept;

/// The fields of a frame header the reader already trusts (written by this process or checked
/// at recovery), without checks.
FrameHeader parse_frame_header(const void* p) noexcept;

/// Whether the 4 bytes at `p` are a frame magic (a cheap first test while resynchronising).
bool has_frame_magic(const void* p) noexcept;

struct SegmentHeader {
    std::uint32_t version = 0;
    std::uint32_t header_size = 0;
    std::uint64_t first_seq = 0;
    std::uint32_t flags = 0;
};

/// Writes a version-kFormatVersion segment header at `out` (kSegmentHeaderSize bytes).
void write_segment_header(void* out, std::uint64_t first_seq, std::uint32_t flags) noexcept;

/// Reads a segment header from the `size` bytes at `p`: true when magic and checksum are right
/// and header_size is sane. The version may be newer than kFormatVersion: the caller decides.
bool read_segment_header(const void* p, std::size_t size, SegmentHeader& out) noexcept;

constexpr std::size_t kPositionSlotSize = 48;
constexpr std::size_t kPositionSlotStride = 512;  // one sector each: a torn write hits one slot

struct Position {
    std::uint64_t generation = 0;
    std::uint64_t confirmed_seq = 0;
    std::uint64_t next_seq = 0;
};

void write_position_slot(void* out, const Position& position) noexcept;
/// True when the kPositionSlotSize bytes at `p` are a valid slot.
bool read_position_slot(const void* p, Position& out) noexcept;

}  // namespace sluice::spool

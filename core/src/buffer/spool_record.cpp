#include "sluice/core/buffer/spool_record.hpp"

#include <bit>
#include <cstring>

#include "sluice/core/buffer/crc32c.hpp"

namespace sluice::spool {
namespace {

constexpr std::uint64_t kSegmentMagic = 0x4753454349554C53ull;   // "SLUICESG" in file order
constexpr std::uint64_t kPositionMagic = 0x4F50454349554C53ull;  // "SLUICEPO"
constexpr std::size_t kMaxField = 0xFFFFFFFEu;                   // kNoKey is reserved

void put32(unsigned char* p, std::uint32_t v) noexcept {
    if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
    std::memcpy(p, &v, 4);
}
void put64(unsigned char* p, std::uint64_t v) noexcept {
    if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
    std::memcpy(p, &v, 8);
}
std::uint32_t get32(const unsigned char* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
    return v;
}
std::uint64_t get64(const unsigned char* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
    return v;
}

std::uint32_t u32(std::size_t v) noexcept { return static_cast<std::uint32_t>(v); }

void put_fixed(const sluice_message& m, unsigned char* p) noexcept {
    put32(p, m.flags);
    put32(p + 4, m.qos);
    put64(p + 8, static_cast<std::uint64_t>(m.timestamp_ms));
    put32(p + 16, u32(m.topic_len));
    put32(p + 20, m.key ? u32(m.key_len) : kNoKey);
    put32(p + 24, u32(m.payload_len));
    put32(p + 28, u32(m.n_headers));
}

// memcpy with a null source is undefined even for 0 bytes; empty fields may be null.
unsigned char* copy(unsigned char* out, const void* data, std::size_t size) noexcept {
    if (size > 0) std::memcpy(out, data, size);
    return out + size;
}

std::uint32_t crc_of(const void* data, std::size_t size, std::uint32_t crc) noexcept {
    return size > 0 ? crc32c(data, size, crc) : crc;
}

}  // namespace

std::size_t encoded_size(const sluice_message& m) noexcept {
    if (m.topic_len > kMaxField || m.key_len > kMaxField || m.payload_len > kMaxField ||
        m.n_headers > kMaxField / 8) {
        return 0;
    }
    std::uint64_t size = kBodyFixedSize + 8 * std::uint64_t{m.n_headers} + m.topic_len +
                         (m.key ? m.key_len : 0) + m.payload_len;
    for (std::size_t i = 0; i < m.n_headers; ++i) {
        if (m.headers[i].key_len > kMaxField || m.headers[i].value_len > kMaxField) return 0;
        size += m.headers[i].key_len + m.headers[i].value_len;
    }
    // The frame's body_len is 32 bits, padding included.
    if (frame_size(size) - kFrameHeaderSize > 0xFFFFFFFFu) return 0;
    return static_cast<std::size_t>(size);
}

void encode(const sluice_message& m, void* out) noexcept {
    auto* p = static_cast<unsigned char*>(out);
    put_fixed(m, p);
    p += kBodyFixedSize;
    for (std::size_t i = 0; i < m.n_headers; ++i, p += 8) {
        put32(p, u32(m.headers[i].key_len));
        put32(p + 4, u32(m.headers[i].value_len));
    }
    p = copy(p, m.topic, m.topic_len);
    if (m.key) p = copy(p, m.key, m.key_len);
    p = copy(p, m.payload, m.payload_len);
    for (std::size_t i = 0; i < m.n_headers; ++i) {
        p = copy(p, m.headers[i].key, m.headers[i].key_len);
        p = copy(p, m.headers[i].value, m.headers[i].value_len);
    }
}

std::uint32_t body_crc(const sluice_message& m) noexcept {
    unsigned char buf[kBodyFixedSize + 8 * 8];
    put_fixed(m, buf);
    std::size_t used = kBodyFixedSize;
    std::uint32_t crc = 0;
    for (std::size_t i = 0; i < m.n_headers; ++i) {
        if (used == sizeof buf) {
            crc = crc32c(buf, used, crc);
            used = 0;
        }
        put32(buf + used, u32(m.headers[i].key_len));
        put32(buf + used + 4, u32(m.headers[i].value_len));
        used += 8;
    }
    crc = crc32c(buf, used, crc);
    crc = crc_of(m.topic, m.topic_len, crc);
    if (m.key) crc = crc_of(m.key, m.key_len, crc);
    crc = crc_of(m.payload, m.payload_len, crc);
    for (std::size_t i = 0; i < m.n_headers; ++i) {
        crc = crc_of(m.headers[i].key, m.headers[i].key_len, crc);
        crc = crc_of(m.headers[i].value, m.headers[i].value_len, crc);
    }
    return crc;
}

bool decode(const void* data, std::size_t size, DecodedMessage& out) {
    const auto* p = static_cast<const unsigned char*>(data);
    if (p == nullptr || size < kBodyFixedSize) return false;
    const std::uint32_t topic_len = get32(p + 16);
    const std::uint32_t key_len = get32(p + 20);
    const std::uint32_t payload_len = get32(p + 24);
    const std::uint32_t n_headers = get32(p + 28);
    // 64-bit sums of 32-bit lengths cannot overflow; compare before any pointer arithmetic.
    const std::uint64_t table = 8 * std::uint64_t{n_headers};
    if (table > size - kBodyFixedSize) return false;
    std::uint64_t need = kBodyFixedSize + table + std::uint64_t{topic_len} + payload_len +
                         (key_len == kNoKey ? 0 : key_len);
    const unsigned char* lengths = p + kBodyFixedSize;
    for (std::uint32_t i = 0; i < n_headers && need <= size; ++i) {
        need += std::uint64_t{get32(lengths + 8 * i)} + get32(lengths + 8 * i + 4);
    }
    if (need != size) return false;

    sluice_message& m = out.message;
    m = sluice_message{};
    m.struct_size = sizeof(sluice_message);
    m.flags = get32(p);
    m.qos = get32(p + 4);
    m.timestamp_ms = static_cast<std::int64_t>(get64(p + 8));
    const auto* s = reinterpret_cast<const char*>(lengths + table);
    m.topic = s;
    m.topic_len = topic_len;
    s += topic_len;
    if (key_len != kNoKey) {
        m.key = s;
        m.key_len = key_len;
        s += key_len;
    }
    m.payload = s;
    m.payload_len = payload_len;
    s += payload_len;
    out.headers.resize(n_headers);
    for (std::uint32_t i = 0; i < n_headers; ++i) {
        sluice_header& h = out.headers[i];
        h.key_len = get32(lengths + 8 * i);
        h.value_len = get32(lengths + 8 * i + 4);
        h.key = s;
        s += h.key_len;
        h.value = s;
        s += h.value_len;
    }
    m.headers = n_headers ? out.headers.data() : nullptr;
    m.n_headers = n_headers;
    return true;
}

void write_frame_header(void* out, std::uint32_t body_len, std::uint64_t seq,
                        std::uint32_t body_crc) noexcept {
    begin_frame_header(out, body_len, seq);
    finish_frame_header(out, body_crc);
}

void begin_frame_header(void* out, std::uint32_t body_len, std::uint64_t seq) noexcept {
    auto* p = static_cast<unsigned char*>(out);
    put32(p, kFrameMagic);
    put32(p + 4, body_len);
    put64(p + 8, seq);
    put64(p + 16, 0);
}

void finish_frame_header(void* out, std::uint32_t body_crc) noexcept {
    auto* p = static_cast<unsigned char*>(out);
    put32(p + 16, body_crc);
    put32(p + 20, crc32c(p, 20));
}

bool read_frame_header(const void* data, FrameHeader& out) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
    if (get32(p) != kFrameMagic || get32(p + 20) != crc32c(p, 20)) return false;
    out.body_len = get32(p + 4);
    out.seq = get64(p + 8);
    out.body_crc = get32(p + 16);
    return true;
}

FrameHeader parse_frame_header(const void* data) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
    return {get32(p + 4), get64(p + 8), get32(p + 16)};
}

bool has_frame_magic(const void* p) noexcept {
    return get32(static_cast<const unsigned char*>(p)) == kFrameMagic;
}

void write_segment_header(void* out, std::uint64_t first_seq, std::uint32_t flags) noexcept {
    auto* p = static_cast<unsigned char*>(out);
    put64(p, kSegmentMagic);
    put32(p + 8, kFormatVersion);
    put32(p + 12, kSegmentHeaderSize);
    put64(p + 16, first_seq);
    put32(p + 24, flags);
    put32(p + 28, crc32c(p, 28));
}

bool read_segment_header(const void* data, std::size_t size, SegmentHeader& out) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
    if (size < kSegmentHeaderSize) return false;
    if (get64(p) != kSegmentMagic || get32(p + 28) != crc32c(p, 28)) return false;
    out.version = get32(p + 8);
    out.header_size = get32(p + 12);
    out.first_seq = get64(p + 16);
    out.flags = get32(p + 24);
    // Later versions may grow the header, never shrink it; frames start 8-aligned.
    return out.header_size >= kSegmentHeaderSize && out.header_size % 8 == 0 &&
           out.header_size <= size;
}

void write_position_slot(void* out, const Position& position) noexcept {
    auto* p = static_cast<unsigned char*>(out);
    put64(p, kPositionMagic);
    put32(p + 8, 1);
    put32(p + 12, 0);
    put64(p + 16, position.generation);
    put64(p + 24, position.confirmed_seq);
    put64(p + 32, position.next_seq);
    put32(p + 40, crc32c(p, 40));
    put32(p + 44, 0);
}

bool read_position_slot(const void* data, Position& out) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
    if (get64(p) != kPositionMagic || get32(p + 8) != 1 || get32(p + 40) != crc32c(p, 40)) {
        return false;
    }
    out.generation = get64(p + 16);
    out.confirmed_seq = get64(p + 24);
    out.next_seq = get64(p + 32);
    return true;
}

}  // namespace sluice::spool

// Owned copies of messages in one growing byte buffer, reused across batches so that the hot
// path does not allocate per message once capacities have grown.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sluice/abi.h"

namespace sluice {

class MessageArena {
public:
    void append(const sluice_message& m);
    /// Copies message `index` of `other`.
    void append_from(const MessageArena& other, std::size_t index);

    std::size_t size() const { return entries_.size(); }
    bool empty() const { return entries_.empty(); }
    std::size_t payload_bytes() const { return bytes_.size(); }
    void clear();
    /// An empty arena gives back memory beyond `keep_bytes` that a burst made it grow to.
    void shrink(std::size_t keep_bytes);
    std::size_t capacity_bytes() const { return bytes_.capacity(); }
    /// Heap memory the arena holds, used or kept for reuse.
    std::size_t footprint() const;
    void swap(MessageArena& other) noexcept;

    /// The C view of all messages; valid until the next change to the arena.
    const sluice_batch& batch();
    /// One message's C view; valid until the next change to the arena.
    const sluice_message& at(std::size_t index);

private:
    struct Span {
        std::uint32_t offset = 0;
        std::uint32_t size = 0;
    };
    struct Entry {
        Span topic, key, payload;
        bool has_key = false;
        std::uint32_t first_header = 0, n_headers = 0;
        std::int64_t timestamp_ms = 0;
        std::uint32_t qos = 0, flags = 0;
    };
    Span store(const void* data, std::size_t size);
    static sluice_message view_of(const Entry& e, const char* base, const sluice_header* headers);
    void build_views();

    std::string bytes_;
    std::vector<Entry> entries_;
    std::vector<std::pair<Span, Span>> headers_;
    std::vector<sluice_message> views_;
    std::vector<sluice_header> header_views_;
    sluice_batch batch_{};
    bool views_valid_ = false;
};

}  // namespace sluice

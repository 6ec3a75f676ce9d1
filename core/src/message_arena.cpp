#include "sluice/core/message_arena.hpp"

#include <cstring>
#include <stdexcept>

namespace sluice {

MessageArena::Span MessageArena::store(const void* data, std::size_t size) {
    if (size > UINT32_MAX - bytes_.size()) throw std::length_error("message arena over 4 GiB");
    Span s{static_cast<std::uint32_t>(bytes_.size()), static_cast<std::uint32_t>(size)};
    if (size > 0) bytes_.append(static_cast<const char*>(data), size);
    return s;
}

void MessageArena::append(const sluice_message& m) {
    views_valid_ = false;
    Entry e;
    e.topic = store(m.topic, m.topic_len);
    e.has_key = m.key != nullptr;
    if (e.has_key) e.key = store(m.key, m.key_len);
    e.payload = store(m.payload, m.payload_len);
    e.first_header = static_cast<std::uint32_t>(headers_.size());
    e.n_headers = static_cast<std::uint32_t>(m.n_headers);
    for (std::size_t i = 0; i < m.n_headers; ++i) {
        const auto& h = m.headers[i];
        const Span k = store(h.key, h.key_len);
        const Span v = store(h.value, h.value_len);
        headers_.emplace_back(k, v);
    }
    e.timestamp_ms = m.timestamp_ms;
    e.qos = m.qos;
    e.flags = m.flags;
    entries_.push_back(e);
}

sluice_message MessageArena::view_of(const Entry& e, const char* base,
                                     const sluice_header* headers) {
    sluice_message m{};
    m.struct_size = sizeof m;
    m.flags = e.flags;
    m.topic = base + e.topic.offset;
    m.topic_len = e.topic.size;
    m.key = e.has_key ? base + e.key.offset : nullptr;
    m.key_len = e.key.size;
    m.payload = base + e.payload.offset;
    m.payload_len = e.payload.size;
    m.headers = e.n_headers ? headers : nullptr;
    m.n_headers = e.n_headers;
    m.timestamp_ms = e.timestamp_ms;
    m.qos = e.qos;
    return m;
}

void MessageArena::append_from(const MessageArena& other, std::size_t index) {
    // Through a view built on the fly: `other` may be const and its views stale.
    const Entry& e = other.entries_[index];
    const char* base = other.bytes_.data();
    std::vector<sluice_header> hs;
    for (std::uint32_t i = 0; i < e.n_headers; ++i) {
        const auto& [k, v] = other.headers_[e.first_header + i];
        hs.push_back({base + k.offset, k.size, base + v.offset, v.size});
    }
    append(view_of(e, base, hs.data()));
}

void MessageArena::clear() {
    bytes_.clear();
    entries_.clear();
    headers_.clear();
    views_valid_ = false;
}

void MessageArena::shrink(std::size_t keep_bytes) {
    if (!empty()) return;
    const std::size_t keep_entries = keep_bytes / 64;
    if (bytes_.capacity() > keep_bytes) std::string().swap(bytes_);
    if (entries_.capacity() > keep_entries) {
        std::vector<Entry>().swap(entries_);
        std::vector<sluice_message>().swap(views_);
    }
    if (headers_.capacity() > keep_entries) {
        std::vector<std::pair<Span, Span>>().swap(headers_);
        std::vector<sluice_header>().swap(header_views_);
    }
    views_valid_ = false;
}

std::size_t MessageArena::footprint() const {
    return bytes_.capacity() + entries_.capacity() * sizeof(Entry) +
           headers_.capacity() * sizeof(headers_[0]) + views_.capacity() * sizeof(views_[0]) +
           header_views_.capacity() * sizeof(header_views_[0]);
}

void MessageArena::swap(MessageArena& other) noexcept {
    bytes_.swap(other.bytes_);
    entries_.swap(other.entries_);
    headers_.swap(other.headers_);
    views_valid_ = false;
    other.views_valid_ = false;
}

void MessageArena::build_views() {
    if (views_valid_) return;
    const char* base = bytes_.data();
    header_views_.resize(headers_.size());
    for (std::size_t i = 0; i < headers_.size(); ++i) {
        const auto& [k, v] = headers_[i];
        header_views_[i] = {base + k.offset, k.size, base + v.offset, v.size};
    }
    views_.resize(entries_.size());
    for (std::size_t i = 0; i < entries_.size(); ++i) {
        const Entry& e = entries_[i];
        views_[i] = view_of(e, base, header_views_.data() + e.first_header);
    }
    batch_ = {sizeof(sluice_batch), sizeof(sluice_message), views_.size(),
              views_.empty() ? nullptr : views_.data()};
    views_valid_ = true;
}

const sluice_batch& MessageArena::batch() {
    build_views();
    return batch_;
}

const sluice_message& MessageArena::at(std::size_t index) {
    build_views();
    return views_[index];
}

}  // namespace sluice

// Read-only C++ views over the ABI's messages and batches, and an owning message for tests
// and for plugins that must keep a message beyond a call.
#ifndef SLUICE_SDK_MESSAGE_HPP
#define SLUICE_SDK_MESSAGE_HPP

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/abi.h"

namespace sluice::sdk {

inline std::string_view view_of(const char* data, std::size_t size) {
    return data == nullptr ? std::string_view{} : std::string_view{data, size};
}

/// A message as a stage receives it. Valid only during the call that passed it in.
class MessageView {
public:
    explicit MessageView(const sluice_message& m) : m_(&m) {}

    std::string_view topic() const { return view_of(m_->topic, m_->topic_len); }
    bool has_key() const { return m_->key != nullptr; }
    std::string_view key() const { return view_of(m_->key, m_->key_len); }
    std::string_view payload() const {
        return view_of(static_cast<const char*>(m_->payload), m_->payload_len);
    }
    std::size_t header_count() const { return m_->n_headers; }
    std::string_view header_key(std::size_t i) const {
        return view_of(m_->headers[i].key, m_->headers[i].key_len);
    }
    std::string_view header_value(std::size_t i) const {
        return view_of(m_->headers[i].value, m_->headers[i].value_len);
    }
    /// The first header named `name`, if any.
    std::optional<std::string_view> header(std::string_view name) const {
        for (std::size_t i = 0; i < m_->n_headers; ++i) {
            if (header_key(i) == name) return header_value(i);
        }
        return std::nullopt;
    }
    std::int64_t timestamp_ms() const { return m_->timestamp_ms; }
    std::uint32_t qos() const { return m_->qos; }
    bool retained() const { return (m_->flags & SLUICE_MESSAGE_RETAIN) != 0; }
    const sluice_message& raw() const { return *m_; }

private:
    const sluice_message* m_;
};

/// A batch as a stage receives it; steps by the producer's message size (see abi.h).
class BatchView {
public:
    explicit BatchView(const sluice_batch& b) : b_(&b) {}

    std::size_t size() const { return b_->count; }
    bool empty() const { return b_->count == 0; }
    MessageView operator[](std::size_t i) const {
        const auto* base = reinterpret_cast<const unsigned char*>(b_->messages);
        return MessageView(
            *reinterpret_cast<const sluice_message*>(base + i * b_->message_size));
    }

    class iterator {
    public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = MessageView;
        using difference_type = std::ptrdiff_t;
        iterator(const BatchView* batch, std::size_t i) : batch_(batch), i_(i) {}
        MessageView operator*() const { return (*batch_)[i_]; }
        iterator& operator++() {
            ++i_;
            return *this;
        }
        bool operator==(const iterator& other) const { return i_ == other.i_; }
        bool operator!=(const iterator& other) const { return i_ != other.i_; }

    private:
        const BatchView* batch_;
        std::size_t i_;
    };
    iterator begin() const { return {this, 0}; }
    iterator end() const { return {this, size()}; }

private:
    const sluice_batch* b_;
};

/// A message that owns its bytes. Convenient, not fast: the host's hot path does not use it.
struct OwnedMessage {
    std::string topic;
    std::optional<std::string> key;
    std::string payload;
    std::vector<std::pair<std::string, std::string>> headers;
    std::int64_t timestamp_ms = 0;
    std::uint32_t qos = 0;
    std::uint32_t flags = 0;

    static OwnedMessage from(MessageView m) {
        OwnedMessage o;
        o.topic = m.topic();
        if (m.has_key()) o.key = std::string(m.key());
        o.payload = m.payload();
        for (std::size_t i = 0; i < m.header_count(); ++i) {
            o.headers.emplace_back(m.header_key(i), m.header_value(i));
        }
        o.timestamp_ms = m.timestamp_ms();
        o.qos = m.qos();
        o.flags = m.raw().flags;
        return o;
    }

    /// A C view of this message; `header_storage` must outlive the view.
    sluice_message view(std::vector<sluice_header>& header_storage) const {
        header_storage.clear();
        for (const auto& [k, v] : headers) {
            header_storage.push_back({k.data(), k.size(), v.data(), v.size()});
        }
        sluice_message m{};
        m.struct_size = sizeof(sluice_message);
        m.flags = flags;
        m.topic = topic.data();
        m.topic_len = topic.size();
        m.key = key ? key->data() : nullptr;
        m.key_len = key ? key->size() : 0;
        m.payload = payload.data();
        m.payload_len = payload.size();
        m.headers = header_storage.empty() ? nullptr : header_storage.data();
        m.n_headers = header_storage.size();
        m.timestamp_ms = timestamp_ms;
        m.qos = qos;
        return m;
    }
};

}  // namespace sluice::sdk

#endif  // SLUICE_SDK_MESSAGE_HPP

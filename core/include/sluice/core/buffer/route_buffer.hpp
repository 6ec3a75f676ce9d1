// What a route holds between its source and its sink: a memory buffer or a durable disk
// spool behind one interface. Appends come from the source's threads and never wait; the
// route's consumer reads batches and confirms them once the sink (or the error policy) is done
// with them, so that what is confirmed is exactly what may be forgotten.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "sluice/abi.h"
#include "sluice/core/message_arena.hpp"

namespace sluice {

class RouteBuffer {
public:
    enum class Append { ok, full, failed };

    virtual ~RouteBuffer() = default;

    /// Copies `m` in unless the buffer would then hold more than `limit_bytes`. ANY thread,
    /// several at once; never waits for the consumer. `failed`: an I/O error, in `*error`.
    virtual Append append(const sluice_message& m, std::uint64_t limit_bytes,
                          std::string* error) = 0;
    /// CONSUMER: appends up to `max_messages` of the oldest unread messages to `out`.
    virtual std::size_t read(MessageArena& out, std::size_t max_messages) = 0;
    /// CONSUMER: the oldest `n` messages read and not yet confirmed are done.
    virtual void confirm(std::size_t n) = 0;
    /// ANY thread: drops the oldest unread messages until the buffer holds at most
    /// `target_bytes` or nothing unread is left; returns how many it dropped.
    virtual std::size_t drop_oldest_unread(std::uint64_t target_bytes) = 0;

    virtual std::uint64_t bytes() const = 0;     // held: read or not, unconfirmed
    virtual std::uint64_t messages() const = 0;  // held
    virtual std::uint64_t unread() const = 0;
    /// True when what is held survives the process (a disk spool).
    virtual bool durable() const = 0;
    /// Makes what was appended and confirmed so far durable now (at stop). CONSUMER.
    virtual void flush() {}
    /// Gives back memory kept for reuse (the route is idle). CONSUMER.
    virtual void trim() {}
    /// Heap memory held besides the messages themselves (arenas kept for reuse). CONSUMER.
    virtual std::uint64_t spare_bytes() const { return 0; }

    /// The size a message counts for in every buffer, so that limits mean the same thing
    /// whatever the buffer type: its bytes plus a fixed overhead for its bookkeeping.
    static std::uint64_t size_of(const sluice_message& m) {
        std::uint64_t n = 64 + m.topic_len + m.key_len + m.payload_len;
        for (std::size_t i = 0; i < m.n_headers; ++i) {
            n += 16 + m.headers[i].key_len + m.headers[i].value_len;
        }
        return n;
    }
};

/// Messages in memory, in batch-sized arenas that are recycled: steady traffic does not
/// allocate per message.
std::unique_ptr<RouteBuffer> make_memory_buffer(std::size_t batch_size);

}  // namespace sluice

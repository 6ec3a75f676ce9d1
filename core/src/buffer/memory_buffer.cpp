#include <deque>
#include <mutex>
#include <vector>

#include "sluice/core/buffer/route_buffer.hpp"

namespace sluice {

namespace {

class MemoryBuffer final : public RouteBuffer {
public:
    explicit MemoryBuffer(std::size_t batch_size) : batch_size_(batch_size) {}

    Append append(const sluice_message& m, std::uint64_t limit_bytes, std::string*) override {
        const std::uint64_t size = size_of(m);
        std::lock_guard lock(mu_);
        if (held_bytes_ + size > limit_bytes) return Append::full;
        filling_.arena.append(m);
        filling_.bytes += size;
        held_bytes_ += size;
        ++held_;
        ++unread_;
        if (filling_.arena.size() >= batch_size_) {
            ready_.push_back(std::move(filling_));
            filling_ = Chunk{spare(), 0};
        }
        return Append::ok;
    }

    std::size_t read(MessageArena& out, std::size_t max_messages) override {
        std::lock_guard lock(mu_);
        Chunk* from = !ready_.empty() ? &ready_.front() : &filling_;
        if (from->arena.empty() || max_messages == 0) return 0;
        std::size_t n = 0;
        std::uint64_t bytes = 0;
        if (out.empty() && from->arena.size() <= max_messages) {
            // The usual case: a whole chunk changes hands without copying, and `out`'s old
            // buffers are kept for reuse.
            n = from->arena.size();
            bytes = from->bytes;
            out.swap(from->arena);
            recycle(std::move(from->arena));
            if (from == &filling_) {
                filling_ = Chunk{spare(), 0};
            } else {
                ready_.pop_front();
            }
        } else {
            // A reader asking for fewer than a chunk: copy, then keep the rest in order.
            MessageArena rest = spare();
            std::uint64_t rest_bytes = from->bytes;
            for (std::size_t i = 0; i < from->arena.size(); ++i) {
                const std::uint64_t size = size_of(from->arena.at(i));
                if (n < max_messages) {
                    out.append_from(from->arena, i);
                    bytes += size;
                    rest_bytes -= size;
                    ++n;
                } else {
                    rest.append_from(from->arena, i);
                }
            }
            recycle(std::move(from->arena));
            if (rest.empty() && from != &filling_) {
                recycle(std::move(rest));
                ready_.pop_front();  // an empty chunk ahead would hide the ones behind it
            } else {
                *from = Chunk{std::move(rest), rest_bytes};
            }
        }
        unread_ -= n;
        in_flight_.push_back({n, bytes});
        return n;
    }

    void confirm(std::size_t n) override {
        std::lock_guard lock(mu_);
        while (n > 0 && !in_flight_.empty()) {
            auto& f = in_flight_.front();
            const std::size_t take = std::min(n, f.count);
            const std::uint64_t bytes = take == f.count ? f.bytes : f.bytes / f.count * take;
            f.count -= take;
            f.bytes -= bytes;
            held_ -= take;
            held_bytes_ -= bytes;
            n -= take;
            if (f.count == 0) in_flight_.pop_front();
        }
    }

    std::size_t drop_oldest_unread(std::uint64_t target_bytes) override {
        std::lock_guard lock(mu_);
        // Whole chunks (at most a batch each): cheap, and the count stays exact.
        std::size_t dropped = 0;
        while (held_bytes_ > target_bytes && unread_ > 0) {
            Chunk* from = !ready_.empty() ? &ready_.front() : &filling_;
            const std::size_t n = from->arena.size();
            dropped += n;
            unread_ -= n;
            held_ -= n;
            held_bytes_ -= from->bytes;
            recycle(std::move(from->arena));
            if (from == &filling_) {
                filling_ = Chunk{spare(), 0};
            } else {
                ready_.pop_front();
            }
        }
        return dropped;
    }

    std::uint64_t bytes() const override {
        std::lock_guard lock(mu_);
        return held_bytes_;
    }
    std::uint64_t messages() const override {
        std::lock_guard lock(mu_);
        return held_;
    }
    std::uint64_t unread() const override {
        std::lock_guard lock(mu_);
        return unread_;
    }
    bool durable() const override { return false; }
    void trim() override {
        std::lock_guard lock(mu_);
        // Only what a burst made large: small spares are what steady traffic reuses.
        std::erase_if(spare_,
                      [](const MessageArena& a) { return a.capacity_bytes() > kIdleArenaBytes; });
        filling_.arena.shrink(kIdleArenaBytes);
    }
    std::uint64_t spare_bytes() const override {
        std::lock_guard lock(mu_);
        std::uint64_t n = filling_.arena.empty() ? filling_.arena.footprint() : 0;
        for (const auto& a : spare_) n += a.footprint();
        return n;
    }

private:
    struct Chunk {
        MessageArena arena;
        std::uint64_t bytes = 0;
    };
    struct InFlight {
        std::size_t count;
        std::uint64_t bytes;
    };

    // Caller holds mu_. A few spare arenas are kept for reuse; more would keep a burst's
    // memory for good.
    void recycle(MessageArena&& a) {
        if (spare_.size() < kMaxSpare) {
            a.clear();
            spare_.push_back(std::move(a));
        }
    }

    // Caller holds mu_.
    MessageArena spare() {
        if (spare_.empty()) return MessageArena();
        MessageArena a = std::move(spare_.back());
        spare_.pop_back();
        a.clear();
        return a;
    }

    static constexpr std::size_t kMaxSpare = 4;
    static constexpr std::size_t kIdleArenaBytes = 64u << 10;
    const std::size_t batch_size_;
    mutable std::mutex mu_;
    std::deque<Chunk> ready_;
    Chunk filling_;
    std::vector<MessageArena> spare_;
    std::deque<InFlight> in_flight_;
    std::uint64_t held_ = 0;
    std::uint64_t held_bytes_ = 0;
    std::uint64_t unread_ = 0;
};

}  // namespace

std::unique_ptr<RouteBuffer> make_memory_buffer(std::size_t batch_size) {
    return std::make_unique<MemoryBuffer>(batch_size);
}

}  // namespace sluice

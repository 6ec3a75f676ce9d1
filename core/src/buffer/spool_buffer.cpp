#include "sluice/core/buffer/spool_buffer.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "sluice/core/buffer/disk_spool.hpp"

namespace sluice {

namespace {

// One thread for every open spool, not one per route: a process may run thousands of routes.
// It records each spool's confirmed position (and, with `fsync: interval`, forces its data to
// the device) when due, so that a restart replays at most an interval of confirmed messages.
// It sleeps while no spool is open.
class SpoolSyncer {
public:
    static SpoolSyncer& instance() {
        static SpoolSyncer syncer;
        return syncer;
    }

    void add(DiskSpool* spool, std::chrono::milliseconds interval) {
        std::lock_guard lock(mu_);
        spools_.insert(spool);
        tick_ = std::min(tick_, std::max(interval / 2, std::chrono::milliseconds(10)));
        if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
        cv_.notify_all();
    }

    void remove(DiskSpool* spool) {
        std::lock_guard lock(mu_);  // also waits for a sync of this spool in progress
        spools_.erase(spool);
    }

    ~SpoolSyncer() {
        {
            std::lock_guard lock(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

private:
    void run() {
        std::unique_lock lock(mu_);
        while (!stop_) {
            if (spools_.empty()) {
                cv_.wait(lock, [this] { return stop_ || !spools_.empty(); });
                continue;
            }
            cv_.wait_for(lock, tick_, [this] { return stop_; });
            const auto now = std::chrono::steady_clock::now();
            for (auto* s : spools_) s->sync_if_due(now);
        }
    }

    std::mutex mu_;
    std::condition_variable cv_;
    std::set<DiskSpool*> spools_;
    std::chrono::milliseconds tick_{1000};
    bool stop_ = false;
    std::thread thread_;
};

class SpoolBuffer final : public RouteBuffer {
public:
    explicit SpoolBuffer(std::unique_ptr<DiskSpool> spool) : spool_(std::move(spool)) {
        SpoolSyncer::instance().add(spool_.get(), spool_->options().fsync_interval);
    }
    ~SpoolBuffer() override { SpoolSyncer::instance().remove(spool_.get()); }

    Append append(const sluice_message& m, std::uint64_t limit_bytes, std::string* error) override {
        switch (spool_->append(m, limit_bytes, error)) {
            case DiskSpool::Append::ok:
                return Append::ok;
            case DiskSpool::Append::full:
                return Append::full;
            case DiskSpool::Append::failed:
                break;
        }
        return Append::failed;
    }
    std::size_t read(MessageArena& out, std::size_t max_messages) override {
        return spool_->read(out, max_messages);
    }
    void confirm(std::size_t n) override { spool_->confirm(n); }
    std::size_t drop_oldest_unread(std::uint64_t target_bytes) override {
        return spool_->drop_oldest_unread(target_bytes);
    }
    std::uint64_t bytes() const override { return spool_->bytes(); }
    std::uint64_t messages() const override { return spool_->messages(); }
    std::uint64_t unread() const override { return spool_->unread(); }
    bool durable() const override { return true; }
    void flush() override { spool_->sync(); }

private:
    std::unique_ptr<DiskSpool> spool_;
};

}  // namespace

std::unique_ptr<RouteBuffer> make_disk_buffer(const std::filesystem::path& dir,
                                              const BufferOptions& options, SpoolReport& report) {
    SpoolOptions o;
    o.dir = dir;
    o.max_bytes = options.max_bytes;
    o.segment_bytes = std::clamp<std::uint64_t>(options.max_bytes / 8, 1u << 20, 64u << 20);
    o.fsync = options.fsync == BufferOptions::Fsync::never      ? FsyncMode::never
              : options.fsync == BufferOptions::Fsync::interval ? FsyncMode::interval
                                                                : FsyncMode::always;
    o.fsync_interval = std::chrono::milliseconds(options.fsync_interval_ms);
    SpoolRecovery recovery;
    auto spool = DiskSpool::open(o, &recovery);
    report.records = recovery.records;
    report.bytes = recovery.bytes;
    report.torn_bytes = recovery.torn_bytes;
    report.corrupt_records = recovery.corrupt_records;
    report.corrupt_bytes = recovery.corrupt_bytes;
    return std::make_unique<SpoolBuffer>(std::move(spool));
}

}  // namespace sluice

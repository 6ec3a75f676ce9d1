#include "sluice/core/buffer/disk_spool.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "sluice/core/buffer/crc32c.hpp"
#include "sluice/core/buffer/spool_record.hpp"

namespace sluice {
namespace {

using Clock = std::chrono::steady_clock;
using spool::kFrameHeaderSize;

constexpr std::uint64_t kNone = ~std::uint64_t{0};
constexpr const char* kPositionFile = "position";
constexpr const char* kSpareFile = "spare.tmp";
constexpr const char* kSegmentSuffix = ".seg";
constexpr std::size_t kSeqDigits = 20;
// A segment that fills faster than this makes the next one twice as large; one that takes
// longer than kShrinkAfter makes it half as large.
constexpr auto kGrowWithin = std::chrono::seconds(1);
constexpr auto kShrinkAfter = std::chrono::seconds(60);
// Bodies up to this size are checksummed under the writer's lock (about 200 ns at most).
constexpr std::size_t kCrcInPlaceMax = 4096;
constexpr std::uint64_t kPrefetchAhead = 2048;
// A spare nobody reused for this long gives its disk space back.
constexpr auto kSpareIdle = std::chrono::seconds(60);

std::string error_text(int err) { return std::system_category().message(err); }

std::string describe(const std::filesystem::path& path, const char* what, int err) {
    return path.string() + ": " + what + ": " + error_text(err);
}

[[noreturn]] void fail(const std::filesystem::path& path, const char* what, int err) {
    throw std::runtime_error("spool " + describe(path, what, err));
}

void set_error(std::string* error, std::string text) {
    if (error) *error = std::move(text);
}

std::uint64_t round_up(std::uint64_t v, std::uint64_t to) { return (v + to - 1) / to * to; }

std::string segment_name(std::uint64_t first_seq) {
    std::string digits = std::to_string(first_seq);
    return std::string(kSeqDigits - digits.size(), '0') + digits + kSegmentSuffix;
}

// The sequence number a segment file name carries, or kNone for other files.
std::uint64_t parse_segment_name(const std::string& name) {
    if (name.size() != kSeqDigits + 4 || !name.ends_with(kSegmentSuffix)) return kNone;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < kSeqDigits; ++i) {
        const char c = name[i];
        if (c < '0' || c > '9') return kNone;
        const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
        if (v > (kNone - d) / 10) return kNone;
        v = v * 10 + d;
    }
    return v;
}

bool all_zero(const unsigned char* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        if (p[i] != 0) return false;
    }
    return true;
}

struct Skip {
    std::uint64_t from, to;  // byte offsets in the segment
};

struct Segment {
    Segment() = default;
    Segment(const Segment&) = delete;
    Segment& operator=(const Segment&) = delete;
    ~Segment() {
        if (base) ::munmap(base, capacity);
    }

    // Set before the segment is published to the reader (or, for the spare, under mu).
    std::filesystem::path path;
    unsigned char* base = nullptr;
    std::uint64_t capacity = 0;  // mapped bytes == file size
    std::uint64_t first_seq = 0;
    std::uint64_t header_size = spool::kSegmentHeaderSize;
    std::uint32_t version = spool::kFormatVersion;
    bool writable = false;  // created by this process (recovered segments are mapped read-only)
    bool oversize = false;  // made for one record larger than segment_bytes
    Clock::time_point created{};
    std::vector<Skip> skips;  // recovered segments: regions the reader jumps over, in order

    // End of the last complete record; the reader reads below it.
    std::atomic<std::uint64_t> published{0};
    // No more records will be added; `next` (once set) is the following segment.
    std::atomic<bool> sealed{false};
    std::atomic<Segment*> next{nullptr};

    // Under DiskSpool::Impl::mu: how far the data is known to be on disk (FsyncMode::interval),
    // and a counter that changes when the file is reused, so that a sync of the old contents
    // does not count for the new ones.
    std::uint64_t synced = 0;
    std::uint64_t incarnation = 0;
    bool header_synced = false;
};

// A growable ring for the consumer's in-flight records: deque would allocate per block.
template <class T>
class Ring {
public:
    std::size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    T& operator[](std::size_t i) { return buf_[(head_ + i) & (buf_.size() - 1)]; }
    T& front() { return (*this)[0]; }
    T& back() { return (*this)[size_ - 1]; }
    void push_back(const T& v) {
        if (size_ == buf_.size()) grow();
        buf_[(head_ + size_) & (buf_.size() - 1)] = v;
        ++size_;
    }
    void pop_front() {
        head_ = (head_ + 1) & (buf_.size() - 1);
        --size_;
    }

private:
    void grow() {
        std::vector<T> bigger(buf_.empty() ? 64 : buf_.size() * 2);
        for (std::size_t i = 0; i < size_; ++i) bigger[i] = (*this)[i];
        buf_.swap(bigger);
        head_ = 0;
    }
    std::vector<T> buf_;
    std::size_t head_ = 0, size_ = 0;
};

}  // namespace

struct DiskSpool::Impl {
    // A record read (or dropped) and not yet confirmed. Dropped runs are merged into one entry.
    struct Entry {
        std::uint64_t seq;
        Segment* seg;
        std::uint64_t off;
        std::uint64_t bytes;
        bool dropped;
    };
    // Where the next record is: the reader's peek, committed by advance().
    struct Next {
        Segment* seg;
        std::uint64_t off;
        std::uint64_t frame;
        spool::FrameHeader header;
    };

    SpoolOptions opt;
    bool opened = false;  // recovery finished: the destructor may record the position
    std::uint64_t page = 4096;
    int dir_fd = -1;
    int pos_fd = -1;

    // Writer side.
    mutable std::mutex mu;
    std::deque<std::shared_ptr<Segment>> segments;  // oldest first
    Segment* active = nullptr;  // the segment appends go to (segments.back()), if any
    std::uint64_t write_off = 0;
    std::uint64_t next_seq = 0;
    std::uint64_t next_size = 0;  // of the next ordinary segment
    std::shared_ptr<Segment> spare;
    Clock::time_point spare_since{};
    bool recycling = false;  // the consumer is renaming a segment into the spare
    bool dir_dirty = false;  // a segment was created since the directory was last fsynced
    // The oldest unconfirmed record, as the consumer last saw it: syncs start there, since
    // what is confirmed need not survive anything.
    Segment* unconfirmed_seg = nullptr;
    std::uint64_t unconfirmed_off = 0;
    std::atomic<std::uint64_t> appended_records{0}, appended_bytes{0}, next_seq_hint{0};

    // Consumer side.
    std::mutex read_mu;
    Segment* cur = nullptr;
    std::uint64_t cur_off = 0;
    std::size_t cur_skip = 0;
    std::uint64_t cursor_seq = 0;  // one past the last record the cursor passed
    Ring<Entry> inflight;
    std::size_t replay = 0;    // entries before this index have been handed out (or dropped)
    std::uint64_t handed = 0;  // records handed out and not confirmed
    std::uint64_t inflight_records = 0;  // records (not dropped) in `inflight`
    spool::DecodedMessage scratch;
    std::atomic<std::uint64_t> passed{0}, pending_replay{0}, confirmed_records{0},
        confirmed_bytes{0}, confirmed_seq{0}, skipped_on_read{0};

    // Sync side.
    mutable std::mutex sync_mu;
    std::atomic<Clock::rep> next_due{0};
    spool::Position written{};  // last position written
    bool position_written = false;
    std::string last_error;

    ~Impl();
    void recover(SpoolRecovery& stats);
    std::shared_ptr<Segment> recover_segment(const std::filesystem::path& path,
                                             std::uint64_t name_seq, std::uint64_t confirmed,
                                             bool newest, SpoolRecovery& stats,
                                             std::uint64_t& max_seq, std::uint64_t& first_unconf);
    Append append(const sluice_message& m, std::uint64_t limit, std::string* error);
    bool new_segment(std::uint64_t frame, std::string* error);
    std::size_t read(MessageArena& out, std::size_t max_messages);
    bool peek(Next& n);
    void advance(const Next& n);
    void confirm(std::size_t n);
    void rewind();
    std::size_t drop_oldest_unread(std::uint64_t target);
    void settle();
    void release_segments();
    void sync();
    std::uint64_t bytes() const {
        // Confirmed first: what was confirmed had been appended, so the difference is >= 0.
        const std::uint64_t c = confirmed_bytes.load();
        return appended_bytes.load() - c;
    }
};

// ---------------------------------------------------------------------------------------------
// Opening and recovery

namespace {

void make_dirs(const std::filesystem::path& dir) {
    std::filesystem::path partial;
    for (const auto& part : dir) {
        partial /= part;
        if (::mkdir(partial.c_str(), 0700) == 0) continue;
        const int err = errno;
        if (err != EEXIST) fail(partial, "cannot create directory", err);
        struct stat st {};
        if (::stat(partial.c_str(), &st) != 0) fail(partial, "stat", errno);
        if (!S_ISDIR(st.st_mode)) fail(partial, "cannot create directory", ENOTDIR);
    }
}

}  // namespace

std::unique_ptr<DiskSpool> DiskSpool::open(const SpoolOptions& options, SpoolRecovery* recovery) {
    if (options.dir.empty()) throw std::invalid_argument("spool: no directory given");
    auto impl = std::make_unique<Impl>();
    impl->opt = options;
    const long page = ::sysconf(_SC_PAGESIZE);
    impl->page = page > 0 ? static_cast<std::uint64_t>(page) : 4096;
    impl->opt.segment_bytes =
        round_up(std::max<std::uint64_t>(options.segment_bytes, 4096), impl->page);
    impl->opt.min_segment_bytes =
        std::min(round_up(std::max<std::uint64_t>(options.min_segment_bytes, 4096), impl->page),
                 impl->opt.segment_bytes);
    if (impl->opt.fsync_interval.count() <= 0) impl->opt.fsync_interval = std::chrono::seconds(1);
    impl->next_size = impl->opt.min_segment_bytes;

    const std::filesystem::path& dir = impl->opt.dir;
    make_dirs(dir);
    impl->dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (impl->dir_fd < 0) fail(dir, "cannot open directory", errno);
    // Two spools on one directory would overwrite each other's segments (a route replaced on
    // reload while the old one still drains, two processes sharing a state_dir): refuse.
    if (::flock(impl->dir_fd, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        if (err == EWOULDBLOCK) {
            throw std::runtime_error("spool " + dir.string() +
                                     " is already open (by this or another process)");
        }
        fail(dir, "flock", err);
    }
    SpoolRecovery stats;
    impl->recover(stats);
    if (recovery) *recovery = stats;
    impl->next_due.store((Clock::now() + impl->opt.fsync_interval).time_since_epoch().count());
    impl->opened = true;
    return std::unique_ptr<DiskSpool>(new DiskSpool(std::move(impl)));
}

void DiskSpool::Impl::recover(SpoolRecovery& stats) {
    const std::filesystem::path pos_path = opt.dir / kPositionFile;
    pos_fd = ::open(pos_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (pos_fd < 0) fail(pos_path, "cannot open", errno);
    unsigned char slots[spool::kPositionSlotStride + spool::kPositionSlotSize] = {};
    const ssize_t got = ::pread(pos_fd, slots, sizeof slots, 0);
    if (got < 0) fail(pos_path, "read", errno);
    spool::Position position{};
    bool have_position = false;
    for (std::size_t off : {std::size_t{0}, spool::kPositionSlotStride}) {
        spool::Position p;
        if (static_cast<std::size_t>(got) >= off + spool::kPositionSlotSize &&
            spool::read_position_slot(slots + off, p) &&
            (!have_position || p.generation > position.generation)) {
            position = p;
            have_position = true;
        }
    }
    // Without a valid slot nothing is known to be confirmed: everything left is read again.
    const std::uint64_t confirmed = have_position ? position.confirmed_seq : 0;
    written = position;
    position_written = have_position;

    std::vector<std::pair<std::uint64_t, std::filesystem::path>> files;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(opt.dir, ec), end; !ec && it != end;
         it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name == kSpareFile) {
            // A spare's stale sequence numbers are only known to be old while this process
            // runs; a new process starts without one.
            ::unlink(it->path().c_str());
            continue;
        }
        const std::uint64_t seq = parse_segment_name(name);
        if (seq != kNone) files.emplace_back(seq, it->path());
    }
    if (ec) throw std::runtime_error("spool " + opt.dir.string() + ": list: " + ec.message());
    std::sort(files.begin(), files.end());

    std::uint64_t max_seq = kNone;  // highest sequence number seen in a valid frame
    std::uint64_t first_unconf = kNone;
    for (std::size_t i = 0; i < files.size(); ++i) {
        auto seg = recover_segment(files[i].second, files[i].first, confirmed,
                                   i + 1 == files.size(), stats, max_seq, first_unconf);
        if (seg) segments.push_back(std::move(seg));
    }
    next_seq = std::max(confirmed, have_position ? position.next_seq : 0);
    if (max_seq != kNone) next_seq = std::max(next_seq, max_seq + 1);
    if (!files.empty()) next_seq = std::max(next_seq, files.back().first);
    next_seq_hint.store(next_seq);

    for (std::size_t i = 0; i < segments.size(); ++i) {
        segments[i]->sealed.store(true);
        if (i + 1 < segments.size()) segments[i]->next.store(segments[i + 1].get());
    }
    if (!segments.empty()) {
        cur = segments.front().get();
        cur_off = cur->header_size;
    }
    cursor_seq = first_unconf != kNone ? first_unconf : next_seq;
    confirmed_seq.store(cursor_seq);
    appended_records.store(stats.records);
    appended_bytes.store(stats.bytes);
}

std::shared_ptr<Segment> DiskSpool::Impl::recover_segment(
    const std::filesystem::path& path, std::uint64_t name_seq, std::uint64_t confirmed, bool newest,
    SpoolRecovery& stats, std::uint64_t& max_seq, std::uint64_t& first_unconf) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(path, "cannot open", errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        fail(path, "stat", err);
    }
    if (st.st_size <= 0) {
        ::close(fd);
        ::unlink(path.c_str());
        return nullptr;
    }
    auto seg = std::make_shared<Segment>();
    seg->path = path;
    seg->capacity = static_cast<std::uint64_t>(st.st_size);
    // The process before may have died with these pages not yet on disk: syncing them once
    // now keeps the promise of the fsync mode across the restart.
    if (opt.fsync != FsyncMode::never && ::fdatasync(fd) != 0) {
        const int err = errno;
        ::close(fd);
        fail(path, "fdatasync", err);
    }
    void* m = ::mmap(nullptr, seg->capacity, PROT_READ, MAP_SHARED, fd, 0);
    const int map_err = errno;
    ::close(fd);
    if (m == MAP_FAILED) fail(path, "mmap", map_err);
    seg->base = static_cast<unsigned char*>(m);
    const unsigned char* p = seg->base;
    const std::uint64_t size = seg->capacity;

    spool::SegmentHeader h;
    bool reused = false;
    if (spool::read_segment_header(p, size, h)) {
        if (h.version == 0 || h.version > spool::kFormatVersion) {
            throw std::runtime_error("spool segment " + path.string() + " has format version " +
                                     std::to_string(h.version) +
                                     "; this sluice reads versions 1 to " +
                                     std::to_string(spool::kFormatVersion) +
                                     ": drain it with the sluice that wrote it, or move it away");
        }
        seg->version = h.version;
        seg->header_size = h.header_size;
        // The name is given by a rename after the header is written; if power was lost
        // between the two, the header may still carry the older number of a reused file.
        seg->first_seq = std::max(name_seq, h.first_seq);
        reused = (h.flags & spool::kSegmentReused) != 0;
    } else {
        // All zeroes: the process died while creating it.
        if (all_zero(p, size)) {
            ::unlink(path.c_str());
            return nullptr;
        }
        seg->first_seq = name_seq;
        stats.corrupt_bytes += std::min<std::uint64_t>(size, spool::kSegmentHeaderSize);
    }
    if (stats.oldest_format == 0 || seg->version < stats.oldest_format) {
        stats.oldest_format = seg->version;
    }

    // Format 1 is the only one so far; a later version adds its reader here.
    std::uint64_t min_next = seg->first_seq;  // a valid frame continues the sequence upwards
    spool::DecodedMessage decoded;
    auto valid_at = [&](std::uint64_t q, spool::FrameHeader& fh) {
        if (size - q < kFrameHeaderSize || !spool::read_frame_header(p + q, fh)) return false;
        if (fh.seq < min_next || spool::frame_size(fh.body_len) > size - q) return false;
        const unsigned char* body = p + q + kFrameHeaderSize;
        return crc32c(body, fh.body_len) == fh.body_crc &&
               spool::decode(body, fh.body_len, decoded);
    };
    auto find_next = [&](std::uint64_t from, spool::FrameHeader& fh) {
        for (std::uint64_t q = from; q < size && size - q >= kFrameHeaderSize; q += 8) {
            if (spool::has_frame_magic(p + q) && valid_at(q, fh)) return q;
        }
        return kNone;
    };
    auto skip = [&](std::uint64_t from, std::uint64_t to) {
        if (from == to) return;
        if (!seg->skips.empty() && seg->skips.back().to == from) {
            seg->skips.back().to = to;
        } else {
            seg->skips.push_back({from, to});
        }
    };
    // How much of an invalid region at `off` with nothing valid after it belongs to it: a frame
    // header that checks out says its length; otherwise up to the first zero word or the next
    // frame header of any age (a reused file holds older frames after the newest record).
    auto garbage_len = [&](std::uint64_t off) {
        spool::FrameHeader fh;
        if (size - off >= kFrameHeaderSize && spool::read_frame_header(p + off, fh) &&
            fh.seq >= seg->first_seq) {
            return std::min(spool::frame_size(fh.body_len), size - off);
        }
        std::uint64_t q = off + 8;
        for (; q < size && size - q >= 8; q += 8) {
            if (all_zero(p + q, 8)) return q - off;
            if (size - q >= kFrameHeaderSize && spool::read_frame_header(p + q, fh)) {
                return q - off;
            }
        }
        return size - off;
    };

    std::uint64_t off = seg->header_size;
    std::uint64_t records = 0, bytes = 0;
    while (off < size) {
        spool::FrameHeader fh;
        if (valid_at(off, fh)) {
            const std::uint64_t frame = spool::frame_size(fh.body_len);
            if (fh.seq < confirmed) {
                skip(off, off + frame);
            } else {
                ++records;
                bytes += frame;
                if (first_unconf == kNone) first_unconf = fh.seq;
            }
            max_seq = max_seq == kNone ? fh.seq : std::max(max_seq, fh.seq);
            min_next = fh.seq + 1;
            off += frame;
            seg->published.store(off);
            continue;
        }
        spool::FrameHeader next_fh;
        const std::uint64_t q = find_next(off + 8, next_fh);
        if (q == kNone) {
            // The data ends at zeroes; in a reused file, at anything but a frame header of
            // this incarnation (the header is written first, so a torn append leaves one).
            bool end = all_zero(p + off, std::min<std::uint64_t>(size - off, kFrameHeaderSize));
            if (reused) {
                spool::FrameHeader stale;
                end = size - off < 4 || !spool::has_frame_magic(p + off) ||
                      (size - off >= kFrameHeaderSize && spool::read_frame_header(p + off, stale) &&
                       stale.seq < seg->first_seq);
            }
            if (!end) {
                const std::uint64_t n = garbage_len(off);
                if (newest) {
                    stats.torn_bytes += n;
                } else {
                    ++stats.corrupt_records;
                    stats.corrupt_bytes += n;
                }
            }
            break;
        }
        // A damaged region with valid records after it: the sequence numbers say how many
        // records it held (zeroes in the middle: pages lost with power, never synced).
        stats.corrupt_records += std::max<std::uint64_t>(1, next_fh.seq - min_next);
        stats.corrupt_bytes += q - off;
        skip(off, q);
        off = q;
    }
    if (records == 0) {
        ::unlink(path.c_str());
        return nullptr;
    }
    if (seg->published.load() < seg->header_size) seg->published.store(seg->header_size);
    stats.records += records;
    stats.bytes += bytes;
    return seg;
}

DiskSpool::DiskSpool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DiskSpool::~DiskSpool() = default;

DiskSpool::Impl::~Impl() {
    try {
        if (opened) sync();
    } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor reports nothing
    }
    if (spare) ::unlink(spare->path.c_str());
    if (pos_fd >= 0) ::close(pos_fd);
    if (dir_fd >= 0) ::close(dir_fd);  // releases the flock
}

// ---------------------------------------------------------------------------------------------
// Writer

DiskSpool::Append DiskSpool::append(const sluice_message& m, std::uint64_t limit_bytes,
                                    std::string* error) {
    try {
        return impl_->append(m, limit_bytes, error);
    } catch (const std::exception& e) {
        set_error(error, std::string("spool ") + impl_->opt.dir.string() + ": " + e.what());
        return Append::failed;
    }
}

DiskSpool::Append DiskSpool::Impl::append(const sluice_message& m, std::uint64_t limit,
                                          std::string* error) {
    const std::size_t body = spool::encoded_size(m);
    if (body == 0) {
        set_error(error, "spool " + opt.dir.string() + ": message too large (a field of 4 GiB)");
        return Append::failed;
    }
    // Small bodies are checksummed where they are written, in one pass over contiguous bytes
    // (twice as fast as over the message's pieces). Larger ones are checksummed from the
    // pieces before the lock, so that other appenders never wait for more than a copy.
    const bool crc_in_place = body <= kCrcInPlaceMax;
    const std::uint32_t crc = crc_in_place ? 0 : spool::body_crc(m);
    const std::uint64_t frame = spool::frame_size(body);
    std::shared_ptr<Segment> hold;  // FsyncMode::always: keeps the mapping until it is synced
    std::filesystem::path hold_path;
    std::uint64_t from = 0, to = 0;
    {
        std::lock_guard lock(mu);
        const std::uint64_t confirmed = confirmed_bytes.load(std::memory_order_acquire);
        const std::uint64_t appended = appended_bytes.load(std::memory_order_relaxed);
        if (appended - confirmed + frame > limit) return Append::full;
        if (!active || frame > active->capacity - write_off) {
            if (!new_segment(frame, error)) return Append::failed;
        }
        // Header first: if the process dies mid-copy, recovery finds a header whose body does
        // not match, a torn tail, rather than zeroes it would take for the normal end.
        unsigned char* p = active->base + write_off;
        spool::begin_frame_header(p, static_cast<std::uint32_t>(body), next_seq);
        spool::encode(m, p + kFrameHeaderSize);
        std::memset(p + kFrameHeaderSize + body, 0, frame - kFrameHeaderSize - body);
        spool::finish_frame_header(p, crc_in_place ? crc32c(p + kFrameHeaderSize, body) : crc);
        ++next_seq;
        from = write_off;
        write_off += frame;
        to = write_off;
        // The lines ahead were last touched a whole segment ago and have left the cache; a
        // store to one stalls until it is fetched. Asking for them a little ahead turns those
        // stalls into prefetches (a quarter of the cost of an append, measured).
        const std::uint64_t ahead_end = std::min(to + kPrefetchAhead + frame, active->capacity);
        for (std::uint64_t at = to + kPrefetchAhead; at < ahead_end; at += 64) {
            __builtin_prefetch(active->base + at, 1, 3);
        }
        active->published.store(write_off, std::memory_order_release);
        // Single writer (under mu): plain stores, no read-modify-write.
        appended_records.store(appended_records.load(std::memory_order_relaxed) + 1,
                               std::memory_order_relaxed);
        appended_bytes.store(appended + frame, std::memory_order_relaxed);
        next_seq_hint.store(next_seq, std::memory_order_relaxed);
        if (opt.fsync == FsyncMode::always) {
            hold = segments.back();
            hold_path = hold->path;
        }
    }
    if (hold) {
        const std::uint64_t start = from / page * page;
        if (::msync(hold->base + start, to - start, MS_SYNC) != 0) {
            set_error(error, "spool segment " + describe(hold_path, "msync", errno));
            return Append::failed;
        }
    }
    return Append::ok;
}

bool DiskSpool::Impl::new_segment(std::uint64_t frame, std::string* error) {
    const Clock::time_point now = Clock::now();
    const std::uint64_t need = spool::kSegmentHeaderSize + frame;
    const bool oversize = need > opt.segment_bytes;
    if (active && !active->oversize && !oversize) {
        const auto took = now - active->created;
        if (took < kGrowWithin) {
            next_size = std::min(next_size * 2, opt.segment_bytes);
        } else if (took > kShrinkAfter) {
            next_size = std::max(next_size / 2 / page * page, opt.min_segment_bytes);
        }
    }
    const std::uint64_t size = std::max(round_up(need, page), oversize ? 0 : next_size);
    const std::uint64_t first = next_seq;
    const std::filesystem::path path = opt.dir / segment_name(first);

    std::shared_ptr<Segment> seg;
    if (spare && spare->capacity == size) {
        // Header first, then the name: until the rename the file is only a spare.
        spool::write_segment_header(spare->base, first, spool::kSegmentReused);
        if (opt.fsync == FsyncMode::always) ::msync(spare->base, page, MS_SYNC);
        if (::rename(spare->path.c_str(), path.c_str()) == 0) {
            seg = std::move(spare);
            seg->path = path;
        }
    }
    if (spare) {  // the wrong size now, or its rename failed
        ::unlink(spare->path.c_str());
        spare.reset();
    }
    if (!seg) {
        const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            set_error(error, "spool segment " + describe(path, "cannot create", errno));
            return false;
        }
        // posix_fallocate returns the error instead of setting errno.
        const int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
        void* m =
            rc == 0 ? ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
        const int map_err = errno;
        ::close(fd);
        if (m == MAP_FAILED) {
            ::unlink(path.c_str());
            const std::string what = rc != 0 ? "cannot allocate " + std::to_string(size) + " bytes"
                                             : std::string("mmap");
            set_error(error, "spool segment " + describe(path, what.c_str(), rc ? rc : map_err));
            return false;
        }
        seg = std::make_shared<Segment>();
        seg->path = path;
        seg->base = static_cast<unsigned char*>(m);
        seg->capacity = size;
        seg->writable = true;
        spool::write_segment_header(seg->base, first, 0);
        if (opt.fsync == FsyncMode::always) {
            if (::msync(seg->base, page, MS_SYNC) != 0 || ::fsync(dir_fd) != 0) {
                set_error(error, "spool segment " + describe(path, "fsync", errno));
                ::unlink(path.c_str());
                return false;
            }
        }
    } else if (opt.fsync == FsyncMode::always && ::fsync(dir_fd) != 0) {
        set_error(error, "spool " + describe(opt.dir, "fsync", errno));
        ::unlink(path.c_str());
        return false;
    }
    dir_dirty = true;
    seg->first_seq = first;
    seg->header_size = spool::kSegmentHeaderSize;
    seg->version = spool::kFormatVersion;
    seg->oversize = oversize;
    seg->created = now;
    seg->skips.clear();
    seg->published.store(spool::kSegmentHeaderSize, std::memory_order_relaxed);
    seg->sealed.store(false, std::memory_order_relaxed);
    seg->next.store(nullptr, std::memory_order_relaxed);
    seg->synced = 0;
    seg->header_synced = opt.fsync == FsyncMode::always;
    ++seg->incarnation;
    if (!segments.empty()) {
        // `next` before `sealed`: a reader that sees the segment sealed finds its successor.
        Segment* last = segments.back().get();
        last->next.store(seg.get(), std::memory_order_release);
        last->sealed.store(true, std::memory_order_release);
    }
    segments.push_back(seg);
    active = seg.get();
    write_off = spool::kSegmentHeaderSize;
    return true;
}

// ---------------------------------------------------------------------------------------------
// Consumer

bool DiskSpool::Impl::peek(Next& n) {
    for (;;) {
        if (!cur) {
            std::lock_guard lock(mu);
            if (segments.empty()) return false;
            cur = segments.front().get();
            cur_off = cur->header_size;
            cur_skip = 0;
        }
        while (cur_skip < cur->skips.size() && cur->skips[cur_skip].from <= cur_off) {
            cur_off = std::max(cur_off, cur->skips[cur_skip].to);
            ++cur_skip;
        }
        // Sealed before published: once sealed, the published position is final.
        const bool sealed = cur->sealed.load(std::memory_order_acquire);
        const std::uint64_t end = cur->published.load(std::memory_order_acquire);
        if (cur_off < end) {
            n.seg = cur;
            n.off = cur_off;
            n.header = spool::parse_frame_header(cur->base + cur_off);
            n.frame = spool::frame_size(n.header.body_len);
            if (end - cur_off >= kFrameHeaderSize && n.frame <= end - cur_off) return true;
            // Unreachable unless the file changed under us: give the rest of it up.
            skipped_on_read.fetch_add(1);
            cur_off = end;
            continue;
        }
        if (!sealed) return false;
        Segment* next = cur->next.load(std::memory_order_acquire);
        if (!next) return false;
        cur = next;
        cur_off = next->header_size;
        cur_skip = 0;
    }
}

void DiskSpool::Impl::advance(const Next& n) {
    cur_off = n.off + n.frame;
    cursor_seq = n.header.seq + 1;
    passed.store(passed.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

std::size_t DiskSpool::Impl::read(MessageArena& out, std::size_t max_messages) {
    std::lock_guard lock(read_mu);
    std::size_t n = 0;
    std::uint64_t lost_bytes = 0, lost = 0;
    // Records handed out again after rewind() come first, from where they were read.
    while (n < max_messages && replay < inflight.size()) {
        Entry& e = inflight[replay++];
        if (e.dropped) continue;
        const unsigned char* frame = e.seg->base + e.off;
        const auto h = spool::parse_frame_header(frame);
        if (!spool::decode(frame + kFrameHeaderSize, h.body_len, scratch)) {
            // Decoded the first time; only a change to the file can get here.
            e.dropped = true;
            --inflight_records;
            lost_bytes += e.bytes;
            ++lost;
            pending_replay.fetch_sub(1);
            skipped_on_read.fetch_add(1);
            continue;
        }
        out.append(scratch.message);
        pending_replay.fetch_sub(1);
        ++handed;
        ++n;
    }
    Next next;
    while (n < max_messages && peek(next)) {
        if (!spool::decode(next.seg->base + next.off + kFrameHeaderSize, next.header.body_len,
                           scratch)) {
            advance(next);
            lost_bytes += next.frame;
            ++lost;
            skipped_on_read.fetch_add(1);
            inflight.push_back({next.header.seq, next.seg, next.off, next.frame, true});
            replay = inflight.size();
            continue;
        }
        out.append(scratch.message);  // may throw: the cursor has not moved yet
        advance(next);
        // The replays above are done when this loop runs: everything in `inflight` is out.
        inflight.push_back({next.header.seq, next.seg, next.off, next.frame, false});
        replay = inflight.size();
        ++inflight_records;
        ++handed;
        ++n;
    }
    if (lost > 0) {
        confirmed_bytes.store(confirmed_bytes.load() + lost_bytes);
        confirmed_records.store(confirmed_records.load() + lost);
        settle();
    }
    return n;
}

void DiskSpool::Impl::confirm(std::size_t n) {
    std::lock_guard lock(read_mu);
    std::uint64_t todo = std::min<std::uint64_t>(n, handed);
    std::uint64_t bytes_done = 0, records_done = 0;
    std::size_t popped = 0;
    while (!inflight.empty()) {
        const Entry& e = inflight.front();
        if (!e.dropped) {
            if (todo == 0) break;
            bytes_done += e.bytes;
            ++records_done;
            --todo;
        }
        inflight.pop_front();
        ++popped;
    }
    replay = replay > popped ? replay - popped : 0;
    handed -= records_done;
    inflight_records -= records_done;
    confirmed_bytes.store(confirmed_bytes.load(std::memory_order_relaxed) + bytes_done,
                          std::memory_order_release);
    confirmed_records.store(confirmed_records.load(std::memory_order_relaxed) + records_done);
    settle();
}

void DiskSpool::Impl::rewind() {
    std::lock_guard lock(read_mu);
    replay = 0;
    handed = 0;
    pending_replay.store(inflight_records);
}

std::size_t DiskSpool::Impl::drop_oldest_unread(std::uint64_t target) {
    std::lock_guard lock(read_mu);
    std::size_t dropped = 0;
    Next next;
    while (bytes() > target && peek(next)) {
        advance(next);
        const bool caught_up = replay == inflight.size();
        if (!inflight.empty() && inflight.back().dropped) {
            inflight.back().bytes += next.frame;
        } else {
            inflight.push_back({next.header.seq, next.seg, next.off, next.frame, true});
        }
        if (caught_up) replay = inflight.size();
        confirmed_bytes.store(confirmed_bytes.load(std::memory_order_relaxed) + next.frame,
                              std::memory_order_release);
        confirmed_records.store(confirmed_records.load() + 1);
        ++dropped;
    }
    settle();
    return dropped;
}

// Under read_mu: drops the finished entries at the front, publishes the position and frees
// the segments nothing needs any more.
void DiskSpool::Impl::settle() {
    std::size_t popped = 0;
    while (!inflight.empty() && inflight.front().dropped) {
        inflight.pop_front();
        ++popped;
    }
    replay = replay > popped ? replay - popped : 0;
    confirmed_seq.store(inflight.empty() ? cursor_seq : inflight.front().seq);
    release_segments();
}

void DiskSpool::Impl::release_segments() {
    Segment* needed = inflight.empty() ? cur : inflight.front().seg;
    if (!needed) return;
    std::vector<std::shared_ptr<Segment>> gone;
    std::shared_ptr<Segment> keep;  // becomes the spare
    {
        std::lock_guard lock(mu);
        unconfirmed_seg = needed;
        unconfirmed_off = inflight.empty() ? cur_off : inflight.front().off;
        while (!segments.empty() && segments.front().get() != needed &&
               segments.front().get() != active) {
            auto& s = segments.front();
            // Keep one ordinary segment of the size the writer wants next, so that a busy
            // spool cycles through files that are allocated, mapped and in the page cache.
            if (!spare && !recycling && !keep && s->writable && s->capacity == next_size) {
                keep = std::move(s);
                recycling = true;
            } else {
                gone.push_back(std::move(s));
            }
            segments.pop_front();
        }
    }
    // File operations outside the writer's lock.
    for (const auto& s : gone) ::unlink(s->path.c_str());
    if (!keep) return;
    const std::filesystem::path spare_path = opt.dir / kSpareFile;
    const bool renamed = ::rename(keep->path.c_str(), spare_path.c_str()) == 0;
    if (!renamed) ::unlink(keep->path.c_str());
    std::lock_guard lock(mu);
    recycling = false;
    if (renamed && !spare && keep->capacity == next_size) {
        keep->path = spare_path;
        spare = std::move(keep);
        spare_since = Clock::now();
    } else if (renamed) {
        ::unlink(spare_path.c_str());
    }
}

// ---------------------------------------------------------------------------------------------
// Sync

void DiskSpool::Impl::sync() {
    std::lock_guard sync_lock(sync_mu);
    std::string error;
    const Clock::time_point now = Clock::now();
    std::shared_ptr<Segment> idle_spare;
    if (opt.fsync == FsyncMode::interval) {
        struct Item {
            std::shared_ptr<Segment> seg;
            std::filesystem::path path;
            std::uint64_t from, to, incarnation;
            bool header;
        };
        std::vector<Item> items;
        bool dir = false;
        {
            std::lock_guard lock(mu);
            for (const auto& s : segments) {
                const std::uint64_t end = s->published.load(std::memory_order_relaxed);
                std::uint64_t from = s->synced;
                if (s.get() == unconfirmed_seg) from = std::max(from, unconfirmed_off);
                if (s->writable && (from < end || !s->header_synced)) {
                    items.push_back({s, s->path, from, end, s->incarnation, !s->header_synced});
                }
            }
            dir = dir_dirty;
            dir_dirty = false;
        }
        for (auto& item : items) {
            const std::uint64_t start = item.from / page * page;
            const bool ok = (!item.header || ::msync(item.seg->base, page, MS_SYNC) == 0) &&
                            (start >= item.to ||
                             ::msync(item.seg->base + start, item.to - start, MS_SYNC) == 0);
            if (!ok) {
                error = "spool segment " + describe(item.path, "msync", errno);
                item.to = 0;
                item.header = false;
            }
        }
        if (dir && ::fsync(dir_fd) != 0) error = "spool " + describe(opt.dir, "fsync", errno);
        std::lock_guard lock(mu);
        if (dir && !error.empty()) dir_dirty = true;
        for (const auto& item : items) {
            if (item.seg->incarnation == item.incarnation) {
                item.seg->synced = std::max(item.seg->synced, item.to);
                if (item.header) item.seg->header_synced = true;
            }
        }
    } else {
        std::lock_guard lock(mu);
        dir_dirty = false;
    }
    {
        std::lock_guard lock(mu);
        if (spare && now - spare_since > kSpareIdle) idle_spare = std::move(spare);
    }
    if (idle_spare) ::unlink(idle_spare->path.c_str());

    spool::Position p;
    p.confirmed_seq = confirmed_seq.load();
    p.next_seq = next_seq_hint.load();
    if (!position_written || p.confirmed_seq != written.confirmed_seq ||
        p.next_seq != written.next_seq) {
        p.generation = written.generation + 1;
        unsigned char slot[spool::kPositionSlotSize];
        spool::write_position_slot(slot, p);
        const off_t at = static_cast<off_t>((p.generation % 2) * spool::kPositionSlotStride);
        const std::filesystem::path pos_path = opt.dir / kPositionFile;
        if (::pwrite(pos_fd, slot, sizeof slot, at) != static_cast<ssize_t>(sizeof slot)) {
            error = "spool " + describe(pos_path, "write", errno);
        } else if (opt.fsync != FsyncMode::never && ::fdatasync(pos_fd) != 0) {
            error = "spool " + describe(pos_path, "fdatasync", errno);
        } else {
            written = p;
            position_written = true;
        }
    }
    last_error = std::move(error);
    next_due.store((now + opt.fsync_interval).time_since_epoch().count(),
                   std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------------------------
// Public forwarding

std::size_t DiskSpool::read(MessageArena& out, std::size_t max_messages) {
    return impl_->read(out, max_messages);
}
void DiskSpool::confirm(std::size_t n) { impl_->confirm(n); }
void DiskSpool::rewind() { impl_->rewind(); }
std::size_t DiskSpool::drop_oldest_unread(std::uint64_t target_bytes) {
    return impl_->drop_oldest_unread(target_bytes);
}
std::uint64_t DiskSpool::bytes() const { return impl_->bytes(); }
std::uint64_t DiskSpool::messages() const {
    const std::uint64_t c = impl_->confirmed_records.load();
    return impl_->appended_records.load() - c;
}
std::uint64_t DiskSpool::unread() const {
    const std::uint64_t passed = impl_->passed.load();
    return impl_->appended_records.load() - passed + impl_->pending_replay.load();
}
void DiskSpool::sync() { impl_->sync(); }
void DiskSpool::sync_if_due(std::chrono::steady_clock::time_point now) {
    if (now.time_since_epoch().count() < impl_->next_due.load(std::memory_order_relaxed)) return;
    impl_->sync();
}
std::string DiskSpool::last_sync_error() const {
    std::lock_guard lock(impl_->sync_mu);
    return impl_->last_error;
}
std::uint64_t DiskSpool::skipped_on_read() const { return impl_->skipped_on_read.load(); }
const SpoolOptions& DiskSpool::options() const { return impl_->opt; }

}  // namespace sluice

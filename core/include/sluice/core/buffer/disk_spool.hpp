// A route's durable buffer: messages copied into memory-mapped segment files, read back in
// order, released once the route confirms them. Format: spool_record.hpp.
//
// Why it is shaped like this:
// - Durability without a syscall per message. Segments are preallocated (posix_fallocate) and
//   mapped MAP_SHARED; append is a copy into the mapping under a short mutex. The pages belong
//   to the kernel's page cache from the moment they are written, so a record whose append
//   returned survives SIGKILL of the process; surviving power loss takes an fsync (FsyncMode).
//   Preallocating makes a full disk fail at segment creation with ENOSPC (or EFBIG), where it
//   can be reported, instead of as SIGBUS on a store into a hole of the mapping.
// - Cost. Bodies up to 4 KiB are checksummed where they were written, under the lock: one
//   pass over contiguous bytes is twice as fast as over the message's pieces. Larger bodies
//   are checksummed from the pieces before the lock, so an appender never holds it for more
//   than ~4 KiB of work. The writer prefetches the lines ahead of it: they left the cache a
//   segment ago, and stores into them stalled the unlock. The consumer reads straight from
//   the mapping up to each segment's published append position; records this process wrote
//   are not checksummed again on the way out (the page cache is not where bytes rot);
//   recovery checks everything. tools/bench/spool_bench.cpp measures it against the arena.
// - Recovery at open() reads every segment: frames whose checksum fails are skipped and
//   counted, and the reader resynchronises on the next frame whose header and body checksums
//   verify and whose sequence number continues upwards, so one bad byte costs one record.
//   An invalid record with nothing valid after it in the newest segment is a torn tail (the
//   process died mid-append: the frame header is written first, so that shows). Zeroes are
//   the normal end of a preallocated segment.
// - The confirmed position (every sequence number below it is done) lives in a small file with
//   two checksummed slots written alternately, so a torn write leaves the older value, which
//   replays a little more and loses nothing. It is written from sync()/sync_if_due() and at
//   close, not per confirm: a crash may replay up to one interval of confirmed records.
// - FsyncMode::interval syncs only what is not yet confirmed (what is confirmed need not
//   survive anything), so its disk writes follow the backlog, not the throughput. Segments
//   found at open() are fdatasynced once unless FsyncMode::never: the process before may have
//   died with them in the page cache.
// - Disk use: a fully confirmed segment is deleted, or kept as the one spare that the next
//   segment reuses when it is busy (a file already allocated, mapped and in the page cache:
//   no page faults, no fallocate). Stale frames in a reused file are told apart by their
//   sequence numbers, below the segment's first. New segments start at min_segment_bytes and
//   double, up to segment_bytes, while each fills within a second, so that 10,000 quiet
//   routes do not each reserve segment_bytes of disk.
// - No thread per spool: FsyncMode::interval relies on the host calling sync_if_due() from
//   one timer thread for all spools.
// - Locks: `mu` (writer: active segment, segment list) is held for the copy of one record,
//   and for file creation when a segment is full; `read_mu` (consumer state) is held by
//   read/confirm/rewind/drop; `sync_mu` serialises syncs. Order: read_mu or sync_mu, then mu.
//   Syscalls happen under mu only when a segment is created (and, with FsyncMode::always,
//   its header synced).
// - Limits: a segment's pages are read through the mapping, so a media error while reading
//   one (EIO) would raise SIGBUS; copy-on-write filesystems (btrfs) may still need space when
//   a preallocated block is first written.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "sluice/abi.h"
#include "sluice/core/message_arena.hpp"

namespace sluice {

enum class FsyncMode { never, interval, always };

struct SpoolOptions {
    /// The route's spool directory; created (0700) if missing.
    std::filesystem::path dir;
    /// Soft limit on unconfirmed encoded bytes (append's caller passes the hard limit).
    std::uint64_t max_bytes = 256ull << 20;
    /// A record larger than this gets a segment of its own.
    std::uint64_t segment_bytes = 16ull << 20;
    FsyncMode fsync = FsyncMode::never;
    std::chrono::milliseconds fsync_interval{1000};
    /// The size of the first segment; each next one doubles (up to segment_bytes) while
    /// segments fill within a second. Equal to segment_bytes: every segment has that size.
    std::uint64_t min_segment_bytes = 1ull << 20;
};

struct SpoolRecovery {          // what open() found on disk
    std::uint64_t records = 0;  // unconfirmed records found (they will be read again)
    std::uint64_t bytes = 0;
    std::uint64_t torn_bytes = 0;       // an incomplete record at the end of the newest segment
    std::uint64_t corrupt_records = 0;  // records whose checksum failed: skipped, never returned
    std::uint64_t corrupt_bytes = 0;    // bytes skipped while resynchronising after them
    std::uint32_t oldest_format = 0;    // oldest segment format version found (0: none)
};

class DiskSpool {
public:
    enum class Append { ok, full, failed };

    /// Opens or creates the spool in options.dir and recovers it. Throws std::runtime_error
    /// whose message names the path and the cause (permission, not a directory, I/O error, a
    /// segment written by a newer format, the spool already open).
    static std::unique_ptr<DiskSpool> open(const SpoolOptions& options, SpoolRecovery* recovery);
    ~DiskSpool();
    DiskSpool(const DiskSpool&) = delete;
    DiskSpool& operator=(const DiskSpool&) = delete;

    /// Copies `m` in. ANY thread, several at once; never waits for the consumer. When it
    /// returns ok the record survives SIGKILL of the process (it is in the kernel's page
    /// cache); with FsyncMode::always it is also fsynced (power loss). `full`: the unconfirmed
    /// bytes plus this record would exceed `limit_bytes`. `failed`: an I/O error (ENOSPC,
    /// EFBIG, EIO...), `*error` (if non-null) says what, naming the file. Never throws.
    /// With FsyncMode::always, `failed` after a failed fsync means the record is spooled (it
    /// will be read) but not known to be on disk.
    Append append(const sluice_message& m, std::uint64_t limit_bytes, std::string* error);

    /// CONSUMER (one thread at a time): appends up to `max_messages` of the next unread
    /// records to `out` (MessageArena::append), oldest first; returns how many.
    std::size_t read(MessageArena& out, std::size_t max_messages);

    /// CONSUMER: the oldest `n` records handed out by read() and not yet confirmed are done
    /// (delivered or handed to the error policy). Their space is released: a segment file is
    /// deleted once every record in it is confirmed; the confirmed position is recorded on
    /// disk so that a restart does not replay them (written at most every fsync_interval or on
    /// sync(), and at close: a crash may replay up to that much, never lose).
    void confirm(std::size_t n);

    /// CONSUMER: records read but not confirmed will be read again (downstream restarted).
    void rewind();

    /// ANY thread: drops the oldest UNREAD records (never ones read and unconfirmed) until
    /// bytes() <= target_bytes or nothing unread is left; they count as confirmed. Returns
    /// how many were dropped (for when_full: drop_oldest). Waits for a read() in progress.
    std::size_t drop_oldest_unread(std::uint64_t target_bytes);

    std::uint64_t bytes() const;     // unconfirmed encoded bytes (read or not)
    std::uint64_t messages() const;  // unconfirmed records
    std::uint64_t unread() const;    // records not yet handed out by read()

    /// fsync data and the confirmed position now (FsyncMode::never: only writes the position,
    /// without fsync). For FsyncMode::interval the host calls sync_if_due() from ONE host-wide
    /// timer thread for all spools (no thread per spool: a process may have 10,000 routes); it
    /// is cheap when nothing is due. Call it for the other modes too: it is what records the
    /// confirmed position.
    void sync();
    void sync_if_due(std::chrono::steady_clock::time_point now);

    /// The last error sync() met (naming the file), empty when the last sync succeeded.
    std::string last_sync_error() const;
    /// Records that failed to decode on read (impossible unless the files were changed under
    /// the spool); they were skipped and count as confirmed.
    std::uint64_t skipped_on_read() const;
    const SpoolOptions& options() const;

private:
    struct Impl;
    explicit DiskSpool(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace sluice

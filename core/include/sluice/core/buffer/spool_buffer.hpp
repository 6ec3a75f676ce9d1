// A route buffer on a durable disk spool (see disk_spool.hpp for the format and recovery).
#pragma once

#include <filesystem>
#include <memory>

#include "sluice/core/buffer/route_buffer.hpp"
#include "sluice/core/route_options.hpp"

namespace sluice {

/// What opening a spool found: messages to deliver again, and damage skipped.
struct SpoolReport {
    std::uint64_t records = 0;
    std::uint64_t bytes = 0;
    std::uint64_t torn_bytes = 0;
    std::uint64_t corrupt_records = 0;
    std::uint64_t corrupt_bytes = 0;
};

/// Opens (or creates) the spool in `dir`. Throws std::runtime_error naming the path.
/// With `fsync: interval` one host-wide thread syncs every open spool when it is due.
std::unique_ptr<RouteBuffer> make_disk_buffer(const std::filesystem::path& dir,
                                              const BufferOptions& options, SpoolReport& report);

}  // namespace sluice

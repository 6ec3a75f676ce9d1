// Options every route has (keys at the top level of a route manifest, and inside its `buffer:`
// block). Each is declared once, in one table (name, type, default, range, docs, how it is set
// and shown); validation, `sluice check`, the docs and the route's fingerprint all read it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "sluice/abi.h"

namespace sluice {

struct BufferOptions {
    enum class Type { memory, disk } type = Type::memory;
    std::uint64_t max_bytes = 16ull << 20;
    enum class WhenFull { block, drop_oldest, drop_newest } when_full = WhenFull::block;
    enum class Fsync { never, interval, always } fsync = Fsync::interval;
    std::uint32_t fsync_interval_ms = 1000;

    /// What a route may hold beyond max_bytes while its source is being held back: messages
    /// already on their way when the hold is asked for are still taken. A resumed MQTT session
    /// delivers its backlog in one burst, which a disk spool absorbs more of (disk is cheaper
    /// than memory, and memory_limit counts this headroom).
    std::uint64_t headroom() const {
        return type == Type::disk ? std::max<std::uint64_t>(max_bytes / 2, 4u << 20)
                                  : max_bytes / 2 + (64u << 10);
    }
    /// The source is let go again once the buffer is down to this.
    std::uint64_t resume_below() const { return max_bytes / 4; }
};

struct RouteOptions {
    BufferOptions buffer;
    enum class OnError { drop, dead_letter, stop } on_error = OnError::drop;
    std::uint64_t max_payload_bytes = 983040;
    std::size_t batch_size = 500;
    std::uint32_t max_in_flight = 4;
    std::uint32_t call_timeout_ms = 60000;
    std::uint32_t restart_initial_ms = 500;
    std::uint32_t restart_max_ms = 30000;
    std::uint32_t drain_timeout_ms = 10000;
};

/// One route option: its spec (validation and docs), how a validated value is applied, and
/// how the current value is shown (fingerprints, `/api/routes`).
struct RouteOptionDef {
    sluice_field_spec spec;
    void (*apply)(RouteOptions& options, const std::string& value);
    std::string (*show)(const RouteOptions& options);
};

/// A spec table entry, for option tables the host declares itself (route and host options).
sluice_field_spec field_spec(const char* name, uint32_t type, const char* def, const char* desc,
                             double min = 0, double max = 0,
                             const char* const* enum_values = nullptr);

/// Keys at the top level of a route manifest.
const std::vector<RouteOptionDef>& route_option_defs();
/// Keys inside its `buffer:` block.
const std::vector<RouteOptionDef>& buffer_option_defs();

/// The specs alone, for the manifest checker and `sluice check` docs.
const std::vector<sluice_field_spec>& route_option_fields();
const std::vector<sluice_field_spec>& buffer_option_fields();

/// Every option's value, in table order: equal strings, equal options.
std::string options_fingerprint(const RouteOptions& options);

}  // namespace sluice

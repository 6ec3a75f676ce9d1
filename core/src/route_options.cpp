#include "sluice/core/route_options.hpp"

#include <cstring>
#include <stdexcept>

namespace sluice {

sluice_field_spec field_spec(const char* name, uint32_t type, const char* def, const char* desc,
                             double min, double max, const char* const* enum_values) {
    sluice_field_spec f{};
    f.struct_size = sizeof f;
    f.name = name;
    f.type = type;
    f.default_value = def;
    f.description = desc;
    f.enum_values = enum_values;
    if (max > min) {
        f.flags |= SLUICE_FIELD_RANGE;
        f.min_value = min;
        f.max_value = max;
    }
    return f;
}

namespace {

// Validated values only reach apply(): the checker has already matched enums and ranges.
template <class E>
E enum_value(const char* const* values, const std::string& v) {
    for (int i = 0; values[i] != nullptr; ++i) {
        if (v == values[i]) return static_cast<E>(i);
    }
    throw std::logic_error("unvalidated enum value '" + v + "'");
}

const char* const kBufferTypes[] = {"memory", "disk", nullptr};
const char* const kWhenFull[] = {"block", "drop_oldest", "drop_newest", nullptr};
const char* const kFsync[] = {"never", "interval", "always", nullptr};
const char* const kOnError[] = {"drop", "dead_letter", "stop", nullptr};

template <class E>
std::string name_of(const char* const* values, E e) {
    return values[static_cast<int>(e)];
}

constexpr double kGiB = 1024.0 * 1024 * 1024;

}  // namespace

const std::vector<RouteOptionDef>& buffer_option_defs() {
    static const std::vector<RouteOptionDef> defs = {
        {field_spec("type", SLUICE_FIELD_ENUM, "memory",
                    "Where the route holds messages between its source and its sink. `memory`: "
                    "lost if the process dies. `disk`: a spool under the host's `state_dir` "
                    "(`routes/<route>/spool/`); a message is written there before the source's "
                    "callback returns and leaves it only once the sink confirmed it, so a crash "
                    "or restart loses nothing that reached the spool.",
                    0, 0, kBufferTypes),
         [](RouteOptions& o, const std::string& v) {
             o.buffer.type = enum_value<BufferOptions::Type>(kBufferTypes, v);
         },
         [](const RouteOptions& o) { return name_of(kBufferTypes, o.buffer.type); }},
        {field_spec("max_bytes", SLUICE_FIELD_INT, "16777216",
                    "Most bytes the route holds (messages with their topic, key and headers). "
                    "Memory buffers of all routes together must fit in the host's "
                    "`memory_limit`. Past it `when_full` applies.",
                    4096, 1024 * kGiB),
         [](RouteOptions& o, const std::string& v) { o.buffer.max_bytes = std::stoull(v); },
         [](const RouteOptions& o) { return std::to_string(o.buffer.max_bytes); }},
        {field_spec("when_full", SLUICE_FIELD_ENUM, "block",
                    "What happens when the buffer holds `max_bytes`. `block`: the source holds "
                    "its input back at the origin (mqtt-source disconnects keeping its "
                    "persistent session, so the broker keeps the messages) until the route has "
                    "room again; nothing is lost and no other route waits. `drop_oldest`: the "
                    "oldest messages not yet taken by the pipeline make room. `drop_newest`: "
                    "the new message is dropped. Every drop is counted per reason.",
                    0, 0, kWhenFull),
         [](RouteOptions& o, const std::string& v) {
             o.buffer.when_full = enum_value<BufferOptions::WhenFull>(kWhenFull, v);
         },
         [](const RouteOptions& o) { return name_of(kWhenFull, o.buffer.when_full); }},
        {field_spec("fsync", SLUICE_FIELD_ENUM, "interval",
                    "Disk buffers: when written messages are forced to the device. `never`: "
                    "the kernel writes them back (survives a crash of Sluice, not of the "
                    "machine); `interval`: every `fsync_interval_ms` (a power loss loses at "
                    "most that long); `always`: before the source's callback returns (slowest, "
                    "and paho's one receive thread waits for the disk: every MQTT route of the "
                    "process slows down with it).",
                    0, 0, kFsync),
         [](RouteOptions& o, const std::string& v) {
             o.buffer.fsync = enum_value<BufferOptions::Fsync>(kFsync, v);
         },
         [](const RouteOptions& o) { return name_of(kFsync, o.buffer.fsync); }},
        {field_spec("fsync_interval_ms", SLUICE_FIELD_INT, "1000",
                    "Disk buffers with `fsync: interval`: the longest time between forced writes.",
                    1, 3'600'000),
         [](RouteOptions& o, const std::string& v) {
             o.buffer.fsync_interval_ms = static_cast<std::uint32_t>(std::stoul(v));
         },
         [](const RouteOptions& o) { return std::to_string(o.buffer.fsync_interval_ms); }},
    };
    return defs;
}

const std::vector<RouteOptionDef>& route_option_defs() {
    static const std::vector<RouteOptionDef> defs = {
        {field_spec("on_error", SLUICE_FIELD_ENUM, "drop",
                    "What happens to a message a stage rejects (malformed payload, refused by "
                    "the destination, larger than `max_payload_bytes`): `drop` counts it and "
                    "logs a warning; `dead_letter` hands it unchanged, with headers saying why, "
                    "where and when it failed, to the sink in `dead_letter:`; `stop` halts the "
                    "route until it is fixed and reloaded.",
                    0, 0, kOnError),
         [](RouteOptions& o, const std::string& v) {
             o.on_error = enum_value<RouteOptions::OnError>(kOnError, v);
         },
         [](const RouteOptions& o) { return name_of(kOnError, o.on_error); }},
        {field_spec("max_payload_bytes", SLUICE_FIELD_INT, "983040",
                    "Larger payloads are refused where they enter (MQTT 5: the broker is told "
                    "not to send them) and go to the error policy, counted as `oversize`. The "
                    "default stays under Kafka's default message.max.bytes (1000000) with room "
                    "for key and headers.",
                    1, 1024 * 1024 * 1024.0),
         [](RouteOptions& o, const std::string& v) { o.max_payload_bytes = std::stoull(v); },
         [](const RouteOptions& o) { return std::to_string(o.max_payload_bytes); }},
        {field_spec("batch_size", SLUICE_FIELD_INT, "500",
                    "Most messages moved through the pipeline in one batch.", 1, 100000),
         [](RouteOptions& o, const std::string& v) { o.batch_size = std::stoull(v); },
         [](const RouteOptions& o) { return std::to_string(o.batch_size); }},
        {field_spec("max_in_flight", SLUICE_FIELD_INT, "32",
                    "Sinks with pipelined delivery (kafka-sink): most batches sent and not yet "
                    "confirmed at once. More hides the destination's round trip: a route sends "
                    "what it has as soon as it has it, so at a few hundred messages per second "
                    "a batch holds one or two, and each waits for the producer's linger.ms and "
                    "the cluster's answer; fewer than that many batches adds their wait to the "
                    "latency. What is in flight stays in the route's buffer, which bounds it in "
                    "bytes. Batches are "
                    "confirmed in order, and a retry resends from the first unconfirmed message "
                    "on, so a key's messages never overtake each other (a retry may repeat "
                    "later ones). 1 waits for each batch before the next.",
                    1, 64),
         [](RouteOptions& o, const std::string& v) {
             o.max_in_flight = static_cast<std::uint32_t>(std::stoul(v));
         },
         [](const RouteOptions& o) { return std::to_string(o.max_in_flight); }},
        {field_spec("call_timeout_ms", SLUICE_FIELD_INT, "60000",
                    "A call into a transform or sink that has not returned after this long "
                    "fails the route: the call is asked to end (plugins that support it), the "
                    "route shows the stage it is stuck in, and the part is restarted once the "
                    "call returns. Other routes never wait for it.",
                    100, 3'600'000),
         [](RouteOptions& o, const std::string& v) {
             o.call_timeout_ms = static_cast<std::uint32_t>(std::stoul(v));
         },
         [](const RouteOptions& o) { return std::to_string(o.call_timeout_ms); }},
        {field_spec("restart_initial_ms", SLUICE_FIELD_INT, "500",
                    "First delay before a failed route is restarted; doubles per failure.", 1,
                    3'600'000),
         [](RouteOptions& o, const std::string& v) {
             o.restart_initial_ms = static_cast<std::uint32_t>(std::stoul(v));
         },
         [](const RouteOptions& o) { return std::to_string(o.restart_initial_ms); }},
        {field_spec("restart_max_ms", SLUICE_FIELD_INT, "30000",
                    "Longest delay between restarts of a failed route.", 1, 3'600'000),
         [](RouteOptions& o, const std::string& v) {
             o.restart_max_ms = static_cast<std::uint32_t>(std::stoul(v));
         },
         [](const RouteOptions& o) { return std::to_string(o.restart_max_ms); }},
        {field_spec("drain_timeout_ms", SLUICE_FIELD_INT, "10000",
                    "On shutdown, how long the route may take to deliver what it holds. What a "
                    "disk buffer still holds then stays on disk for the next start.",
                    0, 3'600'000),
         [](RouteOptions& o, const std::string& v) {
             o.drain_timeout_ms = static_cast<std::uint32_t>(std::stoul(v));
         },
         [](const RouteOptions& o) { return std::to_string(o.drain_timeout_ms); }},
    };
    return defs;
}

namespace {
std::vector<sluice_field_spec> specs_of(const std::vector<RouteOptionDef>& defs) {
    std::vector<sluice_field_spec> out;
    out.reserve(defs.size());
    for (const auto& d : defs) out.push_back(d.spec);
    return out;
}
}  // namespace

const std::vector<sluice_field_spec>& route_option_fields() {
    static const std::vector<sluice_field_spec> fields = specs_of(route_option_defs());
    return fields;
}

const std::vector<sluice_field_spec>& buffer_option_fields() {
    static const std::vector<sluice_field_spec> fields = specs_of(buffer_option_defs());
    return fields;
}

std::string options_fingerprint(const RouteOptions& options) {
    std::string out;
    for (const auto* defs : {&route_option_defs(), &buffer_option_defs()}) {
        for (const auto& d : *defs) {
            out += d.spec.name;
            out += '=';
            out += d.show(options);
            out += ',';
        }
    }
    return out;
}

}  // namespace sluice

/*
 * Sluice plugin ABI: the only contract between the `sluice` host and a plugin library.
 *
 * Pure C (C99 and C++ compatible), no C++ types, no exceptions, no allocator mixing across the
 * boundary. Most authors use the C++ SDK in <sluice/sdk.hpp>, which implements this header.
 *
 * Rules that keep old plugins loading into new hosts:
 *  - Every struct that one side fills and the other reads starts with `struct_size`
 *    (sizeof as the filler compiled it). Structs only ever grow at the end; a reader reads
 *    only the members that lie inside `struct_size`, and treats the rest as zero.
 *  - A plugin built against ABI x.y loads into a host with major == x and minor >= y.
 *    Major: a member removed, reordered or retyped, or a meaning changed. Minor: members or
 *    callbacks appended, enum values added. See docs/abi-policy.md.
 *  - OWNERSHIP: memory the host passes into a call is valid only during that call; copy what
 *    you keep. Memory a plugin returns from its descriptors (ids, spec tables) must stay valid
 *    until the library is unloaded (static storage). The host never frees plugin memory and
 *    the plugin never frees host memory.
 *  - The host never unloads a library while any instance created from it exists.
 */
#ifndef SLUICE_ABI_H
#define SLUICE_ABI_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_ABI_MAJOR SLUICE_SDK_VERSION_MAJOR
#define SLUICE_ABI_MINOR SLUICE_SDK_VERSION_MINOR

/** The single symbol a plugin library exports; the host resolves it by this name. */
#define SLUICE_MODULE_ENTRY_SYMBOL "sluice_module_entry_v1"

/** Outcome of a plugin callback. */
typedef enum sluice_status {
    /** Done. For a sink: every message not rejected is confirmed by the destination. */
    SLUICE_OK = 0,
    /** Transient failure (destination unreachable, queue full): the host retries the same
     *  input after a back-off; the route is `degraded` meanwhile. */
    SLUICE_RETRY = 1,
    /** This input cannot be handled (malformed, rejected by the destination): the host hands
     *  the affected messages to the route's error policy and goes on. */
    SLUICE_ERROR = 2,
    /** The instance is unusable: the route fails and the supervisor restarts it with back-off.
     *  Other routes are not affected. */
    SLUICE_FATAL = 3
} sluice_status;

typedef enum sluice_kind {
    SLUICE_KIND_SOURCE = 1,
    SLUICE_KIND_TRANSFORM = 2,
    SLUICE_KIND_SINK = 3
} sluice_kind;

typedef enum sluice_log_level {
    SLUICE_LOG_TRACE = 0,
    SLUICE_LOG_DEBUG = 1,
    SLUICE_LOG_INFO = 2,
    SLUICE_LOG_WARN = 3,
    SLUICE_LOG_ERROR = 4
} sluice_log_level;

/* ---------------------------------------------------------------------------------------------
 * Config spec: each plugin declares its options once; the host validates manifests against
 * it before anything starts, and `sluice plugins describe` prints it as documentation.
 * ------------------------------------------------------------------------------------------- */

typedef enum sluice_field_type {
    SLUICE_FIELD_STRING = 1,
    SLUICE_FIELD_INT = 2,    /**< 64-bit signed integer */
    SLUICE_FIELD_FLOAT = 3,  /**< double */
    SLUICE_FIELD_BOOL = 4,
    SLUICE_FIELD_ENUM = 5,   /**< one of `enum_values` */
    SLUICE_FIELD_LIST = 6,   /**< list of strings; a single scalar is accepted as a list of one */
    SLUICE_FIELD_MAP = 7,    /**< map of string to string, order kept as written */
    SLUICE_FIELD_TEMPLATE = 8,     /**< string compiled as a message template ({{topic.1}}) */
    SLUICE_FIELD_TEMPLATE_MAP = 9  /**< map of string to template */
} sluice_field_type;

/** The option must be set in the manifest (it has no default). */
#define SLUICE_FIELD_REQUIRED 0x1u
/** The value is never logged or printed (passwords, keys). */
#define SLUICE_FIELD_SECRET 0x2u
/** `min_value`/`max_value` bound an INT or FLOAT option. */
#define SLUICE_FIELD_RANGE 0x4u
/** Shown after the common options in the docs. */
#define SLUICE_FIELD_ADVANCED 0x8u
/** Since ABI 1.5: set only by the operator, in the host config
 *  (`plugin_settings: { <plugin id>: { <option>: value } }` in sluice.yaml), for every route that
 *  uses the plugin; a route manifest that sets it is refused. For what the author of a route
 *  must not decide: which code, commands or files a plugin may reach. A plugin with such an
 *  option is built against ABI 1.5 or later, so no older host (which would not enforce it)
 *  loads it. */
#define SLUICE_FIELD_HOST 0x10u

typedef struct sluice_field_spec {
    uint32_t struct_size;
    const char* name;          /**< snake_case key */
    uint32_t type;             /**< sluice_field_type */
    uint32_t flags;            /**< SLUICE_FIELD_* bits */
    const char* default_value; /**< YAML text of the default, NULL for none */
    const char* const* enum_values; /**< NULL-terminated list, for SLUICE_FIELD_ENUM */
    const char* description;   /**< one or more sentences, Markdown allowed */
    const char* example;       /**< YAML text of an example value, or NULL */
    double min_value;          /**< with SLUICE_FIELD_RANGE */
    double max_value;          /**< with SLUICE_FIELD_RANGE */
} sluice_field_spec;

/** One configured option as the host hands it to `validate` and `create`. */
typedef struct sluice_config_entry {
    const char* key;    /**< the field name from the spec */
    uint32_t type;      /**< the field's sluice_field_type */
    /** Scalars (STRING, INT, FLOAT, BOOL, ENUM, TEMPLATE): the value as text, after `${VAR}`
     *  interpolation; BOOL is "true" or "false". NULL for lists and maps. */
    const char* value;
    size_t n_items;                  /**< LIST, MAP, TEMPLATE_MAP: number of items */
    const char* const* items;        /**< list items, or map keys */
    const char* const* item_values;  /**< map values (NULL for lists) */
} sluice_config_entry;

/** A stage's validated configuration: every option that is set or has a default. */
typedef struct sluice_config {
    uint32_t struct_size;
    const char* route;  /**< route name */
    const char* stage;  /**< "source", "transforms[0]", "sink" */
    size_t n_entries;
    const sluice_config_entry* entries;
} sluice_config;

/** Where `validate` reports problems the spec cannot express (cross-field rules, values a
 *  client library refuses). THREAD: the caller's; call only during `validate`. */
typedef struct sluice_diagnostics {
    uint32_t struct_size;
    void* ctx;
    /** `key` names the option ("acks", or "properties.linger.ms" for a map item); the host
     *  turns it into file:line:col. Both strings are copied. */
    void (*report)(void* ctx, const char* key, const char* message);
} sluice_diagnostics;

/* ---------------------------------------------------------------------------------------------
 * Messages. Strings are (pointer, length) pairs and need not be NUL-terminated.
 * ------------------------------------------------------------------------------------------- */

typedef struct sluice_header {
    const char* key;
    size_t key_len;
    const char* value;
    size_t value_len;
} sluice_header;

/** Set in sluice_message.flags: the MQTT message was retained. */
#define SLUICE_MESSAGE_RETAIN 0x1u
/** Set in sluice_message.flags: the MQTT message was a redelivery (DUP). */
#define SLUICE_MESSAGE_DUP 0x2u

typedef struct sluice_message {
    uint32_t struct_size;
    uint32_t flags;            /**< SLUICE_MESSAGE_* bits */
    const char* topic;
    size_t topic_len;
    const char* key;           /**< NULL: no key (unlike an empty key) */
    size_t key_len;
    const void* payload;
    size_t payload_len;
    const sluice_header* headers;  /**< MQTT 5 user properties <-> Kafka headers */
    size_t n_headers;
    int64_t timestamp_ms;      /**< Unix epoch milliseconds, set by the source */
    uint32_t qos;              /**< MQTT QoS the message arrived with (0..2) */
} sluice_message;

/** Messages moving between stages. Step through `messages` by `message_size` bytes (the
 *  producer's sizeof(sluice_message)), not by your own sizeof: the SDK's Batch does this. */
typedef struct sluice_batch {
    uint32_t struct_size;
    uint32_t message_size;
    size_t count;
    const sluice_message* messages;
} sluice_batch;

/** How a stage passes messages on and reports per-message outcomes.
 *  OWNERSHIP: the host copies everything passed to `emit` before it returns. */
typedef struct sluice_emitter {
    uint32_t struct_size;
    void* ctx;
    /** Sources: hands one message to the route. THREAD: any thread of the plugin's, between
     *  `start` and the return of `stop`; calls may come from several threads. May block: yes,
     *  while the route's queue is full and its `when_full` policy is `block`.
     *  Transforms: one output message. THREAD: the route's thread, during `process` only.
     *  Returns SLUICE_OK when taken; SLUICE_ERROR when refused and counted as dropped by the
     *  route (`when_full: drop_newest` with a full queue, or over `max_payload_bytes`): do not
     *  emit it again; SLUICE_RETRY when not taken for now (emit again later);
     *  SLUICE_FATAL when the route is stopping. */
    sluice_status (*emit)(void* ctx, const sluice_message* message);
    /** Transforms and sinks, during `process`: message `index` of the input batch failed.
     *  `status` SLUICE_ERROR hands it to the route's error policy (default: drop, counted and
     *  logged with `reason`); SLUICE_RETRY (sinks) retries it after a back-off. */
    void (*reject)(void* ctx, size_t index, sluice_status status, const char* reason);
    /** Sources: the input is exhausted (a finite file or generator); the route drains what it
     *  holds and ends. THREAD: any; call once. */
    void (*end_of_input)(void* ctx);
} sluice_emitter;

/* ---------------------------------------------------------------------------------------------
 * Host services, one table per plugin instance (its `ctx` knows the route and stage).
 * ------------------------------------------------------------------------------------------- */

typedef struct sluice_host_api {
    uint32_t struct_size;
    uint32_t abi_major;  /**< the host's ABI version */
    uint32_t abi_minor;
    void* ctx;
    /** Logs through the host, which prefixes route and stage. THREAD: any. May block: no
     *  (briefly, for the log sink). `message` is copied. */
    void (*log)(void* ctx, int level, const char* message);
    /** Non-zero when `level` would be logged: skip building expensive messages. THREAD: any. */
    int (*log_enabled)(void* ctx, int level);
    /** Reports the health of the connection behind this instance (a source's broker, a sink's
     *  cluster): SLUICE_OK healthy; SLUICE_RETRY degraded, with `reason` (connecting, broker
     *  down); SLUICE_FATAL the instance gave up: the route fails and is restarted.
     *  THREAD: any. May block: no. `reason` is copied; may be NULL with SLUICE_OK. */
    void (*report_state)(void* ctx, sluice_status state, const char* reason);

    /* Since ABI 1.1 (zero from an older host: unknown). */

    /** The route's `max_payload_bytes`: a source may tell its origin not to send more (MQTT 5
     *  Maximum Packet Size), so that an oversize message is refused where it starts. */
    uint64_t max_payload_bytes;

    /* Since ABI 1.3 (zero from an older host: unknown). */

    /** What the process's memory budget (the host config's `memory_limit`) leaves beyond what
     *  every route's memory buffer may hold, in bytes. Shared by every plugin instance of the
     *  process: a plugin that keeps messages in a queue of its own (a Kafka producer) bounds
     *  that queue by a share of it. */
    uint64_t memory_budget_bytes;
} sluice_host_api;

/* ---------------------------------------------------------------------------------------------
 * Pipelined delivery (sinks, since ABI 1.2).
 * ------------------------------------------------------------------------------------------- */

/** One message of a submitted batch that was not confirmed. */
typedef struct sluice_reject {
    size_t index;          /**< into the submitted batch */
    sluice_status status;  /**< SLUICE_RETRY: send again; SLUICE_ERROR: to the error policy */
    const char* reason;    /**< copied by the host; may be NULL */
} sluice_reject;

/** Where a sink reports the outcome of a batch taken by `submit`. Host-owned; valid from the
 *  first `submit` until `stop` returns. */
typedef struct sluice_completion {
    uint32_t struct_size;
    void* ctx;
    /** The batch submitted with `token` is settled: `status` SLUICE_OK means every message not
     *  listed in `rejects` is confirmed by the destination; SLUICE_RETRY the whole batch is to
     *  be sent again; SLUICE_ERROR every message goes to the error policy; SLUICE_FATAL the
     *  instance is unusable (the route fails and is restarted). `reason` and `rejects` are
     *  copied before the call returns. Call exactly once per batch that `submit` took, in any
     *  order. THREAD: any, including from inside `submit`. May block: no (the host only records
     *  the outcome and schedules the route). */
    void (*complete)(void* ctx, uint64_t token, sluice_status status, const char* reason,
                     size_t n_rejects, const sluice_reject* rejects);
} sluice_completion;

/* ---------------------------------------------------------------------------------------------
 * Metrics of a plugin instance (since ABI 1.4).
 * ------------------------------------------------------------------------------------------- */

typedef enum sluice_metric_type {
    SLUICE_METRIC_COUNTER = 0, /**< only grows while the instance lives; name ends in _total */
    SLUICE_METRIC_GAUGE = 1    /**< a current value */
} sluice_metric_type;

/** One figure of a plugin instance, e.g. an MQTT source's connects or a Kafka sink's producer
 *  queue. The host publishes it as `sluice_<name>` with the labels `route`, `stage` and
 *  `plugin`, plus the optional label below, so names follow Prometheus conventions without the
 *  prefix: `mqtt_connects_total`, `kafka_producer_queue_messages` (unit in the name). */
typedef struct sluice_metric {
    uint32_t struct_size;
    const char* name;        /**< [a-z][a-z0-9_]*, without the `sluice_` prefix */
    const char* help;        /**< one line; the first instance's text is kept */
    uint32_t type;           /**< sluice_metric_type; one name has one type */
    double value;
    const char* label_name;  /**< optional (NULL): one label of the plugin's, [a-z][a-z0-9_]* */
    const char* label_value; /**< its value, any text (the host escapes it) */
} sluice_metric;

/** Where a plugin writes its metrics. Host-owned, valid during the `metrics` call only; every
 *  string is copied before `put` returns. */
typedef struct sluice_metric_writer {
    uint32_t struct_size;
    void* ctx;
    void (*put)(void* ctx, const sluice_metric* metric);
} sluice_metric_writer;

#define SLUICE_ERROR_MESSAGE_MAX 1024

/** Filled by a plugin when a callback returns anything but SLUICE_OK. Host-owned. */
typedef struct sluice_error {
    char message[SLUICE_ERROR_MESSAGE_MAX];  /**< NUL-terminated, truncated if longer */
} sluice_error;

/* ---------------------------------------------------------------------------------------------
 * Plugins and modules.
 * ------------------------------------------------------------------------------------------- */

typedef struct sluice_plugin_descriptor {
    uint32_t struct_size;
    const char* id;           /**< kebab-case, unique across all loaded libraries */
    uint32_t kind;            /**< sluice_kind */
    const char* version;      /**< semver of the plugin, non-empty */
    const char* summary;      /**< one line */
    const char* description;  /**< paragraphs, Markdown allowed */
    const sluice_field_spec* const* fields;  /**< its options, `n_fields` of them */
    size_t n_fields;

    /** Creates an instance; connects nothing yet. `host` stays valid until `destroy`.
     *  THREAD: the route's worker. May block: briefly. On failure fill `error`, return
     *  SLUICE_ERROR or SLUICE_FATAL, and leave `*instance` unset. */
    sluice_status (*create)(const sluice_host_api* host, const sluice_config* config,
                            void** instance, sluice_error* error);

    /** Starts work. Sources get the emitter through which they pass messages on (valid until
     *  `stop` returns); transforms and sinks get NULL. A source whose broker is unreachable
     *  returns SLUICE_OK and keeps trying, reporting SLUICE_RETRY through `report_state`.
     *  THREAD: the route's. May block: briefly (connect asynchronously). */
    sluice_status (*start)(void* instance, const sluice_emitter* out, sluice_error* error);

    /** Transforms and sinks (NULL for sources): handles one batch.
     *  Transforms emit 0..N messages per input through `out` (none = filtered out).
     *  Sinks return SLUICE_OK only once the destination confirmed every message they did not
     *  reject (e.g. Kafka delivery reports); `out->emit` is not available to sinks.
     *  The whole-batch status means: RETRY the same batch after back-off, ERROR every message
     *  to the error policy, FATAL fail the route.
     *  THREAD: the route's thread, never two calls at once for one instance.
     *  May block: yes, a sink waits for its destination, but must bound the wait itself
     *  (e.g. a delivery timeout option): a call that never returns holds its route (only). */
    sluice_status (*process)(void* instance, const sluice_batch* batch, const sluice_emitter* out,
                             sluice_error* error);

    /** Stops: sources stop emitting; sinks flush. Must return within `deadline_ms` and leave
     *  no thread of the plugin running. Called once after a successful `start`.
     *  THREAD: the route's. Returns SLUICE_ERROR when something could not be flushed, with
     *  what in `error`. */
    sluice_status (*stop)(void* instance, uint32_t deadline_ms, sluice_error* error);

    /** Frees the instance. THREAD: the route's worker. Never fails. */
    void (*destroy)(void* instance);

    /* Optional members: a plugin whose struct_size ends before one of them is treated as
     * having set it to NULL. New members are appended here. */

    /** Optional (NULL): checks that the spec cannot express. Runs for `sluice check` and
     *  when routes are loaded, before any `create`. Returns SLUICE_OK when nothing was
     *  reported. THREAD: the host's main thread. May block: no. */
    sluice_status (*validate)(const sluice_config* config, const sluice_diagnostics* diag);

    /** Optional (NULL), sources, since ABI 1.1: flow control. The host asks the source to
     *  hold back its input (`hold` non-zero) because the route's buffer is full, and to take
     *  input again (`hold` zero) once it has room. Holding back happens at the origin, so that
     *  nothing is lost: an MQTT source with a persistent session disconnects and the broker
     *  keeps the messages. A source that sets this callback gets an `emit` that never waits:
     *  messages it emits while the hold is being applied are still taken (the route's buffer
     *  has headroom for them). Sources without it may be made to wait inside `emit` instead.
     *  THREAD: any host thread, never two calls at once for one instance; between `start` and
     *  `stop`. It may also come from inside your own `emit` (the append that filled the
     *  buffer asks for the hold): do not guard `hold_input` and `emit` with one non-recursive
     *  lock. May block: no (ask your own thread to act, and return). */
    void (*hold_input)(void* instance, int hold);

    /** Optional (NULL), transforms and sinks, since ABI 1.1: asks the `process` call in
     *  progress on another thread to return as soon as it can, because the route is stopping
     *  past its drain deadline. A sink then returns
     *  SLUICE_RETRY for what it could not confirm. It concerns only the call in progress, if
     *  any: the host calls it again while it still waits. THREAD: any host thread, also while
     *  `process` runs. May block: no. */
    void (*interrupt)(void* instance);

    /** Optional (NULL), sinks, since ABI 1.2: pipelined delivery. Takes `batch` for delivery
     *  and returns without waiting for the destination; the outcome follows through
     *  `done->complete` with the same `token`. The host keeps several batches of a route in
     *  flight this way (route option `max_in_flight`) and confirms them in submission order.
     *  A sink must send the batches it takes in the order it took them (Kafka: one producer
     *  queue, idempotence keeps partition order through its own retries).
     *  Returns SLUICE_OK when the batch was taken (exactly one `complete` follows);
     *  SLUICE_RETRY when it cannot take it now (no `complete` follows; the host tries again
     *  after a completion or a back-off); SLUICE_FATAL (with `error`) when the instance is
     *  unusable. OWNERSHIP: `batch` is valid only during the call: copy what you send.
     *  THREAD: the route's executor, never two calls at once for one instance, never at the
     *  same time as `process`. May block: no. A sink that sets `submit` still implements
     *  `process` (the host uses it for dead letters and for hosts older than 1.2).
     *  `interrupt` asks it to settle every batch in flight at once (what is unconfirmed as
     *  SLUICE_RETRY). */
    sluice_status (*submit)(void* instance, const sluice_batch* batch, uint64_t token,
                            const sluice_completion* done, sluice_error* error);

    /** Optional (NULL), every kind, since ABI 1.4: writes the instance's current metrics
     *  through `out->put` (connections, delivery errors, queue depths: what the host cannot
     *  see from outside). The host calls it when it is scraped (`GET /metrics`,
     *  `/api/routes/<name>`), never on the data path. THREAD: the admin thread, at the same
     *  time as any other call of the instance except `create` and `destroy`: read atomics or
     *  take a lock that nothing holds for long. May block: no. */
    void (*metrics)(void* instance, const sluice_metric_writer* out);
} sluice_plugin_descriptor;

typedef struct sluice_module {
    uint32_t struct_size;
    uint32_t abi_major;  /**< SLUICE_ABI_MAJOR the library was built with */
    uint32_t abi_minor;  /**< SLUICE_ABI_MINOR the library was built with */
    const char* name;    /**< the library's name, for messages */
    size_t n_plugins;
    const sluice_plugin_descriptor* const* plugins;
} sluice_module;

/** Signature of the exported entry point, named SLUICE_MODULE_ENTRY_SYMBOL.
 *  THREAD: the host's main thread, once per load. Must not fail, throw or block. */
typedef const sluice_module* (*sluice_module_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_ABI_H */

#include "sluice/core/admin/admin_api.hpp"

#include <sluice/version.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sluice/sdk/json.hpp>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "sluice/core/admin/status_page.hpp"
#include "sluice/core/log_hygiene.hpp"

namespace sluice::admin {
namespace {

using sdk::json::append_quoted;

constexpr RouteState kStates[] = {RouteState::starting, RouteState::running, RouteState::degraded,
                                  RouteState::failed, RouteState::stopped};

// Prometheus label values: backslash, double quote and line feed are escaped (text format
// 0.0.4); anything else goes as is.
std::string label(std::string_view raw) {
    // Prometheus refuses a whole scrape over one label value that is not UTF-8.
    const std::string value = log::valid_utf8(raw);
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

class Metrics {
public:
    explicit Metrics(std::string& out) : out_(out) {}
    // One family: HELP and TYPE once, then its samples.
    void family(const char* name, const char* type, const char* help) {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }
    void sample(const char* name, const std::string& labels, std::uint64_t value) {
        out_ += name;
        if (!labels.empty()) out_ += "{" + labels + "}";
        out_ += ' ';
        out_ += std::to_string(value);
        out_ += '\n';
    }
    void sample(const char* name, const std::string& labels, double value) {
        out_ += name;
        if (!labels.empty()) out_ += "{" + labels + "}";
        char text[64];
        std::snprintf(text, sizeof text, " %.3f\n", value);
        out_ += text;
    }

private:
    std::string& out_;
};

std::string route_label(const RouteStatus& r) { return "route=\"" + label(r.name) + "\""; }

// A sample value in the text format; NaN and infinities (a plugin's) by their names.
std::string number(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    char text[64];
    if (v < 9007199254740992.0 && v > -9007199254740992.0 &&
        v == static_cast<double>(static_cast<std::int64_t>(v))) {
        std::snprintf(text, sizeof text, "%lld", static_cast<long long>(v));
    } else {
        std::snprintf(text, sizeof text, "%.17g", v);
    }
    return text;
}

std::string plugin_labels(const PluginMetric& p) {
    std::string l = "route=\"" + label(p.route) + "\",stage=\"" + label(p.stage) + "\",plugin=\"" +
                    label(p.plugin) + "\"";
    if (!p.label_name.empty()) l += "," + p.label_name + "=\"" + label(p.label_value) + "\"";
    return l;
}

// Grouped by name in the order first seen, HELP and TYPE from the first; a sample whose type
// differs from its family's is left out (one name, one type).
void append_plugin_metrics(std::string& out, const std::vector<PluginMetric>& metrics) {
    std::vector<std::string> order;
    std::unordered_map<std::string, std::vector<const PluginMetric*>> by_name;
    for (const auto& p : metrics) {
        if (reserved_metric_name(p.name)) continue;
        auto& list = by_name[p.name];
        if (list.empty()) order.push_back(p.name);
        if (!list.empty() && list.front()->type != p.type) continue;
        list.push_back(&p);
    }
    for (const auto& name : order) {
        const auto& list = by_name[name];
        const std::string full = "sluice_" + name;
        std::string help;
        for (const char c : list.front()->help) help += (c == '\n' || c == '\\') ? ' ' : c;
        out += "# HELP " + full + " " + (help.empty() ? "Published by a plugin." : help) + "\n";
        out += "# TYPE " + full + " " +
               (list.front()->type == SLUICE_METRIC_COUNTER ? "counter" : "gauge") + "\n";
        // A series written twice (same labels) is kept once: parsers refuse duplicates.
        std::unordered_set<std::string> seen;
        for (const auto* p : list) {
            std::string labels = plugin_labels(*p);
            if (!seen.insert(labels).second) continue;
            out += full + "{" + labels + "} " + number(p->value) + "\n";
        }
    }
}

bool constant_time_equal(std::string_view a, std::string_view b) {
    // Every byte is looked at whatever the first difference, so the time says nothing but the
    // length (which a token's owner chose anyway).
    unsigned diff = a.size() == b.size() ? 0u : 1u;
    for (std::size_t i = 0; i < a.size(); ++i) {
        diff |=
            static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(i < b.size() ? b[i] : 0);
    }
    return diff == 0;
}

Response json(int status, std::string body) {
    return Response{status, "application/json", std::move(body) + "\n", {}, {}, {}};
}

std::uint64_t status_value(const std::string& key) {
    std::ifstream in("/proc/self/status");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind(key, 0) == 0) return std::strtoull(line.c_str() + key.size(), nullptr, 10);
    }
    return 0;
}

std::string percent_decode(std::string_view v) {
    std::string out;
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (v[i] == '%' && i + 2 < v.size() &&
            std::isxdigit(static_cast<unsigned char>(v[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(v[i + 2]))) {
            out += static_cast<char>(std::stoi(std::string(v.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else {
            out += v[i];
        }
    }
    return out;
}

// The value of `key` in the target's query, percent-decoded; "" when absent.
std::string query_value(std::string_view target, std::string_view key) {
    const auto q = target.find('?');
    if (q == std::string_view::npos) return {};
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
        const auto eq = pair.find('=');
        if (eq != std::string_view::npos && pair.substr(0, eq) == key) {
            return percent_decode(pair.substr(eq + 1));
        }
    }
    return {};
}

Response text(int status, std::string body) {
    Response r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

// Every route's figures for the page, once a second.
class RoutesStream final : public EventStream {
public:
    explicit RoutesStream(AdminApi::StatusFn status) : status_(std::move(status)) {}
    std::string next() override {
        const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        std::string o = "data: {\"time_ms\":" + std::to_string(now) + ",\"routes\":[";
        bool first = true;
        for (const auto& r : status_()) {
            if (!first) o += ",";
            first = false;
            o += "{\"name\":";
            append_quoted(o, r.name);
            o += ",\"state\":";
            append_quoted(o, route_state_name(r.state));
            o += ",\"reason\":";
            append_quoted(o, r.reason);
            o += ",\"received\":" + std::to_string(r.received) +
                 ",\"delivered\":" + std::to_string(r.delivered) +
                 ",\"errors\":" + std::to_string(r.errors) + ",\"dropped\":" +
                 std::to_string(r.dropped_full + r.dropped_overflow + r.dropped_oversize) +
                 ",\"buffered\":" + std::to_string(r.buffered) +
                 ",\"buffered_bytes\":" + std::to_string(r.buffered_bytes) + ",\"last_error\":";
            append_quoted(o, r.last_error);
            o += "}";
        }
        return o + "]}\n\n";
    }

private:
    AdminApi::StatusFn status_;
};

// What leaves one route's transforms, a few times a second while the page watches.
class TapStream final : public EventStream {
public:
    explicit TapStream(std::shared_ptr<Tap> tap) : tap_(std::move(tap)) {}
    std::string next() override {
        std::uint64_t lost = 0;
        const auto messages = tap_->take(lost);
        if (messages.empty() && lost == 0) return {};
        std::string o = "data: {\"lost\":" + std::to_string(lost) + ",\"messages\":[";
        for (std::size_t i = 0; i < messages.size(); ++i) {
            if (i) o += ",";
            o += messages[i];
        }
        return o + "]}\n\n";
    }
    std::chrono::milliseconds interval() const override { return std::chrono::milliseconds(200); }

private:
    std::shared_ptr<Tap> tap_;
};

// POST /api/reload: the answer once the reload is done; the server keeps serving meanwhile.
class ReloadPending final : public PendingResponse {
public:
    explicit ReloadPending(std::shared_future<AdminApi::ReloadAnswer> answer)
        : answer_(std::move(answer)) {}
    bool ready() override {
        return answer_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
    }
    Response take() override {
        const auto& a = answer_.get();
        return json(a.applied ? 200 : 409, a.json);
    }

private:
    std::shared_future<AdminApi::ReloadAnswer> answer_;
};

}  // namespace

ProcessInfo read_process_info() {
    ProcessInfo p;
    p.rss_bytes = status_value("VmRSS:") * 1024;
    p.threads = status_value("Threads:");
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        ++p.open_fds;
    }
    return p;
}

AdminApi::AdminApi(StatusFn status, TapFn open_tap, std::string token,
                   PluginMetricsFn plugin_metrics, RouteMetricsFn route_metrics)
    : status_(std::move(status)),
      open_tap_(std::move(open_tap)),
      plugin_metrics_(std::move(plugin_metrics)),
      route_metrics_(std::move(route_metrics)),
      token_(std::move(token)),
      started_(std::chrono::steady_clock::now()) {}

bool AdminApi::authorized(const Request& request) const {
    if (token_.empty()) return true;
    constexpr std::string_view kBearer = "Bearer ";
    const std::string_view given = request.authorization;
    if (given.substr(0, kBearer.size()) == kBearer) {
        return constant_time_equal(given.substr(kBearer.size()), token_);
    }
    const std::string from_query = query_value(request.target, "token");
    return !from_query.empty() && constant_time_equal(from_query, token_);
}

void AdminApi::set_reload(ReloadFn start, LastReloadFn last, ReloadStatsFn stats) {
    reload_ = std::move(start);
    last_reload_ = std::move(last);
    reload_stats_ = std::move(stats);
}

Response AdminApi::handle(const Request& request) const {
    std::string_view path = request.target;
    if (const auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
    const bool post = request.method == "POST";
    if (request.method != "GET" && request.method != "HEAD" && !(post && path == "/api/reload")) {
        return text(405, path == "/api/reload" ? "GET or POST\n" : "only GET\n");
    }
    if (path == "/healthz") return text(200, "ok\n");
    if (path == "/") {
        Response page = text(200, kStatusPage);
        page.content_type = "text/html; charset=utf-8";
        return page;
    }
    if (path == "/readyz") {
        std::string not_running;
        for (const auto& r : status_()) {
            if (r.state == RouteState::running) continue;
            not_running += r.name + ": " + route_state_name(r.state) +
                           (r.reason.empty() ? "" : " (" + r.reason + ")") + "\n";
        }
        if (not_running.empty()) return text(200, "ready\n");
        return text(503, "not ready:\n" + not_running);
    }
    if (!authorized(request)) {
        Response r = text(401, "a bearer token is required (Authorization: Bearer <token>)\n");
        r.www_authenticate = "Bearer realm=\"sluice\"";
        return r;
    }
    if (path == "/metrics") {
        std::optional<ReloadStats> reload_stats;
        if (reload_stats_) reload_stats = reload_stats_();
        const double uptime =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
        Response r = text(
            200, metrics_text(status_(), read_process_info(), uptime,
                              plugin_metrics_ ? plugin_metrics_() : std::vector<PluginMetric>{},
                              reload_stats ? &*reload_stats : nullptr));
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        return r;
    }
    if (path == "/api/reload") {
        if (!reload_) return text(503, "reload is not available in this process\n");
        if (!post) {
            std::string last = last_reload_();
            if (last.empty()) return text(404, "no reload yet\n");
            return json(200, std::move(last));
        }
        Response r;
        r.pending = std::make_shared<ReloadPending>(reload_());
        return r;
    }
    if (path == "/api/events") {
        Response r;
        r.events = std::make_shared<RoutesStream>(status_);
        return r;
    }
    constexpr std::string_view kTap = "/api/tap/";
    if (path.substr(0, kTap.size()) == kTap) {
        const std::string name = percent_decode(path.substr(kTap.size()));
        auto tap = open_tap_ ? open_tap_(name) : nullptr;
        if (!tap) return text(404, "no route named '" + name + "'\n");
        Response r;
        r.events = std::make_shared<TapStream>(std::move(tap));
        return r;
    }
    if (path == "/api/routes") {
        std::string body = "[";
        bool first = true;
        for (const auto& r : status_()) {
            if (!first) body += ",";
            first = false;
            body += route_json(r);
        }
        return json(200, body + "]");
    }
    constexpr std::string_view kRoute = "/api/routes/";
    if (path.substr(0, kRoute.size()) == kRoute) {
        const std::string_view name = path.substr(kRoute.size());
        for (const auto& r : status_()) {
            if (r.name != name) continue;
            return json(200, route_json(r, route_metrics_ ? route_metrics_(r.name)
                                                          : std::vector<PluginMetric>{}));
        }
        std::string body = "{\"error\":";
        append_quoted(body, "no route named '" + std::string(name) + "'");
        return json(404, body + "}");
    }
    return text(404, "not found; try /, /healthz, /readyz, /metrics, /api/routes\n");
}

std::string AdminApi::metrics_text(const std::vector<RouteStatus>& routes,
                                   const ProcessInfo& process, double uptime_s,
                                   const std::vector<PluginMetric>& plugin_metrics,
                                   const ReloadStats* reload) {
    std::string out;
    Metrics m(out);
    struct Counter {
        const char* name;
        const char* help;
        std::uint64_t RouteStatus::*field;
    };
    static constexpr Counter kCounters[] = {
        {"sluice_route_messages_received_total", "Messages the route took from its source.",
         &RouteStatus::received},
        {"sluice_route_messages_delivered_total", "Messages the sink confirmed.",
         &RouteStatus::delivered},
        {"sluice_route_messages_filtered_total", "Messages transforms removed on purpose.",
         &RouteStatus::filtered},
        {"sluice_route_errors_total", "Messages handed to the error policy.", &RouteStatus::errors},
        {"sluice_route_dead_lettered_total", "Messages handed to the dead-letter sink.",
         &RouteStatus::dead_lettered},
        {"sluice_route_dead_letter_failures_total", "Messages the dead-letter sink refused.",
         &RouteStatus::dead_letter_failed},
        {"sluice_route_retries_total", "Sink retries.", &RouteStatus::retries},
        {"sluice_route_restarts_total", "Times the route was rebuilt after failing.",
         &RouteStatus::restarts},
        {"sluice_route_holds_total", "Times the source was held back (buffer full).",
         &RouteStatus::holds},
        {"sluice_route_undelivered_total", "Messages held at stop and not delivered.",
         &RouteStatus::undelivered},
        {"sluice_route_taken_over_total",
         "Messages the route's previous version could not deliver and handed over at a reload.",
         &RouteStatus::taken_over},
        {"sluice_route_received_bytes_total", "Payload bytes the route took from its source.",
         &RouteStatus::bytes_received},
        {"sluice_route_delivered_bytes_total", "Payload bytes the sink confirmed.",
         &RouteStatus::bytes_delivered},
    };
    for (const auto& c : kCounters) {
        m.family(c.name, "counter", c.help);
        for (const auto& r : routes) m.sample(c.name, route_label(r), r.*c.field);
    }
    m.family("sluice_route_messages_dropped_total", "counter",
             "Messages dropped by the route's limits, by reason.");
    for (const auto& r : routes) {
        const std::string l = route_label(r);
        m.sample("sluice_route_messages_dropped_total", l + ",reason=\"full\"", r.dropped_full);
        m.sample("sluice_route_messages_dropped_total", l + ",reason=\"overflow\"",
                 r.dropped_overflow);
        m.sample("sluice_route_messages_dropped_total", l + ",reason=\"oversize\"",
                 r.dropped_oversize);
    }
    struct Gauge {
        const char* name;
        const char* help;
        std::uint64_t RouteStatus::*field;
    };
    static constexpr Gauge kGauges[] = {
        {"sluice_route_buffer_messages", "Messages the route's buffer holds.",
         &RouteStatus::buffered},
        {"sluice_route_buffer_bytes", "Bytes the route's buffer holds.",
         &RouteStatus::buffered_bytes},
        {"sluice_route_in_flight_batches", "Batches sent to a pipelined sink, not yet confirmed.",
         &RouteStatus::in_flight},
        {"sluice_route_spare_bytes", "Heap the route keeps for reuse while idle.",
         &RouteStatus::spare_bytes},
    };
    for (const auto& g : kGauges) {
        m.family(g.name, "gauge", g.help);
        for (const auto& r : routes) m.sample(g.name, route_label(r), r.*g.field);
    }
    m.family("sluice_route_state", "gauge", "1 for the route's current state.");
    for (const auto& r : routes) {
        for (const RouteState s : kStates) {
            m.sample("sluice_route_state",
                     route_label(r) + ",state=\"" + route_state_name(s) + "\"",
                     std::uint64_t{r.state == s ? 1u : 0u});
        }
    }
    m.family("sluice_route_delivery_latency_seconds", "histogram",
             "From the message's receipt to the sink's confirmation.");
    for (const auto& r : routes) {
        const std::string l = route_label(r);
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b < r.latency.size(); ++b) {
            cumulative += r.latency[b];
            std::string le = "+Inf";
            if (b < kLatencyBucketsMs.size()) {
                char text[32];
                std::snprintf(text, sizeof text, "%g",
                              static_cast<double>(kLatencyBucketsMs[b]) / 1000.0);
                le = text;
            }
            m.sample("sluice_route_delivery_latency_seconds_bucket", l + ",le=\"" + le + "\"",
                     cumulative);
        }
        m.sample("sluice_route_delivery_latency_seconds_sum", l,
                 static_cast<double>(r.latency_sum_ms) / 1000.0);
        m.sample("sluice_route_delivery_latency_seconds_count", l, cumulative);
    }
    m.family("sluice_route_info", "gauge", "The route's manifest and configuration hash.");
    for (const auto& r : routes) {
        m.sample("sluice_route_info",
                 route_label(r) + ",file=\"" + label(r.file) + "\",config_hash=\"" + r.config_hash +
                     "\"",
                 std::uint64_t{1});
    }
    m.family("sluice_process_resident_memory_bytes", "gauge", "Resident set size.");
    m.sample("sluice_process_resident_memory_bytes", "", process.rss_bytes);
    m.family("sluice_process_threads", "gauge", "Threads of the process.");
    m.sample("sluice_process_threads", "", process.threads);
    m.family("sluice_process_open_fds", "gauge", "Open file descriptors.");
    m.sample("sluice_process_open_fds", "", process.open_fds);
    m.family("sluice_process_uptime_seconds", "gauge", "Seconds since the process started.");
    m.sample("sluice_process_uptime_seconds", "", uptime_s);
    m.family("sluice_build_info", "gauge", "The running version.");
    m.sample("sluice_build_info", "version=\"" SLUICE_SDK_VERSION_STRING "\"", std::uint64_t{1});
    if (reload != nullptr) {
        m.family("sluice_reloads_total", "counter", "Reloads, by result.");
        m.sample("sluice_reloads_total", "result=\"applied\"", reload->applied);
        m.sample("sluice_reloads_total", "result=\"partial\"", reload->partial);
        m.sample("sluice_reloads_total", "result=\"rejected\"", reload->rejected);
        m.family("sluice_reload_last_timestamp_seconds", "gauge",
                 "When the last reload started (0: none yet).");
        m.sample("sluice_reload_last_timestamp_seconds", "",
                 static_cast<double>(reload->last_ms) / 1000.0);
        m.family("sluice_reload_last_duration_seconds", "gauge",
                 "How long the last reload took, from reading the manifests to the last new "
                 "version started.");
        m.sample("sluice_reload_last_duration_seconds", "",
                 static_cast<double>(reload->last_duration_ms) / 1000.0);
    }
    append_plugin_metrics(out, plugin_metrics);
    return out;
}

std::string AdminApi::route_json(const RouteStatus& r,
                                 const std::vector<PluginMetric>& plugin_metrics) {
    std::string o = "{\"name\":";
    append_quoted(o, r.name);
    o += ",\"state\":";
    append_quoted(o, route_state_name(r.state));
    o += ",\"reason\":";
    append_quoted(o, r.reason);
    o += ",\"state_since_ms\":" + std::to_string(r.state_since_ms);
    o += ",\"file\":";
    append_quoted(o, r.file);
    o += ",\"config_hash\":";
    append_quoted(o, r.config_hash);
    o += ",\"plugins\":[";
    for (std::size_t i = 0; i < r.plugins.size(); ++i) {
        if (i) o += ",";
        const auto& [stage, plugin] = r.plugins[i];
        const auto space = plugin.find(' ');
        o += "{\"stage\":";
        append_quoted(o, stage);
        o += ",\"id\":";
        append_quoted(o, plugin.substr(0, space));
        o += ",\"version\":";
        append_quoted(o, space == std::string::npos ? "" : plugin.substr(space + 1));
        o += "}";
    }
    o += "],\"counters\":{";
    const std::pair<const char*, std::uint64_t> counters[] = {
        {"received", r.received},
        {"delivered", r.delivered},
        {"filtered", r.filtered},
        {"errors", r.errors},
        {"dropped_full", r.dropped_full},
        {"dropped_overflow", r.dropped_overflow},
        {"dropped_oversize", r.dropped_oversize},
        {"dead_lettered", r.dead_lettered},
        {"dead_letter_failed", r.dead_letter_failed},
        {"retries", r.retries},
        {"restarts", r.restarts},
        {"holds", r.holds},
        {"undelivered", r.undelivered},
        {"taken_over", r.taken_over},
        {"bytes_received", r.bytes_received},
        {"bytes_delivered", r.bytes_delivered},
    };
    for (std::size_t i = 0; i < std::size(counters); ++i) {
        if (i) o += ",";
        o += "\"" + std::string(counters[i].first) + "\":" + std::to_string(counters[i].second);
    }
    o += "},\"buffer\":{\"messages\":" + std::to_string(r.buffered) +
         ",\"bytes\":" + std::to_string(r.buffered_bytes) +
         ",\"durable\":" + (r.durable ? "true" : "false") +
         ",\"in_flight_batches\":" + std::to_string(r.in_flight) +
         ",\"spare_bytes\":" + std::to_string(r.spare_bytes) + "}";
    o += ",\"stuck_in\":";
    append_quoted(o, r.stuck_in);
    o += ",\"last_error\":";
    if (r.last_error_ms == 0) {
        o += "null";
    } else {
        o += "{\"message\":";
        append_quoted(o, r.last_error);
        o += ",\"time_ms\":" + std::to_string(r.last_error_ms) + "}";
    }
    o += ",\"last_reload\":";
    if (r.last_reload_ms == 0) {
        o += "null";
    } else {
        o += "{\"time_ms\":" + std::to_string(r.last_reload_ms) + ",\"change\":";
        append_quoted(o, r.last_reload_change);
        o += ",\"errors\":[";
        for (std::size_t i = 0; i < r.reload_errors.size(); ++i) {
            if (i) o += ",";
            append_quoted(o, r.reload_errors[i]);
        }
        o += "]}";
    }
    if (!plugin_metrics.empty()) {
        o += ",\"plugin_metrics\":[";
        for (std::size_t i = 0; i < plugin_metrics.size(); ++i) {
            const auto& p = plugin_metrics[i];
            if (i) o += ",";
            o += "{\"stage\":";
            append_quoted(o, p.stage);
            o += ",\"plugin\":";
            append_quoted(o, p.plugin);
            o += ",\"name\":";
            append_quoted(o, "sluice_" + p.name);
            o += ",\"type\":";
            append_quoted(o, p.type == SLUICE_METRIC_COUNTER ? "counter" : "gauge");
            if (!p.label_name.empty()) {
                o += ",\"labels\":{";
                append_quoted(o, p.label_name);
                o += ":";
                append_quoted(o, p.label_value);
                o += "}";
            }
            o += ",\"value\":" + (std::isfinite(p.value) ? number(p.value) : "null") + "}";
        }
        o += "]";
    }
    return o + "}";
}

std::string load_token(const std::string& token_file, const std::string& token_env) {
    if (!token_file.empty()) {
        struct stat st {};
        if (::stat(token_file.c_str(), &st) != 0) {
            throw std::runtime_error("admin.token_file '" + token_file + "' cannot be read");
        }
        if (!S_ISREG(st.st_mode)) {
            throw std::runtime_error("admin.token_file '" + token_file + "' is not a regular file");
        }
        if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
            throw std::runtime_error("admin.token_file '" + token_file +
                                     "' is readable or writable by others; chmod 600 it");
        }
        std::ifstream in(token_file);
        std::string token;
        std::getline(in, token);
        while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
        if (token.empty()) {
            throw std::runtime_error("admin.token_file '" + token_file + "' is empty");
        }
        return token;
    }
    if (!token_env.empty()) {
        const char* value = std::getenv(token_env.c_str());
        if (value == nullptr || *value == '\0') {
            throw std::runtime_error("admin.token_env names " + token_env +
                                     ", which is not set or empty");
        }
        return value;
    }
    return {};
}

}  // namespace sluice::admin

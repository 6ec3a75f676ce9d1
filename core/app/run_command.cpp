// `sluice run`: the daemon. Loads everything, starts the routes, serves the admin endpoints,
// reloads on manifest changes, SIGHUP and POST /api/reload, and drains on SIGTERM/SIGINT.
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cli.hpp"
#include "sluice/core/admin/admin_api.hpp"
#include "sluice/core/admin/http_server.hpp"
#include "sluice/core/log.hpp"
#include "sluice/core/reload/manifest_watcher.hpp"
#include "sluice/core/reload/reloader.hpp"
#include "sluice/core/state_dir_lock.hpp"
#include "sluice/core/supervisor.hpp"

namespace sluice::cli {

namespace fs = std::filesystem;

namespace {

// A spool left by a route that is no longer configured (renamed, removed) is never delivered:
// say so at every start rather than let it sit unnoticed.
void warn_orphan_spools(const fs::path& state_dir, const std::vector<RouteSpec>& routes) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(state_dir / "routes", ec)) {
        const std::string name = entry.path().filename().string();
        const bool configured = std::any_of(routes.begin(), routes.end(), [&](const auto& r) {
            return r.name == name && r.options.buffer.type == BufferOptions::Type::disk;
        });
        std::error_code seg_ec;
        if (configured || !fs::is_directory(entry.path() / "spool", seg_ec)) continue;
        bool has_segments = false;
        for (const auto& f : fs::directory_iterator(entry.path() / "spool", seg_ec)) {
            has_segments = has_segments || f.path().extension() == ".seg";
        }
        if (!has_segments) continue;
        log::warn("", "state_dir has a spool for route '" + name +
                          "', which is not configured with a disk buffer: what it holds "
                          "is not delivered. Configure the route again to drain it, or "
                          "remove " +
                          (entry.path() / "spool").string());
    }
}

// The soft limit on open files is often 1024, far below what thousands of routes need; the
// hard limit is the administrator's word. Returns the limit now in force.
rlim_t raise_open_file_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
    if (limit.rlim_cur < limit.rlim_max) {
        const rlim_t wanted = limit.rlim_max;
        limit.rlim_cur = wanted;
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0) getrlimit(RLIMIT_NOFILE, &limit);
    }
    return limit.rlim_cur;
}

// Ends the process without waiting for routes that did not stop: writes out the queued log
// lines first, but not for longer than a second (stderr itself may be what is stuck).
[[noreturn]] void exit_now(int code) {
    std::thread([] { log::shutdown(); }).detach();
    for (int i = 0; i < 100 && !log::is_shut_down(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::_Exit(code);
}

// Reloads run one at a time on a thread of their own, so that the run loop keeps taking
// signals and the admin server keeps answering; requests that arrive while one runs are
// answered together by the next one (which reads what they asked to be read).
class ReloadWorker {
public:
    using Answer = admin::AdminApi::ReloadAnswer;
    ReloadWorker(Reloader& reloader, std::atomic<bool>& rewatch)
        : reloader_(reloader), rewatch_(rewatch), thread_([this] { loop(); }) {}
    ~ReloadWorker() { stop(); }
    ReloadWorker(const ReloadWorker&) = delete;
    ReloadWorker& operator=(const ReloadWorker&) = delete;

    std::shared_future<Answer> request(const std::string& trigger) {
        std::lock_guard lock(mu_);
        if (waiting_.empty()) {
            trigger_ = trigger;
        } else if (trigger_.find(trigger) == std::string::npos) {
            trigger_ += ", " + trigger;
        }
        waiting_.emplace_back();
        auto answer = waiting_.back().get_future().share();
        if (stopping_) answer_all(stopping_answer());
        cv_.notify_one();
        return answer;
    }

    /// Reloads run from now on (requests before wait): not while the routes of the start are
    /// still being started, or a reload would plan against half of them.
    void open() {
        {
            std::lock_guard lock(mu_);
            open_ = true;
        }
        cv_.notify_one();
    }

    /// The process is stopping: a reload under way stops waiting for old versions.
    void stop() {
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
        }
        abandon_ = true;
        cv_.notify_one();
        if (thread_.joinable()) thread_.join();
    }

private:
    static Answer stopping_answer() {
        return {false,
                "{\"result\":\"rejected\",\"errors\":[\"sluice is stopping\"],\"routes\":[]}"};
    }
    void answer_all(const Answer& a) {  // with mu_ held
        for (auto& p : waiting_) p.set_value(a);
        waiting_.clear();
    }
    void loop() {
        std::unique_lock lock(mu_);
        while (true) {
            cv_.wait(lock, [&] { return stopping_ || (open_ && !waiting_.empty()); });
            if (stopping_) {
                answer_all(stopping_answer());
                return;
            }
            auto waiting = std::move(waiting_);
            waiting_.clear();
            const std::string trigger = trigger_;
            lock.unlock();
            const auto report = reloader_.reload(trigger, abandon_);
            rewatch_ = true;
            const Answer a{report.result() == "applied", report.to_json()};
            for (auto& p : waiting) p.set_value(a);
            lock.lock();
        }
    }

    Reloader& reloader_;
    std::atomic<bool>& rewatch_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::promise<Answer>> waiting_;  // guarded by mu_
    std::string trigger_;                        // guarded by mu_
    bool stopping_ = false;                      // guarded by mu_
    bool open_ = false;                          // guarded by mu_
    std::atomic<bool> abandon_{false};
    std::thread thread_;  // last: starts when the rest is ready
};

// An editor saves with a burst of events (write a temporary file, rename it over, change its
// mode): one reload for the burst, once it has been quiet this long...
constexpr auto kDebounce = std::chrono::milliseconds(50);
// ...or at the latest this long after its first event.
constexpr auto kDebounceMax = std::chrono::seconds(1);

}  // namespace

int cmd_run(const Options& o) {
    if (o.help) {
        std::cout << "Usage: sluice run [-c FILE] [--plugins DIR]... [--routes PATH]... "
                     "[--log-level L] [--log-format text|json]\n"
                     "Runs every route until SIGTERM or SIGINT (then drains and exits 0), or "
                     "until every route's input has ended.\n"
                     "Reloads the routes when a manifest or the config changes, on SIGHUP, "
                     "`sluice reload` and POST /api/reload (see docs/reload.md).\n";
        return kExitOk;
    }
    // Signals are taken synchronously by this thread; every thread started later inherits
    // the mask, so none of them is interrupted by a signal meant for the process.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    PluginRegistry registry;
    auto loaded = load_everything(o, registry, false);
    if (!loaded) return kExitInvalid;
    log::setup(loaded->host.log_level, loaded->host.log_format);
    if (loaded->routes.empty()) {
        log::error("", "no routes configured: give --routes or `routes:` in the config");
        log::shutdown();
        return kExitInvalid;
    }
    std::string admin_token;
    try {
        admin_token =
            admin::load_token(loaded->host.admin_token_file.string(), loaded->host.admin_token_env);
    } catch (const std::exception& e) {
        log::error("", e.what());
        log::shutdown();
        return kExitInvalid;
    }
    // Spools are the state: one process per state_dir, or two would deliver (and trim) the
    // same messages.
    std::optional<StateDirLock> state_lock;
    std::atomic<std::uint32_t> longest_drain_ms{0};
    for (const auto& r : loaded->routes) {
        longest_drain_ms = std::max(longest_drain_ms.load(), r.options.drain_timeout_ms);
        if (r.options.buffer.type == BufferOptions::Type::disk && !state_lock) {
            try {
                state_lock.emplace(StateDirLock::acquire(loaded->host.state_dir));
            } catch (const std::exception& e) {
                log::error("", std::string("route ") + r.name + ": " + e.what());
                log::shutdown();
                return kExitInvalid;
            }
        }
    }
    warn_orphan_spools(loaded->host.state_dir, loaded->routes);
    const rlim_t files = raise_open_file_limit();
    // Every MQTT route keeps a connection of its own: a few per route, plus the producers'.
    if (files != RLIM_INFINITY && files < loaded->routes.size() * 2 + 256) {
        log::warn("", "the open-file limit (" + std::to_string(files) + ") is low for " +
                          std::to_string(loaded->routes.size()) +
                          " routes; raise it (ulimit -n, systemd LimitNOFILE=)");
    }
    Supervisor supervisor(loaded->host.state_dir);
    // check_memory_budget() made sure the buffers fit.
    supervisor.set_memory_budget(
        loaded->host.memory_limit -
        std::min(loaded->host.memory_limit, memory_buffers_bytes(loaded->routes)));
    log::info("", "sluice " SLUICE_SDK_VERSION_STRING " starting " +
                      std::to_string(loaded->routes.size()) + " route(s) on " +
                      std::to_string(supervisor.executor().base_threads()) + " executor threads");
    // A reload refuses a disk route it cannot lock the state directory for.
    auto prepare = [&](const ReloadPlan& plan) -> std::string {
        for (const auto& r : plan.start) {
            longest_drain_ms = std::max(longest_drain_ms.load(), r.options.drain_timeout_ms);
            if (r.options.buffer.type != BufferOptions::Type::disk || state_lock) continue;
            try {
                state_lock.emplace(StateDirLock::acquire(loaded->host.state_dir));
            } catch (const std::exception& e) {
                return "route " + r.name + ": " + e.what();
            }
        }
        return "";
    };
    Reloader reloader(
        supervisor, loaded->host, [&o] { return load_for_reload(o); }, prepare);
    std::atomic<bool> rewatch{false};
    ReloadWorker reload_worker(reloader, rewatch);
    // Before the routes: what they do from their first moment shows. Destroyed before the
    // supervisor whose status it serves and the reloads it asks for (declared after them).
    std::unique_ptr<admin::HttpServer> admin_http;
    if (!loaded->host.admin_listen.empty()) {
        std::string host;
        std::uint16_t port = 0;
        std::string error;
        admin::parse_listen(loaded->host.admin_listen, host, port, error);
        auto api = std::make_shared<admin::AdminApi>(
            [&supervisor] { return supervisor.status(); },
            [&supervisor](const std::string& route) { return supervisor.open_tap(route); },
            admin_token, [&supervisor] { return supervisor.plugin_metrics(); },
            [&supervisor](const std::string& route) { return supervisor.plugin_metrics(route); });
        api->set_reload([&reload_worker] { return reload_worker.request("api"); },
                        [&reloader] { return reloader.last_report_json(); },
                        [&reloader] { return reloader.stats(); });
        try {
            admin_http = std::make_unique<admin::HttpServer>(
                host, port, [api](const admin::Request& r) { return api->handle(r); });
        } catch (const std::exception& e) {
            log::error("", std::string("admin.listen: ") + e.what());
            log::shutdown();
            return kExitInvalid;
        }
        const std::string shown = host.find(':') != std::string::npos ? "[" + host + "]" : host;
        log::info("", "admin HTTP on http://" + shown + ":" + std::to_string(admin_http->port()) +
                          (admin_token.empty() ? " (no token)" : " (bearer token required)"));
    }
    for (auto& r : loaded->routes) supervisor.start(std::move(r));
    reload_worker.open();
    auto drain_all = [&] {
        // Draining can take a while; a second SIGINT/SIGTERM meanwhile means "now". A route
        // whose plugin call never returns cannot be joined: a moment past the longest drain
        // deadline (sinks get what is left of it, at least 1 s, to flush), the process ends
        // without it (its disk spool, if any, keeps what it held).
        const auto give_up = std::chrono::steady_clock::now() +
                             std::chrono::milliseconds(longest_drain_ms.load()) +
                             std::chrono::seconds(3);
        std::atomic<bool> stopped{false};
        supervisor.request_stop_all();
        std::thread stopper([&] {
            supervisor.stop_all();
            stopped = true;
        });
        const timespec slice{0, 100'000'000};
        while (!stopped) {
            const int again = sigtimedwait(&signals, nullptr, &slice);
            if (again == SIGINT || again == SIGTERM) {
                log::error("", "second signal: exiting without finishing the drain");
                exit_now(kExitInvalid);
            }
            supervisor.interrupt_overdue();
            if (std::chrono::steady_clock::now() > give_up) {
                for (const auto& st : supervisor.status()) {
                    if (st.state == RouteState::stopped) continue;
                    log::error("route " + st.name,
                               "did not stop in time" +
                                   (st.stuck_in.empty()
                                        ? std::string()
                                        : ": a call into " + st.stuck_in + " has not returned") +
                                   (st.durable ? "; its disk spool keeps the " +
                                                     std::to_string(st.buffered) +
                                                     " messages it held for the next start"
                                               : "; " + std::to_string(st.buffered) +
                                                     " messages were not delivered and are lost"));
                }
                log::error("", "exiting without the routes that did not stop");
                exit_now(kExitInvalid);
            }
        }
        stopper.join();
    };

    // The run loop: signals by signalfd, manifest changes by inotify, one poll for both.
    const int signal_fd = ::signalfd(-1, &signals, SFD_CLOEXEC);
    if (signal_fd < 0) {
        log::error("", std::string("signalfd: ") + std::strerror(errno));
        log::shutdown();
        return kExitInvalid;
    }
    std::optional<ManifestWatcher> watcher;
    try {
        watcher.emplace();
        watcher->watch(reloader.watched_paths());
    } catch (const std::exception& e) {
        log::warn("", std::string("manifest changes are not watched: ") + e.what());
    }
    using clock = std::chrono::steady_clock;
    std::optional<clock::time_point> first_change, last_change;
    while (true) {
        int timeout_ms = 200;
        if (last_change) {
            const auto due = std::min(*last_change + kDebounce, *first_change + kDebounceMax);
            timeout_ms = static_cast<int>(std::clamp<long long>(
                std::chrono::duration_cast<std::chrono::milliseconds>(due - clock::now()).count() +
                    1,
                0, 200));
        }
        pollfd fds[2] = {{signal_fd, POLLIN, 0}, {watcher ? watcher->fd() : -1, POLLIN, 0}};
        ::poll(fds, 2, timeout_ms);
        int sig = 0;
        if ((fds[0].revents & POLLIN) != 0) {
            signalfd_siginfo info{};
            if (::read(signal_fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
                sig = static_cast<int>(info.ssi_signo);
            }
        }
        if (sig == SIGINT || sig == SIGTERM) {
            log::info("", std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                              ": draining routes");
            break;
        }
        if (sig == SIGHUP) {
            log::info("", "SIGHUP: reloading");
            (void)reload_worker.request("SIGHUP");
        }
        const auto now = clock::now();
        if (watcher && (fds[1].revents & POLLIN) != 0 && watcher->read_events()) {
            if (!first_change) first_change = now;
            last_change = now;
        }
        if (last_change &&
            (now >= *last_change + kDebounce || now >= *first_change + kDebounceMax)) {
            (void)reload_worker.request("file change");
            first_change.reset();
            last_change.reset();
        }
        if (watcher && rewatch.exchange(false)) watcher->watch(reloader.watched_paths());
        if (supervisor.all_done()) {
            log::info("", "every route's input has ended");
            break;
        }
    }
    ::close(signal_fd);
    reload_worker.stop();
    drain_all();
    // What versions replaced or removed by reloads did not deliver counts too.
    std::uint64_t undelivered = supervisor.retired_undelivered();
    for (const auto& s : supervisor.status()) {
        if (s.state == RouteState::failed) {
            log::warn("", "route " + s.name + " ended failed: " + s.reason);
        }
        undelivered += s.undelivered;
    }
    if (undelivered > 0) {
        // Exit non-zero so that service managers and scripts notice the loss.
        log::error("", "stopped with " + std::to_string(undelivered) + " messages not delivered");
        log::shutdown();
        return kExitInvalid;
    }
    log::info("", "stopped");
    log::shutdown();
    return kExitOk;
}

}  // namespace sluice::cli

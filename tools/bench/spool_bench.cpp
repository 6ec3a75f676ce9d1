// What the disk spool costs compared with the in-memory buffer: wall and CPU time per message
// for append + read + confirm, as ratios to copying the same messages into a MessageArena.
//   sluice-bench-spool [--messages N] [--batch N] [--dir PATH] [--segment-bytes N]
// The spool lives under a mkdtemp directory in /var/tmp (a real disk, not tmpfs) unless --dir
// says otherwise, and is removed at the end. CPU time is the process's (user + system, every
// thread, page faults included); the kernel's writeback threads are not in it.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sluice/core/buffer/crc32c.hpp"
#include "sluice/core/buffer/disk_spool.hpp"
#include "sluice/core/message_arena.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double cpu_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Result {
    double wall_ns = 0;  // per message
    double cpu_ns = 0;
};

// Times `body(n)`, which must process n messages.
template <class F>
Result measure(std::size_t n, F body) {
    const double cpu0 = cpu_seconds();
    const auto wall0 = Clock::now();
    body(n);
    const double wall = std::chrono::duration<double>(Clock::now() - wall0).count();
    const double cpu = cpu_seconds() - cpu0;
    return {wall * 1e9 / static_cast<double>(n), cpu * 1e9 / static_cast<double>(n)};
}

struct Message {
    std::string topic = "sensors/temperature/s1";
    std::string payload;
    sluice_message view{};

    explicit Message(std::size_t size) : payload(size, 'x') {
        for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<char>('a' + i % 26);
        view.struct_size = sizeof view;
        view.topic = topic.data();
        view.topic_len = topic.size();
        view.payload = payload.data();
        view.payload_len = payload.size();
        view.qos = 1;
        view.timestamp_ms = 1700000000000;
    }
};

Result arena_run(const Message& m, std::size_t total, std::size_t batch) {
    sluice::MessageArena arena;
    auto body = [&](std::size_t n) {
        for (std::size_t done = 0; done < n; done += batch) {
            for (std::size_t i = 0; i < batch; ++i) arena.append(m.view);
            arena.clear();
        }
    };
    body(batch * 10);  // warm-up: capacities reach their steady state
    return measure(total, body);
}

// What the memory buffer does per message (core/src/buffer/memory_buffer.cpp, reproduced here
// so that this benchmark does not depend on the route runtime): append into an arena under a
// mutex; the consumer takes the whole arena by swap.
Result locked_arena_run(const Message& m, std::size_t total, std::size_t batch) {
    std::mutex mu;
    sluice::MessageArena filling, out;
    auto body = [&](std::size_t n) {
        for (std::size_t done = 0; done < n; done += batch) {
            for (std::size_t i = 0; i < batch; ++i) {
                std::lock_guard lock(mu);
                filling.append(m.view);
            }
            std::lock_guard lock(mu);
            out.clear();
            out.swap(filling);
        }
    };
    body(batch * 10);
    return measure(total, body);
}

std::uint64_t g_segment_bytes = 0;  // 0: SpoolOptions' default

Result spool_run(const Message& m, std::size_t total, std::size_t batch,
                 const std::filesystem::path& dir, sluice::FsyncMode mode) {
    sluice::SpoolOptions o;
    o.dir = dir;
    o.fsync = mode;
    o.fsync_interval = std::chrono::milliseconds(100);  // several syncs even in a short run
    if (g_segment_bytes) o.segment_bytes = g_segment_bytes;
    auto spool = sluice::DiskSpool::open(o, nullptr);
    // The host's one timer thread for every spool (FsyncMode::interval).
    std::atomic<bool> stop{false};
    std::thread timer([&] {
        while (!stop.load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            spool->sync_if_due(Clock::now());
        }
    });
    sluice::MessageArena arena;
    std::string error;
    auto body = [&](std::size_t n) {
        for (std::size_t done = 0; done < n; done += batch) {
            for (std::size_t i = 0; i < batch; ++i) {
                if (spool->append(m.view, ~std::uint64_t{0}, &error) !=
                    sluice::DiskSpool::Append::ok) {
                    std::fprintf(stderr, "append failed: %s\n", error.c_str());
                    std::exit(1);
                }
            }
            std::size_t got = 0;
            while (got < batch) {
                arena.clear();
                const std::size_t k = spool->read(arena, batch - got);
                spool->confirm(k);
                got += k;
            }
        }
    };
    // Warm-up: segments grow to their full size and a spare is in rotation.
    body(std::min<std::size_t>(total / 4, 200000) / batch * batch + batch);
    const Result r = measure(total, body);
    stop = true;
    timer.join();
    spool.reset();
    return r;
}

const char* mode_name(sluice::FsyncMode mode) {
    switch (mode) {
        case sluice::FsyncMode::never:
            return "spool, fsync never";
        case sluice::FsyncMode::interval:
            return "spool, fsync interval .1s";
        case sluice::FsyncMode::always:
            return "spool, fsync always";
    }
    return "?";
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t total = 2'000'000;
    std::size_t batch = 500;
    std::string base = "/var/tmp";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--messages") == 0) total = std::strtoul(argv[i + 1], nullptr, 10);
        if (std::strcmp(argv[i], "--batch") == 0) batch = std::strtoul(argv[i + 1], nullptr, 10);
        if (std::strcmp(argv[i], "--dir") == 0) base = argv[i + 1];
        if (std::strcmp(argv[i], "--segment-bytes") == 0) {
            g_segment_bytes = std::strtoull(argv[i + 1], nullptr, 10);
        }
    }
    if (batch == 0 || total < batch) {
        std::fprintf(stderr, "need --batch >= 1 and --messages >= --batch\n");
        return 2;
    }
    total = total / batch * batch;
    std::string tmpl = base + "/sluice-bench-spool-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
        std::perror(tmpl.c_str());
        return 1;
    }
    const std::filesystem::path root = tmpl;

    std::printf(
        "disk spool vs in-memory arena: append + read + confirm, batches of %zu, "
        "spool in %s, crc32c %s\n",
        batch, root.c_str(), sluice::crc32c_hardware() ? "sse4.2" : "portable");
    std::printf("%-26s %7s %10s %9s %9s %10s %10s\n", "", "size", "messages", "ns/msg", "cpu ns",
                "x arena", "x arena");
    std::printf("%-26s %7s %10s %9s %9s %10s %10s\n", "", "", "", "(wall)", "/msg", "(cpu)",
                "(wall)");
    int run = 0;
    for (const std::size_t size : {std::size_t{200}, std::size_t{2048}}) {
        const Message m(size);
        const std::size_t n = size > 1000 ? total / 4 / batch * batch : total;
        const Result arena = arena_run(m, n, batch);
        std::printf("%-26s %7zu %10zu %9.1f %9.1f %10s %10s\n", "arena append + clear", size, n,
                    arena.wall_ns, arena.cpu_ns, "1.00", "1.00");
        const Result locked = locked_arena_run(m, n, batch);
        std::printf("%-26s %7zu %10zu %9.1f %9.1f %10.2f %10.2f\n", "memory buffer (mutex+swap)",
                    size, n, locked.wall_ns, locked.cpu_ns, locked.cpu_ns / arena.cpu_ns,
                    locked.wall_ns / arena.wall_ns);
        for (const auto mode :
             {sluice::FsyncMode::never, sluice::FsyncMode::interval, sluice::FsyncMode::always}) {
            // fsync per message is bounded by the disk, not the CPU: fewer of them.
            const std::size_t k =
                mode == sluice::FsyncMode::always ? std::max(batch, std::size_t{2000}) : n;
            const Result r = spool_run(m, k, mode == sluice::FsyncMode::always ? 1 : batch,
                                       root / ("spool-" + std::to_string(run++)), mode);
            std::printf("%-26s %7zu %10zu %9.1f %9.1f %10.2f %10.2f\n", mode_name(mode), size, k,
                        r.wall_ns, r.cpu_ns, r.cpu_ns / arena.cpu_ns, r.wall_ns / arena.wall_ns);
        }
    }
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
    return 0;
}

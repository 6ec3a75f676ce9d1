// sluice-replay: publishes the Room Occupancy Estimation data set to MQTT as the room's
// sensor nodes would.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "dataset.hpp"
#include "options.hpp"
#include "pacer.hpp"
#include "payload.hpp"
#include "progress.hpp"
#include "publisher.hpp"
#include "sensors.hpp"
#include "summary.hpp"

namespace {

using namespace sluice::replay;

constexpr const char* kProgram = "sluice-replay";
constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr auto kDrainTimeout = std::chrono::seconds(30);
constexpr auto kDisconnectTimeout = std::chrono::seconds(5);
// A damaged file would otherwise bury the terminal in identical warnings.
constexpr std::uint64_t kMaxMalformedWarnings = 20;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitInterrupted = 130;

std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void request_stop(int /*signal*/) { g_stop.store(true); }

void install_stop_handlers() {
    struct sigaction action {};
    action.sa_handler = request_stop;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
}

Dataset load(const Options& options) {
    std::uint64_t warnings = 0;
    return load_dataset(options.file, options.rows,
                        [&](std::uint64_t line, const std::string& reason) {
                            if (++warnings <= kMaxMalformedWarnings) {
                                std::cerr << kProgram << ": warning: " << options.file << ":"
                                          << line << ": skipping malformed row: " << reason << "\n";
                            } else if (warnings == kMaxMalformedWarnings + 1) {
                                std::cerr << kProgram
                                          << ": warning: further malformed rows are counted "
                                             "but not listed\n";
                            }
                        });
}

int finish(Summary& summary, const Options& options) {
    std::cerr << format_summary(summary);
    if (!options.summary_json.empty()) {
        if (const auto err = write_summary_json(summary, options.summary_json); !err.empty()) {
            std::cerr << kProgram << ": cannot write the summary: " << err << "\n";
            return kExitFailure;
        }
    }
    if (!summary.error.empty()) {
        return kExitFailure;
    }
    return summary.interrupted ? kExitInterrupted : 0;
}

int replay(const Options& options) {
    if (!std::filesystem::exists(options.file)) {
        std::cerr << kProgram << ": data set not found: '" << options.file << "' (resolved to "
                  << std::filesystem::absolute(options.file).lexically_normal().string()
                  << "); pass --file PATH\n";
        return kExitFailure;
    }
    const Dataset dataset = load(options);

    const std::vector<std::string> topics = sensor_topics(options.topic_prefix);
    std::vector<std::uint64_t> sent_per_topic(kSensorCount, 0);
    Summary summary;
    summary.url = options.url;
    summary.file = options.file;
    summary.qos = options.qos;
    summary.pace = options.pace.text;
    summary.rows_read = dataset.rows_read;
    summary.rows_malformed = dataset.malformed;
    const auto fill_topics = [&] {
        summary.topics.clear();
        for (std::size_t i = 0; i < kSensorCount; ++i) {
            summary.topics.emplace_back(topics[i], sent_per_topic[i]);
        }
    };
    fill_topics();

    if (dataset.rows.empty()) {
        summary.error = "no valid rows in '" + options.file + "'";
        return finish(summary, options);
    }

    const std::string client_id = options.client_id.empty()
                                      ? std::string(kProgram) + "-" + std::to_string(getpid())
                                      : options.client_id;
    Publisher publisher(options.url, client_id, options.qos, options.max_inflight);
    try {
        publisher.connect(kConnectTimeout);
    } catch (const std::exception& e) {
        summary.error = e.what();
        return finish(summary, options);
    }

    Progress progress(isatty(STDERR_FILENO) != 0, dataset.rows.size(), options.qos);
    Pacer pacer(options.pace);
    const auto start = std::chrono::steady_clock::now();
    bool ok = true;
    for (const Row& row : dataset.rows) {
        if (!pacer.wait_until_due(row.time, g_stop, [&] {
                progress.update(summary.rows_published, publisher.counters());
            })) {
            break;
        }
        for (std::size_t i = 0; i < kSensorCount && ok; ++i) {
            ok = publisher.publish(topics[i], make_payload(row.ts, row.values[i]));
            if (ok) {
                ++sent_per_topic[i];
            }
        }
        if (!ok) {
            break;
        }
        ++summary.rows_published;
        progress.update(summary.rows_published, publisher.counters());
    }
    summary.interrupted = g_stop.load() && summary.rows_published < dataset.rows.size();
    publisher.drain(kDrainTimeout);
    summary.elapsed_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    publisher.disconnect(kDisconnectTimeout);
    progress.update(summary.rows_published, publisher.counters(), true);
    progress.finish();

    summary.counters = publisher.counters();
    summary.error = publisher.error();
    if (summary.error.empty() && options.qos > 0 &&
        summary.counters.acknowledged != summary.counters.sent) {
        summary.error = std::to_string(summary.counters.sent - summary.counters.acknowledged) +
                        " message(s) were never acknowledged";
    }
    fill_topics();
    return finish(summary, options);
}

}  // namespace

int main(int argc, char** argv) {
    std::string error;
    const auto options = parse_options(argc, argv, error);
    if (!options) {
        std::cerr << kProgram << ": " << error << "\n";
        return kExitUsage;
    }
    if (options->help) {
        std::cout << usage_text(kProgram);
        return 0;
    }
    install_stop_handlers();
    try {
        return replay(*options);
    } catch (const std::exception& e) {
        std::cerr << kProgram << ": " << e.what() << "\n";
        return kExitFailure;
    }
}

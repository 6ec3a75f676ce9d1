// sluice-devkafka: a development Kafka (librdkafka's mock cluster) for the demo and the tests.
#include <csignal>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

#include "atomic_file.hpp"
#include "mock_cluster.hpp"
#include "options.hpp"

extern "C" int sluice_devkafka_nagle;  // tcp_nodelay.c

namespace {

constexpr const char* kProgram = "sluice-devkafka";

void log_line(const std::string& text) { std::cerr << kProgram << ": " << text << std::endl; }

// The signals this program acts on. They are blocked before librdkafka starts its threads,
// so those threads inherit the mask and every delivery is picked up by sigwait() below:
// nothing runs in signal-handler context.
sigset_t handled_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    return set;
}

int serve(sluice::devkafka::MockCluster& cluster, const sigset_t& signals, int brokers) {
    for (;;) {
        int signal_number = 0;
        if (const int rc = sigwait(&signals, &signal_number); rc != 0) {
            log_line("sigwait failed (" + std::to_string(rc) + ")");
            return 1;
        }
        if (signal_number == SIGTERM || signal_number == SIGINT) {
            log_line(std::string("stopping on ") +
                     (signal_number == SIGTERM ? "SIGTERM" : "SIGINT"));
            return 0;
        }
        const bool down = signal_number == SIGUSR1;
        const std::string err =
            down ? cluster.set_all_brokers_down() : cluster.set_all_brokers_up();
        if (err.empty()) {
            log_line(std::string(down ? "SIGUSR1: " : "SIGUSR2: ") + "all " +
                     std::to_string(brokers) + " broker(s) " + (down ? "down" : "up"));
        } else {
            log_line(std::string("cannot set brokers ") + (down ? "down" : "up") + ": " + err);
        }
    }
}

int run(const sluice::devkafka::Options& options) {
    const sigset_t signals = handled_signals();
    if (const int rc = pthread_sigmask(SIG_BLOCK, &signals, nullptr); rc != 0) {
        log_line("cannot block signals (" + std::to_string(rc) + ")");
        return 1;
    }

    sluice::devkafka::MockCluster cluster(options.brokers);
    for (const auto& topic : options.topics) {
        if (const auto err = cluster.create_topic(topic.name, topic.partitions); !err.empty()) {
            log_line("cannot create topic '" + topic.name + "': " + err);
            return 1;
        }
        log_line("created topic '" + topic.name + "' with " + std::to_string(topic.partitions) +
                 " partition(s)");
    }

    const std::string bootstraps = cluster.bootstraps();
    if (!options.bootstrap_file.empty()) {
        if (const auto err =
                sluice::tools::write_file_atomically(options.bootstrap_file, bootstraps + "\n");
            !err.empty()) {
            log_line(err);
            return 1;
        }
    }
    // Scripts read this first line to learn where to connect, so it must not wait in a buffer.
    std::cout << bootstraps << std::endl;
    log_line("mock cluster with " + std::to_string(options.brokers) + " broker(s) listening on " +
             bootstraps);

    return serve(cluster, signals, options.brokers);
}

}  // namespace

int main(int argc, char** argv) {
    std::string error;
    const auto options = sluice::devkafka::parse_options(argc, argv, error);
    if (options) sluice_devkafka_nagle = options->nagle ? 1 : 0;
    if (!options) {
        std::cerr << kProgram << ": " << error << "\n" << sluice::devkafka::usage_text(kProgram);
        return 2;
    }
    if (options->help) {
        std::cout << sluice::devkafka::usage_text(kProgram);
        return 0;
    }
    try {
        return run(*options);
    } catch (const std::exception& e) {
        log_line(e.what());
        return 1;
    }
}

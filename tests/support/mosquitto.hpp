// A real mosquitto broker for tests: its own process on free loopback ports, with a generated
// config in a temporary directory, stopped (SIGTERM, then SIGKILL) by the destructor. It can be
// stopped and started again on the same ports, to test what clients do while the broker is down.
//
//   sluice::testing::MosquittoOptions options;
//   options.extra_config = {"max_queued_messages 100000"};
//   sluice::testing::Mosquitto broker(options);
//   connect_to(broker.url());          // tcp://127.0.0.1:<port>
//   broker.stop();  ...  broker.start();
//
// Link the CMake target `sluice_test_mosquitto`. Needs the `mosquitto` executable (Debian
// package mosquitto); without it the constructor throws, so tests fail rather than skip.
// The broker gets SIGKILL when the thread that started it exits (PR_SET_PDEATHSIG), so a crashed
// test leaves no broker behind: start it from a thread that outlives its use.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace sluice::testing {

/// The broker could not be found, started or stopped; what() says why, with its log.
class MosquittoError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct MosquittoTls {
    std::filesystem::path ca_file;     ///< CA that signed cert_file (and client certificates)
    std::filesystem::path cert_file;   ///< the broker's certificate, PEM
    std::filesystem::path key_file;    ///< its private key, PEM
    bool require_certificate = false;  ///< mutual TLS: clients must present a certificate
};

struct MosquittoOptions {
    /// Lines appended to the config after the plain listener, e.g. "max_queued_messages 5000".
    std::vector<std::string> extra_config;
    /// When set, a second listener speaks TLS on tls_port().
    std::optional<MosquittoTls> tls;
    /// false: only pick the ports; start() later (tests of "broker down at start").
    bool start = true;
    /// How long start() waits for the broker to accept connections.
    std::chrono::milliseconds start_timeout{10000};
};

class Mosquitto {
public:
    explicit Mosquitto(MosquittoOptions options = {});
    ~Mosquitto();
    Mosquitto(const Mosquitto&) = delete;
    Mosquitto& operator=(const Mosquitto&) = delete;

    /// Starts the broker (again) on the same ports and waits until it accepts connections.
    void start();
    /// SIGTERM, then SIGKILL after `grace`; waits for the process to end. No-op when stopped.
    void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));
    bool running() const { return pid_ > 0; }

    std::uint16_t port() const { return port_; }
    /// 0 without TLS.
    std::uint16_t tls_port() const { return tls_port_; }
    /// tcp://127.0.0.1:<port>
    std::string url() const;
    /// ssl://localhost:<tls_port>: the host name a test certificate is issued for.
    std::string tls_url() const;
    /// The broker's output so far (connections, errors), for failure messages.
    std::string log() const;
    /// The temporary directory holding the config and log; removed by the destructor.
    const std::filesystem::path& dir() const { return dir_; }

    /// Publishes one message over MQTT 5 with `mosquitto_pub` (Debian package
    /// mosquitto-clients) on the plain listener and waits until it is sent. Payloads may hold
    /// any bytes. A separate process, so that the test's own MQTT clients see a broker exactly
    /// as in production. Throws MosquittoError when mosquitto_pub fails.
    void publish(
        const std::string& topic, const std::string& payload, int qos = 1, bool retain = false,
        const std::vector<std::pair<std::string, std::string>>& user_properties = {}) const;
    /// Publishes each of `payloads` (no newlines) as one message on `topic`, in order, with one
    /// connection: for many messages.
    void publish_lines(const std::string& topic, const std::vector<std::string>& payloads,
                       int qos = 1) const;

    /// The mosquitto executable: $SLUICE_MOSQUITTO, else PATH, /usr/sbin, /usr/local/sbin.
    /// Throws MosquittoError naming the Debian package when it is not installed.
    static std::filesystem::path executable();
    /// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0).
    static std::uint16_t free_port();

private:
    void pick_ports();
    void write_config() const;
    void launch();
    static bool accepts(std::uint16_t port);
    void run_pub(std::vector<std::string> args, const std::string& input) const;

    MosquittoOptions options_;
    std::filesystem::path exe_;
    std::filesystem::path dir_;
    std::uint16_t port_ = 0;
    std::uint16_t tls_port_ = 0;
    pid_t pid_ = -1;
};

/// Polls `done` every 10 ms until it returns true or `timeout` passes; returns its last answer.
template <class F>
bool wait_until(F&& done, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= until) return done();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

}  // namespace sluice::testing

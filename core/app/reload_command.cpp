// `sluice reload`: asks the running daemon to reload (POST /api/reload on its admin endpoint)
// and prints the report it answers with. A plain socket: one request, no dependency.
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <string>

#include "cli.hpp"
#include "sluice/core/admin/admin_api.hpp"
#include "sluice/core/admin/http_server.hpp"

namespace sluice::cli {

namespace {

// A reload waits for the old versions of changed routes to drain (drain_timeout_ms each).
constexpr int kAnswerTimeoutS = 300;

int connect_to(const std::string& host, std::uint16_t port, std::string& error) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string service = std::to_string(port);
    if (const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
        error = std::string("cannot resolve ") + host + ": " + ::gai_strerror(rc);
        return -1;
    }
    int fd = -1;
    for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
        fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        error = std::strerror(errno);
        ::close(fd);
        fd = -1;
    }
    ::freeaddrinfo(found);
    return fd;
}

}  // namespace

int cmd_reload(const Options& o) {
    if (o.help) {
        std::cout << "Usage: sluice reload [-c FILE] [--admin HOST:PORT]\n"
                     "Asks the running sluice to reload its routes (POST /api/reload on its "
                     "admin endpoint: admin.listen of the config, or --admin) and prints the "
                     "report as JSON.\nExit 0 when everything applied; 1 when something was "
                     "rejected (the report says what and why) or the daemon cannot be "
                     "reached.\n";
        return kExitOk;
    }
    Diagnostics diag;
    const HostConfig host = resolve_config(o, diag);
    const std::string listen = o.admin.empty() ? host.admin_listen : o.admin;
    if (listen.empty()) {
        std::cerr << "sluice reload: no admin endpoint to ask: set admin.listen in the host "
                     "config (-c FILE) or give --admin HOST:PORT; or send the daemon SIGHUP "
                     "(kill -HUP <pid>), which reloads without a report\n";
        return kExitInvalid;
    }
    std::string address;
    std::uint16_t port = 0;
    std::string error;
    if (!admin::parse_listen(listen, address, port, error)) {
        std::cerr << "sluice reload: --admin: " << error << "\n";
        return kExitUsage;
    }
    // A daemon listening on every address is reached on loopback.
    if (address == "0.0.0.0") address = "127.0.0.1";
    if (address == "::") address = "::1";
    std::string token;
    try {
        token = admin::load_token(host.admin_token_file.string(), host.admin_token_env);
    } catch (const std::exception& e) {
        std::cerr << "sluice reload: " << e.what() << "\n";
        return kExitInvalid;
    }
    const int fd = connect_to(address, port, error);
    if (fd < 0) {
        std::cerr << "sluice reload: cannot reach the daemon at " << listen << ": " << error
                  << " (is sluice running with admin.listen " << listen << "?)\n";
        return kExitInvalid;
    }
    timeval tv{kAnswerTimeoutS, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string request = "POST /api/reload HTTP/1.1\r\nHost: " + listen +
                          "\r\nContent-Length: 0\r\nConnection: close\r\n";
    if (!token.empty()) request += "Authorization: Bearer " + token + "\r\n";
    request += "\r\n";
    for (std::size_t sent = 0; sent < request.size();) {
        const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            std::cerr << "sluice reload: cannot send the request: " << std::strerror(errno) << "\n";
            ::close(fd);
            return kExitInvalid;
        }
        sent += static_cast<std::size_t>(n);
    }
    std::string answer;
    char buf[8192];
    while (true) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            answer.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0) {
            std::cerr << "sluice reload: no answer from " << listen << ": " << std::strerror(errno)
                      << "\n";
            ::close(fd);
            return kExitInvalid;
        }
        break;
    }
    ::close(fd);
    const auto space = answer.find(' ');
    const auto body_at = answer.find("\r\n\r\n");
    const int status = space == std::string::npos ? 0 : std::atoi(answer.c_str() + space + 1);
    const std::string body = body_at == std::string::npos ? "" : answer.substr(body_at + 4);
    if (status == 200 || status == 409) {
        std::cout << body;
        if (status == 409) std::cerr << "sluice reload: not everything was applied (see above)\n";
        return status == 200 ? kExitOk : kExitInvalid;
    }
    std::cerr << "sluice reload: the daemon answered " << (status ? std::to_string(status) : "?")
              << ": " << body;
    if (status == 401) std::cerr << "(check admin.token_file / admin.token_env)\n";
    return kExitInvalid;
}

}  // namespace sluice::cli

// A small HTTP/1.1 server for the admin endpoints, on Boost.Beast (Boost is already a
// dependency, for Boost.DLL): one thread runs every connection asynchronously, so that a slow or
// idle client (a dashboard left open) costs a socket, not a thread, and the process's thread
// count stays bounded. Handlers run on that thread and must not block: they read snapshots.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace sluice::admin {

struct Request {
    std::string method;
    std::string target;         // path and query, as sent
    std::string authorization;  // the Authorization header, "" when absent
};

/// A server-sent event stream (text/event-stream): the server asks for the next data every
/// interval() until the client goes away, then destroys the stream.
class EventStream {
public:
    virtual ~EventStream() = default;
    /// On the server's thread: what to send now, already in event format ("data: ...\n\n"),
    /// or "" for nothing. Must not block.
    virtual std::string next() = 0;
    virtual std::chrono::milliseconds interval() const { return std::chrono::milliseconds(1000); }
};

struct Response;

/// An answer that takes a while (a reload): the server asks ready() every few milliseconds,
/// serving other clients meanwhile, and sends take() once it is.
class PendingResponse {
public:
    virtual ~PendingResponse() = default;
    /// On the server's thread; must not block.
    virtual bool ready() = 0;
    virtual Response take() = 0;
};

struct Response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    std::string www_authenticate;              // set with 401
    std::shared_ptr<EventStream> events;       // set: the answer is this stream, not `body`
    std::shared_ptr<PendingResponse> pending;  // set: the answer comes later, from it
};

using Handler = std::function<Response(const Request&)>;

class HttpServer {
public:
    /// Binds `host` (an IPv4 or IPv6 literal, or "localhost") and `port` (0: any free one)
    /// now, so that a port in use is an error at start; throws std::runtime_error saying why.
    HttpServer(const std::string& host, std::uint16_t port, Handler handler);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    /// The port actually bound.
    std::uint16_t port() const;

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

/// Splits "host:port" or "[v6]:port"; false (with `error`) when it is neither.
bool parse_listen(const std::string& listen, std::string& host, std::uint16_t& port,
                  std::string& error);
/// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback(const std::string& host);

}  // namespace sluice::admin

#include "sluice/core/admin/http_server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <thread>

namespace sluice::admin {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// A client that sends nothing for this long is dropped: it holds a socket and nothing else.
constexpr auto kIdleTimeout = std::chrono::seconds(30);
// An event stream with nothing to say sends a comment this often.
constexpr auto kKeepAlive = std::chrono::seconds(15);
// The admin API takes no request bodies worth the name.
constexpr std::uint64_t kBodyLimit = 64 * 1024;

class Session : public std::enable_shared_from_this<Session> {
public:
    Session(tcp::socket socket, const Handler& handler)
        : stream_(std::move(socket)), handler_(handler) {}

    void read() {
        parser_.emplace();
        parser_->body_limit(kBodyLimit);
        stream_.expires_after(kIdleTimeout);
        http::async_read(
            stream_, buffer_, *parser_,
            [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
    }

private:
    void on_read(beast::error_code ec) {
        if (ec) {
            beast::error_code ignored;
            stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
            return;
        }
        const auto& req = parser_->get();
        Request r;
        r.method = std::string(req.method_string());
        r.target = std::string(req.target());
        if (const auto it = req.find(http::field::authorization); it != req.end()) {
            r.authorization = std::string(it->value());
        }
        Response out;
        try {
            out = handler_(r);
        } catch (const std::exception& e) {
            out = Response{
                500, "text/plain; charset=utf-8", std::string("error: ") + e.what(), {}, {}, {}};
        }
        if (out.events) {
            stream_events(std::move(out.events));
            return;
        }
        if (out.pending) {
            wait_pending(std::move(out.pending), req.version(), req.keep_alive());
            return;
        }
        respond(std::move(out), req.version(), req.keep_alive());
    }

    void wait_pending(std::shared_ptr<PendingResponse> pending, unsigned version, bool keep) {
        stream_.expires_never();
        timer_.expires_after(std::chrono::milliseconds(5));
        timer_.async_wait([self = shared_from_this(), pending = std::move(pending), version,
                           keep](beast::error_code ec) mutable {
            if (ec) return;
            if (!pending->ready()) {
                self->wait_pending(std::move(pending), version, keep);
                return;
            }
            self->respond(pending->take(), version, keep);
        });
    }

    void respond(Response out, unsigned version, bool keep_alive) {
        res_ = {};
        res_.version(version);
        res_.result(static_cast<http::status>(out.status));
        res_.set(http::field::server, "sluice");
        res_.set(http::field::content_type, out.content_type);
        res_.set(http::field::cache_control, "no-store");
        if (!out.www_authenticate.empty()) {
            res_.set(http::field::www_authenticate, out.www_authenticate);
        }
        res_.keep_alive(keep_alive);
        res_.body() = std::move(out.body);
        res_.prepare_payload();
        http::async_write(
            stream_, res_, [self = shared_from_this()](beast::error_code wec, std::size_t) {
                if (wec || !self->res_.keep_alive()) {
                    beast::error_code ignored;
                    self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                    return;
                }
                self->read();
            });
    }

    // The rest of the connection is one event stream: headers, then whatever the stream has
    // every interval, and a comment now and then so that proxies keep the connection open.
    void stream_events(std::shared_ptr<EventStream> events) {
        events_ = std::move(events);
        stream_.expires_never();
        out_ =
            "HTTP/1.1 200 OK\r\nServer: sluice\r\nContent-Type: text/event-stream\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\nretry: 2000\n\n";
        out_ += events_->next();
        write_events();
    }
    void write_events() {
        last_write_ = std::chrono::steady_clock::now();
        net::async_write(stream_.socket(), net::buffer(out_),
                         [self = shared_from_this()](beast::error_code ec, std::size_t) {
                             if (ec) return;  // the client went away: the stream ends
                             self->wait_events();
                         });
    }
    void wait_events() {
        timer_.expires_after(events_->interval());
        timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
            if (ec) return;
            self->out_ = self->events_->next();
            if (self->out_.empty() &&
                std::chrono::steady_clock::now() - self->last_write_ >= kKeepAlive) {
                self->out_ = ": keep-alive\n\n";
            }
            if (self->out_.empty()) {
                self->wait_events();
            } else {
                self->write_events();
            }
        });
    }

    beast::tcp_stream stream_;
    const Handler& handler_;
    net::steady_timer timer_{stream_.get_executor()};
    std::shared_ptr<EventStream> events_;
    std::string out_;
    std::chrono::steady_clock::time_point last_write_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    http::response<http::string_body> res_;
};

}  // namespace

class HttpServer::Impl {
public:
    Impl(const std::string& host, std::uint16_t port, Handler handler)
        : handler_(std::move(handler)) {
        beast::error_code ec;
        const auto address =
            net::ip::make_address(host == "localhost" ? std::string("127.0.0.1") : host, ec);
        if (ec) throw std::runtime_error("'" + host + "' is not an IP address");
        const tcp::endpoint endpoint(address, port);
        acceptor_.open(endpoint.protocol(), ec);
        if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
        if (!ec) acceptor_.bind(endpoint, ec);
        if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
        if (ec) {
            throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) +
                                     ": " + ec.message());
        }
        accept();
        thread_ = std::thread([this] { ioc_.run(); });
    }
    ~Impl() {
        net::post(ioc_, [this] {
            beast::error_code ignored;
            acceptor_.close(ignored);
        });
        ioc_.stop();
        if (thread_.joinable()) thread_.join();
    }
    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

private:
    void accept() {
        acceptor_.async_accept(
            net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
                if (!acceptor_.is_open()) return;
                if (!ec) std::make_shared<Session>(std::move(socket), handler_)->read();
                accept();
            });
    }

    Handler handler_;
    net::io_context ioc_{1};
    tcp::acceptor acceptor_{ioc_};
    std::thread thread_;
};

HttpServer::HttpServer(const std::string& host, std::uint16_t port, Handler handler)
    : impl_(std::make_unique<Impl>(host, port, std::move(handler))) {}
HttpServer::~HttpServer() = default;
std::uint16_t HttpServer::port() const { return impl_->port(); }

bool parse_listen(const std::string& listen, std::string& host, std::uint16_t& port,
                  std::string& error) {
    std::string port_text;
    if (!listen.empty() && listen.front() == '[') {
        const auto close = listen.find(']');
        if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
            error = "'" + listen + "' is not [address]:port";
            return false;
        }
        host = listen.substr(1, close - 1);
        port_text = listen.substr(close + 2);
    } else {
        const auto colon = listen.rfind(':');
        if (colon == std::string::npos || colon == 0) {
            error = "'" + listen + "' is not host:port (e.g. 127.0.0.1:9464)";
            return false;
        }
        host = listen.substr(0, colon);
        port_text = listen.substr(colon + 1);
    }
    unsigned value = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || value > 65535 ||
        port_text.empty()) {
        error = "'" + listen + "': the port must be a number from 0 to 65535";
        return false;
    }
    port = static_cast<std::uint16_t>(value);
    return true;
}

bool is_loopback(const std::string& host) {
    if (host == "localhost") return true;
    beast::error_code ec;
    const auto address = net::ip::make_address(host, ec);
    return !ec && address.is_loopback();
}

}  // namespace sluice::admin

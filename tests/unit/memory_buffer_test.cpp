#include <catch2/catch.hpp>
#include <sluice/sdk/testing.hpp>
#include <thread>

#include "sluice/core/buffer/route_buffer.hpp"

namespace {

sluice::RouteBuffer::Append append(sluice::RouteBuffer& b, const std::string& payload,
                                   std::uint64_t limit = UINT64_MAX) {
    auto m = sluice::sdk::testing::message("t/1", payload);
    m.headers = {{"h", payload}};
    std::vector<sluice_header> hs;
    return b.append(m.view(hs), limit, nullptr);
}

std::uint64_t size_of(const std::string& payload) {
    auto m = sluice::sdk::testing::message("t/1", payload);
    m.headers = {{"h", payload}};
    std::vector<sluice_header> hs;
    return sluice::RouteBuffer::size_of(m.view(hs));
}

std::vector<std::string> payloads(sluice::MessageArena& a) {
    std::vector<std::string> out;
    const auto& b = a.batch();
    for (std::size_t i = 0; i < b.count; ++i) {
        const auto m = sluice::sdk::MessageView(b.messages[i]);
        CHECK(m.header("h") == std::optional<std::string_view>(m.payload()));
        out.emplace_back(m.payload());
    }
    return out;
}

}  // namespace

TEST_CASE("memory buffer hands out batches in order and forgets only what is confirmed",
          "[core][buffer]") {
    auto b = sluice::make_memory_buffer(3);
    for (int i = 0; i < 7; ++i)
        REQUIRE(append(*b, "p" + std::to_string(i)) == sluice::RouteBuffer::Append::ok);
    CHECK(b->messages() == 7);
    CHECK(b->unread() == 7);
    CHECK(b->bytes() == 7 * size_of("p0"));
    std::vector<std::string> seen;
    sluice::MessageArena out;
    while (b->read(out, 3) > 0) {
        CHECK(out.size() <= 3);
        for (auto& p : payloads(out)) seen.push_back(p);
        out.clear();
    }
    CHECK(seen == std::vector<std::string>{"p0", "p1", "p2", "p3", "p4", "p5", "p6"});
    CHECK(b->unread() == 0);
    CHECK(b->messages() == 7);  // read, not confirmed: still held
    b->confirm(3);
    CHECK(b->messages() == 4);
    b->confirm(4);
    CHECK(b->messages() == 0);
    CHECK(b->bytes() == 0);
}

TEST_CASE("memory buffer: a reader asking for less than a batch gets the rest later",
          "[core][buffer]") {
    auto b = sluice::make_memory_buffer(10);
    for (int i = 0; i < 5; ++i) append(*b, "p" + std::to_string(i));
    sluice::MessageArena out;
    CHECK(b->read(out, 2) == 2);
    CHECK(payloads(out) == std::vector<std::string>{"p0", "p1"});
    out.clear();
    CHECK(b->read(out, 10) == 3);
    CHECK(payloads(out) == std::vector<std::string>{"p2", "p3", "p4"});
}

TEST_CASE("memory buffer is bounded in bytes and drops oldest unread on request",
          "[core][buffer]") {
    auto b = sluice::make_memory_buffer(2);
    const auto one = size_of("xx");
    CHECK(append(*b, "xx", 3 * one) == sluice::RouteBuffer::Append::ok);
    CHECK(append(*b, "xx", 3 * one) == sluice::RouteBuffer::Append::ok);
    CHECK(append(*b, "xx", 3 * one) == sluice::RouteBuffer::Append::ok);
    CHECK(append(*b, "xx", 3 * one) == sluice::RouteBuffer::Append::full);
    sluice::MessageArena out;
    CHECK(b->read(out, 1) == 1);  // read and unconfirmed: never dropped
    CHECK(b->drop_oldest_unread(0) == 2);
    CHECK(b->messages() == 1);
    CHECK(b->bytes() == one);
    b->confirm(1);
    CHECK(b->bytes() == 0);
}

TEST_CASE("memory buffer takes appends from several threads while it is read", "[core][buffer]") {
    auto b = sluice::make_memory_buffer(50);
    constexpr int kThreads = 4, kEach = 2000;
    std::vector<std::thread> producers;
    for (int t = 0; t < kThreads; ++t) {
        producers.emplace_back([&, t] {
            for (int i = 0; i < kEach; ++i) {
                append(*b, std::to_string(t) + ":" + std::to_string(i));
            }
        });
    }
    std::vector<int> next(kThreads, 0);
    int total = 0;
    sluice::MessageArena out;
    while (total < kThreads * kEach) {
        const auto n = b->read(out, 50);
        for (const auto& p : payloads(out)) {
            const int t = std::stoi(p.substr(0, p.find(':')));
            CHECK(std::stoi(p.substr(p.find(':') + 1)) == next[t]++);  // per producer order
        }
        b->confirm(n);
        total += static_cast<int>(n);
        out.clear();
        if (n == 0) std::this_thread::yield();
    }
    for (auto& p : producers) p.join();
    CHECK(b->messages() == 0);
}

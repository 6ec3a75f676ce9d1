#include "progress.hpp"

#include <cstdio>

namespace sluice::replay {
namespace {

constexpr auto kTerminalInterval = std::chrono::milliseconds(250);
constexpr auto kLogInterval = std::chrono::seconds(5);

}  // namespace

Progress::Progress(bool terminal, std::uint64_t total_rows, int qos)
    : terminal_(terminal),
      total_rows_(total_rows),
      qos_(qos),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

std::string Progress::render(std::uint64_t rows_done, const PublisherCounters& counters) const {
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(counters.sent) / elapsed : 0.0;
    char text[200];
    if (qos_ > 0) {
        std::snprintf(text, sizeof text,
                      "rows %llu/%llu  sent %llu  acked %llu  failed %llu  %.1f s  %.0f msg/s",
                      static_cast<unsigned long long>(rows_done),
                      static_cast<unsigned long long>(total_rows_),
                      static_cast<unsigned long long>(counters.sent),
                      static_cast<unsigned long long>(counters.acknowledged),
                      static_cast<unsigned long long>(counters.failed), elapsed, rate);
    } else {
        std::snprintf(text, sizeof text,
                      "rows %llu/%llu  sent %llu  failed %llu  %.1f s  %.0f msg/s",
                      static_cast<unsigned long long>(rows_done),
                      static_cast<unsigned long long>(total_rows_),
                      static_cast<unsigned long long>(counters.sent),
                      static_cast<unsigned long long>(counters.failed), elapsed, rate);
    }
    return text;
}

void Progress::update(std::uint64_t rows_done, const PublisherCounters& counters, bool force) {
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < (terminal_ ? std::chrono::steady_clock::duration(kTerminalInterval)
                                           : std::chrono::steady_clock::duration(kLogInterval))) {
        return;
    }
    if (!terminal_ && counters.sent == last_sent_ && counters.acknowledged == last_acknowledged_ &&
        !force) {
        return;
    }
    last_ = now;
    last_sent_ = counters.sent;
    last_acknowledged_ = counters.acknowledged;
    const std::string line = render(rows_done, counters);
    if (terminal_) {
        // Pad over the rest of a longer previous line instead of relying on escape codes.
        const std::size_t pad = last_width_ > line.size() ? last_width_ - line.size() : 0;
        std::fprintf(stderr, "\r%s%*s", line.c_str(), static_cast<int>(pad), "");
        last_width_ = line.size();
        drawn_ = true;
    } else {
        std::fprintf(stderr, "sluice-replay: %s\n", line.c_str());
    }
    std::fflush(stderr);
}

void Progress::finish() {
    if (terminal_ && drawn_) {
        std::fputc('\n', stderr);
        drawn_ = false;
    }
}

}  // namespace sluice::replay

// The shared pool routes run on: strands, timers, removal, and the watchdog's spare threads.
#include "sluice/core/runtime/executor.hpp"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

using namespace std::chrono_literals;
using sluice::Executor;

namespace {

struct Counting : Executor::Task {
    std::atomic<int> slices{0};
    std::atomic<int> concurrent{0};
    std::atomic<int> most_concurrent{0};
    std::chrono::milliseconds work{0};
    std::atomic<int> overdue_reports{0};

    void run_slice() override {
        const int now = ++concurrent;
        int seen = most_concurrent.load();
        while (now > seen && !most_concurrent.compare_exchange_weak(seen, now)) {
        }
        if (work.count() > 0) std::this_thread::sleep_for(work);
        ++slices;
        --concurrent;
    }
    void on_overdue(std::chrono::milliseconds) override { ++overdue_reports; }
};

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 5000ms) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        if (done()) return true;
        std::this_thread::sleep_for(2ms);
    }
    return done();
}

}  // namespace

TEST_CASE("a task's slices never run at once, and a schedule during a slice is not lost",
          "[core][executor]") {
    Executor ex(4);
    Counting task;
    task.work = 1ms;
    auto slot = ex.add(task);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 200; ++i) ex.schedule(*slot);
        });
    }
    for (auto& t : threads) t.join();
    // The last schedule either found the task queued or running: one more slice follows.
    const int before = task.slices.load();
    ex.schedule(*slot);
    REQUIRE(eventually([&] { return task.slices.load() > before && task.concurrent == 0; }));
    CHECK(task.most_concurrent == 1);
    ex.remove(*slot);
}

TEST_CASE("timers run a task at its time, the earliest wins, and removal cancels them",
          "[core][executor]") {
    Executor ex(2);
    Counting task;
    auto slot = ex.add(task);
    const auto start = std::chrono::steady_clock::now();
    ex.schedule_at(*slot, start + 10s);
    ex.schedule_at(*slot, start + 50ms);  // earlier: replaces the 10 s one
    REQUIRE(eventually([&] { return task.slices == 1; }));
    CHECK(std::chrono::steady_clock::now() - start >= 50ms);
    std::this_thread::sleep_for(100ms);
    CHECK(task.slices == 1);  // the replaced timer does not fire as well

    Counting gone;
    auto gone_slot = ex.add(gone);
    ex.schedule_at(*gone_slot, std::chrono::steady_clock::now() + 50ms);
    ex.remove(*gone_slot);
    std::this_thread::sleep_for(150ms);
    CHECK(gone.slices == 0);
    ex.remove(*slot);
}

TEST_CASE("an idle executor runs nothing", "[core][executor]") {
    Executor ex(2);
    std::vector<std::unique_ptr<Counting>> tasks;
    std::vector<std::shared_ptr<Executor::Slot>> slots;
    for (int i = 0; i < 1000; ++i) {
        tasks.push_back(std::make_unique<Counting>());
        slots.push_back(ex.add(*tasks.back()));
        ex.schedule(*slots.back());
    }
    REQUIRE(eventually([&] { return ex.slices() == 1000; }));
    std::this_thread::sleep_for(300ms);
    CHECK(ex.slices() == 1000);
    CHECK(ex.threads() == 2);
    for (auto& s : slots) ex.remove(*s);
}

TEST_CASE("a stuck slice gets a spare thread, so other tasks go on, and is reported",
          "[core][executor]") {
    Executor ex(1, 100ms);
    Counting stuck;
    stuck.work = 800ms;
    Counting other;
    auto stuck_slot = ex.add(stuck);
    auto other_slot = ex.add(other);
    ex.schedule(*stuck_slot);
    REQUIRE(eventually([&] { return stuck.concurrent == 1; }));
    ex.schedule(*other_slot);
    // With one base thread, `other` runs only because the watchdog lent a spare.
    REQUIRE(eventually([&] { return other.slices == 1; }, 600ms));
    CHECK(stuck.slices == 0);
    CHECK(ex.threads() == 2);
    CHECK(stuck.overdue_reports >= 1);
    REQUIRE(eventually([&] { return stuck.slices == 1; }));
    // The spare leaves once the stuck slice has returned.
    REQUIRE(eventually([&] { return ex.threads() == 1; }));
    ex.remove(*stuck_slot);
    ex.remove(*other_slot);
}

TEST_CASE("remove waits for the slice in progress", "[core][executor]") {
    Executor ex(2);
    Counting task;
    task.work = 200ms;
    auto slot = ex.add(task);
    ex.schedule(*slot);
    REQUIRE(eventually([&] { return task.concurrent == 1; }));
    ex.remove(*slot);
    CHECK(task.concurrent == 0);
    CHECK(task.slices == 1);
    ex.schedule(*slot);  // ignored once removed
    std::this_thread::sleep_for(50ms);
    CHECK(task.slices == 1);
}

// The SDK's pipelined sink delivery (ABI 1.2): sdk::Completion and the submit adapter that
// SLUICE_MODULE generates, driven through the C descriptor by the testing kit.
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <sluice/sdk/testing.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace sdk = sluice::sdk;
using sdk::testing::Harness;
using sdk::testing::message;
using std::chrono::milliseconds;

namespace {

// What the next submit() does; set by the test before it submits.
using Behaviour = std::function<sdk::Status(const sdk::BatchView&, sdk::Completion)>;

Behaviour& behaviour() {
    static Behaviour b;
    return b;
}

class ScriptedSink : public sdk::Sink {
public:
    static sdk::Spec spec() { return sdk::Spec("scripted-sink", "1.0.0"); }
    ScriptedSink(const sdk::Config&, sdk::Host&) {}
    sdk::Status write(const sdk::BatchView&, sdk::Emitter&) override { return sdk::Status::ok; }
    sdk::Status submit(const sdk::BatchView& batch, sdk::Completion done) {
        return behaviour()(batch, std::move(done));
    }
};

// The form the brief of the SDK names first: nothing to return, "cannot take it" by throwing.
class VoidSubmitSink : public sdk::Sink {
public:
    static sdk::Spec spec() { return sdk::Spec("void-submit-sink", "1.0.0"); }
    VoidSubmitSink(const sdk::Config&, sdk::Host&) {}
    sdk::Status write(const sdk::BatchView&, sdk::Emitter&) override { return sdk::Status::ok; }
    void submit(const sdk::BatchView& batch, sdk::Completion done) {
        if (batch.size() > 2) throw sdk::Retry("full");
        done.complete();
    }
};

class PlainSink : public sdk::Sink {
public:
    static sdk::Spec spec() { return sdk::Spec("plain-sink", "1.0.0"); }
    PlainSink(const sdk::Config&, sdk::Host&) {}
    sdk::Status write(const sdk::BatchView&, sdk::Emitter&) override { return sdk::Status::ok; }
};

std::vector<sdk::OwnedMessage> three() {
    return {message("t", "a"), message("t", "b"), message("t", "c")};
}

}  // namespace

TEST_CASE("sdk Completion: rejects are reported with exactly one complete", "[sdk]") {
    Harness<ScriptedSink> h({});
    behaviour() = [](const sdk::BatchView&, sdk::Completion done) {
        done.reject(1, sdk::Status::retry, "later");
        done.reject(2, "bad");
        done.reject(0, sdk::Status::ok, "ignored: ok is no reject");
        CHECK(done.pending());
        done.complete(sdk::Status::ok);
        CHECK_FALSE(done.pending());
        done.complete(sdk::Status::error, "second call does nothing");
        done.reject(0, "after complete: nothing");
        return sdk::Status::ok;
    };
    const auto s = h.submit(three());
    REQUIRE(s.status == SLUICE_OK);
    const auto done = h.wait_completion(s.token, milliseconds(0));
    REQUIRE(done);
    CHECK(done->status == SLUICE_OK);
    CHECK(done->reason.empty());
    REQUIRE(done->rejects.size() == 2);
    CHECK(done->rejects[0].index == 1);
    CHECK(done->rejects[0].status == SLUICE_RETRY);
    CHECK(done->rejects[0].reason == "later");
    CHECK(done->rejects[1].index == 2);
    CHECK(done->rejects[1].status == SLUICE_ERROR);
    CHECK(h.completions().duplicates() == 0);
    CHECK(h.completions().unexpected() == 0);
}

TEST_CASE("sdk Completion: moved to another thread, completed there", "[sdk]") {
    Harness<ScriptedSink> h({});
    std::thread worker;
    behaviour() = [&](const sdk::BatchView& batch, sdk::Completion done) {
        const std::size_t last = batch.size() - 1;  // the batch itself is gone after the call
        worker = std::thread([done = std::move(done), last]() mutable {
            std::this_thread::sleep_for(milliseconds(20));
            done.reject(last, sdk::Status::retry, "from the worker");
            done.complete(sdk::Status::ok);
        });
        return sdk::Status::ok;
    };
    const auto s = h.submit(three());
    REQUIRE(s.status == SLUICE_OK);
    CHECK(h.completions().pending() == 1);
    const auto done = h.wait_completion(s.token);
    worker.join();
    REQUIRE(done);
    CHECK(done->status == SLUICE_OK);
    CHECK(done->thread != std::this_thread::get_id());
    REQUIRE(done->rejects.size() == 1);
    CHECK(done->rejects[0].index == 2);
    CHECK(h.completions().pending() == 0);
    CHECK(h.completions().duplicates() == 0);
}

TEST_CASE("sdk Completion: destroyed without complete completes as retry", "[sdk]") {
    Harness<ScriptedSink> h({});
    SECTION("inside submit") {
        behaviour() = [](const sdk::BatchView&, sdk::Completion done) {
            done.reject(0, "forgotten with the completion");
            return sdk::Status::ok;  // `done` dies with the call
        };
        const auto s = h.submit(three());
        REQUIRE(s.status == SLUICE_OK);
        const auto done = h.wait_completion(s.token, milliseconds(0));
        REQUIRE(done);
        CHECK(done->status == SLUICE_RETRY);
        CHECK(done->reason == sdk::detail::kDroppedCompletion);
    }
    SECTION("later, on another thread") {
        std::thread worker;
        behaviour() = [&](const sdk::BatchView&, sdk::Completion done) {
            worker = std::thread([done = std::move(done)]() mutable {
                std::this_thread::sleep_for(milliseconds(20));
                sdk::Completion gone = std::move(done);  // destroyed at the end of the scope
            });
            return sdk::Status::ok;
        };
        const auto s = h.submit(three());
        REQUIRE(s.status == SLUICE_OK);
        const auto done = h.wait_completion(s.token);
        worker.join();
        REQUIRE(done);
        CHECK(done->status == SLUICE_RETRY);
    }
    SECTION("a move-assignment over a pending completion") {
        sdk::Completion keep;
        behaviour() = [&](const sdk::BatchView&, sdk::Completion done) {
            keep = std::move(done);
            return sdk::Status::ok;
        };
        const auto first = h.submit(three());
        const auto second = h.submit(three());  // replaces the first one in `keep`
        REQUIRE(first.status == SLUICE_OK);
        REQUIRE(second.status == SLUICE_OK);
        const auto done = h.wait_completion(first.token, milliseconds(0));
        REQUIRE(done);
        CHECK(done->status == SLUICE_RETRY);
        CHECK_FALSE(h.wait_completion(second.token, milliseconds(0)));
        keep.complete();
        CHECK(h.wait_completion(second.token, milliseconds(0))->status == SLUICE_OK);
    }
    CHECK(h.completions().duplicates() == 0);
}

TEST_CASE("sdk Completion: an exception from submit is FATAL and completes nothing", "[sdk]") {
    Harness<ScriptedSink> h({});
    std::thread worker;
    behaviour() = [&](const sdk::BatchView&, sdk::Completion done) -> sdk::Status {
        worker = std::thread([done = std::move(done)]() mutable {
            std::this_thread::sleep_for(milliseconds(20));
            done.complete();  // disarmed: the host got FATAL for this batch
        });
        throw std::runtime_error("destination exploded");
    };
    const auto s = h.submit(three());
    worker.join();
    CHECK(s.status == SLUICE_FATAL);
    CHECK(s.error == "destination exploded");

    behaviour() = [](const sdk::BatchView&, sdk::Completion) -> sdk::Status {
        throw sdk::Fatal("broken");  // the completion dies in the unwinding
    };
    const auto f = h.submit(three());
    CHECK(f.status == SLUICE_FATAL);
    CHECK(f.error == "broken");
    CHECK(h.completions().unexpected() == 0);
    CHECK(h.completions().pending() == 0);
}

TEST_CASE("sdk Completion: retry from submit means not taken, nothing completes", "[sdk]") {
    Harness<ScriptedSink> h({});
    SECTION("returned") {
        behaviour() = [](const sdk::BatchView&, sdk::Completion) { return sdk::Status::retry; };
        CHECK(h.submit(three()).status == SLUICE_RETRY);
    }
    SECTION("thrown") {
        behaviour() = [](const sdk::BatchView&, sdk::Completion) -> sdk::Status {
            throw sdk::Retry("queue full");
        };
        const auto s = h.submit(three());
        CHECK(s.status == SLUICE_RETRY);
        CHECK(s.error == "queue full");
    }
    SECTION("void submit throwing sdk::Retry") {
        Harness<VoidSubmitSink> v({});
        CHECK(v.submit(three()).status == SLUICE_RETRY);
        const auto ok = v.submit({message("t", "a")});
        REQUIRE(ok.status == SLUICE_OK);
        CHECK(v.wait_completion(ok.token, milliseconds(0))->status == SLUICE_OK);
        CHECK(v.completions().unexpected() == 0);
    }
    CHECK(h.completions().unexpected() == 0);
    CHECK(h.completions().pending() == 0);
}

TEST_CASE("sdk Completion: completed, then submit fails: taken, and the failure reported",
          "[sdk]") {
    Harness<ScriptedSink> h({});
    behaviour() = [](const sdk::BatchView&, sdk::Completion done) -> sdk::Status {
        done.complete();
        throw std::runtime_error("after the fact");
    };
    const auto s = h.submit(three());
    CHECK(s.status == SLUICE_OK);
    CHECK(h.wait_completion(s.token, milliseconds(0))->status == SLUICE_OK);
    const auto states = h.host().states();
    REQUIRE_FALSE(states.empty());
    CHECK(states.back().first == SLUICE_FATAL);
    CHECK(states.back().second == "after the fact");
}

TEST_CASE("sdk Completion: Status::error from submit completes the batch as error", "[sdk]") {
    Harness<ScriptedSink> h({});
    behaviour() = [](const sdk::BatchView&, sdk::Completion) { return sdk::Status::error; };
    const auto s = h.submit(three());
    REQUIRE(s.status == SLUICE_OK);
    CHECK(h.wait_completion(s.token, milliseconds(0))->status == SLUICE_ERROR);
}

TEST_CASE("sdk submit: only sinks that define it export it", "[sdk]") {
    CHECK(Harness<ScriptedSink>::can_submit());
    CHECK(Harness<VoidSubmitSink>::can_submit());
    CHECK_FALSE(Harness<PlainSink>::can_submit());
    CHECK(Harness<PlainSink>::descriptor().submit == nullptr);
    CHECK(Harness<ScriptedSink>::descriptor().process != nullptr);  // write() stays
    Harness<PlainSink> p({});
    CHECK_THROWS_AS(p.submit(three()), std::logic_error);
}

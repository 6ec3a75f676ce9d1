#include "backoff.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

using namespace sluice::firmware;

namespace {

uint32_t always(void* value) { return *static_cast<uint32_t*>(value); }

}  // namespace

TEST_CASE("back-off doubles up to the cap", "[backoff]") {
    uint32_t zero = 0;
    backoff b(1000, 8000, always, &zero);
    std::vector<uint32_t> bases;
    std::vector<uint32_t> delays;
    for (int i = 0; i < 6; ++i) {
        bases.push_back(b.current_base_ms());
        delays.push_back(b.next_delay_ms());
    }
    CHECK(bases == std::vector<uint32_t>{1000, 2000, 4000, 8000, 8000, 8000});
    // A zero random value gives the lower bound, half the base.
    CHECK(delays == std::vector<uint32_t>{500, 1000, 2000, 4000, 4000, 4000});
    CHECK(b.steps() == 3);  // stops counting at the cap
}

TEST_CASE("jitter reaches the upper bound exactly", "[backoff]") {
    uint32_t top = 500;  // span of base 1000 is [500, 1000]
    backoff b(1000, 8000, always, &top);
    CHECK(b.next_delay_ms() == 1000);
}

TEST_CASE("reset starts the next outage from the initial delay", "[backoff]") {
    uint32_t zero = 0;
    backoff b(250, 60000, always, &zero);
    for (int i = 0; i < 10; ++i) b.next_delay_ms();
    CHECK(b.current_base_ms() == 60000);
    b.reset();
    CHECK(b.current_base_ms() == 250);
    CHECK(b.next_delay_ms() == 125);
}

TEST_CASE("jittered delays stay within [base/2, base] and spread over it", "[backoff]") {
    xorshift32 rng{12345};
    backoff b(1000, 30000, &xorshift32::source, &rng);
    for (int attempt = 0; attempt < 8; ++attempt) b.next_delay_ms();
    REQUIRE(b.current_base_ms() == 30000);
    uint32_t lo = UINT32_MAX;
    uint32_t hi = 0;
    for (int i = 0; i < 10000; ++i) {
        const uint32_t d = b.next_delay_ms();
        REQUIRE(d >= 15000);
        REQUIRE(d <= 30000);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    CHECK(lo < 15200);  // uniform over 15000 values: 10000 draws come close to both ends
    CHECK(hi > 29800);
}

TEST_CASE("devices with different random sources do not retry in lockstep", "[backoff]") {
    xorshift32 a{1};
    xorshift32 c{2};
    backoff ba(1000, 60000, &xorshift32::source, &a);
    backoff bc(1000, 60000, &xorshift32::source, &c);
    int same = 0;
    for (int i = 0; i < 8; ++i) same += ba.next_delay_ms() == bc.next_delay_ms() ? 1 : 0;
    CHECK(same < 2);
}

TEST_CASE("no overflow with extreme settings", "[backoff]") {
    uint32_t max_random = UINT32_MAX;
    backoff b(1, UINT32_MAX, always, &max_random);
    uint32_t previous_base = 0;
    for (int i = 0; i < 100; ++i) {
        const uint32_t base = b.current_base_ms();
        CHECK(base >= previous_base);  // never wraps to a small value
        previous_base = base;
        const uint32_t d = b.next_delay_ms();
        CHECK(d >= base / 2);
        CHECK(d <= base);
    }
    CHECK(previous_base == UINT32_MAX);
}

TEST_CASE("degenerate settings are made sane", "[backoff]") {
    backoff zero_initial(0, 0, nullptr, nullptr);  // null source: no jitter
    CHECK(zero_initial.current_base_ms() == 1);
    backoff inverted(5000, 1000, nullptr, nullptr);
    CHECK(inverted.current_base_ms() == 5000);
    CHECK(inverted.next_delay_ms() == 2500);
    CHECK(inverted.current_base_ms() == 5000);
}

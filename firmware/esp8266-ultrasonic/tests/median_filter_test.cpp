#include "median_filter.hpp"

#include <catch2/catch.hpp>

using namespace sluice::firmware;

namespace {

distance_reading ok(float cm) { return {range_status::ok, cm}; }
distance_reading lost() { return {range_status::timeout, 0.0f}; }
distance_reading far() { return {range_status::too_far, 512.0f}; }

}  // namespace

TEST_CASE("an empty filter has no median", "[median]") {
    median_filter<5> f;
    float m = -1.0f;
    CHECK_FALSE(f.median(&m));
    CHECK(m == -1.0f);
    CHECK(f.size() == 0);
}

TEST_CASE("median of an odd count is the middle value", "[median]") {
    median_filter<5> f;
    f.push(ok(30.0f));
    f.push(ok(10.0f));
    f.push(ok(20.0f));
    float m = 0.0f;
    REQUIRE(f.median(&m));
    CHECK(m == 20.0f);
}

TEST_CASE("median of an even count is the mean of the two middle values", "[median]") {
    median_filter<4> f;
    f.push(ok(40.0f));
    f.push(ok(10.0f));
    f.push(ok(30.0f));
    f.push(ok(20.0f));
    float m = 0.0f;
    REQUIRE(f.median(&m));
    CHECK(m == 25.0f);
}

TEST_CASE("out-of-range readings take a slot but do not vote", "[median]") {
    median_filter<5> f;
    f.push(ok(10.0f));
    f.push(lost());
    f.push(ok(30.0f));
    f.push(far());  // 512 would be the median if it voted
    f.push(ok(20.0f));
    CHECK(f.size() == 5);
    CHECK(f.valid_count() == 3);
    float m = 0.0f;
    REQUIRE(f.median(&m));
    CHECK(m == 20.0f);

    SECTION("even number of valid readings among invalid ones") {
        f.push(ok(40.0f));  // evicts 10 -> valid: 30, 20, 40 ... plus lost, far
        f.push(ok(50.0f));  // evicts lost -> valid: 30, 20, 40, 50
        CHECK(f.valid_count() == 4);
        REQUIRE(f.median(&m));
        CHECK(m == 35.0f);
    }
}

TEST_CASE("a single stray echo is outvoted", "[median]") {
    median_filter<5> f;
    for (float v : {50.0f, 51.0f, 300.0f, 49.0f, 50.5f}) f.push(ok(v));
    float m = 0.0f;
    REQUIRE(f.median(&m));
    CHECK(m == 50.5f);
}

TEST_CASE("the window slides over the last N readings", "[median]") {
    median_filter<3> f;
    for (float v : {10.0f, 20.0f, 30.0f, 100.0f}) f.push(ok(v));  // 10 falls out
    CHECK(f.size() == 3);
    float m = 0.0f;
    REQUIRE(f.median(&m));
    CHECK(m == 30.0f);
}

TEST_CASE("a sensor that stops answering ages its old values out", "[median]") {
    median_filter<3> f;
    f.push(ok(42.0f));
    f.push(lost());
    f.push(lost());
    float m = 0.0f;
    CHECK(f.median(&m));
    f.push(lost());
    CHECK_FALSE(f.median(&m));
    CHECK(f.valid_count() == 0);

    f.reset();
    CHECK(f.size() == 0);
    f.push(ok(7.0f));
    REQUIRE(f.median(&m));
    CHECK(m == 7.0f);
}

TEST_CASE("capacity one keeps just the latest reading", "[median]") {
    median_filter<1> f;
    STATIC_REQUIRE(median_filter<1>::capacity() == 1);
    f.push(ok(5.0f));
    f.push(ok(9.0f));
    float m = 0.0f;
    REQUIRE(f.median(&m));
    CHECK(m == 9.0f);
}

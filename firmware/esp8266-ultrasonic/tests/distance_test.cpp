#include "distance.hpp"

#include <catch2/catch.hpp>

using namespace sluice::firmware;

TEST_CASE("speed of sound follows 331.3 + 0.606 T", "[distance]") {
    CHECK(speed_of_sound_m_per_s(0.0f) == Approx(331.3).margin(1e-3));
    CHECK(speed_of_sound_m_per_s(20.0f) == Approx(343.42).margin(1e-3));
    CHECK(speed_of_sound_m_per_s(-10.0f) == Approx(325.24).margin(1e-3));
    CHECK(speed_of_sound_m_per_s(35.0f) == Approx(352.51).margin(1e-3));
}

TEST_CASE("a broken thermometer cannot produce an absurd speed of sound", "[distance]") {
    CHECK(speed_of_sound_m_per_s(-273.0f) == Approx(307.06).margin(1e-3));  // clamped to -40
    CHECK(speed_of_sound_m_per_s(1000.0f) == Approx(382.81).margin(1e-3));  // clamped to 85
    const float nan = __builtin_nanf("");
    CHECK(speed_of_sound_m_per_s(nan) == Approx(343.42).margin(1e-3));  // treated as 20 C
}

TEST_CASE("echo time converts to distance with temperature correction", "[distance]") {
    const auto at20 = distance_from_echo(1000, 20.0f);
    REQUIRE(at20.status == range_status::ok);
    CHECK(at20.cm == Approx(17.171).margin(1e-3));

    const auto at0 = distance_from_echo(1000, 0.0f);
    REQUIRE(at0.status == range_status::ok);
    CHECK(at0.cm == Approx(16.565).margin(1e-3));

    // The same echo reads ~3.5 % further on a 30 C day than at 10 C: the correction matters.
    const auto cold = distance_from_echo(10000, 10.0f);
    const auto warm = distance_from_echo(10000, 30.0f);
    CHECK(cold.cm == Approx(168.68).margin(0.01));
    CHECK(warm.cm == Approx(174.74).margin(0.01));
}

TEST_CASE("range edges: 2 cm and 400 cm at 20 C", "[distance]") {
    // 2 cm at 343.42 m/s is a 116.48 us echo; 400 cm is 23295.1 us.
    CHECK(distance_from_echo(116, 20.0f).status == range_status::too_close);
    CHECK(distance_from_echo(117, 20.0f).status == range_status::ok);
    CHECK(distance_from_echo(1, 20.0f).status == range_status::too_close);
    CHECK(distance_from_echo(23295, 20.0f).status == range_status::ok);
    CHECK(distance_from_echo(23296, 20.0f).status == range_status::too_far);
    CHECK(distance_from_echo(29999, 20.0f).status == range_status::too_far);
}

TEST_CASE("no echo is a timeout", "[distance]") {
    CHECK(distance_from_echo(0, 20.0f).status == range_status::timeout);  // pulseIn() gave up
    CHECK(distance_from_echo(kEchoTimeoutUs, 20.0f).status == range_status::timeout);
    CHECK(distance_from_echo(kEchoTimeoutUs + 1, 20.0f).status == range_status::timeout);
    CHECK(!is_valid(distance_from_echo(0, 20.0f)));
    CHECK(std::string(to_string(range_status::timeout)) == "timeout");
}

TEST_CASE("echo_us_for_distance inverts distance_from_echo", "[distance]") {
    for (float t : {-20.0f, 0.0f, 20.0f, 40.0f}) {
        for (float cm : {2.5f, 20.0f, 100.0f, 180.0f, 399.0f}) {
            const auto r = distance_from_echo(echo_us_for_distance(cm, t), t);
            REQUIRE(r.status == range_status::ok);
            CHECK(r.cm == Approx(cm).margin(0.02));
        }
    }
    CHECK(echo_us_for_distance(0.0f, 20.0f) == 0);
    CHECK(echo_us_for_distance(1000.0f, 20.0f) == 0);  // beyond the timeout: no echo
}

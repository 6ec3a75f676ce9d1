#include "tank_model.hpp"

#include <cmath>
#include <numbers>

#include "distance.hpp"

namespace sluice::firmware::sim {

namespace {

constexpr double kEmptyCm = 180.0;  // sensor to the water surface when the tank is low
constexpr double kFullCm = 20.0;
constexpr double kNoiseCm = 0.4;
constexpr double kDropoutStartProbability = 0.01;
constexpr int kDropoutSamples = 6;  // long enough to outlast the 5-sample median now and then

}  // namespace

tank_model::tank_model(std::uint32_t seed, int device_index)
    : rng_(seed * 7919u + static_cast<std::uint32_t>(device_index)) {
    std::uniform_real_distribution<double> period(40000.0, 90000.0);
    std::uniform_real_distribution<double> phase(0.0, 2.0 * std::numbers::pi);
    std::uniform_real_distribution<float> temperature(12.0f, 28.0f);
    period_ms_ = period(rng_);
    phase_ = phase(rng_);
    air_temperature_c_ = temperature(rng_);
}

double tank_model::true_distance_cm(std::uint32_t t_ms) const {
    const double mid = (kEmptyCm + kFullCm) / 2.0;
    const double amplitude = (kEmptyCm - kFullCm) / 2.0;
    return mid + amplitude * std::sin(2.0 * std::numbers::pi * t_ms / period_ms_ + phase_);
}

std::uint32_t tank_model::echo_us(std::uint32_t t_ms) {
    if (dropout_left_ == 0 && std::bernoulli_distribution(kDropoutStartProbability)(rng_)) {
        dropout_left_ = kDropoutSamples;
    }
    if (dropout_left_ > 0) {
        --dropout_left_;
        return 0;
    }
    const double cm =
        true_distance_cm(t_ms) + std::normal_distribution<double>(0.0, kNoiseCm)(rng_);
    return echo_us_for_distance(static_cast<float>(cm), air_temperature_c_);
}

std::int32_t tank_model::rssi_dbm() {
    return std::uniform_int_distribution<std::int32_t>(-67, -55)(rng_);
}

}  // namespace sluice::firmware::sim

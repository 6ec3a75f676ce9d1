// A simulated tank seen by a simulated HC-SR04 on its lid: the level rises and falls, the
// sensor adds noise and now and then loses its echo (splashes, foam).
#pragma once

#include <cstdint>
#include <random>

namespace sluice::firmware::sim {

class tank_model {
public:
    tank_model(std::uint32_t seed, int device_index);

    // Echo time the sensor would measure at `t_ms`, 0 when the echo is lost (what pulseIn()
    // returns on timeout).
    std::uint32_t echo_us(std::uint32_t t_ms);

    // True distance from the sensor to the water, without noise.
    double true_distance_cm(std::uint32_t t_ms) const;

    float air_temperature_c() const { return air_temperature_c_; }
    std::int32_t rssi_dbm();

private:
    std::mt19937 rng_;
    double period_ms_;
    double phase_;
    float air_temperature_c_;
    int dropout_left_ = 0;
};

}  // namespace sluice::firmware::sim

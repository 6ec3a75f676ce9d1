#include "sensors.hpp"

namespace sluice::replay {

std::vector<std::string> sensor_topics(const std::string& prefix) {
    std::vector<std::string> topics;
    topics.reserve(kSensorCount);
    for (const auto& sensor : kSensors) {
        std::string topic = prefix.empty() ? std::string() : prefix + "/";
        topic.append(sensor.kind).append("/").append(sensor.node);
        topics.push_back(std::move(topic));
    }
    return topics;
}

}  // namespace sluice::replay

// MQTT topic filter syntax checks, so a bad filter is reported by `sluice check` with the
// offending item instead of surfacing later as a refused SUBSCRIBE.
#pragma once

#include <string>
#include <string_view>

namespace sluice::plugins::mqtt_source {

/// Returns "" when `filter` is a valid MQTT subscription filter (MQTT 3.1.1 4.7 / MQTT 5 4.7,
/// plus `$share/<group>/<filter>` shared subscriptions, MQTT 5 4.8.2), else why it is not.
std::string topic_filter_error(std::string_view filter);

/// True for `$share/<group>/<filter>`.
bool is_shared_subscription(std::string_view filter);

}  // namespace sluice::plugins::mqtt_source

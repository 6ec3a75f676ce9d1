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

/// Whether a message on `topic` matches the valid `filter` (for `$share/<group>/<filter>`: its
/// filter), as a broker decides it: `+` one level, `#` the rest (and the parent level), and a
/// wildcard first level never matching a topic that starts with `$` (MQTT 5 4.7.2).
bool topic_matches(std::string_view filter, std::string_view topic);

}  // namespace sluice::plugins::mqtt_source

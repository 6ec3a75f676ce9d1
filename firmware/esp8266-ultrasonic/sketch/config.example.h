// Copy this file to config.h (same folder, git-ignored) and fill in your values.
#pragma once

#include <Arduino.h>
#include <stdint.h>

// Wi-Fi (2.4 GHz only: the ESP8266 has no 5 GHz radio).
constexpr char kWifiSsid[] = "my-network";
constexpr char kWifiPassword[] = "my-password";

// MQTT broker. Leave the user empty for anonymous access.
constexpr char kMqttHost[] = "192.168.1.10";
constexpr uint16_t kMqttPort = 1883;
constexpr char kMqttUser[] = "";
constexpr char kMqttPassword[] = "";

// Device id: topic level and MQTT client id, 1..32 characters of [A-Za-z0-9_-], unique per
// broker (a second device with the same id would keep disconnecting the first).
constexpr char kDeviceId[] = "tank-1";

// Between published readings; `interval <ms>` on the command topic changes it at run time.
constexpr uint32_t kReportIntervalMs = 5000;

// No thermometer on this board: the speed of sound is corrected for this fixed temperature
// (each 10 C off is ~1.8 % distance error). Set it to the tank's usual air temperature.
constexpr float kAirTemperatureC = 20.0f;

// Pins (NodeMCU names). See README "Wiring" before changing them, and about D3 at boot.
constexpr uint8_t kTriggerPin = D4;  // GPIO2
constexpr uint8_t kEchoPin = D3;     // GPIO0, through a 5 V -> 3.3 V divider
// The module LED (GPIO2) shares D4 with the trigger, so the command LED is the NodeMCU
// board's own LED on D0 (GPIO16). Both NodeMCU LEDs light when the pin is LOW.
constexpr uint8_t kLedPin = D0;
constexpr bool kLedActiveLow = true;

// Sluice reference sensor: ESP8266 (NodeMCU) + HC-SR04 publishing distance over MQTT.
//
// Deliberately thin: everything that can be tested runs in the portable core
// (../core, built as the Arduino library SluiceFirmwareCore, see README). This file only maps
// the core's platform interface onto ESP8266WiFi, PubSubClient and the pins in config.h.
#include <ESP8266WiFi.h>
#include <PubSubClient.h>

#include <device.hpp>
#include <distance.hpp>
#include <version.hpp>

#include "config.h"

using sluice::firmware::device;
using sluice::firmware::device_config;

namespace {

WiFiClient wifi_client;
PubSubClient mqtt(wifi_client);

uint32_t hardware_random(void*) { return ESP.random(); }

class esp8266_platform final : public sluice::firmware::platform {
public:
    uint32_t now_ms() override { return static_cast<uint32_t>(millis()); }

    uint32_t measure_echo_us() override {
        digitalWrite(kTriggerPin, LOW);
        delayMicroseconds(2);
        digitalWrite(kTriggerPin, HIGH);  // the HC-SR04 wants a >= 10 us trigger pulse
        delayMicroseconds(10);
        digitalWrite(kTriggerPin, LOW);
        return static_cast<uint32_t>(pulseIn(kEchoPin, HIGH, sluice::firmware::kEchoTimeoutUs));
    }

    float air_temperature_c() override { return kAirTemperatureC; }
    int32_t rssi_dbm() override { return WiFi.RSSI(); }

    void set_led(bool on) override { digitalWrite(kLedPin, (on != kLedActiveLow) ? HIGH : LOW); }

    bool connected() override { return WiFi.status() == WL_CONNECTED && mqtt.connected(); }

    bool connect(const char* will_topic, const char* will_payload) override {
        // Wi-Fi reconnects on its own (setAutoReconnect); trying MQTT before it is up would
        // block in the TCP connect for seconds.
        if (WiFi.status() != WL_CONNECTED) return false;
        const char* user = kMqttUser[0] != '\0' ? kMqttUser : nullptr;
        const char* password = user != nullptr ? kMqttPassword : nullptr;
        return mqtt.connect(kDeviceId, user, password, will_topic, 1, true, will_payload, true);
    }

    bool subscribe(const char* topic) override { return mqtt.subscribe(topic, 1); }

    bool publish(const char* topic, const char* payload, size_t length, bool retained) override {
        return mqtt.publish(topic, reinterpret_cast<const uint8_t*>(payload),
                            static_cast<unsigned int>(length), retained);
    }

    void log(const char* line) override { Serial.println(line); }
};

esp8266_platform board;
device sensor(board, hardware_random, nullptr);
bool started = false;

}  // namespace

void setup() {
    Serial.begin(115200);
    pinMode(kTriggerPin, OUTPUT);
    digitalWrite(kTriggerPin, LOW);
    pinMode(kEchoPin, INPUT);
    pinMode(kLedPin, OUTPUT);

    WiFi.mode(WIFI_STA);
    WiFi.setAutoReconnect(true);
    WiFi.begin(kWifiSsid, kWifiPassword);

    mqtt.setServer(kMqttHost, kMqttPort);
    // Default 256 bytes is just enough for a reading; leave room for longer ids and commands.
    mqtt.setBufferSize(512);
    mqtt.setCallback([](char* topic, uint8_t* payload, unsigned int length) {
        // PubSubClient reuses one buffer for receiving and sending; the core finishes reading
        // topic and payload before it publishes its ack, so publishing from here is safe.
        sensor.on_message(topic, reinterpret_cast<const char*>(payload), length);
    });

    device_config config;
    config.device_id = kDeviceId;
    config.interval_ms = kReportIntervalMs;
    started = sensor.begin(config);
    Serial.printf("\nsluice esp8266-ultrasonic %s, device %s\n", sluice::firmware::kFirmwareVersion,
                  kDeviceId);
    if (!started) {
        Serial.println("config.h: invalid kDeviceId or kReportIntervalMs, not starting");
    }
}

void loop() {
    if (!started) {
        delay(1000);
        return;
    }
    mqtt.loop();
    sensor.tick();
}

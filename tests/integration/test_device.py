"""The reference device's simulator (the firmware's core on Linux) through sluice into Kafka,
with an LED command sent back to one device."""
import json
import os
import subprocess
import time

from harness import REPO, Sluice, wait_for

SIM = os.environ.get("SLUICE_SIM_DEVICE", "")


def test_device_readings_reach_kafka_and_the_led_command_reaches_the_device(
        tmp_path, mosquitto, kafka):
    assert SIM and os.path.exists(SIM), f"sluice-sim-device is missing ({SIM!r}): build the firmware"
    sluice = Sluice(tmp_path, env={"MQTT_URL": mosquitto.url, "KAFKA_BROKERS": kafka.bootstrap})
    sluice.start(REPO / "manifests" / "esp8266", wait_routes=3)
    readings = 40
    log = open(tmp_path / "sim.log", "w")
    sim = subprocess.Popen([SIM, "--url", mosquitto.url, "--devices", "3", "--interval-ms", "100",
                            "--count", str(readings), "--seed", "7"], stdout=log, stderr=log,
                           text=True)
    try:
        wait_for(lambda: "tank-2" in (tmp_path / "sim.log").read_text(), 10, "the simulator")
        time.sleep(1.0)
        mosquitto.publish("devices/tank-2/cmd", ["led on"])
        assert sim.wait(timeout=60) == 0
    finally:
        if sim.poll() is None:
            sim.kill()
    assert "tank-2 led on" in (tmp_path / "sim.log").read_text()

    records = kafka.read("devices.distance", expect=3 * readings, timeout=60)
    by_device = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        reading = json.loads(r.value)
        assert r.key.decode() == reading["device"] and reading["sensor"] == "distance"
        by_device.setdefault(reading["device"], []).append(reading)
    assert sorted(by_device) == ["tank-1", "tank-2", "tank-3"]
    for device, rs in by_device.items():
        assert [r["seq"] for r in rs] == list(range(1, readings + 1)), device
        assert all(r["distance_cm"] is None or 2 <= r["distance_cm"] <= 400 for r in rs)
    # The command arrived: tank-2's later readings show the LED on, the others never do.
    assert by_device["tank-2"][-1]["led"] is True
    assert not any(r["led"] for d in ("tank-1", "tank-3") for r in by_device[d])

    acks = kafka.read("devices.acks", expect=1)
    assert [json.loads(a.value) for a in acks] == [
        {"ok": True, "led": True, "interval_ms": 100, "device": "tank-2"}]
    status = [json.loads(s.value) for s in kafka.read("devices.status", expect=6)]
    assert {"status": "online", "device": "tank-1"} in status
    assert {"status": "offline", "device": "tank-3"} in status
    sluice.stop()

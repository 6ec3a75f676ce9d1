#!/usr/bin/env bash
# The device demo: simulated ESP8266 tank sensors (the firmware's core on Linux) -> mosquitto
# -> sluice (manifests/esp8266) -> Kafka, with an LED command sent to one device on the way.
# Usage: device-demo.sh <build dir>   (the build needs the firmware: SLUICE_BUILD_FIRMWARE=ON)
set -euo pipefail
build=$(cd "${1:-build/dev}" && pwd)
repo=$(cd "$(dirname "$0")/../.." && pwd)
sim=$build/firmware/esp8266-ultrasonic/sluice-sim-device
source "$repo/tools/demo/lib.sh"
demo_require mosquitto mosquitto_pub kcat python3
[ -x "$sim" ] || { echo "demo: $sim is missing (build with SLUICE_BUILD_FIRMWARE=ON)" >&2; exit 1; }
demo_start_mosquitto
demo_start_kafka
echo "== mosquitto on $MQTT_URL, development Kafka on $KAFKA_BROKERS"
demo_start_sluice "$repo/manifests/esp8266" 3

readings=30
echo "== 3 simulated tank sensors, $readings readings each, 200 ms apart"
"$sim" --url "$MQTT_URL" --devices 3 --interval-ms 200 --count $readings --seed 42 \
  >"$demo_work/sim.log" 2>&1 &
sim_pid=$!
demo_pids+=($sim_pid)
sleep 2
echo "== command: 'led on' -> devices/tank-2/cmd"
mosquitto_pub -h 127.0.0.1 -p "${MQTT_URL##*:}" -t devices/tank-2/cmd -q 1 -m "led on"
wait "$sim_pid"
grep -E 'led|published' "$demo_work/sim.log" | sed 's/^/  sim: /'

echo "== what Kafka holds (read with kcat)"
python3 - "$KAFKA_BROKERS" "$readings" <<'PY'
import json, subprocess, sys, time
kafka, readings = sys.argv[1], int(sys.argv[2])
def read(topic, want):
    deadline = time.time() + 30
    while True:
        out = subprocess.run(["kcat", "-b", kafka, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
                              "-f", "%k\t%s\n"], capture_output=True, text=True).stdout
        rows = [l.split("\t", 1) for l in out.splitlines() if "\t" in l]
        if len(rows) >= want or time.time() > deadline:
            return rows
        time.sleep(0.5)
rows = read("devices.distance", 3 * readings)
devices = {}
for key, value in rows:
    devices.setdefault(key, []).append(json.loads(value))
print(f"{'device':<8} {'readings':>8}  {'seq':>7}  {'last distance':>13}  led")
for d in sorted(devices):
    rs = sorted(devices[d], key=lambda r: r["seq"])
    last = rs[-1]
    dist = "out of range" if last["distance_cm"] is None else f"{last['distance_cm']} cm"
    print(f"{d:<8} {len(rs):>8}  {rs[0]['seq']:>3}..{last['seq']:<3}  {dist:>13}  {last['led']}")
for key, value in read("devices.acks", 1):
    print(f"ack from {key}: {value}")
for key, value in read("devices.status", 6):
    print(f"status: {value}")
ok = len(devices) == 3 and all(len(v) == readings for v in devices.values())
sys.exit(0 if ok else 1)
PY
demo_stop_sluice

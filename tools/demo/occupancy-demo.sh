#!/usr/bin/env bash
# The occupancy demo: the data set replayed to MQTT as the room's sensor nodes -> six sluice
# routes (one per sensor kind) -> Kafka, read back with kcat. Starts mosquitto and the
# development Kafka on free loopback ports and stops everything it started.
# Usage: occupancy-demo.sh <build dir>
set -euo pipefail
build=$(cd "${1:-build/release}" && pwd)
repo=$(cd "$(dirname "$0")/../.." && pwd)
data=${OCCUPANCY_CSV:-$repo/../shared/data/occupancy_estimation.csv}
source "$repo/tools/demo/lib.sh"
demo_require mosquitto kcat python3
[ -f "$data" ] || { echo "demo: the data set is missing: $data" >&2; exit 1; }
started=$(date +%s)
demo_start_mosquitto
demo_start_kafka
echo "== mosquitto on $MQTT_URL, development Kafka on $KAFKA_BROKERS"
demo_start_sluice "$repo/manifests/occupancy" 6

echo "== replaying the data set (--pace max, QoS 1)"
"$build/tools/replay/sluice-replay" --url "$MQTT_URL" --file "$data" --pace max --qos 1 \
  --summary-json "$demo_work/sent.json"

echo "== reading every Kafka topic back with kcat"
status=0
python3 - "$demo_work" "$KAFKA_BROKERS" <<'PY' || status=$?
import json, subprocess, sys, time
work, kafka = sys.argv[1], sys.argv[2]
sent = json.load(open(f"{work}/sent.json"))
expected = {}
for topic, count in sent["topics"].items():
    kind = topic.split("/")[1]
    expected[f"occupancy.{kind}"] = expected.get(f"occupancy.{kind}", 0) + count
rows, ok = [], True
for topic in sorted(expected):
    deadline, records = time.time() + 60, []
    while time.time() < deadline:
        out = subprocess.run(["kcat", "-b", kafka, "-C", "-t", topic, "-o", "beginning", "-e",
                              "-q", "-f", "%k\t%s\n"], capture_output=True, text=True).stdout
        records = [line.split("\t", 1) for line in out.splitlines() if "\t" in line]
        if len(records) >= expected[topic]:
            break
        time.sleep(0.5)
    by_ts = sorted(records, key=lambda r: (json.loads(r[1])["ts"], r[0]))
    ok &= len(records) == expected[topic]
    rows.append((topic, expected[topic], len(records), by_ts[0] if by_ts else ("", ""),
                 by_ts[-1] if by_ts else ("", "")))
w = max(len(r[0]) for r in rows)
print(f"{'kafka topic':<{w}}  {'expected':>8}  {'in kafka':>8}  first / last record (key  value)")
for topic, want, got, first, last in rows:
    mark = "" if want == got else "   <-- MISSING"
    print(f"{topic:<{w}}  {want:>8}  {got:>8}  {first[0]}  {first[1]}{mark}")
    print(f"{'':<{w}}  {'':>8}  {'':>8}  {last[0]}  {last[1]}")
total_w, total_g = sum(r[1] for r in rows), sum(r[2] for r in rows)
print(f"{'total':<{w}}  {total_w:>8}  {total_g:>8}")
sys.exit(0 if ok else 1)
PY
demo_stop_sluice
echo "== done in $(( $(date +%s) - started )) s"
exit $status

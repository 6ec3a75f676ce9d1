"""The shipped occupancy manifests, end to end: replayed data set -> mosquitto -> sluice (six
routes) -> Kafka, read back with an independent client."""
import csv
import json
import subprocess

from harness import DATA, REPLAY, REPO, Sluice

ROWS = 300
KINDS = {  # kind -> (nodes, CSV columns)
    "temperature": (["s1", "s2", "s3", "s4"], ["S1_Temp", "S2_Temp", "S3_Temp", "S4_Temp"]),
    "light": (["s1", "s2", "s3", "s4"], ["S1_Light", "S2_Light", "S3_Light", "S4_Light"]),
    "sound": (["s1", "s2", "s3", "s4"], ["S1_Sound", "S2_Sound", "S3_Sound", "S4_Sound"]),
    "co2": (["s5"], ["S5_CO2"]),
    "co2_slope": (["s5"], ["S5_CO2_Slope"]),
    "pir": (["s6", "s7"], ["S6_PIR", "S7_PIR"]),
}


def expected_readings():
    with open(DATA, newline="") as f:
        rows = list(csv.DictReader(f))[:ROWS]
    out = {}
    for kind, (nodes, columns) in KINDS.items():
        for node, column in zip(nodes, columns):
            out[(kind, node)] = [
                {"ts": f"{r['Date'].replace('/', '-')}T{r['Time']}", "value": json.loads(r[column]),
                 "node": node, "sensor": kind} for r in rows]
    return out


def test_every_message_of_every_route_arrives_once_in_order(tmp_path, mosquitto, kafka):
    sluice = Sluice(tmp_path, env={"MQTT_URL": mosquitto.url, "KAFKA_BROKERS": kafka.bootstrap})
    sluice.start(REPO / "manifests" / "occupancy", wait_routes=6)
    subprocess.run([REPLAY, "--url", mosquitto.url, "--file", str(DATA), "--rows", str(ROWS),
                    "--pace", "max", "--qos", "1"], check=True, timeout=120, capture_output=True)
    expected = expected_readings()
    for kind, (nodes, _) in KINDS.items():
        want = ROWS * len(nodes)
        records = kafka.read(f"occupancy.{kind}", expect=want, timeout=60)
        assert len(records) == want, f"{kind}: {len(records)} of {want} in Kafka"
        by_node = {}
        for r in sorted(records, key=lambda r: (r.partition, r.offset)):
            payload = json.loads(r.value)
            assert r.key.decode() == payload["node"]
            by_node.setdefault(payload["node"], []).append(payload)
        for node in nodes:
            # Exactly the data set's readings, in the data set's order (per-key order).
            assert by_node[node] == expected[(kind, node)], f"{kind}/{node}"
    log = sluice.stop()
    assert "errors 0" in log

"""MQTT features end to end with the real binary, mosquitto and the mock Kafka cluster."""
import json
import subprocess
import threading
import time

import pytest

from harness import Mosquitto, Sluice, manifest, route, wait_for


def payloads(n, prefix="m"):
    return [json.dumps({"id": f"{prefix}{i}", "seq": i}) for i in range(n)]


def ids(records):
    return [json.loads(r.value)["id"] for r in records]


def test_qos_0_1_2(tmp_path, mosquitto, kafka):
    d = tmp_path
    for q in (0, 1, 2):
        manifest(d, f"q{q}", route(f"qos{q}", mosquitto.url, [f"q{q}/#"], kafka.bootstrap,
                                   f"t.qos{q}", qos=q))
    sluice = Sluice(d).start(d, wait_routes=3)
    for q in (0, 1, 2):
        mosquitto.publish(f"q{q}/dev", payloads(300, f"q{q}-"), qos=q)
    for q in (0, 1, 2):
        records = kafka.read(f"t.qos{q}", expect=300)
        assert sorted(ids(records)) == sorted(f"q{q}-{i}" for i in range(300)), f"qos {q}"
        assert {h[0] for h in records[0].headers} >= {"mqtt.topic", "mqtt.qos", "mqtt.retain"}
        assert dict(records[0].headers)["mqtt.qos"] == str(q).encode()
    sluice.stop()


def test_mqtt5_user_properties_become_kafka_headers_and_311_works(tmp_path, mosquitto, kafka):
    d = tmp_path
    manifest(d, "v5", route("v5", mosquitto.url, ["props/#"], kafka.bootstrap, "t.v5",
                            extra_source="    mqtt_version: \"5\"\n"))
    manifest(d, "v311", route("v311", mosquitto.url, ["props/#"], kafka.bootstrap, "t.v311",
                              extra_source="    mqtt_version: \"3.1.1\"\n"))
    sluice = Sluice(d).start(d, wait_routes=2)
    mosquitto.publish("props/dev1", payloads(20), properties=[("site", "lab"), ("unit", "C")])
    v5 = kafka.read("t.v5", expect=20)
    assert len(v5) == 20
    headers = v5[0].headers
    assert ("site", b"lab") in headers and ("unit", b"C") in headers
    assert ("mqtt.topic", b"props/dev1") in headers
    assert [h[0] for h in headers].index("site") < [h[0] for h in headers].index("unit")
    v311 = kafka.read("t.v311", expect=20)
    assert len(v311) == 20
    assert "site" not in dict(v311[0].headers)
    sluice.stop()


def test_wildcards_and_shared_subscriptions(tmp_path, mosquitto, kafka):
    d = tmp_path
    manifest(d, "plus", route("plus", mosquitto.url, ["w/+/temp"], kafka.bootstrap, "t.plus"))
    manifest(d, "hash", route("hash", mosquitto.url, ["w/#"], kafka.bootstrap, "t.hash"))
    for n in ("a", "b"):
        manifest(d, f"share-{n}", route(f"share-{n}", mosquitto.url, ["$share/g1/s/#"],
                                        kafka.bootstrap, "t.shared"))
    sluice = Sluice(d).start(d, wait_routes=4)
    mosquitto.publish("w/x/temp", payloads(10, "x"))
    mosquitto.publish("w/y/hum", payloads(10, "y"))
    mosquitto.publish("s/dev", payloads(200, "s"))
    assert sorted(ids(kafka.read("t.plus", expect=10))) == sorted(f"x{i}" for i in range(10))
    assert len(kafka.read("t.hash", expect=20)) == 20
    shared = kafka.read("t.shared", expect=200)
    assert sorted(ids(shared)) == sorted(f"s{i}" for i in range(200)), "each message exactly once"
    log = sluice.stop()
    # Both group members took part (mosquitto distributes a shared subscription round-robin).
    for n in ("a", "b"):
        assert f"[route share-{n}] stopped: received 0," not in log
    assert "[route share-a] stopped: received" in log


def test_broker_down_at_start_waits_while_other_routes_flow(tmp_path, mosquitto, kafka):
    d = tmp_path
    late = Mosquitto(tmp_path)  # port chosen, not started
    manifest(d, "late", route("late", late.url, ["late/#"], kafka.bootstrap, "t.late"))
    manifest(d, "early", route("early", mosquitto.url, ["early/#"], kafka.bootstrap, "t.early"))
    sluice = Sluice(d).start(d)
    sluice.wait_subscribed(1)  # only the early route can
    mosquitto.publish("early/x", payloads(50))
    assert len(kafka.read("t.early", expect=50)) == 50
    wait_for(lambda: "[route late] source mqtt-source: cannot connect" in sluice.log_text(), 10,
             "the late route to report that it is degraded")
    late.start()
    try:
        sluice.wait_subscribed(2, timeout=60)  # reconnect back-off reaches seconds by now
        assert "[route late] source mqtt-source recovered" in sluice.log_text()
        late.publish("late/x", payloads(50))
        assert len(kafka.read("t.late", expect=50)) == 50
    finally:
        sluice.stop()
        late.stop()


def test_kafka_away_for_10_seconds_loses_nothing_at_qos1(tmp_path, mosquitto, kafka):
    d = tmp_path
    manifest(d, "outage", route("outage", mosquitto.url, ["o/#"], kafka.bootstrap, "t.outage"))
    sluice = Sluice(d).start(d, wait_routes=1)
    total = 1500
    sent = payloads(total, "o")

    def publish_slowly():
        for i in range(0, total, 50):
            mosquitto.publish("o/dev", sent[i:i + 50])
            time.sleep(0.1)

    publisher = threading.Thread(target=publish_slowly)
    publisher.start()
    time.sleep(0.5)
    kafka.down()
    time.sleep(10)
    kafka.up()
    publisher.join()
    records = kafka.read("t.outage", expect=total, timeout=90)
    got = ids(records)
    assert set(got) == {f"o{i}" for i in range(total)}, f"lost {total - len(set(got))}"
    assert len(got) == total, f"{len(got) - total} duplicates"
    sluice.stop()


def test_tls_to_mosquitto_with_generated_certificates(tmp_path, kafka):
    certs = tmp_path / "certs"
    certs.mkdir()

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=certs)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.crt")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
            "server.key", "-out", "server.csr")
    (certs / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.crt")
    tls = {"ca": str(certs / "ca.crt"), "cert": str(certs / "server.crt"),
           "key": str(certs / "server.key")}
    broker = Mosquitto(tmp_path, tls=tls).start()
    try:
        d = tmp_path
        manifest(d, "tls", route("tls", broker.url, ["secure/#"], kafka.bootstrap, "t.tls",
                                 extra_source=f"    ca_file: {tls['ca']}\n"))
        sluice = Sluice(d).start(d, wait_routes=1)
        broker.publish("secure/dev", payloads(25))
        assert len(kafka.read("t.tls", expect=25)) == 25
        sluice.stop()
    finally:
        broker.stop()

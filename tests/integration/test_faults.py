"""Fault tests: route isolation and durability, end to end with the real binary, real mosquitto
and the librdkafka mock cluster, counted per message from Kafka with an independent client.

Every test prints, per route, what was sent and what reached Kafka: lost, duplicated,
reordered (first occurrences out of order within a key), garbled, and latency where it
matters; then asserts what the contract promises (tests/integration/faults.py has the
helpers and the only copies of the log-line regexes). Run with `-s` to see the accounting of
passing tests too. SLUICE_FAULTS_SEED fixes the random kill moments; SLUICE_FAULTS_OUTAGE_S
shortens the Kafka outage of test_kafka_away_60s while developing (default 60)."""
import contextlib
import json
import os
import random
import time

import pytest

import faults
import harness
from faults import (BlackHole, KafkaReader, Publisher, account, buffer, file_sink,
                    kafka_sink, mqtt_source, route_manifest, unique, wait_receiving)
from harness import DevKafka, PersistentMosquitto, free_port, wait_for

RATE = 200  # messages/s per route, QoS 1


@pytest.fixture
def cleanup():
    """Everything a test starts besides sluice is registered here and stopped in reverse
    order, whatever happened (conftest kills the sluice processes)."""
    with contextlib.ExitStack() as stack:
        yield stack


def start_kafka(tmp_path, cleanup, topics):
    """A mock cluster with the topics pre-created (`name:partitions`), so their metadata is
    there at once and the partition count is known to the reader."""
    kafka = DevKafka(tmp_path, topics=topics).start()
    cleanup.callback(lambda: harness.stop_process(kafka.proc))
    return kafka


def start_reader(kafka, cleanup, topics):
    reader = KafkaReader(kafka.bootstrap, {t.split(":")[0]: int(t.split(":")[1])
                                           for t in topics}).start()
    cleanup.callback(reader.stop)
    return reader


def start_publisher(broker, cleanup, streams, **kw):
    pub = Publisher(broker.port, unique("pub"), streams, **kw).start()
    cleanup.callback(pub.abort)
    return pub


def start_sluice(tmp_path, cleanup, routes_dir, name="sluice", fixtures=False):
    proc = faults.sluice(tmp_path, routes_dir, name=name, fixtures=fixtures)
    cleanup.callback(proc.kill)
    return proc


def topic_of(tag):
    return f"f/{tag}/dev"


def log_tail(proc, n=4000):
    return proc.all_logs()[-n:]


# --- 1 -----------------------------------------------------------------------------------------
def test_isolation_faulty_routes_leave_healthy_ones_alone(tmp_path, mosquitto, cleanup):
    """Two healthy routes share one process with four faulty ones: Kafka unreachable (a free
    port: connections refused), Kafka hanging (a listener that accepts and never answers), a
    transform that rejects every message, and a sink that hangs inside a plugin call (the gate-sink
    test fixture, whose write() waits for a file that never appears and ignores interrupt():
    nothing times it out but the host). The faulty routes
    have small buffers, so they also fill up and hold back their MQTT sessions during the run.
    Healthy routes: nothing lost, nothing duplicated or reordered, every message in Kafka
    within 1 s of being published. SIGTERM: exit within drain_timeout_ms + 10 s, and the log
    reports what the stuck routes could not deliver."""
    topics = ["f.h1:2", "f.h2:2", "f.badjson:2"]
    kafka = start_kafka(tmp_path, cleanup, topics)
    hole = BlackHole()
    cleanup.callback(hole.close)
    drain_ms = 5000
    small = 256 * 1024
    routes = tmp_path / "routes"
    client = unique("iso")

    def add(tag, sink, buf=None, transforms=()):
        route_manifest(routes, tag, mqtt_source(mosquitto.url, [topic_of(tag)], f"{client}-{tag}"),
                       sink, transforms=transforms, buffer=buf or buffer(), on_error="drop",
                       drain_timeout_ms=drain_ms, max_payload_bytes=16384)

    add("h1", kafka_sink(kafka.bootstrap, "f.h1"))
    add("h2", kafka_sink(kafka.bootstrap, "f.h2"))
    add("unreach", kafka_sink(f"127.0.0.1:{free_port()}", "f.unreach"),
        buffer(max_bytes=small, when_full="block"))
    add("blackhole", kafka_sink(f"127.0.0.1:{hole.port}", "f.blackhole"),
        buffer(max_bytes=small, when_full="block"))
    add("badjson", kafka_sink(kafka.bootstrap, "f.badjson"),
        transforms=[{"json-transform": {"parse": "json"}}])
    add("hang", {"gate-sink": {"path": str(tmp_path / "hang.out"),
                               "gate": str(tmp_path / "never")}},
        buffer(max_bytes=small, when_full="drop_oldest"))
    tags = ["h1", "h2", "unreach", "blackhole", "badjson", "hang"]

    proc = start_sluice(tmp_path, cleanup, routes, fixtures=True).start()
    wait_receiving(proc, ["h1", "h2"], timeout=30)
    with contextlib.suppress(TimeoutError):
        wait_receiving(proc, tags, timeout=5)
    print("subscribed:", [t for t in tags if faults.receiving_re(t).search(proc.log_text())])
    reader = start_reader(kafka, cleanup, topics)

    def payload(tag, seq, sent_ns):
        if tag == "badjson":
            return f"not json {faults.marker(tag, seq)} {sent_ns}".encode()
        return faults.default_payload(tag, seq, sent_ns)

    pub = start_publisher(mosquitto, cleanup, {t: topic_of(t) for t in tags}, rate=RATE,
                          payload=payload)
    t_end = time.time() + 15
    while time.time() < t_end:
        assert proc.alive(), f"sluice exited {proc.proc.returncode}:\n{log_tail(proc)}"
        time.sleep(0.5)
    pub.close(timeout=30)
    print("published per route:", {t: pub.generated(t) for t in tags})
    for tag in ("h1", "h2"):
        reader.wait_for_all(f"f.{tag}", tag, pub.expected(tag), timeout=15, quiet_s=5)
    healthy = {tag: account(reader, f"f.{tag}", tag, pub.expected(tag)) for tag in ("h1", "h2")}
    bad_records = reader.count("f.badjson")

    rc, took = proc.terminate(timeout=drain_ms / 1000 + 15)
    log = proc.log_text()
    print(f"SIGTERM: exit {rc} after {took:.1f} s (limit {drain_ms / 1000 + 10:.0f} s)")
    for tag in tags:
        print(f"  {tag}: stop {faults.stop_counters(log, tag)}, "
              f"undelivered {faults.undelivered(log, tag)}")

    for tag, a in healthy.items():
        assert not a.lost, \
            f"healthy route {tag}: {len(a.lost)} messages never reached Kafka: {a.summary()}"
        assert a.duplicates == 0 and a.reordered == 0 and not a.garbled, a.summary()
        assert a.max_latency is not None and a.max_latency <= 1.0, \
            f"healthy route {tag}: a message took longer than 1 s: {a.summary()}"
    assert bad_records == 0, f"{bad_records} rejected (non-JSON) messages reached f.badjson"
    assert rc is not None and took <= drain_ms / 1000 + 10, \
        f"sluice took {took:.1f} s to exit on SIGTERM (rc {rc}):\n{log[-4000:]}"
    for tag in ("unreach", "blackhole", "hang"):
        n = faults.undelivered(log, tag)
        assert n is not None and n > 0, \
            f"route {tag}: the log does not report how many messages were not delivered"


# --- 2 -----------------------------------------------------------------------------------------
def test_sigkill_loses_at_most_one_message_per_kill(tmp_path, mosquitto, cleanup):
    """Two disk-spool routes with persistent sessions under 200 msg/s each; sluice is SIGKILLed
    at random moments at least 10 times and restarted on the same state dir. Some kills come
    during start-up (spool recovery, connecting), and every third one while Kafka is down, when
    the spool holds a few hundred undelivered messages that only a durable spool keeps. Per
    route at most one message per kill may be lost (the one the MQTT callback held);
    duplicates are allowed and counted."""
    seed = int(os.environ.get("SLUICE_FAULTS_SEED", random.randrange(1 << 30)))
    rnd = random.Random(seed)
    print(f"SLUICE_FAULTS_SEED={seed}")
    tags = ["k1", "k2"]
    topics = [f"f.{t}:2" for t in tags]
    kafka = start_kafka(tmp_path, cleanup, topics)
    routes = tmp_path / "routes"
    client = unique("kill")
    for tag in tags:
        route_manifest(routes, tag,
                       mqtt_source(mosquitto.url, [topic_of(tag)], f"{client}-{tag}",
                                   reconnect_min_ms=100, reconnect_max_ms=500),
                       kafka_sink(kafka.bootstrap, f"f.{tag}"),
                       buffer=buffer(type="disk", fsync="interval", fsync_interval_ms=200))
    proc = start_sluice(tmp_path, cleanup, routes).start()
    wait_receiving(proc, tags, timeout=30)  # the sessions exist from here on
    reader = start_reader(kafka, cleanup, topics)
    pub = start_publisher(mosquitto, cleanup, {t: topic_of(t) for t in tags}, rate=RATE)
    kills, moments = 0, []
    while kills < 10:
        kafka_away = kills % 3 == 2
        if not kafka_away and rnd.random() < 0.25:
            delay, when = rnd.uniform(0.0, 0.4), "after start"  # recovery, connecting
        else:
            wait_receiving(proc, tags, timeout=30)
            delay, when = rnd.uniform(0.2, 2.0), "after subscribing"
        if kafka_away:
            kafka.down()
            delay += 1.5
            when += ", Kafka down"
        time.sleep(delay)
        assert proc.alive(), f"sluice exited {proc.proc.returncode}:\n{log_tail(proc)}"
        proc.kill()
        kills += 1
        moments.append(f"{delay:.2f} s {when}")
        proc.start()
        if kafka_away:
            time.sleep(rnd.uniform(0.5, 1.5))  # the restart begins with Kafka still down
            kafka.up()
    print(f"{kills} SIGKILLs: " + "; ".join(moments))
    wait_receiving(proc, tags, timeout=30)
    time.sleep(1)
    pub.close(timeout=30)
    for tag in tags:
        reader.wait_for_all(f"f.{tag}", tag, pub.expected(tag), timeout=60, quiet_s=8)
    for tag in tags:
        reader.wait_quiet(f"f.{tag}", quiet_s=1.5, timeout=10)
    result = {tag: account(reader, f"f.{tag}", tag, pub.expected(tag)) for tag in tags}
    rc, took = proc.terminate(timeout=40)
    print(f"SIGTERM: exit {rc} after {took:.1f} s")
    for tag, a in result.items():
        assert len(a.lost) <= kills, \
            f"route {tag}: {len(a.lost)} lost in {kills} kills: {a.summary()}"
        assert not a.garbled and not a.unexpected, a.summary()


# --- 3 -----------------------------------------------------------------------------------------
def test_kafka_away_60s_under_load_loses_nothing_and_keeps_order(tmp_path, mosquitto, cleanup):
    """All Kafka brokers down for 60 s (the mock cluster's own outage: refused, data kept)
    while two disk-spool routes take 200 msg/s each: nothing lost, order per key kept
    (duplicates from Kafka retries are allowed and counted)."""
    outage = float(os.environ.get("SLUICE_FAULTS_OUTAGE_S", 60))
    tags = ["o1", "o2"]
    topics = [f"f.{t}:2" for t in tags]
    kafka = start_kafka(tmp_path, cleanup, topics)
    routes = tmp_path / "routes"
    client = unique("away")
    for tag in tags:
        route_manifest(routes, tag, mqtt_source(mosquitto.url, [topic_of(tag)], f"{client}-{tag}"),
                       kafka_sink(kafka.bootstrap, f"f.{tag}"),
                       buffer=buffer(type="disk", fsync="interval"))
    proc = start_sluice(tmp_path, cleanup, routes).start()
    wait_receiving(proc, tags, timeout=30)
    reader = start_reader(kafka, cleanup, topics)
    pub = start_publisher(mosquitto, cleanup, {t: topic_of(t) for t in tags}, rate=RATE)
    time.sleep(3)
    kafka.down()
    down_at = time.time()
    while time.time() - down_at < outage:
        assert proc.alive(), f"sluice exited {proc.proc.returncode}:\n{log_tail(proc)}"
        time.sleep(1)
    kafka.up()
    time.sleep(5)
    pub.close(timeout=30)
    print(f"outage {outage:.0f} s; published {({t: pub.generated(t) for t in tags})}")
    for tag in tags:
        reader.wait_for_all(f"f.{tag}", tag, pub.expected(tag), timeout=90, quiet_s=30)
    result = {tag: account(reader, f"f.{tag}", tag, pub.expected(tag)) for tag in tags}
    rc, took = proc.terminate(timeout=40)
    print(f"SIGTERM: exit {rc} after {took:.1f} s; stop lines: "
          f"{ {t: faults.stop_counters(proc.log_text(), t) for t in tags} }")
    for tag, a in result.items():
        assert not a.lost, a.summary()
        assert a.reordered == 0, a.summary()
        assert not a.garbled and not a.unexpected, a.summary()


# --- 4 -----------------------------------------------------------------------------------------
def test_mosquitto_restart_under_load_loses_nothing(tmp_path, cleanup):
    """mosquitto with persistence is restarted (SIGTERM, which saves its sessions, then started
    again on the same port) under 200 msg/s on two routes, one with a memory buffer and one
    with a disk spool. Sluice's persistent sessions resume and nothing is lost; the publisher
    is itself lossless (it re-sends whatever had no PUBACK)."""
    broker = PersistentMosquitto(tmp_path).start()
    cleanup.callback(lambda: harness.stop_process(broker.proc))
    tags = ["m1", "m2"]
    topics = [f"f.{t}:2" for t in tags]
    kafka = start_kafka(tmp_path, cleanup, topics)
    routes = tmp_path / "routes"
    client = unique("mrestart")
    for tag, buf in zip(tags, (buffer(type="memory"), buffer(type="disk"))):
        route_manifest(routes, tag,
                       mqtt_source(broker.url, [topic_of(tag)], f"{client}-{tag}",
                                   reconnect_min_ms=100, reconnect_max_ms=1000),
                       kafka_sink(kafka.bootstrap, f"f.{tag}"), buffer=buf)
    proc = start_sluice(tmp_path, cleanup, routes).start()
    wait_receiving(proc, tags, timeout=30)
    reader = start_reader(kafka, cleanup, topics)
    pub = start_publisher(broker, cleanup, {t: topic_of(t) for t in tags}, rate=RATE)
    time.sleep(4)
    broker.stop()
    time.sleep(2)
    broker.start()
    time.sleep(6)
    assert proc.alive(), f"sluice exited {proc.proc.returncode}:\n{log_tail(proc)}"
    pub.close(timeout=30)
    print(f"publisher reconnects {pub.reconnects}; published "
          f"{({t: pub.generated(t) for t in tags})}")
    for tag in tags:
        reader.wait_for_all(f"f.{tag}", tag, pub.expected(tag), timeout=45, quiet_s=15)
    result = {tag: account(reader, f"f.{tag}", tag, pub.expected(tag)) for tag in tags}
    rc, took = proc.terminate(timeout=40)
    print(f"SIGTERM: exit {rc} after {took:.1f} s")
    assert pub.reconnects >= 1, "the broker restart did not reach the publisher"
    for tag, a in result.items():
        assert not a.lost, a.summary()
        assert not a.garbled and not a.unexpected, a.summary()


# --- 5 -----------------------------------------------------------------------------------------
def test_disk_spool_full_drop_newest_counts_and_block_holds_back(tmp_path, mosquitto, cleanup):
    """Two disk routes with a 64 KiB spool while Kafka is down and 1500 messages each arrive
    (about 6x what fits). drop_newest: the stop line's `dropped (full F)` is exactly what never
    reached Kafka, nothing else is missing. block: the source holds back at the broker (its
    persistent session queues) and everything arrives once Kafka is back."""
    n = 1500
    tags = ["dn", "bl"]
    topics = [f"f.{t}:2" for t in tags]
    kafka = start_kafka(tmp_path, cleanup, topics)
    routes = tmp_path / "routes"
    client = unique("full")
    for tag, mode in zip(tags, ("drop_newest", "block")):
        route_manifest(routes, tag,
                       mqtt_source(mosquitto.url, [topic_of(tag)], f"{client}-{tag}",
                                   reconnect_min_ms=100, reconnect_max_ms=1000),
                       kafka_sink(kafka.bootstrap, f"f.{tag}"),
                       buffer=buffer(type="disk", max_bytes=64 * 1024, when_full=mode),
                       max_payload_bytes=16384)  # a buffer may have to fit the largest message
    proc = start_sluice(tmp_path, cleanup, routes).start()
    wait_receiving(proc, tags, timeout=30)
    reader = start_reader(kafka, cleanup, topics)
    kafka.down()
    pub = start_publisher(mosquitto, cleanup, {t: topic_of(t) for t in tags}, rate=300, limit=n)
    pub.wait_done(timeout=30)
    time.sleep(3)
    assert proc.alive(), f"sluice exited {proc.proc.returncode}:\n{log_tail(proc)}"
    kafka.up()
    reader.wait_for_all("f.bl", "bl", pub.expected("bl"), timeout=60, quiet_s=20)
    reader.wait_quiet("f.dn", quiet_s=3, timeout=60)
    result = {tag: account(reader, f"f.{tag}", tag, pub.expected(tag)) for tag in tags}
    rc, took = proc.terminate(timeout=40)
    log = proc.log_text()
    counters = {t: faults.stop_counters(log, t) for t in tags}
    print(f"SIGTERM: exit {rc} after {took:.1f} s; stop lines: {counters}")

    dn, bl = result["dn"], result["bl"]
    assert not bl.lost, f"when_full: block lost messages: {bl.summary()}"
    assert counters["bl"].get("dropped", 0) == 0, f"when_full: block dropped: {counters['bl']}"
    assert "full" in counters["dn"], \
        f"route dn's stop line has no `dropped X (full F, ...)` count:\n{log[-3000:]}"
    assert counters["dn"]["full"] > 0, "the 64 KiB spool never filled: the test proved nothing"
    assert counters["dn"]["dropped"] == counters["dn"]["full"] == len(dn.lost), \
        (f"drop_newest: the log counts {counters['dn']['dropped']} dropped "
         f"({counters['dn']['full']} as full), but {len(dn.lost)} are missing from Kafka: "
         f"{dn.summary()}")
    assert not dn.garbled and not dn.unexpected and not bl.garbled, (dn.summary(), bl.summary())


# --- 6 -----------------------------------------------------------------------------------------
def test_corrupted_spool_skips_exactly_the_damaged_record(tmp_path, mosquitto, cleanup):
    """With Kafka down, 40 messages each go to two disk routes; once every one of them is in
    the spool files, sluice is SIGKILLed. Then one byte inside one message's payload is flipped
    in route `flip`'s segment, and route `torn`'s segment is cut in the middle of its last
    record. After a restart with Kafka up: the log reports 1 corrupt record / a torn tail, and
    exactly the other messages arrive, byte for byte, none twice."""
    n, damaged = 40, 17
    tags = ["flip", "torn"]
    topics = [f"f.{t}:2" for t in tags]
    kafka = start_kafka(tmp_path, cleanup, topics)
    routes = tmp_path / "routes"
    client = unique("corrupt")
    for tag in tags:
        route_manifest(routes, tag, mqtt_source(mosquitto.url, [topic_of(tag)], f"{client}-{tag}"),
                       kafka_sink(kafka.bootstrap, f"f.{tag}"),
                       buffer=buffer(type="disk", fsync="always"))
    proc = start_sluice(tmp_path, cleanup, routes).start()
    wait_receiving(proc, tags, timeout=30)
    kafka.down()
    pub = start_publisher(mosquitto, cleanup, {t: topic_of(t) for t in tags}, rate=100, limit=n)
    pub.wait_done(timeout=30)
    pub.close()
    state = tmp_path / "state"

    def all_spooled():
        return all(faults.spooled_markers(state, t, t, range(n)) == n for t in tags)

    try:
        wait_for(all_spooled, 20, "every message in the spool files")
    except TimeoutError:
        found = {t: (faults.spooled_markers(state, t, t, range(n)), faults.segments(state, t))
                 for t in tags}
        pytest.fail(f"not every message reached the spool within 20 s (found, segments): "
                    f"{found}\n{log_tail(proc, 2000)}")
    proc.kill()

    seg, at = faults.find_in_spool(state, "flip", faults.marker("flip", damaged).encode())
    faults.flip_byte(seg, at + 3)
    last = faults.marker("torn", n - 1).encode()
    seg_t, at_t = faults.find_in_spool(state, "torn", last)
    faults.truncate(seg_t, at_t + len(last) // 2)
    print(f"flipped byte {at + 3} of {seg.name} (flip #{damaged}); cut {seg_t.name} at "
          f"{at_t + len(last) // 2} (inside torn #{n - 1})")

    kafka.up()
    reader = start_reader(kafka, cleanup, topics)
    proc.start()
    wait_receiving(proc, tags, timeout=30)
    expected = {"flip": {s: b for s, b in pub.expected("flip").items() if s != damaged},
                "torn": {s: b for s, b in pub.expected("torn").items() if s != n - 1}}
    for tag in tags:
        reader.wait_for_all(f"f.{tag}", tag, expected[tag], timeout=30, quiet_s=8)
        reader.wait_quiet(f"f.{tag}", quiet_s=2, timeout=15)
    result = {tag: account(reader, f"f.{tag}", tag, expected[tag]) for tag in tags}
    log = proc.log_text()
    rec = {t: faults.spool_recovered(log, t) for t in tags}
    print(f"spool recovered (messages, bytes, torn tail bytes, corrupt records): {rec}")
    rc, took = proc.terminate(timeout=40)
    print(f"SIGTERM: exit {rc} after {took:.1f} s")

    assert rec["flip"] is not None and rec["torn"] is not None, \
        f"no `spool recovered ...` line for both routes:\n{log[-3000:]}"
    assert rec["flip"][3] == 1, f"route flip: expected 1 corrupt record, log says {rec['flip']}"
    assert rec["flip"][0] == n - 1, f"route flip: expected {n - 1} recovered, log: {rec['flip']}"
    assert rec["torn"][2] > 0 and rec["torn"][3] == 0, \
        f"route torn: expected a torn tail and no corrupt record, log says {rec['torn']}"
    assert rec["torn"][0] == n - 1, f"route torn: expected {n - 1} recovered, log: {rec['torn']}"
    for tag, a in result.items():
        assert not a.lost and not a.garbled and a.duplicates == 0, a.summary()
        assert not a.unexpected, f"route {tag}: the damaged message arrived: {a.summary()}"


# --- 7 -----------------------------------------------------------------------------------------
def test_dead_letter_file_gets_failed_messages_unchanged_with_error_headers(
        tmp_path, mosquitto, cleanup):
    """on_error: dead_letter to a file-sink (jsonl shows headers). Route `dlt`: a json-transform
    rejects the non-JSON payloads (every third). Route `dls`: kafka-sink's topic template needs
    the third MQTT topic level, which the messages on `f/dls` lack (a sink-stage rejection).
    Good messages reach the main topic; each rejected one is in the dead-letter file exactly
    once, payload unchanged, with sluice.error.{reason,stage,route,time_ms} and
    sluice.original.topic."""
    n = 60
    kafka = start_kafka(tmp_path, cleanup, ["f.dlt:2", "f.dls.good:2"])
    routes = tmp_path / "routes"
    client = unique("dead")
    dead_t, dead_s = tmp_path / "dead" / "dlt.jsonl", tmp_path / "dead" / "dls.jsonl"
    route_manifest(routes, "dlt", mqtt_source(mosquitto.url, [topic_of("dlt")], f"{client}-t"),
                   kafka_sink(kafka.bootstrap, "f.dlt"),
                   transforms=[{"json-transform": {"parse": "json"}}],
                   on_error="dead_letter", dead_letter=file_sink(dead_t, format="jsonl"))
    route_manifest(routes, "dls", mqtt_source(mosquitto.url, ["f/dls/#"], f"{client}-s"),
                   kafka_sink(kafka.bootstrap, "{{topic.2}}"),
                   on_error="dead_letter", dead_letter=file_sink(dead_s, format="jsonl"))
    proc = start_sluice(tmp_path, cleanup, routes).start()
    wait_receiving(proc, ["dlt", "dls"], timeout=30)
    reader = start_reader(kafka, cleanup, ["f.dlt:2", "f.dls.good:2"])

    def payload(tag, seq, sent_ns):
        if tag == "dlt" and seq % 3 == 1:
            return f"not json {faults.marker(tag, seq)} {{oops".encode()
        return faults.default_payload(tag, seq, sent_ns)

    t0_ms = int(time.time() * 1000)
    pub = start_publisher(mosquitto, cleanup, {"dlt": topic_of("dlt"), "dls": "f/dls/f.dls.good",
                                               "dlsx": "f/dls"},
                          rate=100, limit=n, payload=payload)
    pub.wait_done(timeout=30)
    pub.close()
    sent_t = pub.expected("dlt")
    bad_t = {s: b for s, b in sent_t.items() if s % 3 == 1}
    good_t = {s: b for s, b in sent_t.items() if s % 3 != 1}
    bad_s = pub.expected("dlsx")

    def lines(path):
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    with contextlib.suppress(TimeoutError):
        wait_for(lambda: len(lines(dead_t)) >= len(bad_t) and len(lines(dead_s)) >= len(bad_s),
                 20, "the dead-letter files")
    reader.wait_for_all("f.dlt", "dlt", good_t, timeout=20, quiet_s=5)
    reader.wait_for_all("f.dls.good", "dls", pub.expected("dls"), timeout=20, quiet_s=5)
    time.sleep(1)
    rc, took = proc.terminate(timeout=40)
    t1_ms = int(time.time() * 1000)
    print(f"SIGTERM: exit {rc} after {took:.1f} s")

    # Main topics: the good ones (json-transform re-serialises: compare as JSON).
    got_t = reader.records("f.dlt")
    good_vals = sorted(json.dumps(json.loads(b), sort_keys=True) for b in good_t.values())
    got_vals = sorted(json.dumps(json.loads(r.value), sort_keys=True) for r in got_t)
    a_s = account(reader, "f.dls.good", "dls", pub.expected("dls"))
    print(f"route dlt: {len(good_t)} good sent, {len(got_t)} on f.dlt; {len(bad_t)} bad sent, "
          f"{len(lines(dead_t))} dead-lettered; route dls: {len(bad_s)} bad sent, "
          f"{len(lines(dead_s))} dead-lettered")

    def check_dead(path, bad, route, mqtt_topic, stage_word, as_json):
        entries = lines(path)
        assert entries, f"route {route}: no dead-letter file {path} (or it is empty)"
        payloads = []
        for e in entries:
            h = e.get("headers") or {}
            for name in ("sluice.error.reason", "sluice.error.stage", "sluice.error.route",
                         "sluice.error.time_ms", "sluice.original.topic"):
                assert h.get(name), f"route {route}: dead letter without header {name}: {e}"
            assert h["sluice.error.route"] == route, e
            assert h["sluice.original.topic"] == mqtt_topic, e
            assert stage_word in h["sluice.error.stage"], e
            assert t0_ms - 1000 <= int(h["sluice.error.time_ms"]) <= t1_ms, e
            p = e["payload"]
            payloads.append(json.dumps(p, sort_keys=True) if as_json else p)
        want = sorted(json.dumps(json.loads(b), sort_keys=True) if as_json else b.decode()
                      for b in bad.values())
        assert sorted(payloads) == want, \
            f"route {route}: dead-lettered payloads differ from the rejected ones (or not once)"

    assert got_vals == good_vals, "route dlt: the main topic does not hold exactly the good ones"
    assert not a_s.lost and a_s.duplicates == 0, a_s.summary()
    check_dead(dead_t, bad_t, "dlt", topic_of("dlt"), "json-transform", as_json=False)
    check_dead(dead_s, bad_s, "dls", "f/dls", "kafka-sink", as_json=True)


# --- 8 -----------------------------------------------------------------------------------------
def test_second_process_on_the_same_state_dir_is_refused(tmp_path, mosquitto, cleanup):
    """Two processes must never share a spool: the second exits non-zero saying the state dir
    is in use, and the first keeps running."""
    kafka = start_kafka(tmp_path, cleanup, ["f.lock:1"])
    routes = tmp_path / "routes"
    route_manifest(routes, "lock", mqtt_source(mosquitto.url, [topic_of("lock")], unique("lock")),
                   kafka_sink(kafka.bootstrap, "f.lock"), buffer=buffer(type="disk"))
    # The lock guards the spools: a process with a disk route takes it.
    first = start_sluice(tmp_path, cleanup, routes, name="first").start()
    wait_receiving(first, ["lock"], timeout=30)
    second = start_sluice(tmp_path, cleanup, routes, name="second").start()
    try:
        second.proc.wait(timeout=15)
    except Exception:  # noqa: BLE001 -- still running: reported below
        pass
    rc2 = second.proc.poll()
    log2 = second.log_text()
    second.kill()
    print(f"second process: exit {rc2}; first alive: {first.alive()}")
    assert rc2 is not None and rc2 != 0, \
        f"a second sluice on the same state dir kept running (or exited 0):\n{log2[-2000:]}"
    assert faults.STATE_DIR_IN_USE in log2, log2[-2000:]
    assert first.alive(), "the first process died when the second one started"
    rc, _ = first.terminate(timeout=30)
    assert rc == 0


# --- 9 -----------------------------------------------------------------------------------------
def test_sigterm_with_kafka_down_exits_in_time_and_the_disk_spool_delivers_after_restart(
        tmp_path, mosquitto, cleanup):
    """Kafka is down and a disk route holds 300 undelivered messages: SIGTERM still exits
    within drain_timeout_ms + 10 s, and after the next start (Kafka back) every one of them
    arrives."""
    n, drain_ms = 300, 2000
    kafka = start_kafka(tmp_path, cleanup, ["f.term:2"])
    routes = tmp_path / "routes"
    route_manifest(routes, "term", mqtt_source(mosquitto.url, [topic_of("term")], unique("term")),
                   kafka_sink(kafka.bootstrap, "f.term"), buffer=buffer(type="disk"),
                   drain_timeout_ms=drain_ms)
    proc = start_sluice(tmp_path, cleanup, routes).start()
    wait_receiving(proc, ["term"], timeout=30)
    kafka.down()
    pub = start_publisher(mosquitto, cleanup, {"term": topic_of("term")}, rate=300, limit=n)
    pub.wait_done(timeout=30)
    pub.close()
    time.sleep(1)
    rc, took = proc.terminate(timeout=drain_ms / 1000 + 20)
    first_log = proc.log_text()
    print(f"SIGTERM with Kafka down: exit {rc} after {took:.1f} s; stop line "
          f"{faults.stop_counters(first_log, 'term')}")
    assert rc is not None and took <= drain_ms / 1000 + 10, \
        f"sluice took {took:.1f} s to exit on SIGTERM (rc {rc}):\n{first_log[-3000:]}"
    kafka.up()
    reader = start_reader(kafka, cleanup, ["f.term:2"])
    proc.start()
    reader.wait_for_all("f.term", "term", pub.expected("term"), timeout=30, quiet_s=10)
    a = account(reader, "f.term", "term", pub.expected("term"))
    print(f"spool recovered: {faults.spool_recovered(proc.log_text(), 'term')}")
    rc2, _ = proc.terminate(timeout=30)
    assert not a.lost, f"the disk spool did not deliver everything after the restart: {a.summary()}"
    assert not a.garbled and not a.unexpected, a.summary()

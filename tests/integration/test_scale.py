"""Hundreds of routes in one process, with the real binary, mosquitto and the mock Kafka cluster.

One manifest file per route (`scale/r<i>/+` -> json-transform -> kafka-sink into one of ten
topics; half of them on one shared MQTT connection, half on a connection each); a few QoS 1
messages on every route, read back from Kafka with an independent client
(kcat): every message arrives exactly once, through its own route. The process must keep a
bounded number of threads whatever the number of routes (routes run on a fixed pool, not on a
thread each: DESIGN.md, "Routes at run time"), and SIGTERM must drain and exit 0 within the
drain deadline. Idle CPU and RSS are printed, not asserted (only a loose sanity bound on CPU):
the figures against the issue's targets come from tools/bench/scale_bench.py, on a release
build.

The thread count is checked twice: at most 64 from start to exit, and, once every route is
subscribed, at most a few more than the same set-up with SLUICE_SCALE_BASELINE_ROUTES (10)
routes runs.

SLUICE_SCALE_ROUTES (default 300) and SLUICE_SCALE_MESSAGES (per route, default 3) change the
size; SLUICE_SCALE_BASELINE_ROUTES=0 leaves the comparison out. On a runtime with a thread per
route, SLUICE_SCALE_ROUTES=20 SLUICE_SCALE_BASELINE_ROUTES=0 checks the rest of the test.
"""
import collections
import json
import os
import re
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from harness import (DevKafka, Mosquitto, Sluice, cpu_seconds, manifest, require, route,
                     rss_bytes, threads_of)

ROUTES = int(os.environ.get("SLUICE_SCALE_ROUTES", "300"))
MESSAGES = int(os.environ.get("SLUICE_SCALE_MESSAGES", "3"))
BASELINE_ROUTES = int(os.environ.get("SLUICE_SCALE_BASELINE_ROUTES", "10"))
THREAD_GROWTH_SLACK = 8       # threads that ROUTES routes may run beyond BASELINE_ROUTES'
SETTLE_S = 1.0
TOPICS = 10
PARTITIONS = 4
MAX_THREADS = 64              # the bound, for 10,000 routes as much as for 300
DRAIN_TIMEOUT_S = 10          # drain_timeout_ms, set in every manifest (its default)
GIVE_UP_S = 3                 # sluice exits at most this long after the longest drain deadline
IDLE_WINDOW_S = 3.0
IDLE_CPU_SANITY_PCT = 50.0    # a loose bound: the target is < 1 % for 1,000 routes
NOFILE = 65536
# The routes' memory buffers must fit the host's memory_limit (2 GiB) together, each counted
# with half of it again for headroom: 64 KiB a route fits 10,000 routes (and holds far more
# than a route's few messages here).
BUFFER_BYTES = 65536
MAX_PAYLOAD = 16384             # a buffer must hold one message of max_payload_bytes
STOP_LINE = re.compile(r"\[route (r\d+)\] stopped: received (\d+), delivered (\d+), "
                       r"errors (\d+), dropped (\d+)")


def name_of(i):
    return f"r{i:05d}"


def topic_of(i):
    return f"scale.t{i % TOPICS}"


class ThreadSampler:
    """Samples the process's thread count (/proc/<pid>/status) every 20 ms: the peak counts,
    not just the count at one moment."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, threads_of(self.pid))
                self.samples += 1
            except (OSError, KeyError, ValueError):
                return  # the process is gone
            self._stop.wait(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def publish_all(broker):
    """MESSAGES QoS 1 messages on every route's topic, each naming its route and sequence
    number: one mosquitto_pub -m per message (-l would wait ~0.2 s per process), a few at a
    time."""
    require("mosquitto_pub", "mosquitto-clients")

    def one(i):
        for s in range(MESSAGES):
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port),
                            "-t", f"scale/{name_of(i)}/dev", "-q", "1", "-V", "mqttv311",
                            "-m", json.dumps({"route": name_of(i), "seq": s})],
                           check=True, timeout=60, capture_output=True)

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(one, range(ROUTES)))


def write_routes(directory, n, prefix, broker, kafka):
    """n manifest files: route <prefix><i>, `scale/<prefix><i>/+` -> json-transform (adds the
    route's name) -> kafka-sink into one of the TOPICS topics. Every other route uses
    `connection: shared` (one MQTT connection for all of those), the rest a connection each."""
    directory.mkdir()
    transform = ('  - json-transform:\n'
                 '      set: { via: "{{route}}", device: "{{topic.2}}" }\n'
                 '      key: "{{route}}"\n')
    for i in range(n):
        name = f"{prefix}{i:05d}"
        manifest(directory, name,
                 route(name, broker.url, [f"scale/{name}/+"], kafka.bootstrap, topic_of(i),
                       transforms=transform,
                       extra_source="    connection: shared\n" if i % 2 else "",
                       extra=f"drain_timeout_ms: {DRAIN_TIMEOUT_S * 1000}\n"
                             f"buffer: {{ max_bytes: {BUFFER_BYTES} }}\n"
                             f"max_payload_bytes: {MAX_PAYLOAD}\n"))
    return directory


def report(capsys, figures):
    """Printed past pytest's capture (ctest shows it with --output-on-failure or -V)."""
    with capsys.disabled():
        print("\n[scale] " + ", ".join(f"{k} {v}" for k, v in figures.items()), flush=True)


def test_hundreds_of_routes_bounded_threads_every_message_once(tmp_path, capsys):
    assert ROUTES >= 1 and MESSAGES >= 1
    topics = [f"scale.t{k}" for k in range(TOPICS)]
    broker = Mosquitto(tmp_path, extra=["max_connections -1"], nofile=NOFILE).start()
    kafka = DevKafka(tmp_path, topics=[f"{t}:{PARTITIONS}" for t in topics]).start()
    try:
        figures = {"routes": ROUTES, "messages": ROUTES * MESSAGES}
        baseline = None
        if BASELINE_ROUTES:
            # The same set-up with a few routes: its thread count is what 300 must not exceed
            # by more than a few (a fixed pool does not grow with routes).
            small = Sluice(tmp_path / "baseline", nofile=NOFILE)
            small.workdir.mkdir()
            small.start(write_routes(small.workdir / "routes", BASELINE_ROUTES, "b", broker,
                                     kafka))
            small.wait_subscribed(BASELINE_ROUTES)
            time.sleep(SETTLE_S)
            baseline = threads_of(small.proc.pid)
            small.stop()
            figures[f"threads for {BASELINE_ROUTES} routes"] = baseline
        routes_dir = write_routes(tmp_path / "routes", ROUTES, "r", broker, kafka)

        sluice = Sluice(tmp_path, nofile=NOFILE)
        t0 = time.monotonic()
        sluice.start(routes_dir)
        pid = sluice.proc.pid
        with ThreadSampler(pid) as sampler:  # until the process has exited
            sluice.wait_subscribed(ROUTES, timeout=max(60, ROUTES / 5))
            figures["all subscribed after s"] = round(time.monotonic() - t0, 1)
            time.sleep(SETTLE_S)
            threads_subscribed = threads_of(pid)
            figures["threads when subscribed"] = threads_subscribed

            t_pub = time.monotonic()
            publish_all(broker)
            figures["publish s"] = round(time.monotonic() - t_pub, 1)
            per_topic = collections.Counter(topic_of(i) for i in range(ROUTES))
            with ThreadPoolExecutor(max_workers=TOPICS) as pool:  # one kcat per topic, at once
                records = [r for got in pool.map(
                    lambda t: kafka.read(t, expect=per_topic[t] * MESSAGES, timeout=60), topics)
                    for r in got]
            figures["publish to all read back s"] = round(time.monotonic() - t_pub, 1)

            time.sleep(1.0)  # the last delivery reports and log lines settle
            cpu0, w0 = cpu_seconds(pid), time.monotonic()
            time.sleep(IDLE_WINDOW_S)
            idle_pct = 100.0 * (cpu_seconds(pid) - cpu0) / (time.monotonic() - w0)
            rss = rss_bytes(pid)
            threads_idle = threads_of(pid)
            figures.update({"threads idle": threads_idle,
                            "idle CPU % of one core": round(idle_pct, 2),
                            "RSS MiB": round(rss / 2**20, 1),
                            "RSS KiB per route (upper bound)": round(rss / 1024 / ROUTES, 1)})

            t1 = time.monotonic()
            sluice.proc.send_signal(signal.SIGTERM)
            try:
                rc = sluice.proc.wait(timeout=DRAIN_TIMEOUT_S + GIVE_UP_S + 10)
            except subprocess.TimeoutExpired:
                rc = None
            stop_s = time.monotonic() - t1
            figures["SIGTERM to exit s"] = round(stop_s, 2)
        figures["peak threads (start to exit)"] = sampler.peak
        report(capsys, figures)

        # Every message exactly once, on its route's topic, through its own route.
        seen = collections.Counter()
        for r in records:
            v = json.loads(r.value)
            assert r.topic == topic_of(int(v["route"][1:])), f"{v} on {r.topic}"
            assert v["via"] == v["route"], f"{v}: another route carried it"
            seen[(v["route"], v["seq"])] += 1
        expected = {(name_of(i), s) for i in range(ROUTES) for s in range(MESSAGES)}
        missing = expected - set(seen)
        assert not missing, (f"{len(missing)} of {len(expected)} messages missing from Kafka, "
                             f"e.g. {sorted(missing)[:5]}")
        dups = {k: n for k, n in seen.items() if n > 1}
        assert not dups, f"{sum(dups.values()) - len(dups)} duplicates, e.g. {list(dups)[:5]}"
        assert set(seen) == expected, f"unexpected records: {sorted(set(seen) - expected)[:5]}"

        assert rc == 0, (f"sluice exited {rc} {stop_s:.1f} s after SIGTERM:\n"
                         f"{sluice.log_text()[-4000:]}")
        assert stop_s <= DRAIN_TIMEOUT_S + GIVE_UP_S, (
            f"SIGTERM took {stop_s:.1f} s, past the drain deadline of {DRAIN_TIMEOUT_S} s "
            f"(+{GIVE_UP_S} s)")
        # Each route's counters, as it logged them when it stopped.
        counters = {m[0]: tuple(int(x) for x in m[1:]) for m in STOP_LINE.findall(
            sluice.log_text())}
        assert len(counters) == ROUTES, f"{len(counters)} of {ROUTES} routes logged their stop"
        wrong = {r: c for r, c in counters.items() if c != (MESSAGES, MESSAGES, 0, 0)}
        assert not wrong, ("routes whose (received, delivered, errors, dropped) are not "
                           f"({MESSAGES}, {MESSAGES}, 0, 0): {dict(list(wrong.items())[:5])}")
        assert sampler.peak <= MAX_THREADS, (
            f"sluice ran {sampler.peak} threads at its peak for {ROUTES} routes "
            f"({sampler.peak / ROUTES:.2f} per route; {threads_idle} when idle): the runtime "
            f"must bound its threads at {MAX_THREADS} whatever the number of routes")
        if baseline is not None:
            assert threads_subscribed <= baseline + THREAD_GROWTH_SLACK, (
                f"sluice ran {threads_subscribed} threads for {ROUTES} routes and {baseline} "
                f"for {BASELINE_ROUTES} (+{threads_subscribed - baseline}): threads must not "
                f"grow with routes (slack {THREAD_GROWTH_SLACK})")
        assert idle_pct <= IDLE_CPU_SANITY_PCT, (
            f"{ROUTES} idle routes took {idle_pct:.1f} % of one core over {IDLE_WINDOW_S:g} s")

    finally:
        kafka.stop()  # a sluice still running is killed by conftest's no_sluice_left_behind
        broker.stop()

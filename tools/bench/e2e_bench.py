#!/usr/bin/python3
"""End-to-end benchmark: MQTT -> Sluice -> Kafka on loopback, against a plain C subscriber.

On these 2-core machines a QoS 1 publisher plus mosquitto already costs ~36-39 us of CPU per
message, so live throughput is capped by the publisher whatever the bridge (docs/benchmarks.md,
DESIGN.md). What tells bridges apart is the rate at which they DRAIN A BACKLOG and the CPU
they spend per message. For each scenario and repetition this script:

  1. starts mosquitto (generated config: unlimited queue and in-flight window, no persistence)
     and, for Sluice, sluice-devkafka (librdkafka mock cluster) with the topics pre-created,
     each on a free loopback port chosen at run time;
  2. creates the subscriber's persistent session(s): `sluice-bench-subscriber --setup-session`,
     or `sluice run` with fixed client ids until mosquitto logged every subscription, then
     SIGTERM;
  3. publishes the data set with `sluice-replay --pace max --qos 1` while the subscriber is away;
  4. starts the subscriber and times it, from its spawn, until everything arrived: the C
     subscriber printed its count; for Sluice the Kafka topics' end offsets (polled every
     ~100 ms with kafka-python) sum to N. End offsets still count records the mock cluster
     dropped beyond ~5 MiB per partition, so the count is exact either way.
  CPU per message is the subscriber process's user+system time over that span (Sluice:
  /proc/<pid>/stat), and mosquitto's and the mock cluster's over the same span are reported too.

Scenarios: ceiling (the C subscriber on sensors/#), python-1 (the peer: python_bridge.py, one
process for the six occupancy filter -> topic pairs, a persistent session), python-per-topic
(six python_bridge.py processes, one per pair, as per-topic bridge scripts run; CPU and RSS
summed over them), sluice-1 (one route on sensors/# into one
topic, keyed by node, with the occupancy manifests' json-transform), sluice-6 (the six
manifests/occupancy routes with fixed client ids, written to a temp dir), and sluice-1-disk /
sluice-6-disk (the same with `buffer: {type: disk, fsync: never}`: what the durable spool costs).

--baseline-build DIR runs every Sluice scenario a second time with another build's binaries
(e.g. of an earlier commit) as <scenario>@base, right after it in each repetition: a change to
the runtime is then a ratio measured in the same run ("one busy route drains 2x faster").

--live instead keeps the subscriber connected and publishes at max pace: end-to-end throughput
and the subscriber's CPU per message (expected to be capped by the publisher).

Standard library + Debian's python3-kafka only. Run from anywhere; paths are relative to the
repository (this file's ../..). Nothing here is a test: it reports figures.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data", "occupancy_estimation.csv"))
MANIFESTS = os.path.join(REPO, "manifests", "occupancy")
MSGS_PER_ROW = 16
CLK_TCK = os.sysconf("SC_CLK_TCK")
POLL_S = 0.1
SCENARIOS = ("ceiling", "sluice-1", "sluice-6", "sluice-1-disk", "sluice-6-disk", "python-1",
             "python-per-topic")
PYTHON_BRIDGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "python_bridge.py")
# The -disk scenarios are the same routes with a durable spool instead of the memory buffer.
DISK_BUFFER = "{type: disk, fsync: never, max_bytes: 268435456}"

# The occupancy manifests' transform, used by the one-route scenario too.
ONE_ROUTE = """\
route: bench-sensors
source:
  mqtt-source:
    url: {mqtt_url}
    topics: [sensors/#]
    qos: 1
    client_id: sluice-bench-sensors
    mqtt_version: "{mqtt_version}"
transforms:
  - json-transform:
      set: {{ node: "{{{{topic.2}}}}", sensor: "{{{{topic.1}}}}" }}
      key: "{{{{json.node}}}}"
sink:
  kafka-sink:
    brokers: {brokers}
    topic: bench.sensors
"""


class BenchError(Exception):
    pass


def log(msg):
    print(f"[e2e-bench] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def tail(path, lines=15):
    return "\n".join(read_text(path).splitlines()[-lines:])


def wait_for(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise BenchError(f"timed out after {timeout_s:g} s waiting for {what}")


def cpu_s(pid):
    """User + system CPU seconds of a live process (all its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid):
    """Resident set size of a live process (VmRSS)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Processes:
    """Everything this script starts; stop_all() ends each by its pid (SIGTERM, then SIGKILL)."""

    def __init__(self):
        self.procs = []

    def start(self, name, argv, log_path, **kwargs):
        out = open(log_path, "wb")
        try:
            proc = subprocess.Popen(argv, stdout=kwargs.pop("stdout", out), stderr=out,
                                    stdin=subprocess.DEVNULL, cwd=REPO, **kwargs)
        finally:
            out.close()
        self.procs.append((name, proc))
        return proc

    def stop(self, proc, timeout_s=30):
        """SIGTERM and a bounded wait; returns the exit code (SIGKILL after the timeout)."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                return None
        return proc.returncode

    def stop_all(self):
        for _, proc in reversed(self.procs):
            try:
                self.stop(proc, timeout_s=10)
            except Exception:  # keep stopping the others
                pass
        self.procs = []


class Env:
    """One mosquitto (and, for Sluice, one mock Kafka cluster) for one measured run."""

    def __init__(self, args, workdir, procs):
        self.args = args
        self.dir = workdir
        self.procs = procs
        self.mosquitto = None
        self.mqtt_url = None
        self.kafka = None
        self.brokers = None

    def start_mosquitto(self):
        for _ in range(5):  # the free port may be taken between choosing and binding it
            port = free_port()
            conf = os.path.join(self.dir, "mosquitto.conf")
            self.mosquitto_log = os.path.join(self.dir, "mosquitto.log")
            with open(conf, "w", encoding="utf-8") as f:
                f.write(f"listener {port} 127.0.0.1\n"
                        "allow_anonymous true\n"
                        "persistence false\n"
                        "max_queued_messages 0\n"      # unlimited: the backlog is the point
                        "max_queued_bytes 0\n"
                        f"max_inflight_messages {self.args.broker_inflight}\n"
                        "log_dest stdout\n"
                        "log_type error\nlog_type warning\nlog_type notice\n"
                        "log_type information\nlog_type subscribe\n")
            # stdout line-buffered, so its log can be followed (a log file would have to be
            # writable by the user mosquitto switches to when started as root).
            self.mosquitto = self.procs.start("mosquitto",
                                              ["stdbuf", "-oL", "mosquitto", "-c", conf],
                                              self.mosquitto_log)
            try:
                wait_for(lambda: self.mosquitto.poll() is not None or
                         f"Opening ipv4 listen socket on port {port}" in
                         read_text(self.mosquitto_log), 10, "mosquitto to listen")
            except BenchError:
                pass
            if self.mosquitto.poll() is None and self._accepts(port):
                self.mqtt_url = f"tcp://127.0.0.1:{port}"
                return
            self.procs.stop(self.mosquitto)
        raise BenchError(f"mosquitto did not start: {tail(self.mosquitto_log)}")

    @staticmethod
    def _accepts(port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return True
        except OSError:
            return False

    def start_kafka(self, topics):
        bootstrap_file = os.path.join(self.dir, "kafka.bootstrap")
        argv = [os.path.join(self.args.build, "tools", "devkafka", "sluice-devkafka"),
                "--bootstrap-file", bootstrap_file]
        for topic, parts in topics:
            argv += ["--topic", f"{topic}:{parts}"]
        self.kafka_log = os.path.join(self.dir, "devkafka.log")
        child_env = dict(os.environ)
        if self.args.kafka_nagle:
            argv.append("--nagle")
        self.kafka = self.procs.start("devkafka", argv, self.kafka_log, env=child_env)
        wait_for(lambda: read_text(bootstrap_file).strip() or self.kafka.poll() is not None,
                 20, "sluice-devkafka's bootstrap address")
        if self.kafka.poll() is not None:
            raise BenchError(f"sluice-devkafka exited: {tail(self.kafka_log)}")
        self.brokers = read_text(bootstrap_file).strip()

    def subscribed(self, client_id, topic_filter):
        """mosquitto's `log_type subscribe` line: '<time>: <client id> <qos> <filter>'."""
        pattern = re.compile(rf"^\d+: {re.escape(client_id)} \d {re.escape(topic_filter)}$",
                             re.M)
        return pattern.search(read_text(self.mosquitto_log)) is not None

    def connected(self, client_id):
        return f" as {client_id} (" in read_text(self.mosquitto_log)

    def publish(self, rows):
        summary = os.path.join(self.dir, "replay.json")
        argv = [os.path.join(self.args.build, "tools", "replay", "sluice-replay"),
                "--url", self.mqtt_url, "--pace", "max", "--qos", "1",
                "--file", os.path.relpath(DATA, REPO), "--summary-json", summary]
        if rows is not None:
            argv += ["--rows", str(rows)]
        replay_log = os.path.join(self.dir, "replay.log")
        start = time.monotonic()
        proc = self.procs.start("replay", argv, replay_log)
        mosq_cpu0 = cpu_s(self.mosquitto.pid)
        sent, cpu = replay_result(proc, summary, replay_log, self.args.timeout)
        return {"messages": sent, "publish_s": time.monotonic() - start,
                "publish_publisher_cpu_s": cpu,
                "publish_mosquitto_cpu_s": cpu_s(self.mosquitto.pid) - mosq_cpu0}


def find_count(summary):
    """The number of messages the publisher had acknowledged, from its summary JSON."""
    if isinstance(summary.get("messages_acknowledged"), int):
        return summary["messages_acknowledged"]
    raise BenchError(f"no acknowledged count in sluice-replay's summary: {summary}")


# ---------------------------------------------------------------------------------------------
# Sluice set-up


def with_options(text, args, extra_route_options=()):
    """Adds --sink-option lines to the kafka-sink block and --route-option lines at the end."""
    for opt in args.sink_option:
        key, _, value = opt.partition("=")
        text, n = re.subn(r"^(\s+)kafka-sink:\n",
                          lambda m: f"{m.group(0)}{m.group(1)}  {key}: {value}\n", text,
                          flags=re.M)
        if n != 1:
            raise BenchError("expected one kafka-sink block")
    for opt in list(args.route_option) + list(extra_route_options):
        key, _, value = opt.partition("=")
        text = text.rstrip("\n") + f"\n{key}: {value}\n"
    return text


def sluice_routes(scenario, env, routes_dir, args):
    """Writes the route manifests; returns [(client_id, filter)], [(kafka topic, partitions)]."""
    os.makedirs(routes_dir, exist_ok=True)
    mqtt_version = args.mqtt_version
    extra = [f"buffer={DISK_BUFFER}"] if scenario.endswith("-disk") else []
    if scenario.startswith("sluice-1"):
        with open(os.path.join(routes_dir, "bench-sensors.yaml"), "w", encoding="utf-8") as f:
            f.write(with_options(ONE_ROUTE.format(mqtt_url=env_placeholder("MQTT_URL"),
                                                  brokers=env_placeholder("KAFKA_BROKERS"),
                                                  mqtt_version=mqtt_version), args, extra))
        # ~170 bytes a record in the mock cluster; keyed by 7 nodes, so at most 7 partitions
        # fill: the s1..s4 keys hold ~30k records (~5 MiB) each. End offsets count regardless.
        return [("sluice-bench-sensors", "sensors/#")], [("bench.sensors", 8)]
    subs, topics = [], []
    for name in sorted(os.listdir(MANIFESTS)):
        if not name.endswith(".yaml"):
            continue
        text = read_text(os.path.join(MANIFESTS, name))
        route = re.search(r"^route:\s*(\S+)", text, re.M).group(1)
        filters = re.search(r"^\s+topics:\s*\[([^\]]*)\]", text, re.M).group(1)
        topic = re.search(r"^\s+topic:\s*(\S+)", text, re.M).group(1)
        client_id = f"sluice-bench-{route}"
        text, n = re.subn(r"^(\s+)mqtt-source:\n",
                          lambda m: (f"{m.group(0)}{m.group(1)}  client_id: {client_id}\n"
                                     f"{m.group(1)}  mqtt_version: \"{mqtt_version}\"\n"),
                          text, flags=re.M)
        if n != 1:
            raise BenchError(f"{name}: expected one mqtt-source block")
        with open(os.path.join(routes_dir, name), "w", encoding="utf-8") as f:
            f.write(with_options(text, args, extra))
        for flt in filters.split(","):
            subs.append((client_id, flt.strip().strip("'\"")))
        topics.append((topic, 4))  # <= 40,516 records (~7 MiB) a topic: 4 x <2 MiB
    return subs, topics


def env_placeholder(name):
    return "${" + name + "}"


def write_sluice_config(env, routes_dir):
    config = os.path.join(env.dir, "sluice.yaml")
    with open(config, "w", encoding="utf-8") as f:
        f.write(f"plugins: [{os.path.join(env.args.build, 'plugins')}]\n"
                f"routes: [{routes_dir}]\n"
                f"state_dir: {os.path.join(env.dir, 'state')}\n"
                "log: { level: info, format: text }\n")
    return config


def start_sluice(env, config, log_name):
    child_env = dict(os.environ, MQTT_URL=env.mqtt_url, KAFKA_BROKERS=env.brokers)
    path = os.path.join(env.dir, log_name)
    proc = env.procs.start("sluice", [os.path.join(env.args.build, "sluice"), "run", "-c", config],
                           path, env=child_env)
    return proc, path


def stop_sluice(env, proc, log_path):
    code = env.procs.stop(proc, timeout_s=60)
    if code != 0:
        raise BenchError(f"sluice exited {code} on SIGTERM; log {log_path}:\n{tail(log_path)}")
    return read_text(log_path)


def route_counters(log_text):
    """Each route's stop line ('... stopped: received R, delivered D, errors E, ...,
    restarts S') -> totals."""
    totals = {"received": 0, "delivered": 0, "errors": 0, "restarts": 0}
    for line in re.findall(r"\] stopped: (.*)", log_text):
        for key in totals:
            m = re.search(rf"\b{key} (\d+)", line)
            if m:
                totals[key] += int(m.group(1))
    return totals


class OffsetReader:
    def __init__(self, brokers, topics):
        from kafka import KafkaConsumer, TopicPartition
        self.consumer = KafkaConsumer(bootstrap_servers=brokers.split(","), group_id=None,
                                      enable_auto_commit=False, request_timeout_ms=20000)
        self.partitions = [TopicPartition(t, p) for t, parts in topics for p in range(parts)]

    def total(self):
        return sum(self.consumer.end_offsets(self.partitions).values())

    def close(self):
        self.consumer.close()


# ---------------------------------------------------------------------------------------------
# One measured run


def run_once(args, scenario, rows, workdir):
    procs = Processes()
    env = Env(args, workdir, procs)
    reader = None
    try:
        env.start_mosquitto()
        result = {"scenario": scenario}
        if scenario == "ceiling":
            sub = os.path.join(args.build, "tools", "bench", "sluice-bench-subscriber")
            common = ["--url", env.mqtt_url, "--client-id", "sluice-bench-ceiling",
                      "--topic", "sensors/#", "--qos", "1", "--mqtt-version", args.mqtt_version]
            setup = subprocess.run([sub, *common, "--setup-session"], capture_output=True,
                                   text=True, timeout=30)
            if setup.returncode != 0:
                raise BenchError(f"subscriber --setup-session failed: {setup.stderr}")
            subscriber = lambda n: [sub, *common, "--count", str(n),
                                    "--timeout", str(args.timeout)]
            if args.live:
                return live_ceiling(env, procs, subscriber, rows, result)
            result.update(env.publish(rows))
            sent = result["messages"]
            mosq_cpu0 = cpu_s(env.mosquitto.pid)
            start = time.monotonic()
            proc = procs.start("subscriber", subscriber(sent),
                               os.path.join(workdir, "subscriber.log"), stdout=subprocess.PIPE)
            try:
                line = proc.stdout.readline()
                done = time.monotonic()
                mosq_cpu = cpu_s(env.mosquitto.pid) - mosq_cpu0
                proc.wait(timeout=30)
            finally:
                proc.stdout.close()
            if proc.returncode != 0 or not line:
                raise BenchError(f"subscriber exited {proc.returncode}: "
                                 f"{tail(os.path.join(workdir, 'subscriber.log'))}")
            own = json.loads(line)
            result.update(drain_s=done - start, subscriber_elapsed_s=own["elapsed_s"],
                          cpu_s=own["cpu_s"], mosquitto_cpu_s=mosq_cpu, received=own["received"])
            return finish(result)

        if scenario.startswith("python-"):
            return run_python(env, procs, scenario, rows, result)

        # Sluice scenarios
        routes_dir = os.path.join(workdir, "routes")
        subs, topics = sluice_routes(scenario, env, routes_dir, args)
        env.start_kafka(topics)
        config = write_sluice_config(env, routes_dir)
        reader = OffsetReader(env.brokers, topics)
        if reader.total() != 0:
            raise BenchError("the fresh mock cluster's topics are not empty")
        # Sessions: run once until mosquitto logged every subscription, then SIGTERM.
        proc, setup_log = start_sluice(env, config, "sluice-setup.log")
        wait_for(lambda: all(env.subscribed(c, f) for c, f in subs) or proc.poll() is not None,
                 60, "every route's subscription")
        if proc.poll() is not None:
            raise BenchError(f"sluice exited {proc.returncode} during session set-up:\n"
                             f"{tail(setup_log)}")
        stop_sluice(env, proc, setup_log)
        if args.live:
            return live_sluice(env, procs, config, reader, subs, rows, result)
        result.update(env.publish(rows))
        sent = result["messages"]
        if reader.total() != 0:
            raise BenchError("records reached Kafka while sluice was stopped")

        mosq_cpu0 = cpu_s(env.mosquitto.pid)
        kafka_cpu0 = cpu_s(env.kafka.pid)
        start = time.monotonic()
        proc, run_log = start_sluice(env, config, "sluice.log")
        measure_drain(env, [proc], run_log, reader, sent, start, mosq_cpu0, kafka_cpu0, result)
        result["kafka_records"] = reader.total()
        counters = route_counters(stop_sluice(env, proc, run_log))
        result.update(sluice_counters=counters)
        result["received"] = result["kafka_records"]
        if result["kafka_records"] != sent or counters["errors"]:
            result["finding"] = (f"Kafka holds {result['kafka_records']} records for {sent} "
                                 f"published; sluice counters {counters}; log {run_log}")
        return finish(result)
    finally:
        if reader is not None:
            reader.close()
        procs.stop_all()


def measure_drain(env, bridge, run_log, reader, sent, start, mosq_cpu0, kafka_cpu0, result):
    """Polls Kafka's end offsets until `sent` records are in, then lets the bridge processes
    idle for --settle-s; records time, CPU and RSS (summed over `bridge`) in `result`."""
    deadline = start + env.args.timeout
    total = 0
    first_record = None
    rss_peak = 0
    timeline = []  # (s since spawn, records in Kafka, bridge CPU s) every ~0.5 s
    while True:
        for proc in bridge:
            if proc.poll() is not None:
                raise BenchError(f"the bridge exited {proc.returncode} during the drain "
                                 f"({total} of {sent} in Kafka):\n{tail(run_log)}")
        bridge_cpu = sum(cpu_s(p.pid) for p in bridge)
        rss_peak = max(rss_peak, sum(rss_bytes(p.pid) for p in bridge))
        now = time.monotonic()
        total = reader.total()
        if total and first_record is None:
            first_record = now - start
        if not timeline or now - start - timeline[-1][0] >= 0.5:
            timeline.append((round(now - start, 2), total, round(bridge_cpu, 2)))
        if total >= sent:
            break
        if now > deadline:
            raise BenchError(f"only {total} of {sent} records in Kafka after "
                             f"{env.args.timeout} s; log {run_log}:\n{tail(run_log)}")
        time.sleep(POLL_S)
    # Time and CPU of the poll that saw the last record (CPU read just before it).
    done = time.monotonic()
    timeline.append((round(done - start, 2), total, round(bridge_cpu, 2)))
    result.update(drain_s=done - start, first_record_s=first_record, cpu_s=bridge_cpu,
                  timeline=timeline,
                  mosquitto_cpu_s=cpu_s(env.mosquitto.pid) - mosq_cpu0,
                  kafka_cpu_s=cpu_s(env.kafka.pid) - kafka_cpu0)
    # Anything beyond N would be duplicates. Meanwhile the bridge goes idle, and what the
    # burst made large should be given back (route arenas, the allocator's free pages).
    settle_until = time.monotonic() + env.args.settle_s
    while time.monotonic() < settle_until:
        rss_peak = max(rss_peak, sum(rss_bytes(p.pid) for p in bridge))
        time.sleep(POLL_S)
    result.update(rss_peak=rss_peak, rss_after=sum(rss_bytes(p.pid) for p in bridge))


def occupancy_pairs():
    """The occupancy manifests' (route, [filters], Kafka topic), in file order."""
    pairs = []
    for name in sorted(os.listdir(MANIFESTS)):
        if name.endswith(".yaml"):
            text = read_text(os.path.join(MANIFESTS, name))
            route = re.search(r"^route:\s*(\S+)", text, re.M).group(1)
            filters = re.search(r"^\s+topics:\s*\[([^\]]*)\]", text, re.M).group(1)
            topic = re.search(r"^\s+topic:\s*(\S+)", text, re.M).group(1)
            pairs.append((route, [f.strip().strip("'\"") for f in filters.split(",")], topic))
    return pairs


def run_python(env, procs, scenario, rows, result):
    """The peer: python_bridge.py, one process for every pair or one per pair."""
    pairs = occupancy_pairs()
    groups = ([("python-bridge", pairs)] if scenario == "python-1" else
              [(f"python-bridge-{route}", [(route, f, t)]) for route, f, t in pairs])
    topics = [(t, 4) for _, _, t in pairs]
    env.start_kafka(topics)
    reader = OffsetReader(env.brokers, topics)
    port = env.mqtt_url.rsplit(":", 1)[1]

    def start(tag):
        out = []
        for client_id, members in groups:
            argv = ["/usr/bin/python3", PYTHON_BRIDGE, "--mqtt-port", port, "--brokers",
                    env.brokers, "--client-id", client_id, "--persistent"]
            for _, filters, topic in members:
                argv += [x for f in filters for x in ("--route", f"{f}={topic}")]
            out.append(procs.start(client_id, argv,
                                   os.path.join(env.dir, f"{client_id}-{tag}.log")))
        return out

    try:
        # Sessions first, as for Sluice: the backlog is queued for them while they are away.
        setup = start("setup")
        wanted = [(c, f) for c, members in groups for _, fs, _ in members for f in fs]
        wait_for(lambda: all(env.subscribed(c, f) for c, f in wanted) or
                 any(p.poll() is not None for p in setup), 60, "every bridge's subscription")
        for p in setup:
            if procs.stop(p) != 0:
                raise BenchError(f"python_bridge.py exited {p.returncode} during set-up")
        result.update(env.publish(rows))
        sent = result["messages"]
        mosq_cpu0 = cpu_s(env.mosquitto.pid)
        kafka_cpu0 = cpu_s(env.kafka.pid)
        begin = time.monotonic()
        bridge = start("run")
        log_path = os.path.join(env.dir, f"{groups[0][0]}-run.log")
        measure_drain(env, bridge, log_path, reader, sent, begin, mosq_cpu0, kafka_cpu0, result)
        result["kafka_records"] = reader.total()
        counters = {"received": 0, "delivered": 0, "failed": 0}
        for p, (client_id, _) in zip(bridge, groups):
            procs.stop(p, timeout_s=30)
            lines = read_text(os.path.join(env.dir, f"{client_id}-run.log")).splitlines()
            last = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
            for key in counters:
                counters[key] += last.get(key, 0)
        result.update(bridge_counters=counters, received=result["kafka_records"])
        if result["kafka_records"] != sent or counters["failed"]:
            result["finding"] = (f"Kafka holds {result['kafka_records']} records for {sent} "
                                 f"published; bridge counters {counters}")
        return finish(result)
    finally:
        reader.close()


def finish(result):
    n = result["messages"]
    result["msgs_per_s"] = n / result["drain_s"]
    result["cpu_us_per_msg"] = result["cpu_s"] * 1e6 / n
    result["mosquitto_cpu_us_per_msg"] = result["mosquitto_cpu_s"] * 1e6 / n
    if "kafka_cpu_s" in result:
        result["kafka_cpu_us_per_msg"] = result["kafka_cpu_s"] * 1e6 / n
    if "publish_publisher_cpu_s" in result:
        result["publish_us_per_msg"] = ((result["publish_publisher_cpu_s"] +
                                         result["publish_mosquitto_cpu_s"]) * 1e6 / n)
        result["publish_msgs_per_s"] = n / result["publish_s"]
    if "publisher_cpu_s" in result:
        result["publisher_cpu_us_per_msg"] = result["publisher_cpu_s"] * 1e6 / n
    return result


def expected_messages(rows):
    if rows is not None:
        return rows * MSGS_PER_ROW
    return None


def live_publish(env, procs, rows):
    """Starts sluice-replay; returns (proc, start time, summary path, log path)."""
    summary = os.path.join(env.dir, "replay.json")
    argv = [os.path.join(env.args.build, "tools", "replay", "sluice-replay"),
            "--url", env.mqtt_url, "--pace", "max", "--qos", "1",
            "--file", os.path.relpath(DATA, REPO), "--summary-json", summary]
    if rows is not None:
        argv += ["--rows", str(rows)]
    replay_log = os.path.join(env.dir, "replay.log")
    start = time.monotonic()
    return procs.start("replay", argv, replay_log), start, summary, replay_log


def wait_child(proc, timeout_s):
    """Bounded wait that also returns the child's CPU time (os.wait4's rusage)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def replay_result(proc, summary, replay_log, timeout_s):
    """Waits for sluice-replay; returns (messages acknowledged, its CPU seconds)."""
    cpu = wait_child(proc, timeout_s)
    if cpu is None:
        raise BenchError(f"sluice-replay took over {timeout_s:g} s: {tail(replay_log)}")
    if proc.returncode != 0:
        raise BenchError(f"sluice-replay exited {proc.returncode}: {tail(replay_log)}")
    with open(summary, encoding="utf-8") as f:
        sent = find_count(json.load(f))
    return sent, cpu


def live_ceiling(env, procs, subscriber, rows, result):
    n = expected_messages(rows) or 162064
    proc = procs.start("subscriber", subscriber(n), os.path.join(env.dir, "subscriber.log"),
                       stdout=subprocess.PIPE)
    wait_for(lambda: env.connected("sluice-bench-ceiling"), 20, "the subscriber to connect")
    mosq_cpu0 = cpu_s(env.mosquitto.pid)
    pub, start, summary, replay_log = live_publish(env, procs, rows)
    try:
        line = proc.stdout.readline()
        done = time.monotonic()
        mosq_cpu = cpu_s(env.mosquitto.pid) - mosq_cpu0
        proc.wait(timeout=30)
    finally:
        proc.stdout.close()
    sent, pub_cpu = replay_result(pub, summary, replay_log, env.args.timeout)
    if proc.returncode != 0 or not line:
        raise BenchError(f"subscriber exited {proc.returncode}")
    own = json.loads(line)
    if sent != n:
        raise BenchError(f"published {sent}, expected {n}: pass --messages/--rows consistently")
    result.update(messages=sent, drain_s=done - start, cpu_s=own["cpu_s"],
                  mosquitto_cpu_s=mosq_cpu, publisher_cpu_s=pub_cpu, received=own["received"])
    return finish(result)


def live_sluice(env, procs, config, reader, subs, rows, result):
    proc, run_log = start_sluice(env, config, "sluice.log")
    wait_for(lambda: read_text(run_log).count("connected to ") >= len({c for c, _ in subs}) or
             proc.poll() is not None, 60, "every route to connect")
    time.sleep(1.0)  # metadata fetched, subscriptions resumed
    mosq_cpu0, kafka_cpu0, sluice_cpu0 = (cpu_s(env.mosquitto.pid), cpu_s(env.kafka.pid),
                                          cpu_s(proc.pid))
    pub, start, summary, replay_log = live_publish(env, procs, rows)
    n = expected_messages(rows) or 162064
    deadline = start + env.args.timeout
    while True:
        if proc.poll() is not None:
            raise BenchError(f"sluice exited {proc.returncode}:\n{tail(run_log)}")
        sluice_cpu = cpu_s(proc.pid)
        total = reader.total()
        if total >= n:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"only {total} of {n} records in Kafka after {env.args.timeout} s")
        time.sleep(POLL_S)
    done = time.monotonic()
    result.update(drain_s=done - start, cpu_s=sluice_cpu - sluice_cpu0,
                  mosquitto_cpu_s=cpu_s(env.mosquitto.pid) - mosq_cpu0,
                  kafka_cpu_s=cpu_s(env.kafka.pid) - kafka_cpu0)
    sent, pub_cpu = replay_result(pub, summary, replay_log, env.args.timeout)
    time.sleep(0.5)
    result.update(messages=sent, publisher_cpu_s=pub_cpu, kafka_records=reader.total())
    counters = route_counters(stop_sluice(env, proc, run_log))
    result.update(sluice_counters=counters, received=result["kafka_records"])
    if sent != n or result["kafka_records"] != sent or counters["errors"]:
        result["finding"] = (f"Kafka holds {result['kafka_records']} records for {sent} "
                             f"published; sluice counters {counters}; log {run_log}")
    return finish(result)


# ---------------------------------------------------------------------------------------------


def summarise(runs, scenarios):
    table = {}
    for sc in scenarios:
        rs = [r for r in runs if r["scenario"] == sc]
        if not rs:
            continue
        row = {"runs": len(rs)}
        for key in ("msgs_per_s", "cpu_us_per_msg", "mosquitto_cpu_us_per_msg",
                    "kafka_cpu_us_per_msg", "publisher_cpu_us_per_msg", "drain_s",
                    "first_record_s", "publish_us_per_msg", "publish_msgs_per_s", "rss_peak"):
            values = [r[key] for r in rs if r.get(key) is not None]
            if values:
                row[key] = statistics.median(values)
                row[key + "_all"] = values
        table[sc] = row
    if "ceiling" in table:
        ceiling = {r["run"]: r["msgs_per_s"] for r in runs if r["scenario"] == "ceiling"}
        for sc in [s for s in table if s != "ceiling"]:
            if sc in table:
                table[sc]["ratio_vs_ceiling"] = (table[sc]["msgs_per_s"] /
                                                 table["ceiling"]["msgs_per_s"])
                # Each repetition's own ratio: the runs of one repetition are back to back,
                # so they share the machine's load of the moment.
                paired = [r["msgs_per_s"] / ceiling[r["run"]] for r in runs
                          if r["scenario"] == sc and r["run"] in ceiling]
                if paired:
                    table[sc]["paired_ratio"] = statistics.median(paired)
                    table[sc]["paired_ratio_all"] = paired
    return table


def print_table(table, args, n):
    mode = "live, publishing at max pace" if args.live else "backlog drain"
    kafka = "mock Kafka as is (Nagle on)" if args.kafka_nagle else "mock Kafka with TCP_NODELAY"
    print(f"\nEnd-to-end, {mode}: {n} QoS 1 messages, MQTT {args.mqtt_version}, {kafka}, "
          f"median of {args.repeat} run(s)")
    header = (f"{'scenario':18} {'msg/s':>9} {'ratio':>6} {'paired':>6} {'us CPU/msg':>11} "
              f"{'mosq us/msg':>12} {'kafka us/msg':>13} {'time s':>7}  all msg/s")
    if args.live:
        header += "   publisher us/msg"
    print(header)
    for sc, row in table.items():
        ratio = f"{row['ratio_vs_ceiling']:.2f}" if "ratio_vs_ceiling" in row else "1.00" \
            if sc == "ceiling" else "-"
        kafka = f"{row['kafka_cpu_us_per_msg']:.1f}" if "kafka_cpu_us_per_msg" in row else "-"
        paired = f"{row['paired_ratio']:.2f}" if "paired_ratio" in row else "-"
        line = (f"{sc:18} {row['msgs_per_s']:9.0f} {ratio:>6} {paired:>6} "
                f"{row['cpu_us_per_msg']:11.1f} "
                f"{row['mosquitto_cpu_us_per_msg']:12.1f} {kafka:>13} {row['drain_s']:7.2f}  "
                + " ".join(f"{v:.0f}" for v in row["msgs_per_s_all"]))
        if args.live and "publisher_cpu_us_per_msg" in row:
            line += f"   {row['publisher_cpu_us_per_msg']:.1f}"
        print(line)
    print("ratio: median msg/s / median ceiling msg/s; paired: median of each "
          "repetition's own ratio to the ceiling")
    for sc, row in table.items():
        if "rss_peak" in row:
            print(f"{sc}: RSS peak {row['rss_peak'] / 2**20:.1f} MiB (summed over its processes)")
    peer = table.get("python-1")
    if peer:
        for sc, row in table.items():
            if sc.startswith("sluice-"):
                print(f"{sc}: {row['msgs_per_s'] / peer['msgs_per_s']:.2f}x the drain rate of "
                      f"python-1 (the single-process Python bridge), "
                      f"{peer['cpu_us_per_msg'] / row['cpu_us_per_msg']:.2f}x less CPU per "
                      "message")
    for sc, row in table.items():
        base = table.get(f"{sc}@base")
        if base:
            paired = [r for r in zip(row["msgs_per_s_all"], base["msgs_per_s_all"])]
            cpu = base["cpu_us_per_msg"] / row["cpu_us_per_msg"]
            print(f"{sc}: {row['msgs_per_s'] / base['msgs_per_s']:.2f}x the msg/s of "
                  f"{sc}@base (--baseline-build), {cpu:.2f}x less CPU per message; "
                  "per repetition: " + " ".join(f"{a / b:.2f}" for a, b in paired))
    pub = [row for row in table.values() if "publish_us_per_msg" in row]
    if pub:
        print(f"publishing the backlog (sluice-replay --pace max --qos 1, nobody subscribed): "
              f"{statistics.median(r['publish_msgs_per_s'] for r in pub):.0f} msg/s, "
              f"publisher + mosquitto "
              f"{statistics.median(r['publish_us_per_msg'] for r in pub):.1f} us CPU/msg")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(REPO, "build", "release"),
                        help="build directory (default: build/release)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--messages", type=int,
                      help="about N messages: the first ceil(N/16) rows (default: all 162,064)")
    size.add_argument("--rows", type=int, help="the first N rows of the data set (16 msgs each)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (median)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--mqtt-version", default="5", choices=("3.1.1", "5"),
                        help="protocol of both subscribers (default 5, mqtt-source's default)")
    parser.add_argument("--broker-inflight", type=int, default=0,
                        help="mosquitto max_inflight_messages (default 0: no limit)")
    parser.add_argument("--route-option", action="append", default=[], metavar="KEY=VALUE",
                        help="route option added to every Sluice manifest (experiments, e.g. "
                             "batch_size=2000); repeatable")
    parser.add_argument("--sink-option", action="append", default=[], metavar="KEY=VALUE",
                        help="kafka-sink option added to every manifest (e.g. linger_ms=1)")
    parser.add_argument("--kafka-nagle", action="store_true",
                        help="run sluice-devkafka with --nagle: without TCP_NODELAY on its sockets, "
                             "as librdkafka's mock cluster behaves by itself (real brokers, and "
                             "sluice-devkafka by default, set it)")
    parser.add_argument("--live", action="store_true",
                        help="subscriber connected while publishing at max pace, instead of "
                             "draining a backlog")
    parser.add_argument("--timeout", type=float, default=300,
                        help="bound on each publish and each drain, seconds (default 300)")
    parser.add_argument("--settle-s", type=float, default=2.0,
                        help="seconds the drained process stays up before it is stopped; its "
                             "RSS at the end of them is reported beside the peak (default 2)")
    parser.add_argument("--baseline-build", metavar="DIR",
                        help="another build (e.g. of an earlier commit): each Sluice scenario "
                             "also runs with its binaries as <scenario>@base, interleaved in "
                             "the same run, so that a change is measured as a ratio")
    parser.add_argument("--json", help="write every run and the summary to this file")
    parser.add_argument("--keep", action="store_true", help="keep the logs' temp directory")
    args = parser.parse_args()
    args.build = os.path.abspath(args.build)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for s in scenarios:
        if s not in SCENARIOS:
            parser.error(f"unknown scenario {s!r} (known: {', '.join(SCENARIOS)})")
    if args.baseline_build:
        args.baseline_build = os.path.abspath(args.baseline_build)
        scenarios = [x for s in scenarios for x in ([s] if s == "ceiling" else [s, f"{s}@base"])]
    rows = args.rows if args.rows else (-(-args.messages // MSGS_PER_ROW) if args.messages
                                        else None)
    needed = [os.path.join(args.build, p) for p in
              ("sluice", "tools/replay/sluice-replay", "tools/devkafka/sluice-devkafka",
               "tools/bench/sluice-bench-subscriber")]
    if args.baseline_build:
        needed += [os.path.join(args.baseline_build, p) for p in
                   ("sluice", "tools/replay/sluice-replay", "tools/devkafka/sluice-devkafka")]
    missing = [p for p in needed if not os.access(p, os.R_OK)]
    if missing or not shutil.which("mosquitto") or not os.path.exists(DATA):
        parser.error("missing: " + ", ".join(missing + ([] if shutil.which("mosquitto") else
                                                        ["mosquitto (apt install mosquitto)"]) +
                                             ([] if os.path.exists(DATA) else [DATA])))
    try:
        import kafka  # noqa: F401
    except ImportError:
        parser.error("kafka-python missing (apt install python3-kafka)")

    top = tempfile.mkdtemp(prefix="sluice-e2e-bench-")
    runs, failures = [], []
    ok = False
    try:
        for k in range(args.repeat):
            for sc in scenarios:  # interleaved, so drift on a shared machine hits all alike
                workdir = os.path.join(top, f"{sc}-{k + 1}")
                os.makedirs(workdir)
                log(f"run {k + 1}/{args.repeat} {sc} ...")
                try:
                    if sc.endswith("@base"):
                        r = run_once(argparse.Namespace(**dict(vars(args),
                                                               build=args.baseline_build)),
                                     sc[:-len("@base")], rows, workdir)
                        r["scenario"] = sc
                    else:
                        r = run_once(args, sc, rows, workdir)
                except BenchError as e:
                    failures.append({"scenario": sc, "run": k + 1, "error": str(e),
                                     "logs": workdir})
                    log(f"run {k + 1} {sc} FAILED (logs kept in {workdir}): {e}")
                    continue
                r["run"] = k + 1
                runs.append(r)
                extra = f"; FINDING: {r['finding']}" if "finding" in r else ""
                rss = (f", RSS peak {r['rss_peak'] / 2**20:.1f} MiB, "
                       f"{r['rss_after'] / 2**20:.1f} MiB {args.settle_s:g} s after"
                       if "rss_after" in r else "")
                log(f"  {r['messages']} msgs in {r['drain_s']:.2f} s = "
                    f"{r['msgs_per_s']:.0f} msg/s, {r['cpu_us_per_msg']:.1f} us CPU/msg{rss}{extra}")
        table = summarise(runs, scenarios)
        n = runs[0]["messages"] if runs else 0
        if table:
            print_table(table, args, n)
        for f in failures:
            print(f"FAILED: {f['scenario']} run {f['run']}: {f['error']} (logs: {f['logs']})")
        for r in runs:
            if "finding" in r:
                print(f"FINDING: {r['scenario']} run {r['run']}: {r['finding']}")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump({"messages": n, "mqtt_version": args.mqtt_version,
                           "mode": "live" if args.live else "drain",
                           "kafka_nodelay": not args.kafka_nagle,
                           "route_options": args.route_option, "sink_options": args.sink_option,
                           "runs": runs,
                           "failures": failures, "summary": table}, f, indent=2)
        ok = not failures and not any("finding" in r for r in runs)
        return 0 if ok else 1
    finally:
        if ok and not args.keep:
            shutil.rmtree(top, ignore_errors=True)
        else:
            log(f"logs in {top}")


if __name__ == "__main__":
    sys.exit(main())

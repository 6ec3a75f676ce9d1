#!/usr/bin/python3
"""Scale benchmark: thousands of routes in one `sluice` process, one manifest file each.

For each scenario (a number of routes, idle or with traffic on every route) this script:

  1. starts mosquitto on a free loopback port (`max_connections -1`, a high open-file limit,
     `log_type subscribe`, no persistence) and sluice-devkafka (librdkafka mock cluster) with
     ten topics pre-created;
  2. writes N route manifests, one file each: `scale/r<i>/+` -> json-transform (adds the route
     name) -> kafka-sink into topic `scale.t<i mod 10>` (all routes share one producer);
  3. starts `sluice run` (release build) with a high open-file limit and measures the time from
     its spawn until every route is subscribed: sluice's own "subscribed to ... topic filter(s);
     receiving" line (logged on the broker's SUBACK) counted N times, and, independently, the
     broker's log of N SUBSCRIBE packets (`log_type subscribe`);
  4. once idle (2 s after the last subscription): RSS and threads (/proc/<pid>/status), then
     the CPU the process spends over --idle-window seconds (/proc/<pid>/stat utime+stime, all
     threads), as % of one core; mosquitto's over the same window is reported too;
  5. with traffic: publishes --messages QoS 1 messages on every route (one paho-mqtt client,
     each payload naming its route and sequence number), waits until the Kafka end offsets sum
     to N x messages, then reads every topic back with kcat and checks each message arrived
     exactly once (records are ~0.3 KB: 10 topics x 8 partitions stay far below the mock
     cluster's ~5 MiB per partition);
  6. SIGTERM: exit code and seconds until the process is gone; each route's stop line
     (received / delivered / errors) is summed.

Bytes per idle route = (RSS_N - RSS_baseline) / (N - N_baseline), against the baseline scenario
(a few routes) of the same invocation.

A guard protects shared machines: a runtime with a thread per route would start 2 x N threads
(20,000 for 10,000 routes, against kernel.pid_max 32768 here); when the process passes
--max-threads (default 4096) the scenario is stopped and reported as such.

Standard library + Debian's python3-kafka (end offsets), python3-paho-mqtt (publisher, traffic
scenarios only) and kcat. Every process it starts is stopped by its pid, also on failure or
Ctrl-C. Nothing here is a test: it reports figures.
"""

import argparse
import collections
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_bench as e2e  # noqa: E402  (Processes, OffsetReader, cpu_s, wait_for, ...)

REPO = e2e.REPO
TOPICS = 10
PARTITIONS = 8
BUFFER_BYTES = 65536   # 10,000 routes x 64 KiB x 1.5 (headroom) fit the default memory_limit
MAX_PAYLOAD = 16384    # a buffer must hold one message of max_payload_bytes
SETTLE_S = 2.0
TARGETS = {"subscribed_s": 10.0, "rss_mib": 500.0, "threads": 64, "idle_cpu_pct_1000": 1.0}

BenchError = e2e.BenchError


def log(msg):
    print(f"[scale-bench] {msg}", file=sys.stderr, flush=True)


def name_of(i):
    return f"r{i:05d}"


def topic_of(i):
    return f"scale.t{i % TOPICS}"


def raise_nofile(limit):
    def apply():
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft >= limit:
            return
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, max(limit, hard)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
    return apply


def status(pid):
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def threads_of(pid):
    return int(status(pid)["Threads"])


def rss_of(pid):
    return int(status(pid)["VmRSS"].split()[0]) * 1024


class Counter:
    """Counts lines matching a pattern in a growing log file, reading only what is new."""

    def __init__(self, path, pattern):
        self.path = path
        self.pattern = re.compile(pattern)
        self.offset = 0
        self.count = 0
        self.partial = b""

    def update(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return self.count
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        self.count += sum(1 for line in lines
                          if self.pattern.search(line.decode("utf-8", "replace")))
        return self.count


class Sampler(threading.Thread):
    """Peak thread count of a process, every 20 ms, and the guard against a runaway count."""

    def __init__(self, pid, guard):
        super().__init__(daemon=True)
        self.pid, self.guard = pid, guard
        self.peak = 0
        self.tripped = False
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                n = threads_of(self.pid)
            except (OSError, KeyError, ValueError):
                return
            self.peak = max(self.peak, n)
            if n > self.guard and not self.tripped:
                self.tripped = True
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except OSError:
                    pass
                return
            self.stopping.wait(0.02)


def manifest_text(i, drain_ms, connection):
    name = name_of(i)
    # A shared connection matches messages to routes by MQTT 5 subscription identifier.
    version = "5" if connection == "shared" else "3.1.1"
    return (f"route: {name}\n"
            "source:\n  mqtt-source:\n    url: ${MQTT_URL}\n"
            f"    topics: [scale/{name}/+]\n    qos: 1\n    mqtt_version: \"{version}\"\n"
            f"    connection: {connection}\n"
            "transforms:\n  - json-transform:\n"
            "      set: { via: \"{{route}}\" }\n      key: \"{{route}}\"\n"
            "sink:\n  kafka-sink:\n    brokers: ${KAFKA_BROKERS}\n"
            f"    topic: {topic_of(i)}\n"
            f"buffer: {{ max_bytes: {BUFFER_BYTES} }}\n"
            f"max_payload_bytes: {MAX_PAYLOAD}\n"
            f"drain_timeout_ms: {drain_ms}\n")


def start_mosquitto(procs, workdir, nofile):
    port = e2e.free_port()
    conf = os.path.join(workdir, "mosquitto.conf")
    mlog = os.path.join(workdir, "mosquitto.log")
    with open(conf, "w", encoding="utf-8") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                "max_connections -1\nmax_queued_messages 1000000\nmax_inflight_messages 0\n"
                "log_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\n"
                "log_type subscribe\n")
    proc = procs.start("mosquitto", ["stdbuf", "-oL", "mosquitto", "-c", conf], mlog,
                       preexec_fn=raise_nofile(nofile))
    e2e.wait_for(lambda: proc.poll() is not None or e2e.Env._accepts(port), 10,
                 "mosquitto to listen")
    if proc.poll() is not None:
        raise BenchError(f"mosquitto exited: {e2e.tail(mlog)}")
    return proc, port, mlog


def start_kafka(procs, workdir, build):
    bootstrap_file = os.path.join(workdir, "kafka.bootstrap")
    argv = [os.path.join(build, "tools", "devkafka", "sluice-devkafka"),
            "--bootstrap-file", bootstrap_file]
    for k in range(TOPICS):
        argv += ["--topic", f"scale.t{k}:{PARTITIONS}"]
    klog = os.path.join(workdir, "devkafka.log")
    proc = procs.start("devkafka", argv, klog)
    e2e.wait_for(lambda: e2e.read_text(bootstrap_file).strip() or proc.poll() is not None, 20,
                 "sluice-devkafka's bootstrap address")
    if proc.poll() is not None:
        raise BenchError(f"sluice-devkafka exited: {e2e.tail(klog)}")
    return proc, e2e.read_text(bootstrap_file).strip()


def publish(port, routes, messages, timeout_s):
    """messages QoS 1 messages on every route's topic from one paho-mqtt client; returns the
    seconds until the broker acknowledged the last one."""
    import paho.mqtt.client as mqtt
    client = mqtt.Client(client_id=f"scale-bench-pub-{os.getpid()}", clean_session=True,
                         protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    try:
        t0 = time.monotonic()
        infos = []
        for s in range(messages):
            for i in range(routes):
                payload = json.dumps({"route": name_of(i), "seq": s})
                infos.append(client.publish(f"scale/{name_of(i)}/dev", payload, qos=1))
        for info in infos:
            left = timeout_s - (time.monotonic() - t0)
            if left <= 0:
                raise BenchError("the broker did not acknowledge every publish in time")
            info.wait_for_publish(timeout=left)
            if not info.is_published():
                raise BenchError(f"publish not acknowledged (rc {info.rc})")
        return time.monotonic() - t0
    finally:
        client.disconnect()
        client.loop_stop()


def read_back(brokers, routes, messages):
    """Every record of every topic with kcat; returns (missing, duplicates, wrong route)."""
    def one(topic):
        out = subprocess.run(["kcat", "-b", brokers, "-C", "-t", topic, "-o", "beginning", "-e",
                              "-q", "-f", "%s\\n"], capture_output=True, text=True, timeout=120)
        return out.stdout.splitlines()

    seen = collections.Counter()
    wrong = 0
    with ThreadPoolExecutor(max_workers=TOPICS) as pool:
        for lines in pool.map(one, [f"scale.t{k}" for k in range(TOPICS)]):
            for line in lines:
                if not line.strip():
                    continue
                v = json.loads(line)
                seen[(v["route"], v["seq"])] += 1
                wrong += v.get("via") != v["route"]
    expected = {(name_of(i), s) for i in range(routes) for s in range(messages)}
    missing = len(expected - set(seen))
    dups = sum(n - 1 for n in seen.values() if n > 1) + len(set(seen) - expected)
    return missing, dups, wrong


STOP_LINE = re.compile(r"\] stopped: received (\d+), delivered (\d+), errors (\d+), "
                       r"dropped (\d+)")


def run_scenario(args, name, routes, traffic, workdir):
    procs = e2e.Processes()
    result = {"scenario": name, "routes": routes, "traffic": traffic}
    nofile = max(65536, 4 * routes + 1024)
    reader = sampler = None
    try:
        mosq, port, mlog = start_mosquitto(procs, workdir, nofile)
        kafka, brokers = start_kafka(procs, workdir, args.build)
        routes_dir = os.path.join(workdir, "routes")
        os.makedirs(routes_dir)
        for i in range(routes):
            with open(os.path.join(routes_dir, f"{name_of(i)}.yaml"), "w",
                      encoding="utf-8") as f:
                f.write(manifest_text(i, args.drain_ms, args.connection))
        config = os.path.join(workdir, "sluice.yaml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(f"plugins: [{os.path.join(args.build, 'plugins')}]\nroutes: [{routes_dir}]\n"
                    f"state_dir: {os.path.join(workdir, 'state')}\n"
                    "log: { level: info, format: text }\n")
        slog = os.path.join(workdir, "sluice.log")
        env = dict(os.environ, MQTT_URL=f"tcp://127.0.0.1:{port}", KAFKA_BROKERS=brokers)
        sluice_subs = Counter(slog, r"subscribed to \d+ topic filter\(s\)"
                                    r"( on the shared connection)?; receiving")
        broker_subs = Counter(mlog, r"^\d+: \S+ \d scale/r\d+/\+$")

        t0 = time.monotonic()
        proc = procs.start("sluice", [os.path.join(args.build, "sluice"), "run", "-c", config],
                           slog, env=env, preexec_fn=raise_nofile(nofile))
        sampler = Sampler(proc.pid, args.max_threads)
        sampler.start()
        t_sluice = t_broker = None
        deadline = t0 + args.subscribe_timeout
        while t_sluice is None or t_broker is None:
            now = time.monotonic()
            if sampler.tripped:
                result["aborted"] = (f"more than {args.max_threads} threads after "
                                     f"{now - t0:.1f} s ({sluice_subs.update()} of {routes} "
                                     f"routes subscribed): stopped (--max-threads)")
                return result
            if proc.poll() is not None:
                raise BenchError(f"sluice exited {proc.returncode}: {e2e.tail(slog)}")
            if t_sluice is None and sluice_subs.update() >= routes:
                t_sluice = now - t0
            if t_broker is None and broker_subs.update() >= routes:
                t_broker = now - t0
            if now > deadline:
                result["aborted"] = (f"{sluice_subs.count} of {routes} routes subscribed "
                                     f"after {args.subscribe_timeout:g} s")
                return result
            time.sleep(0.05)
        result.update(subscribed_s=t_sluice, broker_subscribes_s=t_broker)
        log(f"  {name}: all {routes} subscribed after {t_sluice:.2f} s (broker saw every "
            f"SUBSCRIBE after {t_broker:.2f} s)")

        time.sleep(SETTLE_S)
        result.update(rss_idle=rss_of(proc.pid), threads_idle=threads_of(proc.pid))
        c0, m0, w0 = e2e.cpu_s(proc.pid), e2e.cpu_s(mosq.pid), time.monotonic()
        time.sleep(args.idle_window)
        wall = time.monotonic() - w0
        result.update(idle_cpu_pct=100 * (e2e.cpu_s(proc.pid) - c0) / wall,
                      mosquitto_idle_cpu_pct=100 * (e2e.cpu_s(mosq.pid) - m0) / wall,
                      idle_window_s=wall)
        log(f"  {name}: idle RSS {result['rss_idle'] / 2**20:.1f} MiB, "
            f"{result['threads_idle']} threads, {result['idle_cpu_pct']:.2f} % of one core")

        if traffic:
            n = routes * args.messages
            reader = e2e.OffsetReader(brokers, [(f"scale.t{k}", PARTITIONS)
                                                for k in range(TOPICS)])
            if reader.total() != 0:  # also connects the reader before the clock starts
                raise BenchError("records in Kafka before any was published")
            c0, t1 = e2e.cpu_s(proc.pid), time.monotonic()
            result["publish_s"] = publish(port, routes, args.messages, args.traffic_timeout)
            total = 0
            while total < n:
                if proc.poll() is not None:
                    raise BenchError(f"sluice exited {proc.returncode}: {e2e.tail(slog)}")
                if time.monotonic() - t1 > args.traffic_timeout:
                    break
                total = reader.total()
                time.sleep(0.1)
            result.update(messages=n, delivered_s=time.monotonic() - t1,
                          traffic_cpu_s=e2e.cpu_s(proc.pid) - c0)
            time.sleep(0.5)
            result["kafka_records"] = reader.total()
            missing, dups, wrong = read_back(brokers, routes, args.messages)
            result.update(missing=missing, duplicates=dups, wrong_route=wrong,
                          rss_after_traffic=rss_of(proc.pid),
                          threads_after_traffic=threads_of(proc.pid))
            log(f"  {name}: {result['kafka_records']} of {n} records in Kafka "
                f"{result['delivered_s']:.2f} s after the first publish; missing {missing}, "
                f"duplicates {dups}")

        t2 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=args.drain_ms / 1000 + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None
        result.update(exit_code=rc, exit_s=time.monotonic() - t2)
        sampler.stopping.set()
        sampler.join()
        result["peak_threads"] = sampler.peak
        totals = [0, 0, 0, 0]
        stops = 0
        for m in STOP_LINE.findall(e2e.read_text(slog)):
            stops += 1
            totals = [a + int(b) for a, b in zip(totals, m)]
        result.update(routes_stopped=stops, received=totals[0], delivered=totals[1],
                      errors=totals[2], dropped=totals[3])
        return result
    finally:
        if sampler is not None:
            sampler.stopping.set()
            result.setdefault("peak_threads", sampler.peak)
        if reader is not None:
            reader.close()
        procs.stop_all()


def mib(b):
    return f"{b / 2**20:.1f}" if b is not None else "-"


def fmt(v, spec):
    return format("-", ">" + re.match(r"\d*", spec).group()) if v is None else format(v, spec)


def print_table(results, baseline):
    print("\nScale: one sluice process, one manifest per route "
          "(mqtt-source -> json-transform -> kafka-sink)")
    print(f"{'scenario':15} {'routes':>6} {'subscr. s':>9} {'RSS MiB':>8} {'threads':>7} "
          f"{'peak':>5} {'idle CPU%':>9} {'B/route':>8} {'msgs':>6} {'in Kafka':>8} "
          f"{'deliv. s':>8} {'miss/dup':>8} {'exit':>4} {'exit s':>6}")
    for r in results:
        per_route = None
        if baseline and r is not baseline and r.get("rss_idle") and baseline.get("rss_idle"):
            per_route = (r["rss_idle"] - baseline["rss_idle"]) / (r["routes"] -
                                                                 baseline["routes"])
            r["bytes_per_idle_route"] = per_route
        line = (f"{r['scenario']:15} {r['routes']:6d} {fmt(r.get('subscribed_s'), '9.2f')} "
                f"{mib(r.get('rss_idle')):>8} {fmt(r.get('threads_idle'), '7d')} "
                f"{fmt(r.get('peak_threads'), '5d')} {fmt(r.get('idle_cpu_pct'), '9.2f')} "
                f"{fmt(per_route, '8.0f')} {fmt(r.get('messages'), '6d')} "
                f"{fmt(r.get('kafka_records'), '8d')} {fmt(r.get('delivered_s'), '8.2f')} "
                f"{(str(r['missing']) + '/' + str(r['duplicates'])) if 'missing' in r else '-':>8} "
                f"{fmt(r.get('exit_code'), '4d')} {fmt(r.get('exit_s'), '6.2f')}")
        print(line)
        if "aborted" in r:
            print(f"{'':15} ABORTED: {r['aborted']}")
    print(f"targets (10,000 routes with traffic): subscribed <= {TARGETS['subscribed_s']:g} s, "
          f"RSS <= {TARGETS['rss_mib']:g} MB, threads <= {TARGETS['threads']}, every message "
          "once, exit 0 within the drain deadline; 1,000 idle routes < 1 % of one core")
    print("RSS/threads: idle, 2 s after the last subscription; peak: highest thread count from "
          "spawn to exit; B/route: (RSS - baseline RSS) / (routes - baseline routes); "
          "deliv. s: first publish to the last record in Kafka")
    sys.stdout.flush()


def parse_counts(text):
    return [int(x) for x in text.split(",") if x.strip()] if text else []


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=os.path.join(REPO, "build", "release"),
                        help="build directory (default: build/release)")
    parser.add_argument("--baseline", type=int, default=10,
                        help="routes of the baseline scenario (idle) for bytes per route; "
                             "0 leaves it out (default 10)")
    parser.add_argument("--idle", default="1000",
                        help="comma-separated route counts run idle (default 1000)")
    parser.add_argument("--traffic", default="10000",
                        help="comma-separated route counts run with traffic (default 10000)")
    parser.add_argument("--messages", type=int, default=3,
                        help="QoS 1 messages per route in traffic scenarios (default 3)")
    parser.add_argument("--idle-window", type=float, default=10.0,
                        help="seconds over which idle CPU is measured (default 10)")
    parser.add_argument("--drain-ms", type=int, default=10000,
                        help="drain_timeout_ms of every route (default 10000, the default)")
    parser.add_argument("--subscribe-timeout", type=float, default=120.0,
                        help="give up on a scenario when not every route subscribed by then")
    parser.add_argument("--traffic-timeout", type=float, default=180.0,
                        help="bound on publishing and on delivery to Kafka, seconds")
    parser.add_argument("--max-threads", type=int, default=4096,
                        help="stop a scenario whose process passes this many threads (default "
                             "4096: a thread-per-route runtime would exhaust kernel.pid_max)")
    parser.add_argument("--connection", choices=("dedicated", "shared"), default="dedicated",
                        help="mqtt-source's connection option for every route: one MQTT "
                             "connection per route (MQTT 3.1.1, the default) or one shared by "
                             "all (MQTT 5)")
    parser.add_argument("--json", help="write every scenario's figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the logs' temp directory")
    args = parser.parse_args()
    args.build = os.path.abspath(args.build)

    needed = [os.path.join(args.build, p) for p in ("sluice", "tools/devkafka/sluice-devkafka")]
    missing = [p for p in needed if not os.access(p, os.X_OK)]
    for prog, pkg in (("mosquitto", "mosquitto"), ("kcat", "kcat"), ("stdbuf", "coreutils")):
        if not shutil.which(prog):
            missing.append(f"{prog} (apt-get install {pkg})")
    try:
        import kafka  # noqa: F401
    except ImportError:
        missing.append("kafka-python (apt-get install python3-kafka)")
    scenarios = []
    if args.baseline:
        scenarios.append((f"baseline-{args.baseline}", args.baseline, False))
    scenarios += [(f"idle-{n}", n, False) for n in parse_counts(args.idle)]
    scenarios += [(f"traffic-{n}", n, True) for n in parse_counts(args.traffic)]
    if any(t for _, _, t in scenarios):
        try:
            import paho.mqtt.client  # noqa: F401
        except ImportError:
            missing.append("paho-mqtt (apt-get install python3-paho-mqtt)")
    if missing:
        parser.error("missing: " + ", ".join(missing))
    pid_max = int(e2e.read_text("/proc/sys/kernel/pid_max").strip() or 0)
    if pid_max and args.max_threads > pid_max // 2:
        log(f"warning: --max-threads {args.max_threads} is over half of kernel.pid_max "
            f"({pid_max})")

    top = tempfile.mkdtemp(prefix="sluice-scale-bench-")
    results, ok = [], False
    try:
        for name, routes, traffic in scenarios:
            workdir = os.path.join(top, name)
            os.makedirs(workdir)
            log(f"{name}: {routes} routes{' with traffic' if traffic else ', idle'} ...")
            try:
                results.append(run_scenario(args, name, routes, traffic, workdir))
            except BenchError as e:
                log(f"{name} FAILED (logs in {workdir}): {e}")
                results.append({"scenario": name, "routes": routes, "traffic": traffic,
                                "aborted": f"failed: {e}"})
        baseline = results[0] if args.baseline and results else None
        print_table(results, baseline)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump({"build": args.build, "messages_per_route": args.messages,
                           "idle_window_s": args.idle_window, "results": results}, f, indent=2)
        ok = all("aborted" not in r and r.get("exit_code") == 0 and
                 not r.get("missing") and not r.get("duplicates") and not r.get("wrong_route")
                 for r in results)
        return 0 if ok else 1
    finally:
        if ok and not args.keep:
            shutil.rmtree(top, ignore_errors=True)
        else:
            log(f"logs in {top}")


if __name__ == "__main__":
    sys.exit(main())

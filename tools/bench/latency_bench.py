#!/usr/bin/python3
"""Publish-to-Kafka latency at a paced rate: Sluice (the six occupancy routes) against a
single-process Python bridge (tools/bench/python_bridge.py: paho-mqtt + confluent-kafka), with
the same linger, in the same run.

For each scenario and repetition (interleaved, each with a fresh broker and mock cluster):

  1. starts mosquitto and sluice-devkafka (the six occupancy topics, 4 partitions each) on free
     loopback ports, and a Kafka reader process (confluent-kafka consumer assigned to every
     partition from the beginning, fetch.wait.max.ms 5);
  2. starts the bridge: `sluice run` with the six manifests/occupancy routes (fixed client ids,
     MQTT 3.1.1, `linger_ms` as given), or python_bridge.py with the same six filter -> topic
     pairs on one connection; waits until mosquitto logged every subscription;
  3. a publisher process (paho-mqtt, QoS 1, one connection) sends --rate msg/s, round-robin over
     the six kinds and four nodes, for --duration s; each JSON payload carries its sequence
     number and `sent_ns`, the publisher's CLOCK_REALTIME (time.time_ns()) just before
     publish();
  4. the reader records, for every record, the CLOCK_REALTIME at which consume() returned the
     batch holding it, and the record's Kafka timestamp (CreateTime, ms). All processes are on
     one host, so one clock serves them all.

Reported, for the messages after the first --warmup s (connections and metadata settle):

  * publish -> read back: reader receipt time - sent_ns. An upper bound of publish-to-Kafka: it
    includes the reader's own fetch (up to fetch.wait.max.ms) and its scheduling; the same
    reader serves both bridges, so their difference is the bridges'.
  * publish -> bridge: Kafka CreateTime - sent_ns, 1 ms resolution. Sluice's kafka-sink stamps
    a record with the time mqtt-source received the message; confluent-kafka stamps it at
    produce(), right after on_message: both say when the bridge took the message from MQTT.
  * each bridge's CPU per message over the run (/proc/<pid>/stat).

Debian 12 packages: mosquitto, python3-paho-mqtt, python3-confluent-kafka. Every process it
starts is stopped by pid, also on failure. Nothing here is a test.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_bench as e2e  # noqa: E402

REPO = e2e.REPO
HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
SCENARIOS = ("sluice-6", "python-6")
NODES = ("s1", "s2", "s3", "s4")
BenchError = e2e.BenchError


def log(msg):
    print(f"[latency-bench] {msg}", file=sys.stderr, flush=True)


def occupancy_routes():
    """[(kind, MQTT filter, Kafka topic)] of manifests/occupancy."""
    out = []
    for name in sorted(os.listdir(e2e.MANIFESTS)):
        if not name.endswith(".yaml"):
            continue
        text = e2e.read_text(os.path.join(e2e.MANIFESTS, name))
        flt = re.search(r"^\s+topics:\s*\[([^\]]*)\]", text, re.M).group(1).strip().strip("'\"")
        topic = re.search(r"^\s+topic:\s*(\S+)", text, re.M).group(1)
        out.append((flt.split("/")[1], flt, topic))
    return out


# --- the publisher and the reader, each run as a process of its own ---------------------------


def publisher_main(a):
    import paho.mqtt.client as mqtt
    kinds = a.kinds.split(",")
    client = mqtt.Client(client_id=f"latency-pub-{os.getpid()}", clean_session=True)
    client.max_inflight_messages_set(10000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", a.port, keepalive=60)
    client.loop_start()
    n = int(a.rate * a.duration)
    infos, late = [], 0
    t0 = time.monotonic()
    for i in range(n):
        due = t0 + i / a.rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        elif now - due > 0.005:
            late += 1
        kind = kinds[i % len(kinds)]
        node = NODES[(i // len(kinds)) % len(NODES)]
        payload = json.dumps({"seq": i, "value": 21.5, "sent_ns": time.time_ns()})
        infos.append(client.publish(f"sensors/{kind}/{node}", payload, qos=1))
    sent_s = time.monotonic() - t0
    for info in infos:
        info.wait_for_publish(timeout=30)
    acked = sum(1 for info in infos if info.is_published())
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"sent": n, "acked": acked, "send_s": sent_s, "rate": n / sent_s,
                      "late_over_5ms": late}), flush=True)


def reader_main(a):
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    c = Consumer({"bootstrap.servers": a.brokers, "group.id": f"latency-reader-{os.getpid()}",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 5, "fetch.min.bytes": 1,
                  "enable.partition.eof": False})
    c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in a.topics.split(",")
              for p in range(a.partitions)])
    print("ready", flush=True)
    seq, e2e_us, create_us = [], [], []
    deadline = time.monotonic() + a.timeout
    while len(seq) < a.expect and time.monotonic() < deadline:
        m = c.poll(0.05)  # returns as soon as a record is there (consume() would wait to fill)
        if m is None or m.error():
            continue
        now_ns = time.time_ns()
        v = json.loads(m.value())
        seq.append(v["seq"])
        e2e_us.append((now_ns - v["sent_ns"]) // 1000)
        # Both in whole milliseconds, as Kafka keeps timestamps: +-1 ms.
        create_us.append((m.timestamp()[1] - v["sent_ns"] // 1_000_000) * 1000)
    c.close()
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump({"seq": seq, "e2e_us": e2e_us, "create_us": create_us}, f)
    print("done", flush=True)


# --- one measured run ----------------------------------------------------------------------


def percentiles(values):
    if not values:
        return {}
    v = sorted(values)

    def q(p):
        return v[min(len(v) - 1, int(round(p * (len(v) - 1))))] / 1000.0
    return {"p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99), "p999_ms": q(0.999),
            "max_ms": v[-1] / 1000.0, "mean_ms": statistics.fmean(v) / 1000.0}


def run_once(args, scenario, workdir):
    procs = e2e.Processes()
    env_args = types.SimpleNamespace(build=args.build, broker_inflight=0, kafka_nagle=False,
                                     mqtt_version="3.1.1",
                                     sink_option=[f"linger_ms={args.linger_ms}"],
                                     route_option=list(args.route_option))
    env = e2e.Env(env_args, workdir, procs)
    routes = occupancy_routes()
    n = int(args.rate * args.duration)
    result = {"scenario": scenario, "rate": args.rate, "linger_ms": args.linger_ms}
    try:
        env.start_mosquitto()
        port = int(env.mqtt_url.rsplit(":", 1)[1])
        env.start_kafka([(t, 4) for _, _, t in routes])
        out = os.path.join(workdir, "reader.json")
        reader = procs.start("reader", [PY, os.path.abspath(__file__), "--role", "reader",
                                        "--brokers", env.brokers, "--topics",
                                        ",".join(t for _, _, t in routes), "--partitions", "4",
                                        "--expect", str(n), "--out", out,
                                        "--timeout", str(args.duration + 120)],
                             os.path.join(workdir, "reader.log"), stdout=subprocess.PIPE)
        if reader.stdout.readline().strip() != b"ready":
            raise BenchError(f"reader failed: {e2e.tail(os.path.join(workdir, 'reader.log'))}")

        if scenario == "sluice-6":
            routes_dir = os.path.join(workdir, "routes")
            subs, _ = e2e.sluice_routes("sluice-6", env, routes_dir, env_args)
            config = e2e.write_sluice_config(env, routes_dir)
            bridge, blog = e2e.start_sluice(env, config, "sluice.log")
        else:
            subs = [("python-bridge", flt) for _, flt, _ in routes]
            blog = os.path.join(workdir, "python-bridge.log")
            argv = [PY, os.path.join(HERE, "python_bridge.py"), "--mqtt-port", str(port),
                    "--brokers", env.brokers, "--linger-ms", str(args.linger_ms)]
            for _, flt, topic in routes:
                argv += ["--route", f"{flt}={topic}"]
            bridge = procs.start("python-bridge", argv, blog)
        e2e.wait_for(lambda: all(env.subscribed(c, f) for c, f in subs) or
                     bridge.poll() is not None, 60, "every subscription")
        if bridge.poll() is not None:
            raise BenchError(f"{scenario} exited {bridge.returncode}: {e2e.tail(blog)}")
        time.sleep(1.0)  # producers' metadata and connections, as a running bridge has them

        cpu0 = e2e.cpu_s(bridge.pid)
        pub_log = os.path.join(workdir, "publisher.log")
        pub = procs.start("publisher", [PY, os.path.abspath(__file__), "--role", "publisher",
                                        "--port", str(port), "--rate", str(args.rate),
                                        "--duration", str(args.duration),
                                        "--kinds", ",".join(k for k, _, _ in routes)],
                          pub_log, stdout=subprocess.PIPE)
        line = pub.stdout.readline()
        pub.wait(timeout=60)
        if pub.returncode != 0 or not line:
            raise BenchError(f"publisher exited {pub.returncode}: {e2e.tail(pub_log)}")
        result["publisher"] = json.loads(line)
        if reader.stdout.readline().strip() != b"done":
            raise BenchError(f"reader failed: {e2e.tail(os.path.join(workdir, 'reader.log'))}")
        result["bridge_cpu_us_per_msg"] = (e2e.cpu_s(bridge.pid) - cpu0) * 1e6 / n
        with open(out, encoding="utf-8") as f:
            got = json.load(f)
        code = procs.stop(bridge, timeout_s=30)
        result["bridge_exit"] = code
        warm = int(args.rate * args.warmup)
        keep = [k for k, s in enumerate(got["seq"]) if s >= warm]
        result.update(received=len(got["seq"]), distinct=len(set(got["seq"])), expected=n,
                      measured=len(keep),
                      read_back=percentiles([got["e2e_us"][k] for k in keep]),
                      to_bridge=percentiles([got["create_us"][k] for k in keep]),
                      warmup=percentiles([got["e2e_us"][k] for k, s in enumerate(got["seq"])
                                          if s < warm]))
        if result["distinct"] != n:
            result["finding"] = f"{result['distinct']} distinct of {n} messages in Kafka"
        return result
    finally:
        procs.stop_all()


def print_table(runs, args):
    print(f"\nPublish-to-Kafka latency, {args.rate:g} msg/s QoS 1 over 6 topics for "
          f"{args.duration:g} s (first {args.warmup:g} s left out), linger_ms {args.linger_ms}")
    print(f"{'scenario':10} {'run':>3} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'p99.9':>7} "
          f"{'max ms':>7} | {'to bridge p50':>13} {'p99':>6} | {'CPU us/msg':>10} "
          f"{'rate':>6} {'in Kafka':>8}")
    for r in runs:
        rb, tb = r["read_back"], r["to_bridge"]
        print(f"{r['scenario']:10} {r['run']:3d} {rb['p50_ms']:7.2f} {rb['p90_ms']:7.2f} "
              f"{rb['p99_ms']:7.2f} {rb['p999_ms']:7.2f} {rb['max_ms']:7.1f} | "
              f"{tb['p50_ms']:13.1f} {tb['p99_ms']:6.1f} | {r['bridge_cpu_us_per_msg']:10.1f} "
              f"{r['publisher']['rate']:6.0f} {r['distinct']:8d}")
    for sc in SCENARIOS:
        rs = [r for r in runs if r["scenario"] == sc]
        if rs:
            p50 = statistics.median(r["read_back"]["p50_ms"] for r in rs)
            p99 = statistics.median(r["read_back"]["p99_ms"] for r in rs)
            print(f"{sc:10} median of {len(rs)}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    by_run = {}
    for r in runs:
        by_run.setdefault(r["run"], {})[r["scenario"]] = r["read_back"]["p99_ms"]
    pairs = [v["sluice-6"] / v["python-6"] for v in by_run.values() if len(v) == 2]
    if pairs:
        print(f"p99 sluice-6 / python-6, each repetition: {' '.join(f'{x:.2f}' for x in pairs)}"
              f" (median {statistics.median(pairs):.2f}; target: at most 1.00)")
    print("p50..max: publish -> read back by the reader (CLOCK_REALTIME, includes the reader's "
          "fetch); to bridge: publish -> Kafka CreateTime (1 ms resolution)")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=("bench", "publisher", "reader"), default="bench",
                        help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--kinds", help=argparse.SUPPRESS)
    parser.add_argument("--brokers", help=argparse.SUPPRESS)
    parser.add_argument("--topics", help=argparse.SUPPRESS)
    parser.add_argument("--partitions", type=int, default=4, help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--build", default=os.path.join(REPO, "build", "release"),
                        help="build directory (default: build/release)")
    parser.add_argument("--rate", type=float, default=5000, help="msg/s (default 5000)")
    parser.add_argument("--duration", type=float, default=12, help="seconds of publishing "
                        "(default 12)")
    parser.add_argument("--warmup", type=float, default=2, help="first seconds left out "
                        "(default 2)")
    parser.add_argument("--linger-ms", type=int, default=5,
                        help="linger of both bridges (default 5, kafka-sink's default)")
    parser.add_argument("--route-option", action="append", default=[], metavar="KEY=VALUE",
                        help="route option for every sluice route, e.g. max_in_flight=16 "
                             "(repeatable)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario (default 3)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--timeout", type=float, default=120, help=argparse.SUPPRESS)
    parser.add_argument("--json", help="write every run to this file")
    parser.add_argument("--keep", action="store_true", help="keep the logs' temp directory")
    args = parser.parse_args()
    if args.role == "publisher":
        return publisher_main(args)
    if args.role == "reader":
        return reader_main(args)

    args.build = os.path.abspath(args.build)
    scenarios = [s for s in args.scenarios.split(",") if s]
    missing = [p for p in (os.path.join(args.build, "sluice"),
                           os.path.join(args.build, "tools/devkafka/sluice-devkafka"))
               if not os.access(p, os.X_OK)]
    if not shutil.which("mosquitto"):
        missing.append("mosquitto (apt-get install mosquitto)")
    for module, pkg in (("paho.mqtt.client", "python3-paho-mqtt"),
                        ("confluent_kafka", "python3-confluent-kafka")):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"{module} (apt-get install {pkg})")
    if missing:
        parser.error("missing: " + ", ".join(missing))
    top = tempfile.mkdtemp(prefix="sluice-latency-bench-")
    runs, failures, ok = [], [], False
    try:
        for k in range(args.repeat):
            for sc in scenarios:
                workdir = os.path.join(top, f"{sc}-{k + 1}")
                os.makedirs(workdir)
                log(f"run {k + 1}/{args.repeat} {sc} ...")
                try:
                    r = run_once(args, sc, workdir)
                except BenchError as e:
                    failures.append({"scenario": sc, "run": k + 1, "error": str(e)})
                    log(f"  FAILED (logs in {workdir}): {e}")
                    continue
                r["run"] = k + 1
                runs.append(r)
                log(f"  p50 {r['read_back']['p50_ms']:.2f} ms, p99 "
                    f"{r['read_back']['p99_ms']:.2f} ms, {r['distinct']} of {r['expected']} "
                    f"in Kafka")
        if runs:
            print_table(runs, args)
        for f in failures:
            print(f"FAILED: {f['scenario']} run {f['run']}: {f['error']}")
        for r in runs:
            if "finding" in r:
                print(f"FINDING: {r['scenario']} run {r['run']}: {r['finding']}")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump({"rate": args.rate, "duration_s": args.duration,
                           "warmup_s": args.warmup, "linger_ms": args.linger_ms, "runs": runs,
                           "failures": failures}, f, indent=2)
        ok = not failures and not any("finding" in r for r in runs)
        return 0 if ok else 1
    finally:
        if ok and not args.keep:
            shutil.rmtree(top, ignore_errors=True)
        else:
            log(f"logs in {top}")


if __name__ == "__main__":
    sys.exit(main())

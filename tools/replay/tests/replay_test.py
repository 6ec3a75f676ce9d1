#!/usr/bin/python3
"""End-to-end check of sluice-replay against a real mosquitto on a free loopback port.

A mosquitto_sub subscriber records what arrives; the expected payloads are computed here
from the CSV with Python's csv module, independently of the C++ parser. Also covers
malformed rows, QoS 0, an unreachable broker and a missing data file. Every wait is bounded
and every process started here is killed on the way out. Missing tools or data fail the
test (never skip) with the Debian package or the path that is missing.
"""

import argparse
import getpass
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROWS = 50
SENSORS = [  # (CSV column, topic kind, node), in the order sluice-replay publishes them
    ("S1_Temp", "temperature", "s1"), ("S2_Temp", "temperature", "s2"),
    ("S3_Temp", "temperature", "s3"), ("S4_Temp", "temperature", "s4"),
    ("S1_Light", "light", "s1"), ("S2_Light", "light", "s2"),
    ("S3_Light", "light", "s3"), ("S4_Light", "light", "s4"),
    ("S1_Sound", "sound", "s1"), ("S2_Sound", "sound", "s2"),
    ("S3_Sound", "sound", "s3"), ("S4_Sound", "sound", "s4"),
    ("S5_CO2", "co2", "s5"), ("S5_CO2_Slope", "co2_slope", "s5"),
    ("S6_PIR", "pir", "s6"), ("S7_PIR", "pir", "s7"),
]
FIRST_ROW_TEMPERATURE_S1 = '{"ts":"2017-12-22T10:49:41","value":24.94}'
STARTUP_TIMEOUT_S = 10
RUN_TIMEOUT_S = 60
ARRIVAL_TIMEOUT_S = 20
SETTLE_S = 0.5  # quiet time after the last expected message, to catch extra ones


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def require_tools(data_path):
    if shutil.which("mosquitto") is None and not os.path.exists("/usr/sbin/mosquitto"):
        fail("mosquitto not found: install the Debian package 'mosquitto' "
             "(apt-get install mosquitto)")
    for tool in ("mosquitto_sub", "mosquitto_pub"):
        if shutil.which(tool) is None:
            fail(f"{tool} not found: install the Debian package 'mosquitto-clients' "
                 "(apt-get install mosquitto-clients)")
    if not os.path.isfile(data_path):
        fail(f"data set not found at {data_path}: the tests expect the Room Occupancy "
             "Estimation CSV at ../shared/data/occupancy_estimation.csv beside the checkout")


def mosquitto_binary():
    return shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port():
    # The kernel picks a port nobody holds; a race with another process taking it before
    # mosquitto binds is possible but shows up as mosquitto exiting, which is reported.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    fail(f"timed out after {timeout_s} s waiting for {what}")


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def expected_payloads(data_path, rows):
    """Payloads per topic for the first `rows` rows, by an implementation independent of C++."""
    expected = {f"sensors/{kind}/{node}": [] for _, kind, node in SENSORS}
    with open(data_path, newline="", encoding="utf-8") as f:
        for i, record in enumerate(csv.DictReader(f)):
            if i == rows:
                break
            ts = record["Date"].replace("/", "-") + "T" + record["Time"]
            for column, kind, node in SENSORS:
                expected[f"sensors/{kind}/{node}"].append(
                    '{"ts":"%s","value":%s}' % (ts, record[column]))
    return expected


class Subscriber:
    """mosquitto_sub -v on the test broker, with its lines collected by a thread."""

    def __init__(self, port, topics):
        args = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-v",
                "-t", "probe/ready"]
        for topic in topics:
            args += ["-t", topic]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def messages(self, prefix):
        with self.lock:
            return [line.split(" ", 1) for line in self.lines if line.startswith(prefix)]

    def wait_ready(self, port):
        # The subscription is live once a probe published after it comes back.
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port),
                            "-t", "probe/ready", "-m", "x"], timeout=STARTUP_TIMEOUT_S,
                           check=False)
            if self.messages("probe/ready"):
                return
            if self.proc.poll() is not None:
                fail(f"mosquitto_sub exited {self.proc.returncode}: {self.proc.stderr.read()}")
            time.sleep(0.1)
        fail(f"mosquitto_sub did not receive a probe within {STARTUP_TIMEOUT_S} s")

    def wait_count(self, prefix, count):
        deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
        while time.monotonic() < deadline and len(self.messages(prefix)) < count:
            time.sleep(0.05)
        time.sleep(SETTLE_S)
        return self.messages(prefix)


def run_replay(replay, args):
    try:
        return subprocess.run([replay] + args, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        fail(f"sluice-replay {' '.join(args)} did not finish within {RUN_TIMEOUT_S} s")


def check_roundtrip(replay, data_path, port, subscriber, workdir):
    summary_path = os.path.join(workdir, "summary.json")
    url = f"tcp://127.0.0.1:{port}"
    result = run_replay(replay, ["--url", url, "--file", data_path, "--pace", "max",
                                 "--rows", str(ROWS), "--qos", "1",
                                 "--summary-json", summary_path])
    if result.returncode != 0:
        fail(f"sluice-replay exited {result.returncode}:\n{result.stderr}")

    arrived = subscriber.wait_count("sensors/", ROWS * len(SENSORS))
    if len(arrived) != ROWS * len(SENSORS):
        fail(f"{len(arrived)} messages arrived, expected exactly {ROWS * len(SENSORS)}")
    per_topic = {}
    for topic, payload in arrived:
        per_topic.setdefault(topic, []).append(payload)

    with open(summary_path, encoding="utf-8") as f:
        summary = json.load(f)
    counts = {topic: len(payloads) for topic, payloads in per_topic.items()}
    if counts != summary["topics"]:
        fail(f"per-topic counts differ from the summary:\n arrived {counts}\n"
             f" summary {summary['topics']}")
    totals = {key: summary[key] for key in
              ("rows_published", "messages_sent", "messages_acknowledged", "messages_failed",
               "rows_malformed")}
    expected_totals = {"rows_published": ROWS, "messages_sent": ROWS * len(SENSORS),
                       "messages_acknowledged": ROWS * len(SENSORS), "messages_failed": 0,
                       "rows_malformed": 0}
    if totals != expected_totals or summary["ok"] is not True:
        fail(f"summary totals {totals} (ok={summary['ok']}), expected {expected_totals}")

    if per_topic["sensors/temperature/s1"][0] != FIRST_ROW_TEMPERATURE_S1:
        fail(f"first sensors/temperature/s1 payload is {per_topic['sensors/temperature/s1'][0]!r}"
             f", expected {FIRST_ROW_TEMPERATURE_S1!r}")
    expected = expected_payloads(data_path, ROWS)
    for topic, payloads in expected.items():
        if per_topic.get(topic) != payloads:
            fail(f"payloads on {topic} differ from the CSV: got {per_topic.get(topic, [])[:2]}..."
                 f", expected {payloads[:2]}...")
    print(f"QoS 1: {len(arrived)} messages on {len(per_topic)} topics match the CSV and the "
          "summary")


def check_malformed_rows_and_qos0(replay, data_path, port, subscriber, workdir):
    with open(data_path, encoding="utf-8") as f:
        header, row1, row2, row3 = (next(f) for _ in range(4))
    bad_csv = os.path.join(workdir, "malformed.csv")
    with open(bad_csv, "w", encoding="utf-8") as f:
        f.write(header + row1)
        f.write("2017/12/22,10:50:12,24.94\n")                   # line 3: too few fields
        f.write(row2.replace("24.94", "abc", 1))                 # line 4: not a number
        f.write(row3.replace("2017/12/22", "2017/13/22", 1))     # line 5: bad date
        f.write(row3)
    summary_path = os.path.join(workdir, "malformed.json")
    result = run_replay(replay, ["--url", f"tcp://127.0.0.1:{port}", "--file", bad_csv,
                                 "--pace", "max", "--qos", "0", "--topic-prefix", "malformed",
                                 "--summary-json", summary_path])
    if result.returncode != 0:
        fail(f"sluice-replay on malformed rows exited {result.returncode}:\n{result.stderr}")
    for line in (3, 4, 5):
        if f"malformed.csv:{line}: skipping malformed row" not in result.stderr:
            fail(f"no warning naming line {line}:\n{result.stderr}")
    with open(summary_path, encoding="utf-8") as f:
        summary = json.load(f)
    if (summary["rows_malformed"], summary["rows_published"], summary["messages_sent"]) != \
            (3, 2, 2 * len(SENSORS)):
        fail(f"malformed-row summary is {summary}")
    arrived = subscriber.wait_count("malformed/", 2 * len(SENSORS))
    if len(arrived) != 2 * len(SENSORS):
        fail(f"QoS 0: {len(arrived)} messages arrived, expected {2 * len(SENSORS)}")
    print("malformed rows: 3 skipped with warnings naming their lines, 2 rows published at QoS 0")


def check_failures(replay, data_path, workdir):
    dead_port = free_port()
    url = f"tcp://127.0.0.1:{dead_port}"
    result = run_replay(replay, ["--url", url, "--file", data_path, "--rows", "1"])
    if result.returncode == 0 or url not in result.stderr:
        fail(f"unreachable broker: exit {result.returncode}, stderr does not name {url}:\n"
             f"{result.stderr}")
    missing = os.path.join(workdir, "no-such-dir", "occupancy.csv")
    result = run_replay(replay, ["--url", url, "--file", missing])
    if result.returncode == 0 or missing not in result.stderr:
        fail(f"missing file: exit {result.returncode}, stderr does not name {missing}:\n"
             f"{result.stderr}")
    print("unreachable broker and missing file: non-zero exit, messages name the URL and path")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--replay", required=True, help="path to sluice-replay")
    parser.add_argument("--data", required=True, help="path to occupancy_estimation.csv")
    args = parser.parse_args()
    require_tools(args.data)

    workdir = tempfile.mkdtemp(prefix="replay-test-")
    started = []
    try:
        port = free_port()
        config = os.path.join(workdir, "mosquitto.conf")
        with open(config, "w", encoding="utf-8") as f:
            # The queue limit is explicit: the default (1000) silently drops QoS 1 messages
            # queued for a subscriber that falls behind, which would look like replay loss.
            # `user`, as the other harnesses: started as root, mosquitto would switch to user
            # `mosquitto` and then depend on what that user may read.
            f.write(f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\n"
                    "allow_anonymous true\nmax_queued_messages 100000\n")
        log_path = os.path.join(workdir, "mosquitto.log")
        with open(log_path, "w") as log:
            broker = subprocess.Popen([mosquitto_binary(), "-c", config], stdout=log,
                                      stderr=subprocess.STDOUT)
        started.append(broker)

        def broker_up():
            if broker.poll() is not None:
                with open(log_path, encoding="utf-8", errors="replace") as f:
                    fail(f"mosquitto exited {broker.returncode} on port {port}:\n{f.read()}")
            return port_open(port)

        wait_for(broker_up, STARTUP_TIMEOUT_S, f"mosquitto to listen on port {port}")

        subscriber = Subscriber(port, ["sensors/#", "malformed/#"])
        started.append(subscriber.proc)
        subscriber.wait_ready(port)

        check_roundtrip(args.replay, args.data, port, subscriber, workdir)
        check_malformed_rows_and_qos0(args.replay, args.data, port, subscriber, workdir)
        check_failures(args.replay, args.data, workdir)
        print("PASS")
    finally:
        for proc in reversed(started):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if os.environ.get("KEEP_TEST_DIR") is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}", file=sys.stderr)


if __name__ == "__main__":
    main()

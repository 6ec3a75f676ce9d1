#!/usr/bin/python3
"""End-to-end check of sluice-sim-device against a real mosquitto on a free loopback port.

1. 3 devices publish a fixed number of readings: every reading of every device must arrive, with
   sequence numbers 1..count, in valid payloads; `led on` sent to tank-2 must be obeyed, logged,
   acknowledged and reflected in its later readings (and only in tank-2's).
2. SIGTERM stops a running simulator cleanly (exit 0, summary, retained `offline`), after an
   `interval` command took effect.
3. A simulator killed with SIGKILL gets `offline` from its last will.

Standard library only. Every wait is bounded; everything started is killed on the way out.
"""
import argparse
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

DEVICES = 3
COUNT = 30
INTERVAL_MS = 100


class TestFailure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise TestFailure(message)


def find_program(name, package):
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/local/sbin/{name}",
                      f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise TestFailure(f"{name} not found: install the Debian package {package} "
                      f"(apt-get install {package})")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process whose stdout lines are collected by a thread, so we can wait on them."""

    def __init__(self, name, argv, registry):
        self.name = name
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, bufsize=1)
        registry.append(self)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait_for(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if predicate(self.lines):
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestFailure(f"timed out after {timeout}s waiting for {what} "
                                      f"({self.name}); last output:\n  " +
                                      "\n  ".join(self.lines[-15:]))
                self.cond.wait(min(left, 0.2))

    def wait_exit(self, timeout):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"{self.name} did not exit within {timeout}s")
        self.reader.join(timeout=5)
        return rc

    def snapshot(self):
        with self.cond:
            return list(self.lines)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def messages(sub_lines, topic):
    prefix = topic + " "
    return [line[len(prefix):] for line in sub_lines if line.startswith(prefix)]


def has_line(line):
    return lambda lines: line in lines


def run(sim, workdir, started):
    mosquitto = find_program("mosquitto", "mosquitto")
    mosquitto_sub = find_program("mosquitto_sub", "mosquitto-clients")
    mosquitto_pub = find_program("mosquitto_pub", "mosquitto-clients")
    check(os.access(sim, os.X_OK), f"simulator {sim} is not executable")

    port = free_port()
    conf = os.path.join(workdir, "mosquitto.conf")
    with open(conf, "w") as f:
        # Raised queue limit: the default 1000 drops QoS 1 messages silently, which would look
        # like a simulator bug to a test that counts readings.
        # `user`, as the other harnesses: started as root, mosquitto would switch to user
        # `mosquitto` and then depend on what that user may read.
        f.write(f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
                f"persistence false\nmax_queued_messages 100000\nlog_dest stdout\n")
    broker = Process("mosquitto", [mosquitto, "-c", conf], started)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            check(broker.proc.poll() is None,
                  "mosquitto exited:\n  " + "\n  ".join(broker.snapshot()))
            check(time.monotonic() < deadline, f"mosquitto did not listen on {port} in 10s")
            time.sleep(0.05)

    url = f"tcp://127.0.0.1:{port}"
    mqtt = ["-h", "127.0.0.1", "-p", str(port)]

    def publish(topic, payload):
        subprocess.run([mosquitto_pub, *mqtt, "-q", "1", "-t", topic, "-m", payload],
                       check=True, timeout=10, stdout=subprocess.DEVNULL)

    # The independent subscriber; a probe message proves its subscription is active before
    # anything we want to count is published.
    sub = Process("mosquitto_sub", [mosquitto_sub, *mqtt, "-v", "-q", "1", "-t",
                                    "sensors/distance/#", "-t", "devices/#", "-t", "probe"],
                  started)
    deadline = time.monotonic() + 10
    while "probe ready" not in sub.snapshot():
        check(time.monotonic() < deadline, "mosquitto_sub did not receive the probe in 10s")
        publish("probe", "ready")
        time.sleep(0.2)

    # --- 1. every reading arrives; led on reaches tank-2 only --------------------------------
    sim1 = Process("sluice-sim-device", [sim, "--url", url, "--devices", str(DEVICES),
                                         "--interval-ms", str(INTERVAL_MS), "--count",
                                         str(COUNT), "--seed", "7", "--qos", "1"], started)
    sub.wait_for(lambda lines: len(messages(lines, "sensors/distance/tank-2")) >= 3, 15,
                 "three readings of tank-2")
    publish("devices/tank-2/cmd", "led on")
    sim1.wait_for(has_line("tank-2 led on"), 10, "the simulator to log 'tank-2 led on'")
    rc = sim1.wait_exit(30)
    sim_out = sim1.snapshot()
    check(rc == 0, f"simulator exited with {rc}:\n  " + "\n  ".join(sim_out[-20:]))
    sub.wait_for(lambda lines: all(
        messages(lines, f"devices/tank-{i}/status")[-1:] == ["offline"]
        for i in range(1, DEVICES + 1)), 10, "offline status of every device")

    got = sub.snapshot()
    for i in range(1, DEVICES + 1):
        device = f"tank-{i}"
        payloads = [json.loads(p) for p in messages(got, f"sensors/distance/{device}")]
        seqs = [p["seq"] for p in payloads]
        check(seqs == list(range(1, COUNT + 1)),
              f"{device}: expected sequence numbers 1..{COUNT}, got {seqs}")
        for p in payloads:
            check(p["device"] == device, f"{device}: payload names device {p['device']}")
            check(isinstance(p["firmware"], str) and p["firmware"], f"{device}: no firmware")
            check(isinstance(p["uptime_ms"], int) and isinstance(p["rssi"], int),
                  f"{device}: bad uptime/rssi in {p}")
            if p["distance_cm"] is None:
                check(p.get("error") == "out_of_range", f"{device}: null without error: {p}")
            else:
                check(2.0 <= p["distance_cm"] <= 400.0, f"{device}: distance out of range {p}")
        uptimes = [p["uptime_ms"] for p in payloads]
        check(uptimes == sorted(uptimes), f"{device}: uptime went backwards: {uptimes}")
        check(f"summary {device} readings={COUNT}" in sim_out,
              f"{device}: summary line missing:\n  " + "\n  ".join(sim_out[-8:]))
        statuses = messages(got, f"devices/{device}/status")
        check(statuses[:1] == ["online"], f"{device}: status did not start online: {statuses}")

        leds = [p["led"] for p in payloads]
        if device == "tank-2":
            check(leds[-1] is True, f"tank-2: LED not reported on after the command: {leds}")
            first_on = leds.index(True)
            check(all(leds[first_on:]), f"tank-2: LED flickered after the command: {leds}")
            check(not any(leds[:3]), f"tank-2: LED on before the command: {leds}")
            acks = [json.loads(a) for a in messages(got, "devices/tank-2/ack")]
            check(acks and acks[0]["ok"] is True and acks[0]["led"] is True,
                  f"tank-2: no positive ack: {acks}")
        else:
            check(not any(leds), f"{device}: LED changed without a command: {leds}")
            check(f"{device} led on" not in sim_out, f"{device}: obeyed tank-2's command")
    print(f"phase 1 ok: {DEVICES} devices x {COUNT} readings, sequence 1..{COUNT} each, "
          f"tank-2 led on obeyed")

    # --- 2. SIGTERM: clean exit with summary, after an interval change ------------------------
    sim2 = Process("sluice-sim-device (SIGTERM)", [sim, "--url", url, "--id-prefix", "sig-",
                                                   "--interval-ms", "1000"], started)
    sim2.wait_for(has_line("sig-1 online"), 15, "sig-1 to come online")
    publish("devices/sig-1/cmd", '{"interval_ms":100}')
    sim2.wait_for(has_line("sig-1 interval 100"), 10, "the interval change to be logged")
    # At the old 1 reading/s at most 4 could arrive in 3 s; at 100 ms 10 take 1 s, leaving
    # slack for a loaded machine.
    before = len(messages(sub.snapshot(), "sensors/distance/sig-1"))
    sub.wait_for(lambda lines: len(messages(lines, "sensors/distance/sig-1")) >= before + 10, 3,
                 "readings at the new 100 ms interval")
    sim2.proc.send_signal(signal.SIGTERM)
    rc = sim2.wait_exit(15)
    out2 = sim2.snapshot()
    check(rc == 0, f"simulator exited with {rc} on SIGTERM:\n  " + "\n  ".join(out2[-10:]))
    summary = [line for line in out2 if line.startswith("summary sig-1 readings=")]
    check(summary and int(summary[0].split("=")[1]) >= 11, f"no plausible summary: {out2[-5:]}")
    sub.wait_for(lambda lines: messages(lines, "devices/sig-1/status")[-1:] == ["offline"], 10,
                 "sig-1 offline after SIGTERM")
    print("phase 2 ok: interval command obeyed, SIGTERM -> exit 0, " + summary[0])

    # --- 3. SIGKILL: the broker publishes the last will ----------------------------------------
    sim3 = Process("sluice-sim-device (SIGKILL)", [sim, "--url", url, "--id-prefix", "will-"],
                   started)
    sim3.wait_for(has_line("will-1 online"), 15, "will-1 to come online")
    sub.wait_for(lambda lines: messages(lines, "devices/will-1/status")[-1:] == ["online"], 10,
                 "will-1 online status")
    sim3.proc.kill()
    sim3.wait_exit(10)
    sub.wait_for(lambda lines: messages(lines, "devices/will-1/status")[-1:] == ["offline"], 10,
                 "the last will 'offline' of will-1")
    print("phase 3 ok: last will delivered after SIGKILL")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim", required=True, help="path to sluice-sim-device")
    args = parser.parse_args()
    started = []
    with tempfile.TemporaryDirectory(prefix="sluice-fw-it-") as workdir:
        try:
            run(os.path.abspath(args.sim), workdir, started)
        except TestFailure as e:
            print(f"FAIL: {e}")
            return 1
        finally:
            for p in reversed(started):
                p.stop()
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())

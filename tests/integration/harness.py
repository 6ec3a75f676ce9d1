"""Real processes for integration tests: mosquitto, the development Kafka (librdkafka's mock
cluster), the `sluice` binary and the replay tool, plus an independent Kafka reader
(kcat). Every wait is bounded; everything started is stopped."""
import getpass
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BUILD = Path(os.environ.get("SLUICE_BUILD", "build/dev")).resolve()
REPO = Path(os.environ.get("SLUICE_REPO", ".")).resolve()
DATA = Path(os.environ.get("SLUICE_TEST_DATA", REPO.parent / "shared/data/occupancy_estimation.csv"))
SLUICE = os.environ.get("SLUICE_BIN", str(BUILD / "sluice"))
PLUGINS = os.environ.get("SLUICE_PLUGIN_DIR", str(BUILD / "plugins"))
DEVKAFKA = os.environ.get("SLUICE_DEVKAFKA", str(BUILD / "tools/devkafka/sluice-devkafka"))
REPLAY = os.environ.get("SLUICE_REPLAY", str(BUILD / "tools/replay/sluice-replay"))
# Test fixture plugins (tests/abi/fixtures), built with the tests.
FIXTURES = Path(os.environ.get("SLUICE_TEST_FIXTURE_DIR", str(BUILD / "tests/fixtures")))


def require(program, package):
    if shutil.which(program) is None:
        raise RuntimeError(f"{program} is not installed: install the Debian package {package}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def raise_nofile(limit):
    """A preexec_fn that raises the child's open-file limit (RLIMIT_NOFILE) to `limit`, soft and
    hard: hundreds or thousands of MQTT connections need more than the usual 1024. Raising the
    hard limit needs root (or CAP_SYS_RESOURCE); otherwise the soft limit goes up to the hard."""
    def apply():
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft >= limit:
            return
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, max(limit, hard)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
    return None if limit is None else apply


def proc_status(pid):
    """/proc/<pid>/status as a dict of its fields (values as text, e.g. 'Threads': '12')."""
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def threads_of(pid):
    return int(proc_status(pid)["Threads"].strip())


def rss_bytes(pid):
    return int(proc_status(pid)["VmRSS"].split()[0]) * 1024


def cpu_seconds(pid):
    """User + system CPU seconds of a live process, all its threads (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_process(p, timeout=15):
    if p is None or p.poll() is not None:
        return p.returncode if p else None
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise


class Mosquitto:
    """A real mosquitto on a free loopback port. Queues are raised for loss-counting tests:
    the default max_queued_messages (1000) silently drops QoS 1 messages for slow clients.
    `extra`: more config lines (a later line of a setting overrides an earlier one); `nofile`:
    the broker's open-file limit, for tests with many connections (see raise_nofile)."""

    def __init__(self, workdir, port=None, tls=None, extra=(), nofile=None):
        require("mosquitto", "mosquitto")
        self.port = port or free_port()
        self.workdir = Path(workdir)
        self.tls = tls
        self.extra = list(extra)
        self.nofile = nofile
        self.proc = None

    @property
    def url(self):
        return f"{'ssl' if self.tls else 'tcp'}://127.0.0.1:{self.port}"

    def start(self):
        conf = self.workdir / f"mosquitto-{self.port}.conf"
        # As root, mosquitto would switch to user `mosquitto`, who cannot read our files.
        lines = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1",
                 "allow_anonymous true",
                 "max_queued_messages 1000000", "max_inflight_messages 0", "persistence false"]
        if self.tls:
            lines += [f"cafile {self.tls['ca']}", f"certfile {self.tls['cert']}",
                      f"keyfile {self.tls['key']}"]
        conf.write_text("\n".join(lines + self.extra) + "\n")
        log = open(self.workdir / f"mosquitto-{self.port}.log", "ab")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=log,
                                     preexec_fn=raise_nofile(self.nofile))

        def accepting():
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: see {log.name}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_for(accepting, 10, f"mosquitto on port {self.port}")
        return self

    def stop(self):
        stop_process(self.proc)
        self.proc = None

    def publish(self, topic, payloads, qos=1, version="5", properties=()):
        """Publishes each payload with mosquitto_pub (one process, -l reads lines)."""
        require("mosquitto_pub", "mosquitto-clients")
        args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-t", topic,
                "-q", str(qos), "-V", {"5": "mqttv5", "3.1.1": "mqttv311"}[version], "-l"]
        if self.tls:
            args = ["mosquitto_pub", "-L", f"mqtts://127.0.0.1:{self.port}/{topic}",
                    "--cafile", self.tls["ca"], "-q", str(qos), "-V",
                    {"5": "mqttv5", "3.1.1": "mqttv311"}[version], "-l"]
        for key, value in properties:
            args += ["-D", "publish", "user-property", key, value]
        subprocess.run(args, input="\n".join(payloads) + "\n", text=True, check=True, timeout=60)


class DevKafka:
    def __init__(self, workdir, brokers=1, topics=()):
        self.workdir = Path(workdir)
        self.brokers = brokers
        self.topics = list(topics)
        self.proc = None
        self.bootstrap = None

    def start(self):
        if not Path(DEVKAFKA).exists():
            raise RuntimeError(f"{DEVKAFKA} is missing: build the project first")
        bootstrap_file = self.workdir / "kafka-bootstrap"
        args = [DEVKAFKA, "--brokers", str(self.brokers), "--bootstrap-file", str(bootstrap_file)]
        for t in self.topics:
            args += ["--topic", t]
        log = open(self.workdir / "devkafka.log", "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=log)
        self.bootstrap = wait_for(
            lambda: bootstrap_file.exists() and bootstrap_file.read_text().strip(), 15,
            "the development Kafka's bootstrap address")
        return self

    def down(self):
        self.proc.send_signal(signal.SIGUSR1)

    def up(self):
        self.proc.send_signal(signal.SIGUSR2)

    def stop(self):
        assert stop_process(self.proc) == 0
        self.proc = None

    def read(self, topic, expect=None, timeout=30):
        """Every record of `topic` from the beginning, read with an independent client (kcat).
        With `expect`, polls until at least that many are there (or the timeout)."""
        require("kcat", "kcat")
        deadline = time.time() + timeout
        while True:
            out = subprocess.run(["kcat", "-b", self.bootstrap, "-C", "-t", topic, "-o",
                                  "beginning", "-e", "-q", "-J"], capture_output=True, text=True,
                                 timeout=60).stdout
            records = [Record(json.loads(line)) for line in out.splitlines() if line.strip()]
            if expect is None or len(records) >= expect or time.time() > deadline:
                return records
            time.sleep(0.5)


class Record:
    """One Kafka record as kcat -J shows it."""

    def __init__(self, j):
        self.topic = j["topic"]
        self.partition = j["partition"]
        self.offset = j["offset"]
        self.key = None if j.get("key") is None else j["key"].encode()
        self.value = (j.get("payload") or "").encode()
        self.ts = j.get("ts")  # the record's timestamp, ms (Sluice: the message's receipt)
        h = j.get("headers") or []
        self.headers = [(h[i], h[i + 1].encode()) for i in range(0, len(h), 2)]


RUNNING = []  # every Sluice started; conftest stops what a failing test left running


class Sluice:
    """The real binary with manifests written to a temporary directory. `nofile`: its
    open-file limit (see raise_nofile), for many routes."""

    def __init__(self, workdir, env=None, nofile=None):
        self.workdir = Path(workdir)
        self.env = dict(os.environ, **(env or {}))
        self.nofile = nofile
        self.proc = None
        self.log_path = self.workdir / "sluice.log"

    def start(self, *route_paths, wait_routes=None):
        args = [SLUICE, "run", "--plugins", PLUGINS]
        for p in route_paths:
            args += ["--routes", str(p)]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log, env=self.env,
                                     preexec_fn=raise_nofile(self.nofile))
        RUNNING.append(self.proc)
        if wait_routes:
            self.wait_subscribed(wait_routes)
        return self

    def wait_subscribed(self, routes, timeout=30):
        """Until `routes` MQTT sources have their subscriptions confirmed by the broker:
        messages published before that are not for us (no session existed yet)."""
        wait_for(lambda: self.log_text().count("; receiving") >= routes or self._died(), timeout,
                 f"{routes} routes to subscribe")

    def _died(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"sluice exited with {self.proc.returncode}:\n{self.log_text()}")
        return False

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self):
        rc = stop_process(self.proc, timeout=60)
        assert rc == 0, f"sluice exited {rc}:\n{self.log_text()}"
        return self.log_text()


def manifest(directory, name, text):
    path = Path(directory) / f"{name}.yaml"
    path.write_text(text)
    return path


def route(name, url, topics, kafka, kafka_topic, qos=1, extra_source="", transforms="",
          extra_sink="", extra=""):
    topic_list = ", ".join(json.dumps(t) for t in topics)
    text = (f"route: {name}\nsource:\n  mqtt-source:\n    url: {url}\n    topics: [{topic_list}]\n"
            f"    qos: {qos}\n{extra_source}")
    if transforms:
        text += f"transforms:\n{transforms}"
    text += f"sink:\n  kafka-sink:\n    brokers: {kafka}\n    topic: {kafka_topic}\n{extra_sink}"
    return text + extra


# --- Helpers for the fault tests (test_faults.py, faults.py) --------------------------------


class PersistentMosquitto(Mosquitto):
    """A mosquitto whose sessions and queued messages survive its own restart (SIGTERM, then
    start() again on the same port): `persistence true` in a store under `workdir`. The queue
    limits stay raised as in Mosquitto."""

    def __init__(self, workdir, port=None, extra=()):
        store = Path(workdir) / "mosquitto-store"
        store.mkdir(parents=True, exist_ok=True)
        # mosquitto applies the last `persistence` line: this overrides the base's `false`.
        super().__init__(workdir, port=port, extra=["persistence true",
                                                    f"persistence_location {store}/",
                                                    "autosave_interval 1", *extra])


class SluiceProcess:
    """The real binary run with `--state-dir` (None: the flag is left out), one log file per
    start (`<name>-<n>.log`), SIGKILL and a timed SIGTERM. Every start is registered in RUNNING
    so that conftest kills what a failing test left behind."""

    def __init__(self, workdir, routes, state_dir, env=None, name="sluice", extra_args=()):
        self.workdir = Path(workdir)
        self.routes = [Path(r) for r in (routes if isinstance(routes, (list, tuple)) else [routes])]
        self.state_dir = None if state_dir is None else Path(state_dir)
        self.env = dict(os.environ, **(env or {}))
        self.name = name
        self.extra_args = list(extra_args)
        self.proc = None
        self.starts = 0
        self.log_path = None

    def args(self):
        args = [SLUICE, "run", "--plugins", PLUGINS]
        for r in self.routes:
            args += ["--routes", str(r)]
        if self.state_dir is not None:
            args += ["--state-dir", str(self.state_dir)]
        return args + self.extra_args

    def start(self):
        self.starts += 1
        self.log_path = self.workdir / f"{self.name}-{self.starts}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args(), stdout=log, stderr=log, env=self.env)
        RUNNING.append(self.proc)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self, start=None):
        """The log of start number `start` (default: the latest)."""
        path = self.log_path if start is None else self.workdir / f"{self.name}-{start}.log"
        return path.read_text(errors="replace") if path and path.exists() else ""

    def all_logs(self):
        return "".join(self.log_text(i) for i in range(1, self.starts + 1))

    def wait_log(self, predicate, timeout, what):
        """Until predicate(log text of this start) is true; fails at once if sluice exited."""
        def check():
            text = self.log_text()
            if predicate(text):
                return True
            if self.proc.poll() is not None:
                raise RuntimeError(f"sluice exited with {self.proc.returncode} while waiting "
                                   f"for {what}:\n{text[-6000:]}")
            return False
        return wait_for(check, timeout, what)

    def kill(self):
        """SIGKILL: no drain, no clean-up; returns once the process is gone."""
        if self.alive():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def terminate(self, timeout):
        """SIGTERM; returns (exit code or None if still running at `timeout`, seconds taken).
        A process still running at the deadline is killed."""
        t0 = time.monotonic()
        if not self.alive():
            return self.proc.returncode, 0.0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None, time.monotonic() - t0
        return rc, time.monotonic() - t0

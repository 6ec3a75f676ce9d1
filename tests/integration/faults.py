"""Helpers for the fault tests (test_faults.py): the log lines they rely on (one regex each,
here only), route manifests with the route-level `buffer` / `on_error` / `dead_letter` keys, a
sequenced QoS 1 publisher that is itself lossless across broker restarts, an independent Kafka
reader that stamps every record's arrival time, the lost / duplicated / reordered accounting,
spool segment helpers, and listeners that stand for a hanging Kafka.
"""
import json
import logging
import os
import random
import re
import socket
import struct
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import harness


# --- Log lines (the only place that knows their wording) -------------------------------------
_ROUTE = r"route {name}(?![a-z0-9-])"  # "[route NAME]" today; the route's name, whole


def _route_line(name, rest):
    return re.compile(_ROUTE.format(name=re.escape(name)) + r"[^\n]*?" + rest)


def receiving_re(name):
    """The source confirmed its subscriptions."""
    return _route_line(name, r"; receiving")


def stop_line_re(name):
    """`route NAME ... stopped: received R, delivered D, errors E, dropped X (full F, oversize
    O), restarts N`: the whole rest of the line, numbers taken from it by name."""
    return _route_line(name, r"\bstopped: ([^\n]*)")


STOP_NUMBERS = {
    "received": re.compile(r"received (\d+)"),
    "delivered": re.compile(r"delivered (\d+)"),
    "errors": re.compile(r"errors (\d+)"),
    "dropped": re.compile(r"dropped (\d+)"),
    "full": re.compile(r"dropped \d+ \(full (\d+)"),
    "overflow": re.compile(r"overflow (\d+)"),  # optional (a held-back source's headroom)
    "oversize": re.compile(r"oversize (\d+)"),
    "dead_lettered": re.compile(r"dead-lettered (\d+)"),  # optional
    "restarts": re.compile(r"restarts (\d+)"),
}


def spool_recovered_re(name):
    """At start of a disk route with leftovers."""
    return _route_line(name, r"spool recovered (\d+) messages \((\d+) bytes\); skipped: "
                             r"torn tail (\d+) bytes, corrupt records (\d+)")


def undelivered_re(name):
    """At stop: how many messages a (memory) route could not deliver."""
    return _route_line(name, r"(\d+) messages? (?:were |was )?not delivered")


STATE_DIR_IN_USE = "in use by another sluice process"


def stop_counters(log, name):
    """The numbers of route `name`'s stop line (the last one in `log`), by name; {} if none."""
    lines = stop_line_re(name).findall(log)
    if not lines:
        return {}
    out = {}
    for key, rx in STOP_NUMBERS.items():
        m = rx.search(lines[-1])
        if m:
            out[key] = int(m.group(1))
    return out


def spool_recovered(log, name):
    """(recovered, bytes, torn_tail_bytes, corrupt_records) from route `name`'s line, or None."""
    m = spool_recovered_re(name).search(log)
    return tuple(int(g) for g in m.groups()) if m else None


def undelivered(log, name):
    m = undelivered_re(name).findall(log)
    return int(m[-1]) if m else None


def wait_receiving(proc, names, timeout=30):
    """Until every route in `names` has confirmed its subscriptions in this start's log."""
    names = list(names)
    proc.wait_log(lambda text: all(receiving_re(n).search(text) for n in names), timeout,
                  f"routes {names} to subscribe")


# --- Manifests -------------------------------------------------------------------------------
def _yaml(value, indent=0):
    """A small block-style YAML writer for manifests (dicts, lists, scalars)."""
    pad = " " * indent
    if isinstance(value, dict):
        out = ""
        for k, v in value.items():
            if isinstance(v, dict) and v:
                out += f"{pad}{k}:\n{_yaml(v, indent + 2)}"
            elif isinstance(v, list) and any(isinstance(i, dict) for i in v):
                out += f"{pad}{k}:\n"
                for item in v:
                    body = _yaml(item, indent + 4)
                    out += f"{pad}  - {body.lstrip()}"
            else:
                out += f"{pad}{k}: {_scalar(v)}\n"
        return out
    return f"{pad}{_scalar(value)}\n"


def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_scalar(i) for i in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_scalar(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v))  # a JSON string is a YAML double-quoted scalar


def mqtt_source(url, topics, client_id, **options):
    """An mqtt-source block with a persistent session under a fixed, test-unique client id."""
    block = {"url": url, "topics": list(topics), "qos": 1, "client_id": client_id,
             "clean_session": False, "reconnect_max_ms": 2000}
    block.update(options)
    return {"mqtt-source": block}


def kafka_sink(brokers, topic, key="{{topic.1}}", **options):
    """A kafka-sink block; the key is the route's tag (second MQTT topic level) by default, so
    one route's messages share a partition and their order there is meaningful."""
    block = {"brokers": brokers, "topic": topic}
    if key is not None:
        block["key"] = key
    block.update(options)
    return {"kafka-sink": block}


def file_sink(path, **options):
    block = {"path": str(path)}
    block.update(options)
    return {"file-sink": block}


def buffer(type="memory", max_bytes=16 * 1024 * 1024, when_full="block", fsync=None,
           fsync_interval_ms=None):
    b = {"type": type, "max_bytes": max_bytes, "when_full": when_full}
    if fsync is not None:
        b["fsync"] = fsync
    if fsync_interval_ms is not None:
        b["fsync_interval_ms"] = fsync_interval_ms
    return b


def route_manifest(directory, name, source, sink, transforms=(), buffer=None, on_error=None,
                   dead_letter=None, drain_timeout_ms=None, max_payload_bytes=None):
    """Writes `<directory>/<name>.yaml` and returns its path."""
    doc = {"route": name, "source": source}
    if transforms:
        doc["transforms"] = list(transforms)
    doc["sink"] = sink
    if buffer is not None:
        doc["buffer"] = buffer
    if on_error is not None:
        doc["on_error"] = on_error
    if dead_letter is not None:
        doc["dead_letter"] = dead_letter
    if max_payload_bytes is not None:
        doc["max_payload_bytes"] = max_payload_bytes
    if drain_timeout_ms is not None:
        doc["drain_timeout_ms"] = drain_timeout_ms
    path = Path(directory) / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_yaml(doc))
    return path


def sluice(workdir, routes_dir, name="sluice", fixtures=False):
    """A SluiceProcess with its state dir under the test's directory; `fixtures`: the test
    fixture plugins (gate-sink, async-sink, ...) are loaded beside the shipped ones."""
    extra = []
    if fixtures:
        where = harness.FIXTURES / "sdk-fixtures"
        assert where.is_dir(), f"the test fixture plugins are not built: {where} is missing"
        extra = ["--plugins", str(where)]
    return harness.SluiceProcess(workdir, routes_dir, Path(workdir) / "state", name=name,
                                 extra_args=extra)


def unique(prefix):
    """A fresh MQTT client id: sessions never leak between tests or runs."""
    return f"{prefix}-{os.getpid()}-{random.randrange(16 ** 8):08x}"


# --- Payloads --------------------------------------------------------------------------------
def marker(tag, seq):
    """A string found exactly once in message (tag, seq)'s payload, also inside a spool."""
    return f"<{tag}:{seq:06d}>"


def default_payload(tag, seq, sent_ns, pad=96):
    """{"route","seq","sent_ns","pad"}: compact JSON; the pad starts with the message's marker."""
    m = marker(tag, seq)
    return json.dumps({"route": tag, "seq": seq, "sent_ns": sent_ns,
                       "pad": m + "x" * max(0, pad - len(m))}, separators=(",", ":")).encode()


def parse_payload(value):
    """(tag, seq, sent_ns) of a payload made here, or None (not ours, or garbled)."""
    try:
        j = json.loads(value)
        return j["route"], int(j["seq"]), int(j["sent_ns"])
    except (ValueError, KeyError, TypeError):
        m = re.search(rb"<([a-z0-9-]+):(\d{6})>", value or b"")
        if m:  # a non-JSON payload of ours (dead-letter tests): tag and seq from its marker
            return m.group(1).decode(), int(m.group(2)), None
        return None


# --- A sequenced QoS 1 publisher, lossless across broker restarts -----------------------------
def _varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(s):
    b = s.encode()
    return struct.pack("!H", len(b)) + b


class Publisher:
    """Publishes numbered messages at QoS 1 over its own MQTT 3.1.1 connection (raw sockets, so
    that its delivery rules are these lines and nothing else):

    - streams: {tag: mqtt_topic}; each stream gets seq 0, 1, 2, ... at `rate` messages/s
      (up to `limit` messages each, if given); `payload(tag, seq, sent_ns)` makes the bytes.
    - A message is `sent` when it is first written to the socket (its sent_ns is then) and
      `acked` once its PUBACK arrived. Unacknowledged messages are re-sent (DUP) in order after
      every reconnect, with clean_session 0 and a fixed client id, so a broker restart loses
      nothing the publisher generated: every generated message ends up acknowledged, and the
      test's expectation is the set of generated messages.
    - While disconnected nothing new is generated (no catch-up burst later)."""

    def __init__(self, port, client_id, streams, rate=200, limit=None, payload=default_payload,
                 max_inflight=20000):
        self.port = port
        self.client_id = client_id
        self.streams = dict(streams)
        self.rate = rate
        self.limit = limit
        self.payload = payload
        self.max_inflight = max_inflight
        self.sent = {tag: {} for tag in self.streams}   # tag -> {seq: payload bytes}
        self.acked = {tag: set() for tag in self.streams}
        self.reconnects = 0
        self._mu = threading.Lock()
        self._inflight = {}  # packet id -> (tag, seq, packet bytes), in send order
        self._next_id = 1
        self._sock = None
        self._gen = 0  # connection number: a reader reports only its own connection's end
        self._dead = threading.Event()
        self._generate = threading.Event()
        self._generate.set()
        self._stop = threading.Event()
        self._thread = None
        self.error = None

    # public
    def start(self):
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()
        wait_for_connected = time.time() + 15
        while self._sock is None and time.time() < wait_for_connected and not self.error:
            time.sleep(0.02)
        if self._sock is None:
            raise RuntimeError(f"publisher cannot connect to 127.0.0.1:{self.port}: {self.error}")
        return self

    def stop_generating(self):
        self._generate.clear()

    def generated(self, tag):
        with self._mu:
            return len(self.sent[tag])

    def unacked(self):
        with self._mu:
            return len(self._inflight)

    def wait_done(self, timeout=60):
        """Until `limit` messages per stream were generated (if limited) and all are acked."""
        def done():
            with self._mu:
                full = self.limit is None or all(len(s) >= self.limit for s in self.sent.values())
                return full and not self._inflight
        harness.wait_for(done, timeout, "the publisher's messages to be acknowledged")

    def close(self, timeout=60):
        """Stops generating, waits until everything generated is acknowledged, disconnects."""
        self.stop_generating()
        try:
            harness.wait_for(lambda: self.unacked() == 0, timeout,
                             "the publisher's last PUBACKs")
        finally:
            self._stop.set()
            if self._thread:
                self._thread.join(timeout=10)
            self._drop_socket()

    def abort(self):
        """Stops at once (clean-up after a failure): no waiting for PUBACKs."""
        self._stop.set()
        self._drop_socket()

    def expected(self, tag):
        with self._mu:
            return dict(self.sent[tag])

    # internals
    def _connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        body = _utf8("MQTT") + bytes([4, 0x00]) + struct.pack("!H", 0) + _utf8(self.client_id)
        # flags 0x00: clean session 0 (the broker keeps our session); keep-alive 0 (none)
        s.sendall(bytes([0x10]) + _varint(len(body)) + body)
        head = _read_exact(s, 4)
        if head[0] != 0x20 or head[3] != 0:
            s.close()
            raise OSError(f"CONNACK refused: {head!r}")
        s.settimeout(5)
        return s

    def _drop_socket(self):
        s, self._sock = self._sock, None
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes its reader
            except OSError:
                pass
            s.close()

    def _run(self):
        due = {tag: time.monotonic() for tag in self.streams}
        while not self._stop.is_set():
            if self._sock is None or self._dead.is_set():
                if self._sock is not None:
                    self._drop_socket()
                    self.reconnects += 1
                try:
                    s = self._connect()
                except OSError as e:
                    self.error = str(e)
                    time.sleep(0.1)
                    continue
                self._gen += 1
                self._dead.clear()
                threading.Thread(target=self._reader, args=(s, self._gen), daemon=True).start()
                with self._mu:
                    resend = [bytes([p[0] | 0x08]) + p[1:] for _, _, p in self._inflight.values()]
                try:
                    if resend:
                        s.sendall(b"".join(resend))
                except OSError:
                    self._dead.set()
                self._sock = s
                now = time.monotonic()
                due = {tag: now for tag in self.streams}
                continue
            now = time.monotonic()
            out = []
            if self._generate.is_set():
                with self._mu:
                    for tag, topic in self.streams.items():
                        if due[tag] < now - 0.5:
                            due[tag] = now - 0.5  # no catch-up bursts after a pause
                        while due[tag] <= now and len(self._inflight) < self.max_inflight:
                            seq = len(self.sent[tag])
                            if self.limit is not None and seq >= self.limit:
                                break
                            pid = self._alloc_id()
                            body = self.payload(tag, seq, time.time_ns())
                            var = _utf8(topic) + struct.pack("!H", pid)
                            packet = bytes([0x32]) + _varint(len(var) + len(body)) + var + body
                            self.sent[tag][seq] = body
                            self._inflight[pid] = (tag, seq, packet)
                            out.append(packet)
                            due[tag] += 1.0 / self.rate
            if out:
                try:
                    self._sock.sendall(b"".join(out))
                except OSError:
                    self._dead.set()
                    continue
            time.sleep(0.005)

    def _alloc_id(self):
        while True:
            pid = self._next_id
            self._next_id = pid % 65535 + 1
            if pid not in self._inflight:
                return pid

    def _reader(self, s, gen):
        buf = b""
        try:
            while not self._stop.is_set():
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= 2:
                    # remaining length (PUBACK: 2); parse generally
                    mult, length, i = 1, 0, 1
                    while True:
                        if i >= len(buf):
                            length = None
                            break
                        b = buf[i]
                        length += (b & 0x7F) * mult
                        mult *= 128
                        i += 1
                        if not b & 0x80:
                            break
                    if length is None or len(buf) < i + length:
                        break
                    kind, body = buf[0] >> 4, buf[i:i + length]
                    buf = buf[i + length:]
                    if kind == 4:  # PUBACK
                        pid = struct.unpack("!H", body[:2])[0]
                        with self._mu:
                            entry = self._inflight.pop(pid, None)
                            if entry:
                                self.acked[entry[0]].add(entry[1])
        except OSError:
            pass
        if gen == self._gen:
            self._dead.set()


def _read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


# --- An independent Kafka reader -------------------------------------------------------------
class Rec:
    __slots__ = ("topic", "partition", "offset", "key", "value", "headers", "arrival_ns")

    def __init__(self, r, arrival_ns):
        self.topic, self.partition, self.offset = r.topic, r.partition, r.offset
        self.key, self.value = r.key, r.value or b""
        self.headers = [(k, v) for k, v in (r.headers or [])]
        self.arrival_ns = arrival_ns


class KafkaReader:
    """Reads the given topics' partitions from the beginning with kafka-python (not Sluice's
    client) on its own thread, continuously, and stamps each record with the wall time it
    arrived here, so that latency = arrival - the payload's sent_ns. Survives Kafka outages
    (kafka-python retries)."""

    def __init__(self, bootstrap, topics):
        self.bootstrap = bootstrap
        self.topics = dict(topics)  # topic -> partitions
        self._records = defaultdict(list)
        self._mu = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self.error = None

    def start(self):
        from kafka import KafkaConsumer, TopicPartition
        # Its connection errors during a Kafka outage are expected, not news.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        self._consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap.split(","), group_id=None,
            enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=20, request_timeout_ms=20000, reconnect_backoff_max_ms=500,
            max_poll_records=2000)
        self._consumer.assign([TopicPartition(t, p) for t, n in self.topics.items()
                               for p in range(n)])
        self._thread = threading.Thread(target=self._run, name="kafka-reader", daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            try:
                batch = self._consumer.poll(timeout_ms=50)
            except Exception as e:  # noqa: BLE001 -- reported, then retried
                self.error = repr(e)
                time.sleep(0.2)
                continue
            now = time.time_ns()
            with self._mu:
                for _, records in batch.items():
                    for r in records:
                        self._records[r.topic].append(Rec(r, now))

    def records(self, topic):
        with self._mu:
            return list(self._records[topic])

    def count(self, topic):
        with self._mu:
            return len(self._records[topic])

    def wait_for_all(self, topic, tag, expected_seqs, timeout, quiet_s=None):
        """Until every expected seq of `tag` is in `topic`; or, with `quiet_s`, until nothing
        new arrived in `topic` for that long once something did; or the timeout. No exception:
        the accounting reports what is missing. Returns whether all arrived."""
        want = set(expected_seqs)
        deadline = time.time() + timeout
        last, since = 0, time.time()
        while time.time() < deadline:
            records = self.records(topic)
            got = {p[1] for p in (parse_payload(r.value) for r in records) if p and p[0] == tag}
            if want <= got:
                return True
            if len(records) != last:
                last, since = len(records), time.time()
            elif quiet_s is not None and last > 0 and time.time() - since >= quiet_s:
                return False
            time.sleep(0.25)
        return False

    def wait_quiet(self, topic, quiet_s=3.0, timeout=60):
        """Until `topic` has records and received nothing new for `quiet_s` seconds."""
        last, since = 0, time.time()
        deadline = time.time() + timeout
        while time.time() < deadline:
            n = self.count(topic)
            if n != last:
                last, since = n, time.time()
            elif n > 0 and time.time() - since >= quiet_s:
                return n
            time.sleep(0.1)
        return self.count(topic)

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        try:
            self._consumer.close()
        except Exception:  # noqa: BLE001
            pass


# --- Accounting ------------------------------------------------------------------------------
class Account:
    """What reached Kafka for one route, compared with what the publisher generated."""

    def __init__(self, tag, sent, records):
        self.tag = tag
        self.sent = sent  # {seq: payload bytes}
        mine = []
        self.garbled = []
        self.foreign = 0
        for r in records:
            p = parse_payload(r.value)
            if p is None:
                self.garbled.append(r.value[:80])
                continue
            if p[0] != tag:
                self.foreign += 1
                continue
            if p[1] in sent and r.value != sent[p[1]]:
                self.garbled.append(r.value[:80])  # not counted as a delivery
                continue
            mine.append((p[1], r))
        counts = Counter(seq for seq, _ in mine)
        self.delivered = len(counts)
        self.lost = sorted(set(sent) - set(counts))
        self.unexpected = sorted(set(counts) - set(sent))
        self.duplicates = sum(c - 1 for c in counts.values())
        # Order per key: records of one key are in one partition; read them in offset order and
        # count first occurrences that come after a higher seq (a duplicate is not a reorder).
        self.reordered = 0
        by_key = defaultdict(list)
        for seq, r in mine:
            by_key[r.key].append((r.partition, r.offset, seq))
        for rows in by_key.values():
            seen, high = set(), -1
            for _, _, seq in sorted(rows):
                if seq in seen:
                    continue
                seen.add(seq)
                if seq < high:
                    self.reordered += 1
                high = max(high, seq)
        # Latency of each message's first arrival.
        first = {}
        for seq, r in mine:
            if seq not in first or r.arrival_ns < first[seq].arrival_ns:
                first[seq] = r
        lat = sorted((r.arrival_ns - parse_payload(r.value)[2]) / 1e9 for r in first.values()
                     if parse_payload(r.value)[2] is not None)
        self.max_latency = lat[-1] if lat else None
        self.p99_latency = lat[int(len(lat) * 0.99)] if lat else None
        self.late = sum(1 for x in lat if x > 1.0)

    def summary(self):
        lat = ("-" if self.max_latency is None else
               f"max {self.max_latency:.3f} s, p99 {self.p99_latency:.3f} s, >1 s: {self.late}")
        lost = f"{len(self.lost)}" + (f" (first {self.lost[:10]})" if self.lost else "")
        return (f"route {self.tag}: sent {len(self.sent)}, delivered {self.delivered}, "
                f"lost {lost}, duplicated {self.duplicates}, reordered {self.reordered}, "
                f"garbled {len(self.garbled)}, unexpected {len(self.unexpected)}; latency {lat}")


def account(reader, topic, tag, sent):
    a = Account(tag, sent, reader.records(topic))
    print(a.summary())
    return a


# --- Spool segments --------------------------------------------------------------------------
def spool_dir(state_dir, route):
    return Path(state_dir) / "routes" / route / "spool"


def segments(state_dir, route):
    d = spool_dir(state_dir, route)
    return sorted(d.glob("*.seg")) if d.is_dir() else []


def find_in_spool(state_dir, route, needle):
    """(segment path, offset) of the first occurrence of `needle` (bytes) in the route's
    segments, or None."""
    for seg in segments(state_dir, route):
        data = seg.read_bytes()
        at = data.find(needle)
        if at >= 0:
            return seg, at
    return None


def spooled_markers(state_dir, route, tag, seqs):
    """How many of the messages (tag, seq) have their marker in the route's segments."""
    blob = b"".join(seg.read_bytes() for seg in segments(state_dir, route))
    return sum(1 for s in seqs if marker(tag, s).encode() in blob)


def flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x01]))


def truncate(path, size):
    os.truncate(path, size)


# --- Things that stand for a hanging Kafka ---------------------------------------------------
class BlackHole:
    """A TCP listener that accepts every connection and never sends a byte: a Kafka bootstrap
    that hangs (every request waits for its timeout), unlike a free port, which refuses."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)  # read nothing, answer nothing, keep it open
            except (socket.timeout, OSError):
                continue

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        for c in self.conns:
            c.close()
        self.sock.close()

"""Hot reload with the real binary, mosquitto and the mock Kafka cluster, under continuous QoS 1
traffic with sequenced payloads counted per message: an untouched route has no gap and no
loss, a changed route loses nothing and switches, a removed route delivers what it had, an
added one starts, an invalid change is rejected while the old version keeps flowing; what a
memory buffer's old version could not deliver passes to the new one; every
trigger (inotify, SIGHUP, `sluice reload`, POST /api/reload); 50 reloads leak nothing; a
plugin library updated on disk while traffic flows."""
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from harness import (FIXTURES, SLUICE, SluiceProcess, free_port, manifest, proc_status, require,
                     route, wait_for)

TOKEN = "reload-test-token"


TRAFFIC = []  # stopped by the fixture below when a test fails before it stops its own


@pytest.fixture(autouse=True)
def no_traffic_left_behind():
    yield
    while TRAFFIC:
        t = TRAFFIC.pop()
        t.running = False
        for p in t.procs.values():
            p.kill()
            p.wait()


class Traffic:
    """Publishes {"seq": n} to each topic at `rate` messages per second (QoS 1), each topic
    from its own mosquitto_pub, until stop(); counts what was published."""

    def __init__(self, broker, topics, rate=100):
        require("mosquitto_pub", "mosquitto-clients")
        self.broker = broker
        self.rate = rate
        self.sent = {t: 0 for t in topics}
        self.procs = {}
        self.running = True
        self.lock = threading.Lock()
        for t in topics:
            self.add(t)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        TRAFFIC.append(self)

    def add(self, topic):
        with self.lock:
            self.sent.setdefault(topic, 0)
            self.procs[topic] = subprocess.Popen(
                ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.port), "-t", topic,
                 "-q", "1", "-V", "mqttv5", "-l"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                text=True)

    def _run(self):
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while self.running:
            with self.lock:
                for topic, p in self.procs.items():
                    p.stdin.write(json.dumps({"seq": self.sent[topic]}) + "\n")
                    p.stdin.flush()
                    self.sent[topic] += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def stop_topic(self, topic):
        with self.lock:
            p = self.procs.pop(topic)
        p.stdin.close()
        assert p.wait(timeout=30) == 0

    def stop(self):
        self.running = False
        self.thread.join()
        for topic in list(self.procs):
            self.stop_topic(topic)
        return dict(self.sent)


def seqs(records):
    return [json.loads(r.value)["seq"] for r in records]


def http(port, method, path, token=TOKEN, timeout=60):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def config(tmp_path, port):
    token_file = tmp_path / "admin.token"
    token_file.write_text(TOKEN + "\n")
    os.chmod(token_file, 0o600)
    cfg = tmp_path / "sluice.yaml"
    text = f"admin: {{ listen: 127.0.0.1:{port}, token_file: {token_file} }}\n"
    cfg.write_text(text)
    return cfg


def replace(path, text):
    """As editors and deploy tools do: write a temporary file beside, then rename it over."""
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def routes_by_name(port):
    status, body = http(port, "GET", "/api/routes")
    assert status == 200, body
    return {r["name"]: r for r in json.loads(body)}


def last_reload(port):
    status, body = http(port, "GET", "/api/reload")
    return json.loads(body) if status == 200 else None


def changes(report):
    return {r["route"]: r["change"] for r in report["routes"] if r["route"]}


def max_gap_ms(records):
    ts = sorted(r.ts for r in records)
    return max((b - a for a, b in zip(ts, ts[1:])), default=0)


def test_reload_changes_only_what_changed_and_loses_nothing(tmp_path, mosquitto, kafka):
    url, bootstrap = mosquitto.url, kafka.bootstrap
    routes = tmp_path / "routes"
    routes.mkdir()
    files = {}
    # b, the route that changes, has a disk spool: the new version takes it over.
    disk = "buffer: { type: disk }\n"
    for name in ("a", "b", "c", "e"):
        files[name] = manifest(routes, name, route(name, url, [f"rl/{name}"], bootstrap,
                                                   f"t.{name}", extra=disk if name == "b" else ""))
    port = free_port()
    cfg = config(tmp_path, port)
    sluice = SluiceProcess(tmp_path, routes, tmp_path / "state", extra_args=["-c", str(cfg)])
    sluice.start()
    sluice.wait_log(lambda t: t.count("; receiving") >= 4, 30, "4 routes to subscribe")

    traffic = Traffic(mosquitto, ["rl/a", "rl/b", "rl/c", "rl/e"])
    time.sleep(1.5)
    reload_at = time.time() * 1000
    # One burst of edits, seen by inotify: b changes its Kafka topic, d is added, e removed,
    # c gets an option that does not exist.
    replace(files["b"], route("b", url, ["rl/b"], bootstrap, "t.b2", extra=disk))
    manifest(routes, "d", route("d", url, ["rl/d"], bootstrap, "t.d"))
    files["e"].unlink()
    replace(files["c"], route("c", url, ["rl/c"], bootstrap, "t.c", extra="batch_sizee: 3\n"))
    # Usually one reload; on a loaded machine the burst may be split in two. Either way, the
    # routes end up as the files say, and each route's change is logged once.
    def settled():
        listed = routes_by_name(port)
        return (sorted(listed) == ["a", "b", "c", "d"] and
                (listed["c"]["last_reload"] or {}).get("change") == "rejected" and
                (listed["b"]["last_reload"] or {}).get("change") == "changed")
    wait_for(settled, 15, "the reload triggered by the file changes")
    report = last_reload(port)
    assert report["trigger"] == "file change", report
    assert report["result"] == "partial", report
    rejected = [r for r in report["routes"] if r["route"] == "c"][0]
    assert rejected["change"] == "rejected" and rejected["kept_running"] is True, report
    assert any("batch_sizee" in e and "c.yaml" in e for e in rejected["errors"]), rejected
    log = sluice.log_text()
    for name, change in (("b", "changed"), ("d", "added"), ("e", "removed")):
        assert log.count(f"[route {name}] reload: {change} (") == 1, (name, log[-4000:])
    assert log.count("[route c] reload: change rejected, the running version keeps running") >= 1
    assert "[route a] reload:" not in log
    if changes(report) == {"a": "unchanged", "b": "changed", "c": "rejected", "d": "added",
                           "e": "removed"}:
        print(f"reload applied in {report['duration_ms']} ms")

    listed = routes_by_name(port)
    assert sorted(listed) == ["a", "b", "c", "d"]
    assert listed["c"]["last_reload"]["change"] == "rejected"
    assert any("batch_sizee" in e for e in listed["c"]["last_reload"]["errors"])
    assert listed["b"]["last_reload"]["change"] == "changed"
    assert listed["b"]["buffer"]["durable"] is True
    assert listed["b"]["counters"]["restarts"] == 0, listed["b"]  # the spool was free at once
    assert listed["a"]["last_reload"]["change"] == "unchanged"
    assert listed["d"]["file"].endswith("d.yaml")
    status, metrics = http(port, "GET", "/metrics")
    assert 'sluice_reloads_total{result="partial"} 1' in metrics, metrics
    assert status == 200 and "sluice_reload_last_duration_seconds" in metrics
    # /healthz answered all along (it is served apart from the reload).
    assert http(port, "GET", "/healthz", token=None) == (200, "ok\n")

    # d receives once subscribed.
    sluice.wait_log(lambda t: any("route d >" in line and "; receiving" in line
                                  for line in t.splitlines()), 15, "route d to subscribe")
    traffic.add("rl/d")
    time.sleep(1.0)

    # A file that is not YAML at all rejects every route in it; the old c keeps flowing.
    replace(files["c"], "route: c\nsource: [unclosed\n")
    result = subprocess.run([SLUICE, "reload", "-c", str(cfg)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1, result
    cli_report = json.loads(result.stdout)
    assert cli_report["trigger"] in ("api", "file change, api", "api, file change")
    assert changes(cli_report)["c"] == "rejected", cli_report
    assert any("malformed YAML" in e for r in cli_report["routes"] if r["route"] == "c"
               for e in r["errors"]), cli_report
    time.sleep(0.5)

    # Put c back as it was: unchanged, not restarted. SIGHUP is a trigger too.
    replace(files["c"], route("c", url, ["rl/c"], bootstrap, "t.c"))
    sluice.proc.send_signal(signal.SIGHUP)
    sluice.wait_log(lambda t: re.search(r"reload \([^)]*SIGHUP[^)]*\) applied", t), 15,
                    "the SIGHUP reload")
    result = subprocess.run([SLUICE, "reload", "-c", str(cfg)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result
    assert json.loads(result.stdout)["result"] == "applied"
    assert changes(json.loads(result.stdout))["c"] == "unchanged"
    time.sleep(1.0)

    sent = traffic.stop()
    rc, _ = sluice.terminate(timeout=60)
    log = sluice.log_text()
    assert rc == 0, log[-6000:]

    got = {t: kafka.read(t, expect=0) for t in ("t.a", "t.b", "t.b2", "t.c", "t.d", "t.e")}
    # Untouched and rejected routes: every message, and no pause in the untouched one.
    for name in ("a", "c"):
        assert set(seqs(got[f"t.{name}"])) == set(range(sent[f"rl/{name}"])), name
    during = [r for r in got["t.a"] if reload_at - 1000 <= r.ts <= reload_at + 3000]
    print(f"untouched route: largest gap between records around the reload "
          f"{max_gap_ms(during)} ms")
    assert max_gap_ms(during) < 500, "the untouched route paused during the reload"
    # Changed: nothing lost across the two topics, and it switched.
    old, new = seqs(got["t.b"]), seqs(got["t.b2"])
    assert new, "the changed route's new version delivered nothing"
    assert set(old) | set(new) == set(range(sent["rl/b"]))
    assert min(new) <= max(old) + 1
    gap = min(r.ts for r in got["t.b2"]) - max(r.ts for r in got["t.b"])
    print(f"changed route: gap between the old version's last message and the new one's "
          f"first {gap} ms")
    # Removed: what it took is all in Kafka, in order, from the first (exit 0: none undelivered).
    removed = sorted(set(seqs(got["t.e"])))
    assert removed == list(range(len(removed))) and removed
    # Added: everything published once it had subscribed.
    assert set(seqs(got["t.d"])) == set(range(sent["rl/d"]))


def test_fifty_reloads_leak_nothing(tmp_path, mosquitto, kafka):
    routes = tmp_path / "routes"
    routes.mkdir()
    url, bootstrap = mosquitto.url, kafka.bootstrap
    manifest(routes, "steady", route("steady", url, ["lk/steady"], bootstrap, "t.steady"))
    flip = manifest(routes, "flip", route("flip", url, ["lk/flip"], bootstrap, "t.flip0"))
    port = free_port()
    cfg = config(tmp_path, port)
    env = {}
    if "ASAN_OPTIONS" in os.environ:
        # Freed memory would sit in ASan's quarantine and look like a leak in the RSS.
        env["ASAN_OPTIONS"] = os.environ["ASAN_OPTIONS"] + ":quarantine_size_mb=0"
    sluice = SluiceProcess(tmp_path, routes, None, env=env, extra_args=["-c", str(cfg)])
    sluice.start()
    sluice.wait_log(lambda t: t.count("; receiving") >= 2, 30, "2 routes to subscribe")
    traffic = Traffic(mosquitto, ["lk/steady", "lk/flip"], rate=50)
    pid = sluice.proc.pid

    def figures():
        fds = os.listdir(f"/proc/{pid}/fd")
        sockets = sum(1 for f in fds if os.readlink(f"/proc/{pid}/fd/{f}").startswith("socket:"))
        st = proc_status(pid)
        return {"threads": int(st["Threads"]), "fds": len(fds), "sockets": sockets,
                "rss_kib": int(st["VmRSS"].split()[0])}

    def one_reload(i):
        # The file watch may apply the change before the request does: either is a reload
        # that replaced the route; the request's own then finds nothing to do.
        before = routes_by_name(port)["flip"]["config_hash"]
        replace(flip, route("flip", url, ["lk/flip"], bootstrap, f"t.flip{i % 2}"))
        status, body = http(port, "POST", "/api/reload")
        assert status == 200, body
        assert changes(json.loads(body))["steady"] == "unchanged", body
        wait_for(lambda: routes_by_name(port)["flip"]["config_hash"] != before, 10,
                 "the changed route to be replaced")

    for i in range(1, 6):  # warm-up: allocator arenas, the first producer of each topic
        one_reload(i)
    time.sleep(1.0)
    base = figures()
    t0 = time.monotonic()
    for i in range(6, 56):
        one_reload(i)
    took = time.monotonic() - t0
    print(f"50 reloads in {took:.1f} s")
    assert took < 10 * 3, "50 reloads took far longer than 10 s"
    # Let the last old versions' threads end.
    time.sleep(1.5)
    after = wait_for(lambda: (lambda f: f if f["threads"] <= base["threads"] and
                              f["fds"] <= base["fds"] else None)(figures()), 10,
                     f"threads and fds back to {base}")
    print(f"before {base}, after {after}")
    assert after["sockets"] <= base["sockets"]
    assert after["rss_kib"] - base["rss_kib"] < 16 * 1024, (base, after)
    status, metrics = http(port, "GET", "/metrics")
    applied = [line for line in metrics.splitlines()
               if line.startswith('sluice_reloads_total{result="applied"}')]
    assert applied and float(applied[0].split()[1]) >= 55, applied

    sent = traffic.stop()
    rc, _ = sluice.terminate(timeout=60)
    assert rc == 0, sluice.log_text()[-6000:]
    got = kafka.read("t.steady", expect=sent["lk/steady"])
    assert set(seqs(got)) == set(range(sent["lk/steady"]))
    flipped = kafka.read("t.flip0", expect=0) + kafka.read("t.flip1", expect=0)
    assert set(seqs(flipped)) == set(range(sent["lk/flip"]))


def test_plugin_library_update_while_traffic_flows(tmp_path, mosquitto, kafka):
    # A plugin directory of our own with version 1 of a transform; the shipped plugins beside.
    mine = tmp_path / "my-plugins" / "version-tag"
    mine.mkdir(parents=True)
    for f in ("sluice-version-tag.so", "plugin.yaml"):
        shutil.copy(FIXTURES / "version-tag-1" / f, mine / f)
    routes = tmp_path / "routes"
    routes.mkdir()
    tag = "  - version-tag: {}\n"
    manifest(routes, "v", route("v", mosquitto.url, ["vt/x"], kafka.bootstrap, "t.v",
                                transforms=tag))
    port = free_port()
    cfg = config(tmp_path, port)
    sluice = SluiceProcess(tmp_path, routes, None,
                           extra_args=["-c", str(cfg), "--plugins", str(mine.parent)])
    sluice.start()
    sluice.wait_log(lambda t: "; receiving" in t, 30, "the route to subscribe")
    traffic = Traffic(mosquitto, ["vt/x"])
    time.sleep(1.0)

    # The new version, dropped in the way a package manager does: beside, then renamed over.
    for f in ("sluice-version-tag.so", "plugin.yaml"):
        shutil.copy(FIXTURES / "version-tag-2" / f, mine / (f + ".new"))
        os.replace(mine / (f + ".new"), mine / f)
    status, body = http(port, "POST", "/api/reload")
    assert status == 200, body
    assert changes(json.loads(body)) == {"v": "changed"}, body
    plugins = {p["id"]: p["version"] for p in routes_by_name(port)["v"]["plugins"]}
    assert plugins["version-tag"] == "2.0.0"
    time.sleep(1.0)

    sent = traffic.stop()
    rc, _ = sluice.terminate(timeout=60)
    assert rc == 0, sluice.log_text()[-6000:]
    records = kafka.read("t.v", expect=sent["vt/x"])
    assert set(seqs(records)) == set(range(sent["vt/x"]))
    tagged = {"1.0.0": [], "2.0.0": []}
    for r in records:
        tagged[dict((k, v.decode()) for k, v in r.headers)["plugin-version"]].append(
            json.loads(r.value)["seq"])
    # Version 1 until the switch, version 2 after it (a redelivered message may overlap).
    assert tagged["1.0.0"] and tagged["2.0.0"], {k: len(v) for k, v in tagged.items()}
    assert max(tagged["1.0.0"]) <= min(tagged["2.0.0"]) + 5


def test_memory_buffer_leftovers_pass_to_the_new_version(tmp_path, mosquitto, kafka):
    # The usual reason to change a route: its sink cannot deliver (here: nothing listens at
    # its broker address). Its memory buffer fills; the fix is reloaded; what the old version
    # held (transformed batches in flight, the unread rest) reaches Kafka through the new one.
    routes = tmp_path / "routes"
    routes.mkdir()
    url = mosquitto.url
    dead = f"127.0.0.1:{free_port()}"
    old_tag = "  - json-transform: { set: { via: old } }\n"
    new_tag = "  - json-transform: { keep: [seq] }\n"
    opts = "drain_timeout_ms: 1000\n"
    h = manifest(routes, "h", route("h", url, ["ho/h"], dead, "t.h", transforms=old_tag,
                                    extra=opts))
    port = free_port()
    cfg = config(tmp_path, port)
    sluice = SluiceProcess(tmp_path, routes, None, extra_args=["-c", str(cfg)])
    sluice.start()
    sluice.wait_log(lambda t: "; receiving" in t, 30, "the route to subscribe")
    traffic = Traffic(mosquitto, ["ho/h"])
    wait_for(lambda: routes_by_name(port)["h"]["counters"]["received"] >= 100, 15,
             "the route to take messages it cannot deliver")
    # A second transform: what the old version transformed must not go through the new one.
    replace(h, route("h", url, ["ho/h"], kafka.bootstrap, "t.h", transforms=new_tag,
                     extra=opts))
    status, body = http(port, "POST", "/api/reload")
    assert status == 200, body
    assert changes(json.loads(body)) == {"h": "changed"}, body
    wait_for(lambda: routes_by_name(port)["h"]["counters"]["taken_over"] > 0, 15,
             "the new version to take over what the old one held")
    time.sleep(1.0)

    sent = traffic.stop()
    rc, _ = sluice.terminate(timeout=60)
    log = sluice.log_text()
    assert rc == 0, log[-6000:]
    assert "undelivered messages are handed to the route's new version" in log
    records = kafka.read("t.h", expect=sent["ho/h"])
    assert set(seqs(records)) == set(range(sent["ho/h"]))
    values = [json.loads(r.value) for r in records]
    # Transformed by the old version, sent by the new one as they were; the rest transformed
    # by the new one only.
    assert any(v.get("via") == "old" for v in values), values[:5]
    assert all(set(v) in ({"seq"}, {"seq", "via"}) for v in values)

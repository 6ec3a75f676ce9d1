"""The admin HTTP endpoints with the real binary, mosquitto and the mock Kafka cluster: health,
readiness, Prometheus metrics checked against what was sent, the routes' JSON, and the bearer
token."""
import json
import os
import re
import subprocess
import urllib.error
import urllib.request

from harness import SLUICE, PLUGINS, SluiceProcess, free_port, manifest, route, wait_for

TOKEN = "s3cret-admin-token"


def get(port, path, token=None):
    """(status, body) of GET http://127.0.0.1:port/path."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except urllib.error.URLError:
        return 0, ""  # not listening (yet)


def metric(text, name, **labels):
    """The value of one sample, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if m and m.group(1) == name and (m.group(2) or "") == ("{" + want + "}" if want else ""):
            return float(m.group(3))
    return None


def samples(text, name):
    """Every sample of `name`: [(labels as a dict, value)]."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if m and m.group(1) == name:
            labels = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            out.append((labels, float(m.group(3))))
    return out


def plugin_metric(text, name, route, stage, plugin):
    """The one sample of a plugin metric for this route and stage, whatever its own label."""
    found = [v for labels, v in samples(text, name)
             if labels.get("route") == route and labels.get("stage") == stage and
             labels.get("plugin") == plugin]
    assert len(found) <= 1, found
    return found[0] if found else None


def write_config(tmp_path, listen, token=True):
    token_file = tmp_path / "admin.token"
    token_file.write_text(TOKEN + "\n")
    os.chmod(token_file, 0o600)
    admin = f"listen: {listen}" + (f", token_file: {token_file}" if token else "")
    cfg = tmp_path / "sluice.yaml"
    cfg.write_text(f"admin: {{ {admin} }}\n")
    return cfg


def test_metrics_and_routes_match_what_was_sent(tmp_path, mosquitto, kafka):
    routes = tmp_path / "routes"
    routes.mkdir()
    manifest(routes, "adm", route("adm", mosquitto.url, ["adm/#"], kafka.bootstrap, "t.adm"))
    port = free_port()
    sluice = SluiceProcess(tmp_path, routes, None,
                           extra_args=["-c", str(write_config(tmp_path, f"127.0.0.1:{port}"))])
    sluice.start()
    sluice.wait_log(lambda t: "; receiving" in t, 30, "the route to subscribe")
    assert f"admin HTTP on http://127.0.0.1:{port} (bearer token required)" in sluice.log_text()

    # Health and readiness need no token; everything else does.
    assert get(port, "/healthz") == (200, "ok\n")
    assert get(port, "/readyz")[0] == 200
    status, body = get(port, "/metrics")
    assert status == 401, body
    assert get(port, "/api/routes", token="wrong")[0] == 401

    sent = [json.dumps({"seq": i}) for i in range(50)]
    mosquitto.publish("adm/dev", sent, qos=1)
    assert len(kafka.read("t.adm", expect=50)) == 50

    def counted():
        s, text = get(port, "/metrics", token=TOKEN)
        assert s == 200, text
        return (metric(text, "sluice_route_messages_received_total", route="adm") == 50 and
                metric(text, "sluice_route_messages_delivered_total", route="adm") == 50)
    wait_for(counted, 10, "the metrics to count 50 messages in and out")
    _, text = get(port, "/metrics", token=TOKEN)
    assert "# TYPE sluice_route_messages_received_total counter" in text
    assert metric(text, "sluice_route_state", route="adm", state="running") == 1
    assert metric(text, "sluice_route_state", route="adm", state="failed") == 0
    assert metric(text, "sluice_route_messages_dropped_total", route="adm", reason="full") == 0
    assert metric(text, "sluice_route_buffer_messages", route="adm") == 0
    payload_bytes = sum(len(p.encode()) for p in sent)
    assert metric(text, "sluice_route_received_bytes_total", route="adm") == payload_bytes
    assert metric(text, "sluice_route_delivered_bytes_total", route="adm") == payload_bytes
    assert "# TYPE sluice_route_delivery_latency_seconds histogram" in text
    assert metric(text, "sluice_route_delivery_latency_seconds_count", route="adm") == 50
    assert metric(text, "sluice_route_delivery_latency_seconds_bucket", route="adm",
                  le="+Inf") == 50
    assert metric(text, "sluice_route_delivery_latency_seconds_sum", route="adm") > 0
    assert metric(text, "sluice_process_threads") > 0
    assert metric(text, "sluice_process_resident_memory_bytes") > 1 << 20
    assert metric(text, "sluice_process_open_fds") > 3
    # The plugins' own figures (ABI 1.4), labelled with route, stage and plugin.
    assert "# TYPE sluice_mqtt_connects_total counter" in text
    assert plugin_metric(text, "sluice_mqtt_connects_total", "adm", "source", "mqtt-source") == 1
    assert plugin_metric(text, "sluice_mqtt_connected", "adm", "source", "mqtt-source") == 1
    assert plugin_metric(text, "sluice_mqtt_connection_losses_total", "adm", "source",
                         "mqtt-source") == 0
    assert plugin_metric(text, "sluice_kafka_in_flight_messages", "adm", "sink", "kafka-sink") == 0
    assert plugin_metric(text, "sluice_kafka_producer_queue_messages", "adm", "sink",
                         "kafka-sink") is not None
    assert samples(text, "sluice_kafka_delivery_errors_total") == []

    status, body = get(port, "/api/routes", token=TOKEN)
    assert status == 200, body
    routes_json = json.loads(body)
    assert [r["name"] for r in routes_json] == ["adm"]
    r = routes_json[0]
    assert r["state"] == "running"
    assert r["file"].endswith("adm.yaml")
    assert re.fullmatch(r"[0-9a-f]{16}", r["config_hash"])
    assert {p["id"] for p in r["plugins"]} == {"mqtt-source", "kafka-sink"}
    assert all(p["version"] for p in r["plugins"])
    assert r["counters"]["received"] == 50 and r["counters"]["delivered"] == 50
    assert r["buffer"]["messages"] == 0
    assert r["last_error"] is None

    status, body = get(port, "/api/routes/adm", token=TOKEN)
    assert status == 200 and json.loads(body)["name"] == "adm"
    own = {m["name"]: m for m in json.loads(body)["plugin_metrics"]}
    assert own["sluice_mqtt_connected"]["value"] == 1
    assert own["sluice_mqtt_connected"]["stage"] == "source"
    assert own["sluice_kafka_in_flight_messages"]["plugin"] == "kafka-sink"
    status, body = get(port, "/api/routes/nope", token=TOKEN)
    assert status == 404 and "no route named 'nope'" in json.loads(body)["error"]
    assert get(port, "/nowhere", token=TOKEN)[0] == 404

    rc, _ = sluice.terminate(30)
    assert rc == 0, sluice.log_text()


def test_a_stopped_broker_shows_in_readyz_and_last_error(tmp_path, kafka):
    # No broker at all: the route runs degraded, /readyz says so, /api/routes has the error.
    routes = tmp_path / "routes"
    routes.mkdir()
    dead = f"tcp://127.0.0.1:{free_port()}"
    manifest(routes, "away", route("away", dead, ["a/#"], kafka.bootstrap, "t.away"))
    port = free_port()
    sluice = SluiceProcess(tmp_path, routes, None,
                           extra_args=["-c", str(write_config(tmp_path, f"127.0.0.1:{port}"))])
    sluice.start()

    def not_ready():
        status, body = get(port, "/readyz")
        return status == 503 and "away: degraded" in body
    wait_for(not_ready, 20, "/readyz to report the degraded route")
    status, body = get(port, "/api/routes/away", token=TOKEN)
    r = json.loads(body)
    assert r["state"] == "degraded"
    assert r["last_error"] is not None and "cannot connect" in r["last_error"]["message"]
    assert r["last_error"]["time_ms"] > 0
    _, text = get(port, "/metrics", token=TOKEN)
    assert plugin_metric(text, "sluice_mqtt_connected", "away", "source", "mqtt-source") == 0
    assert plugin_metric(text, "sluice_mqtt_connects_total", "away", "source", "mqtt-source") == 0
    rc, _ = sluice.terminate(30)
    assert rc == 0, sluice.log_text()


def test_a_non_loopback_listener_needs_a_token(tmp_path):
    routes = tmp_path / "routes"
    routes.mkdir()
    cfg = write_config(tmp_path, f"0.0.0.0:{free_port()}", token=False)
    r = subprocess.run([SLUICE, "check", "-c", str(cfg), "--plugins", PLUGINS,
                        "--routes", str(routes)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "admin > listen" in r.stdout + r.stderr
    assert "not a loopback address" in r.stdout + r.stderr


def test_a_token_file_readable_by_others_is_refused(tmp_path, kafka):
    routes = tmp_path / "routes"
    routes.mkdir()
    manifest(routes, "r", route("r", f"tcp://127.0.0.1:{free_port()}", ["a/#"], kafka.bootstrap,
                                "t.r"))
    cfg = write_config(tmp_path, f"127.0.0.1:{free_port()}")
    os.chmod(tmp_path / "admin.token", 0o644)
    r = subprocess.run([SLUICE, "run", "-c", str(cfg), "--plugins", PLUGINS,
                        "--routes", str(routes)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "readable or writable by others" in r.stdout + r.stderr

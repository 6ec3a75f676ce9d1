"""The real `sluice` binary, driven as an operator would: exit codes, messages, output files."""
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

SLUICE = os.environ["SLUICE_BIN"]
PLUGINS = os.environ["SLUICE_PLUGIN_DIR"]
REPO = Path(os.environ["SLUICE_REPO"])
DATA = Path(os.environ["SLUICE_TEST_DATA"])


def sluice(*args, env=None, timeout=60, cwd=None):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([SLUICE, *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=cwd)


def with_plugins(*args):
    return ("--plugins", PLUGINS, *args)


def test_version_and_help():
    r = sluice("version")
    assert r.returncode == 0
    assert re.match(r"sluice \d+\.\d+\.\d+ \(plugin ABI \d+\.\d+\)", r.stdout)
    for cmd in (["--help"], ["run", "--help"], ["check", "--help"], ["plugins", "--help"]):
        r = sluice(*cmd)
        assert r.returncode == 0, cmd
        assert "Usage" in r.stdout, cmd


def test_bad_log_options_are_refused():
    r = sluice("check", *with_plugins("--log-level", "loud"))
    assert r.returncode == 1
    assert "--log-level: 'loud' is not one of: trace, debug, info, warn, error" in r.stderr
    r = sluice("check", *with_plugins("--log-format", "xml"))
    assert r.returncode == 1
    assert "--log-format: 'xml' is not one of: text, json" in r.stderr


def test_usage_errors_exit_2():
    assert sluice().returncode == 2
    r = sluice("frobnicate")
    assert r.returncode == 2
    assert "unknown command 'frobnicate'" in r.stderr
    r = sluice("run", "--bogus")
    assert r.returncode == 2
    assert "unknown option '--bogus'" in r.stderr


def test_plugins_list():
    r = sluice("plugins", "list", *with_plugins())
    assert r.returncode == 0, r.stderr
    ids = [line.split()[0] for line in r.stdout.splitlines()]
    assert {"test-source", "json-transform", "file-sink"} <= set(ids)


def test_describe_prints_every_option_with_type_default_and_description():
    spec = json.loads(sluice("plugins", "describe", "json-transform", "--format", "json",
                             *with_plugins()).stdout)
    assert spec["id"] == "json-transform" and spec["kind"] == "transform"
    text = sluice("plugins", "describe", "json-transform", *with_plugins()).stdout
    assert len(spec["options"]) >= 9
    for option in spec["options"]:
        line = next((l for l in text.splitlines() if l.startswith("  " + option["name"] + "  ")),
                    None)
        assert line is not None, option["name"]
        assert option["type"] in line
        if "default" in option:
            assert "default: " + option["default"] in line
        assert option["description"] in text
    markdown = sluice("plugins", "describe", "json-transform", "--format", "markdown",
                      *with_plugins()).stdout
    assert "| `parse` | enum: json \\| number \\| string \\| csv | `json` |" in markdown


def test_describe_unknown_plugin_lists_known():
    r = sluice("plugins", "describe", "nope", *with_plugins())
    assert r.returncode == 1
    known = re.search(r"unknown plugin 'nope' \(known: ([^)]*)\)", r.stderr)
    assert known, r.stderr
    assert {"file-sink", "json-transform", "test-source"} <= set(known.group(1).split(", "))


FIVE_MISTAKES = """\
route: five-mistakes
source:
  test-source:
    generate: lots
    colour: red
transforms:
  - json-transform:
      parse: yaml
sink:
  file-sink:
    path: "{{topic"
    fsync: maybe
"""


def test_check_reports_five_mistakes_with_positions(tmp_path):
    manifest = tmp_path / "five.yaml"
    manifest.write_text(FIVE_MISTAKES)
    r = sluice("check", *with_plugins("--routes", str(manifest)))
    assert r.returncode == 1
    errors = [l for l in r.stderr.splitlines() if l.startswith(str(manifest) + ":")]
    assert len(errors) == 5, r.stderr
    expected = [
        ":4:15: route five-mistakes > source test-source > generate: expected an integer",
        ":5:5: route five-mistakes > source test-source > colour: unknown key 'colour'",
        ":8:14: route five-mistakes > transforms[0] json-transform > parse: 'yaml' is not one of",
        ":11:11: route five-mistakes > sink file-sink > path: bad template",
        ":12:12: route five-mistakes > sink file-sink > fsync: expected true or false",
    ]
    for want in expected:
        assert any(want in e for e in errors), (want, errors)
    assert "5 errors in 1 manifest file(s)" in r.stderr


def test_check_valid_manifests(tmp_path):
    r = sluice("check", *with_plugins("--routes", str(REPO / "manifests" / "file-demo")))
    assert r.returncode == 0, r.stderr
    assert "ok: 2 route(s)" in r.stdout
    assert "occupancy-file: test-source -> json-transform -> file-sink" in r.stdout


def test_host_config_file_and_env_interpolation(tmp_path):
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "r.yaml").write_text(
        "route: gen\nsource: {test-source: {generate: 25}}\n"
        "sink: {file-sink: {path: \"${OUT}/gen.jsonl\"}}\n")
    (tmp_path / "sluice.yaml").write_text(
        f"plugins: [{PLUGINS}]\nroutes: [routes]\nlog: {{level: warn, format: json}}\n")
    r = sluice("run", "-c", str(tmp_path / "sluice.yaml"), env={"OUT": str(tmp_path / "out")})
    assert r.returncode == 0, r.stderr
    assert len((tmp_path / "out" / "gen.jsonl").read_text().splitlines()) == 25
    for line in r.stderr.splitlines():
        json.loads(line)  # json log format: every line is a JSON object
    r = sluice("check", "-c", str(tmp_path / "sluice.yaml"))
    assert r.returncode == 1
    assert "environment variable 'OUT' is not set" in r.stderr


def test_invalid_config_starts_nothing(tmp_path):
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(FIVE_MISTAKES + "---\nroute: fine\nsource: {test-source: {generate: 5}}\n"
                        f"sink: {{file-sink: {{path: \"{tmp_path}/fine.jsonl\"}}}}\n")
    r = sluice("run", *with_plugins("--routes", str(manifest)))
    assert r.returncode == 1
    assert not (tmp_path / "fine.jsonl").exists()


def test_file_demo_end_to_end(tmp_path):
    if not DATA.exists():
        pytest.fail(f"the data set is missing: {DATA} (the checkout needs ../shared/data)")
    r = sluice("run", *with_plugins("--routes", str(REPO / "manifests" / "file-demo")),
               env={"DEMO_OUT": str(tmp_path), "OCCUPANCY_CSV": str(DATA)}, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = len(DATA.read_text().splitlines()) - 1
    records = [json.loads(l) for l in (tmp_path / "occupancy-file.jsonl").read_text().splitlines()]
    assert len(records) == rows
    first = records[0]
    assert first["topic"] == "rooms/lab/edge-1" and first["key"] == "lab"
    assert first["payload"] == {"date": "2017/12/22", "time": "10:49:41", "s1_temp": 24.94,
                                "s1_light": 121, "s5_co2": 390, "occupancy": 1, "room": "lab",
                                "node": "edge-1"}
    co2 = (tmp_path / "co2-raw.jsonl").read_text().splitlines()
    assert len(co2) == rows and co2[0] == '{"co2":390}'


def test_a_closed_stderr_does_not_kill_sluice(tmp_path):
    manifest = tmp_path / "r.yaml"
    manifest.write_text("route: quiet\nsource: {test-source: {generate: 2000}}\n"
                        f"sink: {{file-sink: {{path: \"{tmp_path}/out.jsonl\"}}}}\n")
    p = subprocess.Popen([SLUICE, "run", *with_plugins("--routes", str(manifest))],
                         stderr=subprocess.PIPE)
    p.stderr.close()  # the log reader goes away: writes fail with EPIPE, no SIGPIPE death
    assert p.wait(timeout=30) == 0
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 2000


def test_sigterm_drains_and_exits_0(tmp_path):
    manifest = tmp_path / "endless.yaml"
    manifest.write_text("route: endless\nsource: {test-source: {generate: 100, repeat: 0}}\n"
                        f"sink: {{file-sink: {{path: \"{tmp_path}/endless.jsonl\"}}}}\n")
    p = subprocess.Popen([SLUICE, "run", *with_plugins("--routes", str(manifest))],
                         stderr=subprocess.PIPE, text=True)
    out = tmp_path / "endless.jsonl"
    deadline = time.time() + 20
    while time.time() < deadline and (not out.exists() or out.stat().st_size < 10000):
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    m = re.search(r"received (\d+), delivered (\d+), errors 0", err)
    assert m, err
    assert m.group(1) == m.group(2)
    assert len(out.read_text().splitlines()) == int(m.group(2))


def test_unwritable_path_fails_the_route_not_the_process(tmp_path):
    (tmp_path / "blocker").write_text("a file where a directory is needed")
    manifest = tmp_path / "r.yaml"
    manifest.write_text(
        "route: stuck\nsource: {test-source: {generate: 5}}\n"
        f"sink: {{file-sink: {{path: \"{tmp_path}/blocker/x.jsonl\"}}}}\n---\n"
        "route: fine\nsource: {test-source: {generate: 500, repeat: 0, interval_ms: 1}}\n"
        f"sink: {{file-sink: {{path: \"{tmp_path}/fine.jsonl\"}}}}\n")
    p = subprocess.Popen([SLUICE, "run", *with_plugins("--routes", str(manifest))],
                         stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    assert p.poll() is None, "the process must keep running"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    # The stuck route still held its 5 messages: they are reported, and the exit code says so.
    assert p.returncode == 1, err
    assert f"[route stuck] sink file-sink: cannot create directory '{tmp_path}/blocker'" in err
    assert "[route stuck] 5 messages were not delivered" in err
    assert "stopped with 5 messages not delivered" in err
    assert (tmp_path / "fine.jsonl").stat().st_size > 0


FIXTURES = Path(os.environ.get("SLUICE_TEST_FIXTURE_DIR", ""))


def kafka_route(properties):
    return ("route: k\nsource: {test-source: {generate: 1}}\n"
            "sink:\n  kafka-sink:\n    brokers: 127.0.0.1:9\n    topic: t\n"
            f"    properties: {json.dumps(properties)}\n")


def test_a_manifest_cannot_make_librdkafka_load_code_or_run_commands(tmp_path):
    canary = FIXTURES / "canary" / "sluice-canary.so"
    assert canary.exists(), f"the canary fixture library is missing: {canary}"
    marker = tmp_path / "canary-loaded"
    env = {"SLUICE_CANARY_FILE": str(marker)}
    manifest = tmp_path / "k.yaml"
    manifest.write_text(kafka_route({"plugin.library.paths": str(canary),
                                     "sasl.kerberos.kinit.cmd": "touch /tmp/pwned",
                                     "SSL.Key.Location": "/etc/shadow"}))
    for command in ("check", "run"):
        r = sluice(command, *with_plugins("--routes", str(manifest)), env=env)
        assert r.returncode == 1, r.stderr
        assert not marker.exists(), f"`sluice {command}` let librdkafka load the library"
        for prop, does in (("plugin.library.paths", "loads a library into the process"),
                           ("sasl.kerberos.kinit.cmd", "runs a shell command"),
                           ("SSL.Key.Location", "reads a file")):
            assert f"sink kafka-sink > properties.{prop}: '{prop}' {does}" in r.stderr, r.stderr
        assert "allow_properties" in r.stderr

    # A route cannot allow them itself.
    manifest.write_text(kafka_route({}).replace(
        "    properties: {}\n", "    allow_properties: [plugin.library.paths]\n"))
    r = sluice("check", *with_plugins("--routes", str(manifest)))
    assert r.returncode == 1
    assert ("k.yaml:7:5: route k > sink kafka-sink > allow_properties: 'allow_properties' can "
            "be set only by the operator, in the host config") in r.stderr, r.stderr

    # The operator can: then librdkafka gets the property (and loads the library, which is
    # what makes the refusals above meaningful).
    manifest.write_text(kafka_route({"plugin.library.paths": str(canary)}))
    cfg = tmp_path / "sluice.yaml"
    cfg.write_text(f"plugins: [{PLUGINS}]\nroutes: [{manifest}]\nplugin_settings:\n"
                   "  kafka-sink: { allow_properties: [plugin.library.paths] }\n")
    sluice("check", "-c", str(cfg), env=env)
    assert marker.exists(), "the allowed property did not reach librdkafka"

    # Mistakes in plugin_settings name the host config's line.
    cfg.write_text(f"plugins: [{PLUGINS}]\nroutes: [{manifest}]\nplugin_settings:\n"
                   "  kafka-sink: { topic: x }\n"
                   "  no-such-plugin: {}\n")
    r = sluice("check", "-c", str(cfg))
    assert r.returncode == 1
    assert (f"{cfg}:4:17: plugin_settings > kafka-sink > topic: 'topic' is a route option"
            in r.stderr), r.stderr
    assert (f"{cfg}:5:3: plugin_settings > no-such-plugin: unknown plugin 'no-such-plugin'"
            in r.stderr), r.stderr
    cfg.write_text(f"plugins: [{PLUGINS}]\nroutes: [{manifest}]\nplugin_settings:\n"
                   "  kafka-sink: { allow_properties: [linger.ms] }\n")
    r = sluice("check", "-c", str(cfg))
    assert r.returncode == 1
    assert "allow_properties: 'linger.ms' needs no allowing" in r.stderr, r.stderr


def mqtt_route(extra, url="tcp://127.0.0.1:9"):
    return ("route: m\nsource:\n  mqtt-source:\n"
            f"    url: [{url}]\n    topics: [a/#]\n{extra}"
            "sink: {file-sink: {path: /tmp/sluice-cli-test/m.jsonl}}\n")


def test_check_never_prints_a_secret_value(tmp_path):
    manifest = tmp_path / "m.yaml"
    # An interpolation mistake in a secret: the message says what is wrong, not the value.
    manifest.write_text(mqtt_route('    username: u\n    password: "hunter2${oops"\n'))
    r = sluice("check", *with_plugins("--routes", str(manifest)))
    assert r.returncode == 1
    assert "source mqtt-source > password: unclosed '${' in '***'" in r.stderr, r.stderr
    assert "hunter2" not in r.stderr + r.stdout


def test_check_output_cannot_drive_the_terminal(tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text('route: "x\\e]0;owned\\a\\e[2J"\n'
                        "source: {test-source: {generate: 1}}\n"
                        "sink: {file-sink: {path: /tmp/x.jsonl}}\n")
    r = sluice("check", *with_plugins("--routes", str(manifest)))
    assert r.returncode == 1
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr, repr(r.stderr)
    assert "x\\x1b]0;owned\\x07\\x1b[2J" in r.stderr, r.stderr


def test_non_regular_and_non_utf8_files_are_reported_not_read(tmp_path):
    r = sluice("check", "-c", "/dev/zero", *with_plugins(), timeout=20)
    assert r.returncode == 1
    assert "/dev/zero: host config is a character device, not a regular file: not read" in r.stderr
    fifo = tmp_path / "routes.yaml"
    os.mkfifo(fifo)
    r = sluice("check", *with_plugins("--routes", str(fifo)), timeout=20)
    assert r.returncode == 1
    assert f"{fifo}: route manifest is a FIFO, not a regular file: not read" in r.stderr, r.stderr
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("route: caf\u00e9\n".encode("latin-1"))
    r = sluice("check", *with_plugins("--routes", str(latin1)))
    assert r.returncode == 1
    assert (f"{latin1}:1:11: route manifest is not valid UTF-8 (byte 0xe9): save the file as "
            "UTF-8") in r.stderr, r.stderr


def test_a_tls_fail_over_to_plain_text_is_refused(tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(mqtt_route("", url="ssl://a.example:8883, tcp://b.example:1883"))
    r = sluice("check", *with_plugins("--routes", str(manifest)))
    assert r.returncode == 1
    assert ("source mqtt-source > url: mixes ssl:// and tcp:// urls: a fail-over would drop TLS"
            in r.stderr), r.stderr


def test_env_allow_limits_what_manifests_read_from_the_environment(tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text("route: e\nsource: {test-source: {generate: 1, topic: \"${SECRET_TOKEN}\"}}\n"
                        "sink: {file-sink: {path: \"${MQTT_OUT}/e.jsonl\"}}\n")
    cfg = tmp_path / "sluice.yaml"
    cfg.write_text(f"plugins: [{PLUGINS}]\nroutes: [{manifest}]\nenv_allow: [MQTT_*]\n")
    env = {"SECRET_TOKEN": "s3cr3t", "MQTT_OUT": str(tmp_path)}
    r = sluice("check", "-c", str(cfg), env=env)
    assert r.returncode == 1
    assert ("m.yaml:2:44: route e > source test-source > topic: environment variable "
            "'SECRET_TOKEN' may not be read by route manifests: the host config's env_allow lists "
            "only MQTT_*") in r.stderr, r.stderr
    assert "s3cr3t" not in r.stderr
    assert "1 error in" in r.stderr, r.stderr  # MQTT_OUT is allowed
    # Without env_allow every variable may be read.
    cfg.write_text(f"plugins: [{PLUGINS}]\nroutes: [{manifest}]\n")
    r = sluice("check", "-c", str(cfg), env=env)
    assert r.returncode == 0, r.stderr

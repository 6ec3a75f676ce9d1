#!/usr/bin/python3
"""End-to-end check of sluice-devkafka with independent clients.

Produces with kcat, reads back with the python `kafka` package, takes the brokers down
(SIGUSR1) and up (SIGUSR2) around a produce, and checks SIGTERM exits 0. Every wait is
bounded and every process started here is killed on the way out. Missing tools fail the
test (never skip) with the Debian package that provides them.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

STARTUP_TIMEOUT_S = 15
CLIENT_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15
MESSAGE_COUNT = 200


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def require_tools():
    if shutil.which("kcat") is None:
        fail("kcat not found: install the Debian package 'kcat' (apt-get install kcat)")
    try:
        import kafka  # noqa: F401  (imported for the check only)
    except ImportError:
        fail("python module 'kafka' not found for /usr/bin/python3: install the Debian "
             "package 'python3-kafka' (apt-get install python3-kafka)")


def wait_for(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    fail(f"timed out after {timeout_s} s waiting for {what}")


def read_text(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def kcat_produce(bootstrap, topic, lines):
    result = subprocess.run(
        ["kcat", "-b", bootstrap, "-P", "-t", topic, "-p", "0"],
        input="".join(line + "\n" for line in lines), text=True, capture_output=True,
        timeout=CLIENT_TIMEOUT_S)
    if result.returncode != 0:
        fail(f"kcat produce to {topic} exited {result.returncode}: {result.stderr}")


def kcat_consume(bootstrap, topic):
    result = subprocess.run(
        ["kcat", "-b", bootstrap, "-C", "-t", topic, "-e", "-q"],
        text=True, capture_output=True, timeout=CLIENT_TIMEOUT_S)
    if result.returncode != 0:
        fail(f"kcat consume from {topic} exited {result.returncode}: {result.stderr}")
    return result.stdout.splitlines()


def python_consume(bootstrap, topic, expected_count):
    """Reads every partition of `topic` from the beginning with kafka-python."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","),
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=None, consumer_timeout_ms=1000,
                             request_timeout_ms=20000)
    try:
        partitions = None
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                time.sleep(0.2)
        if partitions is None:
            fail(f"kafka-python found no metadata for topic {topic}")
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        values = []
        while len(values) < expected_count and time.monotonic() < deadline:
            for record in consumer:
                values.append(record.value.decode("utf-8"))
        # One more pass catches duplicates or strays beyond the expected count.
        for record in consumer:
            values.append(record.value.decode("utf-8"))
        return values
    finally:
        consumer.close()


def produce_across_outage(devkafka, stderr_path, bootstrap, topic, value):
    """Sends `value` while the brokers are down (SIGUSR1), then brings them up (SIGUSR2)."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError

    producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", retries=10,
                             request_timeout_ms=CLIENT_TIMEOUT_S * 1000,
                             reconnect_backoff_max_ms=500)
    try:
        # Metadata first, so the send below waits for the broker and not for metadata.
        producer.partitions_for(topic)
        devkafka.send_signal(signal.SIGUSR1)
        wait_for(lambda: "broker(s) down" in read_text(stderr_path), STARTUP_TIMEOUT_S,
                 "the 'down' log line")
        future = producer.send(topic, value=value, partition=0)
        time.sleep(2)
        if future.is_done:
            fail(f"the send completed while the brokers were down (error: {future.exception!r})")
        devkafka.send_signal(signal.SIGUSR2)
        wait_for(lambda: "broker(s) up" in read_text(stderr_path), STARTUP_TIMEOUT_S,
                 "the 'up' log line")
        try:
            future.get(timeout=CLIENT_TIMEOUT_S)
        except KafkaTimeoutError:
            fail(f"the message sent while down was not delivered within {CLIENT_TIMEOUT_S} s "
                 "after the brokers came up")
        return future
    finally:
        producer.close(timeout=5)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--devkafka", required=True, help="path to sluice-devkafka")
    args = parser.parse_args()
    require_tools()

    workdir = tempfile.mkdtemp(prefix="devkafka-test-")
    stderr_path = os.path.join(workdir, "devkafka.stderr")
    bootstrap_path = os.path.join(workdir, "bootstrap.txt")
    started = []
    try:
        with open(stderr_path, "w") as stderr_file:
            devkafka = subprocess.Popen(
                [args.devkafka, "--brokers", "2", "--topic", "ordered:1",
                 "--bootstrap-file", bootstrap_path],
                stdout=subprocess.PIPE, stderr=stderr_file, text=True)
        started.append(devkafka)

        # The first stdout line is the bootstrap address; the file must hold the same.
        wait_for(lambda: os.path.exists(bootstrap_path), STARTUP_TIMEOUT_S,
                 "the bootstrap file")
        bootstrap = devkafka.stdout.readline().strip()
        if not bootstrap or bootstrap != read_text(bootstrap_path).strip():
            fail(f"stdout bootstrap {bootstrap!r} differs from the bootstrap file "
                 f"{read_text(bootstrap_path)!r}")
        if len(bootstrap.split(",")) != 2 or not bootstrap.startswith("127.0.0.1:"):
            fail(f"unexpected bootstrap address {bootstrap!r} for 2 brokers")
        print(f"bootstrap: {bootstrap}")

        # A pre-created single-partition topic keeps order, so content is compared exactly.
        sent = [f"message-{i:04d}" for i in range(MESSAGE_COUNT)]
        kcat_produce(bootstrap, "ordered", sent)
        received = python_consume(bootstrap, "ordered", MESSAGE_COUNT)
        if received != sent:
            fail(f"kafka-python read {len(received)} messages, expected {len(sent)} in order; "
                 f"first differences: {[(a, b) for a, b in zip(sent, received) if a != b][:3]}")
        print(f"produced with kcat and read back with kafka-python: {len(received)} messages")

        # Auto-created topics work too (kcat on both ends, 4 partitions: compare as sets).
        auto_sent = [f"auto-{i}" for i in range(20)]
        kcat_produce(bootstrap, "auto-created", auto_sent)
        auto_received = kcat_consume(bootstrap, "auto-created")
        if sorted(auto_received) != sorted(auto_sent):
            fail(f"auto-created topic returned {auto_received}")
        print("auto-created topic: 20 messages round-tripped")

        # Fault injection: a produce while the brokers are down is delivered after they are up.
        # kcat gives up when every broker is down, so this producer is kafka-python, connected
        # before the outage as a bridge would be.
        future = produce_across_outage(devkafka, stderr_path, bootstrap, "ordered",
                                       b"while-down")
        if future.failed():
            fail(f"produce across the outage failed: {future.exception!r}")
        after = python_consume(bootstrap, "ordered", MESSAGE_COUNT + 1)
        if after != sent + ["while-down"]:
            fail(f"after down/up expected {MESSAGE_COUNT + 1} messages ending in 'while-down', "
                 f"got {len(after)} ending in {after[-3:]}")
        print("produce while down was delivered after up")

        devkafka.send_signal(signal.SIGTERM)
        try:
            rc = devkafka.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            fail(f"sluice-devkafka did not stop within {STOP_TIMEOUT_S} s of SIGTERM")
        if rc != 0:
            fail(f"sluice-devkafka exited {rc} on SIGTERM, expected 0; stderr:\n"
                 f"{read_text(stderr_path)}")
        print("SIGTERM: exit 0")
        print("PASS")
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if os.environ.get("KEEP_TEST_DIR") is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""A single-process MQTT -> Kafka bridge in Python, written the plain way people write one:
paho-mqtt's on_message -> confluent_kafka.Producer.produce(), poll() for delivery reports.

The peer that tools/bench/latency_bench.py measures Sluice against. It does what the occupancy
routes do: a message on `sensors/<kind>/<node>` goes to the Kafka topic of the first `--route
FILTER=TOPIC` whose filter matches, with `node` and `sensor` added to its JSON and key = node;
producer settings as kafka-sink's defaults (acks all, idempotence) with the given linger.
Debian 12 packages: python3-paho-mqtt (1.6), python3-confluent-kafka (1.7, librdkafka 2.0.2).

Prints "subscribed" once the broker acknowledged the subscriptions; on SIGTERM disconnects,
flushes the producer and prints one JSON line of counters.
"""
import argparse
import json
import signal
import sys
import threading

import paho.mqtt.client as mqtt
from confluent_kafka import Producer


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--route", action="append", required=True, metavar="FILTER=TOPIC")
    parser.add_argument("--linger-ms", type=int, default=5)
    parser.add_argument("--client-id", default="python-bridge")
    parser.add_argument("--qos", type=int, default=1)
    parser.add_argument("--persistent", action="store_true",
                        help="a persistent session (clean_session false): the broker queues "
                             "for it while it is away (backlog drain)")
    args = parser.parse_args()
    routes = [tuple(r.split("=", 1)) for r in args.route]

    producer = Producer({"bootstrap.servers": args.brokers, "linger.ms": args.linger_ms,
                         "acks": "all", "enable.idempotence": True})
    counters = {"received": 0, "produced": 0, "delivered": 0, "failed": 0, "unrouted": 0}

    def on_delivery(err, msg):
        counters["failed" if err else "delivered"] += 1

    def on_connect(client, userdata, flags, rc):
        client.subscribe([(f, args.qos) for f, _ in routes])

    def on_subscribe(client, userdata, mid, granted_qos):
        print("subscribed", flush=True)

    def on_message(client, userdata, msg):
        counters["received"] += 1
        topic = next((t for f, t in routes if mqtt.topic_matches_sub(f, msg.topic)), None)
        if topic is None:
            counters["unrouted"] += 1
            return
        levels = msg.topic.split("/")
        value = json.loads(msg.payload)
        value["node"], value["sensor"] = levels[2], levels[1]
        while True:
            try:
                producer.produce(topic, json.dumps(value).encode(), key=levels[2],
                                 on_delivery=on_delivery)
                break
            except BufferError:  # the local queue is full: let delivery reports drain it
                producer.poll(0.1)
        counters["produced"] += 1
        producer.poll(0)

    client = mqtt.Client(client_id=args.client_id, clean_session=not args.persistent)
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, \
        on_message
    client.connect(args.mqtt_host, args.mqtt_port, keepalive=60)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    client.loop_start()
    while not stop.is_set():
        producer.poll(0.1)
    client.disconnect()
    client.loop_stop()
    counters["left_in_queue"] = producer.flush(10)
    print(json.dumps(counters), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

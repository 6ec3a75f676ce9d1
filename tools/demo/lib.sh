# Shared by the demo scripts: starts mosquitto, the development Kafka and sluice on free
# loopback ports, and stops everything it started when the script exits.
# Source it after setting `build` (a build directory) and `repo`.

demo_work=$(mktemp -d /tmp/sluice-demo.XXXXXX)
demo_pids=()
demo_cleanup() {
  for pid in "${demo_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${demo_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$demo_work"
}
trap demo_cleanup EXIT

demo_require() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null ||
      { echo "demo: $tool is missing (run tools/setup/install-deps.sh)" >&2; exit 1; }
  done
}

demo_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Sets MQTT_URL.
demo_start_mosquitto() {
  local port
  port=$(demo_free_port)
  cat > "$demo_work/mosquitto.conf" <<CONF
user $(id -un)
listener $port 127.0.0.1
allow_anonymous true
# The default (1000) silently drops QoS 1 messages queued for a busy subscriber.
max_queued_messages 1000000
persistence false
CONF
  mosquitto -c "$demo_work/mosquitto.conf" >"$demo_work/mosquitto.log" 2>&1 &
  demo_pids+=($!)
  export MQTT_URL=tcp://127.0.0.1:$port
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: mosquitto did not start: $(cat "$demo_work/mosquitto.log")" >&2
  exit 1
}

# Sets KAFKA_BROKERS.
demo_start_kafka() {
  "$build/tools/devkafka/sluice-devkafka" --bootstrap-file "$demo_work/bootstrap" "$@" \
    >"$demo_work/devkafka.log" 2>&1 &
  demo_pids+=($!)
  for _ in $(seq 100); do [ -s "$demo_work/bootstrap" ] && break; sleep 0.1; done
  [ -s "$demo_work/bootstrap" ] || { echo "demo: the development Kafka did not start" >&2; exit 1; }
  export KAFKA_BROKERS
  KAFKA_BROKERS=$(cat "$demo_work/bootstrap")
}

# demo_start_sluice <manifest dir> <number of routes>; sets sluice_pid.
demo_start_sluice() {
  "$build/sluice" check --plugins "$build/plugins" --routes "$1"
  "$build/sluice" run --plugins "$build/plugins" --routes "$1" >"$demo_work/sluice.log" 2>&1 &
  sluice_pid=$!
  demo_pids+=($sluice_pid)
  # Subscribed, not just started: what is published before that has no session to go to.
  for _ in $(seq 300); do
    [ "$(grep -c "; receiving" "$demo_work/sluice.log")" -ge "$2" ] && break
    sleep 0.1
  done
}

demo_stop_sluice() {
  kill -TERM "$sluice_pid"
  wait "$sluice_pid" || true
  grep -E 'input finished|stopped:' "$demo_work/sluice.log" | sed 's/^/  /' || true
}

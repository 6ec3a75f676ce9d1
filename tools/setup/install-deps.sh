#!/usr/bin/env bash
# Installs the Debian 12 packages Sluice needs to build, test and run its demos.
# Run as root: installs what is missing with apt-get. Otherwise: prints the exact command to run.
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ make pkg-config
  # host runtime and SDK
  libboost-dev libboost-filesystem-dev libyaml-cpp-dev libyaml-dev libspdlog-dev libfmt-dev
  # tests (chromium: the status page's test, headless)
  catch2 python3 python3-pytest chromium
  # fuzzing (tests/fuzz): clang with libFuzzer and the sanitizers runtime
  clang libclang-rt-14-dev
  # MQTT and Kafka (paho's CMake package asks for OpenSSL's headers: libssl-dev)
  libpaho-mqtt-dev libpaho-mqttpp-dev libssl-dev librdkafka-dev mosquitto mosquitto-clients kcat
  python3-kafka openssl
  # firmware cross-compile check
  gcc-xtensa-lx106 binutils-xtensa-lx106 picolibc-xtensa-lx106-elf
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: not root; run this and try again:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${#missing[@]} packages"

#!/usr/bin/env bash
# `make test-fresh`: proves that the README's two commands work on a minimal Debian 12.
#
# Builds a minimal bookworm root with debootstrap (cached between runs), lays a fresh copy of it
# for every run, clones this checkout (its committed HEAD) and ../shared into it, and runs
# `make demo` and `make test` there with chroot, as root, with a clean environment. Prints each
# command's result and time; exits non-zero when either failed.
#
# Options (environment):
#   SLUICE_FRESH_CACHE  where the pristine root is cached (default /var/cache/sluice/test-fresh)
#   SLUICE_FRESH_WORK   where each run's root is laid (default /var/tmp/sluice-test-fresh)
#   SLUICE_FRESH_STEPS  the make targets to run, in order (default "demo test")
#   SLUICE_FRESH_KEEP=1 keep the run's root afterwards (to look inside)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
shared=$(cd "$repo/../shared" 2>/dev/null && pwd) ||
  { echo "test-fresh: ../shared is missing beside $repo" >&2; exit 1; }
cache=${SLUICE_FRESH_CACHE:-/var/cache/sluice/test-fresh}
work=${SLUICE_FRESH_WORK:-/var/tmp/sluice-test-fresh}
steps=${SLUICE_FRESH_STEPS:-demo test}
suite=bookworm
# What the issue's minimal image has: minbase plus what a developer needs to clone and type make.
include=ca-certificates,git,make,sudo

[ "$(id -u)" -eq 0 ] || { echo "test-fresh: run as root (debootstrap and chroot need it)" >&2; exit 1; }
if ! command -v debootstrap >/dev/null; then
  echo "test-fresh: installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
fi

# The same Debian mirror and suites as this machine's apt, so the root sees the packages CI sees.
host_sources() {
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    cat /etc/apt/sources.list.d/debian.sources
  elif [ -f /etc/apt/sources.list ]; then
    grep -E '^deb ' /etc/apt/sources.list
  fi
}
mirror=$(host_sources | sed -nE 's/^URIs: *([^ ]+).*/\1/p; s/^deb +(\[[^]]*\] +)?([^ ]+) +'"$suite"' .*/\2/p' | head -n 1)
[ -n "$mirror" ] || { echo "test-fresh: cannot find the Debian mirror in /etc/apt" >&2; exit 1; }

# 1. The pristine root, built once per mirror and package list.
key=$(printf '%s %s %s' "$suite" "$mirror" "$include" | sha256sum | cut -c1-12)
tarball=$cache/$suite-minbase-$key.tar
if [ ! -f "$tarball" ]; then
  echo "test-fresh: building a minimal $suite root with debootstrap (cached in $cache)"
  mkdir -p "$cache"
  stage=$(mktemp -d "$cache/build.XXXXXX")
  debootstrap --variant=minbase --include="$include" "$suite" "$stage" "$mirror" \
    >"$cache/debootstrap.log" 2>&1 ||
    { echo "test-fresh: debootstrap failed; see $cache/debootstrap.log" >&2; rm -rf "$stage"; exit 1; }
  chmod 0755 "$stage"  # mktemp's 0700 would become the root directory's mode
  tar -C "$stage" -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
  rm -rf "$stage"
fi

# 2. A fresh copy of it for this run.
root=$work/root
mounted=()
# Processes left inside the root (a daemon a package's postinst started, a test's leftover).
kill_inside() {
  local pid link
  for pid in /proc/[0-9]*; do
    link=$(readlink "$pid/root" 2>/dev/null) || continue
    [ "$link" = "$root" ] && kill -KILL "${pid#/proc/}" 2>/dev/null || true
  done
}
cleanup() {
  local i
  kill_inside
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
  if [ "${SLUICE_FRESH_KEEP:-0}" != 1 ]; then rm -rf "$root"; fi
}
trap cleanup EXIT
if [ -d "$root" ]; then
  for m in $(awk -v r="$root" '$2 ~ "^"r {print $2}' /proc/mounts | sort -r); do umount -l "$m" || true; done
  rm -rf "$root"
fi
mkdir -p "$root"
tar -C "$root" -xf "$tarball"
chmod 0755 "$root"  # as on an installed system: other users (tests drop to nobody) traverse /

# What an installer writes and debootstrap does not: host name, hosts, name resolution, and the
# apt sources of an installed system (main suite, updates, security).
echo sluice-fresh >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
127.0.1.1	sluice-fresh
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
HOSTS
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  rm -f "$root/etc/apt/sources.list"
  cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/debian.sources"
elif [ -f /etc/apt/sources.list ]; then
  cp /etc/apt/sources.list "$root/etc/apt/sources.list"
fi

for fs in proc sys dev dev/pts dev/shm; do
  mkdir -p "$root/$fs"
  case $fs in
    proc) mount -t proc proc "$root/proc" ;;
    sys) mount -t sysfs sysfs "$root/sys" ;;
    dev | dev/pts) mount --bind "/$fs" "$root/$fs" ;;
    dev/shm) mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm" ;;
  esac
  mounted+=("$root/$fs")
done

# 3. A clean clone of what is committed here, and the shared data beside it.
mkdir -p "$root/work"
git clone -q --no-hardlinks "$repo" "$root/work/main"
cp -a "$shared" "$root/work/shared"
echo "test-fresh: $(git -C "$repo" log -1 --format='%h %s') in a minimal $suite root at $root"

# 4. The README's commands, as a new user would type them.
results=()
status=0
for step in $steps; do
  log=$work/make-$step.log
  echo "test-fresh: make $step (log: $log)"
  start=$(date +%s)
  rc=0
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c "cd /work/main && make $step" >"$log" 2>&1 || rc=$?
  secs=$(($(date +%s) - start))
  if [ $rc -eq 0 ]; then
    results+=("$(printf '%-12s passed  %dm%02ds' "make $step" $((secs / 60)) $((secs % 60)))")
  else
    status=1
    results+=("$(printf '%-12s FAILED  %dm%02ds  (exit %d; last lines of %s below)' "make $step" \
      $((secs / 60)) $((secs % 60)) $rc "$log")")
    tail -n 30 "$log" | sed 's/^/    /'
  fi
done

echo "test-fresh results (minimal $suite, chroot, clean environment):"
printf '  %s\n' "${results[@]}"
exit $status

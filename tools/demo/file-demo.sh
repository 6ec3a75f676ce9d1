#!/usr/bin/env bash
# The broker-free demo: the occupancy data set's CSV rows -> json-transform -> JSON lines files,
# through two independent routes. Usage: file-demo.sh <build dir>
set -euo pipefail
build=${1:-build/release}
repo=$(cd "$(dirname "$0")/../.." && pwd)
data=${OCCUPANCY_CSV:-$repo/../shared/data/occupancy_estimation.csv}
out=${DEMO_OUT:-$repo/var/demo}
if [ ! -f "$data" ]; then
  echo "file-demo: the data set is missing: $data (it lives in ../shared/data beside the checkout)" >&2
  exit 1
fi
rm -rf "$out"
mkdir -p "$out"
echo "== sluice check"
"$build/sluice" check --plugins "$build/plugins" --routes "$repo/manifests/file-demo"
echo
echo "== sluice run (ends when both routes have delivered their input)"
OCCUPANCY_CSV=$data DEMO_OUT=$out "$build/sluice" run --plugins "$build/plugins" \
  --routes "$repo/manifests/file-demo"
echo
echo "== output in $out"
for f in "$out"/*.jsonl; do
  printf '%s: %s lines\n' "$(basename "$f")" "$(wc -l < "$f")"
  head -n 2 "$f" | sed 's/^/    /'
done

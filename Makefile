# Entry points for people and CI. Everything below installs what it needs first.
#   make demo   - the occupancy demo: data set -> MQTT -> sluice -> Kafka, end to end
#   make test   - build (debug and ASan+UBSan) and run the whole test suite
.PHONY: deps build build-asan build-fuzz build-release test test-dev test-asan test-fuzz fuzz test-fresh demo demo-file demo-device bench bench-scale docs clean

WERROR := $(if $(CI),ON,OFF)
CMAKE_FLAGS := -DSLUICE_WERROR=$(WERROR)

deps:
	@bash tools/setup/install-deps.sh

build: deps
	cmake --preset dev $(CMAKE_FLAGS) >/dev/null
	cmake --build --preset dev

build-asan: deps
	cmake --preset asan $(CMAKE_FLAGS) >/dev/null
	cmake --build --preset asan

# The libFuzzer targets (clang, ASan+UBSan; tests/fuzz): a tree of their own.
build-fuzz: deps
	cmake --preset fuzz $(CMAKE_FLAGS) >/dev/null
	cmake --build --preset fuzz

build-release: deps
	cmake --preset release $(CMAKE_FLAGS) -DSLUICE_BUILD_TESTS=OFF -DSLUICE_BUILD_FIRMWARE=OFF >/dev/null
	cmake --build --preset release

test-dev: build
	ctest --preset dev

test-asan: build-asan
	ctest --preset asan

# Each fuzz target for SLUICE_FUZZ_SECONDS (10) from its seed corpus: a smoke run that also
# replays every input once found (tests/fuzz/corpus). `make fuzz` runs them for longer.
test-fuzz: build-fuzz
	ctest --preset fuzz

test: test-dev test-asan test-fuzz

# Longer fuzzing, one target after another (FUZZ_SECONDS each, FUZZ_TARGETS to choose); what
# they find is kept in build/fuzz/tests/fuzz/found/, crashes in .../crashes/. docs/security.md.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= $(notdir $(wildcard tests/fuzz/corpus/fuzz_*))
fuzz: build-fuzz
	@for t in $(FUZZ_TARGETS); do echo "== $$t ($(FUZZ_SECONDS) s)"; \
	  build/fuzz/tests/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -timeout=5 -rss_limit_mb=2048 \
	    -artifact_prefix=build/fuzz/tests/fuzz/crashes/$$t- build/fuzz/tests/fuzz/found/$$t \
	    tests/fuzz/corpus/$$t || exit 1; done

# The two commands above on a minimal Debian 12 root (debootstrap, chroot; root only, slow; not
# part of `make test`). Run it before resolving an issue that adds a dependency.
test-fresh:
	bash tools/setup/test-fresh.sh

demo-file: build-release
	bash tools/demo/file-demo.sh build/release

demo: build-release
	bash tools/demo/occupancy-demo.sh build/release

# The simulated ESP8266 tank sensors through sluice into Kafka (needs the firmware: dev build).
demo-device: build
	bash tools/demo/device-demo.sh build/dev

# Benchmarks (figures, not tests; about 10 minutes): json-transform on one core; MQTT -> Kafka
# backlog drain for the ceiling (a plain C subscriber), Sluice with 1 and 6 routes and the
# Python peer (one process, and one per topic); then publish-to-Kafka latency at 5,000 msg/s,
# Sluice against the Python bridge; then the hot reload's gap and apply time. JSON in
# build/release/bench-*.json. See docs/benchmarks.md.
bench: build-release
	build/release/tools/bench/sluice-bench-json-transform
	/usr/bin/python3 tools/bench/e2e_bench.py --build build/release --repeat 3 \
	  --scenarios ceiling,sluice-1,sluice-6,python-1,python-per-topic \
	  --json build/release/bench-drain.json
	/usr/bin/python3 tools/bench/latency_bench.py --build build/release --repeat 3 \
	  --json build/release/bench-latency.json
	/usr/bin/python3 tools/bench/reload_bench.py --build build/release --repeat 20 \
	  --json build/release/bench-reload.json

# Scale benchmark (figures, not a test; minutes, and thousands of connections): a few, 1,000 idle
# and 10,000 busy routes in one process; subscription time, RSS, threads, idle CPU, bytes per
# route, delivery, SIGTERM. See docs/benchmarks.md. SCALE_BENCH_ARGS adds options.
bench-scale: build-release
	/usr/bin/python3 tools/bench/scale_bench.py --build build/release --json build/release/scale-bench.json $(SCALE_BENCH_ARGS)

# Regenerates each shipped plugin's README.md from its config spec, and the route options page.
docs: build
	@for d in plugins/*/; do id=$$(basename $$d); \
	  [ -f $$d/plugin.yaml ] || continue; \
	  cmake -DSLUICE=build/dev/sluice -DPLUGIN_DIR=build/dev/plugins -DID=$$id \
	    -DREADME=$$d/README.md -DUPDATE=ON -P cmake/CheckPluginReadme.cmake && echo "wrote $$d""README.md"; \
	done
	@cmake -DSLUICE=build/dev/sluice -DID=route-options -DREADME=docs/route-options.md -DUPDATE=ON \
	  -P cmake/CheckPluginReadme.cmake && echo "wrote docs/route-options.md"

clean:
	rm -rf build

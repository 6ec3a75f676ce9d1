# Entry points for people and CI. Everything below installs what it needs first.
#   make demo   - the occupancy demo, end to end, on embedded defaults
#   make test   - build (debug and ASan+UBSan) and run the whole test suite
.PHONY: deps build build-asan build-release test test-dev test-asan demo demo-file clean

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

build-release: deps
	cmake --preset release $(CMAKE_FLAGS) >/dev/null
	cmake --build --preset release

test-dev: build
	ctest --preset dev

test-asan: build-asan
	ctest --preset asan

test: test-dev test-asan

demo-file: build-release
	bash tools/demo/file-demo.sh build/release

demo: demo-file

clean:
	rm -rf build

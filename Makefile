# The two commands of the README, plus the rest of the developer loop.
#   make demo    run the main job on the embedded default
#   make test    install what is missing, build, run every test
# Each target installs missing packages (scripts/install-deps.sh), configures, builds, then runs.

PRESET ?= release
BUILD_DIR := build/$(PRESET)
JOBS ?= $(shell nproc)
RUDDER := $(BUILD_DIR)/app/rudder

.PHONY: all deps configure build test demo bench docs clean

all: build

deps:
	@scripts/install-deps.sh

configure: deps
	@cmake --preset $(PRESET) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 600

# SFT -> reward model -> DPO on the embedded default, ending with the win-rate table.
demo: build
	@$(RUDDER) demo

bench:
	@scripts/install-deps.sh --bench
	@cmake --preset $(PRESET) -DRUDDER_BUILD_BENCH=ON >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)
	@bench/run.sh $(BUILD_DIR)

# Rewrites the configuration reference in README.md from the schema.
docs: build
	@scripts/update-readme-reference.sh $(RUDDER)

clean:
	rm -rf build

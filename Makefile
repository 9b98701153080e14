# Kinesin's two commands: `make run` (a single-node cluster on 127.0.0.1:4567, data in ./data)
# and `make test` (the whole suite). Both install what they need first (scripts/setup.sh).

# Build output lives outside the checkout so RocksDB's C++ is built once per machine.
CARGO_TARGET_DIR ?= $(HOME)/.cache/kinesin-target
export CARGO_TARGET_DIR
KINESIN_VENV ?= $(HOME)/.cache/kinesin-venv
export KINESIN_VENV
ARGS ?=

.PHONY: run test setup build release lint fmt jepsen jepsen-soak jepsen-unsafe failpoints-bin simulate fuzz

setup:
	@scripts/setup.sh

## Start a single-node cluster: Kinesis API on http://127.0.0.1:4567, data in ./data.
run: setup
	cargo build --release -p kinesin-node --bin kinesin
	@echo
	@echo "Starting Kinesin (Ctrl-C stops it). Try, in another terminal:"
	@echo "  aws kinesis create-stream --stream-name demo --shard-count 2 --endpoint-url http://127.0.0.1:4567 --region us-east-1"
	@echo
	$(CARGO_TARGET_DIR)/release/kinesin server --data-dir ./data $(ARGS)

## The whole test suite: Rust unit and integration tests, then the boto3 / AWS CLI tests.
# `cargo test --workspace` also builds the kinesin binary the Python tests start. Keep every cargo
# build here and in .ci/run workspace-wide and with --all-targets (the feature set `cargo test`
# resolves, dev-dependencies included): a narrower one unifies build-dependency features
# differently and rebuilds RocksDB's C++ (15 minutes) a second time.
test: setup failpoints-bin
	cargo test --workspace
	cargo test --workspace --features kinesin-node/failpoints --test simulation -- early-ack no-fsync
	KINESIN_BIN=$(CARGO_TARGET_DIR)/debug/kinesin KINESIN_FAILPOINTS_BIN=$(FAILPOINTS_BIN) \
		$(KINESIN_VENV)/bin/python -m pytest --durations=15 tests/python jepsen/tests

build:
	cargo build --workspace --all-targets

release:
	cargo build --release -p kinesin-node --bin kinesin

## The seeded simulations over SEEDS seeds each: the controller's state machine (crates/
## kinesin-controller/src/simulation.rs; `make test` runs 300) and shard groups under a simulated
## network, clock and disks (crates/kinesin-raft/tests/simulation/; `make test` runs 60).
## SIM_SEED=N replays one exactly; SIM_TRACE=1 prints its events.
SEEDS ?= 1000
simulate:
	SIM_SEEDS=$(SEEDS) cargo test --workspace --lib simulation
	SIM_SEEDS=$(SEEDS) cargo test --workspace --test simulation -- seeds

## Fuzz what the API parses from clients (fuzz/, its own workspace, no RocksDB), FUZZ_SECONDS per
## target (libFuzzer through cargo-fuzz on the stable toolchain); fails on any crash.
FUZZ_SECONDS ?= 20
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

## Docker: a three-node cluster on this machine (deploy/docker-compose.yml, see README.md).
# The image is built from a release binary compiled here and a Debian base made offline with
# mmdebstrap (deploy/build-image.sh); no image registry is needed.
KINESIN_IMAGE ?= kinesin:latest
export KINESIN_IMAGE

.PHONY: docker-image docker-up docker-down

docker-image: setup
	cargo build --release -p kinesin-node --bin kinesin
	deploy/build-image.sh --binary $(CARGO_TARGET_DIR)/release/kinesin --tag $(KINESIN_IMAGE)

## Start the cluster (building the image first if it is missing) and wait until every node is healthy.
docker-up:
	@docker image inspect $(KINESIN_IMAGE) >/dev/null 2>&1 || $(MAKE) docker-image
	deploy/cluster.sh up

## Stop the cluster; `make docker-down ARGS=--volumes` deletes its data too.
docker-down:
	deploy/cluster.sh down $(ARGS)

## Jepsen-style runs: the docker compose cluster (5 nodes) under kill -9, pause, partitions, clock
## jumps and a full disk, with producers, consumers and stream-metadata races; then a local cluster
## (4 processes) whose disks forget unsynced writes, under power cuts, slow fsyncs, a disk filling
## up, corrupted files, kill -9 and membership changes. The checker reads each whole history.
## jepsen/store/<run-id>/ keeps history, results, timeline.svg and node logs. ARGS passes options
## to both, e.g. make jepsen ARGS="--time-limit 600 --seed 7"; JEPSEN_SECONDS sets the length.
JEPSEN_SECONDS ?= 120
JEPSEN_LOCAL_NEMESES = lose-unsynced,slow-fsync,fill-disk,corrupt,kill,pause,membership
JEPSEN_BIN ?= $(CARGO_TARGET_DIR)/debug/kinesin
jepsen: setup
	cargo build --workspace --all-targets
	cd jepsen && $(KINESIN_VENV)/bin/python -m kinesin_jepsen.run --bin $(JEPSEN_BIN) \
		--time-limit $(JEPSEN_SECONDS) $(ARGS)
	cd jepsen && $(KINESIN_VENV)/bin/python -m kinesin_jepsen.run --bin $(JEPSEN_BIN) \
		--time-limit $(JEPSEN_SECONDS) --cluster local --nodes 4 --nemesis $(JEPSEN_LOCAL_NEMESES) \
		--workload produce,metadata,resharding $(ARGS)

## The long run: every nemesis for 30 minutes on each cluster, faults overlapping two at a time,
## on a release build (the resharding workload makes a few hundred groups in 30 minutes; debug
## builds of four nodes on 2 cores fell behind and the faults' deadlines ran out).
jepsen-soak: setup release
	$(MAKE) jepsen JEPSEN_SECONDS=1800 JEPSEN_BIN=$(CARGO_TARGET_DIR)/release/kinesin \
		ARGS="--concurrent-faults 2 $(ARGS)"

## The same harness against a TEST build whose leaders acknowledge writes before a majority has
## them (failpoint raft::ack-on-append): it must report INVALID, and this target fails if not.
## ARGS="--failpoints storage::wal-fsync=return --cluster local --nodes 3 --nemesis lose-unsynced"
## does the same for a build that acknowledges without fsync, under power cuts.
FAILPOINTS_BIN = $(CARGO_TARGET_DIR)/debug/kinesin-failpoints
jepsen-unsafe: setup failpoints-bin
	cd jepsen && $(KINESIN_VENV)/bin/python -m kinesin_jepsen.run --bin $(FAILPOINTS_BIN) --expect-invalid \
		--failpoints raft::ack-on-append=return --time-limit 60 --nemesis partition,kill --workload produce $(ARGS)

# The binary with named failpoints compiled in (cargo feature failpoints; none is on unless
# FAILPOINTS names it). Built, copied aside, then the normal binary relinked at once (both sets
# of crates stay cached), so target/debug/kinesin is never left as the failpoints build.
failpoints-bin:
	cargo build --workspace --all-targets --features kinesin-node/failpoints
	cp $(CARGO_TARGET_DIR)/debug/kinesin $(FAILPOINTS_BIN)
	cargo build --workspace --all-targets

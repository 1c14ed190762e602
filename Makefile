# Pacer — the single entry point. `make run` serves the example app, `make test` runs everything.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export CARGO_TARGET_DIR ?= $(CURDIR)/target
export PACER_CACHE ?= /var/cache/pacer
TRIPLE := x86_64-unknown-linux-gnu
RELEASE_DIR := $(CARGO_TARGET_DIR)/$(TRIPLE)/release

.PHONY: deny
.PHONY: all deps build release run test lint fmt controlplane rust-test php-test e2e image-check bench clean sim

all: build

deps:
	@scripts/deps.sh

build:
	cargo build --workspace

# Static release binaries (see ARCHITECTURE.md: pacer is copied into arbitrary images).
release:
	RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target $(TRIPLE) --bins

# Static binaries are statically linked and run in an empty root; the image's final stage
# builds and runs under podman (Debian's buildah/podman/runc, no Docker engine needed).
image-check: release
	PACER_DEPS_EXTRA="podman buildah runc" scripts/deps.sh
	e2e/image/check.sh $(RELEASE_DIR) --image

run: deps
	cargo run -p pacer --bin pacer -- serve -c examples/hello/.rr.yaml -w examples/hello

fmt:
	cargo fmt --all

lint:
	scripts/check-docs.sh
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	$(MAKE) deny

# Licences, banned crates (OpenSSL) and sources of every dependency (deny.toml). cargo-deny
# is installed once into $(PACER_CACHE)/tools.
TOOLS := $(PACER_CACHE)/tools/bin
deny:
	@test -x $(TOOLS)/cargo-deny || cargo install --locked --quiet cargo-deny --version 0.20.2 --root $(PACER_CACHE)/tools
	PATH="$(TOOLS):$$PATH" cargo deny --offline check licenses bans sources

# kube-apiserver, etcd and helm for the operator's tests, built from their Go modules
# and cached under $(PACER_CACHE) (about 10 minutes once, then instant).
controlplane:
	e2e/controlplane/build.sh >/dev/null

# Every Rust test but the end-to-end scenarios (those are `make e2e`).
rust-test:
	bin="$$(e2e/controlplane/build.sh | tail -n1)"; \
	PACER_CONTROLPLANE_BIN="$$bin" cargo test --workspace --locked --exclude pacer-e2e-scenarios

# End-to-end scenarios (e2e/scenarios), two test binaries run one after the other:
# * tests/node.rs — the real node: kubelet (built once into $(PACER_CACHE) with kubectl
#   and pause by `build.sh --node`), Debian's containerd + runc + CNI plugins, the images
#   built with buildah (the Pacer image from the Dockerfile and `make release`, the example
#   app on a Debian root fs made once by mmdebstrap), the chart installed with helm;
# * tests/scenarios.rs — the operator as a process tuning pacer + the example PHP app on
#   the node stand-in (many pods at once, both metric sources), Debian's Prometheus.
# Timelines and logs: e2e/out/; a failed run ends by printing the failed scenarios'
# timelines (e2e/failures.sh), so a CI log's tail shows them. Real-node runs of several
# users on one machine take turns (a lock in /var/lock).
E2E_DEPS := containerd runc containernetworking-plugins buildah mmdebstrap ca-certificates
e2e: deps release
	PACER_DEPS_EXTRA="$(E2E_DEPS)" scripts/deps.sh
	bin="$$(e2e/controlplane/build.sh --node | tail -n1)"; \
	cargo build --workspace --locked --bins; \
	mkdir -p e2e/out; touch e2e/out/.started; \
	PACER_CONTROLPLANE_BIN="$$bin" PACER_E2E_BIN_DIR="$(CARGO_TARGET_DIR)/debug" \
	  PACER_E2E_RELEASE_DIR="$(RELEASE_DIR)" RUST_LIB_BACKTRACE=0 \
	  cargo test --locked -p pacer-e2e-scenarios -- --test-threads=8 --nocapture \
	  || { e2e/failures.sh e2e/out/.started; exit 1; }

# The PHP library's tests; the service client's test drives a real `pacer serve` (PACER_BIN).
php-test:
	cargo build --locked -p pacer --bin pacer
	cd php && PACER_BIN="$(CARGO_TARGET_DIR)/debug/pacer" phpunit --colors=never

# The tuner against simulated clusters for days (sim/README.md): every trace, the score
# table, a picture per trace in sim/out/; fails when a trace does worse than its gate (the
# goals, or the level reached where a goal is not met yet: sim/RESULTS.md). Part of `test`.
sim:
	cargo run --locked -p pacer-sim --bin pacer-sim -- --out sim/out

test: deps lint rust-test sim php-test fuzz-smoke image-check e2e

bench: deps
	bench/run.sh

# Fuzzing (fuzz/, its own cargo workspace; see fuzz/README.md). cargo-fuzz is installed
# once into $(PACER_CACHE)/cargo-fuzz unless it is already on PATH; the targets need the
# nightly toolchain. Each target runs FUZZ_SECONDS (make fuzz) or FUZZ_SMOKE_SECONDS
# (make fuzz-smoke, for CI) and fails on the first crash, leak or timeout; the crash
# input lands in fuzz/artifacts/<target>/.
FUZZ_TARGETS := frame_decoder request_to_payload urlencoded_form response_head config_parser static_path
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 10
.PHONY: fuzz fuzz-smoke
fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh $(FUZZ_TARGETS)

fuzz-smoke:
	@FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) fuzz/run.sh $(FUZZ_TARGETS)

clean:
	cargo clean

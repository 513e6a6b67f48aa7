# The verbs a person types. Everything a fresh machine lacks is set up on the way.
#   make run      nats-server + gateway + tts, lipsync and eyes workers; prints the URL
#   make render   render TEXT offline (no servers) into OUT
#   make test     set up, then run the whole test suite
#   make bench    speed and memory next to Python piper-tts, pipeline overhead, cache hits
#   make openapi  regenerate services/gateway/openapi.json
#   make e2e      the end-to-end suite on a real cluster: kind with Docker, else a local node
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

CACHE ?= $(HOME)/.cache/avatar-pipeline
export CARGO_TARGET_DIR ?= $(CACHE)/target
export RUNTIME_DIR ?= $(CACHE)/runtime
export VOICES_DIR ?= $(CURDIR)/voices
CARGO ?= cargo
JOBS ?= 2
VOICE ?= en_US-joe-medium
TEXT ?= Hello! I am a talking avatar. My mouth and eyes move in time with my voice, because the timing comes straight from the speech synthesizer.
OUT ?= $(CURDIR)/out

.PHONY: setup system system-test k8s-binaries runtime voices servers browser build run render test lint bench openapi crd k8s check-k8s e2e e2e-local e2e-kind clean

setup: system runtime voices servers

# Debian packages the build needs (scripts/setup_system.sh installs only what is missing).
system:
	scripts/setup_system.sh build
system-test:
	scripts/setup_system.sh build test k8s node

# Kubernetes v1.20 built from Debian's source package, once per machine (15-20 min), cached.
k8s-binaries:
	scripts/k8s_build.sh > /dev/null

servers:
	scripts/setup_servers.sh > /dev/null

# playwright-core for the browser test (it drives Debian's chromium; no browser download).
browser: tests/browser/node_modules/playwright-core
tests/browser/node_modules/playwright-core: tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund

runtime: $(RUNTIME_DIR)/libonnxruntime.so $(RUNTIME_DIR)/libespeak-ng.so $(RUNTIME_DIR)/libpocketsphinx.so
$(RUNTIME_DIR)/libonnxruntime.so $(RUNTIME_DIR)/libespeak-ng.so $(RUNTIME_DIR)/libpocketsphinx.so:
	scripts/setup_runtime.sh

voices: $(VOICES_DIR)/$(VOICE).onnx
$(VOICES_DIR)/%.onnx:
	scripts/download_voices.sh $*

build:
	$(CARGO) build -j $(JOBS) --release --workspace --bins

run: setup build
	BIN_DIR=$(CARGO_TARGET_DIR)/release DEFAULT_VOICE=$(VOICE) scripts/run_local.sh

render: setup build
	$(CARGO_TARGET_DIR)/release/avatar-render --voice $(VOICE) --out $(OUT) --text "$(TEXT)"
	@echo "wrote $(OUT)/render.json and $(OUT)/audio.ogg"

# The Rust tests (a real control plane among them), the chart and manifests against a real API
# server, then the end-to-end suite on a local node (needs root; skipped with a message if not).
test: setup system-test browser k8s-binaries
	$(CARGO) fmt --all -- --check
	$(CARGO) build -j $(JOBS) --workspace --bins
	$(CARGO) test -j $(JOBS) --workspace
	CRDGEN=$(CARGO_TARGET_DIR)/debug/crdgen scripts/check_k8s.sh
	@if [ "$$(id -u)" -eq 0 ]; then e2e/run.sh local; else echo "skip e2e/run.sh local: the local node needs root (make e2e-local as root)"; fi

openapi:
	$(CARGO) run -q -j $(JOBS) -p avatar-gateway -- --openapi > services/gateway/openapi.json

# The AvatarRender CRD from the Rust types, into crd/ and the chart.
crd:
	$(CARGO) run -q -j $(JOBS) -p avatar-controller --bin crdgen > crd/avatarrender.yaml
	cp crd/avatarrender.yaml charts/avatar/crds/avatarrender.yaml

# Plain manifests for users without Helm: the chart's default rendering.
k8s:
	scripts/render_chart.sh --plain > k8s/avatar.yaml

# CRD and manifest drift, helm lint/template, kubernetes-validate, CRD schema checks, hadolint.
check-k8s:
	$(CARGO) build -q -j $(JOBS) -p avatar-controller --bin crdgen
	CRDGEN=$(CARGO_TARGET_DIR)/debug/crdgen scripts/check_k8s.sh

# The end-to-end suite (e2e/suite.sh): on kind where Docker runs, else on a local node.
e2e: setup k8s-binaries
	$(CARGO) build -j $(JOBS) --workspace --bins
	e2e/run.sh
e2e-local: setup k8s-binaries
	$(CARGO) build -j $(JOBS) --workspace --bins
	e2e/run.sh local
e2e-kind:
	e2e/run.sh kind

lint: system
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy -j $(JOBS) --workspace --all-targets -- -D warnings

bench: setup
	scripts/bench.sh

clean:
	rm -rf $(OUT)

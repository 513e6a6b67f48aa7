# The verbs a person types. Everything a fresh machine lacks is set up on the way.
#   make run      nats-server + gateway + tts, lipsync and eyes workers; prints the URL
#   make render   render TEXT offline (no servers) into OUT
#   make test     set up, then run the whole test suite
#   make bench    speed and memory next to Python piper-tts, pipeline overhead, cache hits
#   make openapi  regenerate services/gateway/openapi.json
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

.PHONY: setup runtime voices servers browser build run render test lint bench openapi crd k8s check-k8s e2e clean

setup: runtime voices servers

servers:
	scripts/setup_servers.sh > /dev/null

# playwright-core for the browser test (it drives Debian's chromium; no browser download).
browser: tests/browser/node_modules/playwright-core
tests/browser/node_modules/playwright-core: tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund

runtime: $(RUNTIME_DIR)/libonnxruntime.so $(RUNTIME_DIR)/libespeak-ng.so
$(RUNTIME_DIR)/libonnxruntime.so $(RUNTIME_DIR)/libespeak-ng.so:
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

test: setup browser
	$(CARGO) fmt --all -- --check
	$(CARGO) build -j $(JOBS) --workspace --bins
	$(CARGO) test -j $(JOBS) --workspace
	CRDGEN=$(CARGO_TARGET_DIR)/debug/crdgen scripts/check_k8s.sh

openapi:
	$(CARGO) run -q -j $(JOBS) -p avatar-gateway -- --openapi > services/gateway/openapi.json

# The AvatarRender CRD from the Rust types, into crd/ and the chart.
crd:
	$(CARGO) run -q -j $(JOBS) -p avatar-controller --bin crdgen > crd/avatarrender.yaml
	cp crd/avatarrender.yaml charts/avatar/crds/avatarrender.yaml

# Plain manifests for users without Helm: the chart's default rendering.
k8s:
	scripts/render_chart.sh > k8s/avatar.yaml

# CRD and manifest drift, helm lint/template, kubernetes-validate, CRD schema checks, hadolint.
check-k8s:
	$(CARGO) build -q -j $(JOBS) -p avatar-controller --bin crdgen
	CRDGEN=$(CARGO_TARGET_DIR)/debug/crdgen scripts/check_k8s.sh

# Kind-based end-to-end suite: needs Docker, kind, kubectl and helm (not run by make test).
e2e:
	e2e/run.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy -j $(JOBS) --workspace --all-targets -- -D warnings

bench: setup
	scripts/bench.sh

clean:
	rm -rf $(OUT)

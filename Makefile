# The verbs a person types. Everything a fresh machine lacks is set up on the way.
#   make run     render a sample text offline and print where the files are
#   make test    set up, then run the whole test suite
#   make bench   speed and memory next to Python piper-tts on the same machine
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

.PHONY: setup runtime voices build run test lint bench clean

setup: runtime voices

runtime: $(RUNTIME_DIR)/libonnxruntime.so $(RUNTIME_DIR)/libespeak-ng.so
$(RUNTIME_DIR)/libonnxruntime.so $(RUNTIME_DIR)/libespeak-ng.so:
	scripts/setup_runtime.sh

voices: $(VOICES_DIR)/$(VOICE).onnx
$(VOICES_DIR)/%.onnx:
	scripts/download_voices.sh $*

build:
	$(CARGO) build -j $(JOBS) --release -p avatar-render

run: setup build
	$(CARGO_TARGET_DIR)/release/avatar-render --voice $(VOICE) --out $(OUT) --text "$(TEXT)"
	@echo "wrote $(OUT)/render.json and $(OUT)/audio.ogg"

test: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) test -j $(JOBS) --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy -j $(JOBS) --workspace --all-targets -- -D warnings

bench: setup
	scripts/bench.sh

clean:
	rm -rf $(OUT)

#!/usr/bin/env bash
# `make bench`: builds the release binaries, installs the Python reference (piper-tts 1.8 with
# onnxruntime 1.32, the same runtime the Rust side loads) into a venv, and runs scripts/bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CACHE:-$HOME/.cache/avatar-pipeline}
VENV=$CACHE/bench-venv
VOICE=${VOICE:-en_US-joe-medium}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import piper, onnxruntime, websockets" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet piper-tts==1.8.0 onnxruntime==1.32.0 websockets==15.0.1
fi
cargo build --release -j "${JOBS:-2}" -p avatar-render --bin avatar-render --example bench
target=${CARGO_TARGET_DIR:-target}/release
python3 scripts/bench.py "$target/examples/bench" "$target/avatar-render" "$VENV/bin/python" "$VOICES_DIR" "$VOICE"

# Lip-sync accuracy of the same build, per text and viseme set (the check `make test` runs,
# with its bars): pocketsphinx forced alignment of each rendered corpus text.
cargo test --release -j "${JOBS:-2}" -p avatar-render --test lipsync_accuracy -- --nocapture 2>&1 |
  sed -n '/^Lip-sync against/,/^test /p' | grep -v '^test '

# Lip-sync of recordings: the align test's table (clean and degraded audio, with and without the
# transcript, against the synthesiser's own timeline), then speed and memory next to synthesis.
cargo test --release -j "${JOBS:-2}" -p avatar-align --test accuracy -- --nocapture 2>&1 |
  sed -n '/^Alignment of recordings/,/^test /p' | grep -v '^test '
python3 scripts/bench_align.py "$target/avatar-render" "$VOICES_DIR" "$VOICE"

# The distributed pipeline: overhead, cache hits (wrk), scaling with tts workers, streaming.
command -v wrk > /dev/null || { echo "bench: installing wrk" >&2; ${SUDO:-} apt-get install -y -qq wrk > /dev/null; }
cargo build --release -j "${JOBS:-2}" --workspace --bins
"$VENV/bin/python" scripts/bench_pipeline.py "$target" "$target/examples/bench" "$(scripts/setup_servers.sh)" "$VOICES_DIR" "$VOICE"

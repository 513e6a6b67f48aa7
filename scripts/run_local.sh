#!/usr/bin/env bash
# `make run`: starts nats-server (JetStream) and the four services as separate processes with
# the local audio store, prints the URL, and stops everything on Ctrl-C.
#
# Environment: PORT (gateway, default 8080), NATS_PORT (default 4222), DATA_DIR (default
# ./data), VOICES_DIR, BIN_DIR (the built binaries), and any service setting (README).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN_DIR=${BIN_DIR:?BIN_DIR: where avatar-gateway and the workers are built}
SERVERS_BIN=$(scripts/setup_servers.sh)
export PORT=${PORT:-8080}
NATS_PORT=${NATS_PORT:-4222}
export DATA_DIR=${DATA_DIR:-$(pwd)/data}
export NATS_URL=${NATS_URL:-nats://127.0.0.1:$NATS_PORT}
export AUDIO_BASE_URL=${AUDIO_BASE_URL:-http://localhost:$PORT/audio}
export VOICES_DIR=${VOICES_DIR:-$(pwd)/voices}
export DEFAULT_VOICE=${DEFAULT_VOICE:-en_US-joe-medium}
export LOG_LEVEL=${LOG_LEVEL:-info}
mkdir -p "$DATA_DIR/nats" "$DATA_DIR/logs"

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

start() { # name command...
  local name=$1; shift
  "$@" > "$DATA_DIR/logs/$name.log" 2>&1 &
  pids+=($!)
  echo "started $name (pid $!, log $DATA_DIR/logs/$name.log)"
}

start nats-server "$SERVERS_BIN/nats-server" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$DATA_DIR/nats"
METRICS_PORT=9101 start tts "$BIN_DIR/avatar-tts"
METRICS_PORT=9102 start lipsync "$BIN_DIR/avatar-lipsync"
METRICS_PORT=9103 start eyes "$BIN_DIR/avatar-eyes"
start gateway "$BIN_DIR/avatar-gateway"

for _ in $(seq 1 120); do
  if curl -sf "http://127.0.0.1:$PORT/health" > /dev/null 2>&1 \
     && curl -sf "http://127.0.0.1:$PORT/v1/voices" | grep -q voice_id; then
    break
  fi
  sleep 0.5
done
cat <<MSG

The avatar pipeline is running: http://localhost:$PORT/
  curl -s -X POST http://localhost:$PORT/v1/avatar/render -H 'Content-Type: application/json' \\
       -d '{"text": "Hello, I am a talking avatar!"}'
Logs in $DATA_DIR/logs. Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}" || true
echo "a service exited; see $DATA_DIR/logs" >&2

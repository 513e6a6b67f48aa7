#!/usr/bin/env bash
# `make run`: starts nats-server (JetStream) and the five services as separate processes with
# the local audio store, and keeps them running: a service that exits or is killed (a crash,
# an OOM kill) is started again with back-off (1 s, 2 s, 4 s ... 30 s; back to 1 s after a
# minute of running) and a log line, while the others keep working. The URL is printed once
# the gateway is ready (/readyz: a render can be accepted). Ctrl-C (or SIGTERM) stops
# everything.
#
# Environment: PORT (gateway, default 8080), NATS_PORT (default 4222), METRICS_PORT_BASE (the
# workers' metrics ports: tts, lipsync, eyes from there on, align at +4; default 9101; 0: any free port),
# DATA_DIR (default ./data), VOICES_DIR, BIN_DIR (the built binaries), and any service setting
# (docs/configuration.md).
# DATA_DIR/run/<service>.pid holds each service's current PID.
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
mkdir -p "$DATA_DIR/nats" "$DATA_DIR/logs" "$DATA_DIR/run"

log() { printf '%s run_local: %s\n' "$(date +%T)" "$*"; }

supervisors=()
stopping=0
stop() {
  trap - INT TERM EXIT
  stopping=1
  echo
  log "stopping..."
  # The supervisors first (so nothing is restarted), then the services they run.
  for pid in "${supervisors[@]}"; do kill "$pid" 2> /dev/null || true; done
  for f in "$DATA_DIR"/run/*.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2> /dev/null || true
  done
  wait 2> /dev/null || true
  rm -f "$DATA_DIR"/run/*.pid
}
trap stop INT TERM EXIT

# supervise NAME COMMAND...: runs COMMAND, restarting it whenever it exits.
supervise() {
  local name=$1
  shift
  (
    trap 'kill "$child" 2> /dev/null; wait "$child" 2> /dev/null; exit 0' TERM INT
    delay=1
    while true; do
      started=$SECONDS
      "$@" >> "$DATA_DIR/logs/$name.log" 2>&1 &
      child=$!
      echo "$child" > "$DATA_DIR/run/$name.pid"
      status=0
      wait "$child" || status=$?
      # A long, healthy run earns a quick restart again.
      [ $((SECONDS - started)) -ge 60 ] && delay=1
      log "$name exited (status $status, pid $child); restarting in ${delay} s (log $DATA_DIR/logs/$name.log)" >&2
      sleep "$delay" &
      wait $! || true
      delay=$((delay * 2 > 30 ? 30 : delay * 2))
    done
  ) &
  supervisors+=($!)
  log "started $name (log $DATA_DIR/logs/$name.log)"
}

supervise nats-server "$SERVERS_BIN/nats-server" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$DATA_DIR/nats"
base=${METRICS_PORT_BASE:-9101}
metrics_port() { [ "$base" = 0 ] && echo 0 || echo $((base + $1)); }
METRICS_PORT=$(metrics_port 0) supervise tts "$BIN_DIR/avatar-tts"
METRICS_PORT=$(metrics_port 1) supervise lipsync "$BIN_DIR/avatar-lipsync"
METRICS_PORT=$(metrics_port 2) supervise eyes "$BIN_DIR/avatar-eyes"
METRICS_PORT=$(metrics_port 4) supervise align "$BIN_DIR/avatar-align"
supervise gateway "$BIN_DIR/avatar-gateway"

ready=0
for _ in $(seq 1 240); do
  if curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.5
done
if [ "$ready" = 1 ]; then
  cat << MSG

The avatar pipeline is ready: http://localhost:$PORT/
  curl -s -X POST http://localhost:$PORT/v1/avatar/render -H 'Content-Type: application/json' \\
       -d '{"text": "Hello, I am a talking avatar!"}'
  curl -s -X POST 'http://localhost:$PORT/v1/avatar/lipsync?transcript=What+it+says' \\
       -H 'Content-Type: audio/wav' --data-binary @your-recording.wav
Logs in $DATA_DIR/logs. Press Ctrl-C to stop.
MSG
else
  log "the gateway is not ready after 2 minutes: $(curl -s "http://127.0.0.1:$PORT/readyz" || echo 'no answer'); see $DATA_DIR/logs" >&2
fi
# Until Ctrl-C: the supervisors never end on their own.
wait "${supervisors[@]}" || true

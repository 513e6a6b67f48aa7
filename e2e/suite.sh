#!/usr/bin/env bash
# The end-to-end steps, the same on every cluster (e2e/run.sh picks kind or the local node and
# calls this with the cluster up and the images loaded):
#   the chart as shipped installed with helm (NATS from the chart, SeaweedFS as S3), every
#   workload ready through its own probes; AvatarRenders applied with kubectl reach Completed,
#   their audio and results fetched through the gateway's Service; the HTTP API's sync, async
#   and bad-input paths through the Service; a stream (server-sent events) through the Service;
#   a tts pod deleted mid-render and the render still
#   completing; `helm upgrade` rolling every worker without losing a render; bad specs refused;
#   `helm uninstall` leaving nothing behind but the CRD.
#
# Environment: KUBECTL, HELM (with KUBECONFIG set), E2E_TAG (image tag), GATEWAY_ACCESS
# (`service`: the Service's cluster IP is reachable from here, as inside the local node's
# network namespace; `port-forward`: kubectl port-forward to the Service, as with kind).
set -euo pipefail
cd "$(dirname "$0")/.."
NS=avatar
TAG=${E2E_TAG:?E2E_TAG: the images tag}
KUBECTL=${KUBECTL:-kubectl}
HELM=${HELM:-helm}
k() { "$KUBECTL" "$@"; }
kn() { "$KUBECTL" --namespace "$NS" "$@"; }
helm() { "$HELM" "$@"; }
started=$SECONDS
step() { printf '\n== [%4ds] %s\n' $((SECONDS - started)) "$*"; }
fail() { echo "e2e: FAIL: $*" >&2; diagnose; exit 1; }
diagnose() {
  { echo "--- pods"; kn get pods -o wide; echo "--- events"; kn get events --sort-by=.lastTimestamp | tail -25
    for d in gateway tts align lipsync eyes controller; do echo "--- $d"; kn logs "deploy/avatar-$d" --tail=15 2>&1; done
    if [ -n "${NODE_LOG_DIR:-}" ]; then
      echo "--- kubelet (errors)"; grep -E '^[EW][0-9]{4}' "$NODE_LOG_DIR/kubelet.log" | tail -25
    fi
  } >&2 2> /dev/null || true
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
pf_pid=""
trap '[ -n "$pf_pid" ] && kill "$pf_pid" 2> /dev/null; true' EXIT

# -------------------------------------------------------------------------------------------
step "the S3 store (SeaweedFS) and the chart as shipped, with helm"
k create namespace "$NS"
sed "s/E2E_TAG/$TAG/" e2e/seaweedfs.yaml | kn apply -f - > /dev/null
PUBLIC_URL="http://avatar-gateway.$NS.svc:8080"
values=(
  --set image.registry=localhost --set image.tag="$TAG" --set image.pullPolicy=Never
  --set nats.image.repository=localhost/nats --set nats.image.tag="$TAG" --set nats.image.pullPolicy=Never
  # No storage provisioner on a bare node; jobs must survive pod restarts of the workers, not of NATS.
  --set nats.persistence.enabled=false
  --set storage.s3.endpoint="http://seaweedfs.$NS.svc:8333"
  --set gateway.publicUrl="$PUBLIC_URL"
  # Two cores for the whole cluster: small requests, one synthesis thread, quick redelivery.
  --set gateway.replicas=1 --set tts.replicas=1 --set tts.threads=1
  --set tts.resources.requests.cpu=100m --set gateway.resources.requests.cpu=50m
  --set nats.resources.requests.cpu=50m --set pipeline.jobAckWaitSeconds=10
)
helm install avatar charts/avatar --namespace "$NS" "${values[@]}" --wait --timeout 6m \
  || fail "helm install"
for d in $(kn get deployments -o name); do
  kn rollout status "$d" --timeout=2m > /dev/null || fail "$d not ready"
done
kn rollout status statefulset/avatar-nats --timeout=2m > /dev/null || fail "NATS not ready"
# Ready through the workloads' own probes: every container has one, and every pod passes it.
kn get pods -l app.kubernetes.io/instance=avatar -o json | json '
pods = d["items"]
assert len(pods) >= 6, [p["metadata"]["name"] for p in pods]
for p in pods:
    for c in p["spec"]["containers"]:
        assert c.get("readinessProbe"), (p["metadata"]["name"], "no readiness probe")
    ready = [c["status"] for c in p["status"]["conditions"] if c["type"] == "Ready"]
    assert ready == ["True"], (p["metadata"]["name"], p["status"])
print(f"{len(pods)} pods ready through their probes")'

# -------------------------------------------------------------------------------------------
step "the gateway's Service"
if [ "${GATEWAY_ACCESS:-service}" = service ]; then
  GATEWAY="http://$(kn get service avatar-gateway -o jsonpath='{.spec.clusterIP}'):8080"
else
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  kn port-forward service/avatar-gateway "$port:8080" > /dev/null 2>&1 &
  pf_pid=$!
  GATEWAY="http://127.0.0.1:$port"
fi
for _ in $(seq 1 60); do curl -sf "$GATEWAY/health" > /dev/null && break; sleep 1; done
curl -sf "$GATEWAY/health" | json 'assert d["status"] == "healthy" and d["nats_connected"], d; print("health:", d)'
curl -sf "$GATEWAY/v1/voices" | json 'assert any(v["voice_id"] == "en_US-joe-medium" for v in d["voices"]), d'
# A URL the pipeline hands out (built on gateway.publicUrl), fetched through the Service.
local_url() { echo "$GATEWAY${1#"$PUBLIC_URL"}"; }

# -------------------------------------------------------------------------------------------
step "AvatarRenders applied with kubectl"
kn apply -f crd/examples/avatarrender-hello.yaml -f crd/examples/avatarrender-full.yaml > /dev/null
wait_phase() { # name phase seconds
  for _ in $(seq 1 "$3"); do
    [ "$(kn get avatarrender "$1" -o jsonpath='{.status.phase}')" = "$2" ] && return 0
    sleep 1
  done
  kn get avatarrender "$1" -o yaml >&2
  fail "avatarrender/$1 did not reach $2"
}
wait_phase hello Completed 300
wait_phase welcome-rhubarb Completed 300
kn get avatarrenders
for name in hello welcome-rhubarb; do
  kn get avatarrender "$name" -o json > /tmp/e2e-avr.json
  audio=$(json 'print(d["status"]["audioUrl"])' < /tmp/e2e-avr.json)
  result=$(json 'print(d["status"]["resultUrl"])' < /tmp/e2e-avr.json)
  json 's=d["status"]; c=s["conditions"][0]; assert c["type"]=="Ready" and c["status"]=="True", s; assert s["durationMs"]>0 and s["mouthCueCount"]>0, s' < /tmp/e2e-avr.json
  curl -sf "$(local_url "$audio")" -o /tmp/e2e-audio.ogg || fail "$name: audio $audio"
  [ "$(head -c 4 /tmp/e2e-audio.ogg)" = OggS ] || fail "$name: the audio is not Ogg"
  curl -sf "$(local_url "$result")" | python3 -c '
import json, sys
r = json.load(sys.stdin); s = json.load(open("/tmp/e2e-avr.json"))["status"]
assert r["status"] == "completed" and r["render_id"] == s["renderId"], r
assert len(r["mouth_cues"]) == s["mouthCueCount"] and r["duration_ms"] == s["durationMs"], (r, s)
assert len(r["words"]) == s["wordCount"] > 0 and len(r["sentences"]) == s["sentenceCount"] > 0, (r, s)
text = json.load(open("/tmp/e2e-avr.json"))["spec"]["text"].encode("utf-16-le")
for w in r["words"]:
    assert text[2 * w["start"]:2 * w["end"]].decode("utf-16-le") == w["text"], w
' || fail "$name: result $result"
  echo "$name: audio $(wc -c < /tmp/e2e-audio.ogg) bytes and result fetched through the Service"
done
# (Captured first: with pipefail, `producer | grep -q` fails when grep stops reading early.)
events=$(kn get events --field-selector involvedObject.name=hello)
grep -q Completed <<< "$events" || fail "no Completed event"

# -------------------------------------------------------------------------------------------
step "the HTTP API through the Service: sync, async, bad input"
post() { curl -s -o /tmp/e2e-body.json -w '%{http_code}' -X POST "$GATEWAY$1" -H 'Content-Type: application/json' -d "$2"; }
code=$(post /v1/avatar/render '{"text": "Hello through the Service, synchronously.", "viseme_set": "rhubarb"}')
[ "$code" = 200 ] || fail "sync render: $code $(cat /tmp/e2e-body.json)"
json 'assert d["status"]=="completed" and d["mouth_cues"] and d["eye_events"] is not None, d' < /tmp/e2e-body.json
audio=$(json 'print(d["audio_url"])' < /tmp/e2e-body.json)
curl -sf "$(local_url "$audio")" -o /tmp/e2e-audio.ogg || fail "sync audio: $audio"
[ "$(head -c 4 /tmp/e2e-audio.ogg)" = OggS ] || fail "sync audio: not Ogg"
code=$(post /v1/avatar/render_async '{"text": "Hello through the Service, asynchronously."}')
[ "$code" = 202 ] || fail "async render: $code $(cat /tmp/e2e-body.json)"
id=$(json 'print(d["render_id"])' < /tmp/e2e-body.json)
poll() { # render id seconds: until completed
  for _ in $(seq 1 "$2"); do
    status=$(curl -sf "$GATEWAY/v1/avatar/render/$1" | json 'print(d["status"])' || true)
    [ "$status" = completed ] && return 0
    [ "$status" = failed ] && fail "render $1 failed: $(curl -s "$GATEWAY/v1/avatar/render/$1")"
    sleep 1
  done
  fail "render $1 not completed after $2 s (last: $status)"
}
poll "$id" 120
code=$(post /v1/avatar/render '{"text": "", "speed": 1.0}')
[ "$code" = 422 ] || fail "empty text: $code"
json 'assert d["field"] == "text", d' < /tmp/e2e-body.json
code=$(post /v1/avatar/render '{"text": "hi", "speed": 9}')
[ "$code" = 422 ] && json 'assert d["field"] == "speed", d' < /tmp/e2e-body.json || fail "speed 9: $code"
code=$(post /v1/avatar/render '{"text": ')
[ "$code" = 400 ] || fail "malformed JSON: $code"
echo "sync 200, async 202 then completed, bad input 422/400 naming the field"

# -------------------------------------------------------------------------------------------
step "lip-sync of a recording through the Service (align worker, S3)"
# The synchronous render's audio above, uploaded as a recording with its transcript.
code=$(curl -s -o /tmp/e2e-body.json -w '%{http_code}' -X POST \
  "$GATEWAY/v1/avatar/lipsync?transcript=Hello+through+the+Service%2C+synchronously.&viseme_set=rhubarb" \
  -H 'Content-Type: audio/ogg' --data-binary @/tmp/e2e-audio.ogg)
[ "$code" = 200 ] || fail "lipsync: $code $(cat /tmp/e2e-body.json)"
json '
assert d["status"] == "completed" and d["mouth_cues"], d
assert [w["text"] for w in d["words"]] == ["Hello", "through", "the", "Service", "synchronously"], d["words"]
assert all(w["aligned"] for w in d["words"]), d["words"]' < /tmp/e2e-body.json
audio=$(json 'print(d["audio_url"])' < /tmp/e2e-body.json)
curl -sf "$(local_url "$audio")" -o /tmp/e2e-upload.ogg || fail "lipsync audio: $audio"
cmp -s /tmp/e2e-audio.ogg /tmp/e2e-upload.ogg || fail "the stored recording is not the upload"
code=$(curl -s -o /tmp/e2e-body.json -w '%{http_code}' -X POST "$GATEWAY/v1/avatar/lipsync" \
  -H 'Content-Type: text/plain' --data-binary 'not audio at all')
[ "$code" = 422 ] && json 'assert d["field"] == "audio", d' < /tmp/e2e-body.json || fail "lipsync of text: $code"
echo "a recording force-aligned through the cluster; not audio: 422 naming audio"

# -------------------------------------------------------------------------------------------
step "a stream through the Service (server-sent events)"
curl -sN --max-time 180 -X POST "$GATEWAY/v1/avatar/stream" -H 'Content-Type: application/json' \
  -d '{"text": "Streaming through the Service, sentence by sentence. A second sentence follows it. The third one ends."}' \
  -o /tmp/e2e-stream.txt || fail "stream: curl"
first_audio=$(python3 - << 'PY'
import json
events = [e for e in open("/tmp/e2e-stream.txt").read().split("\n\n") if "data:" in e]
messages = [json.loads("".join(l[5:].strip() for l in e.splitlines() if l.startswith("data:"))) for e in events]
kinds = [m["type"] for m in messages]
assert kinds[0] == "started" and kinds[-1] == "done" and "error" not in kinds, kinds
segments = [m for m in messages if m["type"] == "segment"]
offset = 0
for i, s in enumerate(segments):
    assert s["seq"] == i and s["offset_ms"] == offset and s["words"], s
    offset += s["duration_ms"]
assert len(segments) >= 3 and messages[-1]["segments"] == len(segments) and messages[-1]["duration_ms"] == offset, messages[-1]
print(segments[0]["audio_url"])
PY
) || fail "stream: the events ($(head -c 600 /tmp/e2e-stream.txt))"
curl -sf "$(local_url "$first_audio")" -o /tmp/e2e-audio.ogg || fail "stream: audio $first_audio"
[ "$(head -c 4 /tmp/e2e-audio.ogg)" = OggS ] || fail "stream: the audio is not Ogg"
echo "a stream of $(grep -c '^event: *segment' /tmp/e2e-stream.txt || true) segments, in order, its audio through the Service"

# -------------------------------------------------------------------------------------------
step "a tts pod deleted mid-render: the render still completes"
long='This render loses its tts worker in the middle of the synthesis. The job stays in JetStream, is redelivered to the replacement pod once its acknowledgement deadline passes, and the render completes all the same, with audio and cues from one synthesis run.'
code=$(post /v1/avatar/render_async "{\"text\": \"$long\"}")
[ "$code" = 202 ] || fail "async render: $code"
id=$(json 'print(d["render_id"])' < /tmp/e2e-body.json)
for _ in $(seq 1 100); do
  [ "$(curl -sf "$GATEWAY/v1/avatar/render/$id" | json 'print(d["status"])')" = rendering ] && break
  sleep 0.2
done
victim=$(kn get pods -l app.kubernetes.io/component=tts -o jsonpath='{.items[0].metadata.name}')
kn delete pod "$victim" --wait=false > /dev/null
echo "deleted $victim while render $id was rendering"
poll "$id" 240
curl -sf "$GATEWAY/v1/avatar/render/$id" | json 'assert d["duration_ms"] > 5000 and d["mouth_cues"], d; print("completed:", d["duration_ms"], "ms")'

# -------------------------------------------------------------------------------------------
step "helm upgrade with a changed value rolls every worker without losing a render"
# The pods that run (not those already on their way out).
running_pods() {
  kn get pods -l app.kubernetes.io/instance=avatar -o json | json '
print(" ".join(p["metadata"]["name"] for p in d["items"] if not p["metadata"].get("deletionTimestamp")))'
}
before=$(running_pods)
ids=()
for i in 1 2 3 4; do
  code=$(post /v1/avatar/render_async "{\"text\": \"Render number $i, submitted just before the upgrade rolls the workers.\"}")
  [ "$code" = 202 ] || [ "$code" = 200 ] || fail "async render $i: $code"
  ids+=("$(json 'print(d["render_id"])' < /tmp/e2e-body.json)")
done
# A shared setting (the ConfigMap every workload reads): every Deployment rolls.
helm upgrade avatar charts/avatar --namespace "$NS" --reuse-values --set pipeline.renderLeaseSeconds=301 --wait --timeout 6m \
  || fail "helm upgrade"
after=$(running_pods)
for component in gateway tts align lipsync eyes controller; do
  old=$(echo "$before" | tr ' ' '\n' | grep -c "^avatar-$component-" || true)
  kept=$(comm -12 <(echo "$before" | tr ' ' '\n' | grep "^avatar-$component-" | sort) <(echo "$after" | tr ' ' '\n' | sort) | wc -l)
  [ "$old" -gt 0 ] && [ "$kept" = 0 ] || fail "$component was not rolled ($kept of $old pods kept)"
done
echo "every deployment rolled"
for _ in $(seq 1 60); do curl -sf "$GATEWAY/health" > /dev/null && break; sleep 1; done
for id in "${ids[@]}"; do poll "$id" 240; done
echo "all ${#ids[@]} renders submitted before the upgrade completed"

# -------------------------------------------------------------------------------------------
step "bad specs refused"
for bad in crd/bad/*.yaml; do
  if kn create -f "$bad" > /dev/null 2>&1; then fail "$bad was accepted"; fi
done
echo "$(ls crd/bad/*.yaml | wc -l) bad AvatarRenders refused by the API server"
kn apply -f - > /dev/null << 'YAML'
apiVersion: avatar.pipeline.dev/v1alpha1
kind: AvatarRender
metadata: { name: whitespace }
spec: { text: "   " }
YAML
wait_phase whitespace Failed 120
message=$(kn get avatarrender whitespace -o jsonpath='{.status.message}')
grep -q spec.text <<< "$message" || fail "whitespace: no spec.text in the message ($message)"

# -------------------------------------------------------------------------------------------
step "helm uninstall leaves nothing behind but the CRD"
kn delete avatarrenders --all --wait=true > /dev/null
helm uninstall avatar --namespace "$NS" --wait --timeout 3m > /dev/null || fail "helm uninstall"
# Everything goes within a minute; a pod already being deleted (Terminating: the node is
# stopping it) may take the node up to three, and is reported if it takes longer.
for i in $(seq 1 180); do
  left=$(kn get all,configmaps,serviceaccounts,poddisruptionbudgets,persistentvolumeclaims,roles,rolebindings \
    -l app.kubernetes.io/instance=avatar -o name 2> /dev/null)
  left+=$(k get clusterroles,clusterrolebindings -l app.kubernetes.io/instance=avatar -o name 2> /dev/null)
  [ -z "$left" ] && break
  not_deleting=$(kn get pods -l app.kubernetes.io/instance=avatar -o json 2> /dev/null |
    json "print(sum(1 for p in d['items'] if not p['metadata'].get('deletionTimestamp')))")
  if [ "$i" -ge 60 ] && { [ "$not_deleting" != 0 ] || [ "$(echo "$left" | grep -vc '^pod/')" != 0 ]; }; then
    break
  fi
  sleep 1
done
[ -z "$left" ] || fail "left behind: $left"
k get crd avatarrenders.avatar.pipeline.dev > /dev/null || fail "the CRD went with the release"
k delete namespace "$NS" --wait=true --timeout=2m > /dev/null
echo "uninstalled; the CRD stays (helm never deletes CRDs)"

printf '\ne2e: all checks passed in %d s\n' $((SECONDS - started))

#!/usr/bin/env bash
# End-to-end on a real cluster: kind + Docker. Not run by `make test` (no Docker engine on
# the project's build machines); run it with `make e2e` where these exist:
#   docker (a running engine), kind >= 0.20, kubectl, helm >= 3.12, curl, python3
# It creates a kind cluster, builds and loads the images, installs NATS (official chart,
# JetStream on), MinIO as the S3 server, and this chart; applies AvatarRenders and waits for
# them; fetches audio and results through the gateway; checks the HTTP API through a
# port-forward; and deletes the cluster (KEEP_CLUSTER=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-avatar-e2e}
NAMESPACE=avatar
REGISTRY=local.test/avatar
TAG=e2e
PORT=${PORT:-18080}

for tool in docker kind kubectl helm curl python3; do
  command -v "$tool" > /dev/null || { echo "e2e: $tool is required" >&2; exit 2; }
done
docker info > /dev/null 2>&1 || { echo "e2e: no Docker engine is running" >&2; exit 2; }

pf_pid=""
cleanup() {
  [ -n "$pf_pid" ] && kill "$pf_pid" 2>/dev/null || true
  if [ "${KEEP_CLUSTER:-0}" != 1 ]; then kind delete cluster --name "$CLUSTER" > /dev/null 2>&1 || true; fi
}
trap cleanup EXIT
step() { echo; echo "== $*"; }

step "kind cluster $CLUSTER"
kind get clusters 2>/dev/null | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 180s
kubectl config use-context "kind-$CLUSTER"

step "images"
for target in gateway tts lipsync eyes controller; do
  docker build --target "$target" -t "$REGISTRY/avatar-$target:$TAG" .
  kind load docker-image --name "$CLUSTER" "$REGISTRY/avatar-$target:$TAG"
done

step "NATS with JetStream"
helm repo add nats https://nats-io.github.io/k8s/helm/charts/ > /dev/null
helm upgrade --install nats nats/nats --namespace "$NAMESPACE" --create-namespace \
  --set config.jetstream.enabled=true --set config.jetstream.fileStore.pvc.size=1Gi --wait --timeout 5m

step "MinIO (S3)"
kubectl apply --namespace "$NAMESPACE" -f e2e/minio.yaml
kubectl wait --namespace "$NAMESPACE" --for=condition=complete job/minio-bucket --timeout 5m

step "the avatar chart"
helm upgrade --install avatar charts/avatar --namespace "$NAMESPACE" \
  --set image.registry="$REGISTRY" --set image.tag="$TAG" --set image.pullPolicy=Never \
  --set nats.url="nats://nats.$NAMESPACE:4222" \
  --set storage.s3.endpoint="http://minio.$NAMESPACE:9000" --set storage.s3.credentialsSecret=avatar-s3 \
  --set gateway.publicUrl="http://localhost:$PORT" \
  --set gateway.replicas=1 --set tts.replicas=1 --set tts.threads=1 \
  --set tts.resources.requests.cpu=500m \
  --wait --timeout 10m

step "AvatarRender"
kubectl apply --namespace "$NAMESPACE" -f examples/avatarrender-hello.yaml
kubectl apply --namespace "$NAMESPACE" -f examples/avatarrender-full.yaml
kubectl wait --namespace "$NAMESPACE" --for=jsonpath='{.status.phase}'=Completed avatarrender/hello --timeout 5m
kubectl wait --namespace "$NAMESPACE" --for=jsonpath='{.status.phase}'=Completed avatarrender/welcome-rhubarb --timeout 5m
kubectl get avatarrenders --namespace "$NAMESPACE"
kubectl get avatarrender hello --namespace "$NAMESPACE" -o jsonpath='{.status.conditions[0].type}={.status.conditions[0].status}' | grep -qx 'Ready=True'
kubectl get events --namespace "$NAMESPACE" --field-selector involvedObject.name=hello | grep -q Completed

step "bad specs"
for bad in tests/k8s/bad/*.yaml; do
  if kubectl apply --namespace "$NAMESPACE" -f "$bad" > /dev/null 2>&1; then
    echo "e2e: $bad was accepted" >&2; exit 1
  fi
done
kubectl apply --namespace "$NAMESPACE" -f - <<'YAML'
apiVersion: avatar.pipeline.dev/v1alpha1
kind: AvatarRender
metadata: { name: whitespace }
spec: { text: "   " }
YAML
kubectl wait --namespace "$NAMESPACE" --for=jsonpath='{.status.phase}'=Failed avatarrender/whitespace --timeout 2m
kubectl get avatarrender whitespace --namespace "$NAMESPACE" -o jsonpath='{.status.message}' | grep -q 'spec.text'

step "through the gateway"
kubectl port-forward --namespace "$NAMESPACE" svc/avatar-gateway "$PORT:8080" > /dev/null 2>&1 &
pf_pid=$!
for _ in $(seq 1 60); do curl -sf "http://localhost:$PORT/health" > /dev/null && break; sleep 1; done
audio=$(kubectl get avatarrender hello --namespace "$NAMESPACE" -o jsonpath='{.status.audioUrl}')
result=$(kubectl get avatarrender hello --namespace "$NAMESPACE" -o jsonpath='{.status.resultUrl}')
curl -sf "$audio" | head -c 4 | grep -q OggS
curl -sf "$result" | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["status"]=="completed" and r["mouth_cues"], r'
curl -sf "http://localhost:$PORT/health" | python3 -c 'import json,sys; h=json.load(sys.stdin); assert h["status"]=="healthy", h'
curl -sf "http://localhost:$PORT/v1/voices" | grep -q en_US-joe-medium
curl -sf -X POST "http://localhost:$PORT/v1/avatar/render" -H 'Content-Type: application/json' \
  -d '{"text": "Hello through the port-forward."}' | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["status"]=="completed", r'
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://localhost:$PORT/v1/avatar/render" -H 'Content-Type: application/json' -d '{"text": ""}')
[ "$code" = 422 ]

echo
echo "e2e: all checks passed"

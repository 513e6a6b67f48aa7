#!/usr/bin/env bash
# The chart and the plain manifests against a real Kubernetes API server (v1.20, from
# scripts/k8s_control_plane.sh; objects are validated and stored, no pods run):
#   1. `kubectl apply -f k8s/avatar.yaml` exactly as docs/kubernetes.md says, then the controller's
#      service account lists AvatarRenders in every namespace and patches their status with
#      its own token, and may do nothing it does not need;
#   2. the example AvatarRenders are accepted and the bad ones in crd/bad/ refused by
#      the server, each for its own field;
#   3. `helm install` of charts/avatar as shipped: NATS from the chart, an external NATS, and
#      KEDA autoscaling (given KEDA's CRDs in KEDA_CRDS); each release's
#      objects are stored, and `helm uninstall` leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
plane="$work/plane"
cleanup() {
  scripts/k8s_control_plane.sh down "$plane" > /dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

scripts/k8s_control_plane.sh up "$plane" > "$work/env"
# shellcheck disable=SC1091
. "$work/env"
export KUBECONFIG
k() { "$KUBECTL" "$@"; }
helm() { "$HELM" "$@"; }
ok "control plane up ($APISERVER, $(k version -o json 2> /dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'))"

# 1. The plain manifests, as docs/kubernetes.md applies them.
if k apply -f k8s/avatar.yaml > "$work/apply.txt" 2>&1; then
  ok "kubectl apply -f k8s/avatar.yaml ($(wc -l < "$work/apply.txt") objects)"
else
  cat "$work/apply.txt"; bad "kubectl apply -f k8s/avatar.yaml"
fi
k wait --for=condition=Established crd/avatarrenders.avatar.pipeline.dev --timeout=60s > /dev/null
k create namespace renders > /dev/null
k apply -n renders -f crd/examples/avatarrender-hello.yaml > /dev/null
# The controller's token (the token controller makes it), and a kubeconfig that uses only it.
secret=""
for _ in $(seq 1 120); do
  secret=$(k get serviceaccount avatar-controller -n avatar -o jsonpath='{.secrets[0].name}' 2> /dev/null || true)
  [ -n "$secret" ] && break
  sleep 0.25
done
token=$(k get secret "$secret" -n avatar -o go-template='{{.data.token | base64decode}}')
cat > "$work/controller.kubeconfig" << YAML
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "$APISERVER", certificate-authority: "$CA_FILE"}}]
users: [{name: controller, user: {token: "$token"}}]
contexts: [{name: controller, context: {cluster: local, user: controller}}]
current-context: controller
YAML
as_controller() { "$KUBECTL" --kubeconfig "$work/controller.kubeconfig" "$@"; }
if as_controller get avatarrenders --all-namespaces > "$work/list.txt" 2>&1 && grep -q hello "$work/list.txt"; then
  ok "the controller's account lists AvatarRenders in every namespace"
else
  cat "$work/list.txt"; bad "the controller's account cannot list AvatarRenders"
fi
if as_controller patch avatarrender hello -n renders --subresource=status --type=merge \
  -p '{"status":{"phase":"Pending","message":"patched by the controller account"}}' > "$work/patch.txt" 2>&1 \
  && [ "$(k get avatarrender hello -n renders -o jsonpath='{.status.message}')" = "patched by the controller account" ]; then
  ok "the controller's account patches AvatarRender status"
else
  cat "$work/patch.txt"; bad "the controller's account cannot patch AvatarRender status"
fi
for verb in "create events.events.k8s.io -n renders" "watch avatarrenders.avatar.pipeline.dev --all-namespaces"; do
  # shellcheck disable=SC2086
  if [ "$(as_controller auth can-i $verb 2> /dev/null)" = yes ]; then ok "the controller may $verb"; else bad "the controller may not $verb"; fi
done
for verb in "delete avatarrenders.avatar.pipeline.dev -n renders" "patch avatarrenders.avatar.pipeline.dev -n renders" "get secrets -n avatar" "create pods -n avatar"; do
  # shellcheck disable=SC2086
  if [ "$(as_controller auth can-i $verb 2> /dev/null)" = no ]; then ok "the controller may not $verb (least privilege)"; else bad "the controller may $verb"; fi
done

# 2. The server is the judge of the schema.
for example in crd/examples/avatarrender-*.yaml; do
  if k apply -n renders --dry-run=server -f "$example" > /dev/null 2> "$work/err.txt"; then
    ok "the server accepts $example"
  else
    cat "$work/err.txt"; bad "the server refuses $example"
  fi
done
for example in crd/bad/*.yaml; do
  case "$(basename "$example")" in
    *text*) field=spec.text ;; speed-*) field=spec.speed ;; viseme-set-*) field=spec.visemeSet ;; voice-*) field=spec.voiceId ;;
    *) bad "$example: which field should refuse it? (name it after the field)"; continue ;;
  esac
  # --validate=false: the server's own validation, not kubectl's copy of the schema.
  if k create -n renders --validate=false -f "$example" > /dev/null 2> "$work/err.txt"; then
    bad "the server accepts $example"
  elif grep -q "$field" "$work/err.txt"; then
    ok "the server refuses $example ($field)"
  else
    cat "$work/err.txt"; bad "the server refuses $example, but not for $field"
  fi
done

if k delete -f k8s/avatar.yaml --wait=true --timeout=120s > "$work/delete.txt" 2>&1; then
  ok "kubectl delete -f k8s/avatar.yaml"
else
  cat "$work/delete.txt"; bad "kubectl delete -f k8s/avatar.yaml"
fi
k delete namespace renders --wait=true --timeout=120s > /dev/null 2>&1 || true

# 3. helm install, the chart as shipped, into the server.
installed() { # release namespace: every object the release rendered is stored in the server
  local release=$1 namespace=$2
  helm get manifest "$release" -n "$namespace" > "$work/$release.yaml"
  python3 - "$work/$release.yaml" > "$work/$release.objects" << 'PY'
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d:
        ns = d["metadata"].get("namespace", "-")
        print(d["kind"], d["apiVersion"], ns, d["metadata"]["name"])
PY
  local missing=0 kind api ns name
  while read -r kind api ns name; do
    local group=${api%/*}
    [ "$group" = "$api" ] && group="" || group=".$group"
    if [ "$ns" != - ]; then
      k get "${kind,,}${group}" "$name" -n "$ns" > /dev/null 2>&1 || { echo "  missing: $kind $ns/$name"; missing=1; }
    else
      k get "${kind,,}${group}" "$name" > /dev/null 2>&1 || { echo "  missing: $kind $name"; missing=1; }
    fi
  done < "$work/$release.objects"
  return $missing
}
helm_case() { # release namespace description helm-args...
  local release=$1 namespace=$2 what=$3
  shift 3
  if helm install "$release" charts/avatar --namespace "$namespace" --create-namespace "$@" > "$work/helm.txt" 2>&1; then
    if installed "$release" "$namespace"; then
      ok "helm install ($what): $(wc -l < "$work/$release.objects") objects stored"
    else
      bad "helm install ($what): objects missing from the server"
    fi
  else
    cat "$work/helm.txt"; bad "helm install ($what)"
    return
  fi
  if helm uninstall "$release" --namespace "$namespace" --wait > "$work/helm.txt" 2>&1; then
    local left
    # The garbage collector removes pods and ReplicaSets after their owners: give it time.
    for _ in $(seq 1 60); do
      # NATS's volume (a StatefulSet's PVC) outlives the release by design: data is not
      # deleted by an uninstall. Everything else must go.
      left=$(k get all,configmaps,serviceaccounts,poddisruptionbudgets,persistentvolumeclaims -n "$namespace" \
        -l "app.kubernetes.io/instance=$release" -o name 2> /dev/null | grep -v "^persistentvolumeclaim/data-$release-nats-" || true)
      left+=$(k get clusterroles,clusterrolebindings -l "app.kubernetes.io/instance=$release" -o name 2> /dev/null || true)
      [ -z "$left" ] && break
      sleep 0.5
    done
    if [ -z "$left" ]; then ok "helm uninstall ($what) leaves nothing behind"; else echo "$left"; bad "helm uninstall ($what) left objects"; fi
  else
    cat "$work/helm.txt"; bad "helm uninstall ($what)"
  fi
}
helm_case avatar avatar "NATS from the chart"
if [ "$(k get statefulset avatar-nats -n avatar -o name 2> /dev/null)" ]; then bad "the NATS StatefulSet outlived its release"; fi
helm_case external avatar-external "external NATS, local storage" --set nats.enabled=false \
  --set nats.url=nats://nats.messaging:4222 --set storage.backend=local --set storage.local.existingClaim=avatar-data
# KEDA's CRDs are in no package registry reachable here (npm, PyPI, crates.io and Debian
# carry only code generated from them): give them as KEDA_CRDS (a file, KEDA <= 2.19 for a
# 1.20 server) to include this case.
if [ -n "${KEDA_CRDS:-}" ]; then
  k apply -f "$KEDA_CRDS" > /dev/null
  k wait --for=condition=Established crd/scaledobjects.keda.sh --timeout=60s > /dev/null
  helm_case scaled avatar-scaled "KEDA autoscaling of tts" --set tts.autoscaling.enabled=true
else
  echo "skip helm install with KEDA autoscaling: KEDA's CRDs are in no registry reachable here (set KEDA_CRDS=file to include it)"
fi
exit $fail

#!/usr/bin/env bash
# The Kubernetes side of `make test`: the committed CRD and plain manifests are what the code
# and the chart generate; the chart lints and renders (default, S3 + ingress + KEDA, local
# storage without NATS); the rendered built-in objects pass kubernetes-validate --strict;
# example AvatarRenders validate against the CRD's schema and the bad ones do not; the
# Dockerfile passes hadolint. Then against a real API server (scripts/k8s_control_plane.sh;
# SKIP_K8S_SERVER=1 skips it): k8s/avatar.yaml applied as docs/kubernetes.md says and its controller
# account able to list and patch, the bad examples refused by the server for their field, and
# `helm install` of the chart as shipped with NATS on, off, and with KEDA autoscaling.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=$(scripts/setup_k8s_tools.sh)
export PATH="$TOOLS:$PATH"
KUBE_VERSION=${KUBE_VERSION:-1.33.0}
CRDGEN=${CRDGEN:?CRDGEN: the built crdgen binary}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

# 1. The CRD is what the Rust types generate, in crd/ and in the chart.
"$CRDGEN" > "$work/crd.yaml"
for committed in crd/avatarrender.yaml charts/avatar/crds/avatarrender.yaml; do
  if cmp -s "$work/crd.yaml" "$committed"; then ok "$committed is fresh"; else bad "$committed is stale: run make crd"; fi
done

# 2. The chart.
if helm lint charts/avatar > "$work/lint.txt" 2>&1; then ok "helm lint"; else cat "$work/lint.txt"; bad "helm lint"; fi
render() { # name args...
  local name=$1; shift
  if scripts/render_chart.sh "$@" > "$work/$name.yaml" 2> "$work/$name.err"; then
    ok "helm template ($name)"
  else
    cat "$work/$name.err"; bad "helm template ($name)"
  fi
}
render default --plain
render s3-ingress-keda --set gateway.ingress.enabled=true --set gateway.ingress.className=nginx \
  --set tts.autoscaling.enabled=true --set tts.extraVoices='{en_US-lessac-medium}' \
  --set storage.s3.endpoint=http://minio.storage:9000
render local --set storage.backend=local --set storage.local.existingClaim=avatar-data \
  --set controller.enabled=false --set podDisruptionBudget.enabled=false \
  --set nats.enabled=false --set nats.url=nats://nats.messaging:4222
if scripts/render_chart.sh --set storage.backend=ftp > /dev/null 2>&1; then
  bad "values.schema.json accepts storage.backend=ftp"
else
  ok "values.schema.json refuses storage.backend=ftp"
fi

# 3. Built-in kinds against Kubernetes' schemas (KEDA's ScaledObject is not built in).
for name in default s3-ingress-keda local; do
  "$TOOLS/../venv/bin/python" - "$work/$name.yaml" "$work/$name-builtin.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
keep = [d for d in docs if d.get("kind") not in ("ScaledObject", "Namespace")]
yaml.safe_dump_all(keep, open(sys.argv[2], "w"))
print(f"{len(keep)} objects ({len(docs) - len(keep)} ScaledObject left to KEDA)", file=sys.stderr)
PY
  if kubernetes-validate --strict --quiet -k "$KUBE_VERSION" "$work/$name-builtin.yaml" > "$work/kv.txt" 2>&1; then
    ok "kubernetes-validate --strict ($name)"
  else
    cat "$work/kv.txt"; bad "kubernetes-validate --strict ($name)"
  fi
done
if grep -q "kind: ScaledObject" "$work/s3-ingress-keda.yaml" && grep -q "type: nats-jetstream" "$work/s3-ingress-keda.yaml"; then
  ok "the KEDA ScaledObject scales tts on its JetStream consumer"
else
  bad "no KEDA ScaledObject with the nats-jetstream trigger"
fi

# 4. The plain manifests are the chart's default rendering.
if cmp -s "$work/default.yaml" k8s/avatar.yaml; then ok "k8s/avatar.yaml is fresh"; else bad "k8s/avatar.yaml is stale: run make k8s"; fi

# 5. AvatarRender examples against the CRD's schema.
"$TOOLS/../venv/bin/python" - crd/avatarrender.yaml "$work/schema.json" <<'PY'
import json, sys, yaml
crd = yaml.safe_load(open(sys.argv[1]))
schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
json.dump(schema, open(sys.argv[2], "w"))
PY
for example in crd/examples/avatarrender-*.yaml; do
  if check-jsonschema --schemafile "$work/schema.json" "$example" > /dev/null 2>&1; then ok "$example is valid"; else bad "$example is refused"; fi
done
# Each bad example must be refused for its own field (named by the file), not for any reason.
for example in crd/bad/*.yaml; do
  case "$(basename "$example")" in
    *text*) field=text ;; speed-*) field=speed ;; viseme-set-*) field=visemeSet ;; voice-*) field=voiceId ;;
    *) bad "$example: which field should refuse it? (name it after the field)"; continue ;;
  esac
  if check-jsonschema --schemafile "$work/schema.json" "$example" > "$work/bad.txt" 2>&1; then
    bad "$example is accepted"
  elif grep -q "$field" "$work/bad.txt"; then
    ok "$example is refused ($field)"
  else
    cat "$work/bad.txt"; bad "$example is refused, but not for $field"
  fi
done

# 6. The Dockerfile.
if hadolint --no-color Dockerfile; then ok "hadolint Dockerfile"; else bad "hadolint Dockerfile"; fi

[ "${SKIP_K8S_SERVER:-0}" = 1 ] && { echo "skip the real API server checks (SKIP_K8S_SERVER=1)"; exit $fail; }
scripts/k8s_server_checks.sh || fail=1
exit $fail

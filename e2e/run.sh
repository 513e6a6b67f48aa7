#!/usr/bin/env bash
# End to end on a real cluster: one suite (e2e/suite.sh), two kinds of cluster.
#
#   e2e/run.sh local   a single-node Kubernetes 1.20 cluster built and started here
#                      (e2e/local_cluster.sh: no Docker, no registry; needs root), inside a
#                      network namespace of its own, always torn down
#   e2e/run.sh kind    kind on Docker (docker, kind on PATH), the cluster deleted afterwards
#                      (KEEP_CLUSTER=1 keeps it)
#   e2e/run.sh         kind where a Docker engine runs, the local node otherwise
#
# Images: on kind, the service images are built with the repository's Dockerfile as users
# build them; on the local node, e2e/images.py assembles the same images (entrypoints, users,
# paths and environment read from the Dockerfile) from this machine's build, BIN_DIR (default
# the debug build that `make test` makes; `make e2e-local` builds it). NATS and SeaweedFS
# images come from their PyPI wheels on both.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CACHE:-$HOME/.cache/avatar-pipeline}
export E2E_TAG=${E2E_TAG:-e2e}
mode=${1:-auto}
if [ "$mode" = auto ]; then
  if command -v docker > /dev/null && docker info > /dev/null 2>&1 && command -v kind > /dev/null; then
    mode=kind
  else
    mode=local
  fi
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
SERVERS_BIN=$(scripts/setup_servers.sh)
TOOLS=$(scripts/setup_k8s_tools.sh)
export SERVERS_BIN HELM="$TOOLS/helm"
started=$SECONDS
echo "e2e: the $mode cluster"

case "$mode" in
  local)
    export KUBECTL="$TOOLS/kubectl"
    export BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-$CACHE/target}/debug}
    for b in avatar-gateway avatar-tts avatar-align avatar-lipsync avatar-eyes avatar-controller; do
      [ -x "$BIN_DIR/$b" ] || { echo "e2e: $BIN_DIR/$b is not built (make e2e-local builds it)" >&2; exit 2; }
    done
    RUNTIME_DIR=$(scripts/setup_runtime.sh)
    export RUNTIME_DIR VOICES_DIR=${VOICES_DIR:-$(pwd)/voices}
    [ -f "$VOICES_DIR/en_US-joe-medium.onnx" ] || scripts/download_voices.sh en_US-joe-medium
    K8S_BIN=$(scripts/k8s_build.sh)
    export K8S_BIN
    e2e/images.py "$work/images" "$E2E_TAG" > /dev/null
    echo "e2e: images built in $((SECONDS - started)) s: $(du -sh "$work/images" | cut -f1)"
    # What the machine looks like outside the cluster's namespaces, before and after: the
    # teardown must give it back as it was (kernel settings, files, mounts, cgroups, links,
    # network namespaces, iptables rules in the machine's own namespace).
    machine_state() {
      for s in kernel/panic kernel/panic_on_oops vm/overcommit_memory net/ipv4/ip_forward \
        net/bridge/bridge-nf-call-iptables; do
        echo "$s=$(cat "/proc/sys/$s" 2> /dev/null)"
      done
      ls -d /var/lib/kubelet /var/lib/cni /run/containerd /var/log/pods /var/log/containers \
        /run/netns /sys/fs/cgroup/*/kubepods 2> /dev/null || true
      grep -c -E 'kubelet|containerd|netns' /proc/mounts || true
      ip -o link show | cut -d: -f2
      ip netns list
      iptables-save 2> /dev/null | grep -v '^#' | sed 's/\[[0-9:]*\]//' || true
    }
    machine_state > "$work/state.before"
    status=0
    GATEWAY_ACCESS=service IMAGES_DIR="$work/images" e2e/local_cluster.sh run "$work/cluster" e2e/suite.sh || status=$?
    machine_state > "$work/state.after"
    if ! diff -u "$work/state.before" "$work/state.after"; then
      echo "e2e: FAIL: the machine is not as it was before the cluster (diff above)" >&2
      exit 1
    fi
    echo "e2e: the machine is as it was before the cluster"
    [ "$status" = 0 ] || exit "$status"
    ;;
  kind)
    for tool in docker kind; do
      command -v "$tool" > /dev/null || { echo "e2e: $tool is required" >&2; exit 2; }
    done
    export KUBECTL=${KUBECTL:-$TOOLS/kubectl}
    CLUSTER=${CLUSTER:-avatar-e2e}
    cleanup() {
      [ "${KEEP_CLUSTER:-0}" = 1 ] || kind delete cluster --name "$CLUSTER" > /dev/null 2>&1 || true
      rm -rf "$work"
    }
    trap cleanup EXIT
    kind get clusters 2> /dev/null | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 180s
    export KUBECONFIG="$work/kubeconfig"
    kind get kubeconfig --name "$CLUSTER" > "$KUBECONFIG"
    for target in gateway tts align lipsync eyes controller; do
      docker build --target "$target" -t "localhost/avatar-$target:$E2E_TAG" .
      kind load docker-image --name "$CLUSTER" "localhost/avatar-$target:$E2E_TAG"
    done
    for archive in $(e2e/images.py "$work/images" "$E2E_TAG" nats seaweedfs); do
      kind load image-archive --name "$CLUSTER" "$archive"
    done
    GATEWAY_ACCESS=port-forward e2e/suite.sh
    ;;
  *)
    echo "e2e: unknown cluster '$mode' (local, kind)" >&2
    exit 2
    ;;
esac
echo "e2e: $mode cluster passed in $((SECONDS - started)) s"

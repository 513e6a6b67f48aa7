#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for tests: etcd, kube-apiserver (TLS, token
# authentication, RBAC) and kube-controller-manager (service-account tokens, namespace
# deletion, garbage collection), built from Debian's source package by scripts/k8s_build.sh.
# There is no kubelet: objects are validated and stored, pods never run.
#
#   scripts/k8s_control_plane.sh up DIR          start; writes DIR/env (see below); prints DIR/env
#   scripts/k8s_control_plane.sh restart-apiserver DIR [SECONDS_DOWN]
#   scripts/k8s_control_plane.sh down DIR        stop what `up` started (by its PIDs), remove DIR's state
#
# DIR/env holds shell assignments: KUBECONFIG (cluster admin), APISERVER (https URL), CA_FILE,
# K8S_BIN, KUBECTL, HELM. Everything listens on free loopback ports, all state lives in DIR.
# Only processes this script started are stopped, by the PIDs it recorded.
#
# For a cluster with a node (e2e/local_cluster.sh, inside its own network namespace):
# ADVERTISE_ADDRESS (default 127.0.0.1; what pods reach the API at, behind the kubernetes
# Service), BIND_ADDRESS (default 127.0.0.1), AUTHORIZATION_MODE (default RBAC) and
# EXTRA_TOKENS (a file of more tokens.csv lines, e.g. the kubelet's), API_EXTRA_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
verb=${1:?usage: k8s_control_plane.sh up|down|restart-apiserver DIR}
DIR=${2:?DIR: the working directory of the control plane}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

alive() { [ -f "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2> /dev/null; }
stop() { # name: SIGTERM, then SIGKILL after 10 s
  alive "$1" || { rm -f "$DIR/$1.pid"; return 0; }
  local pid
  pid=$(cat "$DIR/$1.pid")
  kill "$pid" 2> /dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2> /dev/null || true
  rm -f "$DIR/$1.pid"
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_ready() { # until /readyz answers ok
  for _ in $(seq 1 240); do
    if curl -sf --cacert "$DIR/certs/apiserver.crt" -H "Authorization: Bearer $(cat "$DIR/admin.token")" \
      "https://$(cat "$DIR/apiserver.address"):$(cat "$DIR/apiserver.port")/readyz" > /dev/null 2>&1; then
      return 0
    fi
    alive apiserver || { echo "k8s_control_plane: kube-apiserver exited; see $DIR/apiserver.log" >&2; tail -20 "$DIR/apiserver.log" >&2; return 1; }
    sleep 0.25
  done
  echo "k8s_control_plane: kube-apiserver not ready after 60 s; see $DIR/apiserver.log" >&2
  return 1
}
start_apiserver() {
  # shellcheck disable=SC2046
  "$K8S_BIN/kube-apiserver" $(cat "$DIR/apiserver.args") > "$DIR/apiserver.log" 2>&1 &
  echo $! > "$DIR/apiserver.pid"
}

case "$verb" in
  up)
    K8S_BIN=$(scripts/k8s_build.sh)
    TOOLS=$(scripts/setup_k8s_tools.sh)
    command -v etcd > /dev/null || scripts/setup_system.sh k8s
    mkdir -p "$DIR/pki" "$DIR/certs"
    # Service-account signing key and the static tokens: a cluster admin.
    openssl genrsa -out "$DIR/pki/sa.key" 2048 2> /dev/null
    openssl rsa -in "$DIR/pki/sa.key" -pubout -out "$DIR/pki/sa.pub" 2> /dev/null
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/admin.token"
    echo "$(cat "$DIR/admin.token"),admin,admin-uid,\"system:masters\"" > "$DIR/pki/tokens.csv"
    [ -z "${EXTRA_TOKENS:-}" ] || cat "$EXTRA_TOKENS" >> "$DIR/pki/tokens.csv"
    advertise=${ADVERTISE_ADDRESS:-127.0.0.1}
    echo "$advertise" > "$DIR/apiserver.address"
    # A loopback address cannot be the kubernetes Service's endpoint (nothing in a pod could
    # reach it): without a node, keep that Service without endpoints instead of logging errors.
    reconciler=lease
    case "$advertise" in 127.*) reconciler=none ;; esac
    etcd_port=$(free_port)
    peer_port=$(free_port)
    api_port=$(free_port)
    echo "$api_port" > "$DIR/apiserver.port"

    etcd --name default --data-dir "$DIR/etcd" \
      --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
      --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
      --initial-cluster "default=http://127.0.0.1:$peer_port" > "$DIR/etcd.log" 2>&1 &
    echo $! > "$DIR/etcd.pid"

    cat > "$DIR/apiserver.args" << ARGS
--etcd-servers=http://127.0.0.1:$etcd_port
--bind-address=${BIND_ADDRESS:-127.0.0.1} --advertise-address=$advertise --secure-port=$api_port --insecure-port=0
--cert-dir=$DIR/certs --service-cluster-ip-range=10.96.0.0/24
--service-account-issuer=https://kubernetes.default.svc
--service-account-key-file=$DIR/pki/sa.pub --service-account-signing-key-file=$DIR/pki/sa.key
--authorization-mode=${AUTHORIZATION_MODE:-RBAC} --token-auth-file=$DIR/pki/tokens.csv --anonymous-auth=false
--allow-privileged=true --profiling=false --endpoint-reconciler-type=$reconciler
${API_EXTRA_ARGS:-}
ARGS
    start_apiserver
    wait_ready

    cat > "$DIR/admin.kubeconfig" << YAML
apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster:
      server: https://$advertise:$api_port
      certificate-authority: $DIR/certs/apiserver.crt
users:
  - name: admin
    user:
      token: $(cat "$DIR/admin.token")
contexts:
  - name: admin@local
    context: { cluster: local, user: admin, namespace: default }
current-context: admin@local
YAML
    "$K8S_BIN/kube-controller-manager" --kubeconfig="$DIR/admin.kubeconfig" \
      --service-account-private-key-file="$DIR/pki/sa.key" --root-ca-file="$DIR/certs/apiserver.crt" \
      --use-service-account-credentials=false --leader-elect=false \
      --bind-address=127.0.0.1 --secure-port=0 --port=0 --controllers='*,-nodeipam' \
      > "$DIR/controller-manager.log" 2>&1 &
    echo $! > "$DIR/controller-manager.pid"

    cat > "$DIR/env" << ENV
KUBECONFIG=$DIR/admin.kubeconfig
APISERVER=https://$advertise:$api_port
CA_FILE=$DIR/certs/apiserver.crt
K8S_BIN=$K8S_BIN
KUBECTL=$TOOLS/kubectl
HELM=$TOOLS/helm
ENV
    # The default namespace's service account exists once the controllers run.
    for _ in $(seq 1 120); do
      KUBECONFIG="$DIR/admin.kubeconfig" "$TOOLS/kubectl" get serviceaccount default -n default > /dev/null 2>&1 && break
      sleep 0.25
    done
    cat "$DIR/env"
    ;;
  restart-apiserver)
    K8S_BIN=$(sed -n 's/^K8S_BIN=//p' "$DIR/env")
    stop apiserver
    sleep "${3:-0}"
    start_apiserver
    wait_ready
    ;;
  down)
    stop controller-manager
    stop apiserver
    stop etcd
    rm -rf "$DIR/etcd" "$DIR/pki" "$DIR/admin.token"
    ;;
  *)
    echo "k8s_control_plane: unknown verb $verb (up, down, restart-apiserver)" >&2
    exit 2
    ;;
esac

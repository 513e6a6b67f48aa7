#!/usr/bin/env bash
# A single-node Kubernetes v1.20.2 cluster that runs pods from locally built images, with no
# Docker and no registry, inside a network namespace of its own; always torn down.
#
#   e2e/local_cluster.sh run DIR COMMAND...
#
# builds what is missing (scripts/k8s_build.sh: the Kubernetes binaries, cached; Debian's
# containerd, runc, CNI plugins and dnsmasq), imports the docker-archive images in
# $IMAGES_DIR (e2e/images.py), starts etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, containerd, kubelet, kube-proxy and a cluster DNS, runs COMMAND with
# KUBECONFIG (cluster admin), KUBECTL and HELM set, then tears everything down, also when
# COMMAND or the set-up fails, and returns COMMAND's status. Needs root.
#
# Isolation. The node and everything that talks to pod or Service addresses (COMMAND too)
# run in a network namespace made here, entered with nsenter, and in a private mount
# namespace (unshare --propagation slave): pod and Service addresses, the CNI bridge,
# iptables rules and netns-scoped sysctls never exist in the machine's own namespace, and the
# kubelet's and containerd's mounts vanish with the mount namespace. What the kubelet changes
# outside it (kernel.panic, kernel.panic_on_oops, vm.overcommit_memory; cgroups; files under
# /var/lib, /var/log and /run) is recorded before and restored by the teardown trap. Only
# processes started here are stopped, by the PIDs recorded under DIR.
#
# Cluster DNS: there is no CoreDNS package, so dnsmasq answers <service>.<namespace>.svc.
# cluster.local from a hosts file that a loop rewrites from the Services every second.
set -euo pipefail
cd "$(dirname "$0")/.."
verb=${1:?usage: e2e/local_cluster.sh run DIR COMMAND...}
DIR=${2:?DIR: the working directory of the cluster}
shift 2
NODE=avatar-node
NODE_IP=10.254.254.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/24 # as scripts/k8s_control_plane.sh gives the API server
# Kernel settings outside the network namespace that the kubelet (and kube-proxy) may change.
GLOBAL_SYSCTLS=(kernel/panic kernel/panic_on_oops vm/overcommit_memory kernel/keys/root_maxkeys
  kernel/keys/root_maxbytes net/bridge/bridge-nf-call-iptables net/bridge/bridge-nf-call-ip6tables
  net/netfilter/nf_conntrack_max)
# Paths outside DIR that the node's components create and leave behind.
LEFTOVERS=(/var/lib/kubelet /var/lib/cni /run/containerd /var/log/pods /var/log/containers)

log() { printf '%s local_cluster: %s\n' "$(date +%T)" "$*" >&2; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2> /dev/null; }
stop_pid() { # pidfile [signal]: stop the process recorded there, wait up to 10 s, then SIGKILL
  pid_alive "$1" || { rm -f "$1"; return 0; }
  local pid
  pid=$(cat "$1")
  kill "-${2:-TERM}" "$pid" 2> /dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2> /dev/null || true
  rm -f "$1"
}

# ---- outside: the network namespace, the machine state, the trap ----------------------------
outer() {
  [ "$(id -u)" -eq 0 ] || { echo "local_cluster: needs root (network namespaces, containerd, kubelet)" >&2; exit 2; }
  scripts/setup_system.sh k8s node > /dev/null
  K8S_BIN=$(scripts/k8s_build.sh)
  export K8S_BIN
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd)
  NETNS="avatar-e2e-$$"
  echo "$NETNS" > "$DIR/netns"
  # What exists before: only what the cluster adds is removed afterwards.
  : > "$DIR/sysctl.orig"
  for s in "${GLOBAL_SYSCTLS[@]}"; do
    [ -r "/proc/sys/$s" ] && echo "$s=$(cat "/proc/sys/$s")" >> "$DIR/sysctl.orig"
  done
  : > "$DIR/leftovers"
  for p in "${LEFTOVERS[@]}"; do [ -e "$p" ] || echo "$p" >> "$DIR/leftovers"; done
  : > "$DIR/cgroups"
  for c in /sys/fs/cgroup/*/; do [ -d "${c}kubepods" ] || echo "${c}kubepods" >> "$DIR/cgroups"; done
  ls /run/netns 2> /dev/null | sort > "$DIR/netns.before" || true
  [ -d /run/netns ] && touch "$DIR/run-netns-existed"
  trap outer_teardown EXIT
  ip netns add "$NETNS"
  log "network namespace $NETNS"
  local status=0
  nsenter --net="/run/netns/$NETNS" unshare --mount --propagation slave -- \
    "$0" inner "$DIR" "$@" || status=$?
  return $status
}

outer_teardown() {
  local status=$?
  # Every step is attempted, whatever the others did.
  set +e +o pipefail
  # Anything the inner teardown could not stop (it was killed itself, say).
  find "$DIR" -name '*.pid' 2> /dev/null | while read -r f; do stop_pid "$f" KILL; done
  shim_pids | while read -r pid; do kill -9 "$pid" 2> /dev/null || true; done
  while IFS='=' read -r key value; do
    [ -n "$key" ] && echo "$value" > "/proc/sys/$key" 2> /dev/null || true
  done < "$DIR/sysctl.orig"
  [ -f "$DIR/netns" ] && ip netns del "$(cat "$DIR/netns")" 2> /dev/null || true
  # Pod network namespaces' files (their mounts went with the mount namespace).
  if [ -d /run/netns ]; then
    comm -13 "$DIR/netns.before" <(ls /run/netns | sort) | grep '^cni-' | while read -r n; do
      umount "/run/netns/$n" 2> /dev/null || true
      rm -f "/run/netns/$n"
    done
    # `ip netns add` made /run/netns a mount point of its own: undo that too.
    if [ ! -f "$DIR/run-netns-existed" ]; then
      mountpoint -q /run/netns && umount /run/netns
      rmdir /run/netns 2> /dev/null
    fi
  fi
  while read -r c; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2> /dev/null || true
  done < "$DIR/cgroups"
  while read -r p; do rm -rf "$p"; done < "$DIR/leftovers"
  # containerd's snapshots and state, the etcd data: large, and only ours.
  rm -rf "$DIR/containerd" "$DIR/kubelet" "$DIR/cp/etcd"
  log "torn down"
  exit $status
}

shim_pids() { # the containerd shims of our containerd, from its state directory
  find "$DIR/containerd/state" -name shim.pid 2> /dev/null | xargs -r cat 2> /dev/null || true
}

# ---- inside the namespaces: the node, the command, the node's teardown ---------------------
inner() {
  trap inner_teardown EXIT
  # cgroup v1 only, in this mount namespace: with the hybrid layout's cgroup2 mount visible,
  # kubelet 1.20 (cgroupfs driver) creates pod cgroups there too but never removes them, so
  # every deleted pod stays Terminating for good.
  if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
  ip link set lo up
  ip link add avnode0 type bridge
  ip addr add "$NODE_IP/32" dev avnode0
  ip link set avnode0 up
  # Service addresses from the node itself (the suite runs here): kube-proxy's DNAT happens
  # after the route lookup, which needs some route for them.
  ip route add "$SERVICE_CIDR" dev avnode0 src "$NODE_IP"
  echo 1 > /proc/sys/net/ipv4/ip_forward
  # Service traffic between pods on the one bridge must pass iptables (kube-proxy's DNAT).
  echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables

  # The kubelet's identity: a token in the Node authorizer's terms.
  mkdir -p "$DIR/node"
  node_token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  echo "$node_token,system:node:$NODE,node-uid,\"system:nodes\"" > "$DIR/node/tokens.csv"
  ADVERTISE_ADDRESS=$NODE_IP BIND_ADDRESS=0.0.0.0 AUTHORIZATION_MODE=Node,RBAC \
    EXTRA_TOKENS="$DIR/node/tokens.csv" API_EXTRA_ARGS="--kubelet-preferred-address-types=InternalIP" \
    scripts/k8s_control_plane.sh up "$DIR/cp" > "$DIR/cp.env"
  # shellcheck disable=SC1091
  . "$DIR/cp.env"
  # The suite's failure report shows the node's own logs from here.
  NODE_LOG_DIR=$DIR
  export KUBECONFIG KUBECTL HELM NODE_LOG_DIR
  log "control plane up at $APISERVER"

  # containerd, its CNI configuration and the images.
  local c="$DIR/containerd"
  mkdir -p "$c" "$DIR/cni/net.d" "$DIR/cni/ipam"
  cat > "$c/config.toml" << TOML
version = 2
root = "$c/root"
state = "$c/state"
# Plugins that would write outside DIR or need what this machine lacks.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$c/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:local"
  # runc cannot lower oom_score_adj here (no CAP_SYS_RESOURCE in this sandbox).
  restrict_oom_score_adj = true
  disable_apparmor = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_hugetlb_controller = true
  tolerate_missing_hugetlb_controller = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$c/runc"
TOML
  cat > "$DIR/cni/net.d/10-avatar.conflist" << JSON
{
  "cniVersion": "0.4.0",
  "name": "avatar-e2e",
  "plugins": [
    {"type": "bridge", "bridge": "avbr0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$DIR/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  containerd --config "$c/config.toml" > "$DIR/containerd.log" 2>&1 &
  echo $! > "$DIR/containerd.pid"
  CTR=(ctr -a "$c/containerd.sock" -n k8s.io)
  for _ in $(seq 1 100); do "${CTR[@]}" version > /dev/null 2>&1 && break; sleep 0.1; done
  for image in "${IMAGES_DIR:?IMAGES_DIR: the docker-archives to import}"/*.tar; do
    "${CTR[@]}" images import "$image" > /dev/null
  done
  log "containerd up, $(ls "$IMAGES_DIR"/*.tar | wc -l) images imported"

  # Cluster DNS.
  : > "$DIR/cluster-hosts"
  # As root: by default dnsmasq drops to nobody, who may not reach DIR (mktemp makes 0700 dirs).
  dnsmasq --keep-in-foreground --user=root --no-resolv --no-hosts --bind-interfaces --listen-address="$NODE_IP" \
    --addn-hosts="$DIR/cluster-hosts" --local=/#/ --pid-file= --log-facility=- > "$DIR/dnsmasq.log" 2>&1 &
  echo $! > "$DIR/dnsmasq.pid"
  # Until it answers (a SIGHUP before its handler is installed would end it).
  for _ in $(seq 1 100); do
    python3 - "$NODE_IP" << 'PY' 2> /dev/null && break
import socket, sys
query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05probe\x00\x00\x01\x00\x01"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.2)
s.sendto(query, (sys.argv[1], 53))
s.recv(512)
PY
    sleep 0.1
  done
  (
    while true; do
      "$KUBECTL" get services --all-namespaces \
        -o jsonpath='{range .items[*]}{.spec.clusterIP} {.metadata.name}.{.metadata.namespace}.svc.cluster.local{"\n"}{end}' \
        2> /dev/null | grep -v '^None ' | grep -v '^ ' > "$DIR/cluster-hosts.new" || true
      if ! cmp -s "$DIR/cluster-hosts.new" "$DIR/cluster-hosts"; then
        mv "$DIR/cluster-hosts.new" "$DIR/cluster-hosts"
        pid_alive "$DIR/dnsmasq.pid" && kill -HUP "$(cat "$DIR/dnsmasq.pid")"
      fi
      sleep 1
    done
  ) &
  echo $! > "$DIR/dns-refresh.pid"

  # The node's components.
  cat > "$DIR/node/kubelet.kubeconfig" << YAML
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "$APISERVER", certificate-authority: "$CA_FILE"}}]
users: [{name: node, user: {token: "$node_token"}}]
contexts: [{name: node, context: {cluster: local, user: node}}]
current-context: node
YAML
  echo "search cluster.local" > "$DIR/node/resolv.conf"
  cat > "$DIR/node/kubelet.yaml" << YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
readOnlyPort: 0
address: $NODE_IP
healthzBindAddress: 127.0.0.1
healthzPort: 10248
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
resolvConf: $DIR/node/resolv.conf
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
YAML
  cat > "$DIR/node/kube-proxy.yaml" << YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$KUBECONFIG"}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
  "$K8S_BIN/kube-scheduler" --kubeconfig="$KUBECONFIG" --leader-elect=false \
    --bind-address=127.0.0.1 --secure-port=0 --port=0 > "$DIR/scheduler.log" 2>&1 &
  echo $! > "$DIR/scheduler.pid"
  "$K8S_BIN/kubelet" --kubeconfig="$DIR/node/kubelet.kubeconfig" --config="$DIR/node/kubelet.yaml" \
    --root-dir="$DIR/kubelet" --cert-dir="$DIR/kubelet/pki" --container-runtime=remote \
    --container-runtime-endpoint="unix://$c/containerd.sock" --hostname-override="$NODE" \
    --node-ip="$NODE_IP" --pod-infra-container-image=localhost/pause:local --v=1 \
    > "$DIR/kubelet.log" 2>&1 &
  echo $! > "$DIR/kubelet.pid"
  "$K8S_BIN/kube-proxy" --config="$DIR/node/kube-proxy.yaml" > "$DIR/kube-proxy.log" 2>&1 &
  echo $! > "$DIR/kube-proxy.pid"
  local ready=""
  for _ in $(seq 1 300); do
    ready=$("$KUBECTL" get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2> /dev/null || true)
    [ "$ready" = True ] && break
    pid_alive "$DIR/kubelet.pid" || { tail -30 "$DIR/kubelet.log" >&2; break; }
    sleep 0.2
  done
  [ "$ready" = True ] || { log "the node did not become Ready; see $DIR/kubelet.log"; tail -20 "$DIR/kubelet.log" >&2; return 1; }
  log "node $NODE Ready"
  "$@"
}

inner_teardown() {
  local status=$?
  set +e
  log "tearing down (status $status)"
  if [ "${KEEP_LOGS:-}" ]; then cp "$DIR"/*.log "$KEEP_LOGS" 2> /dev/null; fi
  stop_pid "$DIR/kube-proxy.pid"
  stop_pid "$DIR/kubelet.pid"
  stop_pid "$DIR/scheduler.pid"
  stop_pid "$DIR/dns-refresh.pid"
  stop_pid "$DIR/dnsmasq.pid"
  # The containers: their processes, then their shims, then containerd.
  if [ -S "$DIR/containerd/containerd.sock" ]; then
    local CTR=(ctr -a "$DIR/containerd/containerd.sock" -n k8s.io)
    for t in $("${CTR[@]}" tasks ls -q 2> /dev/null); do "${CTR[@]}" tasks kill -s SIGKILL "$t" > /dev/null 2>&1; done
    for _ in $(seq 1 50); do [ -z "$("${CTR[@]}" tasks ls -q 2> /dev/null | head -1)" ] && break; sleep 0.1; done
  fi
  shim_pids | while read -r pid; do kill -9 "$pid" 2> /dev/null || true; done
  stop_pid "$DIR/containerd.pid"
  scripts/k8s_control_plane.sh down "$DIR/cp" > /dev/null 2>&1
  # kube-proxy --cleanup is not needed: its rules live in this network namespace only.
  exit $status
}

case "$verb" in
  run) outer "$@" ;;
  inner) inner "$@" ;;
  *) echo "local_cluster: unknown verb $verb (run)" >&2; exit 2 ;;
esac

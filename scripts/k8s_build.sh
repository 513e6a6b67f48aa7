#!/usr/bin/env bash
# Builds Kubernetes v1.20.2 from Debian bookworm's own `kubernetes` source package (every Go
# dependency vendored: no network beyond Debian's archive) and prints the directory holding
# the binaries. Built once per machine, then cached under K8S_CACHE (the Go build cache too):
#
#   scripts/k8s_build.sh          kube-apiserver kube-controller-manager kube-scheduler
#                                 kubelet kube-proxy, and the pause image's static binary
#
# A fresh 2-core machine takes 15 to 20 minutes; a warm cache answers at once.
# Fix applied to the source (RECIPES.md): the vendored modern-go/reflect2 1.0.1 crashes under
# Go >= 1.18 on the first custom-resource create; Debian's 1.0.2 replaces it.
set -euo pipefail
cd "$(dirname "$0")/.."
K8S_CACHE=${K8S_CACHE:-$HOME/.cache/avatar-pipeline/k8s}
VERSION=1.20.2
BIN="$K8S_CACHE/v$VERSION/bin"
WHAT=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

have_all() {
  for b in "${WHAT[@]}" pause; do [ -x "$BIN/$b" ] || return 1; done
}
if have_all; then echo "$BIN"; exit 0; fi

scripts/setup_system.sh k8s node
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo -n)

src="$K8S_CACHE/src"
tree="$src/kubernetes-$VERSION"
if [ ! -f "$tree/.avatar-prepared" ]; then
  # apt-get source needs deb-src entries: derive them from the machine's own deb entries.
  if ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "k8s_build: adding deb-src entries next to the machine's deb entries" >&2
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
        "${SUDO[@]}" tee /etc/apt/sources.list.d/avatar-deb-src.sources > /dev/null
    else
      grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' |
        "${SUDO[@]}" tee /etc/apt/sources.list.d/avatar-deb-src.list > /dev/null
    fi
    "${SUDO[@]}" apt-get update -qq >&2
  fi
  rm -rf "$src"
  mkdir -p "$src"
  echo "k8s_build: fetching Debian's kubernetes source package" >&2
  (cd "$src" && apt-get source --download-only kubernetes >&2)
  orig=$(ls "$src"/kubernetes_*"really$VERSION".orig.tar.gz)
  tar xzf "$orig" -C "$src"
  [ -d "$tree" ] || { echo "k8s_build: $orig did not unpack into $tree" >&2; exit 1; }
  reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
  vendored="$tree/vendor/github.com/modern-go/reflect2"
  rm -f "$vendored"/*.go "$vendored"/*.s
  for f in "$reflect2"/*.go "$reflect2"/*.s; do
    case "$f" in *_test.go) ;; *) [ -e "$f" ] && cp "$f" "$vendored/" ;; esac
  done
  touch "$tree/.avatar-prepared"
fi

echo "k8s_build: building ${WHAT[*]} (first time: 15-20 minutes on 2 cores)" >&2
targets=()
for b in "${WHAT[@]}"; do targets+=("cmd/$b"); done
export GOCACHE="$K8S_CACHE/go-build"
(
  cd "$tree"
  PATH=/usr/lib/go-1.19/bin:$PATH CGO_ENABLED=0 GOMAXPROCS=${JOBS:-2} \
    make WHAT="${targets[*]}" KUBE_VERBOSE=0 >&2
)
mkdir -p "$BIN"
for b in "${WHAT[@]}"; do
  install -m 0755 "$tree/_output/bin/$b" "$BIN/$b.tmp"
  mv "$BIN/$b.tmp" "$BIN/$b"
done
# The pod sandbox ("pause") image's one binary, from the same tree.
gcc -Os -static -o "$BIN/pause.tmp" "$tree/build/pause/linux/pause.c"
mv "$BIN/pause.tmp" "$BIN/pause"
# The source tree and its build outputs are large; the binaries and Go's cache are enough.
rm -rf "$tree/_output"
echo "$BIN"

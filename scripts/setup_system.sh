#!/usr/bin/env bash
# Installs the Debian packages a task needs, only those the machine lacks, through apt-get (as
# root, or with sudo when it works without a password); otherwise names the missing packages
# and the command that installs them, and fails. One list per task, one place for all of them:
#
#   scripts/setup_system.sh build      the Rust build (cmake: the `opus` crate always builds its
#                                      bundled libopus; it has no switch for the system one)
#   scripts/setup_system.sh test       the tests' independent decoders and browser (ffmpeg,
#                                      opus-tools, chromium), curl; for the align tests sox and
#                                      espeak-ng (gcc, libespeak-ng-dev: a second engine's speech)
#   scripts/setup_system.sh k8s        the Kubernetes control plane built from Debian's source
#                                      package (Go 1.19, etcd, the source itself needs deb-src)
#   scripts/setup_system.sh node       a single-node cluster (containerd, runc, CNI plugins, dnsmasq,
#                                      iptables, conntrack, the pause image's static build)
#
# Several tasks may be named at once. Idempotent and quick when nothing is missing.
# `scripts/setup_system.sh --list TASK...` prints the packages instead, one per line.
set -euo pipefail

packages_for() {
  case "$1" in
    build) echo cmake curl ;;
    test) echo ffmpeg opus-tools chromium curl sox gcc libespeak-ng-dev ;;
    k8s) echo golang-1.19-go rsync jq etcd-server golang-github-modern-go-reflect2-dev openssl dpkg-dev ;;
    node) echo containerd runc containernetworking-plugins iptables conntrack iproute2 util-linux dnsmasq-base libc6-dev gcc ;;
    *) echo "setup_system: unknown task '$1' (build, test, k8s, node)" >&2; return 2 ;;
  esac
}

if [ "${1:-}" = --list ]; then
  shift
  for task in "$@"; do packages_for "$task" | tr ' ' '\n'; done | sort -u
  exit 0
fi
[ $# -gt 0 ] || set -- build test
missing=()
for task in "$@"; do
  for p in $(packages_for "$task"); do
    # dpkg-query's status, not `dpkg -s` alone: a removed package keeps its config ("rc").
    if ! dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q "install ok installed"; then
      case " ${missing[*]:-} " in *" $p "*) ;; *) missing+=("$p") ;; esac
    fi
  done
done
[ ${#missing[@]} -gt 0 ] || exit 0

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo > /dev/null && sudo -n true 2> /dev/null; then
    SUDO=(sudo -n)
  else
    echo "setup_system: these Debian packages are missing: ${missing[*]}" >&2
    echo "setup_system: install them as root: apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi
echo "setup_system: installing ${missing[*]}" >&2
"${SUDO[@]}" apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2

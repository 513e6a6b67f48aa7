#!/usr/bin/env bash
# Renders charts/avatar (with its CRDs) to stdout: `scripts/render_chart.sh [helm args...]`.
# The chart's optional NATS dependency (nats.enabled) is fetched from the NATS repository by
# `helm dependency build`, which these offline machines cannot reach; it is only used when
# enabled, so the rendering here runs on a copy of the chart without the dependency declared.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=$(scripts/setup_k8s_tools.sh)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r charts/avatar "$work/avatar"
if [ ! -d charts/avatar/charts/nats ]; then
  "$TOOLS/../venv/bin/python" - "$work/avatar/Chart.yaml" <<'PY'
import sys, yaml
path = sys.argv[1]
chart = yaml.safe_load(open(path))
chart.pop("dependencies", None)
yaml.safe_dump(chart, open(path, "w"), sort_keys=False)
PY
fi
"$TOOLS/helm" template avatar "$work/avatar" --namespace avatar --include-crds "$@"

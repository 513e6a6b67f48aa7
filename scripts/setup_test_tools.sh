#!/usr/bin/env bash
# Installs the test-only tools from PyPI into TEST_TOOLS_DIR and prints its bin directory:
#   schemathesis   the OpenAPI fuzzer run against the gateway's served document
#   pocketsphinx   the forced aligner the lip-sync check scores cues against (with its
#                  bundled US-English model)
# Idempotent.
set -euo pipefail
TEST_TOOLS_DIR=${TEST_TOOLS_DIR:-$HOME/.cache/avatar-pipeline/test-tools}
PYTHON=${PYTHON:-python3}
SCHEMATHESIS_VERSION=4.32.5
POCKETSPHINX_VERSION=5.1.1
stamp="$TEST_TOOLS_DIR/.installed-schemathesis-$SCHEMATHESIS_VERSION-pocketsphinx-$POCKETSPHINX_VERSION"
if [ ! -f "$stamp" ]; then
  echo "setup_test_tools: installing schemathesis $SCHEMATHESIS_VERSION and pocketsphinx $POCKETSPHINX_VERSION from PyPI" >&2
  "$PYTHON" -m venv "$TEST_TOOLS_DIR"
  "$TEST_TOOLS_DIR/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION" "pocketsphinx==$POCKETSPHINX_VERSION" >&2
  touch "$stamp"
fi
echo "$TEST_TOOLS_DIR/bin"

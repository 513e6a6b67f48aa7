#!/usr/bin/env bash
# Installs the test-only tools from PyPI into TEST_TOOLS_DIR and prints its bin directory:
#   schemathesis   the OpenAPI fuzzer run against the gateway's served document
# Idempotent.
set -euo pipefail
TEST_TOOLS_DIR=${TEST_TOOLS_DIR:-$HOME/.cache/avatar-pipeline/test-tools}
PYTHON=${PYTHON:-python3}
SCHEMATHESIS_VERSION=4.32.5
if [ ! -x "$TEST_TOOLS_DIR/bin/st" ] || ! "$TEST_TOOLS_DIR/bin/st" --version 2> /dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "setup_test_tools: installing schemathesis $SCHEMATHESIS_VERSION from PyPI" >&2
  "$PYTHON" -m venv "$TEST_TOOLS_DIR"
  "$TEST_TOOLS_DIR/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION" >&2
fi
echo "$TEST_TOOLS_DIR/bin"

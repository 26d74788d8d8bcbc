#!/usr/bin/env bash
# Set up from scratch (if needed) and run lint, type checks and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
source scripts/env.sh
echo "ESCNET_DATA_DIR=${ESCNET_DATA_DIR:-<unset>} ESCNET_WEIGHTS_DIR=${ESCNET_WEIGHTS_DIR:-<unset>}"
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
# pytest exits 5 when it collects nothing: that is a failure here, not a success.
set +e
.venv/bin/python -m pytest -ra "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$status"

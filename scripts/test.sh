#!/usr/bin/env bash
# Set up from scratch (if needed) and run lint, type checks and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
source scripts/env.sh
# The web page's browser test drives Debian's chromium through Playwright (Playwright's own browser
# download cannot work offline). Install it when we may. The test must run here, not skip: without
# a browser it fails (ESCNET_REQUIRE_BROWSER=1; set it to 0 to let it skip on a machine that has
# none and cannot get one).
export ESCNET_REQUIRE_BROWSER="${ESCNET_REQUIRE_BROWSER:-1}"
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
    || echo "chromium could not be installed: the page test will fail" >&2
fi
echo "ESCNET_DATA_DIR=${ESCNET_DATA_DIR:-<unset>} ESCNET_WEIGHTS_DIR=${ESCNET_WEIGHTS_DIR:-<unset>}"
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy
# The documentation site: a broken link or a missing API reference fails here.
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
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

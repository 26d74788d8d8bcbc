#!/usr/bin/env bash
# Create .venv (if needed) and install escnet with its test tools into it.
# torch/torchvision are pinned to the releases this project is tested with; on other
# platforms set ESCNET_TORCH_SPEC to override, e.g. ESCNET_TORCH_SPEC="torch torchvision".
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# shellcheck disable=SC2086
.venv/bin/python -m pip install -q ${ESCNET_TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}
.venv/bin/python -m pip install -q -e ".[dev]"

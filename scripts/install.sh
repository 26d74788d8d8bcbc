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
# torch's x86_64 wheel brings its CUDA libraries: about 6 GB in the venv. Say so up front
# instead of letting pip fail half-way with "No space left on device".
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  free_gb=$(df -Pk . | awk 'NR==2 {print int($4 / 1048576)}')
  if [ "${free_gb:-0}" -lt "${ESCNET_MIN_FREE_GB:-7}" ]; then
    echo "scripts/install.sh: only ${free_gb} GB free under $(pwd); installing torch needs about" \
      "7 GB: free some space (or set ESCNET_MIN_FREE_GB to override)" >&2
    exit 2
  fi
fi
# shellcheck disable=SC2086
.venv/bin/python -m pip install -q ${ESCNET_TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}
.venv/bin/python -m pip install -q -e ".[dev]"

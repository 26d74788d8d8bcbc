#!/usr/bin/env bash
# Set up from scratch (if needed) and run escnet's main job on ESC-50.
# Data: $ESCNET_DATA_DIR/esc50 (../shared/datasets when present); otherwise it is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
source scripts/env.sh
if ! .venv/bin/escnet info --dataset esc50 >/dev/null 2>&1; then
  .venv/bin/escnet download esc50
fi
.venv/bin/escnet info --dataset esc50
.venv/bin/escnet prepare --dataset esc50

#!/usr/bin/env bash
# Set up from scratch (if needed) and run escnet's main job: the default recipe, fine-tuning the
# AudioSet-pretrained mn04_as with offline NAA on ESC-50, test fold 1 (10 min on 2 cores with
# a fresh cache, 7 min once the spectral images and NAA variants are cached).
# Data: $ESCNET_DATA_DIR/esc50 (../shared/datasets when present); otherwise it is downloaded.
# Weights: $ESCNET_WEIGHTS_DIR (../shared/weights when present); otherwise they are downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
source scripts/env.sh
if ! .venv/bin/escnet info --dataset esc50 >/dev/null 2>&1; then
  .venv/bin/escnet download esc50
fi
.venv/bin/escnet info --dataset esc50
.venv/bin/escnet train --dataset esc50 --model mn04_as --pretrained --augment naa --folds 1 \
  --epochs 3 --lr 3e-4 --warmup-epochs 0.3 --label-smoothing 0.1 "$@"

#!/usr/bin/env bash
# Set up from scratch (if needed) and run escnet's main job: `escnet fit --recipe main` on all
# five official ESC-50 folds (the recipe was chosen on validation splits by
# benchmarks/ablation_probe.py; see the README's "Accuracy on a CPU"). Four probes of the frozen
# AudioSet mn04_as, each fitted with its regularisation chosen on validation, then their
# temperature-calibrated ensemble with weights chosen on validation; it prints each member's
# folds, the mean +- std over the folds and the report's path. The recipe is then refitted on all
# 2000 clips (the L2 penalties, temperatures and weights taken from the cross-validation) into
# $runs/final, the model `escnet predict $runs` and `escnet serve $runs` use, and three clips are
# labelled with it to show it works.
# Data: $ESCNET_DATA_DIR/esc50 (../shared/data when present); otherwise it is downloaded.
# Weights: $ESCNET_WEIGHTS_DIR (../shared/weights when present); otherwise they are downloaded.
# Runs go to $ESCNET_MAIN_RUNS (default runs/main); a rerun skips what is finished.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
source scripts/env.sh
escnet=.venv/bin/escnet
if ! "$escnet" info --dataset esc50 >/dev/null 2>&1; then
  "$escnet" download esc50
fi
"$escnet" info --dataset esc50
runs="${ESCNET_MAIN_RUNS:-runs/main}"
# The recipe "main" (escnet recipes): its four members cross-validated (runs/main/<member>),
# their ensemble (runs/main/recipe), the refit on all clips (runs/main/final) and the report.
"$escnet" fit --recipe main --dataset esc50 --out "$runs"
mapfile -t clips < <(.venv/bin/python -c "import escnet
ds = escnet.get_dataset('esc50')
print(*(ds[i].path for i in (0, 700, 1400)), sep='\n')")
"$escnet" predict "$runs" "${clips[@]}" --top-k 3
echo "label your own recordings with it: .venv/bin/escnet predict $runs FILE|DIR..."

#!/usr/bin/env bash
# Set up from scratch (if needed) and run escnet's main job: the probe recipe on all five
# official ESC-50 folds, chosen on validation splits by benchmarks/ablation_probe.py (see the
# README's "Accuracy on a CPU"). Four probes of the frozen AudioSet mn04_as, each fitted with its
# regularisation chosen on validation, then their temperature-calibrated ensemble with weights
# chosen on validation; it prints the mean +- std over the folds and the report's path.
# The recipe is then refitted on all 2000 clips (escnet refit: the L2 penalties, temperatures and
# weights taken from the cross-validation) into $runs/final, the model `escnet predict $runs` and
# `escnet serve $runs` use, and three clips are labelled with it to show it works.
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
probe=(train --method probe --model mn04_as --dataset esc50 --folds 1-5 --resume)
# The four members (rows b12-16-shift-tta, b10-16-shift-tta, b12-16-naa-mlp and all-shift-tta of
# the table; ens-4 there).
"$escnet" "${probe[@]}" --augment naa --probe-views shift --probe-blocks 12,16 --tta \
  --run-dir "$runs/b12-16-shift-tta"
"$escnet" "${probe[@]}" --augment naa --probe-views shift --probe-blocks 10,12,14,16 --tta \
  --run-dir "$runs/b10-16-shift-tta"
"$escnet" "${probe[@]}" --augment naa --probe-blocks 12,16 --probe-head mlp \
  --run-dir "$runs/b12-16-naa-mlp"
"$escnet" "${probe[@]}" --augment naa --probe-views shift --tta \
  --probe-blocks 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16 --run-dir "$runs/all-shift-tta"
if [ ! -f "$runs/recipe/results.json" ]; then
  "$escnet" ensemble "$runs/b12-16-shift-tta" "$runs/b10-16-shift-tta" "$runs/b12-16-naa-mlp" \
    "$runs/all-shift-tta" --out "$runs/recipe"
else  # finished by an earlier call: say so, with its figures
  .venv/bin/python - "$runs/recipe" <<'PY'
import json, sys
acc = json.load(open(f"{sys.argv[1]}/results.json"))["summary"]["accuracy"]
print(f"finished earlier: accuracy {100 * acc['mean']:.2f} % +- {100 * acc['std']:.2f}")
print(f"report: {sys.argv[1]}/report.md")
PY
fi
if [ ! -f "$runs/final/model.json" ]; then
  "$escnet" refit "$runs/recipe" --out "$runs/final"
fi
mapfile -t clips < <(.venv/bin/python -c "import escnet
ds = escnet.get_dataset('esc50')
print(*(ds[i].path for i in (0, 700, 1400)), sep='\n')")
"$escnet" predict "$runs" "${clips[@]}" --top-k 3
echo "label your own recordings with it: .venv/bin/escnet predict $runs FILE|DIR..."

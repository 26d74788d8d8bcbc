#!/bin/bash
# The paper's large models on ESC-10, in one go on a lent GPU machine that
# has PyTorch but no network and none of escnet's audio packages.
#
#   CARRY=.gpu OUT=/some/dir BUDGET_S=530 bash experiments/run-paper-gpu.sh
#
# CARRY holds what travels with the working tree (git-ignored; experiments/prepare-gpu-carry.sh
# fills it):
#   $CARRY/whl/*.whl       wheels of the packages the machine lacks (soundfile, soxr, librosa,
#                          audioread, pooch, platformdirs, cffi, pycparser, decorator)
#   $CARRY/data/esc50/     meta/esc50.csv and the 400 ESC-10 clips of audio/ (about 35 MB)
#   $CARRY/COMMIT          the commit of the tree sent, recorded in each cell.json
# It runs experiments/paper-gpu.toml (ImageNet fine-tuning, the paper's experiment) when torch's
# hub cache holds all four ImageNet weight files, else experiments/paper-gpu-random-init.toml.
# By default the cells run in two streams at once on the one GPU (their batches of 32 leave it
# idle between kernels; four streams ran on an H200 too), each stopped after BUDGET_S seconds;
# a cell stopped mid-way keeps its finished folds and is marked incomplete by `escnet results`.
# What comes back in $OUT: machine.txt, one log per stream, and runs.tgz (the run directories
# without checkpoints or saved models), refreshed every minute so that a kill from outside still
# returns the folds finished by then.
# STREAMS chooses other cells and streams: cell-name patterns, space-separated within a stream,
# streams separated by ';' (WORKERS data-loader processes each, by default the cores shared out).
# Completed cells and folds are skipped, so carrying a run root back resumes it; so are the cells
# that results/results.csv (travelling with the tree) holds complete, through --recorded.
set -u
CARRY=${CARRY:-.gpu}
OUT=${OUT:-runs/gpu-out}
BUDGET_S=${BUDGET_S:-530}
DEVICE=${DEVICE:-cuda}  # cpu only to try the script itself out
mkdir -p "$OUT"
started=$(date +%s)

if compgen -G "$CARRY/whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/escnet-site "$CARRY"/whl/*.whl || exit 1
  export PYTHONPATH="/tmp/escnet-site:$PWD/src"
else
  export PYTHONPATH="$PWD/src"
fi
export ESCNET_COMMIT="${ESCNET_COMMIT:-$(cat "$CARRY/COMMIT" 2>/dev/null)}"
export PYTHONUNBUFFERED=1

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  nproc
  python3 -c 'import sys, torch, torchvision, numpy; print(sys.version.split()[0], torch.__version__, torchvision.__version__, numpy.__version__, torch.cuda.get_device_name(0))'
} >"$OUT/machine.txt" 2>&1

hub=$(python3 -c 'import torch; print(torch.hub.get_dir())')/checkpoints
grid=experiments/paper-gpu.toml
for f in resnet152-394f9c45.pth densenet161-8d451a50.pth vgg16-397923af.pth alexnet-owt-7be5be79.pth; do
  [ -f "$hub/$f" ] || grid=experiments/paper-gpu-random-init.toml
done
echo "grid: $grid (hub cache $hub)" >>"$OUT/machine.txt"
root=$(python3 -c "import sys, tomllib; print(tomllib.load(open(sys.argv[1], 'rb'))['grid']['out'])" "$grid")

pack() {
  [ -d "$root" ] || return 0
  tar czf "$OUT/runs.tgz.part" --exclude='*.pt' --exclude='model' "$root" &&
    mv "$OUT/runs.tgz.part" "$OUT/runs.tgz"
}
(while sleep 60; do pack; done) &
packer=$!

STREAMS=${STREAMS:-'esc10-resnet152-* esc10-vgg16-*; esc10-densenet161-* esc10-alexnet-*'}
IFS=';' read -r -a streams <<<"$STREAMS"
WORKERS=${WORKERS:-$(( ($(nproc) - ${#streams[@]}) / ${#streams[@]} ))}
recorded=()
[ -f results/results.csv ] && recorded=(--recorded results/results.csv)
left=$((BUDGET_S - ($(date +%s) - started)))
stream() {  # one stream: its cells in grid order, stopped at the budget
  timeout "$left" python3 -m escnet -q experiment "$grid" --data-dir "$CARRY/data" \
    --cache-dir /tmp/escnet-cache --device "$DEVICE" --workers "$WORKERS" --keep-going \
    "${recorded[@]}" --only "$@"
}
set -f  # the patterns below are split into words, never matched against files here
pids=()
for i in "${!streams[@]}"; do
  # shellcheck disable=SC2086
  stream ${streams[$i]} >"$OUT/stream$i.log" 2>&1 &
  pids+=($!)
done
for i in "${!pids[@]}"; do
  wait "${pids[$i]}"; echo "stream $i (${streams[$i]}) rc $?" >>"$OUT/machine.txt"
done
kill $packer 2>/dev/null
pack
echo "done in $(($(date +%s) - started)) s" >>"$OUT/machine.txt"

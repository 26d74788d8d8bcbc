#!/bin/bash
# Fill the folder that experiments/run-paper-gpu.sh carries to a lent GPU machine, which has
# PyTorch but no network and none of escnet's audio packages:
#
#   bash experiments/prepare-gpu-carry.sh DATA_DIR      # DATA_DIR holds esc50/ (or set
#                                                       # ESCNET_DATA_DIR and leave it out)
#
# It writes, under CARRY (default .gpu, git-ignored):
#   whl/         wheels for the GPU machine's Python (PY_VERSION, default 3.12) of the audio
#                packages, at the versions installed here, so that machine runs what the tests ran
#   data/esc50/  meta/esc50.csv and ESC-10's 400 clips (about 38 MB; ESC-50's 2000 clips would
#                not fit the 64 MiB a call may carry)
#   COMMIT       the commit of the tree, which the cells record (commit first: a dirty tree's
#                cells would name a commit that lacks the change)
# Run it from the repository root. The versions are read from PYTHON (default: .venv/bin/python
# when scripts/install.sh made it, else python3). Needs the package registry.
set -euo pipefail
CARRY=${CARRY:-.gpu}
PY_VERSION=${PY_VERSION:-3.12}
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  [ -x .venv/bin/python ] && PYTHON=.venv/bin/python
fi
data=${1:-${ESCNET_DATA_DIR:-}}
if [ -z "$data" ] || [ ! -f "$data/esc50/meta/esc50.csv" ]; then
  echo "prepare-gpu-carry.sh: no esc50/meta/esc50.csv under '${data}'; give the data directory" \
    "that holds esc50/ as the argument (or set ESCNET_DATA_DIR)" >&2
  exit 2
fi
mkdir -p "$CARRY/whl" "$CARRY/data/esc50/meta" "$CARRY/data/esc50/audio"

# The packages escnet needs that the GPU image lacks (its list: the device tool's KINDS.md).
for pkg in soundfile soxr librosa audioread pooch platformdirs cffi pycparser decorator; do
  version=$("$PYTHON" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$pkg")
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$CARRY/whl" "$pkg==$version"
done

# ESC-10: the metadata rows marked esc10, each clip found by its stem whatever its extension
# (the metadata says .wav; a re-encoded copy may hold .flac).
python3 - "$data/esc50" "$CARRY/data/esc50" <<'PY'
import csv
import shutil
import sys
from pathlib import Path

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
with open(src / "meta" / "esc50.csv", newline="", encoding="utf-8") as f:
    rows = [r for r in csv.DictReader(f) if r["esc10"].strip().lower() in ("true", "1")]
missing = []
for r in rows:
    stem = Path(r["filename"]).stem
    found = sorted((src / "audio").glob(f"{stem}.*"))
    if not found:
        missing.append(stem)
        continue
    shutil.copy2(found[0], dst / "audio" / found[0].name)
shutil.copy2(src / "meta" / "esc50.csv", dst / "meta" / "esc50.csv")
if missing:
    sys.exit(f"{src / 'audio'}: {len(missing)} ESC-10 clip(s) missing, e.g. {missing[0]}")
print(f"{len(rows)} ESC-10 clips copied to {dst / 'audio'}")
PY

git rev-parse HEAD >"$CARRY/COMMIT"
[ -z "$(git status --porcelain --untracked-files=no)" ] ||
  echo "prepare-gpu-carry.sh: the tree has uncommitted changes; COMMIT names HEAD without them" >&2
du -sh "$CARRY"

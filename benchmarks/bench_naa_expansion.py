"""Offline NAA expansion benchmark: escnet vs the paper's way, on the same ESC-50 clips.

The paper's way, clip by clip in one process: ``librosa.load`` at 22050 Hz, then the six NAA
variants with librosa (``np.roll`` time shift with the wrapped part zeroed,
``effects.pitch_shift`` +2/-2 semitones, ``effects.time_stretch`` 0.7/1.2, silence trimmed with
``effects.split``), each fixed to 5 s and turned into ``melspectrogram`` + ``power_to_db``.
escnet: ``expand_clips`` (same DSP library, processes over the cores, batched torch log-mel,
cache), cold (empty cache) and warm (second run). Quality is the same by construction (the same
librosa calls); the tests in tests/test_augment_audio.py check pitch and duration.

    python benchmarks/bench_naa_expansion.py --data-dir ../shared/data [--clips 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe  # noqa: E402
from escnet.data.datasets import get_dataset  # noqa: E402
from escnet.data.folds import fold_split  # noqa: E402
from escnet.features.offline_naa import expand_clips  # noqa: E402

SR, N = 22050, 110250


def paper_way(paths: list[Path], seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    images = 0
    for p in paths:
        y, _ = librosa.load(p, sr=SR)
        y = librosa.util.fix_length(y, size=N)
        shift = int(rng.integers(int(SR * 0.5)))
        shifted = np.roll(y, shift)
        shifted[:shift] = 0
        intervals = librosa.effects.split(y, top_db=30)
        trimmed = np.concatenate([y[a:b] for a, b in intervals]) if len(intervals) else y
        variants = [
            y,
            shifted,
            librosa.effects.pitch_shift(y, sr=SR, n_steps=2),
            librosa.effects.pitch_shift(y, sr=SR, n_steps=-2),
            librosa.effects.time_stretch(y, rate=0.7),
            librosa.effects.time_stretch(y, rate=1.2),
            trimmed,
        ]
        for v in variants:
            mel = librosa.feature.melspectrogram(y=librosa.util.fix_length(v, size=N), sr=SR)
            librosa.power_to_db(mel)
            images += 1
    return images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", help="directory holding esc50/ (default $ESCNET_DATA_DIR)")
    ap.add_argument("--clips", type=int, default=200, help="training clips of split 1 to use")
    ap.add_argument("--workers", type=int, default=None, help="escnet processes")
    args = ap.parse_args()

    ds = get_dataset("esc50", data_dir=args.data_dir)
    train = list(fold_split(ds, 1).train)[: args.clips]
    n = len(train)

    t0 = time.perf_counter()
    paper_images = paper_way([ds[i].path for i in train])
    t_paper = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        cold = expand_clips(ds, train, cache_dir=cache, workers=args.workers, progress=False)
        t_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        warm = expand_clips(ds, train, cache_dir=cache, workers=args.workers, progress=False)
        t_warm = time.perf_counter() - t0
    assert len(cold.features) == len(warm.features) == paper_images == 7 * n

    print(f"Machine: {describe()}")
    print(f"Data: ESC-50, {n} training clips of split 1 (fold 1 held out) -> {7 * n} images\n")
    print("| pipeline | seconds | clips/s | speed-up vs paper's way |")
    print("|---|---:|---:|---:|")
    for name, t in [
        ("librosa, clip by clip, one process (the paper's way)", t_paper),
        ("escnet expand, cold (empty cache)", t_cold),
        ("escnet expand, warm (cache)", t_warm),
    ]:
        print(f"| {name} | {t:.1f} | {n / t:.1f} | {t_paper / t:.1f}x |")
    print(f"\nwarm vs cold: {t_cold / t_warm:.0f}x faster")


if __name__ == "__main__":
    main()

"""Feature pipeline benchmark: escnet vs the paper's way, end to end from the audio files.

The paper's way, clip by clip in one process: ``librosa.load(sr=22050)`` (soundfile + soxr_hq),
pad/crop to 5 s, ``librosa.feature.melspectrogram`` + ``librosa.power_to_db``.
escnet: ``prepare_features`` (threaded decoding, batched torch log-mel), cold (empty cache) and
warm (second run, cache filled). Prints a Markdown table with clips/s and the machine.

    python benchmarks/bench_features.py --data-dir ../shared/data [--clips 2000]
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
from escnet.features.prepare import prepare_features  # noqa: E402
from escnet.features.spectrogram import LogMelConfig  # noqa: E402


def librosa_way(paths: list[Path], cfg: LogMelConfig, duration: float) -> np.ndarray:
    n = int(round(duration * cfg.sample_rate))
    out = []
    for p in paths:
        y, sr = librosa.load(p, sr=cfg.sample_rate)
        y = librosa.util.fix_length(y, size=n)
        mel = librosa.feature.melspectrogram(
            y=y, sr=sr, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels
        )
        out.append(librosa.power_to_db(mel))
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", help="directory holding esc50/ (default $ESCNET_DATA_DIR)")
    ap.add_argument("--clips", type=int, default=2000, help="first N clips of ESC-50")
    ap.add_argument("--workers", type=int, default=None, help="escnet decoding threads")
    args = ap.parse_args()

    ds = get_dataset("esc50", data_dir=args.data_dir)
    ds = ds.subset(range(min(args.clips, len(ds))))
    cfg = LogMelConfig()
    n = len(ds)

    t0 = time.perf_counter()
    ref = librosa_way([c.path for c in ds.clips], cfg, 5.0)
    t_librosa = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        cold = prepare_features(ds, cfg, cache_dir=cache, workers=args.workers, progress=False)
        t_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        warm = prepare_features(ds, cfg, cache_dir=cache, workers=args.workers, progress=False)
        t_warm = time.perf_counter() - t0
    assert warm.cache_hits == n, "warm run did not hit the cache"
    floor = ref > ref.max(axis=(1, 2), keepdims=True) - 80
    diff = float(np.abs(cold.features - ref)[floor].max())

    print(f"Machine: {describe()}")
    print(f"Data: ESC-50, {n} clips (FLAC) -> log-mel 128 x {ref.shape[-1]} at 22050 Hz\n")
    print("| pipeline | seconds | clips/s | speed-up vs librosa |")
    print("|---|---:|---:|---:|")
    for name, t in [
        ("librosa, clip by clip (the paper's way)", t_librosa),
        ("escnet prepare, cold (empty cache)", t_cold),
        ("escnet prepare, warm (cache)", t_warm),
    ]:
        print(f"| {name} | {t:.2f} | {n / t:.0f} | {t_librosa / t:.1f}x |")
    print(f"\nmax |escnet - librosa| above the -80 dB floor: {diff:.5f} dB")
    print(f"warm vs cold: {t_cold / t_warm:.1f}x faster")


if __name__ == "__main__":
    main()

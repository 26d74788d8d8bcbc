"""Check the ``mn04_as`` port: zero-shot AudioSet tagging of ESC-10's 400 clips.

Each ESC-10 class is mapped to the AudioSet label(s) that name it; a clip counts as a top-k hit
when one of its mapped labels is among the model's k highest AudioSet scores. A faithful port of
front end and network scores well above 80 % top-5; a wrong window, filter bank, normalisation
or layer gives far less.

Usage::

    .venv/bin/python benchmarks/check_mn04_esc10.py [--data-dir DIR] [--weights-dir DIR]
        [--batch-size N]

The data directory (holding ``esc50/``) is ``--data-dir``, else ``$ESCNET_DATA_DIR``, else
``../shared/data``; the weights directory (holding ``efficientat/``) ``--weights-dir``, else
``$ESCNET_WEIGHTS_DIR``, else ``../shared/weights``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from escnet.data.audio import AudioConfig, find_audio_file, load_audio
from escnet.models.mobilenet_audioset import (
    MN04_AS_FILENAME,
    AudioSetMelConfig,
    build_mn04_as,
    read_audioset_labels,
)

#: ESC-10 category -> AudioSet display names (exactly as in class_labels_indices.csv) that
#: count as a correct tag for it.
ESC10_TO_AUDIOSET: dict[str, tuple[str, ...]] = {
    "dog": ("Dog", "Bark"),
    "rain": ("Rain",),
    "sea_waves": ("Waves, surf", "Ocean"),
    "crying_baby": ("Baby cry, infant cry",),
    "clock_tick": ("Tick-tock", "Tick"),
    "sneezing": ("Sneeze",),
    "helicopter": ("Helicopter",),
    "chainsaw": ("Chainsaw",),
    "rooster": ("Chicken, rooster",),
    "crackling_fire": ("Fire", "Crackle"),
}

SHARED = Path(__file__).resolve().parents[2] / "shared"


def default_dir(env: str, fallback: str) -> Path:
    """``$env`` when set, else ``../shared/<fallback>`` beside the repository."""
    return Path(os.environ.get(env) or SHARED / fallback)


def esc10_clips(esc50_root: Path) -> list[tuple[Path, str]]:
    """(audio file, category) of the ESC-10 rows of ``meta/esc50.csv``, in file order."""
    clips = []
    with (esc50_root / "meta" / "esc50.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            if row["esc10"] != "True":
                continue
            path = find_audio_file(esc50_root / "audio", Path(row["filename"]).stem)
            if path is None:
                raise FileNotFoundError(f"{esc50_root / 'audio'}: no audio for {row['filename']}")
            clips.append((path, row["category"]))
    return clips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_dir("ESCNET_DATA_DIR", "data"),
        help="directory holding esc50/ ($ESCNET_DATA_DIR, else ../shared/data)",
    )
    parser.add_argument(
        "--weights-dir",
        type=Path,
        default=default_dir("ESCNET_WEIGHTS_DIR", "weights"),
        help="directory holding efficientat/ ($ESCNET_WEIGHTS_DIR, else ../shared/weights)",
    )
    parser.add_argument("--batch-size", type=int, default=40)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    weights_dir = args.weights_dir / "efficientat"
    labels = read_audioset_labels(weights_dir / "audioset_class_labels_indices.csv")
    index = {name: i for i, name in enumerate(labels)}
    targets = {cat: [index[name] for name in names] for cat, names in ESC10_TO_AUDIOSET.items()}

    front_config = AudioSetMelConfig()
    front_end = front_config.build().eval()
    model = build_mn04_as(weights_path=weights_dir / MN04_AS_FILENAME).eval()
    audio_config = AudioConfig(sample_rate=front_config.sample_rate, duration=5.0)

    clips = esc10_clips(args.data_dir / "esc50")
    top1: dict[str, list[bool]] = {cat: [] for cat in ESC10_TO_AUDIOSET}
    top5: dict[str, list[bool]] = {cat: [] for cat in ESC10_TO_AUDIOSET}
    top_names: dict[str, dict[str, int]] = {cat: {} for cat in ESC10_TO_AUDIOSET}
    torch.set_num_threads(min(2, torch.get_num_threads()))
    with torch.inference_mode():
        for b in range(0, len(clips), args.batch_size):
            batch = clips[b : b + args.batch_size]
            waves = np.stack([load_audio(path, audio_config) for path, _ in batch])
            probs = torch.sigmoid(model(front_end(torch.from_numpy(waves))))
            ranked = probs.topk(5, dim=1).indices.tolist()
            for (_, cat), top in zip(batch, ranked, strict=True):
                top1[cat].append(top[0] in targets[cat])
                top5[cat].append(any(t in targets[cat] for t in top))
                top_names[cat][labels[top[0]]] = top_names[cat].get(labels[top[0]], 0) + 1
    elapsed = time.perf_counter() - start

    print(f"mn04_as zero-shot on ESC-10 ({len(clips)} clips), AudioSet label in top-k")
    print(f"{'class':<15} {'n':>3} {'top-1':>7} {'top-5':>7}  most frequent top-1 label")
    for cat in ESC10_TO_AUDIOSET:
        n = len(top5[cat])
        common = max(top_names[cat].items(), key=lambda kv: kv[1])
        print(
            f"{cat:<15} {n:>3} {np.mean(top1[cat]):>7.1%} {np.mean(top5[cat]):>7.1%}  "
            f"{common[0]} ({common[1]})"
        )
    all1 = [hit for hits in top1.values() for hit in hits]
    all5 = [hit for hits in top5.values() for hit in hits]
    print(f"{'overall':<15} {len(all5):>3} {np.mean(all1):>7.1%} {np.mean(all5):>7.1%}")
    print(
        f"total time {elapsed:.1f} s (load, front end and model, {torch.get_num_threads()} threads)"
    )
    return 0 if np.mean(all5) >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())

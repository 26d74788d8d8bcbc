"""``escnet listen --input -`` on a 10-s recording of a dog, silence, then a siren: does it print
the dog and the siren, each once?

The recording is built from two ESC-50 clips of the data directory, decoded and resampled to
32 kHz by the project's own loader: the dog clip ``1-100032-A-0`` without its first second
(digital silence), 1 s of silence, then the siren clip ``1-31482-A-42`` (both of fold 1). It is
piped as 16-bit PCM into the real command, ``python -m escnet listen MODEL --input - --rate
32000 --csv events.csv`` (with ``--fold K`` when given), whose output is printed as it came, then
the verdict: how many lines each class got.

    python benchmarks/check_listen_dog_siren.py MODEL [--fold K] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import command_line, describe, load_average, report  # noqa: E402

RATE = 32000
DOG = "esc50/audio/1-100032-A-0.ogg"
SIREN = "esc50/audio/1-31482-A-42.ogg"
PACKAGES = ("numpy", "torch", "soxr")


def recording(data_dir: Path) -> np.ndarray:
    """The dog without its first second, 1 s of silence, the siren: 10 s of 16-bit PCM."""
    from escnet.data.audio import AudioConfig, load_audio

    config = AudioConfig(sample_rate=RATE, duration=5.0)
    dog = load_audio(data_dir / DOG, config)[RATE:]
    siren = load_audio(data_dir / SIREN, config)
    x = np.concatenate([dog, np.zeros(RATE, np.float32), siren])
    return (np.clip(x, -1, 1) * 32767).round().astype("<i2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--fold", type=int, help="a run's model of this test fold")
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("ESCNET_DATA_DIR", ".")))
    ap.add_argument("--out", type=Path, help="also write the result to this Markdown file")
    args = ap.parse_args()
    before = load_average()
    pcm = recording(args.data_dir)
    fold = [] if args.fold is None else ["--fold", str(args.fold)]
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "events.csv"
        command = [str(args.model), *fold, "--input", "-", "--rate", str(RATE)]
        done = subprocess.run(
            [sys.executable, "-m", "escnet", "listen", *command, "--csv", str(table)],
            input=pcm.tobytes(),
            capture_output=True,
            check=True,
        )
        events = table.read_text()
    out, err = done.stdout.decode(), done.stderr.decode()
    err_lines = err.strip().splitlines()
    # What the command said, with the model's path as it was typed (not this machine's).
    shown = [line.replace(str(args.model.resolve()), str(args.model)) for line in err_lines]
    printed = Counter(line.split()[1] for line in out.strip().splitlines() if line.strip())
    verdict = ", ".join(f"{label} {n} time(s)" for label, n in sorted(printed.items()))
    ok = printed.get("dog") == 1 and printed.get("siren") == 1
    lines = [
        f"`{command_line(sys.argv)}` (load average before: {before})",
        "",
        f"machine: {describe(PACKAGES)}",
        "",
        "```console",
        f"$ escnet listen {' '.join(command)} --csv events.csv < dog-silence-siren.s16",
        *shown[:1],
        *out.rstrip("\n").splitlines(),
        *shown[1:],
        "$ cat events.csv",
        *events.strip().splitlines(),
        "```",
        "",
        f"printed: {verdict}; the dog and the siren each once: {'yes' if ok else 'NO'}",
        "",
    ]
    report(lines, args.out)


if __name__ == "__main__":
    main()

"""Detection against prediction on a one-hour file: what the events cost on top of the windows.

``Predictor.detect_file`` scores the same windows as ``Predictor.predict_file`` (one code path,
:class:`escnet.inference.StreamLabeller`) and adds the frame levels, the score tracks and the
events. Both run here on one generated file (``--minutes``, 60; 16 kHz WAV, resampled to the
model's rate on the way: pink noise with a tone burst every 20 s), at the same hop (``--hop``,
1 s), one thread, in the same process, taking turns (``--repeats`` rounds of predict then
detect), so that both see the same machine load. The model is ``--model DIR`` or, by default,
``mn04_as`` with random weights and 50 outputs (time does not depend on the values). Prints a
Markdown table with wall and CPU seconds per run, their ratio, the machine and its load.

    python benchmarks/bench_detect.py [--model DIR] [--minutes 60] [--hop 1] [--repeats 1] \
        [--out docs/benchmarks/detect-hour.md]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import command_line, describe, load_average  # noqa: E402
from escnet.cache import atomic_write_text  # noqa: E402
from escnet.events.soundscape import pink_noise  # noqa: E402
from escnet.inference import load  # noqa: E402

PACKAGES = ("numpy", "torch", "soxr", "soundfile")
RATE = 16_000


def make_hour(path: Path, minutes: float) -> None:
    """``minutes`` of pink noise at -30 dBFS with a 1-kHz tone burst (2 s) every 20 s, written
    a minute at a time."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", RATE, 1, "PCM_16") as f:
        for _ in range(int(round(minutes))):
            y = pink_noise(60 * RATE, rng, RATE) * 10 ** (-30 / 20)
            t = np.arange(2 * RATE) / RATE
            for start in (5, 25, 45):
                y[start * RATE : (start + 2) * RATE] += 0.3 * np.sin(2 * np.pi * 1000 * t)
            f.write(y.astype(np.float32))


def random_model(root: Path) -> Path:
    from escnet.model_dir.io import save_model
    from escnet.models import create_model

    classes = [f"class{i}" for i in range(50)]
    return save_model(
        root / "mn04_as", create_model("mn04_as", len(classes)), classes, clip_seconds=5.0
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", type=Path)
    p.add_argument("--fold", type=int)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--hop", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = args.model or random_model(root)
        predictor = load(model, fold=args.fold, threads=1)
        audio = root / "hour.wav"
        make_hour(audio, args.minutes)
        times: dict[str, list[tuple[float, float]]] = {"predict": [], "detect": []}
        for _ in range(args.repeats):
            for name in ("predict", "detect"):
                wall, cpu = time.perf_counter(), time.process_time()
                if name == "predict":
                    result = predictor.predict_file(audio, window=predictor.window, hop=args.hop)
                    windows = len(result.windows)
                else:
                    detection = predictor.detect_file(audio, hop=args.hop)
                times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    seconds = args.minutes * 60
    lines = [
        f"One {args.minutes:g}-min file ({windows} windows of {predictor.window:g} s every "
        f"{args.hop:g} s), {predictor.spec.name}, one thread; {args.repeats} round(s) of "
        f"predict then detect in one process. Machine: {describe(PACKAGES)}; load average "
        f"before {before}, after {load_average()}.",
        "",
        f"Command: `{command_line(sys.argv)}`",
        "",
        "| run | wall s | CPU s | real-time factor (wall) | CPU vs predict |",
        "|---|---:|---:|---:|---:|",
    ]
    base = min(c for _, c in times["predict"])
    for name, runs in times.items():
        wall = min(w for w, _ in runs)
        cpu = min(c for _, c in runs)
        lines.append(
            f"| {name} | {wall:.1f} | {cpu:.1f} | {wall / seconds:.4f} | {cpu / base:.3f} |"
        )
    lines += ["", f"detect found {len(detection.events)} event(s)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()

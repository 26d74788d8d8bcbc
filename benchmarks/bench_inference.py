"""Inference benchmark: PyTorch vs ONNX Runtime, one CPU thread, features included.

1. Latency per 5-s clip (waveform at the model's rate -> class probabilities, the front end
   included) for ``mn04_as`` and ``cnn7``, PyTorch (the reference) and ONNX Runtime measured in
   the same process, in alternating blocks of calls so that both see the same machine load;
   ``--batches`` adds the per-clip cost at larger batch sizes (what a batching service gains).
2. ``--hour``: real-time factor of ``Predictor.predict_file`` on a generated one-hour file
   (16 kHz WAV, resampled on the way), windows of 5 s every 2.5 s, with the peak resident memory
   of the process against that of the same process labelling one 5-s file (the reference).

The networks get random weights and 50 outputs: time and memory do not depend on the values
(mn04_as's pretrained body has the same shape). Prints Markdown tables and the machine.

    python benchmarks/bench_inference.py [--repeats 50] [--batches 1 4 16] [--hour] \
        [--hour-minutes 60]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import escnet  # noqa: E402
from _machine import describe  # noqa: E402
from escnet.export.onnx import export_model  # noqa: E402
from escnet.model_dir.io import save_model  # noqa: E402
from escnet.models import create_model  # noqa: E402

CLASSES = [f"class{i}" for i in range(50)]
PACKAGES = ("numpy", "torch", "onnxruntime", "soxr", "soundfile")


def make_model(name: str, root: Path) -> Path:
    """An exported model directory (weights.pt + model.onnx) of ``name``, random weights."""
    model = create_model(name, len(CLASSES))
    save_model(root / f"{name}-src", model, CLASSES, clip_seconds=5.0)
    return export_model(root / f"{name}-src", root / name, onnx=True).directory


def latency(
    model_dir: Path, repeats: int, batch: int = 1, block: int = 10
) -> dict[str, tuple[list[float], list[float]]]:
    """Per-clip (wall, CPU) times in ms of both backends on 5-s clips, one thread each.

    ``batch`` clips go into each call (times are per clip). The backends take turns in blocks
    of ``block`` calls, so both see the same machine load, yet each runs back to back as a
    deployment would: alternating call by call let each framework evict the other's data from
    the caches (that made ONNX Runtime's ``mn04_as`` ~1 ms slower a call). With one thread the
    work runs in the calling thread, so its CPU time is the compute time even when other
    processes share the cores (wall time then includes waiting for a core)."""
    backends = {
        "PyTorch": escnet.load(model_dir, threads=1),
        "ONNX Runtime": escnet.load(model_dir, backend="onnx", threads=1),
    }
    n = backends["PyTorch"].spec.num_samples
    clips = (0.1 * np.random.default_rng(0).standard_normal((batch, n))).astype(np.float32)
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in backends}
    for predictor in backends.values():  # warm-up: allocations, graph optimisation
        for _ in range(5):
            predictor.probabilities(clips)
    for _ in range(-(-repeats // block)):
        for name, predictor in backends.items():
            predictor.probabilities(clips)  # untimed: refills the caches after the other's turn
            for _ in range(block):
                start, cpu = time.perf_counter(), time.thread_time()
                predictor.probabilities(clips)
                times[name][1].append(1000 * (time.thread_time() - cpu) / batch)
                times[name][0].append(1000 * (time.perf_counter() - start) / batch)
    return times


def batch_table(dirs: dict[str, Path], sizes: list[int], repeats: int) -> None:
    """Per-clip CPU ms at each batch size, both backends, one thread (see :func:`latency`)."""
    print("\nper-clip CPU ms by batch size (one call runs the whole batch, one thread)\n")
    print("| model | backend | " + " | ".join(f"batch {b}" for b in sizes) + " |")
    print("|---|---|" + "---:|" * len(sizes))
    for name, model_dir in dirs.items():
        cells: dict[str, list[str]] = {}
        for b in sizes:
            for backend, (_, cpu) in latency(model_dir, max(10, repeats // b), b).items():
                cells.setdefault(backend, []).append(f"{np.median(cpu):.2f}")
        for backend, row in cells.items():
            print(f"| {name} | {backend} | " + " | ".join(row) + " |")


def write_long_file(path: Path, minutes: float, sr: int = 16000) -> None:
    """``minutes`` of noise and tones, written a minute at a time (never all in memory)."""
    rng = np.random.default_rng(1)
    t = np.arange(60 * sr) / sr
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        for minute in range(int(np.ceil(minutes))):
            y = 0.1 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * (200 + minute) * t)
            f.write(y[: int(min(60, (minutes - minute) * 60) * sr)].astype(np.float32))


# Peak memory is the process's VmHWM (high-water mark of its resident set): unlike
# getrusage's ru_maxrss it is not inherited from the (large) parent across fork + exec.
_CHILD = """
import json, re, sys, time
import escnet
predictor = escnet.load(sys.argv[1], backend=sys.argv[2], threads=1)
start = time.perf_counter()
prediction = predictor.predict_file(sys.argv[3])
seconds = time.perf_counter() - start
status = open("/proc/self/status").read()
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
print(json.dumps({"seconds": seconds, "duration": prediction.duration,
                  "windows": len(prediction.windows), "torch": "torch" in sys.modules,
                  "peak_rss_mb": peak_kb / 1024}))
"""


def run_file(model_dir: Path, backend: str, path: Path) -> dict[str, Any]:
    """Label ``path`` in a fresh process: wall time and the process's peak RSS."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(model_dir), backend, str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["mn04_as", "cnn7"])
    ap.add_argument("--repeats", type=int, default=50, help="timed runs per backend")
    ap.add_argument(
        "--batches",
        type=int,
        nargs="*",
        default=[],
        help="also the per-clip cost at these batch sizes (what a service's batcher can gain)",
    )
    ap.add_argument("--hour", action="store_true", help="also the long-file run")
    ap.add_argument("--hour-minutes", type=float, default=60.0, help="its length (60)")
    ap.add_argument("--hour-model", default="mn04_as")
    ap.add_argument("--hour-backends", nargs="+", default=["torch", "onnx"])
    args = ap.parse_args()
    print(f"machine: {describe(PACKAGES)}\n")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dirs = {name: make_model(name, root) for name in args.models}
        print(
            "| model | backend | wall ms / 5-s clip, median | wall p90 | "
            "CPU ms / clip, median | speed-up (CPU) |"
        )
        print("|---|---|---:|---:|---:|---:|")
        for name, model_dir in dirs.items():
            times = latency(model_dir, args.repeats)
            ref = float(np.median(times["PyTorch"][1]))
            for backend, (wall, cpu) in times.items():
                med, p90, c = (float(v) for v in (np.median(wall), np.percentile(wall, 90),
                                                  np.median(cpu)))  # fmt: skip
                print(f"| {name} | {backend} | {med:.2f} | {p90:.2f} | {c:.2f} | {ref / c:.2f}x |")
        if args.batches:
            batch_table(dirs, args.batches, args.repeats)
        if not args.hour:
            return
        model_dir = dirs.get(args.hour_model) or make_model(args.hour_model, root)
        clip, long = root / "clip.wav", root / "long.wav"
        write_long_file(clip, 5 / 60)
        write_long_file(long, args.hour_minutes)
        print(
            f"\n{args.hour_model}, {args.hour_minutes:g}-min 16 kHz WAV vs a 5-s clip, one thread"
        )
        print(
            "| backend | file | windows | seconds | real-time factor | peak RSS MB | torch loaded |"
        )
        print("|---|---|---:|---:|---:|---:|---|")
        for backend in args.hour_backends:
            for label, path in (("5-s clip (reference)", clip), ("long file", long)):
                r = run_file(model_dir, backend, path)
                rtf = r["seconds"] / r["duration"]
                print(
                    f"| {backend} | {label} | {r['windows']} | {r['seconds']:.2f} | "
                    f"{rtf:.4f} | {r['peak_rss_mb']:.0f} | {'yes' if r['torch'] else 'no'} |"
                )


if __name__ == "__main__":
    main()

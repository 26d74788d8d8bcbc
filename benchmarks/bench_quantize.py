"""int8 quantisation of a trained model: its accuracy change on every test fold, and its speed.

For each fold of a run (``escnet train``, e.g. an ``mn04_as`` probe on ESC-50), the fold's model
is exported as ``escnet export RUN --fold K --onnx --quantize`` does: onnxruntime's static int8
quantisation calibrated on ``--calibration-clips`` clips of the *training* folds only, then the
float graph (the reference) and the int8 graph label the held-out test fold. The accuracy bound
is lifted here (``max_accuracy_drop`` 1.0) so that every fold's figures are reported. Latency:
per-clip CPU ms of both graphs on one thread, in alternating blocks, on a 5-s clip.

    python benchmarks/bench_quantize.py RUN [--folds 1 2 3 4 5] [--repeats 50]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import command_line, describe, load_average  # noqa: E402
from escnet.export.onnx import export_model  # noqa: E402

PACKAGES = ("numpy", "torch", "onnxruntime")


def latency(float_path: Path, int8_path: Path, samples: int, repeats: int) -> tuple[float, float]:
    """Median per-clip CPU ms of both graphs, one thread, alternating blocks of 10 calls."""
    import onnxruntime as ort

    runs = []
    for path in (float_path, int8_path):
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        runs.append(ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]))
    clip = (0.1 * np.random.default_rng(0).standard_normal((1, samples))).astype(np.float32)
    times: list[list[float]] = [[], []]
    for s in runs:
        for _ in range(3):
            s.run(None, {"waveform": clip})
    for _ in range(-(-repeats // 10)):
        for i, s in enumerate(runs):
            s.run(None, {"waveform": clip})
            for _ in range(10):
                start = time.thread_time()
                s.run(None, {"waveform": clip})
                times[i].append(1000 * (time.thread_time() - start))
    return float(np.median(times[0])), float(np.median(times[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a run directory with fold{k}/model")
    ap.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--calibration-clips", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    command = command_line(sys.argv)
    print(f"`{command}` (load average before: {load_average()})\n")
    print(f"machine: {describe(PACKAGES)}\n")
    print(
        "| test fold | test clips | calibration clips (training folds) | accuracy float "
        "(reference) | accuracy int8 | change, points | CPU ms float | CPU ms int8 |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    changes = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.folds:
            out = Path(tmp) / f"fold{k}"
            float_dir = Path(tmp) / f"float{k}"
            options = {"max_accuracy_drop": 1.0, "calibration_clips": args.calibration_clips}
            export_model(args.run, float_dir, fold=k, onnx=True, check_clips=0)
            result = export_model(args.run, out, fold=k, onnx=True, check_clips=0,
                                  quantize=True, quantize_options=options)  # fmt: skip
            assert result.onnx is not None
            q = result.onnx["quantized"]
            meta = json.loads((out / "model.json").read_text())
            samples = int(round(meta["clip_seconds"] * meta["sample_rate"]))
            a, b = latency(float_dir / "model.onnx", out / "model.onnx", samples, args.repeats)
            change = 100 * (q["accuracy_int8"] - q["accuracy_float"])
            changes.append(change)
            print(
                f"| {k} | {q['test_clips']} | {q['calibration']['clips']} | "
                f"{100 * q['accuracy_float']:.2f} % | {100 * q['accuracy_int8']:.2f} % | "
                f"{change:+.2f} | {a:.2f} | {b:.2f} |",
                flush=True,
            )
    print(f"\nmean change over {len(changes)} fold(s): {np.mean(changes):+.2f} points")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()

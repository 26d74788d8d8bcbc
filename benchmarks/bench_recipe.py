"""Fast-inference benchmark: ``mn04_as`` and the probe recipe per 5-s clip on one CPU thread.

Every row is measured in one process, in alternating blocks of calls (each variant runs
``--block`` calls back to back, then the next variant), so that all rows see the same machine
load; times are the calling thread's CPU time (with one thread the work runs there, so it is the
compute even when other processes share the cores) and wall time. Each group has its reference:

* ``mn04_as`` (AudioSet weights from ``--weights``; 527 sigmoid outputs), waveform -> scores,
  front end included. Reference: the graph exported with the previous revision's front end
  (``--baseline``). Levers: onnxruntime's graph optimisation levels and session options; this
  tree's front end (alone, and in the graph); static int8 quantisation (calibrated on ESC-50
  training clips, folds 2-5); batching windows of one long file (per-clip cost at batch 4, 16).
* the recipe (``--recipe``: an ensemble directory, e.g. four ``mn04_as_probe`` members).
  Reference: the four-pass ensemble in PyTorch (each member's whole network on its own, as
  prediction ran it before); then one pass in PyTorch, and in onnxruntime four-pass and
  one-pass graphs, float and int8.

``--hour`` adds the real-time factor of labelling a one-hour 16-kHz WAV with the recipe's ONNX
graphs (one pass and four pass), each in a fresh process, against a 5-s clip.

    python benchmarks/bench_recipe.py --recipe DIR --weights mn04_as_mAP_432.pt \\
        [--data-dir DIR] [--repeats 100] [--hour]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import command_line, describe, load_average  # noqa: E402
from bench_front_end import load_revision  # noqa: E402
from bench_inference import run_file, write_long_file  # noqa: E402
from escnet.data.audio import AudioConfig, load_audio  # noqa: E402
from escnet.export.ensemble import ensemble_graph  # noqa: E402
from escnet.export.onnx import OnnxGraph, export_model, write_graph  # noqa: E402
from escnet.export.quantize import quantize_graph  # noqa: E402
from escnet.inference.ensemble_backend import load_ensemble  # noqa: E402
from escnet.model_dir.ensemble import load_ensemble_model  # noqa: E402
from escnet.model_dir.io import load_model, save_model  # noqa: E402
from escnet.models import create_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("numpy", "torch", "onnxruntime")
#: The revision before this benchmark's front-end changes.
DEFAULT_BASELINE = "c7b95be"

Run = Callable[[np.ndarray], Any]

RECIPE_NOTE = (
    "Note: the four-pass network exported as one graph is not four passes in onnxruntime. The "
    "exporter stores the members' identical body weights once, and onnxruntime's "
    "common-subexpression elimination (optimisation level basic and up) then merges the "
    "members' identical front ends and body passes on the same rolled images: convolutions in "
    "the four-pass file {four_file}, after optimisation {four_opt}; in the one-pass file "
    "{one_file}. The honest ONNX four-pass row is each member's own graph in its own session.\n"
)


class Whole(nn.Module):
    """Waveforms -> sigmoid scores: a front end twin and the network."""

    def __init__(self, front_end: nn.Module, model: nn.Module) -> None:
        super().__init__()
        self.front_end, self.model = front_end, model

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(self.front_end(waveforms)))


def session(path: Path, level: str = "all", **config: str) -> Run:
    """A one-thread onnxruntime session as a function of waveforms."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    for key, value in config.items():
        if key == "arena":
            options.enable_cpu_mem_arena = value == "on"
        elif key == "optimized_model":
            options.optimized_model_filepath = value
        else:
            options.add_session_config_entry(key, value)
    s = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: s.run(None, {"waveform": x})[0]


def training_clips(data_dir: Path | None, count: int, test_fold: int = 1) -> np.ndarray | None:
    """``count`` ESC-50 clips of the folds other than ``test_fold`` at 32 kHz, spread."""
    if data_dir is None or not (data_dir / "esc50" / "audio").is_dir():
        return None
    files = sorted((data_dir / "esc50" / "audio").iterdir())
    files = [f for f in files if not f.name.startswith(f"{test_fold}-")]
    picked = [files[int(i)] for i in np.linspace(0, len(files) - 1, count).round()]
    config = AudioConfig(sample_rate=32000, duration=5.0)
    return np.stack([load_audio(f, config) for f in picked])


def mn04_variants(
    root: Path, weights: Path | None, rev: str, calibration: np.ndarray | None
) -> dict[str, tuple[Run, int]]:
    """The ``mn04_as`` rows: name -> (function, batch), the reference first."""
    model = create_model("mn04_as", 527, pretrained=weights is not None, weights_path=weights)
    save_model(root / "mn04", model, [f"l{i}" for i in range(527)], clip_seconds=5.0)
    loaded = load_model(root / "mn04")
    clip = np.zeros((1, loaded.num_samples), np.float32)
    old = load_revision(rev)
    front_end = loaded.front_end.build()
    paths = {
        "old": write_to(
            Whole(old.export_front_end(front_end), loaded.model), clip, root / "o.onnx"
        ),
        "new": write_to(OnnxGraph(loaded), clip, root / "n.onnx"),
        "old_fe": write_to(old.export_front_end(front_end), clip, root / "ofe.onnx"),
        "new_fe": write_to(OnnxGraph(loaded).front_end, clip, root / "nfe.onnx"),
    }
    rows: dict[str, tuple[Run, int]] = {
        f"front end of {rev} (reference), level all": (session(paths["old"]), 1),
        "this tree's front end, level disable": (session(paths["new"], "disable"), 1),
        "this tree's front end, level basic": (session(paths["new"], "basic"), 1),
        "this tree's front end, level extended": (session(paths["new"], "extended"), 1),
        "this tree's front end, level all (escnet's setting)": (session(paths["new"]), 1),
        "level all, memory arena off": (session(paths["new"], arena="off"), 1),
        "level all, no spinning": (
            session(paths["new"], **{"session.intra_op.allow_spinning": "0"}),
            1,
        ),
        "level all, denormals as zero": (
            session(paths["new"], **{"session.set_denormal_as_zero": "1"}),
            1,
        ),
        "level all, batches of 4 windows": (session(paths["new"]), 4),
        "level all, batches of 16 windows": (session(paths["new"]), 16),
        f"front end alone, {rev}": (session(paths["old_fe"]), 1),
        "front end alone, this tree": (session(paths["new_fe"]), 1),
    }
    if calibration is not None:
        quantize_graph(paths["new"], root / "q.onnx", calibration)
        rows["int8 (static, QDQ; front end float)"] = (session(root / "q.onnx"), 1)
    return rows


def write_to(module: nn.Module, clip: np.ndarray, path: Path) -> Path:
    write_graph(module, clip, path)
    return path


def recipe_variants(
    recipe: Path, root: Path, calibration: np.ndarray | None
) -> tuple[dict[str, tuple[Run, int]], dict[str, int]]:
    """The recipe's rows: name -> (function, batch), the reference first; and the graphs'
    convolution counts (for :data:`RECIPE_NOTE`)."""
    _, four = load_ensemble(recipe, one_pass=False, threads=1)
    _, one = load_ensemble(recipe, threads=1)
    ensemble = load_ensemble_model(recipe)
    clip = np.zeros((1, ensemble.num_samples), np.float32)
    one_path = write_to(ensemble_graph(ensemble), clip, root / "r1.onnx")
    four_path = write_to(ensemble_graph(ensemble, one_pass=False), clip, root / "r4.onnx")
    groups = ensemble.groups
    passes = ensemble.body_passes
    singles = sum(len(getattr(m.model.net, "tta_shifts", (0,))) for m in ensemble.loaded)
    print(f"recipe: {len(ensemble.members)} members, shared-body groups {groups}; body passes "
          f"per window: {passes} one-pass, {singles} four-pass\n")  # fmt: skip
    member_runs = [
        session(write_to(OnnxGraph(m), clip, root / f"m{i}.onnx"))
        for i, m in enumerate(ensemble.loaded)
    ]
    counts = {
        "four_file": convolutions(four_path),
        "four_opt": convolutions(four_path, optimised=True),
        "one_file": convolutions(one_path),
    }
    rows: dict[str, tuple[Run, int]] = {
        "PyTorch, four-pass (reference)": (four, 1),
        "PyTorch, one-pass, one body call per view": (torch_run(recipe, batch_views=False), 1),
        "PyTorch, one-pass, views as one batch (escnet's setting)": (one, 1),
        "ONNX Runtime, four-pass: each member's own graph and session": (
            combined(member_runs, ensemble.members),
            1,
        ),
        "ONNX Runtime, four-pass network as one graph (see note)": (session(four_path), 1),
        "ONNX Runtime, one-pass graph": (session(one_path), 1),
    }
    if calibration is not None:
        quantize_graph(one_path, root / "r1q.onnx", calibration)
        rows["ONNX Runtime, one-pass graph, int8"] = (session(root / "r1q.onnx"), 1)
    return rows, counts


def convolutions(path: Path, optimised: bool = False) -> int:
    """Conv nodes of the graph at ``path``, or of onnxruntime's optimised version of it."""
    import onnx
    import onnxruntime as ort

    if optimised:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # not its warning that the saved graph is machine-specific
        options.optimized_model_filepath = str(path.with_suffix(".opt.onnx"))
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        path = path.with_suffix(".opt.onnx")
    return sum(n.op_type == "Conv" for n in onnx.load(str(path)).graph.node)


def torch_run(recipe: Path, **options: Any) -> Run:
    ensemble = load_ensemble_model(recipe, **options)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return ensemble.probabilities(torch.from_numpy(x)).numpy()

    return run


def combined(runs: list[Run], members: list[Any]) -> Run:
    """Members' probabilities, temperature-scaled and weighted, as the four-pass ensemble."""

    def run(x: np.ndarray) -> np.ndarray:
        out = 0.0
        for r, m in zip(runs, members, strict=True):
            log_p = np.log(np.clip(r(x).astype(np.float64), 1e-30, None)) / m.temperature
            p = np.exp(log_p - log_p.max(1, keepdims=True))
            out = out + m.weight * p / p.sum(1, keepdims=True)
        return np.asarray(out, np.float32)

    return run


def time_rows(
    rows: dict[str, tuple[Run, int]], clip: np.ndarray, repeats: int, block: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Per-clip (CPU, wall) ms of every row, in alternating blocks of ``block`` calls."""
    batches = {name: np.ascontiguousarray(np.repeat(clip, b, 0)) for name, (_, b) in rows.items()}
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in rows}
    for name, (run, _) in rows.items():  # warm-up: allocations, graph optimisation
        for _ in range(3):
            run(batches[name])
    for _ in range(-(-repeats // block)):
        for name, (run, b) in rows.items():
            run(batches[name])  # untimed: refills the caches after the other rows' turn
            for _ in range(max(1, block // b)):
                cpu, wall = time.thread_time(), time.perf_counter()
                run(batches[name])
                times[name][0].append(1000 * (time.thread_time() - cpu) / b)
                times[name][1].append(1000 * (time.perf_counter() - wall) / b)
    return times


def print_table(
    title: str,
    times: dict[str, tuple[list[float], list[float]]],
    pairs: dict[str, str] | None = None,
) -> None:
    """Medians per row, their speed-up over the first row, and over the row ``pairs`` names."""
    print(f"**{title}**\n")
    extra = " | vs four-pass, same backend" if pairs else ""
    print(
        "| variant | CPU ms / clip, median | p10 | wall ms, median | wall p90 "
        f"| vs reference (CPU){extra} |"
    )
    print("|---|---:|---:|---:|---:|---:|" + ("---:|" if pairs else ""))
    medians = {name: float(np.median(cpu)) for name, (cpu, _) in times.items()}
    ref = next(iter(medians.values()))
    for name, (cpu, wall) in times.items():
        c = medians[name]
        cell = ""
        if pairs:
            cell = f" | {medians[pairs[name]] / c:.2f}x" if name in pairs else " | "
        print(
            f"| {name} | {c:.2f} | {np.percentile(cpu, 10):.2f} | {np.median(wall):.2f} | "
            f"{np.percentile(wall, 90):.2f} | {ref / c:.2f}x{cell} |"
        )
    print()


def hour(recipe: Path, root: Path, minutes: float) -> None:
    """Real-time factor of the recipe's one-pass graph on a long file, against a 5-s clip."""
    model_dir = root / "hour"
    export_model(recipe, model_dir, onnx=True, check_clips=0)
    clip, long = root / "clip.wav", root / "long.wav"
    write_long_file(clip, 5 / 60)
    write_long_file(long, minutes)
    print(
        f"**The recipe on a {minutes:g}-min 16 kHz WAV vs a 5-s clip** (one-pass graph, onnx "
        "backend, one thread, windows of 5 s every 2.5 s, each run in a fresh process)\n"
    )
    print("| file | windows | seconds | real-time factor | peak RSS MB | torch loaded |")
    print("|---|---:|---:|---:|---:|---|")
    for name, path in (("5-s clip (reference)", clip), ("long file", long)):
        r = run_file(model_dir, "onnx", path)
        print(
            f"| {name} | {r['windows']} | {r['seconds']:.2f} | "
            f"{r['seconds'] / r['duration']:.4f} | {r['peak_rss_mb']:.0f} | "
            f"{'yes' if r['torch'] else 'no'} |"
        )
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipe", type=Path, help="an ensemble directory (the recipe's rows)")
    ap.add_argument("--weights", type=Path, help="mn04_as_mAP_432.pt (default: random weights)")
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=os.environ.get("ESCNET_DATA_DIR"),
        help="holds esc50/ (int8 calibration clips; default $ESCNET_DATA_DIR)",
    )
    ap.add_argument("--baseline", default=DEFAULT_BASELINE, help="revision of the reference")
    ap.add_argument("--repeats", type=int, default=100, help="timed calls per row")
    ap.add_argument("--block", type=int, default=10, help="calls per row in a turn")
    ap.add_argument("--calibration-clips", type=int, default=64)
    ap.add_argument("--hour", action="store_true", help="also the long-file run")
    ap.add_argument("--hour-minutes", type=float, default=60.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    command = command_line(sys.argv)
    print(f"`{command}` (load average before: {load_average()})\n")
    print(f"machine: {describe(PACKAGES)}\n")
    calibration = training_clips(args.data_dir, args.calibration_clips)
    clip = (0.1 * np.random.default_rng(0).standard_normal((1, 160000))).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = mn04_variants(root, args.weights, args.baseline, calibration)
        print_table(
            "mn04_as, waveform -> scores, one thread",
            time_rows(rows, clip, args.repeats, args.block),
        )
        if args.recipe is not None:
            rows, counts = recipe_variants(args.recipe, root, calibration)
            times = time_rows(rows, clip, args.repeats, args.block)
            four = {n: n for n in rows if "four-pass" in n}
            torch_four = next(n for n in four if n.startswith("PyTorch"))
            onnx_four = next(n for n in four if "own graph" in n)
            pairs = {n: torch_four if n.startswith("PyTorch") else onnx_four for n in rows}
            print_table("The recipe, waveform -> probabilities, one thread", times, pairs)
            print(RECIPE_NOTE.format(**counts))
            if args.hour:
                hour(args.recipe, root, args.hour_minutes)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()

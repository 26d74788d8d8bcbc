"""ONNX front end benchmark: this tree's ``escnet.export.front_end`` against an earlier revision's.

For ``mn04_as`` (32 kHz, 5-s clips) it exports, with each revision's front-end twin, (1) the front
end alone (waveform -> normalised log-mel) and (2) the whole model (waveform -> probabilities;
``mn04_as`` with its pretrained AudioSet weights from ``--weights``, else random weights, whose
probabilities are uniform and so say nothing about parity; time does not depend on them), runs the
graphs in onnxruntime in one process, one thread each (intra- and inter-op), in alternating
rounds so that every graph sees the same machine load. Times are the calling thread's CPU time
(with one thread the work runs there, so this is the compute even when other processes share the
cores) and wall time; medians and 10th percentiles. It also checks that the graphs agree.

The baseline is read with ``git show REV:src/escnet/export_front_end.py`` and imported as a
module of its own, so nothing is checked out.

    python benchmarks/bench_front_end.py [--baseline 64b5af7] [--repeats 200] [--profile] \\
        [--weights $ESCNET_WEIGHTS_DIR/efficientat/mn04_as_mAP_432.pt]
"""

from __future__ import annotations

import argparse
import collections
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe  # noqa: E402
from escnet.export import front_end as current  # noqa: E402
from escnet.models import create_model  # noqa: E402
from escnet.models.mobilenet_audioset import AudioSetMelConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("numpy", "torch", "onnxruntime")
#: The last revision with the earlier front end (framing by concatenation, an elementwise
#: twiddle, a dense mel product).
DEFAULT_BASELINE = "64b5af7"


def module_at_revision(rev: str, path: str) -> types.ModuleType:
    """The module at ``path`` (from the repository root) as it was at git revision ``rev``,
    loaded as a separate module, so that a benchmark can time an earlier version beside this
    tree's in one process."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    name = f"{Path(path).stem}_{rev}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)
    return module


#: Modules that the package layout by stage moved: a revision from before it imports the old
#: names, which are served by the new modules while its front end is loaded.
MOVED_MODULES = {"escnet.spectrogram": "escnet.features.spectrogram"}


def load_revision(rev: str) -> types.ModuleType:
    """The export front end as it was at ``rev``: ``src/escnet/export/front_end.py``, or before
    the package layout by stage, ``src/escnet/export_front_end.py`` with its imports of moved
    modules answered by their new homes."""
    listing = subprocess.run(
        ["git", "-C", str(REPO), "ls-tree", "--name-only", rev, "src/escnet/export/front_end.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if listing.strip():
        return module_at_revision(rev, "src/escnet/export/front_end.py")
    added = [old for old in MOVED_MODULES if old not in sys.modules]
    for old in added:
        sys.modules[old] = importlib.import_module(MOVED_MODULES[old])
    try:
        return module_at_revision(rev, "src/escnet/export_front_end.py")
    finally:
        for old in added:
            del sys.modules[old]


class WholeModel(nn.Module):
    """Waveforms -> probabilities, as :class:`escnet.export.onnx.OnnxGraph` builds it."""

    def __init__(self, front_end: nn.Module, model: nn.Module) -> None:
        super().__init__()
        self.front_end, self.model = front_end, model

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(self.front_end(waveforms)), dim=1)


def export(module: nn.Module, clip: np.ndarray, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (torch.from_numpy(clip),),
            str(path),
            opset_version=17,
            dynamo=False,
            input_names=["waveform"],
            dynamic_axes={"waveform": {0: "batch", 1: "samples"}},
        )
    return path


def session(path: Path, profile: bool = False) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(path.with_suffix(""))
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_sessions(
    sessions: dict[str, Any], clip: np.ndarray, repeats: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Per-run (CPU, wall) ms of each session, interleaved round by round."""
    times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in sessions}
    for s in sessions.values():  # warm-up
        for _ in range(10):
            s.run(None, {"waveform": clip})
    for _ in range(repeats):
        for name, s in sessions.items():
            cpu, wall = time.thread_time(), time.perf_counter()
            s.run(None, {"waveform": clip})
            times[name][0].append(1000 * (time.thread_time() - cpu))
            times[name][1].append(1000 * (time.perf_counter() - wall))
    return times


def profile_nodes(path: Path, clip: np.ndarray, top: int = 8) -> list[tuple[float, str, str]]:
    """The ``top`` nodes by median kernel time (ms) over 50 runs, from onnxruntime's profiler."""
    s = session(path, profile=True)
    for _ in range(50):
        s.run(None, {"waveform": clip})
    trace = Path(s.end_profiling())
    per_node: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            key = (event["name"].removesuffix("_kernel_time"), event["args"].get("op_name", ""))
            per_node[key].append(event["dur"] / 1000)
    trace.unlink()
    rows = sorted(((float(np.median(v)), op, name) for (name, op), v in per_node.items()))
    return rows[::-1][:top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare with")
    ap.add_argument("--repeats", type=int, default=200, help="timed runs per graph")
    ap.add_argument("--profile", action="store_true", help="also the slowest nodes per graph")
    ap.add_argument("--weights", type=Path, help="mn04_as's AudioSet checkpoint (527 outputs)")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    print(f"machine: {describe(PACKAGES)}; load average {os.getloadavg()[0]:.2f}\n")

    cfg = AudioSetMelConfig()
    source = cfg.build()
    if args.weights:
        model = create_model("mn04_as", 527, pretrained=True, weights_path=args.weights).eval()
    else:
        model = create_model("mn04_as", 50).eval()
    # The file's name, not its path: the table goes into the docs, which name no machine's paths.
    shown = args.weights.name if args.weights else "random (probabilities uniform)"
    print(f"mn04_as weights: {shown}\n")
    clip = 0.1 * np.random.default_rng(0).standard_normal((1, 5 * cfg.sample_rate))
    clip = clip.astype(np.float32)
    revisions = {f"baseline {args.baseline}": load_revision(args.baseline), "this tree": current}
    with tempfile.TemporaryDirectory() as tmp:
        paths: dict[tuple[str, str], Path] = {}
        for label, module in revisions.items():
            twin = module.export_front_end(source)
            tag = label.split()[0]
            paths["front end", label] = export(twin, clip, Path(tmp) / f"fe-{tag}.onnx")
            paths["mn04_as", label] = export(
                WholeModel(twin, model), clip, Path(tmp) / f"model-{tag}.onnx"
            )
        sessions = {key: session(path) for key, path in paths.items()}
        with torch.inference_mode():
            reference = {"front end": source(torch.from_numpy(clip)).numpy()}
            reference["mn04_as"] = torch.softmax(model(source(torch.from_numpy(clip))), 1).numpy()
        print("| graph | front end | CPU ms / 5-s clip, median | p10 | wall ms, median | "
              "max abs diff vs PyTorch |")  # fmt: skip
        print("|---|---|---:|---:|---:|---:|")
        times = time_sessions({f"{g}|{r}": s for (g, r), s in sessions.items()}, clip, args.repeats)
        for (graph, label), s in sessions.items():
            cpu, wall = times[f"{graph}|{label}"]
            (out,) = s.run(None, {"waveform": clip})
            diff = float(np.abs(out - reference[graph]).max())
            print(
                f"| {graph} | {label} | {np.median(cpu):.2f} | {np.percentile(cpu, 10):.2f} | "
                f"{np.median(wall):.2f} | {diff:.1e} |"
            )
        print(f"\n{args.repeats} interleaved runs each; load average after: "
              f"{os.getloadavg()[0]:.2f}")  # fmt: skip
        if args.profile:
            for label in revisions:
                print(f"\nslowest nodes, front end of {label} (median ms):")
                for ms, op, name in profile_nodes(paths["front end", label], clip):
                    print(f"  {ms:6.3f}  {op:10s} {name}")


if __name__ == "__main__":
    main()

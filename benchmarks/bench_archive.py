"""Archive benchmark: files/s of ``escnet predict`` over ESC-50 clips, today's command against
the archive job (``--output``) with 0, 1 and 2 decoding workers and on a two-node Ray cluster,
and the real-time factor of a one-hour WAV at hop = window on one thread.

Every row is the wall time of the whole command in a fresh process (Python start-up and model
loading included), run one after another in the same run so that they see the same machine;
the load averages before and after are printed. Models (each an exported ONNX directory, or a
model directory that is exported to a temporary one first):

* ``--recipe``: the four-member recipe (``escnet export RUN --onnx``), when given;
* ``--one-pass``: a one-pass model (no test-time views).

Under each table, the figures the goals are stated in: the best archive run's files/s (goal: 50
for the four-member recipe, 80 for the one-pass model, on two cores), two decoding workers against
one (goal: 1.7x), Ray on two nodes against one process; under the hour's row its real-time factor
(goal: at most 0.002). The live latency is ``benchmarks/bench_listen.py``'s.

The reference row is today's command: ``escnet predict MODEL DIR --backend onnx --format csv``,
one file after another in one process. The Ray rows start a local two-node cluster
(``ray.cluster_utils.Cluster``, one CPU per node, on the loopback interface) before timing.

    python benchmarks/bench_archive.py [--recipe DIR] --one-pass DIR|--audioset-stand-in
        [--data-dir DIR] [--clips 2000] [--no-ray] [--hour] [--out docs/benchmarks/archive.md]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import command_line, describe, load_average, report  # noqa: E402
from bench_inference import write_long_file  # noqa: E402

PACKAGES = ("numpy", "onnxruntime", "soundfile", "soxr", "ray")

#: The label of each row, and the options of ``escnet predict`` it adds to MODEL DIR.
RUNS = [
    ("today: one process, file after file (reference)", ["--format", "csv"], False),
    ("--output, decoding in the same process (--workers 0)", ["--workers", "0"], True),
    ("--output, 1 decoding worker (--workers 1 --threads 1)", ["--workers", "1", "--threads", "1"],
     True),
    ("--output, 2 decoding workers (--workers 2 --threads 1)", ["--workers", "2", "--threads", "1"],
     True),
]  # fmt: skip

_HOUR_CHILD = """
import json, sys, time
import escnet
predictor = escnet.load(sys.argv[1], backend="onnx", threads=1)
window = predictor.window
start = time.perf_counter()
prediction = predictor.predict_file(sys.argv[2], hop=window, window=window)
print(json.dumps({"seconds": time.perf_counter() - start, "duration": prediction.duration,
                  "windows": len(prediction.windows), "window": window}))
"""


def onnx_dir(model: Path, scratch: Path, name: str) -> Path:
    """``model`` when it holds ``model.onnx``, else its ONNX export into ``scratch``."""
    if (model / "model.onnx").is_file():
        return model
    from escnet.export.onnx import export_model

    return Path(export_model(model, scratch / name, onnx=True, check_clips=0).directory)


def audioset_stand_in(scratch: Path) -> Path:
    """``mn04_as`` with its AudioSet weights from ``$ESCNET_WEIGHTS_DIR`` (527 sigmoid outputs),
    exported to ONNX: the network of the probe members, one pass, no test-time views; a
    stand-in for a one-pass model when no trained one is at hand."""
    import csv as csv_module

    from escnet.model_dir.io import save_model
    from escnet.models import create_model
    from escnet.settings import weights_dir

    root = weights_dir() / "efficientat"
    model = create_model("mn04_as", 527, pretrained=True, weights_path=root / "mn04_as_mAP_432.pt")
    with (root / "audioset_class_labels_indices.csv").open(newline="") as f:
        labels = [row["display_name"] for row in csv_module.DictReader(f)]
    save_model(scratch / "mn04_as", model, labels, clip_seconds=5.0)
    return onnx_dir(scratch / "mn04_as", scratch, "mn04_as-onnx")


def describe_model(model: Path) -> str:
    """What a model directory holds, from its ``model.json``: network, classes, sample rate."""
    meta = json.loads((model / "model.json").read_text())
    members = meta.get("members")
    network = f"{len(members)}-member ensemble" if members else meta.get("model", "?")
    return f"{network}, {meta['num_classes']} classes, {meta['sample_rate']} Hz"


def clip_dir(data_dir: Path, clips: int, scratch: Path) -> Path:
    """A folder of links to the first ``clips`` ESC-50 clips by name."""
    audio = sorted((data_dir / "esc50" / "audio").iterdir())[:clips]
    if len(audio) < clips:
        raise SystemExit(f"only {len(audio)} clips in {data_dir}/esc50/audio")
    out = scratch / f"clips-{clips}"
    out.mkdir()
    for path in audio:
        (out / path.name).symlink_to(path)
    return out


def escnet(args: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of ``python -m escnet ARGS`` (its standard output discarded)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "escnet", "-q", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    return time.perf_counter() - start


def top1(path: Path, today: bool) -> dict[str, str]:
    """File -> top-1 label, from today's CSV (rank 1 of the file rows) or an archive table."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if today:
        return {r["file"]: r["label"] for r in rows if r["scope"] == "file" and r["rank"] == "1"}
    return {r["file"]: r["label_1"] for r in rows}


def table_rows(path: Path) -> list[list[str]]:
    """An archive table's rows, sorted by file (they come in the order files finish)."""
    with path.open(newline="") as f:
        return sorted(list(csv.reader(f))[1:])


#: The goals for files/s on two cores, by the model's name in the tables.
FILES_PER_SECOND_GOAL = {"the four-member recipe": 50.0, "the one-pass model": 80.0}
#: The goal for two decoding workers against one, on two cores.
TWO_WORKERS_GOAL = 1.7
#: The goal for the real-time factor of the one-hour WAV at hop = window, one thread.
HOUR_GOAL = 0.002


def goals(name: str, seconds: list[float], n: int) -> list[str]:
    """The figures the goals are stated in, from the rows' seconds (in :data:`RUNS` order, then
    Ray's): best files/s of an archive run, two workers against one, Ray against one process."""
    best = max(n / s for s in seconds[1:])
    goal = FILES_PER_SECOND_GOAL.get(name)
    two = seconds[2] / seconds[3]
    lines = [
        f"- best archive run: {best:.1f} files/s"
        + (f" (goal: at least {goal:g}; {'met' if best >= goal else 'not met'})" if goal else ""),
        f"- two decoding workers against one: {two:.2f}x (goal: at least {TWO_WORKERS_GOAL:g}x; "
        f"{'met' if two >= TWO_WORKERS_GOAL else 'not met'})",
    ]
    if len(seconds) > len(RUNS):
        lines.append(
            f"- Ray on two nodes against one process decoding in it (--workers 0): "
            f"{seconds[1] / seconds[4]:.2f}x"
        )
    return lines


def throughput(
    model: Path, clips: Path, scratch: Path, ray_address: str | None, tag: str
) -> tuple[list[str], list[float]]:
    """The table rows of one model, every way of labelling ``clips``, and each row's seconds."""
    n = sum(1 for _ in clips.iterdir())
    runs = list(RUNS)
    if ray_address:
        runs.append(
            ("--output on Ray, 2 nodes x 1 CPU (--ray ADDRESS)", ["--ray", ray_address], True)
        )
    rows, reference, labels, first = [], 0.0, None, None
    times = []
    for i, (name, extra, table) in enumerate(runs):
        out = scratch / f"{tag}-{i}.csv"
        args = ["predict", str(model), str(clips), "--backend", "onnx", *extra]
        if table:
            seconds = escnet([*args, "--output", str(out)], env=_ray_env())
        else:
            start = time.perf_counter()
            with out.open("w") as f:
                subprocess.run([sys.executable, "-m", "escnet", "-q", *args], check=True, stdout=f)
            seconds = time.perf_counter() - start
        found = top1(out, today=not table)
        labels = labels or found
        agree = sum(found.get(k) == v for k, v in labels.items())
        reference = reference or seconds
        times.append(seconds)
        same = ""
        if table:  # the whole table, every cell, against the first archive row's
            first = first or table_rows(out)
            same = "yes" if table_rows(out) == first else "NO"
        rows.append(
            f"| {name} | {seconds:.1f} | {n / seconds:.1f} | {reference / seconds:.2f}x "
            f"| {agree}/{len(labels)} | {same} |"
        )
        print(rows[-1], flush=True)
    return rows, times


def _ray_env() -> dict[str, str]:
    # The benchmark's cluster runs on the loopback interface (see start_ray): so must a client.
    return {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def start_ray() -> tuple[object, str]:
    """A two-node local Ray cluster, one CPU per node, on 127.0.0.1; (cluster, address)."""
    os.environ.update(_ray_env())
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "object_store_memory": 200 * 1024**2}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    return cluster, str(cluster.address)


def hour(model: Path, scratch: Path) -> list[str]:
    """The real-time factor of a one-hour 16-bit WAV at hop = window, one thread: the table's
    row and the goal's line."""
    wav = scratch / "hour.wav"
    write_long_file(wav, 60.0, sr=16000)
    out = subprocess.run(
        [sys.executable, "-c", _HOUR_CHILD, str(model), str(wav)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    r = json.loads(out.strip().splitlines()[-1])
    factor = r["seconds"] / r["duration"]
    return [
        f"| 60-min 16-bit WAV (16 kHz), hop = window = {r['window']:g} s, {r['windows']} windows "
        f"| {r['seconds']:.1f} | {factor:.4f} |",
        "",
        f"- real-time factor {factor:.4f} (goal: at most {HOUR_GOAL:g}; "
        f"{'met' if factor <= HOUR_GOAL else 'not met'})",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipe", type=Path, help="the four-member recipe")
    ap.add_argument("--one-pass", type=Path, help="a one-pass model")
    ap.add_argument(
        "--audioset-stand-in",
        action="store_true",
        help="as the one-pass model: mn04_as with its AudioSet weights (see audioset_stand_in)",
    )
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("ESCNET_DATA_DIR", ".")))
    ap.add_argument("--clips", type=int, default=2000, help="ESC-50 clips, first by name (2000)")
    ap.add_argument("--no-ray", action="store_true", help="leave out the Ray rows")
    ap.add_argument("--hour", action="store_true", help="also the one-hour real-time factor")
    ap.add_argument("--out", type=Path, help="also write the tables to this Markdown file")
    args = ap.parse_args()
    before = load_average()
    lines = [
        f"`{command_line(sys.argv)}` (load average before: {before})",
        "",
        f"machine: {describe(PACKAGES)}",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        if args.audioset_stand_in:
            one_pass = audioset_stand_in(scratch)
        elif args.one_pass:
            one_pass = onnx_dir(args.one_pass, scratch, "one-pass")
        else:
            raise SystemExit("pass --one-pass DIR or --audioset-stand-in")
        models = [("the one-pass model", one_pass)]
        if args.recipe:
            models.insert(0, ("the four-member recipe", onnx_dir(args.recipe, scratch, "recipe")))
        clips = clip_dir(args.data_dir, args.clips, scratch)
        cluster, address = (None, None) if args.no_ray else start_ray()
        try:
            for tag, (name, model) in enumerate(models):
                rows, times = throughput(model, clips, scratch, address, str(tag))
                lines += [
                    f"**{name} ({describe_model(model)}), {args.clips} ESC-50 clips (Opus), onnx "
                    "backend, wall time of the whole command**",
                    "",
                    "| command | seconds | files/s | vs today | top-1 as today | table as "
                    "--workers 0's |",
                    "|---|---:|---:|---:|---:|---|",
                    *rows,
                    "",
                    *goals(name, times, args.clips),
                    "",
                ]
        finally:
            if cluster is not None:
                cluster.shutdown()  # type: ignore[attr-defined]
        if args.hour:
            lines += [
                f"**{models[-1][0]} ({describe_model(models[-1][1])}), one thread, one process "
                "(real-time factor = seconds / audio seconds)**",
                "",
                "| recording | seconds | real-time factor |",
                "|---|---:|---:|",
                *hour(models[-1][1], scratch),
                "",
            ]
    report(lines, args.out)


if __name__ == "__main__":
    main()

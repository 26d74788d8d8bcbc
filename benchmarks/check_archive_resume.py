"""The archive job survives a SIGKILL: ``escnet predict --output`` on the first ESC-50 clips by
name, once uninterrupted, once killed part-way (``kill -9`` of its whole process group: the job
and its decoding workers) and finished with ``--resume``; the two tables are compared cell by
cell.

Rows come in the order files finish, which differs between runs, so both tables are sorted by
file before they are compared. Reported: the rows the kill left, whether the two tables have
the same files, whether every row is identical (labels and probabilities as written, six
decimals), and the largest difference of any probability cell.

    python benchmarks/check_archive_resume.py MODEL [--data-dir DIR] [--clips 200]
        [--kill-after 100] [--workers N] [--out docs/benchmarks/archive-resume.md]
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import command_line, describe, load_average, report  # noqa: E402

PACKAGES = ("numpy", "torch", "onnxruntime", "soundfile", "soxr")


def escnet_predict(
    model: Path, listing: Path, out: Path, extra: list[str], quiet: bool = True
) -> list[str]:
    """``python -m escnet [-q] predict MODEL --files-from LIST --output OUT EXTRA``."""
    args = ["predict", str(model), "--files-from", str(listing), "--output", str(out), *extra]
    return [sys.executable, "-m", "escnet", *(["-q"] if quiet else []), *args]


def rows_of(path: Path) -> list[list[str]]:
    """A table's rows, sorted by file."""
    with path.open(newline="") as f:
        return sorted(list(csv.reader(f))[1:])


def kill_part_way(command: list[str], out: Path, after: int) -> tuple[int, float]:
    """Start ``command`` in a process group of its own, SIGKILL the group once ``out`` holds
    ``after`` rows; (rows left in ``out``, seconds until the kill)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while not out.exists() or out.read_bytes().count(b"\n") < after + 1:
            if proc.poll() is not None:
                raise SystemExit("the job ended before it could be killed: raise --clips")
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    seconds = time.perf_counter() - start
    time.sleep(1.0)  # the group's workers are gone too: nothing writes after this
    return out.read_bytes().count(b"\n") - 1, seconds


def compare(reference: list[list[str]], resumed: list[list[str]], header: list[str]) -> list[str]:
    """The comparison's lines: same files, identical rows, largest probability difference."""
    same_files = [r[0] for r in reference] == [r[0] for r in resumed]
    identical = sum(a == b for a, b in zip(reference, resumed, strict=False))
    probs = [i for i, name in enumerate(header) if name.startswith("probability_")]
    labels = [i for i, name in enumerate(header) if name.startswith("label_")]
    same_labels = same_files and all(
        [a[i] for i in labels] == [b[i] for i in labels]
        for a, b in zip(reference, resumed, strict=True)
    )
    largest = 0.0
    if same_files:
        for a, b in zip(reference, resumed, strict=True):
            for i in probs:
                if a[i] and b[i]:
                    largest = max(largest, abs(float(a[i]) - float(b[i])))
    return [
        f"| same files, in the same sorted order | {'yes' if same_files else 'NO'} |",
        f"| rows identical in every cell | {identical} of {len(reference)} "
        f"(resumed table: {len(resumed)} rows) |",
        f"| same labels, same rank, every row | {'yes' if same_labels else 'NO'} |",
        f"| largest difference of a probability cell | {largest:g} |",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("ESCNET_DATA_DIR", ".")))
    ap.add_argument("--clips", type=int, default=200, help="ESC-50 clips, first by name (200)")
    ap.add_argument("--kill-after", type=int, default=100, help="rows written before the kill")
    ap.add_argument("--workers", type=int, help="--workers of every run (default: escnet's)")
    ap.add_argument("--out", type=Path, help="also write the result to this Markdown file")
    args = ap.parse_args()
    before = load_average()
    audio = sorted((args.data_dir / "esc50" / "audio").iterdir())[: args.clips]
    extra = [] if args.workers is None else ["--workers", str(args.workers)]
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        listing = scratch / "clips.txt"
        listing.write_text("".join(f"{p}\n" for p in audio))
        reference, killed = scratch / "reference.csv", scratch / "killed.csv"
        start = time.perf_counter()
        subprocess.run(escnet_predict(args.model, listing, reference, extra), check=True)
        uninterrupted = time.perf_counter() - start
        kept, until_kill = kill_part_way(
            escnet_predict(args.model, listing, killed, extra), killed, args.kill_after
        )
        start = time.perf_counter()
        resumed = subprocess.run(
            escnet_predict(args.model, listing, killed, [*extra, "--resume"], quiet=False),
            check=True,
            stderr=subprocess.PIPE,
            text=True,
        )
        resume_seconds = time.perf_counter() - start
        summary = [
            line.removeprefix("escnet predict: ").split("; table:")[0]
            for line in resumed.stderr.splitlines()
            if line.startswith("escnet predict: ")
        ]
        with reference.open(newline="") as f:
            header = next(csv.reader(f))
        lines = [
            f"`{command_line(sys.argv)}` (load average before: {before})",
            "",
            f"machine: {describe(PACKAGES)}",
            "",
            f"{len(audio)} clips; each run is `python -m escnet predict MODEL --files-from LIST "
            f"--output TABLE{' ' + ' '.join(extra) if extra else ''}` in a fresh process",
            "",
            "| run | seconds | rows in the table after it |",
            "|---|---:|---:|",
            f"| uninterrupted | {uninterrupted:.1f} | {len(rows_of(reference))} |",
            f"| killed (SIGKILL to the process group) after {args.kill_after} rows were seen "
            f"| {until_kill:.1f} | {kept} |",
            f"| the same command with --resume | {resume_seconds:.1f} | {len(rows_of(killed))} |",
            "",
            "the resumed run's summary: " + " / ".join(summary),
            "",
            "| resumed table against the uninterrupted one (both sorted by file) | |",
            "|---|---|",
            *compare(rows_of(reference), rows_of(killed), header),
            "",
        ]
    report(lines, args.out)


if __name__ == "__main__":
    main()

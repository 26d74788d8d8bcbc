"""Live latency of `escnet listen`: from the end of a sound to its printed line.

Runs the real command (``escnet listen MODEL --input - --rate R``) in a subprocess and plays it
a stream in real time, as a microphone would: ``--block-ms`` blocks of 16-bit PCM written on the
clock. The stream holds ``--sounds`` short sounds (the loudest ``--sound-seconds`` of ``--clip``,
by default an ESC-50 dog clip), each followed by enough silence for every window to have passed
it; their ends fall at evenly spread points of the hop, so that the wait for the next window
(between 0 and one hop) is sampled over its whole range. For each sound the latency is the time
from writing its last sample to reading its line from the command's standard output; a sound
that gives no line, or more than one, is counted.

Each ``--hops`` value is one row, measured in the same run: the window / 2 of ``escnet predict``
(the reference) and the window / 4 ``escnet listen`` uses by default. The goal is a latency of at
most the hop plus 100 ms; the load average is printed before and after.

    python benchmarks/bench_listen.py MODEL [--clip FILE] [--hops 2.5 1.25] [--sounds 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import command_line, describe, load_average  # noqa: E402

#: The default clip: a dog in ESC-50 (fold 1), under the data directory.
DOG = "esc50/audio/1-100032-A-0.ogg"


def loudest(samples: np.ndarray, sr: int, seconds: float) -> np.ndarray:
    """The ``seconds`` of ``samples`` with the most energy."""
    n = int(seconds * sr)
    if samples.size <= n:
        return samples
    energy = np.convolve(samples.astype(np.float64) ** 2, np.ones(n), mode="valid")
    start = int(np.argmax(energy))
    return samples[start : start + n]


def stream(sound: np.ndarray, sr: int, sounds: int, window: float, hop: float) -> tuple[
    np.ndarray, list[int]
]:  # fmt: skip
    """The stream and the sample index at which each sound ends: silence, then each sound
    followed by a window and a hop of silence plus a fraction of a hop that spreads the ends
    over the hop's phases."""
    lead = np.zeros(int(hop * sr), np.float32)
    parts, ends, position = [lead], [], lead.size
    for i in range(sounds):
        parts.append(sound)
        position += sound.size
        ends.append(position)
        gap = np.zeros(int((window + hop + hop * (i + 0.5) / sounds) * sr), np.float32)
        parts.append(gap)
        position += gap.size
    return np.concatenate(parts), ends


def measure(
    model: str, pcm: np.ndarray, sr: int, ends: list[int], hop: float, args: argparse.Namespace
) -> dict[str, object]:
    """Play ``pcm`` to `escnet listen` in real time; the lines it printed and when."""
    cmd = [sys.executable, "-m", "escnet", "listen", model, "--input", "-", "--rate", str(sr)]
    cmd += ["--hop", str(hop), "--threads", str(args.threads), "--backend", args.backend]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    banner = proc.stderr.readline().decode()  # printed once the model is loaded: play then
    if not banner.startswith("escnet listen:") or "Ctrl-C" not in banner:
        raise SystemExit(f"escnet listen did not start: {banner}{proc.stderr.read().decode()}")
    lines: list[tuple[float, str]] = []

    def read(out: object) -> None:
        for raw in iter(proc.stdout.readline, b""):  # type: ignore[union-attr]
            lines.append((time.perf_counter(), raw.decode().strip()))

    reader = threading.Thread(target=read, args=(proc.stdout,), daemon=True)
    reader.start()
    data = (np.clip(pcm, -1, 1) * 32767).round().astype("<i2")
    block = max(1, int(sr * args.block_ms / 1000))
    written_at = np.zeros(len(ends))
    start = time.perf_counter()
    for i in range(0, data.size, block):
        delay = start + i / sr - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        proc.stdin.write(data[i : i + block].tobytes())
        now = time.perf_counter()
        for k, end in enumerate(ends):
            if i < end <= i + block:
                written_at[k] = now
    proc.stdin.close()
    proc.stderr.read()  # the summary
    proc.wait(timeout=120)
    reader.join(timeout=10)
    return {"lines": lines, "written_at": written_at, "stream_start": start}


def latencies(
    result: dict[str, object], ends: list[int], length: int, sr: int
) -> tuple[list[float], int]:
    """Latency (s) of each sound that gave exactly one line, and how many did not."""
    lines = result["lines"]
    written_at = result["written_at"]
    start = result["stream_start"]
    assert isinstance(lines, list) and isinstance(written_at, np.ndarray)
    assert isinstance(start, float)
    out, bad = [], 0
    # A sound's lines are those printed from its start on, until the next sound starts.
    begins = [start + (e - length) / sr for e in ends] + [np.inf]
    for k in range(len(ends)):
        mine = [t for t, _ in lines if begins[k] <= t < begins[k + 1]]
        if len(mine) == 1:
            out.append(mine[0] - float(written_at[k]))
        else:
            bad += 1
    return out, bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a model directory or run (escnet listen's MODEL)")
    ap.add_argument("--clip", help=f"the sound (default: $ESCNET_DATA_DIR/{DOG})")
    ap.add_argument("--sound-seconds", type=float, default=0.5, help="the sound's length (0.5)")
    ap.add_argument("--sounds", type=int, default=8, help="sounds per row (8)")
    ap.add_argument("--hops", type=float, nargs="+", help="hops in s (window / 2 and / 4)")
    ap.add_argument("--rate", type=int, default=32000, help="the stream's sample rate (32000)")
    ap.add_argument("--block-ms", type=float, default=20.0, help="ms of audio per write (20)")
    ap.add_argument("--threads", type=int, default=1, help="the model's threads (1)")
    ap.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    args = ap.parse_args()

    from escnet.data.audio import AudioConfig, load_audio
    from escnet.inference import load

    clip = args.clip or str(Path(os.environ.get("ESCNET_DATA_DIR", "data")) / DOG)
    predictor = load(args.model, backend=args.backend, threads=args.threads)
    window = predictor.window
    audio = load_audio(clip, AudioConfig(sample_rate=args.rate, duration=None))
    sound = loudest(audio, args.rate, args.sound_seconds)
    hops = args.hops or [window / 2, window / 4]
    before = load_average()
    rows = []
    for hop in hops:
        pcm, ends = stream(sound, args.rate, args.sounds, window, hop)
        result = measure(args.model, pcm, args.rate, ends, hop, args)
        got, bad = latencies(result, ends, sound.size, args.rate)
        labels = sorted({line.split()[1] for _, line in result["lines"]})  # type: ignore[attr-defined]
        rows.append((hop, got, bad, labels, pcm.size / args.rate))
    after = load_average()

    print(f"`{command_line(sys.argv)}` (load average before: {before})\n")
    print(f"machine: {describe(('numpy', 'torch', 'onnxruntime', 'soxr'))}")
    print(
        f"model {predictor.spec.name} ({args.backend}, {args.threads} thread(s)), "
        f"{window:g}-s windows; {args.sounds} sounds of {args.sound_seconds:g} s "
        f"({Path(clip).name}) per row, {args.block_ms:g}-ms blocks at {args.rate} Hz in real time\n"
    )
    print("| hop | sounds with one line | latency p50 ms | latency max ms | goal (hop + 100 ms) "
          "| met | labels printed |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---|---|")
    for hop, got, bad, labels, _ in rows:
        goal = 1000 * hop + 100
        p50 = f"{1000 * float(np.median(got)):.0f}" if got else "-"
        worst = 1000 * max(got) if got else float("nan")
        met = "yes" if got and not bad and worst <= goal else "no"
        note = " (reference: predict's window / 2)" if hop == window / 2 else ""
        print(
            f"| {hop:g} s{note} | {len(got)} of {len(got) + bad} | {p50} | {worst:.0f} | "
            f"{goal:.0f} | {met} | {', '.join(labels)} |"
        )
    print(f"\nload average after: {after}")


if __name__ == "__main__":
    main()

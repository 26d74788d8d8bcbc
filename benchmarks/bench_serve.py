"""Service benchmark: throughput and latency of `escnet serve`, batched vs unbatched.

Starts `escnet serve` on loopback without batching (``--max-batch 1``, the reference) and with
dynamic batching (``--max-batch 16``, one server per ``--max-wait-ms``), all at once, and sends
each the same bounded load: ``--requests`` uploads of one 5-s WAV clip from ``--clients``
concurrent clients (threads with their own HTTP connection), after a warm-up, split into
``--rounds`` rounds in which the servers take turns (see :func:`measure`). Reports requests/s,
p50 and p99 latency and the batch sizes the server saw (its ``/health``). The model gets random
weights (time does not depend on them), or ``--model-dir`` names a model directory to serve
(an exported ensemble: the recipe). The load average is printed before and after.

    python benchmarks/bench_serve.py [--model cnn7 | --model-dir DIR] [--backend onnx] \
        [--clients 1 8] [--max-wait-ms 0 5] [--rounds 5]

``--memory`` measures instead the server's peak resident memory (``VmHWM`` in ``/proc``) under
concurrent long uploads (``--long-seconds``, 590 by default, of digital silence, a 28 KB FLAC
that decodes to 38 MB, and of noise, a FLAC near the 20 MB upload limit): for each pair of
``--memory-runs`` (concurrent uploads x ``--max-long-uploads``), a fresh server, a warm-up
request, one long upload alone (its peak holds what all share: the model's activations for a
full batch), then the uploads at once; the table gives the answers (200 / 503), the resident
memory idle, the peak after one long upload and after all, and the growth per extra upload
labelled at once.

    python benchmarks/bench_serve.py --memory [--model mn04_as] [--backend torch] \
        [--memory-runs 1x1 2x2 4x4 8x2]
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe, load_average  # noqa: E402
from bench_inference import make_model  # noqa: E402

PACKAGES = ("numpy", "torch", "onnxruntime", "fastapi", "uvicorn", "httpx")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    model_dir: Path,
    backend: str,
    max_batch: int,
    threads: int,
    max_wait_ms: float = 0.0,
    extra: tuple[str, ...] = (),
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, "-m", "escnet.cli", "serve", str(model_dir), "--port", str(port)]
    args += ["--backend", backend, "--max-batch", str(max_batch), "--threads", str(threads)]
    args += ["--max-wait-ms", str(max_wait_ms), *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("escnet serve did not start in 300 s")


def load(url: str, clip: bytes, clients: int, requests: int) -> tuple[float, list[float]]:
    """(wall seconds, per-request latencies in ms) of ``requests`` uploads from ``clients``."""
    per_client = [requests // clients + (i < requests % clients) for i in range(clients)]

    def client(n: int) -> list[float]:
        out = []
        with httpx.Client(timeout=120) as session:
            for _ in range(n):
                start = time.perf_counter()
                r = session.post(f"{url}/predict", files={"file": ("clip.wav", clip)})
                r.raise_for_status()
                out.append(1000 * (time.perf_counter() - start))
        return out

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [t for part in pool.map(client, per_client) for t in part]
    return time.perf_counter() - start, latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="cnn7")
    ap.add_argument("--model-dir", type=Path, help="serve this model directory instead")
    ap.add_argument("--backend", default="onnx", choices=("torch", "onnx"))
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--requests", type=int, default=200, help="uploads per measurement")
    ap.add_argument("--threads", type=int, default=1, help="model threads in the server")
    ap.add_argument("--rounds", type=int, default=5, help="rounds the load is split into (5)")
    ap.add_argument(
        "--max-wait-ms",
        type=float,
        nargs="+",
        default=[0.0],
        help="batched servers' waits for company, one server each (0: escnet serve's default)",
    )
    ap.add_argument("--memory", action="store_true", help="peak memory under long uploads")
    ap.add_argument("--long-seconds", type=float, default=590.0, help="long uploads' length")
    ap.add_argument(
        "--memory-runs",
        nargs="+",
        default=["1x1", "2x2", "4x4", "8x2"],
        help="CLIENTSxSLOTS: concurrent long uploads x --max-long-uploads, a server each",
    )
    args = ap.parse_args()
    print(f"load average before: {load_average()}\n")
    print(f"machine: {describe(PACKAGES)}")
    if args.memory:
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = args.model_dir or make_model(args.model, Path(tmp))
            runs = [tuple(int(v) for v in run.split("x")) for run in args.memory_runs]
            memory(model_dir, args.backend, args.threads, args.long_seconds, runs)
        return
    name = args.model_dir.name if args.model_dir else args.model
    print(f"model {name} ({args.backend}, {args.threads} thread(s)), 5-s WAV uploads\n")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir or make_model(args.model, Path(tmp))
        rate = int(json.loads((model_dir / "model.json").read_text())["sample_rate"])
        buffer = io.BytesIO()
        noise = 0.1 * np.random.default_rng(0).standard_normal(5 * rate)
        sf.write(buffer, noise.astype(np.float32), rate, format="WAV", subtype="PCM_16")
        clip = buffer.getvalue()
        servers = [("unbatched (reference)", 1, 0.0)] + [
            (f"batched, max 16, wait {wait:g} ms", 16, wait) for wait in args.max_wait_ms
        ]
        started, urls = [], {}
        try:
            for label, max_batch, wait in servers:
                proc, url = start_server(model_dir, args.backend, max_batch, args.threads, wait)
                started.append(proc)
                load(url, clip, 2, 10)  # warm-up
                urls[label] = url
            table = measure(urls, clip, args.clients, args.requests, args.rounds)
        finally:
            for proc in started:
                proc.terminate()
                proc.wait(timeout=30)
        print(f"{args.rounds} rounds; in each, every server took its share of the load in turn\n")
        print("| server | clients | requests/s | p50 ms | p99 ms | mean batch |")
        print("|---|---:|---:|---:|---:|---:|")
        for (label, clients), (seconds, lat, batches, windows) in table.items():
            print(
                f"| {label} | {clients} | {len(lat) / seconds:.1f} | "
                f"{np.percentile(lat, 50):.0f} | {np.percentile(lat, 99):.0f} | "
                f"{windows / max(batches, 1):.2f} |"
            )
    print(f"\nload average after: {load_average()}")


Measurement = tuple[float, list[float], int, int]  # seconds, latencies (ms), batches, windows


def measure(
    urls: dict[str, str], clip: bytes, client_counts: list[int], requests: int, rounds: int
) -> dict[tuple[str, int], Measurement]:
    """Each (server, clients) pair's totals over ``rounds`` rounds of ``requests / rounds``
    uploads. All servers run at once (an idle one costs nothing) and take turns within each
    round, so that a drift in the machine's speed (other jobs, clock) reaches all of them alike
    rather than whichever server happened to be measured last."""
    per_round = max(1, requests // rounds)
    totals: dict[tuple[str, int], Measurement] = {}
    for _ in range(rounds):
        for clients in client_counts:
            for label, url in urls.items():
                before = httpx.get(f"{url}/health").json()["batching"]
                seconds, lat = load(url, clip, clients, per_round)
                after = httpx.get(f"{url}/health").json()["batching"]
                s0, l0, b0, w0 = totals.get((label, clients), (0.0, [], 0, 0))
                totals[label, clients] = (
                    s0 + seconds,
                    l0 + lat,
                    b0 + after["batches"] - before["batches"],
                    w0 + after["windows"] - before["windows"],
                )
    return dict(sorted(totals.items(), key=lambda kv: list(urls).index(kv[0][0])))


def _memory_mb(pid: int) -> tuple[float, float]:
    """(resident, peak resident) MB of a process, from /proc."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def _post(url: str, data: bytes, i: int) -> int:
    with httpx.Client(timeout=1200) as client:
        return client.post(f"{url}/predict", files={"file": (f"{i}.flac", data)}).status_code


def _flac(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="FLAC")
    return buffer.getvalue()


def memory(
    model_dir: Path, backend: str, threads: int, seconds: float, runs: list[tuple[int, ...]]
) -> None:
    """The ``--memory`` table (module docstring)."""
    rate = 16000
    n = int(seconds * rate)
    uploads = {
        "silence": _flac(np.zeros(n, np.float32), rate),
        "noise": _flac(
            (0.01 * np.random.default_rng(0).standard_normal(n)).astype(np.float32), rate
        ),
    }
    warm = _flac(
        (0.1 * np.random.default_rng(1).standard_normal(5 * rate)).astype(np.float32), rate
    )
    print(f"model {model_dir.name} ({backend}, {threads} thread(s)), {seconds:g}-s 16 kHz FLAC\n")
    print(
        "| upload | MB | concurrent | --max-long-uploads | 200 / 503 | wall s | idle RSS MB "
        "| peak, one upload MB | peak, all at once MB | per extra upload MB |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for kind, data in uploads.items():
        for clients, slots in runs:
            extra = ("--max-long-uploads", str(slots))
            proc, url = start_server(model_dir, backend, 16, threads, 0.0, extra)
            try:
                _post(url, warm, 0)
                idle, _ = _memory_mb(proc.pid)
                # One long upload alone first: its peak holds what every upload shares (the
                # model's activations for a full batch), so the rest is what concurrency adds.
                _post(url, data, 0)
                _, one = _memory_mb(proc.pid)
                start = time.perf_counter()
                with ThreadPoolExecutor(clients) as pool:
                    statuses = list(pool.map(partial(_post, url, data), range(clients)))
                wall = time.perf_counter() - start
                _, peak = _memory_mb(proc.pid)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            ok = statuses.count(200)
            extra_uploads = min(ok, slots) - 1
            per = f"{(peak - one) / extra_uploads:.1f}" if extra_uploads > 0 else "-"
            print(
                f"| {kind} | {len(data) / 1e6:.2f} | {clients} | {slots} | {ok} / "
                f"{statuses.count(503)} | {wall:.1f} | {idle:.0f} | {one:.0f} | {peak:.0f} | "
                f"{per} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

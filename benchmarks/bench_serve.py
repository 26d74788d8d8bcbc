"""Service benchmark: throughput and latency of `escnet serve`, batched vs unbatched.

Starts `escnet serve` on loopback twice, with dynamic batching (``--max-batch 16``) and without
(``--max-batch 1``, the reference), and sends each the same bounded load: ``--requests`` uploads
of one 5-s WAV clip from ``--clients`` concurrent clients (threads with their own HTTP
connection), after a warm-up. Reports requests/s, p50 and p99 latency and the batch sizes the
server saw (its ``/health``). The model gets random weights (time does not depend on them).

    python benchmarks/bench_serve.py [--model cnn7] [--backend onnx] [--clients 1 8]
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
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe  # noqa: E402
from bench_inference import make_model  # noqa: E402

PACKAGES = ("numpy", "torch", "onnxruntime", "fastapi", "uvicorn", "httpx")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    model_dir: Path, backend: str, max_batch: int, threads: int, max_wait_ms: float = 0.0
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, "-m", "escnet.cli", "serve", str(model_dir), "--port", str(port)]
    args += ["--backend", backend, "--max-batch", str(max_batch), "--threads", str(threads)]
    args += ["--max-wait-ms", str(max_wait_ms)]
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
    ap.add_argument("--backend", default="onnx", choices=("torch", "onnx"))
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--requests", type=int, default=200, help="uploads per measurement")
    ap.add_argument("--threads", type=int, default=1, help="model threads in the server")
    ap.add_argument(
        "--max-wait-ms",
        type=float,
        nargs="+",
        default=[0.0],
        help="batched servers' waits for company, one server each (0: escnet serve's default)",
    )
    args = ap.parse_args()
    print(f"machine: {describe(PACKAGES)}")
    print(f"model {args.model} ({args.backend}, {args.threads} thread(s)), 5-s WAV uploads\n")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_model(args.model, Path(tmp))
        rate = int(json.loads((model_dir / "model.json").read_text())["sample_rate"])
        buffer = io.BytesIO()
        noise = 0.1 * np.random.default_rng(0).standard_normal(5 * rate)
        sf.write(buffer, noise.astype(np.float32), rate, format="WAV", subtype="PCM_16")
        clip = buffer.getvalue()
        print("| server | clients | requests/s | p50 ms | p99 ms | mean batch |")
        print("|---|---:|---:|---:|---:|---:|")
        servers = [("unbatched (reference)", 1, 0.0)] + [
            (f"batched, max 16, wait {wait:g} ms", 16, wait) for wait in args.max_wait_ms
        ]
        for label, max_batch, wait in servers:
            proc, url = start_server(model_dir, args.backend, max_batch, args.threads, wait)
            try:
                load(url, clip, 2, 10)  # warm-up
                for clients in args.clients:
                    before = httpx.get(f"{url}/health").json()["batching"]
                    seconds, lat = load(url, clip, clients, args.requests)
                    after = httpx.get(f"{url}/health").json()["batching"]
                    batches = after["batches"] - before["batches"]
                    windows = after["windows"] - before["windows"]
                    print(
                        f"| {label} | {clients} | {args.requests / seconds:.1f} | "
                        f"{np.percentile(lat, 50):.0f} | {np.percentile(lat, 99):.0f} | "
                        f"{windows / max(batches, 1):.2f} |"
                    )
            finally:
                proc.terminate()
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()

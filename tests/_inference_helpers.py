"""Helpers of the prediction, export and service tests: a tiny model trained in seconds.

The model is ``tiny_test_cnn`` (registered by ``_ddp_worker``: two convolutions on 8 kHz
log-mel images), trained on three synthetic classes that differ clearly in their spectra:

* ``low_tone``: a harmonic tone at 200-400 Hz,
* ``high_tone``: a pure tone at 2.5-3.5 kHz,
* ``noise``: white noise.

Each has a random amplitude, phase and pitch per clip, so the model must learn the class, not a
clip. Importable from a subprocess (the service test) with ``tests/`` on ``sys.path``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import _ddp_worker  # noqa: F401  (registers tiny_test_cnn)

TESTS = Path(__file__).resolve().parent
CLASSES = ("low_tone", "high_tone", "noise")
MODEL_NAME = "tiny_test_cnn"
SAMPLE_RATE = _ddp_worker.TINY_FRONT_END.sample_rate  # 8000
CLIP_SECONDS = 1.0


def synth(kind: str, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``seconds`` of class ``kind`` at ``sr`` Hz, float32, peak 0.2-0.8."""
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    if kind == "low_tone":
        f0 = rng.uniform(200, 400)
        y = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in (1, 2, 3))
    elif kind == "high_tone":
        y = np.sin(2 * np.pi * rng.uniform(2500, 3500) * t + rng.uniform(0, 6))
    elif kind == "noise":
        y = rng.standard_normal(n)
    else:
        raise ValueError(kind)
    y = np.asarray(y, dtype=np.float64)
    y = y / (np.abs(y).max() + 1e-9) * rng.uniform(0.2, 0.8)
    return y.astype(np.float32)


def training_set(
    per_class: int, rng: np.random.Generator, padded: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(clips, labels): ``per_class`` one-second clips of each class at the model's rate.
    ``padded``: a third of them silent (zeros) before the sound and a third after, for 20-80 %
    of the clip, as ESC-50's clips are padded: a model that has seen that labels the partly
    filled windows of a live stream (escnet listen) by their sound."""
    clips, labels = [], []
    for label, kind in enumerate(CLASSES):
        for _ in range(per_class):
            clip = synth(kind, CLIP_SECONDS, SAMPLE_RATE, rng)
            if padded:  # drawn only then: the unpadded set stays what it was
                where, cut = rng.integers(3), int(rng.uniform(0.2, 0.8) * clip.size)
                if where == 1:
                    clip[:cut] = 0
                elif where == 2:
                    clip[clip.size - cut :] = 0
            clips.append(clip)
            labels.append(label)
    return np.stack(clips), np.asarray(labels)


def train_tiny_model(out_dir: Path, seed: int = 0, epochs: int = 30, padded: bool = False) -> Path:
    """Train ``tiny_test_cnn`` on the synthetic classes (a few seconds of CPU) and save it as a
    model directory at ``out_dir``; returns the directory. ``padded``: see
    :func:`training_set`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only contend on a busy CPU
    try:
        return _train(out_dir, seed, epochs, padded)
    finally:
        torch.set_num_threads(threads)


def _train(out_dir: Path, seed: int, epochs: int, padded: bool = False) -> Path:
    import torch

    from escnet.model_dir.io import save_model
    from escnet.models import create_model

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    clips, labels = training_set(16, rng, padded)
    model = create_model(MODEL_NAME, num_classes=len(CLASSES))
    front_end = model.model_info.front_end.build()
    with torch.no_grad():
        images = front_end(torch.from_numpy(clips))
    targets = torch.from_numpy(labels)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(images), targets)
        loss.backward()
        optimiser.step()
    model.eval()
    return save_model(out_dir, model, list(CLASSES), clip_seconds=CLIP_SECONDS)


def three_segment_signal(sr: int, seconds: float = 20.0, seed: int = 1) -> np.ndarray:
    """``seconds`` of each class in :data:`CLASSES` order, back to back (60 s by default)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([synth(kind, seconds, sr, rng) for kind in CLASSES])


class Server:
    """`escnet serve MODEL ARGS...` as a real uvicorn process on a free loopback port.

    Use as a context manager; ``url`` is its base URL. The process gets ``tmpdir`` as TMPDIR
    (to check that requests leave nothing there) and ``tests/`` on its path (for the tiny
    model's registration). Its output goes to ``log``.
    """

    def __init__(self, model: Path, args: list[str], tmpdir: Path, log: Path) -> None:
        self.model, self.args, self.tmpdir, self.log = model, args, tmpdir, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        import httpx

        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); import _inference_helpers; "
            "from escnet.cli import main; sys.exit(main(sys.argv[2:]))"
        )
        argv = ["serve", str(self.model), "--port", str(self.port), *self.args]
        env = {**os.environ, "TMPDIR": str(self.tmpdir)}
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code, str(TESTS), *argv],
                cwd=TESTS.parent, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 300  # generous: a busy shared CPU starts slowly
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"escnet serve exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.__exit__()
                raise AssertionError("escnet serve did not answer /health in 300 s")
            time.sleep(0.3)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

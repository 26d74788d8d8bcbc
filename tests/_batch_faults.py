"""Decoders that fail on purpose, for the archive tests: importable by a spawned decoding worker
(it finds ``tests/`` on the path its parent gave it) and light to import (no torch)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from escnet.batch.engine import Event, decode_file


def faulty_decoder(path: str, sample_rate: int) -> Iterator[Event]:
    """:func:`escnet.batch.engine.decode_file`, except that a file named ``hang*`` hangs (after
    one block, as a decoder stuck in the middle of a file) and ``crash*`` kills the worker."""
    name = Path(path).name
    if name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGKILL)
    for i, event in enumerate(decode_file(path, sample_rate)):
        yield event
        if name.startswith("hang") and i == 1:
            time.sleep(3600)


def slow_decoder(path: str, sample_rate: int) -> Iterator[Event]:
    """:func:`escnet.batch.engine.decode_file`, 50 ms slower per file: a run that lasts long
    enough to be killed in the middle."""
    time.sleep(0.05)
    yield from decode_file(path, sample_rate)


def kill_part_way(job: str, model: Path, folder: Path, out: Path, lines: int) -> None:
    """Run ``escnet.batch.<job>(model, [folder], output=out, workers=1)`` with
    :func:`slow_decoder` in a subprocess and SIGKILL it once ``out`` holds ``lines`` lines."""
    import subprocess
    import sys

    tests = Path(__file__).parent
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import _inference_helpers, _batch_faults; "
        f"from escnet.batch import {job}; "
        f"{job}(sys.argv[2], [sys.argv[3]], output=sys.argv[4], workers=1, "
        "decoder=_batch_faults.slow_decoder)"
    )
    args = [sys.executable, "-c", code, str(tests), str(model), str(folder), str(out)]
    proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not out.exists() or out.read_bytes().count(b"\n") < lines:
            assert proc.poll() is None, "the job ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()

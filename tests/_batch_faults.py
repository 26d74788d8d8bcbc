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

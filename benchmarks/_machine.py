"""Describe the machine a benchmark ran on, for the table's header."""

from __future__ import annotations

import platform
from importlib import metadata

from escnet.machine import cpu_model, usable_cores


def describe(packages: tuple[str, ...] = ("numpy", "torch", "librosa", "soxr", "soundfile")) -> str:
    """One line: CPU, cores usable, Python and library versions."""
    cores = usable_cores()
    versions = []
    for name in packages:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return f"{cpu_model()}, {cores} cores, Python {platform.python_version()}, " + ", ".join(
        versions
    )


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, for the table: other work on the cores shows."""
    import os

    return ", ".join(f"{v:.2f}" for v in os.getloadavg())

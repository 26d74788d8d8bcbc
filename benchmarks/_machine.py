"""Describe the machine a benchmark ran on, for the table's header."""

from __future__ import annotations

import os
import platform
from importlib import metadata


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe(packages: tuple[str, ...] = ("numpy", "torch", "librosa", "soxr", "soundfile")) -> str:
    """One line: CPU, cores usable, Python and library versions."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    versions = []
    for name in packages:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return f"{cpu_model()}, {cores} cores, Python {platform.python_version()}, " + ", ".join(
        versions
    )

"""What machine a run or benchmark used: the CPU's model and the cores this process may use.

Recorded beside every run (``config.json``'s ``environment``) because this project's sessions do
not always get the same machine, and a run's seconds only compare with runs on the same CPU.
"""

from __future__ import annotations

import os
import platform
import re

__all__ = ["cpu_model", "describe_cpu", "usable_cores"]


def cpu_model() -> str:
    """The CPU's model name as the OS reports it (``/proc/cpuinfo`` on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def describe_cpu() -> str:
    """Short: ``"Intel Xeon Processor, 2 cores"`` (trademark marks and clock speed dropped)."""
    name = re.sub(r"\((R|TM|tm|r)\)", "", cpu_model())
    name = re.sub(r"\s+(CPU\s+)?@.*$", "", name)
    return f"{' '.join(name.split())}, {usable_cores()} cores"

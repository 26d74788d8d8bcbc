"""Describe the machine a benchmark ran on, for the table's header."""

from __future__ import annotations

import os
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


def command_line(argv: list[str]) -> str:
    """``python`` and ``argv`` as a reader can retype it: the script's path relative to the
    repository, escnet's data and weights directories written as their environment variables,
    so that the table printed into the docs names no path of this machine."""
    import os
    import shlex
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    places = [
        (os.path.realpath(value), f"${name}")
        for name in ("ESCNET_WEIGHTS_DIR", "ESCNET_DATA_DIR", "ESCNET_CACHE_DIR")
        if (value := os.environ.get(name))
    ]

    def portable(arg: str) -> str:
        if os.sep in arg:
            real = os.path.realpath(arg)
            for place, name in places:
                if real == place or real.startswith(place + os.sep):
                    return name + real[len(place) :]
            if real.startswith(str(repo) + os.sep):
                return os.path.relpath(real, repo)
        return shlex.quote(arg)

    return "python " + " ".join(portable(a) for a in argv)


def report(lines: list[str], out: str | os.PathLike[str] | None) -> None:
    """End a benchmark's ``lines`` with the load average after it, print them, and write them
    to ``out`` (the Markdown file that the docs copy) when given."""
    from pathlib import Path

    text = "\n".join([*lines, f"load average after: {load_average()}"]) + "\n"
    print(text)
    if out:
        Path(out).write_text(text)

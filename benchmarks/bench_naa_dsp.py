"""Which DSP backend should the NAA pitch-shift and time-stretch transforms use?

Times every candidate on real ESC-50 clips (clips per second, one thread each, as in one
data-loading worker) and checks its quality with the checks ``tests/test_augment_audio.py``
uses:

- pitch shift by +2 and -2 semitones: a 440 Hz tone's spectral peak must move by 2**(n/12)
  within 1 %;
- time stretch by 0.7 and 1.2: a 1 s, 440 Hz tone burst's duration must change by 1/rate
  within 2 %.

It also reports, for information, how much the steady level of the tone changes (dB): a phase
vocoder without phase locking loses level on a tone that falls between FFT bins.

Candidates: the backends of :mod:`escnet.augment.audio` (librosa, python-stretch, pedalboard)
and, when importable, audiomentations' own transforms (which wrap python-stretch by default).
Missing packages are reported and skipped.

Usage::

    .venv/bin/python benchmarks/bench_naa_dsp.py --clips 40
"""

from __future__ import annotations

import os

# One thread per candidate: set before numpy/numba load their thread pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib.metadata  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.signal import hilbert  # noqa: E402

from escnet.augment.audio import (  # noqa: E402
    DSP_BACKENDS,
    active_duration,
    peak_frequency,
    pitch_shift,
    time_stretch,
)
from escnet.data.audio import AudioConfig, load_audio  # noqa: E402

# $ESCNET_DATA_DIR's ESC-50, else ../shared/data's.
DEFAULT_AUDIO_DIR = (
    Path(os.environ.get("ESCNET_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared/data")
    / "esc50"
    / "audio"
)
SAMPLE_RATE = 22050
SEMITONES = (2.0, -2.0)
RATES = (0.7, 1.2)
PITCH_TOLERANCE = 0.01  # relative error of the peak frequency ratio
DURATION_TOLERANCE = 0.02  # relative error of the duration ratio

Op = Callable[[np.ndarray, int, float], np.ndarray]


# The test signals, identical to those in tests/test_augment_audio.py.
def tone(sr: int = SAMPLE_RATE, seconds: float = 3.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def tone_burst(
    sr: int = SAMPLE_RATE, seconds: float = 1.0, start: float = 0.25, total: float = 3.0
) -> np.ndarray:
    y = np.zeros(int(total * sr), dtype=np.float32)
    s = int(start * sr)
    y[s : s + int(seconds * sr)] = tone(sr, seconds)
    return y


def steady_level(y: np.ndarray) -> float:
    """Median amplitude envelope where the envelope is above a tenth of its peak."""
    env = np.abs(hilbert(y.astype(np.float64)))
    return float(np.median(env[env >= 0.1 * env.max()]))


@dataclass
class Candidate:
    op: str  # "pitch" or "stretch"
    name: str
    fn: Op
    seconds: float = 0.0
    calls: int = 0
    errors: list[float] = field(default_factory=list)  # relative errors, one per setting
    level_db: list[float] = field(default_factory=list)

    @property
    def tolerance(self) -> float:
        return PITCH_TOLERANCE if self.op == "pitch" else DURATION_TOLERANCE

    @property
    def passed(self) -> bool:
        return bool(self.errors) and max(abs(e) for e in self.errors) <= self.tolerance


def escnet_candidates() -> list[Candidate]:
    out = []
    for backend in DSP_BACKENDS:

        def ps(y: np.ndarray, sr: int, n: float, b: str = backend) -> np.ndarray:
            return pitch_shift(y, sample_rate=sr, semitones=n, backend=b)

        def ts(y: np.ndarray, sr: int, r: float, b: str = backend) -> np.ndarray:
            return time_stretch(y, sample_rate=sr, rate=r, backend=b)

        try:
            ps(tone(seconds=0.5), SAMPLE_RATE, 2.0)
        except ImportError as exc:
            print(f"skipped escnet backend {backend!r}: {exc}")
            continue
        out += [
            Candidate("pitch", f"escnet {backend}", ps),
            Candidate("stretch", f"escnet {backend}", ts),
        ]
    return out


def audiomentations_candidates() -> list[Candidate]:
    try:
        import audiomentations as am
    except ImportError:
        print("skipped audiomentations: not installed")
        return []

    def ps(y: np.ndarray, sr: int, n: float) -> np.ndarray:
        return am.PitchShift(min_semitones=n, max_semitones=n, p=1.0)(y, sr)

    def ts(y: np.ndarray, sr: int, r: float) -> np.ndarray:
        t = am.TimeStretch(min_rate=r, max_rate=r, leave_length_unchanged=False, p=1.0)
        return t(y, sr)

    label = f"audiomentations {am.__version__} (default method)"
    return [Candidate("pitch", label, ps), Candidate("stretch", label, ts)]


def check_quality(c: Candidate) -> None:
    if c.op == "pitch":
        x = tone()
        middle = slice(SAMPLE_RATE // 2, -SAMPLE_RATE // 2)  # away from edge effects
        f0 = peak_frequency(x[middle], SAMPLE_RATE)
        for n in SEMITONES:
            y = c.fn(x, SAMPLE_RATE, n)
            ratio = peak_frequency(y[middle], SAMPLE_RATE) / f0
            c.errors.append(ratio / 2 ** (n / 12) - 1)
            c.level_db.append(20 * np.log10(steady_level(y[middle]) / steady_level(x[middle])))
    else:
        x = tone_burst()
        d0 = active_duration(x, SAMPLE_RATE)
        for r in RATES:
            y = c.fn(x, SAMPLE_RATE, r)
            c.errors.append(active_duration(y, SAMPLE_RATE) / d0 * r - 1)
            c.level_db.append(20 * np.log10(steady_level(y) / steady_level(x)))


def machine() -> list[str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = []
    for pkg in (
        "numpy",
        "scipy",
        "librosa",
        "soxr",
        "numba",
        "python-stretch",
        "pedalboard",
        "audiomentations",
    ):
        try:
            versions.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{pkg} -")
    return [
        f"CPU: {cpu}; {os.cpu_count()} cores, {usable} usable; threads per candidate: "
        f"{os.environ['OMP_NUM_THREADS']} (shared machine: others may be running)",
        f"Python {platform.python_version()} on {platform.system()} {platform.release()}",
        "; ".join(versions),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40, help="ESC-50 clips to time (40)")
    parser.add_argument(
        "--audio-dir",
        type=Path,
        default=DEFAULT_AUDIO_DIR,
        help="folder of ESC-50 clips ($ESCNET_DATA_DIR/esc50/audio, else ../shared/data/...)",
    )
    args = parser.parse_args(argv)
    if args.clips < 1:
        parser.error(f"--clips must be >= 1, got {args.clips}")

    files = sorted(args.audio_dir.glob("*.flac"))
    if not files:
        parser.error(f"no *.flac files in {args.audio_dir}; pass --audio-dir")
    # Evenly spread over the sorted list, so every fold and many classes are represented.
    picked = [
        files[i] for i in np.linspace(0, len(files) - 1, min(args.clips, len(files))).astype(int)
    ]
    cfg = AudioConfig(sample_rate=SAMPLE_RATE, duration=5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # silent clips are fine for timing
        clips = [load_audio(f, cfg) for f in picked]

    candidates = escnet_candidates() + audiomentations_candidates()
    settings = {"pitch": SEMITONES, "stretch": RATES}
    for c in candidates:  # warm-up: lazy imports, numba compilation, FFT plans
        for s in settings[c.op]:
            c.fn(clips[0], SAMPLE_RATE, s)
        check_quality(c)

    # Interleaved so that load from other processes falls on every candidate alike.
    for y in clips:
        for c in candidates:
            for s in settings[c.op]:
                t0 = time.perf_counter()
                c.fn(y, SAMPLE_RATE, s)
                c.seconds += time.perf_counter() - t0
                c.calls += 1

    print(
        f"NAA DSP backends on {len(clips)} ESC-50 clips (5 s at {SAMPLE_RATE} Hz), "
        f"{sum(c.calls for c in candidates)} timed calls"
    )
    for line in machine():
        print(f"  {line}")
    print()
    print(
        "| op | candidate | clips/s | ms/clip | settings | quality error | check | "
        "tone level change |"
    )
    print("|---|---|---:|---:|---|---|---|---|")
    for c in candidates:
        s = settings[c.op]
        err = ", ".join(f"{e * 100:+.2f} %" for e in c.errors)
        lvl = ", ".join(f"{d:+.1f} dB" for d in c.level_db)
        check = f"{'pass' if c.passed else 'FAIL'} (<= {c.tolerance * 100:g} %)"
        what = "semitones " if c.op == "pitch" else "rate "
        print(
            f"| {c.op} | {c.name} | {c.calls / c.seconds:.1f} | {1000 * c.seconds / c.calls:.1f} | "
            f"{what}{', '.join(f'{v:+g}' if c.op == 'pitch' else f'{v:g}' for v in s)} | "
            f"{err} | {check} | {lvl} |"
        )
    print()
    for op in ("pitch", "stretch"):
        ok = [c for c in candidates if c.op == op and c.passed]
        if ok:
            best = max(ok, key=lambda c: c.calls / c.seconds)
            print(f"fastest {op} candidate passing the checks: {best.name}")
        else:
            print(f"no {op} candidate passes the checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())

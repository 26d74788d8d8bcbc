"""Shared fixtures: synthetic data sets written in tmp_path, and the ../shared material."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# Read before the autouse fixture below replaces the variables: CI points them at ../shared.
SHARED_DATASETS = Path(os.environ.get("ESCNET_DATA_DIR") or SHARED / "data")
SHARED_WEIGHTS = Path(os.environ.get("ESCNET_WEIGHTS_DIR") or SHARED / "weights")


@pytest.fixture(autouse=True)
def _isolated_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never let a test read or write the user's real data, weights or cache directories."""
    base = tmp_path_factory.mktemp("escnet-home")
    monkeypatch.setenv("ESCNET_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("ESCNET_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("ESCNET_WEIGHTS_DIR", str(base / "weights"))


@pytest.fixture
def shared_datasets() -> Path:
    """$ESCNET_DATA_DIR (else ../shared/data) when it holds ESC-50; else the test is skipped."""
    if not (SHARED_DATASETS / "esc50" / "meta" / "esc50.csv").is_file():
        pytest.skip(f"{SHARED_DATASETS}/esc50 is absent")
    return SHARED_DATASETS


@pytest.fixture
def shared_weights() -> Path:
    if not SHARED_WEIGHTS.is_dir():
        pytest.skip(f"{SHARED_WEIGHTS} is absent")
    return SHARED_WEIGHTS


def tone(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_esc50_layout(
    root: Path,
    clips: Iterable[tuple[int, int, str, np.ndarray, bool]],
    sr: int,
    fmt: str = "flac",
    clips_per_recording: int = 1,
) -> Path:
    """Write an ESC-50-shaped data set (meta/esc50.csv + audio/) at ``root``.

    ``clips`` yields ``(fold, target, category, samples, esc10)``; each run of
    ``clips_per_recording`` consecutive clips is one recording (``src_file``; takes A, B, ...),
    as in ESC-50, so the caller keeps a recording's clips in one fold and class. The CSV says
    ``.wav`` whatever ``fmt`` is, as re-encoded copies do.
    """
    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    rows = []
    for k, (fold, target, name, samples, esc10) in enumerate(clips):
        src = 100001 + k // clips_per_recording
        stem = f"{fold}-{src}-{chr(ord('A') + k % clips_per_recording)}-{target}"
        sf.write(root / "audio" / f"{stem}.{fmt}", samples, sr)
        rows.append(
            {
                "filename": f"{stem}.wav",
                "fold": fold,
                "target": target,
                "category": name,
                "esc10": str(esc10),
                "src_file": src,
                "take": stem.split("-")[2],
            }
        )
    with open(root / "meta" / "esc50.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


def write_esc50(
    root: Path,
    classes: int = 3,
    per_fold: int = 2,
    sr: int = 16000,
    fmt: str = "flac",
    seconds: float = 1.0,
    clips_per_recording: int = 1,
) -> Path:
    """A tiny ESC-50-shaped data set, one distinct tone per clip; classes 0-1 are "ESC-10".

    ``clips_per_recording`` (a divisor of ``per_fold``) cuts each recording into that many
    clips, so that a split which cuts a recording can be caught."""
    if per_fold % clips_per_recording:
        raise ValueError("clips_per_recording must divide per_fold")
    names = ["dog", "rooster", "pig", "cow", "frog", "cat", "hen"][:classes]
    clips = (
        (fold, target, name, tone(300 * (target + 1) + 10 * k + 3 * fold, seconds, sr), target < 2)
        for fold in range(1, 6)
        for target, name in enumerate(names)
        for k in range(per_fold)
    )
    return write_esc50_layout(root, clips, sr, fmt, clips_per_recording)


@pytest.fixture
def tiny_esc50(tmp_path: Path) -> Path:
    return write_esc50(tmp_path / "esc50")


@pytest.fixture
def grouped_esc50(tmp_path: Path) -> Path:
    """ESC-50-shaped, 5 folds x 3 classes x 2 recordings of 3 clips each (90 clips of 0.25 s):
    a split that cuts a recording puts clips of one ``src_file`` on two sides."""
    return write_esc50(tmp_path / "esc50", per_fold=6, seconds=0.25, sr=8000, clips_per_recording=3)


def bad_audio_files(root: Path) -> dict[str, Path]:
    """The files that every reader (training, ``escnet predict``, the service,
    ``escnet spectrogram``) must refuse alike, written in ``root``: a WAV whose header declares
    4 GB but holds 1 s, a WAV and a FLAC cut in half, a FLAC whose header says total samples = 0
    (a streaming encoder's "length unknown"), a WAV whose header declares 2 147 483 647 Hz for
    its 1 000 samples, one of 4 samples (half a millisecond), and a dangling symbolic link."""
    import struct

    root.mkdir(parents=True, exist_ok=True)
    noise = (0.1 * np.random.default_rng(0).standard_normal(3 * 16000)).astype(np.float32)
    files = {}
    one = root / "declares_4gb.wav"
    sf.write(one, noise[:16000], 16000, subtype="PCM_16")
    data = bytearray(one.read_bytes())
    at = data.find(b"data")
    data[at + 4 : at + 8] = struct.pack("<I", 4_000_000_000)
    data[4:8] = struct.pack("<I", 4_000_000_036)
    one.write_bytes(bytes(data))
    files["wav_4gb"] = one
    half = root / "cut_in_half.wav"
    sf.write(half, noise, 16000, subtype="PCM_16")
    half.write_bytes(half.read_bytes()[: half.stat().st_size // 2])
    files["wav_half"] = half
    flac = root / "whole.flac"
    sf.write(flac, noise, 16000)
    whole = flac.read_bytes()
    flac.unlink()
    cut = root / "cut_in_half.flac"
    cut.write_bytes(whole[: len(whole) // 2])
    files["flac_half"] = cut
    unknown = bytearray(whole)
    # STREAMINFO's 36-bit total samples: the low 4 bits of byte 21 and bytes 22-25.
    unknown[21] &= 0xF0
    unknown[22:26] = b"\0\0\0\0"
    files["flac_unknown_length"] = root / "unknown_length.flac"
    files["flac_unknown_length"].write_bytes(bytes(unknown))
    absurd = root / "absurd_rate.wav"
    sf.write(absurd, noise[:1000], 16000, subtype="PCM_16")
    data = bytearray(absurd.read_bytes())
    data[24:28] = struct.pack("<I", 2_147_483_647)  # the fmt chunk's sample rate
    absurd.write_bytes(bytes(data))
    files["absurd_rate"] = absurd
    files["too_short"] = root / "too_short.wav"
    sf.write(files["too_short"], noise[:4], 8000, subtype="PCM_16")
    files["dangling"] = root / "dangling.wav"
    files["dangling"].symlink_to(root / "moved-away.wav")
    return files

"""The records every data set loader returns: :class:`Clip` and :class:`Dataset`.

They live apart from the loaders (:mod:`escnet.data.datasets` for the published data sets,
:mod:`escnet.data.folder` for a folder of one's own sounds) so that each loader module can be
read, and imported, on its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Clip", "Dataset"]


@dataclass(frozen=True)
class Clip:
    """One labelled audio clip of a data set."""

    path: Path
    label: int
    fold: int
    group: str
    clip_id: str


@dataclass
class Dataset:
    """Clips, class names and the audio settings the data set was recorded for.

    Attributes:
        name: registry name (``esc50``, ``esc10``, ``us8k``, ``folder``).
        root: directory the data set was read from.
        classes: class names; a clip's ``label`` indexes this list.
        clips: the clips, in metadata order.
        duration: clip length in seconds that loading pads or crops to (ESC: 5 s, UrbanSound8K:
            4 s, zero-padded); ``None`` keeps each file's length.
        official_folds: clips per fold of the complete published data set, when the copy's
            metadata says so (UrbanSound8K's ``UrbanSound8K.full.csv``); ``None`` when unknown.
            :meth:`coverage` compares the clips present against it.
        options: the loader's keyword arguments that made it (``root``, ``folds``,
            ``group_pattern``, ...; :func:`escnet.data.datasets.get_dataset` fills them in), so
            that a run can save them and rebuild the same split; empty for a subset.
    """

    name: str
    root: Path
    classes: list[str]
    clips: list[Clip]
    duration: float | None = 5.0
    official_folds: dict[int, int] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> Clip:
        return self.clips[index]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def folds(self) -> list[int]:
        return sorted({c.fold for c in self.clips})

    @property
    def labels(self) -> np.ndarray:
        return np.array([c.label for c in self.clips], dtype=np.int64)

    @property
    def fold_of(self) -> np.ndarray:
        return np.array([c.fold for c in self.clips], dtype=np.int64)

    def fold_sizes(self) -> dict[int, int]:
        return dict(sorted(Counter(c.fold for c in self.clips).items()))

    def subset(self, indices: Iterable[int]) -> Dataset:
        """A data set of the same classes holding only the clips at ``indices``."""
        return Dataset(
            self.name,
            self.root,
            self.classes,
            [self.clips[i] for i in indices],
            self.duration,
            self.official_folds,
        )

    def coverage(self) -> dict[int, tuple[int, int]] | None:
        """Per official fold, ``(clips present, clips in the complete data set)``; ``None`` when
        the complete data set's fold sizes are unknown (:attr:`official_folds`)."""
        if self.official_folds is None:
            return None
        present = self.fold_sizes()
        return {f: (present.get(f, 0), n) for f, n in sorted(self.official_folds.items())}

    def coverage_note(self) -> str | None:
        """Which official folds this copy holds, in words, when it is not all of them, e.g.
        ``"folds 1-3 (fold 3 partial)"``; ``None`` for a complete copy or an unknown one.

        >>> from pathlib import Path
        >>> clips = [Clip(Path("a"), 0, 1, "g", "a"), Clip(Path("b"), 0, 3, "h", "b")]
        >>> Dataset("us8k", Path("."), ["x"], clips, 4.0, {1: 1, 2: 5, 3: 2}).coverage_note()
        'folds 1, 3 (fold 3 partial)'
        """
        cover = self.coverage()
        if cover is None or all(have == n for have, n in cover.values()):
            return None
        held = [f for f, (have, _) in cover.items() if have]
        partial = [f for f, (have, n) in cover.items() if 0 < have < n]
        note = f"folds {fold_range(held)}" if held else "no fold"
        if partial:
            note += f" (fold{'s' if len(partial) > 1 else ''} {fold_range(partial)} partial)"
        return note

    def copy_info(self) -> dict[str, Any]:
        """Which copy of the data set this is: its directory's name, its audio's container,
        codec and sample rate (of the first clip), and a digest of its metadata tables (every
        ``*.csv`` in the root and ``meta/``, e.g. the metadata and a provenance list), so that a
        figure says what it was measured on."""
        import hashlib

        import soundfile

        digest = hashlib.sha256()
        tables = ("*.csv", "meta/*.csv", "metadata/*.csv")  # ESC-50: meta/, UrbanSound8K: metadata/
        for table in sorted(t for pattern in tables for t in self.root.glob(pattern)):
            digest.update(table.name.encode() + b"\0" + table.read_bytes())
        audio = "none"
        if self.clips:
            try:
                sf = soundfile.info(str(self.clips[0].path))
                audio = f"{sf.format.lower()}/{sf.subtype.lower()} {sf.samplerate} Hz"
            except (RuntimeError, OSError) as exc:  # named, not fatal: this only describes
                audio = f"unreadable ({exc})"
        record: dict[str, Any] = {
            "dataset": self.name,
            # The root's last two parts tell copies apart ("data/esc50", "datasets/esc50")
            # without printing where on a machine they are.
            "copy": f"{self.root.parent.name}/{self.root.name}",
            "audio": audio,
            "metadata_sha256": digest.hexdigest()[:16],
        }
        # Only for an incomplete copy, so that a complete copy's record stays what runs made
        # before this key existed recorded.
        coverage = self.coverage_note()
        if coverage:
            record["coverage"] = coverage
        return record

    def info(self) -> dict[str, Any]:
        """Summary used by ``escnet info``: counts of clips, classes, folds and groups."""
        per_class = Counter(c.label for c in self.clips)
        return {
            "dataset": self.name,
            "root": str(self.root),
            "clips": len(self.clips),
            "classes": self.num_classes,
            "folds": self.fold_sizes(),
            "groups": len({c.group for c in self.clips}),
            "clips_per_class": {"min": min(per_class.values()), "max": max(per_class.values())}
            if per_class
            else {},
            "duration_s": self.duration,
            "official_folds": {
                f: {"present": have, "complete": n} for f, (have, n) in cover.items()
            }
            if (cover := self.coverage())
            else None,
            "coverage": self.coverage_note(),
        }


def sorted_folds(folds: Iterable[int] | None) -> list[int] | None:
    """The folds a loader's ``folds=`` asks for, sorted and once each; ``None``: all."""
    return None if folds is None else sorted({int(f) for f in folds})


def fold_range(folds: Iterable[int]) -> str:
    """``1-3, 5``: folds in words, runs of consecutive folds as ranges.

    >>> fold_range([5, 1, 2, 3])
    '1-3, 5'
    """
    ordered = sorted(set(folds))
    runs: list[list[int]] = []
    for f in ordered:
        if runs and f == runs[-1][-1] + 1:
            runs[-1].append(f)
        else:
            runs.append([f])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)


def fold_list(folds: Iterable[int]) -> str:
    """``1,2,10``: a fold list as --folds takes it."""
    return ",".join(str(f) for f in sorted(folds))

"""Data sets with their official folds: ESC-50, ESC-10 and UrbanSound8K, and the registry of
every data set by name (:func:`get_dataset`), the ``folder`` one (:mod:`escnet.data.folder`)
included.

A :class:`~escnet.data.clips.Dataset` is a list of :class:`~escnet.data.clips.Clip` records
(audio path, label, fold, group) plus the class names. Nothing is decoded here: audio is loaded
by :mod:`escnet.data.audio`, split by fold in :mod:`escnet.data.folds`. Each clip's *group* is
the recording it was cut from (ESC-50's ``src_file``, UrbanSound8K's ``fsID``): clips of one
group must never be on both sides of a split.

A clip's audio is found by the metadata filename's stem with any of ``.wav``, ``.flac``, ``.ogg``,
because re-encoded copies of these data sets are common.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from escnet.data.audio import AUDIO_EXTENSIONS
from escnet.data.clips import Clip, Dataset, fold_list, sorted_folds
from escnet.data.folder import load_folder, stratified_group_folds
from escnet.data.metadata import (
    MAX_FOLD,
    Row,
    check_unique,
    class_table,
    contiguous_classes,
    read_rows,
)
from escnet.errors import DatasetError, ParameterError
from escnet.settings import data_dir as default_data_dir

# Clip, Dataset and the folder loader are defined in their own modules and stay importable
# from here, where most code looks for them.
__all__ = [
    "DATASETS",
    "DESCRIPTIONS",
    "ESC10_CLASSES",
    "ESC50_CLASSES",
    "Clip",
    "Dataset",
    "dataset_from_options",
    "describe_copy",
    "get_dataset",
    "load_esc10",
    "load_esc50",
    "load_folder",
    "load_us8k",
    "stratified_group_folds",
]

log = logging.getLogger(__name__)


def _stem(filename: str) -> str:
    return Path(filename).stem


def _audio_index(directory: Path) -> dict[str, Path]:
    """Map stem -> audio path for one directory, preferring extensions in AUDIO_EXTENSIONS order."""
    found: dict[str, Path] = {}
    rank = {ext: i for i, ext in enumerate(AUDIO_EXTENSIONS)}
    with os.scandir(directory) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            ext = ext.lower()
            if ext in rank and (stem not in found or rank[ext] < rank[found[stem].suffix.lower()]):
                found[stem] = Path(entry.path)
    return found


def _missing_audio_error(
    name: str, directory: Path, missing: list[str], total: int
) -> DatasetError:
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    exts = "/".join(AUDIO_EXTENSIONS)
    return DatasetError(
        f"{name}: {len(missing)} of {total} clips listed in the metadata have no audio file "
        f"({exts}) in {directory}: {shown}. The copy is incomplete: download it again with "
        f"`escnet download {name}` or point --data-dir / $ESCNET_DATA_DIR at a complete copy."
    )


def _resolve_root(
    name: str, root: str | os.PathLike[str] | None, data_dir: str | os.PathLike[str] | None
) -> Path:
    if root is not None:
        return Path(root).expanduser()
    return default_data_dir(data_dir) / name


#: ESC-10's classes in escnet's label order: sorted by their ESC-50 target number.
ESC10_CLASSES: tuple[str, ...] = (
    "dog", "rooster", "rain", "sea_waves", "crackling_fire",
    "crying_baby", "sneezing", "clock_tick", "helicopter", "chainsaw",
)  # fmt: skip


#: ESC-50's classes in target order: the data set's fixed class set. A partial copy whose
#: targets have gaps (a subset of the metadata's rows) keeps all 50 outputs, so its models and
#: labels stay those of ESC-50; a copy whose targets run 0..K-1 keeps its own K classes.
ESC50_CLASSES: tuple[str, ...] = (
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow",
    "rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds", "water_drops", "wind",
    "pouring_water", "toilet_flush", "thunderstorm", "crying_baby", "sneezing", "clapping",
    "breathing", "coughing", "footsteps", "laughing", "brushing_teeth", "snoring",
    "drinking_sipping", "door_wood_knock", "mouse_click", "keyboard_typing", "door_wood_creaks",
    "can_opening", "washing_machine", "vacuum_cleaner", "clock_alarm", "clock_tick",
    "glass_breaking", "helicopter", "chainsaw", "siren", "car_horn", "engine", "train",
    "church_bells", "airplane", "fireworks", "hand_saw",
)  # fmt: skip


def _fixed_classes(table: dict[int, tuple[str, Row]], classes: Sequence[str], name: str) -> None:
    """Check a copy's (target, category) pairs against the data set's fixed classes: an id
    beyond them, or a name that is not the id's, is refused on its line; absent ids are fine."""
    for cid, (category, row) in sorted(table.items()):
        if cid >= len(classes):
            raise row.error(
                "target",
                f"class id {cid} is beyond {name}'s {len(classes)} classes (0-{len(classes) - 1});"
                " fix the id, or remove the row",
            )
        if category != classes[cid]:
            raise row.error(
                "category",
                f"class {cid} is {classes[cid]!r} in {name}, not {category!r}; fix the row",
            )


def load_esc50(
    root: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    folds: Iterable[int] | None = None,
    esc10: bool = False,
) -> Dataset:
    """ESC-50 (or its ESC-10 subset with ``esc10=True``) from ``meta/esc50.csv`` + ``audio/``.

    2000 clips of 5 s, 50 classes, official folds 1-5 (400 clips each); group = ``src_file``.
    ESC-10 keeps the 400 ``esc10 == True`` rows and renumbers their labels 0-9 in the order of
    :data:`ESC10_CLASSES` (ascending ESC-50 target).

    Args:
        root: the data set's own directory; default ``<data_dir>/esc50``.
        data_dir: directory holding ``esc50/``; default ``$ESCNET_DATA_DIR``.
        folds: keep only these folds (default: all five).
        esc10: return the ESC-10 subset.

    Raises:
        MetadataError: a row of the CSV would give wrong data (a file listed twice, a fold or
            target that is not a whole number in range, a target beyond ESC-50's 50 classes or
            a category that is not its target's, a missing field, a category with two
            targets); the message names the file, line and column. Gaps in the targets are
            fine: such a partial copy keeps ESC-50's fixed class set (targets 0..K-1 without a
            gap keep the copy's own K classes).
        DatasetError: the metadata or audio is missing, or a requested fold is not in it.
    """
    name = "esc10" if esc10 else "esc50"
    base = _resolve_root("esc50", root, data_dir)
    meta = base / "meta" / "esc50.csv"
    if not meta.is_file():
        raise DatasetError(
            f"{name}: {meta} not found. Download the data set with `escnet download esc50`, or "
            f"point --data-dir / $ESCNET_DATA_DIR at a directory that holds esc50/."
        )
    rows = read_rows(meta, ["filename", "fold", "target", "category", "esc10", "src_file"])
    # Every row is checked, whatever folds are asked for: one bad row means a bad copy.
    check_unique(rows, "filename", key=_stem)
    fold_of = [r.integer("fold", 1, MAX_FOLD) for r in rows]
    groups = [r.text("src_file") for r in rows]
    in_esc10 = [r.boolean("esc10") for r in rows]
    chosen = [i for i in range(len(rows)) if in_esc10[i] or not esc10]
    table = class_table((rows[i] for i in chosen), "target", "category")
    if esc10:
        classes = [table[t][0] for t in sorted(table)]
        remap = {t: i for i, t in enumerate(sorted(table))}
    elif table and max(table) + 1 == len(table):
        classes = contiguous_classes(table, "target")  # targets 0..K-1: the copy's own classes
        remap = {t: t for t in table}
    else:  # gaps in the targets: a partial copy, which keeps ESC-50's fixed class set
        _fixed_classes(table, ESC50_CLASSES, "ESC-50")
        classes = list(ESC50_CLASSES)
        remap = {t: t for t in table}
    wanted = sorted_folds(folds)
    if wanted is not None:
        present = {fold_of[i] for i in chosen}
        absent = [f for f in wanted if f not in present]
        if absent:
            raise DatasetError(
                f"{name}: fold(s) {absent} not in {meta}; it has folds {sorted(present)}"
            )
        chosen = [i for i in chosen if fold_of[i] in wanted]

    audio_dir = base / "audio"
    if not audio_dir.is_dir():
        raise DatasetError(f"{name}: audio directory {audio_dir} not found")
    index = _audio_index(audio_dir)
    clips, missing = [], []
    for i in chosen:
        stem = _stem(rows[i].text("filename"))
        path = index.get(stem)
        if path is None:
            missing.append(stem)
            continue
        label = remap[rows[i].integer("target", 0, 10**9)]
        clips.append(Clip(path, label, fold_of[i], f"esc:{groups[i]}", stem))
    if missing:
        raise _missing_audio_error(name, audio_dir, missing, len(chosen))
    return Dataset(name, base, classes, clips, 5.0)


def load_esc10(
    root: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    folds: Iterable[int] | None = None,
) -> Dataset:
    """ESC-10: the ``esc10 == True`` rows of ESC-50; 400 clips, 10 classes, 5 folds of 80."""
    return load_esc50(root, data_dir=data_dir, folds=folds, esc10=True)


def _us8k_folds(base: Path, listed: set[int], folds: Iterable[int] | None) -> list[int]:
    """The folds to load: those asked for, or every listed fold whose directory the copy holds."""
    audio = base / "audio"
    have = sorted(f for f in listed if (audio / f"fold{f}").is_dir())
    wanted = sorted_folds(folds)
    if wanted is None:
        if not have:
            raise DatasetError(
                f"us8k: {audio} holds none of the fold directories the metadata lists "
                f"(fold1 ... fold10). Download the data set with `escnet download us8k`, or "
                f"point --root at a copy."
            )
        return have
    absent = [f for f in wanted if f not in have]
    if absent:
        raise DatasetError(
            f"us8k: fold(s) {absent} requested but {audio} has no "
            f"{', '.join(f'fold{f}' for f in absent)}; this copy holds folds {have}. "
            f"Pass --folds {fold_list(have) or '...'}, or leave --folds out to use every fold "
            "the copy holds."
        )
    return wanted


def load_us8k(
    root: str | os.PathLike[str] | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    folds: Iterable[int] | None = None,
) -> Dataset:
    """UrbanSound8K: ``metadata/UrbanSound8K.csv`` + ``audio/fold1..fold10``; 8732 clips of up to
    4 s (zero-padded to 4 s), 10 classes, 10 official folds; group = Freesound ID ``fsID``.

    Args:
        folds: the folds to use (default: every fold whose directory the copy holds, so a
            partial copy works as it is); a requested fold whose directory is missing raises
            :class:`DatasetError`.

    Raises:
        MetadataError: a row of the CSV would give wrong data (see :func:`load_esc50`).
        DatasetError: the metadata, a fold directory or a listed clip's audio is missing.
    """
    base = _resolve_root("us8k", root, data_dir)
    meta = base / "metadata" / "UrbanSound8K.csv"
    if not meta.is_file():
        raise DatasetError(
            f"us8k: {meta} not found. Download the data set with `escnet download us8k`, or "
            f"point --data-dir / $ESCNET_DATA_DIR at a directory that holds us8k/."
        )
    rows = read_rows(meta, ["slice_file_name", "fsID", "fold", "classID", "class"])
    check_unique(rows, "slice_file_name", key=_stem)
    fold_of = [r.integer("fold", 1, MAX_FOLD) for r in rows]
    groups = [r.text("fsID") for r in rows]
    classes = contiguous_classes(class_table(rows, "classID", "class"), "classID")
    wanted = _us8k_folds(base, set(fold_of), folds)
    clips, missing = [], []
    for fold in wanted:
        index = _audio_index(base / "audio" / f"fold{fold}")
        for i, r in enumerate(rows):
            if fold_of[i] != fold:
                continue
            stem = _stem(r.text("slice_file_name"))
            path = index.get(stem)
            if path is None:
                missing.append(f"fold{fold}/{stem}")
                continue
            label = r.integer("classID", 0, 10**9)
            clips.append(Clip(path, label, fold, f"fs:{groups[i]}", stem))
    if missing:
        raise _missing_audio_error("us8k", base / "audio", missing, len(clips) + len(missing))
    return Dataset("us8k", base, classes, clips, 4.0, _us8k_official_folds(base))


def _us8k_official_folds(base: Path) -> dict[int, int] | None:
    """Clips per fold of the complete UrbanSound8K, from ``metadata/UrbanSound8K.full.csv`` when a
    partial copy keeps the complete official table beside its own; ``None`` without it."""
    full = base / "metadata" / "UrbanSound8K.full.csv"
    if not full.is_file():
        return None
    rows = read_rows(full, ["slice_file_name", "fold"])
    return dict(sorted(Counter(r.integer("fold", 1, MAX_FOLD) for r in rows).items()))


#: Loaders by registry name; ``get_dataset`` and the CLI use this table.
DATASETS: dict[str, Callable[..., Dataset]] = {
    "esc50": load_esc50,
    "esc10": load_esc10,
    "us8k": load_us8k,
    "folder": load_folder,
}

DESCRIPTIONS: dict[str, str] = {
    "esc50": "ESC-50: 2000 clips of 5 s, 50 classes, 5 official folds (CC BY-NC 3.0, K. J. Piczak)",
    "esc10": "ESC-10: the 400 esc10 rows of ESC-50, 10 classes, 5 official folds (CC BY 3.0)",
    "us8k": "UrbanSound8K: 8732 clips of <= 4 s, 10 classes, 10 official folds (CC BY-NC 3.0)",
    "folder": "any directory with one sub-directory per class; folds from a CSV or grouped k-fold",
}


def get_dataset(name: str, **kwargs: object) -> Dataset:
    """Load a data set by registry name; keyword arguments go to its loader.

    Examples:
        >>> from escnet.data.datasets import get_dataset
        >>> ds = get_dataset("esc10", data_dir="../shared/datasets")  # doctest: +SKIP
        >>> len(ds), ds.num_classes, ds.fold_sizes()  # doctest: +SKIP
        (400, 10, {1: 80, 2: 80, 3: 80, 4: 80, 5: 80})
    """
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ParameterError(
            f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}"
        ) from None
    if name == "folder" and kwargs.get("root") is None:
        raise ParameterError(
            "dataset 'folder' needs root= (the directory with one sub-directory per class)"
        )
    dataset = loader(**kwargs)
    # What rebuilds this data set (and so its split) elsewhere: the run saves it. The data
    # directory is where this machine keeps the copy, not a property of the data set.
    given = {
        k: (str(v) if isinstance(v, os.PathLike) else sorted(v) if k == "folds" else v)  # type: ignore[call-overload]
        for k, v in kwargs.items()
        if v is not None and k != "data_dir"
    }
    dataset.options = {**dataset.options, **given}
    return dataset


#: Options of :func:`dataset_from_options` that only a folder data set takes.
FOLDER_ONLY = ("folds_csv", "group_pattern", "num_folds")


def dataset_from_options(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    folds: Sequence[int] | None = None,
    folds_csv: str | os.PathLike[str] | None = None,
    group_pattern: str | None = None,
    num_folds: int | None = None,
) -> Dataset:
    """The data set that the shared data-set options name (``--dataset``, ``--root``,
    ``--folds``, ``--folds-csv``, ``--group-pattern``, ``--num-folds``): the one function every
    command and :func:`escnet.training.cross_validate` build a data set with.

    A folder with neither ``group_pattern`` nor ``folds_csv`` takes each file as its own
    recording; that is said once, in one line, since fragments of one recording on both sides
    of a split inflate every figure.

    Raises:
        ParameterError: a folder-only option for a published data set, or an unknown name.
    """
    folder_options = {
        "folds_csv": folds_csv,
        "group_pattern": group_pattern,
        "num_folds": num_folds,
    }
    kwargs: dict[str, object] = {"root": root}
    if name != "folder":
        given = [f"--{k.replace('_', '-')}" for k, v in folder_options.items() if v is not None]
        if given:
            raise ParameterError(
                f"{', '.join(given)}: only --dataset folder takes this; {name} has "
                "official folds (pick some with --folds)"
            )
        kwargs["data_dir"] = data_dir
    else:
        kwargs.update({k: v for k, v in folder_options.items() if v is not None})
    if folds is not None:
        kwargs["folds"] = list(folds)
    dataset = get_dataset(name, **kwargs)
    if name == "folder" and group_pattern is None and folds_csv is None:
        log.warning(
            "folder: each file is taken as its own recording; if files are cut from one "
            "recording, keep them on one side of every split with --group-pattern REGEX "
            "(group_pattern=) or --folds-csv FILE (folds_csv=)"
        )
    return dataset


def describe_copy(info: Mapping[str, Any]) -> str:
    """A data copy's record (:meth:`Dataset.copy_info`) in one line, e.g.
    ``"data/esc50: ogg/opus 48000 Hz, metadata 1f0e2c3d4b5a6978"``.

    >>> describe_copy({"copy": "datasets/esc50", "audio": "flac/pcm_16 16000 Hz",
    ...                "metadata_sha256": "0123456789abcdef"})
    'datasets/esc50: flac/pcm_16 16000 Hz, metadata 0123456789abcdef'
    >>> describe_copy({"copy": "data/us8k", "coverage": "folds 1-3 (fold 3 partial)",
    ...                "audio": "ogg/opus 48000 Hz", "metadata_sha256": "0123456789abcdef"})
    'data/us8k: folds 1-3 (fold 3 partial), ogg/opus 48000 Hz, metadata 0123456789abcdef'
    """
    copy, audio, digest = (info.get(k, "?") for k in ("copy", "audio", "metadata_sha256"))
    coverage = f"{info['coverage']}, " if info.get("coverage") else ""
    return f"{copy}: {coverage}{audio}, metadata {digest}"

"""Ensembles of finished runs: calibrated probabilities averaged with weights chosen on
validation.

For each test fold that every run has, each run ("member") gives logits for the fold's
validation and test clips (``fold{k}/logits.npz`` of a probe run, or computed with the fold's
model directory). On the *validation* clips only:

1. each member is calibrated by temperature scaling (:func:`fit_temperature`: the temperature
   that minimises the validation cross-entropy), so that no member dominates the average just
   by being over-confident;
2. the members' weights are chosen by greedy forward selection with replacement
   (:func:`choose_weights`, Caruana et al. 2004): start from the best member, then repeatedly
   add the member whose addition lowers the validation cross-entropy of the average most.

The test clips are then classified once by :func:`average_probabilities` of the calibrated
members. An ensemble needs runs made on the same split (data set, seed, validation share): the
members' validation and test clip ids are checked to be identical, since weights chosen on one
run's validation clips would otherwise be chosen on another's training clips.

Examples:
    >>> import torch
    >>> from escnet.training.ensemble import average_probabilities
    >>> p = torch.tensor([[[0.9, 0.1]], [[0.3, 0.7]]])  # 2 members, 1 clip, 2 classes
    >>> average_probabilities(p, torch.tensor([0.5, 0.5]))
    tensor([[0.6000, 0.4000]])
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from escnet.cache import atomic_write_json, check_output_dir, json_object
from escnet.errors import EscnetError, ParameterError
from escnet.metrics import report
from escnet.metrics.classification import classification_metrics
from escnet.metrics.fold import FoldLogits
from escnet.model_dir.layout import ENSEMBLE_JSON

__all__ = [
    "average_probabilities",
    "choose_weights",
    "ensemble_runs",
    "fit_temperature",
    "run_fold_logits",
]

log = logging.getLogger(__name__)


def _computed_logits(run: Path, fold: int, device: str, progress: bool) -> FoldLogits:
    """Logits of a fold's validation and test clips through the fold's model directory."""
    from escnet.data.folds import Split
    from escnet.model_dir.io import load_model
    from escnet.training import TrainConfig, load_dataset, resolve_device
    from escnet.training.crossval import fold_model_dir
    from escnet.training.loop import Compute

    config = TrainConfig.from_json(run / "config.json")
    dataset = load_dataset(config)
    split = config.split(dataset, fold)
    if not isinstance(split, Split):
        raise EscnetError(f"{run}: protocol {config.protocol} tests NAA images, not clips")
    dev = resolve_device(device)
    loaded = load_model(fold_model_dir(run / f"fold{fold}", config), device=str(dev))
    compute = Compute.of(config, dev)
    compute.prepare(loaded.model)
    parts: list[tuple[torch.Tensor, list[str], torch.Tensor]] = []
    for indices in (split.val, split.test):
        logits, kept, labels = compute.clip_logits(
            loaded.model,
            loaded.front_end,
            dataset,
            indices,
            batch_size=64,
            cache_dir=config.cache_dir,
            workers=config.workers,
            progress=progress,
        )
        parts.append((logits, [dataset[int(i)].clip_id for i in kept], torch.from_numpy(labels)))
    (vl, vi, vy), (tl, ti, ty) = parts
    return FoldLogits(vl, vi, vy, tl, ti, ty)


def run_fold_logits(
    run_dir: str | os.PathLike[str], fold: int, *, device: str = "auto", progress: bool = False
) -> FoldLogits:
    """A run's logits on fold ``fold``'s validation and test clips: ``fold{k}/logits.npz``
    when the run saved it (probe runs), else computed with ``fold{k}/model``."""
    run = Path(run_dir)
    saved = run / f"fold{fold}" / "logits.npz"
    if saved.is_file():
        return FoldLogits.read(saved)
    return _computed_logits(run, fold, device, progress)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature ``T`` minimising the cross-entropy of ``softmax(logits / T)``; a grid of
    401 values, log-spaced over [0.05, 20] (1.0 when there are no labelled rows)."""
    if len(labels) == 0:
        return 1.0
    grid = torch.logspace(np.log10(0.05), np.log10(20.0), 401, dtype=torch.float64)
    x = logits.double()
    losses = torch.stack([F.cross_entropy(x / t, labels) for t in grid])
    return float(grid[int(losses.argmin())])


def average_probabilities(probs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Members' probabilities (R, N, C) averaged over the members axis (0) with ``weights``
    (R,), which are normalised to sum to 1: (N, C)."""
    if probs.ndim != 3 or weights.shape != (probs.shape[0],):
        raise ParameterError(
            f"expected probs (members, clips, classes) and weights (members,), got "
            f"{tuple(probs.shape)} and {tuple(weights.shape)}"
        )
    w = weights.to(probs.dtype) / weights.sum()
    return torch.einsum("r,rnc->nc", w, probs)


def _nll(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return float(-probs[torch.arange(len(labels)), labels].clamp_min(1e-12).log().mean()) + 0.0


def choose_weights(val_probs: torch.Tensor, labels: torch.Tensor, rounds: int = 20) -> torch.Tensor:
    """Greedy forward selection with replacement (Caruana et al. 2004) on validation
    cross-entropy: ``rounds`` picks, the weight of a member is its share of the picks.

    Args:
        val_probs: (R, N, C) calibrated validation probabilities of R members.
        labels: (N,) validation labels.

    Returns:
        (R,) weights summing to 1 (one member: ``[1.0]``; no validation rows: equal weights).
    """
    members = val_probs.shape[0]
    if members == 1:
        return torch.ones(1)
    if len(labels) == 0:
        return torch.full((members,), 1.0 / members)
    counts = torch.zeros(members)
    total = torch.zeros_like(val_probs[0])
    for step in range(rounds):
        scores = [_nll((total + val_probs[r]) / (step + 1), labels) for r in range(members)]
        best = int(np.argmin(scores))
        counts[best] += 1
        total += val_probs[best]
    return counts / counts.sum()


def _check_same_split(runs: Sequence[Path], members: Sequence[FoldLogits], fold: int) -> None:
    first = members[0]
    for run, m in zip(runs[1:], members[1:], strict=True):
        if m.val_ids != first.val_ids or m.test_ids != first.test_ids:
            raise EscnetError(
                f"{run}: fold {fold}'s validation or test clips differ from {runs[0]}'s; an "
                "ensemble needs runs made with the same data set, seed, val_fraction and "
                "val_clips_per_recording"
            )


def _fold_entry(
    runs: Sequence[Path], fold: int, num_classes: int, device: str, progress: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One fold's results entry (as results.json) and its record for ensemble.json."""
    members = [run_fold_logits(r, fold, device=device, progress=progress) for r in runs]
    _check_same_split(runs, members, fold)
    y_val, y_test = members[0].val_labels, members[0].test_labels
    temps = [fit_temperature(m.val_logits, y_val) for m in members]
    val_p = torch.stack(
        [(m.val_logits / t).softmax(1) for m, t in zip(members, temps, strict=True)]
    )
    test_p = torch.stack(
        [(m.test_logits / t).softmax(1) for m, t in zip(members, temps, strict=True)]
    )
    weights = choose_weights(val_p, y_val)
    probs = average_probabilities(test_p, weights)
    val_probs = average_probabilities(val_p, weights)
    metrics = classification_metrics(y_test.numpy(), probs.argmax(1).numpy(), num_classes)
    entry = {
        "test_fold": fold,
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "loss": _nll(probs, y_test),
        "per_class_accuracy": metrics["per_class_accuracy"],
        "confusion_matrix": metrics["confusion_matrix"],
        "best_epoch": 0,
        "val_clips": len(y_val),
        "test_clips": len(y_test),
    }
    record = {
        "test_fold": fold,
        "weights": [float(w) for w in weights],
        "temperatures": temps,
        "val_acc": float((val_probs.argmax(1) == y_val).float().mean()) if len(y_val) else None,
        "member_val_acc": [float((p.argmax(1) == y_val).float().mean()) for p in val_p],
        "member_test_acc": [float((p.argmax(1) == y_test).float().mean()) for p in test_p],
        "test_acc": metrics["accuracy"],
    }
    return entry, record


def ensemble_runs(
    run_dirs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    folds: Sequence[int] | None = None,
    device: str = "auto",
    progress: bool = False,
) -> dict[str, Any]:
    """Ensemble finished runs fold by fold (module docstring) and write ``out_dir``:
    ``results.json`` and ``report.md`` as a run's, and ``ensemble.json`` (members, and per fold
    the temperatures, weights and validation accuracies).

    Args:
        run_dirs: run directories (``escnet train``) made on the same split.
        out_dir: where to write; must not hold another ensemble or run.
        folds: test folds (default: every fold all runs finished).

    Returns:
        The content of ``results.json`` with ``"ensemble"`` (ensemble.json's content) added.

    Raises:
        EscnetError: no run, a directory that is not a finished run, runs of different data
            sets or copies of one, no fold common to all runs, or different validation/test clips.
    """
    runs = [Path(r) for r in run_dirs]
    if not runs:
        raise EscnetError("ensemble: give at least one RUN_DIR")
    finished: list[dict[str, Any]] = []
    for r in runs:
        path = r / "results.json"
        if not path.is_file():
            raise EscnetError(f"{r}: no results.json; give run directories written by escnet train")
        finished.append(_json(path))
    datasets = {f.get("dataset") for f in finished}
    if len(datasets) != 1:
        raise EscnetError(
            f"ensemble: the runs are of different data sets ({sorted(map(str, datasets))})"
        )
    data = _members_data(runs, finished)
    done = [{int(e["test_fold"]) for e in f.get("folds", [])} for f in finished]
    common = sorted(set.intersection(*done))
    chosen = sorted(set(folds)) if folds is not None else common
    missing = [k for k in chosen if k not in common]
    if missing or not chosen:
        raise EscnetError(
            f"ensemble: fold(s) {missing or chosen} not finished by every run (common: {common})"
        )
    out = check_output_dir(out_dir, "--out")
    out.mkdir(parents=True, exist_ok=True)
    if (out / "results.json").exists():
        raise EscnetError(f"{out} already holds results.json; choose a new --out directory")
    classes = list(finished[0]["classes"])
    entries, records = [], []
    for k in chosen:
        entry, record = _fold_entry(runs, k, len(classes), device, progress)
        entries.append(entry)
        records.append(record)
        log.info(
            "fold %d: ensemble test accuracy %.4f, weights %s",
            k,
            entry["accuracy"],
            record["weights"],
        )
    base = finished[0].get("config") or {}
    config = {
        "dataset": base.get("dataset"),
        "model": f"ensemble of {len(runs)} run(s)",
        "augment": "+".join(
            sorted({str((f.get("config") or {}).get("augment")) for f in finished})
        ),
        "method": "ensemble",
        "val_fraction": base.get("val_fraction"),
        "val_clips_per_recording": base.get("val_clips_per_recording"),
        "seed": base.get("seed"),
        "members": [str(r) for r in runs],
    }
    results = report.build_results(config, entries, classes, planned_folds=chosen, data=data)
    ensemble = {"members": [str(r) for r in runs], "folds": records}
    atomic_write_json(out / ENSEMBLE_JSON, ensemble)
    report.write_results(out, results)
    report.write_report(out)
    return {**results, "ensemble": ensemble}


def _members_data(
    runs: Sequence[Path], finished: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The data copy the members were measured on (their results.json's ``data``). Members
    measured on different copies would make the ensemble's figure a mix: refused."""
    seen: dict[str, Mapping[str, Any]] = {
        str(r): f["data"] for r, f in zip(runs, finished, strict=True) if f.get("data")
    }
    # A copy moved to another directory is the same copy: compared by content, not name.
    digests = {(d.get("metadata_sha256"), d.get("audio")) for d in seen.values()}
    if len(digests) > 1:
        listing = "; ".join(f"{r}: {d.get('copy')} ({d.get('audio')})" for r, d in seen.items())
        raise EscnetError(
            f"the member runs were trained on different copies of the data set ({listing}); "
            "train them all on one copy (--data-dir) and ensemble those"
        )
    first = next(iter(seen.values()), None)
    return None if first is None else dict(first)


def _json(path: Path) -> dict[str, Any]:
    return json_object(path, "give run directories written by escnet train")

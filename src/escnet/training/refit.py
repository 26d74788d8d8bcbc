"""A final model: a cross-validated recipe refitted on all of its data set's folds.

Cross-validation says how well a recipe does; the model a user labels recordings with should
then learn from every clip, not from four folds of five. :func:`refit` does that for a probe run
(``escnet train --method probe``) or an ensemble of them (``escnet ensemble``):

* every choice is taken from the cross-validation, none is made again: a probe's L2 penalty (or
  an MLP head's weight decay) is the median of the folds' choices (each made on that fold's
  validation split); an ensemble member's temperature and weight are the means over the folds;
* the head is then fitted on the training views of **every clip** of the run's data set (all
  its folds; no clip is held out, so nothing here is a test score);
* the result is one model directory, ``RUN/final`` by default, whose ``model.json`` records the
  data set and its copy, the folds and the number of clips it was trained on, and the
  cross-validated accuracy it stands for. An ensemble's is a model directory listing its
  members (each a refitted model directory under ``members/``), which
  :mod:`escnet.inference.ensemble_backend` loads.

``refit.json`` beside it lists the training rows (clip ids and views) and the choices, and
``check.npz`` the probabilities the refitted model gave a few clips when it was made, so that a
loaded copy can be checked against them.

Examples:
    >>> from escnet.training.refit import refit
    >>> final = refit("runs/main/recipe", "runs/main/final")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch

from escnet.cache import atomic_path, atomic_write_json, check_output_dir, json_object
from escnet.data.audio import AudioConfig, load_audio
from escnet.data.datasets import Dataset
from escnet.embeddings.pooled import clip_features
from escnet.errors import EscnetError
from escnet.features.prepare import default_workers
from escnet.model_dir.layout import (
    ENSEMBLE_JSON,
    FINAL_DIR,
    MODEL_JSON,
    member_run_dir,
)
from escnet.model_dir.members import save_refit_ensemble
from escnet.models import SpectralClassifier
from escnet.models.probe import feature_columns
from escnet.training.config import TrainConfig
from escnet.training.data import load_dataset, save_fold_model
from escnet.training.frozen.probe import (
    fit_mlp_head,
    probe_model,
    probe_model_kwargs,
    train_views,
)
from escnet.training.logistic import fit_logistic_head

__all__ = ["CHECK_CLIPS", "refit", "refit_probe_run"]

log = logging.getLogger(__name__)

#: Clips whose probabilities ``check.npz`` keeps (the first of the data set).
CHECK_CLIPS = 8


def _json(path: Path) -> dict[str, Any]:
    return json_object(path, "refit takes a finished run or ensemble")


def _cross_validation(results: dict[str, Any], source: Path) -> dict[str, Any]:
    summary = results.get("summary") or {}
    return {
        "source": source.name,
        "folds": [int(f["test_fold"]) for f in results.get("folds", [])],
        "accuracy": summary.get("accuracy"),
        "macro_f1": summary.get("macro_f1"),
    }


def _trained_on(dataset: Dataset, indices: np.ndarray) -> dict[str, Any]:
    return {
        **dataset.copy_info(),
        "folds": sorted({dataset[int(i)].fold for i in indices}),
        "clips": int(len(indices)),
    }


def _fold_choices(run: Path, key: str) -> list[float]:
    """Each fold's chosen ``key`` (``l2`` or ``weight_decay``) from its ``probe.json``."""
    values = []
    for probe in sorted(run.glob("fold*/probe.json")):
        chosen = _json(probe).get("chosen") or {}
        if key in chosen:
            values.append(float(chosen[key]))
    if not values:
        raise EscnetError(f"{run}: no fold{{k}}/probe.json records a chosen {key}; rerun it")
    return values


def _check_probabilities(
    model: SpectralClassifier, dataset: Dataset, indices: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Waveforms of the first clips and the refitted model's probabilities of them."""
    front_end = model.model_info.front_end
    audio = AudioConfig(sample_rate=front_end.sample_rate, duration=dataset.duration)
    waves = np.stack([load_audio(dataset[int(i)].path, audio) for i in indices[:CHECK_CLIPS]])
    features = front_end.build().eval()
    with torch.inference_mode():
        probs = model.eval()(features(torch.from_numpy(waves))).softmax(1).numpy()
    return waves, probs


def refit_probe_run(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
) -> Path:
    """Refit a probe run on all of its data set's clips (module docstring); returns ``out``
    (default ``RUN/final``).

    Raises:
        EscnetError: the run is not a finished probe run, or ``out`` holds something else.
    """
    run = Path(run_dir)
    results = _json(run / "results.json")
    config = TrainConfig.from_dict(_json(run / "config.json"), source=str(run / "config.json"))
    if config.method != "probe":
        raise EscnetError(
            f"{run}: refit takes probe runs (--method probe) and their ensembles; this run's "
            f"method is {config.method!r}"
        )
    target = check_output_dir(out if out is not None else run / FINAL_DIR, "--out")
    dataset = load_dataset(config)
    indices = list(range(len(dataset)))
    mlp = config.probe.head == "mlp"
    key = "weight_decay" if mlp else "l2"
    choices = _fold_choices(run, key)
    value = statistics.median(choices)
    table = clip_features(
        dataset,
        indices,
        views=train_views(config),
        seed=config.seed,
        cache_dir=config.cache_dir,
        workers=config.workers if config.workers is not None else default_workers(),
        progress=progress,
    )
    if table.skipped:
        log.warning("refit: %d clip(s) could not be loaded and were left out", len(table.skipped))
    cols = feature_columns(config.probe.blocks, config.probe.embedding)
    x = torch.from_numpy(table.features[:, cols])
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
    z, y = (x - mean) / std, torch.from_numpy(table.labels)
    no_val = torch.zeros((1, 0, z.shape[1])), torch.zeros(0, dtype=torch.long)
    num_classes = dataset.num_classes
    head: torch.nn.Module
    if mlp:
        head, _ = fit_mlp_head(z, y, *no_val, num_classes, config, weight_decays=[value])
    else:
        head, _ = fit_logistic_head(z, y, *no_val, num_classes, l2_grid=[value])
    model = probe_model(config, num_classes, mean, std, head)
    trained = np.unique(table.source)
    trained_on = _trained_on(dataset, trained)
    cross_validation = _cross_validation(results, run)
    target.mkdir(parents=True, exist_ok=True)
    waves, probs = _check_probabilities(model, dataset, trained)
    with atomic_path(target / "check.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, waveforms=waves.astype(np.float32), probabilities=probs)
    atomic_write_json(
        target / "refit.json",
        {
            "run": run.name,
            "choice": {key: value, "folds": choices},
            "train_rows": {
                "count": int(len(table.source)),
                "clips": [dataset[int(i)].clip_id for i in trained],
                "views": {str(v): int((table.view == v).sum()) for v in np.unique(table.view)},
            },
            "skipped": [[str(p), r] for p, r in table.skipped],
        },
    )
    # model.json last (save_model writes it after the weights): a directory with it is whole
    save_fold_model(
        target,
        model,
        dataset,
        config,
        model_kwargs=probe_model_kwargs(config),
        selection={key: value, "rule": f"median of the folds' validation-chosen {key}"},
        extra={"trained_on": trained_on, "cross_validation": cross_validation},
    )
    log.info("refit %s on %d clips (%s %g): %s", run.name, len(trained), key, value, target)
    return target


def refit(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
) -> Path:
    """Refit a probe run or an ensemble of probe runs on all its data (module docstring): a
    model directory, by default ``final`` inside ``path``.

    Raises:
        EscnetError: the run or ensemble (or a member) is unreadable or not a finished probe
            run.
    """
    root = Path(path)
    if not (root / ENSEMBLE_JSON).is_file():
        return refit_probe_run(root, out, progress=progress)
    target = check_output_dir(out if out is not None else root / FINAL_DIR, "--out")
    return _refit_ensemble(root, target, progress)


def _refit_ensemble(root: Path, target: Path, progress: bool) -> Path:
    """Refit every member run of the ensemble at ``root`` and write the refitted ensemble to
    ``target``: ``members/<run>/`` and a ``model.json`` listing them with the means over the
    folds of their temperatures and weights."""
    record = _json(root / ENSEMBLE_JSON)
    results = _json(root / "results.json")
    target.mkdir(parents=True, exist_ok=True)
    members: list[dict[str, Any]] = []
    first: dict[str, Any] | None = None
    for i, member in enumerate(record["members"]):
        run = member_run_dir(root, str(member))
        folds = record["folds"]
        weight = statistics.fmean(float(f["weights"][i]) for f in folds)
        temperature = statistics.fmean(float(f["temperatures"][i]) for f in folds)
        name = f"{i}-{run.name}"
        done = target / "members" / name
        final = run / FINAL_DIR
        if not (final / MODEL_JSON).is_file():
            refit_probe_run(run, final, progress=progress)
        if done.exists():
            shutil.rmtree(done)
        shutil.copytree(final, done)
        meta = _json(done / MODEL_JSON)
        first = first or meta
        members.append({"dir": f"members/{name}", "weight": weight, "temperature": temperature})
    assert first is not None
    total = sum(m["weight"] for m in members)
    for m in members:
        m["weight"] = m["weight"] / total
    save_refit_ensemble(
        target,
        members,
        first,
        selection={"rule": "each member's temperature and weight: mean over the folds"},
        trained_on=first["trained_on"],
        cross_validation=_cross_validation(results, root),
    )
    return target

"""One call from a data set to a final model: :func:`fit` runs a :class:`~escnet.recipes.Recipe`.

It cross-validates every member (:func:`escnet.training.cross_validate`), ensembles them with
weights chosen on validation (:func:`escnet.training.ensemble.ensemble_runs`; a recipe of one
member has nothing to ensemble), refits the result on every clip
(:func:`escnet.training.refit.refit`) and writes one report. The output directory::

    OUT/<member>/        each member's cross-validated run (escnet train's run directory)
    OUT/recipe/          the ensemble's cross-validated results and report (several members)
    OUT/final/           the refitted model: what `escnet predict OUT` and `escnet serve OUT` use
    OUT/fit.json         the recipe, its members' and its cross-validated accuracy, the data copy
    OUT/report.md        the same, to read

Every step is skipped when its output is there, and a member's unfinished folds resume, so an
interrupted call continues where it stopped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from escnet.cache import (
    atomic_write_json,
    atomic_write_text,
    check_output_dir,
    json_object,
)
from escnet.data.datasets import Dataset, describe_copy
from escnet.metrics.fold import FoldResult
from escnet.model_dir.layout import FINAL_DIR, MODEL_JSON
from escnet.recipes import Recipe, RecipeSpec, get_recipe
from escnet.training import TrainConfig, cross_validate
from escnet.training.ensemble import ensemble_runs
from escnet.training.refit import refit

__all__ = ["ENSEMBLE_DIR", "fit"]

#: ``OUT/recipe``: the members' ensemble (as the main job has always named it).
ENSEMBLE_DIR = "recipe"


def fit(
    dataset: Dataset | str,
    recipe: str | Recipe | RecipeSpec = Recipe.MAIN,
    out: str | os.PathLike[str] = "runs/fit",
    *,
    test_folds: list[int] | None = None,
    data_dir: str | None = None,
    cache_dir: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    report: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Cross-validate every member of ``recipe`` on ``dataset``, ensemble them, refit on all
    clips into ``OUT/final`` and write ``OUT/fit.json`` and ``OUT/report.md`` (module docstring).

    Args:
        dataset: a loaded data set (any loader: a folder keeps its grouping) or a name.
        recipe: a :class:`Recipe`, its value, or its name (``main``, ``one-pass``).
        out: the output directory; a second call with the same arguments resumes.
        test_folds: the test folds (default: every fold).
        data_dir, cache_dir, workers: where the data set and the cache are, decoding threads;
            they do not change the results.
        progress: progress bars.
        report: called with one line per member and fold as they finish.

    Returns:
        The content of ``fit.json``.
    """
    spec = get_recipe(recipe)
    target = check_output_dir(out, "--out")
    target.mkdir(parents=True, exist_ok=True)
    runs: list[Path] = []
    results: list[Mapping[str, Any]] = []
    combined: Mapping[str, Any]
    for k, member in enumerate(spec.members, start=1):
        label = f"{spec.name}: member {k}/{len(spec.members)} {member.name}"
        config = TrainConfig.from_dict(
            {
                "folds": test_folds,
                "data_dir": data_dir,
                "cache_dir": cache_dir,
                "workers": workers,
                **member.settings,
            },
            source=f"recipe {spec.name}, member {member.name}",
        )
        run = target / member.name
        runs.append(run)
        results.append(_cross_validate(config, run, dataset, progress, label, report))
    if len(runs) > 1:
        source = target / ENSEMBLE_DIR
        if not (source / "results.json").is_file():
            report(f"{spec.name}: ensemble of {len(runs)} members, weights chosen on validation")
            ensemble_runs(runs, source, folds=test_folds, progress=progress)
        combined = json_object(source / "results.json", "the ensemble did not finish")
    else:
        source, combined = runs[0], results[0]
    final = target / FINAL_DIR
    if not (final / MODEL_JSON).is_file():
        report(f"{spec.name}: refit on every clip into {final}")
        refit(source, final, progress=progress)
    summary = _summary(spec, runs, results, source, combined, final)
    atomic_write_json(target / "fit.json", summary)
    atomic_write_text(target / "report.md", _markdown(summary))
    accuracy = summary["accuracy"]
    std = f" +- {100 * accuracy['std']:.2f}" if accuracy["std"] is not None else ""
    report(
        f"{spec.name}: accuracy {100 * accuracy['mean']:.2f} %{std} over "
        f"{len(summary['folds'])} fold(s); report {target / 'report.md'}"
    )
    return summary


def _cross_validate(
    config: TrainConfig,
    run: Path,
    dataset: Dataset | str,
    progress: bool,
    label: str,
    report: Callable[[str], None],
) -> Mapping[str, Any]:
    """One member's cross-validation, resumed where it stopped; one line per fold."""

    def on_fold(result: FoldResult, earlier: bool) -> None:
        when = " (finished earlier)" if earlier else ""
        report(f"{label}: fold {result.test_fold}: accuracy {100 * result.accuracy:.2f} %{when}")

    resume = (run / "config.json").is_file()
    return cross_validate(
        config, run, dataset=dataset, resume=resume, progress=progress, on_fold=on_fold
    )


def _summary(
    spec: RecipeSpec,
    runs: list[Path],
    results: list[Mapping[str, Any]],
    source: Path,
    combined: Mapping[str, Any],
    final: Path,
) -> dict[str, Any]:
    def accuracies(r: Mapping[str, Any]) -> dict[str, Any]:
        acc = r["summary"]["accuracy"]
        folds = {int(f["test_fold"]): f["accuracy"] for f in r["folds"]}
        return {"mean": acc["mean"], "std": acc["std"], "folds": folds}

    data = combined.get("data") or {}
    return {
        "recipe": spec.name,
        "description": spec.description,
        "selection": spec.selection,
        "body_passes_per_clip": spec.body_passes_per_clip,
        "dataset": combined.get("dataset"),
        "data": describe_copy(data) if data else None,
        "members": [
            {
                "name": run.name,
                "settings": dict(member.settings),
                **accuracies(r),
            }
            for run, member, r in zip(runs, spec.members, results, strict=True)
        ],
        "folds": accuracies(combined)["folds"],
        "accuracy": {k: v for k, v in accuracies(combined).items() if k != "folds"},
        "cross_validation": source.name,
        "final": final.name,
    }


def _markdown(summary: Mapping[str, Any]) -> str:
    folds = sorted(summary["folds"])
    head = "| run | " + " | ".join(f"fold {k}" for k in folds) + " | mean ± std |"
    rows = [head, "|---" * (len(folds) + 2) + "|"]

    def row(name: str, entry: Mapping[str, Any]) -> str:
        cells = [f"{100 * entry['folds'][k]:.2f}" for k in folds]
        std = entry["std"] if entry["std"] is not None else 0.0
        return (
            f"| {name} | " + " | ".join(cells) + f" | {100 * entry['mean']:.2f} ± {100 * std:.2f} |"
        )

    for member in summary["members"]:
        rows.append(row(member["name"], member))
    rows.append(row(f"**{summary['recipe']}**", {**summary["accuracy"], "folds": summary["folds"]}))
    lines = [
        f"# Recipe {summary['recipe']} on {summary['dataset']}",
        "",
        summary["description"] + ".",
        "",
        f"Data: {summary['data']}. Choices: {summary['selection']}. Passes of the body per clip "
        f"when predicting: {summary['body_passes_per_clip']}.",
        "",
        "Test accuracy (%) per official fold, each fold's model chosen on its validation clips:",
        "",
        *rows,
        "",
        f"Cross-validated results and their report: `{summary['cross_validation']}/`. The model "
        f"refitted on every clip: `{summary['final']}/`.",
        "",
    ]
    return "\n".join(lines)

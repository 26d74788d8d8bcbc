"""Recipes as values: how a model is made, and what it scored, by name.

As torchvision's weight enums carry the preprocessing and the accuracy of their weights, a
:class:`Recipe` carries its members' training settings, the rule that combines them, its
cross-validated accuracy (with the data copy it was measured on and the command that measured
it), its cost per clip and a line of description. :func:`escnet.recipes.fit.fit`
(``escnet fit --recipe NAME``) runs one on any data set.

Examples:
    >>> from escnet.recipes import Recipe, get_recipe
    >>> get_recipe("one-pass") is Recipe.ONE_PASS.value
    True
    >>> Recipe.MAIN.value.body_passes_per_clip, Recipe.ONE_PASS.value.body_passes_per_clip
    (4, 1)
"""

from __future__ import annotations

import enum
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from escnet.errors import ParameterError

__all__ = ["Measured", "Member", "Recipe", "RecipeSpec", "get_recipe", "list_recipes"]

#: The test-time views of a member with ``--tta``: the clip and three rolls against the body's
#: stride-32 grid.
TTA_SHIFTS = (0, 8, 16, 24)


@dataclass(frozen=True)
class Member:
    """One cross-validated run of a recipe.

    Attributes:
        name: the run's directory under the recipe's output (``OUT/<name>``).
        settings: :class:`~escnet.training.TrainConfig` fields of the run (method, model,
            augmentation and the method's settings); the data set, folds and machine settings
            come from the call.
    """

    name: str
    settings: Mapping[str, Any]

    @property
    def views(self) -> tuple[int, ...]:
        """The time shifts (frames) of the member's test-time views; ``(0,)``: the clip alone."""
        shifts = self.settings.get("tta_shifts")
        return tuple(shifts) if shifts else (0,)


@dataclass(frozen=True)
class Measured:
    """A recipe's cross-validated test accuracy on one data set, as a command of the project
    measured it.

    Attributes:
        folds: test accuracy per official fold, in fold order (fractions).
        data: the data copy (:func:`escnet.data.datasets.describe_copy` of the results' ``data``).
        source: where the figures were written, and by which command.
    """

    folds: tuple[float, ...]
    data: str
    source: str

    @property
    def mean(self) -> float:
        return statistics.fmean(self.folds)

    @property
    def std(self) -> float:
        """The sample standard deviation over the folds."""
        return statistics.stdev(self.folds)


@dataclass(frozen=True)
class RecipeSpec:
    """What a :class:`Recipe` member holds.

    Attributes:
        name: the name ``escnet fit --recipe`` takes.
        description: one line.
        members: the runs to cross-validate.
        selection: how the members' choices are made and combined, in words.
        measured: cross-validated accuracy by data set name (``esc50``, ``esc10``, ``us8k``).
    """

    name: str
    description: str
    members: tuple[Member, ...]
    selection: str
    measured: Mapping[str, Measured] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def body_passes_per_clip(self) -> int:
        """Passes of the frozen ``mn04_as`` body per clip when the fitted model predicts: one
        per distinct test-time view, since members sharing the body read one pass of each view
        (:mod:`escnet.inference.ensemble_backend`)."""
        return len({shift for member in self.members for shift in member.views})


def _probe(**settings: Any) -> dict[str, Any]:
    """A probe member's settings: heads on the frozen, pretrained ``mn04_as``."""
    return {"method": "probe", "model": "mn04_as", "augment": "naa", **settings}


_MAIN_SELECTION = (
    "each member's L2 penalty (the MLP's weight decay) chosen on each fold's validation clips; "
    "members temperature-calibrated and weighted by greedy forward selection on validation; "
    "the refit takes the folds' median penalty and mean temperatures and weights"
)


#: The full-band copy the ablation measured on.
_FULL_BAND = "data/esc50: ogg/opus 48000 Hz, metadata afcc2d8e7f2dd504"


def _ablation(row: str, **folds: tuple[float, ...]) -> Mapping[str, Measured]:
    """A recipe's figures per data set: the row ``row`` of the full-band probe ablation."""
    return MappingProxyType(
        {
            dataset: Measured(
                accuracies,
                _FULL_BAND,
                f"docs/ablation_{dataset}.md, row {row} (benchmarks/ablation_probe.py --dataset "
                f"{dataset}; the same runs as `escnet fit --recipe` makes)",
            )
            for dataset, accuracies in folds.items()
        }
    )


class Recipe(enum.Enum):
    """The recipes, as values (:class:`RecipeSpec`)."""

    #: The main job: four probes of mn04_as, a validation-weighted ensemble, a refit.
    MAIN = RecipeSpec(
        name="main",
        description="four probes of the frozen AudioSet mn04_as (multi-level features, shift "
        "views, test-time rolls, one MLP head), ensembled with weights chosen on validation",
        members=(
            Member(
                "b12-16-shift-tta",
                _probe(
                    probe_blocks=[12, 16], probe_train_views=["shift"], tta_shifts=[*TTA_SHIFTS]
                ),
            ),
            Member(
                "b10-16-shift-tta",
                _probe(
                    probe_blocks=[10, 12, 14, 16],
                    probe_train_views=["shift"],
                    tta_shifts=[*TTA_SHIFTS],
                ),
            ),
            Member("b12-16-naa-mlp", _probe(probe_blocks=[12, 16], probe_head="mlp")),
            Member(
                "all-shift-tta",
                _probe(
                    probe_blocks=list(range(17)),
                    probe_train_views=["shift"],
                    tta_shifts=[*TTA_SHIFTS],
                ),
            ),
        ),
        selection=_MAIN_SELECTION,
        measured=MappingProxyType(
            {
                **_ablation(
                    "ens-4",
                    esc50=(0.9475, 0.9550, 0.9575, 0.9500, 0.9300),
                    esc10=(1.0, 1.0, 0.95, 1.0, 0.975),
                ),
                # The official folds this project's copy holds; not comparable with ten folds.
                "us8k": Measured(
                    (0.7560, 0.7759, 0.6382),
                    "data/us8k: folds 1-3 (fold 3 partial), ogg/opus 48000 Hz, "
                    "metadata 58ee4d0f4a712189",
                    "docs/results/us8k-fit.md, row main (escnet fit --recipe main --dataset us8k: "
                    "its report.md)",
                ),
            }
        ),
    )
    #: One pass of the body per clip: for long recordings and archives.
    ONE_PASS = RecipeSpec(
        name="one-pass",
        description="one linear probe of the frozen AudioSet mn04_as (blocks 12 and 16, "
        "trained with shift views), one pass per clip: no test-time views, no ensemble",
        members=(
            Member("b12-16-shift", _probe(probe_blocks=[12, 16], probe_train_views=["shift"])),
        ),
        selection="the L2 penalty chosen on each fold's validation clips; the refit takes the "
        "folds' median",
        measured=_ablation(
            "b12-16-shift",
            esc50=(0.9425, 0.9650, 0.9475, 0.9450, 0.9175),
            esc10=(1.0, 1.0, 0.95, 1.0, 0.9875),
        ),
    )


def list_recipes() -> list[str]:
    """The recipes' names."""
    return [r.value.name for r in Recipe]


def get_recipe(recipe: str | Recipe | RecipeSpec) -> RecipeSpec:
    """A recipe by name (``main``, ``one-pass``), or the value of a :class:`Recipe`."""
    if isinstance(recipe, RecipeSpec):
        return recipe
    if isinstance(recipe, Recipe):
        return recipe.value
    for r in Recipe:
        if r.value.name == recipe:
            return r.value
    raise ParameterError(f"unknown recipe {recipe!r}; choose one of {', '.join(list_recipes())}")

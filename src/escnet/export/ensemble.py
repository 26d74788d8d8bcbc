"""Export an ensemble: its members copied into one model directory, and one ONNX graph.

The exported directory is a refitted-format ensemble (:mod:`escnet.model_dir.members`) whatever
the source was -- a refitted ensemble, or one fold of a cross-validation ensemble directory --
so the torch backend still runs it; ``model.onnx`` beside it is the whole ensemble, waveform to
probabilities: the front end, one pass of the shared body per TTA view, every member's pooled
block outputs, standardisation and head, the temperatures and the weights
(:class:`~escnet.models.ensemble_net.EnsembleNet` with the front ends' export twins).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from escnet.cache import atomic_path
from escnet.export.front_end import export_front_end
from escnet.model_dir.ensemble import LoadedEnsemble, build_ensemble_net, ensemble_name
from escnet.model_dir.layout import ENSEMBLE_JSON, FORMAT_VERSION, MODEL_JSON, read_model_json
from escnet.model_dir.members import REFIT_FIELDS
from escnet.models.ensemble_net import EnsembleNet
from escnet.version import __version__

__all__ = ["ensemble_graph", "write_members"]

#: Where the exported directory keeps its members.
MEMBERS_DIR = "members"


def ensemble_graph(ensemble: LoadedEnsemble, *, one_pass: bool = True) -> EnsembleNet:
    """The ensemble's network with exportable front ends (``one_pass=False``: every member on
    its own, the reference the benchmarks compare with)."""
    net, _ = build_ensemble_net(
        ensemble.loaded,
        [m.weight for m in ensemble.members],
        [m.temperature for m in ensemble.members],
        one_pass=one_pass,
        front_end=lambda config: export_front_end(config.build()),
    )
    return net.cpu().eval()


def _member_names(ensemble: LoadedEnsemble) -> list[str]:
    """Directory names of the members inside the exported directory, distinct."""
    root = ensemble.path.resolve()
    names = []
    for i, m in enumerate(ensemble.members):
        d = m.model_dir.resolve()
        if root in d.parents:  # a refitted ensemble's own member: keep its name
            name = d.relative_to(root).as_posix().replace("/", "-")
            name = name.removeprefix(f"{MEMBERS_DIR}-")
        else:  # a run's fold model (RUN/fold{k}/model): the run's name and the fold
            name = f"{d.parent.parent.name}-{d.parent.name}" if d.name == "model" else d.name
        names.append(name if name not in names else f"{name}-{i}")
    return names


def write_members(ensemble: LoadedEnsemble, target: Path) -> dict[str, Any]:
    """Copy the members (``model.json`` and weights) into ``target/members/`` and return the
    ensemble's ``model.json`` for ``target`` (without its ``onnx`` record)."""
    records = []
    for name, member, loaded in zip(
        _member_names(ensemble), ensemble.members, ensemble.loaded, strict=True
    ):
        dest = target / MEMBERS_DIR / name
        if dest.resolve() != member.model_dir.resolve():
            dest.mkdir(parents=True, exist_ok=True)
            weights = str(loaded.metadata["weights"].get("file", "weights.pt"))
            for file in (weights, MODEL_JSON):  # model.json last: the copy is complete then
                with atomic_path(dest / file) as tmp:
                    shutil.copyfile(member.model_dir / file, tmp)
        records.append(
            {
                "dir": f"{MEMBERS_DIR}/{name}",
                "weight": member.weight,
                "temperature": member.temperature,
            }
        )
    source = ensemble.path
    if (source / ENSEMBLE_JSON).is_file():
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "trained_on": {
                "cross_validation_ensemble": str(source),
                "fold": ensemble.origin["fold"],
            },
        }
    else:
        meta = dict(read_model_json(source, required=REFIT_FIELDS))
    meta.pop("onnx", None)
    meta.update(
        {
            "model": meta.get("model") or ensemble_name([m.name for m in ensemble.loaded]),
            "members": records,
            "classes": ensemble.classes,
            "sample_rate": ensemble.sample_rate,
            "clip_seconds": ensemble.clip_seconds,
            "activation": "softmax",
            "escnet_version": meta.get("escnet_version") or __version__,
        }
    )
    return meta

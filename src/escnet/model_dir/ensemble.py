"""An ensemble's members loaded and assembled into one network (:class:`LoadedEnsemble`).

:func:`load_ensemble_model` loads every member model directory (see
:mod:`escnet.model_dir.members`) and builds an :class:`~escnet.models.ensemble_net.EnsembleNet`:
members that share a frozen body -- probes (``mn04_as_probe``) whose body weights have the same
digest, with the same front end and input normalisation -- form one group that runs the body
once per view; every other member runs on its own. ``one_pass=False`` runs every member on its
own (the reference the one-pass network is tested against).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from escnet.errors import EscnetError
from escnet.features.spectrogram import FrontEndConfig
from escnet.model_dir.io import LoadedModel, front_end_to_dict, load_model
from escnet.model_dir.members import Member, ensemble_members
from escnet.models.ensemble_net import EnsembleNet, SharedBodyProbes, SingleMember
from escnet.models.probe import ProbeNet

__all__ = [
    "LoadedEnsemble",
    "body_digest",
    "build_ensemble_net",
    "check_members",
    "ensemble_name",
    "load_ensemble_model",
]

#: The registry name of the probe, whose members can share a body pass.
PROBE_MODEL = "mn04_as_probe"


def body_digest(net: ProbeNet) -> str:
    """sha256 of a probe's frozen body: every tensor of its state dict, with names and shapes."""
    digest = hashlib.sha256()
    for name, tensor in net.body.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def _share_key(loaded: LoadedModel) -> str | None:
    """Members with the same key share one body pass; ``None``: the member runs on its own."""
    net = loaded.model.net
    if loaded.name != PROBE_MODEL or not isinstance(net, ProbeNet):
        return None
    norm = loaded.model.model_info.input_norm
    front_end = json.dumps(front_end_to_dict(loaded.front_end), sort_keys=True)
    return f"{front_end}|{norm}|{body_digest(net)}"


def ensemble_name(names: Sequence[str]) -> str:
    """``ensemble of 4 (mn04_as_probe x4)``, from the members' model names."""
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    parts = ", ".join(f"{n} x{c}" if c > 1 else n for n, c in counts.items())
    return f"ensemble of {len(names)} ({parts})"


def build_ensemble_net(
    members: Sequence[LoadedModel],
    weights: Sequence[float],
    temperatures: Sequence[float],
    *,
    one_pass: bool = True,
    batch_views: bool = False,
    front_end: Callable[[FrontEndConfig], nn.Module] | None = None,
) -> tuple[EnsembleNet, list[list[int]]]:
    """The ensemble's network and its groups (member indices that share one body pass).

    Args:
        members: the loaded members.
        weights, temperatures: per member, in the same order.
        one_pass: share a body pass among members that can (else each runs on its own).
        batch_views: a shared group runs its views as one batch (see :class:`SharedBodyProbes`).
        front_end: builds a front end module from its config (default: ``config.build()``; the
            ONNX export passes its twins).
    """
    build = front_end or (lambda config: config.build())
    configs: list[FrontEndConfig] = []
    for m in members:
        if m.front_end not in configs:
            configs.append(m.front_end)
    keyed: dict[str, list[int]] = {}
    alone: list[int] = []
    for i, m in enumerate(members):
        key = _share_key(m) if one_pass else None
        if key is None:
            alone.append(i)
        else:
            keyed.setdefault(key, []).append(i)
    groups: list[tuple[int, nn.Module, list[int]]] = []
    for idx in keyed.values():
        first = members[idx[0]]
        probes = [members[i].model.net for i in idx]
        norm = first.model.model_info.input_norm
        group = SharedBodyProbes(
            probes,  # type: ignore[arg-type]  # _share_key checked they are ProbeNets
            input_norm=(float(norm[0]), float(norm[1])) if norm is not None else None,
            batch_views=batch_views,
        )
        groups.append((configs.index(first.front_end), group, idx))
    for i in alone:
        groups.append((configs.index(members[i].front_end), SingleMember(members[i].model), [i]))
    groups.sort(key=lambda g: min(g[2]))
    front_ends = [build(c).to(members[0].device).eval() for c in configs]
    net = EnsembleNet(front_ends, groups, weights, temperatures).to(members[0].device).eval()
    return net, [list(g[2]) for g in groups]


@dataclass
class LoadedEnsemble:
    """An ensemble in memory: its members and the one network that runs them.

    Attributes:
        network: waveforms (B, samples) -> probabilities (B, classes).
        members: the members as the ensemble's files name them (weights sum to 1).
        loaded: each member's loaded model directory.
        groups: member indices that share one body pass (a member alone: a group of one).
        classes, sample_rate, clip_seconds: the members' (all the same).
        origin: where the members came from (ensemble directory, fold, what it was trained on).
        path: the ensemble's directory.
    """

    network: EnsembleNet
    members: list[Member]
    loaded: list[LoadedModel]
    groups: list[list[int]]
    classes: list[str]
    sample_rate: int
    clip_seconds: float
    origin: dict[str, Any]
    path: Path

    @property
    def num_samples(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def body_passes(self) -> int:
        """Network passes per window: one per view of each group (what one pass saves)."""
        total = 0
        for g in self.network.groups:
            total += len(g.shifts) if isinstance(g, SharedBodyProbes) else 1
        return total

    @torch.no_grad()
    def probabilities(self, waveforms: torch.Tensor) -> torch.Tensor:
        """The ensemble's probabilities (B, classes) of waveforms (B, samples)."""
        device = self.loaded[0].device
        return self.network(waveforms.to(device, torch.float32))


def check_members(root: Path, loaded: Sequence[LoadedModel]) -> None:
    """Members must agree on classes, rate and clip length, and give one label per clip."""
    first = loaded[0]
    for m in loaded:
        if (m.classes, m.sample_rate, m.clip_seconds) != (
            first.classes,
            first.sample_rate,
            first.clip_seconds,
        ):
            raise EscnetError(
                f"{root}: member {m.path} differs from {first.path} in classes, sample rate "
                "or clip length; an ensemble's members must share them"
            )
        if m.activation != "softmax":
            raise EscnetError(
                f"{root}: member {m.path} scores with a {m.activation} (multi-label); an "
                "ensemble averages softmax probabilities, so its members must use a softmax"
            )


def load_ensemble_model(
    path: str | os.PathLike[str],
    *,
    fold: int | None = None,
    device: str = "cpu",
    one_pass: bool = True,
    batch_views: bool = False,
) -> LoadedEnsemble:
    """Load an ensemble (cross-validation or refitted) as one network (module docstring).

    Raises:
        EscnetError: see :func:`~escnet.model_dir.members.ensemble_members`; members that
            cannot be loaded, or that disagree on classes, sample rate or clip length.
    """
    root = Path(path)
    members, origin = ensemble_members(root, fold=fold)
    loaded = [load_model(m.model_dir, device=device) for m in members]
    check_members(root, loaded)
    network, groups = build_ensemble_net(
        loaded,
        [m.weight for m in members],
        [m.temperature for m in members],
        one_pass=one_pass,
        batch_views=batch_views,
    )
    first = loaded[0]
    return LoadedEnsemble(
        network=network,
        members=members,
        loaded=loaded,
        groups=groups,
        classes=first.classes,
        sample_rate=first.sample_rate,
        clip_seconds=first.clip_seconds,
        origin=origin,
        path=root,
    )

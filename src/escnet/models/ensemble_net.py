"""An ensemble as one network: waveforms in, the ensemble's probabilities out.

:class:`EnsembleNet` computes each distinct front end once, runs each *group* of members on its
image, and averages the members' temperature-scaled probabilities with their weights. A group is
either one member's whole network, or :class:`SharedBodyProbes`: probes
(:class:`~escnet.models.probe.ProbeNet`) of one frozen body, which run that body once per view
(one view per distinct TTA roll of any member) and apply every member's pooling,
standardisation and head to that pass. Four probes of ``mn04_as`` with four time rolls each then
cost four body passes, not sixteen, and one front end, not four.

The combination is the one :func:`escnet.training.ensemble.average_probabilities` evaluated:
member ``m``'s probabilities ``p_m`` become ``softmax(log p_m / T_m)`` and the result is
``sum_m w_m softmax(log p_m / T_m)``. ``log p_m`` is taken as the log-softmax of its logits,
floored at ``log 1e-30``, as the prediction path before this network floored ``p_m`` (which
matters for a member with a large temperature, whose tiny probabilities it raises).

The network is plain tensor code (no data-dependent control flow), so the same module is the
torch backend's ensemble and, with the front ends swapped for their export twins
(:mod:`escnet.export.front_end`), the ensemble's ONNX graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from escnet.errors import ParameterError
from escnet.models.probe import ProbeNet, pooled_parts, roll_time

__all__ = ["LOG_FLOOR", "EnsembleNet", "SharedBodyProbes", "SingleMember"]

#: Members' log-probabilities are floored here before temperature scaling (``log 1e-30``).
LOG_FLOOR = math.log(1e-30)


class _ProbeHead(nn.Module):
    """One probe's standardisation and head, reading the shared pass's pooled parts."""

    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    def __init__(self, probe: ProbeNet, parts: list[int]) -> None:
        super().__init__()
        self.parts = parts  # indices into the shared pass's pooled parts, in the probe's order
        self.shifts = probe.tta_shifts
        self.register_buffer("feature_mean", probe.feature_mean.detach().clone())
        self.register_buffer("feature_std", probe.feature_std.detach().clone())
        self.head = probe.head

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:
        features = torch.cat([parts[i] for i in self.parts], dim=1)
        return self.head((features - self.feature_mean) / self.feature_std)


class SharedBodyProbes(nn.Module):
    """Probes of one frozen body, run as one pass of the body per view: images -> (members,
    batch, classes) logits, each member's as its own :class:`ProbeNet` gives them (the log of
    its views' mean probability, or its one view's logits).

    The body is the first probe's; the caller checks that the others' are equal (the same
    weights, front end and input normalisation): this class does not compare tensors.

    Args:
        probes: the members' networks.
        input_norm: ``(mean, std)`` the images are normalised with first, or ``None``.
        batch_views: run all views as one batch of the body (faster in PyTorch on a CPU: the
            four-member recipe in 26 ms against 40 ms) instead of one call per view (what
            onnxruntime runs fastest: 10.6 ms against 10.9 batched; one thread, measured).
    """

    def __init__(
        self,
        probes: Sequence[ProbeNet],
        input_norm: tuple[float, float] | None = None,
        batch_views: bool = False,
    ) -> None:
        super().__init__()
        if not probes:
            raise ParameterError("SharedBodyProbes needs at least one probe")
        self.body = probes[0].body
        self.blocks = tuple(sorted({b for p in probes for b in p.pool.blocks}))
        self.embedding = any(p.pool.embedding for p in probes)
        # Views in first-seen order; a probe's own views keep its order (the mean's summation).
        self.shifts = tuple(dict.fromkeys(s for p in probes for s in p.tta_shifts))
        self.input_norm = input_norm
        self.batch_views = batch_views
        index = {b: 2 * i for i, b in enumerate(self.blocks)}  # a block's mean; its max is next
        self.heads = nn.ModuleList()
        for p in probes:
            parts = [index[b] + j for b in p.pool.blocks for j in (0, 1)]
            if p.pool.embedding:
                parts.append(2 * len(self.blocks))
            self.heads.append(_ProbeHead(p, parts))

    def _passes(self, images: torch.Tensor) -> dict[int, list[torch.Tensor]]:
        """Pooled parts of every view, one body pass each (or one batched pass)."""
        views = [roll_time(images, s) for s in self.shifts]
        if not self.batch_views or len(views) == 1:
            return {
                s: pooled_parts(self.body, v, self.blocks, self.embedding)
                for s, v in zip(self.shifts, views, strict=True)
            }
        n = images.shape[0]
        batched = pooled_parts(self.body, torch.cat(views, 0), self.blocks, self.embedding)
        return {s: [p[i * n : (i + 1) * n] for p in batched] for i, s in enumerate(self.shifts)}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.input_norm is not None:
            images = (images - self.input_norm[0]) / self.input_norm[1]
        passes = self._passes(images)
        out = []
        for head in self.heads:
            assert isinstance(head, _ProbeHead)
            logits = [head(passes[s]) for s in head.shifts]
            if len(logits) == 1:
                out.append(logits[0])
            else:  # as ProbeNet: the log of the views' mean probability
                mean = torch.stack(logits).softmax(2).mean(0)
                out.append(mean.clamp_min(1e-30).log())
        return torch.stack(out)


class SingleMember(nn.Module):
    """A member run on its own: images -> (1, batch, classes) logits of its network."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images).float().unsqueeze(0)


class EnsembleNet(nn.Module):
    """Waveforms (B, samples) -> the ensemble's probabilities (B, classes).

    Args:
        front_ends: the distinct front ends (waveforms -> images), each computed once.
        groups: ``(front end index, group, member indices)``: the group maps that front end's
            images to (len(member indices), B, classes) logits of those members.
        weights: each member's weight (summing to 1), by member index.
        temperatures: each member's temperature, by member index.
    """

    weights: torch.Tensor
    temperatures: torch.Tensor

    def __init__(
        self,
        front_ends: Sequence[nn.Module],
        groups: Sequence[tuple[int, nn.Module, Sequence[int]]],
        weights: Sequence[float],
        temperatures: Sequence[float],
    ) -> None:
        super().__init__()
        members = sorted(m for _, _, idx in groups for m in idx)
        if members != list(range(len(weights))) or len(weights) != len(temperatures):
            raise ParameterError(
                f"EnsembleNet: the groups hold members {members}, for {len(weights)} weights "
                f"and {len(temperatures)} temperatures"
            )
        if any(not t > 0 for t in temperatures):
            raise ParameterError(f"temperatures must be > 0, got {list(temperatures)}")
        self.front_ends = nn.ModuleList(front_ends)
        self.groups = nn.ModuleList(g for _, g, _ in groups)
        self.group_front_end = [int(f) for f, _, _ in groups]
        self.group_members = [[int(m) for m in idx] for _, _, idx in groups]
        self.register_buffer("weights", torch.tensor(list(weights), dtype=torch.float32))
        self.register_buffer("temperatures", torch.tensor(list(temperatures), dtype=torch.float32))

    @property
    def num_members(self) -> int:
        return int(self.weights.numel())

    def member_logits(self, waveforms: torch.Tensor) -> list[torch.Tensor]:
        """Every member's logits (B, classes), by member index."""
        out: list[torch.Tensor | None] = [None] * self.num_members
        for f, front_end in enumerate(self.front_ends):
            images = front_end(waveforms)
            for g, group in enumerate(self.groups):
                if self.group_front_end[g] != f:
                    continue
                logits = group(images)
                for j, m in enumerate(self.group_members[g]):
                    out[m] = logits[j]
        assert all(x is not None for x in out)
        return [x for x in out if x is not None]

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        total = None
        for m, logits in enumerate(self.member_logits(waveforms)):
            log_p = logits.log_softmax(1).clamp_min(LOG_FLOOR) / self.temperatures[m]
            p = self.weights[m] * log_p.softmax(1)
            total = p if total is None else total + p
        assert total is not None
        return total

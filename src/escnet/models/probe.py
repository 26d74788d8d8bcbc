"""``mn04_as_probe``: the frozen AudioSet ``mn04_as`` with pooled multi-level features and a
fitted head, as one network that maps spectral images to logits.

A probe does not fine-tune the pretrained network; it reads features off it and fits only a
small head (:mod:`escnet.training.frozen.probe`). The features are richer than the last embedding
alone: the outputs of chosen blocks of ``MobileNetAudioSet.features``, each pooled over
frequency and time by its mean and its maximum, and the 512-d hidden layer of the AudioSet
classifier ("embedding")::

    image (B, 1, 128, T) --body--> block outputs --mean/max pool--> [b12 mean | b12 max | ...
        ... | b16 mean | b16 max | embedding] (B, D) --standardise--> head --> logits (B, C)

``blocks`` index ``MobileNetAudioSet.features``: 0 is the stem, 1-15 the inverted residual
blocks, 16 the last (1x1) convolution block, whose mean is the input of the embedding layer.

Test-time augmentation (``tta_shifts``): the image is rolled along time by each shift (in
frames; 0 is the image itself), every view is classified, and the output is the logarithm of
the views' *mean probability*, which is a valid logit vector (its softmax is that mean). The
shifts move the image against the body's stride-32 sampling grid, which is where a CNN with
global pooling is not shift invariant.

The whole network -- body, standardisation and head -- is in the state dict, so a model
directory (:mod:`escnet.model_dir.io`) predicts with it like with any other model; the options are
its ``model_kwargs``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

# transfer first: its models (mn04_as among them) are registered, and listed, before the probe.
from escnet.errors import ParameterError
from escnet.models import transfer  # noqa: F401
from escnet.models.mobilenet_audioset import (
    MOBILENETV3_LARGE_BLOCKS,
    AudioSetMelConfig,
    MobileNetAudioSet,
)
from escnet.models.registry import register_model
from escnet.models.weights import MN04_AS, fetch_weights

__all__ = [
    "ALL_BLOCKS",
    "EMBEDDING_DIM",
    "MultiLevelPool",
    "ProbeNet",
    "block_channels",
    "feature_columns",
    "feature_dim",
    "mean_probability_logits",
    "pooled_parts",
    "roll_time",
]

#: Every block index of ``MobileNetAudioSet.features`` (stem, 15 bottlenecks, last conv).
ALL_BLOCKS: tuple[int, ...] = tuple(range(len(MOBILENETV3_LARGE_BLOCKS) + 2))
#: Width of the AudioSet classifier's hidden layer at width 0.4 (the "embedding"): 1280 x 0.4.
EMBEDDING_DIM = 512


def block_channels(width_mult: float = 0.4) -> tuple[int, ...]:
    """Output channels of each block of ``MobileNetAudioSet.features`` (17 at ``mn04``)."""
    from torchvision.models.mobilenetv3 import InvertedResidualConfig

    adjust = InvertedResidualConfig.adjust_channels
    outs = [adjust(16, width_mult)]
    outs += [adjust(row[3], width_mult) for row in MOBILENETV3_LARGE_BLOCKS]
    outs.append(6 * outs[-1])
    return tuple(outs)


def _check_blocks(blocks: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(b) for b in blocks)
    bad = [b for b in out if b not in ALL_BLOCKS]
    if bad or len(set(out)) != len(out):
        raise ParameterError(
            f"blocks must be distinct indices in 0..{ALL_BLOCKS[-1]} of mn04_as's feature "
            f"blocks, got {list(blocks)}"
        )
    return tuple(sorted(out))


def feature_dim(blocks: Sequence[int], embedding: bool) -> int:
    """Length of the feature vector of ``blocks`` (mean and max each) and the embedding."""
    channels = block_channels()
    return sum(2 * channels[b] for b in _check_blocks(blocks)) + (EMBEDDING_DIM if embedding else 0)


def feature_columns(blocks: Sequence[int], embedding: bool) -> list[int]:
    """Columns of the full feature vector (every block, then the embedding; what
    :mod:`escnet.embeddings.pooled` caches) that make the vector of ``blocks`` and
    ``embedding``, in
    :class:`MultiLevelPool`'s order."""
    channels = block_channels()
    starts = [0]
    for c in channels:
        starts.append(starts[-1] + 2 * c)
    cols: list[int] = []
    for b in _check_blocks(blocks):
        cols.extend(range(starts[b], starts[b + 1]))
    if embedding:
        cols.extend(range(starts[-1], starts[-1] + EMBEDDING_DIM))
    return cols


class MultiLevelPool(nn.Module):
    """The pooled outputs of chosen blocks of an ``mn04_as`` body, and its embedding.

    ``forward(images)`` -> (B, :func:`feature_dim`): for each block of ``blocks`` (ascending) its
    mean over frequency and time, then its maximum, then the embedding when asked. The body runs
    only as far as the deepest block it needs.

    Args:
        body: a :class:`~escnet.models.mobilenet_audioset.MobileNetAudioSet`.
        blocks: block indices (0-16) whose outputs are pooled.
        embedding: append the AudioSet classifier's 512-d hidden layer.
    """

    def __init__(self, body: MobileNetAudioSet, blocks: Sequence[int], embedding: bool) -> None:
        super().__init__()
        self.body = body
        self.blocks = _check_blocks(blocks)
        self.embedding = bool(embedding)
        if not self.blocks and not self.embedding:
            raise ParameterError("MultiLevelPool needs at least one block or the embedding")
        self.depth = ALL_BLOCKS[-1] if self.embedding else max(self.blocks)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat(pooled_parts(self.body, images, self.blocks, self.embedding), dim=1)


def pooled_parts(
    body: MobileNetAudioSet, images: torch.Tensor, blocks: Sequence[int], embedding: bool
) -> list[torch.Tensor]:
    """The pooled outputs :class:`MultiLevelPool` concatenates, as a list: for each block of
    ``blocks`` (ascending) its mean over frequency and time, then its maximum, then the
    embedding when asked. The body runs only as far as the deepest block it needs, once."""
    blocks = _check_blocks(blocks)
    depth = ALL_BLOCKS[-1] if embedding else max(blocks)
    parts: list[torch.Tensor] = []
    x = images
    features = body.features
    for i in range(depth + 1):
        x = features[i](x)
        if i in blocks:
            parts.append(x.mean(dim=(2, 3)))
            parts.append(x.amax(dim=(2, 3)))
    if embedding:
        classifier = body.classifier
        # avgpool, flatten, linear, hard-swish: the hidden layer (dropout is identity here).
        parts.append(classifier[3](classifier[2](x.mean(dim=(2, 3)))))
    return parts


class ProbeNet(nn.Module):
    """Frozen ``mn04_as`` body, multi-level pooled features, standardisation and a head.

    The body stays in eval mode whatever :meth:`train` is told (its batch-norm statistics and
    weights are frozen: a probe never trains it); ``requires_grad`` is off for its parameters.

    Args:
        num_classes: outputs.
        blocks: body blocks whose outputs are pooled (see :class:`MultiLevelPool`).
        embedding: include the 512-d embedding.
        hidden: 0 for a linear head; otherwise the width of a one-hidden-layer MLP head.
        dropout: dropout before the MLP's output layer (training only).
        tta_shifts: time shifts (frames) of the test-time views; ``[0]``: no TTA.
    """

    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        blocks: Sequence[int] = (12, 16),
        embedding: bool = True,
        hidden: int = 0,
        dropout: float = 0.0,
        tta_shifts: Sequence[int] = (0,),
    ) -> None:
        super().__init__()
        if num_classes <= 0:
            raise ParameterError(f"num_classes must be > 0, got {num_classes}")
        if hidden < 0:
            raise ParameterError(f"hidden must be >= 0, got {hidden}")
        if not 0.0 <= dropout < 1.0:
            raise ParameterError(f"dropout must be in [0, 1), got {dropout}")
        if not tta_shifts:
            raise ParameterError("tta_shifts must hold at least one shift (0: the image itself)")
        self.tta_shifts = tuple(int(s) for s in tta_shifts)
        self.pool = MultiLevelPool(MobileNetAudioSet(), blocks, embedding)
        for p in self.pool.parameters():
            p.requires_grad_(False)
        dim = feature_dim(blocks, embedding)
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_std", torch.ones(dim))
        # The classifier is registered last: SpectralClassifier.head finds it there.
        self.head: nn.Module
        if hidden:
            self.head = nn.Sequential(
                nn.Linear(dim, hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, num_classes),
            )
        else:
            self.head = nn.Linear(dim, num_classes)
        self.pool.body.eval()

    @property
    def body(self) -> MobileNetAudioSet:
        return self.pool.body

    def train(self, mode: bool = True) -> ProbeNet:
        super().train(mode)
        self.pool.body.eval()  # frozen: batch-norm keeps its AudioSet statistics
        return self

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits of pooled features (B, D) (one view): standardise, then the head."""
        return self.head((features - self.feature_mean) / self.feature_std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if len(self.tta_shifts) == 1:
            return self.classify(self.pool(roll_time(images, self.tta_shifts[0])))
        return mean_probability_logits(
            torch.stack([self.classify(self.pool(roll_time(images, s))) for s in self.tta_shifts])
        )


def mean_probability_logits(logits: torch.Tensor) -> torch.Tensor:
    """Average views: (V, N, C) logits -> (N, C), the log of the views' mean probability.

    The result is a valid logit vector (its softmax is the mean of the views' softmaxes), so
    test-time augmentation and ensembles keep the "network outputs logits" contract. One view
    (V = 1) gives back its log-softmax: the same argmax and probabilities as the view itself.
    """
    if logits.ndim != 3:
        raise ParameterError(
            f"expected logits of shape (views, clips, classes), got {tuple(logits.shape)}"
        )
    return logits.softmax(2).mean(0).clamp_min(1e-30).log()


def roll_time(images: torch.Tensor, shift: int) -> torch.Tensor:
    """``images`` rolled by ``shift`` frames along time (the last axis)."""
    return images if shift == 0 else torch.roll(images, shifts=shift, dims=-1)


@register_model(
    "mn04_as_probe",
    description="frozen mn04_as (AudioSet), mean/max-pooled blocks + embedding, fitted head",
    front_end=AudioSetMelConfig(),
    weights=f"AudioSet body ({MN04_AS.source}; {MN04_AS.license}); head fitted by a probe",
    weight_spec=MN04_AS,
    input_norm=None,
)
def mn04_as_probe(
    num_classes: int,
    pretrained: bool = False,
    weights_path: str | os.PathLike[str] | None = None,
    blocks: Sequence[int] = (12, 16),
    embedding: bool = True,
    hidden: int = 0,
    dropout: float = 0.0,
    tta_shifts: Sequence[int] = (0,),
) -> nn.Module:
    """A :class:`ProbeNet`; with ``pretrained`` the body gets the AudioSet weights (from
    ``weights_path`` or :func:`escnet.models.weights.fetch_weights`), the head stays to be
    fitted."""
    from escnet.models.mobilenet_audioset import load_checkpoint

    net = ProbeNet(num_classes, blocks, embedding, hidden, dropout, tta_shifts)
    if pretrained:
        path = Path(weights_path) if weights_path is not None else fetch_weights(MN04_AS)
        load_checkpoint(net.body, path)
        net.body.eval()
    return net

"""The paper's own CNNs, ``cnn7`` and ``cnn9``, trained from scratch on log-mel images.

The paper names a 7-layer and a 9-layer CNN but gives no layer details; escnet's design is
VGG-like: 3x3 convolutions, each followed by batch normalisation and ReLU; 2x2 max pooling halves
the image after the first and second convolution and then after every pair, while the channels
double; global average pooling over frequency and time, dropout and one linear layer. "Layers"
counts weight layers (convolutions + the linear layer), as for VGG. Global pooling instead of
VGG's flatten + large dense layers keeps the parameter count small (ESC-50 trains on 1600 clips)
and lets clips of any length through.

Input: a (B, 1, 128, 216) log-mel image (:class:`escnet.features.spectrogram.LogMelConfig`, 5 s at
22050 Hz), normalised by the registry's wrapper to roughly zero mean and unit variance.

The widths (16 channels doubling to 128, and 256 for ``cnn9``'s extra pair) are sized for
training on a 2-core CPU: the first design with twice the channels (1.8 GFLOPs) trained at about
20 clips/s here, this one at about 60 (``benchmarks/bench_train_throughput.py``).

``cnn7`` (6 convolutions + 1 linear):

====  ==============================  ================  =============
 #    layer                           output (C, H, W)   parameters
====  ==============================  ================  =============
 1    conv 3x3, 1->16, BN, ReLU       16 x 128 x 216           176
      max pool 2x2                    16 x 64 x 108
 2    conv 3x3, 16->32, BN, ReLU      32 x 64 x 108          4 672
      max pool 2x2                    32 x 32 x 54
 3    conv 3x3, 32->64, BN, ReLU      64 x 32 x 54          18 560
 4    conv 3x3, 64->64, BN, ReLU      64 x 32 x 54          36 992
      max pool 2x2                    64 x 16 x 27
 5    conv 3x3, 64->128, BN, ReLU     128 x 16 x 27         73 984
 6    conv 3x3, 128->128, BN, ReLU    128 x 16 x 27        147 712
      global average pool, dropout    128
 7    linear 128->classes             classes        129 x classes
====  ==============================  ================  =============

``cnn9`` (8 convolutions + 1 linear): ``cnn7``'s layers 1-6, then

====  ==============================  ================  =============
 #    layer                           output (C, H, W)   parameters
====  ==============================  ================  =============
      max pool 2x2                    128 x 8 x 13
 7    conv 3x3, 128->256, BN, ReLU    256 x 8 x 13         295 424
 8    conv 3x3, 256->256, BN, ReLU    256 x 8 x 13         590 336
      global average pool, dropout    256
 9    linear 256->classes             classes        257 x classes
====  ==============================  ================  =============

Parameters include batch normalisation's scale and shift. Measured with ``count_parameters``
and ``torch.utils.flop_counter.FlopCounterMode`` (one multiply-add = 2 FLOPs; it counts the
convolutions and the linear layer) on a (1, 1, 128, 216) input with 50 classes:

=======  ==========  ===============================
model    parameters  FLOPs, forward, one 5 s clip
=======  ==========  ===============================
cnn7        288 546  453 882 368 (0.45 GFLOPs)
cnn9      1 180 706  637 920 256 (0.64 GFLOPs)
=======  ==========  ===============================
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from escnet.errors import ParameterError
from escnet.features.spectrogram import LogMelConfig
from escnet.models.registry import register_model

__all__ = ["CNN7_CHANNELS", "CNN9_CHANNELS", "DB_NORM", "SpectralCNN", "cnn7", "cnn9"]

#: Output channels of each convolution; ``"M"`` is a 2x2 max pooling.
CNN7_CHANNELS: tuple[int | str, ...] = (16, "M", 32, "M", 64, 64, "M", 128, 128)
CNN9_CHANNELS: tuple[int | str, ...] = (*CNN7_CHANNELS, "M", 256, 256)

#: Mean and standard deviation (dB) of the paper's log-mel images (``LogMelConfig()``: power to
#: dB with ref 1.0, 80 dB floor below each clip's peak), measured over 300 random ESC-50 clips
#: (-28.6 dB and 22.4 dB) and rounded; the wrapper maps the images to about N(0, 1) with them.
DB_NORM: tuple[float, float] = (-28.5, 22.5)


class SpectralCNN(nn.Module):
    """A VGG-like CNN on single-channel spectral images; see the module docstring for ``cnn7``
    and ``cnn9``.

    Args:
        layers: output channels of each 3x3 convolution (each followed by batch normalisation
            and ReLU) and ``"M"`` for a 2x2 max pooling, in order.
        num_classes: outputs of the linear head.
        dropout: dropout probability before the linear head.
        in_channels: channels of the input image.
    """

    def __init__(
        self,
        layers: Sequence[int | str],
        num_classes: int,
        dropout: float = 0.5,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ParameterError(f"num_classes must be >= 1, got {num_classes}")
        if not 0.0 <= dropout < 1.0:
            raise ParameterError(f"dropout must be in [0, 1), got {dropout}")
        modules: list[nn.Module] = []
        channels = in_channels
        for layer in layers:
            if layer == "M":
                modules.append(nn.MaxPool2d(2))
            elif isinstance(layer, int) and layer > 0:
                modules += [
                    # No bias: the batch normalisation right after has its own shift.
                    nn.Conv2d(channels, layer, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(layer),
                    nn.ReLU(inplace=True),
                ]
                channels = layer
            else:
                raise ParameterError(f"layers holds channel counts > 0 and 'M', got {layer!r}")
        self.features = nn.Sequential(*modules)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels, num_classes)
        self.num_features = channels
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                # Small logits at the start: the first losses are near log(num_classes).
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding before the head, (B, 1, mels, frames) -> (B, :attr:`num_features`)."""
        return torch.flatten(self.pool(self.features(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.forward_features(x)))


@register_model(
    "cnn7",
    description="the paper's 7-layer CNN (escnet's design: 6 conv-BN-ReLU + linear)",
    front_end=LogMelConfig(),
    input_norm=DB_NORM,
)
def cnn7(num_classes: int, pretrained: bool = False, dropout: float = 0.5) -> SpectralCNN:
    """The paper's 7-layer CNN (escnet's design, see the module docstring); no weights."""
    if pretrained:
        raise ParameterError("cnn7 has no pretrained weights; it is trained from scratch")
    return SpectralCNN(CNN7_CHANNELS, num_classes, dropout=dropout)


@register_model(
    "cnn9",
    description="the paper's 9-layer CNN (escnet's design: 8 conv-BN-ReLU + linear)",
    front_end=LogMelConfig(),
    input_norm=DB_NORM,
)
def cnn9(num_classes: int, pretrained: bool = False, dropout: float = 0.5) -> SpectralCNN:
    """The paper's 9-layer CNN (escnet's design, see the module docstring); no weights."""
    if pretrained:
        raise ParameterError("cnn9 has no pretrained weights; it is trained from scratch")
    return SpectralCNN(CNN9_CHANNELS, num_classes, dropout=dropout)

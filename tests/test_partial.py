"""Partial fine-tuning (mn04_as trained above block k on cached activations) -- on synthetic
tones, with a stand-in for the AudioSet weights, in seconds."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from escnet.cli import main
from escnet.data.audio import AudioConfig, load_audio
from escnet.data.datasets import get_dataset
from escnet.data.folds import fold_split
from escnet.embeddings.activations import clip_activations
from escnet.model_dir.io import load_model
from escnet.models.mobilenet_audioset import AudioSetMelConfig, MobileNetAudioSet
from escnet.results.evaluate import evaluate_run
from escnet.training import TrainConfig, cross_validate
from escnet.training.frozen.partial import load_partial_data, partial_model_state

sys.path.insert(0, str(Path(__file__).parent))
from conftest import write_esc50  # noqa: E402

CLIP_SECONDS = 1.0
NAA = ["shift", "pps", "nps", "sts", "fts", "ts"]


@pytest.fixture
def stand_in_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A seeded, randomly initialised mn04_as in place of the AudioSet file, its batch-norm
    statistics measured on tone images (as a trained network's are on its data), so that its
    activations have the scale a trained network's have; the real weights are measured in the
    README, not here."""
    torch.manual_seed(0)
    body = MobileNetAudioSet()
    for m in body.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # a plain average over the calibration batch
    t = torch.arange(32000) / 32000
    waves = torch.stack([0.5 * torch.sin(2 * math.pi * f * t) for f in range(200, 3400, 200)])
    with torch.no_grad():
        body.train()(AudioSetMelConfig().build()(waves))
    path = tmp_path / "mn04_stand_in.pt"
    torch.save(body.state_dict(), path)
    monkeypatch.setattr("escnet.models.weights.fetch_weights", lambda *a, **k: path)
    monkeypatch.setattr("escnet.models.transfer.fetch_weights", lambda *a, **k: path)
    return path


#: Three epochs at a learning rate the random stand-in tolerates: seconds, not minutes (set as
#: the method's own settings, which config.json records).
FEW_EPOCHS = {"partial": {"epochs": 3, "body_lr": 5e-5}}


@pytest.fixture
def tones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three classes of tones, 2 clips per class and fold; ESCNET_DATA_DIR points at them."""
    write_esc50(tmp_path / "data" / "esc50", classes=3, per_fold=2, seconds=CLIP_SECONDS)
    monkeypatch.setenv("ESCNET_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def partial_config(**kw: object) -> TrainConfig:
    base: dict[str, object] = {
        "dataset": "esc50",
        "model": "mn04_as",
        "method": "partial",
        "augment": "none",
        "folds": [1],
        "clip_seconds": CLIP_SECONDS,
        "workers": 1,
        "val_fraction": 0.2,
    }
    base.update(kw)
    return TrainConfig.from_dict(base)  # type: ignore[arg-type]


def test_activations_come_from_training_clips_and_their_variants_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stand_in_weights: Path
) -> None:
    write_esc50(tmp_path / "d" / "esc50", classes=2, per_fold=1, seconds=CLIP_SECONDS)
    monkeypatch.setenv("ESCNET_DATA_DIR", str(tmp_path / "d"))
    config = partial_config(augment="naa", val_fraction=0.25)
    ds = dataclasses.replace(get_dataset("esc50"), duration=CLIP_SECONDS)
    split = fold_split(ds, 1, val_fraction=0.25, seed=0)
    assert split.val  # the split holds validation clips, whose variants must stay out
    data = load_partial_data(config, ds, split, progress=False)
    ids = [ds[int(i)].clip_id for i in data.train.source]
    train_ids = {ds[i].clip_id for i in split.train}
    held_out = {ds[i].clip_id for i in (*split.val, *split.test)}
    assert set(ids) == train_ids and not set(ids) & held_out
    assert data.train.view.tolist() == ["original", *NAA] * len(train_ids)
    assert {ds[int(i)].clip_id for i in data.val.source} == {ds[i].clip_id for i in split.val}
    assert set(data.val.view.tolist()) == {"original"}
    # the activations after block 12: 48 channels, 1/16 of the image; float16
    assert data.train.activations.dtype == np.float16
    assert data.train.activations.shape[1:] == (48, 8, 7)  # 128 mels x 101 frames in
    # the cache holds exactly those tensors: no test clip's, no validation clip's variant
    root = Path(os.environ["ESCNET_CACHE_DIR"])
    cached = list((root / "activations").glob("*/*.npy"))
    assert len(cached) == 7 * len(train_ids) + len(split.val)


def test_activations_are_cached_and_equal_the_lower_blocks(
    tmp_path: Path, tones: Path, stand_in_weights: Path
) -> None:
    ds = dataclasses.replace(get_dataset("esc50"), duration=CLIP_SECONDS)
    first = clip_activations(ds, [0, 1], block=12, progress=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            "escnet.embeddings.activations.lower_blocks", lambda *a: pytest.fail("recomputed")
        )
        again = clip_activations(ds, [0, 1], block=12, progress=False)
    np.testing.assert_array_equal(first.activations, again.activations)
    # what is cached is the pretrained network's blocks 0..12 of the clip's image
    body = MobileNetAudioSet()
    body.load_state_dict(torch.load(stand_in_weights, weights_only=True))
    body.eval()
    fe = AudioSetMelConfig()
    wave = load_audio(ds[0].path, AudioConfig(sample_rate=fe.sample_rate, duration=CLIP_SECONDS))
    with torch.no_grad():
        expected = body.features[:13](fe.build()(torch.from_numpy(wave)[None]))[0]
    torch.testing.assert_close(
        torch.from_numpy(first.activations[0]).float(), expected, atol=2e-2, rtol=2e-3
    )
    with pytest.raises(ValueError, match="block"):
        clip_activations(ds, [0], block=16, progress=False)


def test_partial_beats_chance_keeps_lower_blocks_and_its_model_predicts_as_tested(
    tmp_path: Path, tones: Path, stand_in_weights: Path
) -> None:
    run = tmp_path / "run"
    results = cross_validate(partial_config(augment="naa", **FEW_EPOCHS), run, progress=False)
    fold = results["folds"][0]
    assert fold["accuracy"] >= 0.8  # chance is 1/3
    record = json.loads((run / "fold1" / "partial.json").read_text())
    assert record["chosen"]["epoch"] == fold["best_epoch"]
    assert record["settings"]["epochs"] == 3 and len(record["epochs"]) == 3
    saved_config = json.loads((run / "config.json").read_text())
    assert saved_config["partial"]["body_lr"] == 5e-5  # the settings that ran are recorded
    assert record["activations"]["dtype"] == "float16"
    split = json.loads((run / "fold1" / "split.json").read_text())
    assert set(split["train_rows"]["sources"]) == set(split["train"])
    assert split["train_rows"]["views"] == {v: len(split["train"]) for v in ["original", *NAA]}

    # lower blocks bit-identical to the pretrained ones; upper blocks trained (unless epoch 0)
    loaded = load_model(run / "fold1" / "model")
    assert loaded.name == "mn04_as"
    saved = loaded.model.state_dict()
    pretrained = torch.load(stand_in_weights, weights_only=True)
    lower = [k for k in pretrained if k.startswith(tuple(f"features.{i}." for i in range(13)))]
    assert lower and all(torch.equal(saved[f"net.{k}"], pretrained[k]) for k in lower)
    # frozen batch norm: the upper blocks' running statistics are AudioSet's too
    stats = [k for k in pretrained if "running_" in k]
    assert all(torch.equal(saved[f"net.{k}"], pretrained[k]) for k in stats)
    upper = [k for k in pretrained if k.split(".")[1] in ("13", "14", "15", "16")]
    changed = {k.split(".")[1] for k in upper if not torch.equal(saved[f"net.{k}"], pretrained[k])}
    # epoch 0 (the fitted head on the unchanged network) may win on validation
    assert changed == ({"13", "14", "15", "16"} if fold["best_epoch"] > 0 else set())

    # the saved network, from waveforms, predicts what the run's test predictions say
    logits_file = np.load(run / "fold1" / "logits.npz")
    ds = get_dataset("esc50")
    by_id = {c.clip_id: c for c in ds.clips}
    audio = AudioConfig(sample_rate=loaded.sample_rate, duration=CLIP_SECONDS)
    waves = np.stack([load_audio(by_id[str(c)].path, audio) for c in logits_file["test_ids"]])
    logits = loaded.logits(torch.from_numpy(waves)).numpy()
    # float32 convolutions differ in the last bits between batch shapes and CPUs (oneDNN picks
    # kernels per shape and instruction set): 1.3e-4 on a logit of -4.8 on an Intel Xeon.
    np.testing.assert_allclose(logits, logits_file["test_logits"], rtol=1e-4, atol=1e-4)
    lines = (run / "fold1" / "test_predictions.csv").read_text().splitlines()[1:]
    predicted = {line.split(",")[0]: int(line.split(",")[2]) for line in lines}
    ids = [str(c) for c in logits_file["test_ids"]]
    assert [predicted[c] for c in ids] == logits.argmax(1).tolist()
    assert evaluate_run(run)["matches_results"] is True


def test_training_changes_the_upper_blocks_only(
    tmp_path: Path, tones: Path, stand_in_weights: Path
) -> None:
    # no validation clips: the last epoch is kept, so the trained weights are what is compared
    config = partial_config(val_fraction=0.0, partial_from=13, **FEW_EPOCHS)
    ds = dataclasses.replace(get_dataset("esc50"), duration=CLIP_SECONDS)
    data = load_partial_data(config, ds, fold_split(ds, 1, val_fraction=0.0), progress=False)
    model, record = partial_model_state(config, ds, data, 1, show=False)
    assert record["chosen"]["epoch"] == 3 and len(record["epochs"]) == 3
    saved = model.state_dict()
    pretrained = torch.load(stand_in_weights, weights_only=True)
    for key, value in pretrained.items():
        block = int(key.split(".")[1]) if key.startswith("features.") else 17
        same = torch.equal(saved[f"net.{key}"], value)
        if block <= 13 or "running_" in key or "num_batches" in key:
            assert same, key  # frozen: lower blocks and every batch-norm statistic
    trained = {k.split(".")[1] for k in pretrained if k.startswith("features.") and not
               torch.equal(saved[f"net.{k}"], pretrained[k])}  # fmt: skip
    assert trained == {"14", "15", "16"}
    assert not torch.equal(saved["net.classifier.2.weight"], pretrained["classifier.2.weight"])


def test_partial_config_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="model='mn04_as'"):
        TrainConfig.from_dict(dict(method="partial", model="cnn7"))
    with pytest.raises(ValueError, match="model='mn04_as'"):
        TrainConfig.from_dict(dict(method="partial", model="mn04_as_probe"))
    with pytest.raises(ValueError, match="augment='none' or 'naa'"):
        TrainConfig.from_dict(dict(method="partial", model="mn04_as", augment="taa"))
    with pytest.raises(ValueError, match="--partial-from"):
        TrainConfig.from_dict(dict(method="partial", model="mn04_as", partial_from=16))
    with pytest.raises(ValueError, match=r"does not read tta_shifts \(--tta\)"):
        TrainConfig.from_dict(dict(method="partial", model="mn04_as", tta_shifts=[0, 8]))
    with pytest.raises(ValueError, match="pretrained=False"):
        TrainConfig.from_dict(dict(method="partial", model="mn04_as", pretrained=False))
    config = TrainConfig.from_dict(dict(method="partial", model="mn04_as"))
    assert config.pretrained is None and config.partial.from_block == 12  # nothing changed
    assert config.to_dict()["partial"]["epochs"] == 10  # its real settings reach config.json
    code = main(["train", "--method", "partial", "--model", "mn04_as", "--partial-from", "16",
                 "--run-dir", str(tmp_path / "r")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--partial-from" in err and len(err.strip().splitlines()) == 1

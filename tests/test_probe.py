"""The probe trainer (frozen mn04_as features + fitted head), its model directory, TTA and
ensembles -- on synthetic tones, with a stand-in for the AudioSet weights, in seconds."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import escnet
from escnet.cli import main
from escnet.data.audio import AudioConfig, load_audio
from escnet.data.datasets import get_dataset
from escnet.data.folds import fold_split
from escnet.embeddings.pooled import FULL_DIM, clip_features, parse_view
from escnet.errors import EscnetError
from escnet.model_dir.io import load_model
from escnet.model_dir.layout import resolve_model_dir
from escnet.models import create_model
from escnet.models.mobilenet_audioset import MobileNetAudioSet
from escnet.models.probe import feature_columns, feature_dim, mean_probability_logits
from escnet.results.evaluate import evaluate_run
from escnet.training import TrainConfig, cross_validate
from escnet.training.ensemble import (
    average_probabilities,
    choose_weights,
    ensemble_runs,
    fit_temperature,
    run_fold_logits,
)
from escnet.training.frozen.probe import load_probe_data

sys.path.insert(0, str(Path(__file__).parent))
from conftest import write_esc50  # noqa: E402

CLIP_SECONDS = 1.0  # 1 s clips: the whole probe runs in seconds on a CPU


@pytest.fixture
def stand_in_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A seeded, randomly initialised mn04_as state dict in place of the AudioSet file.

    Random convolutional features still separate tones of different pitch; the real weights
    are tested by the benchmarks (``benchmarks/ablation_probe.py``)."""
    torch.manual_seed(0)
    path = tmp_path / "mn04_stand_in.pt"
    torch.save(MobileNetAudioSet().state_dict(), path)
    monkeypatch.setattr("escnet.models.weights.fetch_weights", lambda *a, **k: path)
    monkeypatch.setattr("escnet.models.probe.fetch_weights", lambda *a, **k: path)
    return path


@pytest.fixture
def tones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three classes of tones, 3 clips per class and fold; ESCNET_DATA_DIR points at them."""
    write_esc50(tmp_path / "data" / "esc50", classes=3, per_fold=3, seconds=CLIP_SECONDS)
    monkeypatch.setenv("ESCNET_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def probe_config(**kw: object) -> TrainConfig:
    base: dict[str, object] = {
        "dataset": "esc50",
        "model": "mn04_as",
        "method": "probe",
        "augment": "none",
        "folds": [1],
        "clip_seconds": CLIP_SECONDS,
        "workers": 1,
        "val_fraction": 0.2,
    }
    base.update(kw)
    return TrainConfig.from_dict(base)  # type: ignore[arg-type]


# ---- averaging axes: hand-made logits -------------------------------------------------------


def test_tta_averages_probabilities_over_the_views_axis() -> None:
    # 2 views x 1 clip x 2 classes: view 0 is sure of class 0, view 1 mildly prefers class 1.
    logits = torch.tensor([[[4.0, 0.0]], [[0.0, 1.0]]])
    out = mean_probability_logits(logits)
    assert out.shape == (1, 2)
    expected = (logits.softmax(2)[0] + logits.softmax(2)[1]) / 2
    torch.testing.assert_close(out.softmax(1), expected)
    assert int(out.argmax(1)) == 0  # averaging over classes or clips instead would not say this
    # one view: its own probabilities
    one = torch.tensor([[[0.3, 2.0, -1.0]]])
    torch.testing.assert_close(mean_probability_logits(one).softmax(1), one[0].softmax(1))
    with pytest.raises(ValueError, match="views, clips, classes"):
        mean_probability_logits(torch.zeros(2, 3))


def test_ensemble_averages_over_the_members_axis_with_weights() -> None:
    probs = torch.tensor([[[0.9, 0.1], [0.2, 0.8]], [[0.1, 0.9], [0.6, 0.4]]])  # 2 members
    out = average_probabilities(probs, torch.tensor([3.0, 1.0]))
    torch.testing.assert_close(out, 0.75 * probs[0] + 0.25 * probs[1])
    with pytest.raises(ValueError, match="members"):
        average_probabilities(probs, torch.ones(3))


def test_choose_weights_prefers_the_better_member_and_one_member_gets_all() -> None:
    labels = torch.tensor([0, 1, 0, 1])
    good = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    bad = good.flip(1)
    w = choose_weights(torch.stack([bad, good]), labels)
    assert w.sum().item() == pytest.approx(1.0) and w[1] > 0.9
    torch.testing.assert_close(choose_weights(good[None], labels), torch.ones(1))


def test_fit_temperature_undoes_overconfidence() -> None:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4000, 5, generator=g)
    labels = torch.multinomial(base.softmax(1), 1, generator=g).squeeze(1)
    assert fit_temperature(3.0 * base, labels) == pytest.approx(3.0, rel=0.15)


def test_probe_net_tta_forward_is_the_mean_of_its_views() -> None:
    torch.manual_seed(0)
    kwargs = {"blocks": [12, 16], "embedding": True}
    net = create_model("mn04_as_probe", 4, tta_shifts=[0, 8], **kwargs).eval()
    images = torch.randn(2, 1, 128, 100)
    views = torch.stack([net.net.classify(net.net.pool(torch.roll(images, s, -1))) for s in (0, 8)])
    with torch.no_grad():
        torch.testing.assert_close(net(images), mean_probability_logits(views))
    # the body stays frozen and in eval mode even in train mode
    net.train()
    assert not net.net.body.training
    assert all(not p.requires_grad for p in net.net.body.parameters())


def test_feature_columns_match_the_pooled_layout() -> None:
    cols = feature_columns([12, 16], True)
    assert len(cols) == feature_dim([12, 16], True) == 2 * 48 + 2 * 384 + 512
    assert max(feature_columns(list(range(17)), True)) == FULL_DIM - 1
    with pytest.raises(ValueError, match="distinct"):
        feature_columns([17], True)
    assert parse_view("roll8") == ("roll", 8) and parse_view("pps") == ("naa", "pps")
    with pytest.raises(ValueError, match="unknown view"):
        parse_view("mirror")


# ---- the probe on synthetic tones -----------------------------------------------------------


def test_probe_features_come_from_training_clips_and_their_variants_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stand_in_weights: Path
) -> None:
    write_esc50(tmp_path / "d" / "esc50", classes=2, per_fold=1, seconds=CLIP_SECONDS)
    monkeypatch.setenv("ESCNET_DATA_DIR", str(tmp_path / "d"))
    config = probe_config(augment="naa", val_fraction=0.25)
    ds = dataclasses.replace(get_dataset("esc50"), duration=CLIP_SECONDS)
    split = fold_split(ds, 1, val_fraction=0.25, seed=0)
    assert split.val  # the split holds validation clips, whose variants must stay out
    data = load_probe_data(config, ds, split, progress=False)
    ids = [ds[int(i)].clip_id for i in data.train.source]
    train_ids = {ds[i].clip_id for i in split.train}
    held_out = {ds[i].clip_id for i in (*split.val, *split.test)}
    assert set(ids) == train_ids and not set(ids) & held_out
    # each training clip: the original and its six NAA variants
    assert len(ids) == 7 * len(train_ids)
    assert sorted(set(data.train.view.tolist())) == sorted(
        ["original", "shift", "pps", "nps", "sts", "fts", "ts"]
    )
    assert set(data.val.view.tolist()) == {"original"} == set(data.test.view.tolist())
    assert {ds[int(i)].clip_id for i in data.test.source} == {ds[i].clip_id for i in split.test}
    # a chosen subset of variants, and time rolls, as training rows: still training clips only
    chosen = dataclasses.replace(
        config, settings=dataclasses.replace(config.probe, train_views=["shift", "roll8"])
    )
    subset = load_probe_data(chosen, ds, split, progress=False)
    assert subset.train.view.tolist() == ["original", "shift", "roll8"] * len(train_ids)
    assert {ds[int(i)].clip_id for i in subset.train.source} == train_ids


def test_probe_beats_chance_and_its_model_directory_predicts_as_in_evaluation(
    tmp_path: Path, tones: Path, stand_in_weights: Path
) -> None:
    run = tmp_path / "run"
    results = cross_validate(probe_config(tta_shifts=[0, 8]), run, progress=False)
    fold = results["folds"][0]
    assert fold["accuracy"] >= 0.9  # chance is 1/3
    probe = json.loads((run / "fold1" / "probe.json").read_text())
    assert probe["eval_views"] == ["original", "roll8"]
    assert probe["chosen"]["l2"] in [g["l2"] for g in probe["grid"]]
    split = json.loads((run / "fold1" / "split.json").read_text())
    assert set(split["train_rows"]["sources"]) <= set(split["train"])
    assert not set(split["train_rows"]["sources"]) & set(split["val"] + split["test"])

    # the saved network, from waveforms, gives the logits the evaluation used
    loaded = load_model(run / "fold1" / "model")
    assert loaded.name == "mn04_as_probe"
    assert loaded.metadata["model_kwargs"]["tta_shifts"] == [0, 8]
    saved = np.load(run / "fold1" / "logits.npz")
    ds = get_dataset("esc50")
    by_id = {c.clip_id: c for c in ds.clips}
    audio = AudioConfig(sample_rate=loaded.sample_rate, duration=CLIP_SECONDS)
    waves = np.stack([load_audio(by_id[str(c)].path, audio) for c in saved["test_ids"]])
    logits = loaded.logits(torch.from_numpy(waves)).numpy()
    # float32 convolutions differ in the last bits between batch shapes and CPUs (oneDNN picks
    # kernels per shape and instruction set): 1.3e-4 on a logit of -4.8 on an Intel Xeon.
    np.testing.assert_allclose(logits, saved["test_logits"], rtol=1e-4, atol=1e-4)
    assert (logits.argmax(1) == saved["test_logits"].argmax(1)).all()
    assert evaluate_run(run)["matches_results"] is True

    # an ensemble of one run is that run
    out = ensemble_runs([run], tmp_path / "ens")
    assert out["folds"][0]["accuracy"] == fold["accuracy"]
    record = out["ensemble"]["folds"][0]
    assert record["weights"] == [1.0]
    member = run_fold_logits(run, 1)
    t = record["temperatures"][0]
    assert record["member_test_acc"][0] == pytest.approx(fold["accuracy"])
    assert (member.test_logits / t).softmax(1).argmax(1).tolist() == member.test_logits.argmax(
        1
    ).tolist()

    # the ensemble directory predicts: its fold's members, temperature-scaled and weighted
    predictor = escnet.load(tmp_path / "ens")
    assert predictor.spec.metadata["fold"] == 1 and predictor.classes == loaded.classes
    expected = torch.from_numpy(logits / t).softmax(1).numpy()
    np.testing.assert_allclose(predictor.probabilities(waves), expected, atol=1e-4)
    with pytest.raises(EscnetError, match="no ONNX graph"):
        escnet.load(tmp_path / "ens", backend="onnx")
    with pytest.raises(EscnetError, match="no ensemble for fold 2"):
        escnet.load(tmp_path / "ens", fold=2)
    with pytest.raises(EscnetError, match="ensemble directory holds no model"):
        resolve_model_dir(tmp_path / "ens")  # what export reads: it names the member runs


def test_ensemble_refuses_runs_on_different_splits(
    tmp_path: Path, tones: Path, stand_in_weights: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    cross_validate(probe_config(), a, progress=False)
    cross_validate(probe_config(seed=1), b, progress=False)
    with pytest.raises(EscnetError, match="same data set, seed, val_fraction"):
        ensemble_runs([a, b], tmp_path / "ens")


def test_features_are_cached_by_content(
    tmp_path: Path, tones: Path, stand_in_weights: Path
) -> None:
    ds = dataclasses.replace(get_dataset("esc50"), duration=CLIP_SECONDS)
    first = clip_features(ds, [0, 1], views=("original", "roll8"), progress=False)
    assert first.features.shape == (4, FULL_DIM)
    assert list(first.view) == ["original", "roll8", "original", "roll8"]
    assert not np.allclose(first.features[0], first.features[1])  # a roll is another view
    # a second call reads the cache: the network is not even built
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("escnet.embeddings.pooled.full_extractor", lambda *a: pytest.fail("recomputed"))
        second = clip_features(ds, [0, 1], views=("original", "roll8"), progress=False)
    np.testing.assert_array_equal(first.features, second.features)


# ---- configuration and command line -----------------------------------------------------------


def test_probe_config_errors() -> None:
    with pytest.raises(ValueError, match="model='mn04_as'"):
        TrainConfig.from_dict(dict(method="probe", model="cnn7"))
    with pytest.raises(ValueError, match="augment='none' or 'naa'"):
        TrainConfig.from_dict(dict(method="probe", model="mn04_as", augment="taa"))
    with pytest.raises(ValueError, match="does not read tta_shifts"):
        TrainConfig.from_dict(dict(tta_shifts=[0, 8]))
    with pytest.raises(ValueError, match="--probe-blocks"):
        TrainConfig.from_dict(dict(method="probe", model="mn04_as", probe_blocks=[3, 3]))
    with pytest.raises(ValueError, match="method must be"):
        TrainConfig.from_dict(dict(method="distil"))
    with pytest.raises(ValueError, match="set augment='naa'"):
        TrainConfig.from_dict(
            dict(method="probe", model="mn04_as", augment="none", probe_train_views=["pps"])
        )
    with pytest.raises(ValueError, match="names no NAA variant"):
        TrainConfig.from_dict(
            dict(method="probe", model="mn04_as", augment="naa", probe_train_views=["roll8"])
        )
    with pytest.raises(ValueError, match="--probe-views"):
        TrainConfig.from_dict(
            dict(method="probe", model="mn04_as", augment="naa", probe_train_views=["echo"])
        )
    assert TrainConfig.from_dict(dict(method="probe", model="mn04_as")).pretrained is None


def test_cli_probe_options_and_errors(
    tmp_path: Path, tones: Path, stand_in_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", "--method", "probe", "--model", "cnn7", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "model='mn04_as'" in err and len(err.strip().splitlines()) == 1
    run = tmp_path / "run"
    start = tmp_path / "start.json"  # 1 s clips: the command line has no option for it
    start.write_text(json.dumps({"clip_seconds": CLIP_SECONDS, "workers": 1}))
    args = ["-q", "train", "--config", str(start), "--method", "probe", "--model", "mn04_as"]
    args += ["--folds", "1", "--probe-blocks", "16", "--tta", "--run-dir", str(run)]
    assert main(args) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["method"] == "probe" and config["probe"]["blocks"] == [16]
    assert config["probe"]["tta_shifts"] == [0, 8, 16, 24]
    assert "accuracy over 1 fold(s)" in capsys.readouterr().out
    assert main(["-q", "ensemble", str(run), "--out", str(tmp_path / "e")]) == 0
    assert (tmp_path / "e" / "report.md").is_file()


# ---- refit: the final model on all the folds' clips ------------------------------------------


def test_refit_trains_on_every_clip_and_predict_uses_it(
    tmp_path: Path, tones: Path, stand_in_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from escnet.training.refit import refit

    run = tmp_path / "run"
    results = cross_validate(
        probe_config(folds=[1, 2, 3, 4, 5], tta_shifts=[0, 8]), run, progress=False
    )
    final = refit(run, progress=False)
    assert final == run / "final"
    ds = get_dataset("esc50")
    record = json.loads((final / "refit.json").read_text())
    assert sorted(record["train_rows"]["clips"]) == sorted(c.clip_id for c in ds.clips)
    meta = json.loads((final / "model.json").read_text())
    assert meta["trained_on"]["folds"] == [1, 2, 3, 4, 5]
    assert meta["trained_on"]["clips"] == len(ds) == 45
    assert meta["cross_validation"]["accuracy"] == results["summary"]["accuracy"]
    folds_l2 = [json.loads((run / f"fold{k}" / "probe.json").read_text()) for k in range(1, 6)]
    assert record["choice"]["folds"] == [p["chosen"]["l2"] for p in folds_l2]

    # what the refit computed is what a loaded copy predicts; the run now means its final model
    check = np.load(final / "check.npz")
    predictor = escnet.load(run)
    assert predictor.spec.path == final
    probs = predictor.probabilities(check["waveforms"])
    np.testing.assert_allclose(probs, check["probabilities"], atol=1e-5)
    assert escnet.load(run, fold=2).spec.path == run / "fold2" / "model"  # a fold still loads

    capsys.readouterr()
    assert main(["predict", str(run), str(ds[0].path)]) == 0
    assert f"model {final} (mn04_as_probe;" in capsys.readouterr().err


def test_refit_of_an_ensemble_is_one_model_directory_of_refitted_members(
    tmp_path: Path, tones: Path, stand_in_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    config = probe_config(folds=[1, 2, 3, 4, 5])
    cross_validate(config, a, progress=False)
    blocks16 = dataclasses.replace(config.probe, blocks=[16])
    cross_validate(dataclasses.replace(config, settings=blocks16), b, progress=False)
    ens = ensemble_runs([a, b], tmp_path / "ens")
    assert main(["-q", "refit", str(tmp_path / "ens")]) == 0
    assert "trained on 45 clips of esc50 folds [1, 2, 3, 4, 5]" in capsys.readouterr().out
    final = tmp_path / "ens" / "final"
    meta = json.loads((final / "model.json").read_text())
    folds = ens["ensemble"]["folds"]
    weights = [np.mean([f["weights"][i] for f in folds]) for i in range(2)]
    temps = [np.mean([f["temperatures"][i] for f in folds]) for i in range(2)]
    assert [m["weight"] for m in meta["members"]] == pytest.approx(
        [w / sum(weights) for w in weights]
    )
    assert [m["temperature"] for m in meta["members"]] == pytest.approx(temps)

    # the refitted ensemble predicts the weighted mean of its members' scaled probabilities
    waves = np.load(a / "final" / "check.npz")["waveforms"]
    predictor = escnet.load(tmp_path / "ens")
    assert predictor.spec.path == final and predictor.spec.metadata["fold"] is None
    expected = np.zeros((len(waves), len(predictor.classes)))
    for m in meta["members"]:
        member = escnet.load(final / m["dir"])
        log_p = np.log(member.probabilities(waves).astype(np.float64)) / m["temperature"]
        p = np.exp(log_p - log_p.max(1, keepdims=True))
        expected += m["weight"] * p / p.sum(1, keepdims=True)
    np.testing.assert_allclose(predictor.probabilities(waves), expected, atol=1e-5)
    with pytest.raises(EscnetError, match="refitted ensemble has no folds"):
        escnet.load(final, fold=1)
    assert main(["refit", str(tmp_path / "nothing")]) == 2


def test_a_run_records_its_data_copy_and_an_ensemble_refuses_a_mix(
    tmp_path: Path, tones: Path, stand_in_weights: Path
) -> None:
    """Every figure says what it was measured on: results.json names the copy (its directory's
    last two parts, codec and rate, metadata digest); members from two copies are not mixed."""
    a, b = tmp_path / "a", tmp_path / "b"
    cross_validate(probe_config(), a, progress=False)
    cross_validate(probe_config(), b, progress=False)
    data = json.loads((a / "results.json").read_text())["data"]
    assert data["dataset"] == "esc50" and data["copy"].endswith("/esc50")
    assert "Hz" in data["audio"] and len(data["metadata_sha256"]) == 16
    assert ensemble_runs([a, b], tmp_path / "ens")["data"] == data
    results = json.loads((b / "results.json").read_text())
    results["data"] = {**data, "audio": "ogg/opus 48000 Hz", "metadata_sha256": "0" * 16}
    (b / "results.json").write_text(json.dumps(results))
    with pytest.raises(EscnetError, match="different copies of the data set"):
        ensemble_runs([a, b], tmp_path / "ens2")

"""Training, metrics and report on a tiny synthetic data set (3 sound classes, 5 folds, 1 s).

The model is ``tiny_test_cnn`` (tests/_ddp_worker.py: two convolutions on 8 kHz log-mel
images), so a cross-validation takes seconds on a CPU; ``cnn7`` gets a one-batch smoke run.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from escnet.augment.audio import NAA_VARIANTS
from escnet.cache import file_digest
from escnet.data.audio import AudioConfig, load_audio
from escnet.data.datasets import get_dataset
from escnet.data.folds import fold_split
from escnet.errors import EscnetError
from escnet.features.offline_naa import variants_key
from escnet.metrics.classification import (
    accuracy,
    classification_metrics,
    confusion_matrix,
    macro_f1,
    mean_std,
    per_class_accuracy,
)
from escnet.metrics.report import METRIC_COLUMNS, PROTOCOL, read_metrics_csv
from escnet.model_dir.io import load_model
from escnet.model_dir.layout import resolve_model_dir
from escnet.models import create_model
from escnet.results.evaluate import evaluate_run
from escnet.training import (
    TrainConfig,
    cross_validate,
    load_dataset,
    warmup_cosine,
)

sys.path.insert(0, str(Path(__file__).parent))
from _ddp_worker import SOUND_CLASSES, TINY_FRONT_END, write_sound_classes  # noqa: E402

WORKER = Path(__file__).parent / "_ddp_worker.py"


def make_config(base: Path, **overrides: Any) -> TrainConfig:
    values: dict[str, Any] = {
        "dataset": "esc50",
        "model": "tiny_test_cnn",
        "augment": "naa",
        "folds": [1, 2],
        "epochs": 3,
        "batch_size": 8,
        "lr": 5e-3,
        "warmup_epochs": 0.5,
        "val_fraction": 0.2,
        "clip_seconds": 1.0,
        "workers": 2,
        "data_dir": str(base / "data"),
        "cache_dir": str(base / "cache"),
    }
    values.update(overrides)
    return TrainConfig.from_dict(values)


@pytest.fixture(scope="module")
def data_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("train-data")
    write_sound_classes(base / "data" / "esc50", per_fold=4)
    return base


@pytest.fixture(scope="module")
def naa_run(data_base: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One 3-epoch cross-validation over test folds 1 and 2 with offline NAA (shared)."""
    cache = tmp_path_factory.mktemp("naa-cache")
    config = make_config(data_base, cache_dir=str(cache))
    run_dir = tmp_path_factory.mktemp("runs") / "naa"
    results = cross_validate(config, run_dir, progress=False)
    return {"config": config, "run_dir": run_dir, "results": results, "cache": cache}


# ---------------------------------------------------------------------------------------------
# metrics


def test_metrics_match_sklearn() -> None:
    from sklearn import metrics as sk  # the independent reference (dev extras)

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 6, 200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 7, 200))
    y_true[y_true == 5] = 4  # class 5 never true; class 6 only predicted
    assert accuracy(y_true, y_pred) == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert macro_f1(y_true, y_pred, 8) == pytest.approx(
        sk.f1_score(y_true, y_pred, average="macro")
    )
    cm = confusion_matrix(y_true, y_pred, 8)
    np.testing.assert_array_equal(cm, sk.confusion_matrix(y_true, y_pred, labels=range(8)))
    recall = per_class_accuracy(cm)
    assert np.isnan(recall[5]) and np.isnan(recall[7])
    np.testing.assert_allclose(
        recall[:5], sk.recall_score(y_true, y_pred, labels=range(5), average=None)
    )
    out = classification_metrics(y_true, y_pred, 8)
    assert out["per_class_accuracy"][5] is None and out["count"] == 200


def test_metrics_edge_cases() -> None:
    assert mean_std([0.8, 0.9, 1.0]) == pytest.approx((0.9, 0.1))
    mean, std = mean_std([0.5])
    assert mean == 0.5 and math.isnan(std)
    assert all(math.isnan(v) for v in mean_std([]))
    assert math.isnan(accuracy([], []))
    with pytest.raises(ValueError, match="num_classes is 3"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="must match"):
        accuracy([0, 1], [0])


# ---------------------------------------------------------------------------------------------
# config and schedule


def test_config_validation_and_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown augmentation policy"):
        TrainConfig.from_dict(dict(augment="bogus"))
    with pytest.raises(ValueError, match="val_fraction"):
        TrainConfig.from_dict(dict(val_fraction=1.0))
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig.from_dict(dict(epochs=0))
    with pytest.raises(ValueError, match="head_lr"):
        TrainConfig.from_dict(dict(head_lr=0.0))
    with pytest.raises(ValueError, match="distinct test folds in increasing order"):
        TrainConfig.from_dict(dict(folds=[3, 1, 1]))  # refused, not silently changed
    config = TrainConfig.from_dict(dict(folds=[1, 3], early_stopping_patience=5))
    assert config.folds == [1, 3] and config.finetune.early_stopping_patience == 5
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config.to_dict(), "environment": {"torch": "x"}}))
    assert TrainConfig.from_json(path) == config
    path.write_text(json.dumps({"epochs": 2, "learning_rate": 0.1}))
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig.from_json(path)


def test_warmup_cosine_schedule() -> None:
    f = warmup_cosine(total_steps=100, warmup_steps=10)
    assert f(0) == pytest.approx(0.1)
    assert f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5)
    assert f(99) < 0.01
    assert warmup_cosine(10, 0)(0) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# cross-validation (one shared run)


def test_cross_validation_beats_chance(naa_run: dict[str, Any]) -> None:
    results = naa_run["results"]
    chance = 1 / len(SOUND_CLASSES)
    accs = [f["accuracy"] for f in results["folds"]]
    assert [f["test_fold"] for f in results["folds"]] == [1, 2]
    assert results["summary"]["accuracy"]["mean"] >= 0.75, accs
    assert min(accs) > chance + 0.2, accs
    for f in results["folds"]:
        history = read_metrics_csv(naa_run["run_dir"] / f"fold{f['test_fold']}" / "metrics.csv")
        assert [int(r["epoch"]) for r in history] == [1, 2, 3]
        assert history[-1]["train_loss"] < history[0]["train_loss"]
        # NAA: 7 images per training clip, every one of them seen each epoch
        assert f["train_images"] == 7 * f["train_clips"]
        assert all(r["train_samples"] == f["train_images"] for r in history)
        assert all(r["val_samples"] == f["val_clips"] for r in history)


def test_results_json_and_report_files(naa_run: dict[str, Any]) -> None:
    run: Path = naa_run["run_dir"]
    saved = json.loads((run / "results.json").read_text())
    assert saved == json.loads(json.dumps(naa_run["results"]))
    assert saved["protocol"] == PROTOCOL == "official folds, leave-one-fold-out"
    assert "training folds only" in saved["augmentation"]
    assert "validation" in saved["model_selection"] and saved["complete"] is True
    assert saved["classes"] == list(SOUND_CLASSES)
    for f in saved["folds"]:
        for key in ("accuracy", "macro_f1", "loss", "best_epoch", "confusion_matrix"):
            assert key in f
        assert set(f["per_class_accuracy"]) == set(SOUND_CLASSES)
        assert 1 <= f["best_epoch"] <= 3
    for key in ("accuracy", "macro_f1", "loss"):
        assert set(saved["summary"][key]) == {"mean", "std"}
    assert set(saved["summary"]["per_class_accuracy"]) == set(SOUND_CLASSES)
    total = np.array(saved["confusion_matrix_total"])
    assert total.sum() == sum(f["test_clips"] for f in saved["folds"])

    config = json.loads((run / "config.json").read_text())
    assert config["device"] == "cpu" and config["environment"]["torch"] == torch.__version__
    assert TrainConfig.from_json(run / "config.json").folds == [1, 2]

    for name in ("report.md", "confusion_matrix.png", "curves_fold1.png", "curves_fold2.png"):
        assert (run / name).stat().st_size > 0, name
    for k in (1, 2):
        for name in (
            "best.pt",
            "last.pt",
            "metrics.csv",
            "split.json",
            "test_predictions.csv",
            "model/model.json",
            "model/weights.pt",
        ):
            assert (run / f"fold{k}" / name).is_file(), name
        with open(run / f"fold{k}" / "metrics.csv") as fh:
            assert tuple(next(csv.reader(fh))) == METRIC_COLUMNS
    report = (run / "report.md").read_text()
    for needle in ("![confusion matrix](confusion_matrix.png)", "curves_fold2.png", "± "):
        assert needle in report
    assert PROTOCOL in report
    best = torch.load(run / "fold1" / "best.pt", weights_only=True)
    assert best["classes"] == list(SOUND_CLASSES) and best["config"]["model"] == "tiny_test_cnn"


def test_evaluate_run_reproduces_results(naa_run: dict[str, Any]) -> None:
    saved = naa_run["results"]
    out = evaluate_run(naa_run["run_dir"])
    assert out["matches_results"] is True
    for a, b in zip(out["folds"], saved["folds"], strict=True):
        assert a["test_fold"] == b["test_fold"]
        assert a["accuracy"] == b["accuracy"] and a["macro_f1"] == b["macro_f1"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["confusion_matrix"] == b["confusion_matrix"]
    assert out["summary"]["accuracy"] == saved["summary"]["accuracy"]
    one = evaluate_run(naa_run["run_dir"], fold=2)
    assert [f["test_fold"] for f in one["folds"]] == [2]
    with pytest.raises(FileNotFoundError, match="fold4"):
        evaluate_run(naa_run["run_dir"], fold=4)


def test_fold_model_directory_predicts_like_the_evaluation(naa_run: dict[str, Any]) -> None:
    """Each fold leaves its best model as a model directory; loaded, with its own front end
    applied to the test clips' waveforms, it predicts what the test evaluation wrote."""
    run: Path = naa_run["run_dir"]
    loaded = load_model(run / "fold1" / "model")
    assert loaded.classes == list(SOUND_CLASSES)
    assert loaded.metadata["selection"]["test_fold"] == 1
    assert loaded.metadata["training_config"]["model"] == "tiny_test_cnn"
    dataset = load_dataset(naa_run["config"])
    paths = {dataset[i].clip_id: dataset[i].path for i in range(len(dataset))}
    with open(run / "fold1" / "test_predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    audio = AudioConfig(sample_rate=loaded.sample_rate, duration=loaded.clip_seconds)
    waves = torch.from_numpy(np.stack([load_audio(paths[r["clip_id"]], audio) for r in rows]))
    predicted = loaded.logits(waves).argmax(1).tolist()
    assert predicted == [int(r["prediction"]) for r in rows]
    assert resolve_model_dir(run, fold=1) == run / "fold1" / "model"


def test_no_test_clip_reaches_training(naa_run: dict[str, Any], data_base: Path) -> None:
    config: TrainConfig = naa_run["config"]
    dataset = get_dataset("esc50", data_dir=data_base / "data")
    by_id = {c.clip_id: i for i, c in enumerate(dataset.clips)}
    trained: set[int] = set()
    for k in config.folds or []:
        split = fold_split(dataset, k, val_fraction=config.val_fraction, seed=config.seed)
        split.check_disjoint(dataset)
        assert all(dataset[i].fold != k for i in split.train + split.val)
        saved = json.loads((naa_run["run_dir"] / f"fold{k}" / "split.json").read_text())
        assert saved["train"] == [dataset[i].clip_id for i in split.train]
        sources = {by_id[c] for c in saved["train_images"]["sources"]}
        assert sources == set(split.train)
        assert not sources & (set(split.test) | set(split.val))
        assert saved["train_images"]["variants"] == dict.fromkeys(
            ["original", *NAA_VARIANTS], len(split.train)
        )
        trained |= set(split.train)
    # The NAA cache holds variants of the training clips and of nothing else.
    audio = AudioConfig(sample_rate=TINY_FRONT_END.sample_rate, duration=config.clip_seconds)
    expected = {
        variants_key(file_digest(dataset[i].path), NAA_VARIANTS, config.seed, TINY_FRONT_END, audio)
        for i in trained
    }
    cached = {p.stem for p in (naa_run["cache"] / "naa").rglob("*.npy")}
    assert cached == expected
    never_trained = set(range(len(dataset))) - trained
    assert never_trained  # e.g. fold 2 clips held out for validation in fold 1's run


def test_resume_finished_run_skips_folds(naa_run: dict[str, Any]) -> None:
    run: Path = naa_run["run_dir"]
    before = {k: (run / f"fold{k}" / "last.pt").stat().st_mtime_ns for k in (1, 2)}
    again = cross_validate(naa_run["config"], run, resume=True, progress=False)
    assert again["summary"] == naa_run["results"]["summary"]
    assert {k: (run / f"fold{k}" / "last.pt").stat().st_mtime_ns for k in (1, 2)} == before
    with pytest.raises(EscnetError, match="resume"):
        cross_validate(naa_run["config"], run, progress=False)
    other = TrainConfig.from_dict({**naa_run["config"].to_dict(), "lr": 0.1})
    with pytest.raises(EscnetError, match="lr"):
        cross_validate(other, run, resume=True, progress=False)


# ---------------------------------------------------------------------------------------------
# resume after SIGKILL, distributed, other modes


def _run_worker(args: list[str], log: Path, torchrun: bool = False) -> int:
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        if torchrun
        else [sys.executable]
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    # Output to a file, not a pipe: DataLoader workers of a killed process may outlive it a
    # moment and would hold a pipe open.
    with open(log, "w") as out:
        proc = subprocess.run(
            [*launcher, str(WORKER), *args], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    return proc.returncode


def _history(run: Path, fold: int) -> list[dict[str, float]]:
    rows = read_metrics_csv(run / f"fold{fold}" / "metrics.csv")
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_resume_after_sigkill_matches_uninterrupted_run(data_base: Path, tmp_path: Path) -> None:
    # Online NAA (random NAA chains in 2 DataLoader worker processes) and TAA-free training.
    config = make_config(data_base, augment="naa-online", folds=[1], epochs=3, workers=2)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config.to_dict()))
    killed = tmp_path / "killed"
    # 39 training clips / batch 8 = 5 batches per epoch: batch 7 is in the middle of epoch 2.
    code = _run_worker([str(config_path), str(killed), "--kill-after", "7"], tmp_path / "log")
    assert code == -9, (tmp_path / "log").read_text()[-3000:]
    assert not (killed / "results.json").exists()
    state = torch.load(killed / "fold1" / "last.pt", weights_only=True)
    assert state["epoch"] == 1

    resumed = cross_validate(config, killed, resume=True, progress=False)
    reference = cross_validate(config, tmp_path / "uninterrupted", progress=False)
    assert len(_history(killed, 1)) == 3
    for a, b in zip(_history(killed, 1), _history(tmp_path / "uninterrupted", 1), strict=True):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-7)
    for a, b in zip(resumed["folds"], reference["folds"], strict=True):
        assert a["accuracy"] == b["accuracy"] and a["best_epoch"] == b["best_epoch"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["confusion_matrix"] == b["confusion_matrix"]


def test_distributed_two_gloo_processes(data_base: Path, tmp_path: Path) -> None:
    config = make_config(
        data_base, augment="specaug+mixup", folds=[1], epochs=2, workers=0, lr=1e-2
    )
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config.to_dict()))
    run, counts = tmp_path / "ddp", tmp_path / "counts"
    counts.mkdir()
    code = _run_worker(
        [str(config_path), str(run), "--counts", str(counts)], tmp_path / "log", torchrun=True
    )
    assert code == 0, (tmp_path / "log").read_text()[-12000:]

    history = read_metrics_csv(run / "fold1" / "metrics.csv")
    assert [int(r["epoch"]) for r in history] == [1, 2]
    assert history[1]["val_loss"] < history[0]["val_loss"]  # it learns
    log = (tmp_path / "log").read_text()
    accs = {line.split("test accuracy")[1] for line in log.splitlines() if "test accuracy" in line}
    assert len(accs) == 1 and "rank 1 test accuracy" in log  # rank 0's result on both ranks
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in history)
    split = json.loads((run / "fold1" / "split.json").read_text())
    n_train, n_val = split["train_images"]["count"], len(split["val"])
    per_rank = [json.loads((counts / f"rank{r}.json").read_text()) for r in (0, 1)]
    for epoch, row in enumerate(history):
        local = [c[str(epoch)] for c in per_rank]
        assert local == [math.ceil(n_train / 2)] * 2  # DistributedSampler shards, pads
        assert row["train_samples"] == sum(local)  # gathered over both ranks
        assert row["val_samples"] == n_val  # strided shards, no clip twice
    results = json.loads((run / "results.json").read_text())
    assert results["complete"] and results["config"]["device"] == "cpu"
    assert results["folds"][0]["test_clips"] == 12
    assert (run / "fold1" / "best.pt").is_file() and (run / "report.md").is_file()
    assert not list(run.glob("rank*"))  # only rank 0 writes


def test_no_validation_split_keeps_last_epoch(data_base: Path, tmp_path: Path) -> None:
    config = make_config(
        data_base, augment="taa", folds=[3], epochs=2, val_fraction=0.0, max_train_batches=3
    )
    results = cross_validate(config, tmp_path / "run", progress=True)
    fold = results["folds"][0]
    assert fold["best_epoch"] == 2 and fold["val_clips"] == 0
    assert "last epoch" in fold["selection"] and "last epoch" in results["model_selection"]
    history = read_metrics_csv(tmp_path / "run" / "fold3" / "metrics.csv")
    assert all(math.isnan(r["val_acc"]) for r in history)
    assert all(r["train_samples"] == 3 * 8 for r in history)  # max_train_batches=3


def test_cnn7_smoke(data_base: Path, tmp_path: Path) -> None:
    from escnet.models import list_models

    assert "cnn7" in list_models()  # the recipe's baseline: its absence is a failure, no skip
    config = make_config(
        data_base, model="cnn7", augment="none", folds=[1], epochs=1, max_train_batches=2
    )
    results = cross_validate(config, tmp_path / "run", progress=False)
    assert results["folds"][0]["test_clips"] == 12
    assert math.isfinite(results["folds"][0]["loss"])


def test_head_lr_gives_the_output_layer_its_own_rate(data_base: Path, tmp_path: Path) -> None:
    config = make_config(
        data_base,
        augment="naa+mixup",
        folds=[2],
        epochs=1,
        lr=1e-3,
        head_lr=1e-2,
        warmup_epochs=0.0,
        max_train_batches=2,
        channels_last=False,
    )
    cross_validate(config, tmp_path / "run", progress=False)
    ckpt = torch.load(tmp_path / "run" / "fold2" / "last.pt", weights_only=False)
    body, head = ckpt["optimizer"]["param_groups"]
    assert (body["initial_lr"], head["initial_lr"]) == (1e-3, 1e-2)
    # tiny_test_cnn's head is one Linear (weight, bias); everything else is the body.
    total = len(list(create_model("tiny_test_cnn", 3).parameters()))
    assert (len(body["params"]), len(head["params"])) == (total - 2, 2)


def test_early_stopping_on_validation(data_base: Path, tmp_path: Path) -> None:
    # A learning rate so small that the model hardly changes: validation accuracy plateaus.
    config = make_config(
        data_base, augment="none", folds=[4], epochs=8, lr=1e-5, early_stopping_patience=2
    )
    fold = cross_validate(config, tmp_path / "run", progress=False)["folds"][0]
    history = read_metrics_csv(tmp_path / "run" / "fold4" / "metrics.csv")
    assert fold["stopped_early"] is True
    assert fold["epochs_run"] == len(history) == fold["best_epoch"] + 2 < 8
    best = max(history, key=lambda r: (r["val_acc"], -r["val_loss"]))
    assert int(best["epoch"]) == fold["best_epoch"]


def test_checkpoint_interval_keeps_the_best_epoch_and_the_same_results(
    naa_run: dict[str, Any], data_base: Path, tmp_path: Path
) -> None:
    """With checkpoints written only after the last epoch, the run trains and selects exactly
    as the every-epoch run does: best.pt holds the best epoch's weights, not the last ones."""
    base = naa_run["results"]
    config = make_config(data_base, folds=[1], checkpoint_interval_s=3600.0)
    results = cross_validate(config, tmp_path / "run", progress=False)
    fold, before = results["folds"][0], base["folds"][0]
    assert fold["best_epoch"] == before["best_epoch"]
    assert fold["accuracy"] == pytest.approx(before["accuracy"])
    best = torch.load(tmp_path / "run" / "fold1" / "best.pt", weights_only=False)
    last = torch.load(tmp_path / "run" / "fold1" / "last.pt", weights_only=False)
    assert best["epoch"] == fold["best_epoch"] and last["epoch"] == config.finetune.epochs
    if best["epoch"] < last["epoch"]:
        assert any(not torch.equal(best["model"][k], v) for k, v in last["model"].items())


def test_pretrained_is_on_by_default_where_the_weights_are_here(
    data_base: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from escnet.models.registry import ModelInfo
    from escnet.training.crossval import _resolve
    from escnet.training.data import load_dataset

    device = torch.device("cpu")
    here: dict[str, str | None] = {"missing": None}
    monkeypatch.setattr(ModelInfo, "missing_weights", lambda self: here["missing"])
    for model, pretrained, missing, resolved, warned in [
        ("mn04_as", None, None, True, False),  # weights here: on by default
        ("mn04_as", None, "mn04_as.pt is not here", False, True),  # absent: random, and said
        ("mn04_as", False, None, False, False),  # --no-pretrained: an explicit choice
        ("mn04_as", True, None, True, False),
        ("tiny_test_cnn", None, None, False, False),  # no pretrained weights exist at all
    ]:
        here["missing"] = missing
        config = make_config(data_base, model=model, pretrained=pretrained)
        caplog.clear()
        with caplog.at_level("WARNING", logger="escnet.training.crossval"):
            out = _resolve(config, load_dataset(config), device)
        assert out.pretrained is resolved, (model, pretrained, missing)
        assert ("starts from random weights" in caplog.text) is warned, (model, pretrained)
        if warned:
            assert "--pretrained" in caplog.text and "not here" in caplog.text


def test_one_rule_chooses_the_best_epoch_or_setting() -> None:
    from escnet.metrics.classification import better_choice

    assert better_choice(0.5, 9.0, None)  # the first is the best so far
    assert better_choice(0.6, 9.0, (0.5, 1.0))  # accuracy first
    assert better_choice(0.5, 0.9, (0.5, 1.0))  # then the lower loss
    assert not better_choice(0.5, 1.0, (0.5, 1.0))  # an exact tie keeps the earlier
    assert not better_choice(0.4, 0.1, (0.5, 1.0))
    assert not better_choice(float("nan"), float("nan"), (float("nan"), float("nan")))

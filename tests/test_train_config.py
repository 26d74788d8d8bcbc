"""Typed per-method settings: a setting the method does not read cannot be set, every setting
reaches ``config.json``, and run directories written with the flat ``config.json`` of earlier
versions still load (through the one converter, :meth:`TrainConfig.from_dict`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from escnet.cli import main
from escnet.errors import EscnetError
from escnet.training import FinetuneConfig, PartialConfig, ProbeConfig, TrainConfig
from escnet.training.config import check_resumable

#: A probe run's config.json as the version before the typed settings wrote it (flat: every
#: field of every method, the fine-tuning ones ignored).
FLAT_PROBE_RUN = {
    "amp": False, "augment": "naa", "batch_size": 32, "cache_dir": None, "channels_last": True,
    "checkpoint_interval_s": 0.0, "clip_seconds": None, "data_dir": None, "dataset": "esc50",
    "device": "cpu", "early_stopping_patience": None, "epochs": 60, "folds": [1, 2, 3, 4, 5],
    "head_lr": None, "label_smoothing": 0.0, "linear_probe": False, "lr": 0.001,
    "max_train_batches": None, "method": "probe", "model": "mn04_as", "partial_from": 12,
    "pretrained": True, "probe_blocks": [12, 16], "probe_embedding": True,
    "probe_head": "linear", "probe_train_views": ["shift"], "protocol": "official-folds",
    "root": None, "seed": 0, "tta_shifts": [0, 8, 16, 24], "val_fraction": 0.1,
    "warmup_epochs": 3.0, "weight_decay": 0.01, "workers": 2,
    "environment": {"escnet": "0.1.0", "torch": "2.14.1+cu130", "world_size": 1},
}  # fmt: skip


def test_a_flat_config_json_of_the_earlier_version_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(FLAT_PROBE_RUN))
    config = TrainConfig.from_json(path)
    assert config.method == "probe" and config.folds == [1, 2, 3, 4, 5]
    assert config.settings == ProbeConfig(
        blocks=[12, 16], train_views=["shift"], tta_shifts=[0, 8, 16, 24]
    )
    saved = config.to_dict()
    assert "epochs" not in saved and "probe_blocks" not in saved  # no setting it ignores
    assert saved["probe"]["mlp_weight_decays"] == [1e-2, 1e-1]  # its own, written out
    assert TrainConfig.from_dict(saved) == config  # the new format reads back the same
    check_resumable(FLAT_PROBE_RUN, config, path)  # an old run resumes under the new version
    with pytest.raises(EscnetError, match="cannot resume"):
        check_resumable({**FLAT_PROBE_RUN, "probe_head": "mlp"}, config, path)


def test_flat_fine_tuning_and_partial_configs_convert() -> None:
    flat = {k: v for k, v in FLAT_PROBE_RUN.items() if k != "environment"}
    finetune = TrainConfig.from_dict(
        {**flat, "method": "finetune", "model": "cnn7", "linear_probe": True, "tta_shifts": None,
         "probe_train_views": None, "environment": {}},
    )  # fmt: skip
    assert finetune.settings == FinetuneConfig(amp=False, lp_ft=True)
    partial = TrainConfig.from_dict(
        {**flat, "method": "partial", "partial_from": 13, "tta_shifts": None,
         "probe_train_views": None, "environment": {}},
    )  # fmt: skip
    assert partial.settings == PartialConfig(from_block=13)


def test_a_setting_the_method_does_not_read_is_refused() -> None:
    with pytest.raises(ValueError, match=r"method 'probe' does not read epochs \(--epochs\)"):
        TrainConfig.from_dict({"method": "probe", "model": "mn04_as", "epochs": 3})
    with pytest.raises(ValueError, match="does not read partial_from"):
        TrainConfig.from_dict({"method": "finetune", "partial_from": 3})
    with pytest.raises(ValueError, match="unknown ProbeConfig field"):
        TrainConfig.from_dict({"method": "probe", "model": "mn04_as", "probe": {"lr": 1.0}})
    with pytest.raises(ValueError, match="head 'linear' does not read mlp_epochs"):
        ProbeConfig(mlp_epochs=3)
    assert ProbeConfig(head="mlp", mlp_epochs=3).mlp_epochs == 3
    with pytest.raises(ValueError, match="settings must be"):
        TrainConfig(settings={"epochs": 3})  # type: ignore[arg-type]


def test_cli_refuses_an_option_the_method_ignores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", "--method", "probe", "--model", "mn04_as", "--epochs", "3",
                 "--run-dir", str(tmp_path / "r")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--epochs" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()

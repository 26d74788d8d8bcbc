"""Recipes as values and ``escnet fit``: every member cross-validated, an ensemble weighted on
validation, a refit on every clip, one report, resumable -- on synthetic tones with a stand-in
for the AudioSet weights (as tests/test_probe.py)."""

# ruff: noqa: F811
from __future__ import annotations

import json
import shutil
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest

import escnet
from escnet.cli import main
from escnet.data.datasets import get_dataset
from escnet.recipes import Recipe, get_recipe, list_recipes
from escnet.training.ensemble import ensemble_runs

sys.path.insert(0, str(Path(__file__).parent))
# The probe tests' fixtures: a random stand-in for the AudioSet weights, and three classes of
# 1-s tones as ESCNET_DATA_DIR's esc50.
# (pytest passes them by name: the parameters below "redefine" them on purpose.)
from test_probe import stand_in_weights, tones  # noqa: E402, F401


def test_recipes_are_values_with_their_members_and_cost() -> None:
    assert list_recipes() == ["main", "one-pass"]
    main_recipe = get_recipe("main")
    assert get_recipe(Recipe.MAIN) is main_recipe
    assert [m.name for m in main_recipe.members] == [
        "b12-16-shift-tta",
        "b10-16-shift-tta",
        "b12-16-naa-mlp",
        "all-shift-tta",
    ]
    # Members of one frozen body read one pass per test-time view: 4 for the main recipe.
    assert main_recipe.body_passes_per_clip == 4
    assert get_recipe("one-pass").body_passes_per_clip == 1
    assert get_recipe("one-pass").members[0].settings.get("tta_shifts") is None
    with pytest.raises(Exception, match="unknown recipe 'best'; choose one of main, one-pass"):
        get_recipe("best")


def test_the_main_recipe_settings_are_the_main_jobs() -> None:
    # The settings of scripts/main.sh's four `escnet train` calls before it became `escnet fit`.
    members = {m.name: dict(m.settings) for m in Recipe.MAIN.value.members}
    common = {"method": "probe", "model": "mn04_as", "augment": "naa"}
    tta = {"tta_shifts": [0, 8, 16, 24], "probe_train_views": ["shift"]}
    assert members == {
        "b12-16-shift-tta": {**common, **tta, "probe_blocks": [12, 16]},
        "b10-16-shift-tta": {**common, **tta, "probe_blocks": [10, 12, 14, 16]},
        "b12-16-naa-mlp": {**common, "probe_blocks": [12, 16], "probe_head": "mlp"},
        "all-shift-tta": {**common, **tta, "probe_blocks": list(range(17))},
    }


def test_fit_runs_the_main_recipe_resumes_and_predict_uses_it(
    tmp_path: Path, tones: Path, stand_in_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fit"
    lines: list[str] = []
    summary = escnet.fit(
        "esc50", "main", out, test_folds=[1, 2], workers=1, progress=False, report=lines.append
    )
    # progress: one line per member and fold, then the ensemble, the refit and the figure
    assert "main: member 3/4 b12-16-naa-mlp: fold 2: accuracy" in "\n".join(lines)
    assert sum(": fold " in line for line in lines) == 8
    assert [m["name"] for m in summary["members"]] == [m.name for m in Recipe.MAIN.value.members]
    assert sorted(summary["folds"]) == [1, 2] and summary["body_passes_per_clip"] == 4
    results = json.loads((out / "recipe" / "results.json").read_text())
    assert summary["accuracy"]["mean"] == results["summary"]["accuracy"]["mean"]
    assert "| **main** |" in (out / "report.md").read_text()
    assert json.loads((out / "fit.json").read_text()) == json.loads(json.dumps(summary))

    # The MLP member: its weight decay chosen per fold; the refit takes the folds' median.
    mlp = out / "b12-16-naa-mlp"
    assert json.loads((mlp / "config.json").read_text())["probe"]["head"] == "mlp"
    for member, key in (("b12-16-naa-mlp", "weight_decay"), ("b12-16-shift-tta", "l2")):
        folds = [
            json.loads((out / member / f"fold{k}" / "probe.json").read_text())["chosen"][key]
            for k in (1, 2)
        ]
        refit = json.loads((out / member / "final" / "refit.json").read_text())
        assert refit["choice"]["folds"] == folds
        assert refit["choice"][key] == statistics.median(folds)

    # The final model is what predict and escnet.load use for OUT.
    clip = get_dataset("esc50")[0].path
    assert escnet.load(out).spec.path == out / "final"
    capsys.readouterr()
    assert main(["predict", str(out), str(clip)]) == 0
    assert str(out / "final") in capsys.readouterr().err

    # A second call trains nothing: every fold is finished earlier.
    again: list[str] = []
    escnet.fit("esc50", "main", out, test_folds=[1, 2], progress=False, report=again.append)
    folds = [line for line in again if ": fold " in line]
    assert len(folds) == 8 and all("(finished earlier)" in line for line in folds)
    assert not any("refit" in line or "ensemble of" in line for line in again)


def test_ensemble_weights_are_chosen_on_validation_alone(
    tmp_path: Path, tones: Path, stand_in_weights: Path
) -> None:
    out = tmp_path / "fit"
    escnet.fit("esc50", "one-pass", out, test_folds=[1], progress=False, report=lambda _: None)
    member = out / "b12-16-shift"
    # A second member: the first, made wrong on its validation clips only.
    other = tmp_path / "other"
    shutil.copytree(member, other)
    logits = other / "fold1" / "logits.npz"
    with np.load(logits) as z:
        arrays = dict(z)
    arrays["val_logits"] = 10.0 * np.eye(3, dtype=np.float32)[(arrays["val_labels"] + 1) % 3]
    np.savez(logits, **arrays)
    first = ensemble_runs([other, member], tmp_path / "a")
    weights = first["ensemble"]["folds"][0]["weights"]
    assert weights[1] > 0.5  # the validation clips decide
    # Scrambling its test logits changes nothing the weights are chosen from.
    arrays["test_logits"] = np.random.default_rng(0).permutation(arrays["test_logits"])
    np.savez(logits, **arrays)
    second = ensemble_runs([other, member], tmp_path / "b")
    assert second["ensemble"]["folds"][0]["weights"] == weights


def test_fit_from_the_command_line_on_a_folder_keeps_recordings_whole(
    tmp_path: Path, stand_in_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_train_dataset import GROUP_PATTERN, sides_of_groups, write_fragmented_folder

    root = write_fragmented_folder(tmp_path / "sounds", recordings=5, fragments=2)
    out = tmp_path / "fit"
    argv = ["fit", "--recipe", "one-pass", "--dataset", "folder", "--root", str(root)]
    argv += ["--group-pattern", GROUP_PATTERN, "--test-folds", "1,2", "--out", str(out), "-q"]
    assert main(argv) == 0
    assert "one-pass: accuracy" in capsys.readouterr().out
    sides = sides_of_groups(out / "b12-16-shift")
    assert sides and all(len(s) == 1 for s in sides.values())
    assert (out / "final" / "model.json").is_file()
    # Never beside the data: an output inside the data set is refused in one line.
    assert main([*argv[:-3], "--out", str(root / "runs")]) == 2
    assert "inside the data set's directory" in capsys.readouterr().err
    assert not (root / "runs").exists()


def test_the_recipes_measured_figures_are_the_tables_that_measured_them() -> None:
    """The figures a recipe carries are those benchmarks/ablation_probe.py or `escnet fit`
    wrote, not typed."""
    repo = Path(__file__).resolve().parents[1]
    for recipe in Recipe:
        for measured in recipe.value.measured.values():
            path, _, rest = measured.source.partition(", row ")
            row = rest.split(" ")[0]
            table = (repo / path).read_text(encoding="utf-8")
            assert f"Data: {measured.data}" in table
            line = next(
                x for x in table.splitlines() if x.replace("**", "").startswith(f"| {row} |")
            )
            cells = [c.strip().strip("*") for c in line.split("|")]
            n = len(measured.folds)
            if path.startswith("docs/ablation_"):  # row | what | val | mean ± std | folds | ...
                folds, summary = [float(v) / 100 for v in cells[5].split(", ")], cells[4]
            else:  # a fit report: run | fold 1 | ... | fold n | mean ± std
                folds, summary = [float(v) / 100 for v in cells[2 : 2 + n]], cells[2 + n]
            assert list(measured.folds) == pytest.approx(folds, abs=5e-5)
            assert f"{100 * measured.mean:.2f} ± {100 * measured.std:.2f}" in summary

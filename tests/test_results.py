"""Aggregation (escnet.results.rows): tables equal the runs' results.json, leaky runs are labelled.

Run directories are written here as cross_validate writes them (results.json through
escnet.metrics.report.build_results, fold{k}/metrics.csv), with made-up fold accuracies.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pytest

from escnet.cli import main
from escnet.errors import EscnetError
from escnet.metrics.report import build_results
from escnet.results.aggregate import aggregate
from escnet.results.rows import CSV_COLUMNS, find_runs, read_run

CLASSES = ["dog", "rain"]


def write_run(
    root: Path,
    name: str,
    *,
    dataset: str = "esc10",
    model: str = "cnn7",
    augment: str = "naa",
    protocol: str | None = None,
    accuracies: tuple[float, ...] = (0.8, 0.85, 0.9),
    seconds: float | None = None,
    epochs: int = 4,
    **config_fields: Any,
) -> Path:
    run = root / name
    run.mkdir(parents=True)
    config = {"dataset": dataset, "model": model, "augment": augment, "val_fraction": 0.1}
    config |= config_fields
    if protocol:
        config["protocol"] = protocol
    folds = []
    for k, acc in enumerate(accuracies, start=1):
        folds.append(
            {
                "test_fold": k,
                "accuracy": acc,
                "macro_f1": acc - 0.01,
                "loss": 1.0 - acc,
                "per_class_accuracy": [acc, acc],
                "confusion_matrix": [[4, 1], [1, 4]],
                "best_epoch": 2,
            }
        )
        (run / f"fold{k}").mkdir()
        with open(run / f"fold{k}" / "metrics.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"])
            for e in range(1, epochs + 1):
                w.writerow([e, 1 / e, acc * e / epochs, 1.2 / e, acc * e / epochs - 0.05, 2.5])
    results = build_results(config, folds, CLASSES, planned_folds=[1, 2, 3])
    (run / "results.json").write_text(json.dumps(results))
    if seconds is not None:
        cell = {"seconds": seconds, "commit": "abc123def4567890"}
        (run / "cell.json").write_text(json.dumps(cell))
    return run


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    write_run(root, "a", augment="taa", accuracies=(0.70, 0.74, 0.78), seconds=100.0)
    write_run(root, "b", augment="naa", accuracies=(0.80, 0.86, 0.83), seconds=120.0)
    write_run(root, "c", model="cnn9", augment="naa", accuracies=(0.75, 0.80, 0.79))
    write_run(root, "d", augment="naa", protocol="random-split", accuracies=(0.95, 0.97, 0.99))
    write_run(root, "e", dataset="esc50", model="mn04_as", augment="naa", accuracies=(0.9, 0.92))
    return root


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_table_numbers_equal_mean_and_std_of_results_json(runs: Path, tmp_path: Path) -> None:
    out = aggregate([runs], tmp_path / "results")
    rows = _csv(out.out / "results.csv")
    assert len(rows) == 5 and list(rows[0]) == list(CSV_COLUMNS)
    for row in rows:
        results = json.loads((Path(row["run_dir"]) / "results.json").read_text())
        accs = np.array([f["accuracy"] for f in results["folds"]])
        losses = np.array([f["loss"] for f in results["folds"]])
        assert float(row["accuracy_mean"]) == pytest.approx(accs.mean(), abs=1e-12)
        assert float(row["accuracy_std"]) == pytest.approx(accs.std(ddof=1), abs=1e-12)
        assert float(row["loss_mean"]) == pytest.approx(losses.mean(), abs=1e-12)
        assert float(row["loss_std"]) == pytest.approx(losses.std(ddof=1), abs=1e-12)
        assert [float(a) for a in row["fold_accuracies"].split()] == accs.tolist()
    md = (out.out / "results.md").read_text()
    # The Markdown shows the same figures in percent, e.g. naa cnn7: 83.00 ± 3.00.
    assert "83.00 ± 3.00" in md and "74.00 ± 4.00" in md


def test_leaky_runs_are_labelled_in_table_plot_and_file_names(runs: Path, tmp_path: Path) -> None:
    out = aggregate([runs], tmp_path / "results")
    rows = {(r["model"], r["augment"], r["protocol"]): r for r in _csv(out.out / "results.csv")}
    leaky = rows[("cnn7", "naa", "random-split (leaky)")]
    assert leaky["leaky"] == "True"
    assert rows[("cnn7", "naa", "official-folds")]["leaky"] == "False"
    md = (out.out / "results.md").read_text()
    assert "random-split (leaky)" in md
    # Leakage: 97.00 (leaky) - 83.00 (official) = +14.00 points, same model, policy and data.
    assert "| cnn7 | naa | random-split (leaky) | 83.00 ± 3.00 | 97.00 ± 2.00 | +14.00 |" in md
    names = [p.name for p in out.files]
    assert "accuracy-esc10-leakage-leaky.png" in names
    leaky_pngs = [n for n in names if n.endswith(".png") and "leaky" in n]
    assert "curves-esc10-naa-random-split-leaky.png" in leaky_pngs
    # Each figure's alt text says what it shows, a leaky one that it is leaky.
    assert (
        "![ESC-10, naa, random-split (leaky): training and validation accuracy per epoch]"
        "(curves-esc10-naa-random-split-leaky.png)"
    ) in md
    # Every figure showing a leaky run says so in its file name.
    for png in names:
        if png.endswith(".png") and "random" in png:
            assert "leaky" in png


def test_figures_are_readable_pngs(runs: Path, tmp_path: Path) -> None:
    out = aggregate([runs], tmp_path / "results")
    pngs = [p for p in out.files if p.suffix == ".png"]
    assert {p.name for p in pngs} >= {
        "accuracy-esc10.png",
        "accuracy-esc50.png",
        "curves-esc10-naa.png",
        "curves-esc10-taa.png",
    }
    for p in pngs:
        image = matplotlib.image.imread(p)
        assert image.shape[0] > 200 and image.shape[1] > 300
        assert image[..., :3].std() > 0.05  # not blank
    md = (out.out / "results.md").read_text()
    for p in pngs:
        assert f"]({p.name})" in md
    # Alt text says what a figure shows, for a reader whose Markdown viewer shows no images.
    assert "![ESC-10: test accuracy per model and policy" in md
    assert "![ESC-10, naa: training and validation accuracy per epoch](curves-esc10-naa.png)" in md


def test_seconds_commit_and_paper_claims(runs: Path, tmp_path: Path) -> None:
    row = read_run(runs / "a")
    assert row.seconds == 100.0 and row.seconds_source == "wall" and row.commit.startswith("abc")
    row = read_run(runs / "c")  # no cell.json: the epochs' seconds, labelled so
    assert row.seconds == pytest.approx(3 * 4 * 2.5) and row.seconds_source == "epochs"
    # A resumed cell's wall time covers its last attempt only: the epochs of all attempts count.
    cell = json.loads((runs / "a" / "cell.json").read_text())
    (runs / "a" / "cell.json").write_text(json.dumps({**cell, "resumed": True}))
    row = read_run(runs / "a")
    assert row.seconds == pytest.approx(3 * 4 * 2.5) and row.seconds_source == "epochs"
    assert row.commit.startswith("abc")  # the commit still comes from cell.json
    claims = tmp_path / "claims"
    write_run(claims, "r152", model="resnet152", augment="naa")
    write_run(claims, "d161", dataset="esc50", model="densenet161", augment="taa")
    assert read_run(claims / "r152").paper_accuracy == pytest.approx(0.9904)
    # The paper's ESC-50 figure is DenseNet-161 *with NAA*: not the claim of a TAA run.
    assert read_run(claims / "d161").paper_accuracy is None
    md = aggregate([claims], tmp_path / "out").out / "results.md"
    assert "The paper claims 99.04 % with resnet152" in md.read_text()


def test_find_runs_and_errors(runs: Path, tmp_path: Path) -> None:
    assert [p.name for p in find_runs([runs])] == ["a", "b", "c", "d", "e"]
    assert find_runs([runs / "b", runs])[0].name == "b"
    with pytest.raises(EscnetError, match="no such run directory"):
        find_runs([tmp_path / "absent"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(EscnetError, match="holds no results.json"):
        find_runs([tmp_path / "empty"])


def test_cli_results(runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["results", str(runs), "--out", str(tmp_path / "res")]) == 0
    text = capsys.readouterr().out
    assert "5 cell(s) aggregated" in text and "results.csv" in text
    assert main(["results", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert "no such run directory" in err and len(err.strip().splitlines()) == 1
    assert math.isfinite(float(_csv(tmp_path / "res" / "results.csv")[0]["accuracy_mean"]))


def test_policy_columns_follow_the_policies_order_not_the_first_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "runs"
    write_run(root, "a", model="cnn7", augment="naa")  # cnn7 sorts first and has naa only
    write_run(root, "b", model="mn04_as", augment="none")
    write_run(root, "c", model="mn04_as", augment="taa")
    md = (aggregate([root], tmp_path / "results").out / "results.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| test accuracy"))
    assert [c.strip() for c in header.split("|")[2:5]] == ["none", "taa", "naa"]
    # The bar chart's series too, and the paper's claim is a legend entry, not text on the bars.
    import escnet.results.figures as figures

    seen: list[list[str]] = []
    real_save = figures.save_figure

    def spy(fig: Any, path: Path) -> Path:
        seen.append(fig.axes[0].get_legend_handles_labels()[1])
        return real_save(fig, path)

    monkeypatch.setattr(figures, "save_figure", spy)
    aggregate([root], tmp_path / "again")
    assert seen[0][-3:] == ["none", "taa", "naa"] and "paper's claim" in seen[0][0]


def test_the_leakage_chart_keeps_a_models_groups_together_in_policy_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "runs"
    # Rows sort by protocol first, so by first appearance the groups would read
    # cnn7/naa, mn04_as/naa, cnn7/taa: one model split around another.
    write_run(root, "a", model="cnn7", augment="naa", protocol="augment-then-split")
    write_run(root, "b", model="mn04_as", augment="naa", protocol="augment-then-split")
    write_run(root, "c", model="cnn7", augment="taa", protocol="random-split")
    import escnet.results.figures as figures

    ticks: list[list[str]] = []
    real_save = figures.save_figure

    def spy(fig: Any, path: Path) -> Path:
        if "leakage" in path.name:
            ticks.append([t.get_text() for t in fig.axes[0].get_xticklabels()])
        return real_save(fig, path)

    monkeypatch.setattr(figures, "save_figure", spy)
    aggregate([root], tmp_path / "results")
    assert ticks == [["cnn7\ntaa", "cnn7\nnaa", "mn04_as\nnaa"]]


def test_a_partial_run_says_so_in_every_table_and_on_its_bar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "runs"
    write_run(root, "a", augment="naa", accuracies=(0.80, 0.86, 0.83))  # 3 of its 3 folds
    write_run(root, "b", augment="taa", accuracies=(0.70, 0.74))  # 2 of 3: still running
    write_run(root, "c", augment="taa", protocol="random-split", accuracies=(0.9,))
    import escnet.results.figures as figures

    notes: list[str] = []
    real_save = figures.save_figure

    def spy(fig: Any, path: Path) -> Path:
        notes.extend(t.get_text() for t in fig.axes[0].texts)
        return real_save(fig, path)

    monkeypatch.setattr(figures, "save_figure", spy)
    out = aggregate([root], tmp_path / "results")
    rows = {r.augment + r.protocol: r for r in out.rows}
    assert rows["naaofficial-folds"].progress == ""
    assert rows["taaofficial-folds"].progress == "incomplete: 2 of 3 folds"
    md = (out.out / "results.md").read_text()
    paper_row = next(line for line in md.splitlines() if line.startswith("| cnn7 | 72.00"))
    assert "72.00 ± 2.83 (incomplete: 2 of 3 folds)" in paper_row
    assert "| 1,2 (incomplete: 2 of 3 folds) |" in md  # the detail table
    # The leakage table marks both sides: a partial honest run and a partial leaky one.
    assert (
        "| cnn7 | taa | random-split (leaky) | 72.00 ± 2.83 (incomplete: 2 of 3 folds) "
        "| 90.00 (incomplete: 1 of 3 folds) | +18.00 |"
    ) in md
    assert "2/3 folds" in notes and "1/3 folds" in notes  # on the bars, official and leakage


def test_complete_only_leaves_partial_runs_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "runs"
    write_run(root, "a", augment="naa", accuracies=(0.80, 0.86, 0.83))
    write_run(root, "b", augment="taa", accuracies=(0.70, 0.74))  # 2 of 3 folds
    out = aggregate([root], tmp_path / "results", complete_only=True)
    assert [r.augment for r in out.rows] == ["naa"] and out.left_out == 1
    assert "72.00" not in (out.out / "results.md").read_text()
    assert main(["results", str(root), "--out", str(tmp_path / "r2"), "--complete-only"]) == 0
    assert "1 cell(s) aggregated" in capsys.readouterr().out
    assert main(["results", str(root / "b"), "--out", str(tmp_path / "r3"), "--complete-only"]) == 2
    assert "none of the 1 run(s) has finished" in capsys.readouterr().err


def test_random_init_runs_are_labelled_and_kept_from_the_paper_claim(tmp_path: Path) -> None:
    """resnet152 trained from random weights is not the paper's ImageNet-fine-tuned resnet152:
    its own row, labelled, with no claim beside it; the machine it ran on is in the table."""
    root = tmp_path / "runs"
    gpu = {"device_type": "cuda", "device_name": "NVIDIA H100 80GB HBM3"}
    write_run(root, "scratch", model="resnet152", pretrained=False, environment=gpu)
    write_run(root, "tuned", model="resnet152", pretrained=True, accuracies=(0.9, 0.9, 0.9))
    write_run(root, "cnn", model="cnn7", pretrained=False, environment={"device_type": "cpu"})
    scratch, tuned, cnn = (read_run(root / n) for n in ("scratch", "tuned", "cnn"))
    assert scratch.random_init and scratch.name == "resnet152 (random init)"
    assert scratch.paper_accuracy is None and tuned.paper_accuracy == pytest.approx(0.9904)
    assert scratch.machine == "NVIDIA H100 80GB HBM3" and cnn.machine == "CPU"
    # A real run's results.json carries the settings; the machine is in config.json alone.
    results = json.loads((root / "cnn" / "results.json").read_text())
    results["config"].pop("environment")
    (root / "cnn" / "results.json").write_text(json.dumps(results))
    (root / "cnn" / "config.json").write_text(json.dumps({"environment": {"device_type": "cpu"}}))
    assert read_run(root / "cnn").machine == "CPU"  # recorded before runs named their CPU
    xeon = {"device_type": "cpu", "cpu": "Intel Xeon Processor, 2 cores"}
    (root / "cnn" / "config.json").write_text(json.dumps({"environment": xeon}))
    assert read_run(root / "cnn").machine == "CPU (Intel Xeon Processor, 2 cores)"
    assert not cnn.random_init and cnn.name == "cnn7"  # no pretrained weights to skip
    result = aggregate([root], tmp_path / "out")
    md = (result.out / "results.md").read_text()
    assert "| resnet152 (random init) | 85.00 ± 5.00 |" in md  # its own row, no claim
    assert "| resnet152 | 90.00 ± 0.00 | 99.04 |" in md
    assert "NVIDIA H100 80GB HBM3" in md and "**(random init)**" in md
    assert "| CPU (Intel Xeon Processor, 2 cores) |" in md
    by_model = {r["run_dir"]: r for r in _csv(result.out / "results.csv")}
    assert by_model[str(root / "scratch")]["random_init"] == "True"
    assert by_model[str(root / "scratch")]["paper_accuracy"] == ""


def test_policies_against_taa_pair_up_fold_by_fold(runs: Path, tmp_path: Path) -> None:
    """cnn7: TAA 70/74/78, NAA 80/86/83 on folds 1-3: +10, +12, +5 points, NAA wins all three;
    cnn9 has no TAA run and the leaky run is no pair, so neither appears."""
    md = (aggregate([runs], tmp_path / "out").out / "results.md").read_text()
    table = md.split("### Against TAA")[1].split("###")[0]
    assert (
        "| cnn7 | naa | 74.00 ± 4.00 | 83.00 ± 3.00 | +9.00 | 3 of 3 | +10.00 +12.00 +5.00 |"
        in (table)
    )
    assert "cnn9" not in table and "leaky" not in table
    tie = tmp_path / "tie"
    write_run(tie, "t", augment="taa", accuracies=(0.7, 0.8, 0.9))
    write_run(tie, "n", augment="none", accuracies=(0.7, 0.9, 0.8))
    md = (aggregate([tie], tmp_path / "tie-out").out / "results.md").read_text()
    assert "| +0.00 | 1 of 3 (1 tied) | +0.00 +10.00 -10.00 |" in md


def test_policies_against_no_augmentation_pair_up_too(tmp_path: Path) -> None:
    """The same pairing with ``none`` as the baseline: TAA and NAA each against it, and none
    against itself never."""
    root = tmp_path / "runs"
    write_run(root, "n", augment="none", accuracies=(0.8, 0.9, 0.85))
    write_run(root, "t", augment="taa", accuracies=(0.7, 0.8, 0.9))
    write_run(root, "a", augment="naa", accuracies=(0.8, 0.85, 0.9))
    md = (aggregate([root], tmp_path / "out").out / "results.md").read_text()
    table = md.split("### Against no augmentation")[1].split("###")[0]
    rows = [line for line in table.splitlines() if line.startswith("| cnn7")]
    assert rows == [
        "| cnn7 | taa | 85.00 ± 5.00 | 80.00 ± 10.00 | -5.00 | 1 of 3 | -10.00 -10.00 +5.00 |",
        "| cnn7 | naa | 85.00 ± 5.00 | 85.00 ± 5.00 | +0.00 | 1 of 3 (1 tied) "
        "| +0.00 -5.00 +5.00 |",
    ]
    assert "| none (%) |" in table


def test_an_earlier_results_csv_is_carried_forward(runs: Path, tmp_path: Path) -> None:
    """The committed results/ outlives the run directories: aggregating its results.csv alone
    gives the same tables and data, and the curves come back from curves.csv."""
    first = aggregate([runs], tmp_path / "first").out
    again = aggregate([first / "results.csv"], tmp_path / "again").out
    for name in ("results.csv", "curves.csv", "results.md"):
        assert (again / name).read_text() == (first / name).read_text(), name
    curves = _csv(first / "curves.csv")
    assert {(r["run_dir"], r["test_fold"]) for r in curves} == {
        (str(runs / n), str(k)) for n in "abcd" for k in (1, 2, 3)
    } | {(str(runs / "e"), "1"), (str(runs / "e"), "2")}
    assert (again / "curves-esc10-naa.png").is_file()


def test_a_run_directory_replaces_the_carried_row_of_its_cell(runs: Path, tmp_path: Path) -> None:
    first = aggregate([runs], tmp_path / "first").out
    rerun = write_run(tmp_path / "new", "b2", augment="naa", accuracies=(0.5, 0.6, 0.7))
    rows = aggregate([first / "results.csv", rerun], tmp_path / "second").rows
    naa = [r for r in rows if (r.model, r.augment, r.protocol) == ("cnn7", "naa", "official-folds")]
    assert len(rows) == 5 and len(naa) == 1
    assert naa[0].run_dir == rerun and naa[0].accuracy[0] == pytest.approx(0.6)


def test_a_figure_whose_curves_were_not_carried_is_kept(runs: Path, tmp_path: Path) -> None:
    out = aggregate([runs], tmp_path / "res").out
    (out / "curves.csv").unlink()  # an aggregation from before curves.csv existed
    png = out / "curves-esc10-naa.png"
    png.write_bytes(b"drawn from the lost run directories")
    again = aggregate([out / "results.csv"], out)
    assert png.read_bytes() == b"drawn from the lost run directories"
    assert png in again.kept and png not in again.files  # reported as kept, not as written
    assert "(curves-esc10-naa.png)" in (out / "results.md").read_text()
    fresh = aggregate([out / "results.csv"], tmp_path / "fresh").out
    assert not list(fresh.glob("curves-*.png"))
    assert "curves-" not in (fresh / "results.md").read_text()


def test_a_csv_that_is_not_an_aggregation_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "meta.csv"
    bad.write_text("filename,fold,target\na.wav,1,0\n")
    with pytest.raises(EscnetError, match="not a results.csv written by escnet results"):
        aggregate([bad], tmp_path / "out")
    assert main(["results", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "meta.csv" in err and len(err.strip().splitlines()) == 1
    assert main(["results", str(tmp_path / "absent.csv")]) == 2
    assert "absent.csv" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("reported", "short"),
    [
        ("Intel(R) Xeon(R) Processor", "Intel Xeon Processor"),
        ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", "Intel Core i7-8700"),
        ("AMD EPYC 7B13 64-Core Processor", "AMD EPYC 7B13 64-Core Processor"),
    ],
)
def test_a_run_names_its_cpu_briefly(
    reported: str, short: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from escnet import machine

    monkeypatch.setattr(machine, "cpu_model", lambda: reported)
    monkeypatch.setattr(machine, "usable_cores", lambda: 2)
    assert machine.describe_cpu() == f"{short}, 2 cores"


def test_the_data_copy_is_a_column_and_older_csvs_without_it_still_read(
    runs: Path, tmp_path: Path
) -> None:
    results = json.loads((runs / "a" / "results.json").read_text())
    results["data"] = {
        "dataset": "esc10",
        "copy": "data/esc50",
        "audio": "ogg/opus 48000 Hz",
        "metadata_sha256": "0123456789abcdef",
    }
    (runs / "a" / "results.json").write_text(json.dumps(results))
    out = aggregate([runs], tmp_path / "out").out
    rows = {Path(r["run_dir"]).name: r for r in _csv(out / "results.csv")}
    assert rows["a"]["data"] == "data/esc50: ogg/opus 48000 Hz, metadata 0123456789abcdef"
    assert rows["b"]["data"] == ""  # not recorded: no guess
    assert "| data |" in (out / "results.md").read_text()
    assert "data/esc50: ogg/opus 48000 Hz" in (out / "results.md").read_text()
    # a results.csv written before the column existed is still carried
    table = _csv(out / "results.csv")
    old = tmp_path / "old" / "results.csv"
    old.parent.mkdir()
    with open(old, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[c for c in table[0] if c != "data"])
        writer.writeheader()
        writer.writerows({k: v for k, v in r.items() if k != "data"} for r in table)
    again = aggregate([old], tmp_path / "again").out
    assert {r["data"] for r in _csv(again / "results.csv")} == {""}

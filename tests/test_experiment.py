"""Experiment grids (escnet.experiment.grid): parsing, budget, dry-run estimate, kill and resume.

The runs use ``tiny_test_cnn`` (tests/_ddp_worker.py) on the three-sound synthetic data set, so
a cell (two folds, a few epochs) takes seconds on a CPU.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import escnet.experiment.grid as experiment
from escnet.cli import main
from escnet.experiment.grid import cell_name, load_grid, run_grid
from escnet.experiment.plan import format_plan, plan_grid
from escnet.experiment.throughput import RUN_SAMPLES_PER_S, estimate_cell_seconds
from escnet.results.aggregate import aggregate

sys.path.insert(0, str(Path(__file__).parent))
from _ddp_worker import write_sound_classes  # noqa: E402  (also registers tiny_test_cnn)

TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"


def write_grid(path: Path, body: str, **grid: Any) -> Path:
    head = "".join(f"{k} = {json.dumps(v)}\n" for k, v in grid.items())
    path.write_text(f"[grid]\n{head}\n" + textwrap.dedent(body))
    return path


PAPERISH = """
    [defaults]
    folds = [1, 2, 3, 4, 5]
    val_fraction = 0.1

    [models.cnn7]
    epochs = 84
    warmup_epochs = 7
    early_stopping_patience = 10

    [[cells]]
    datasets = ["esc10"]
    models = ["cnn7"]
    augment = ["taa", "naa"]

    [[cells]]
    datasets = ["esc50"]
    models = ["cnn7", "vgg16"]
    augment = ["none"]
    epochs = 5
"""


def test_grid_cells_names_and_budget(tmp_path: Path) -> None:
    grid = load_grid(write_grid(tmp_path / "g.toml", PAPERISH, budget="equal-images", out="r"))
    names = [c.name for c in grid.cells]
    assert names == [
        "esc10-cnn7-taa-official-folds",
        "esc10-cnn7-naa-official-folds",
        "esc50-cnn7-none-official-folds",
        "esc50-vgg16-none-official-folds",
    ]
    taa, naa, none, vgg = grid.cells
    assert taa.run_dir == Path("r") / taa.name
    # Equal images seen: NAA's 7x training set gets a seventh of the epochs.
    assert (taa.config["epochs"], naa.config["epochs"]) == (84, 12)
    assert naa.config["warmup_epochs"] == pytest.approx(1.0)
    assert naa.config["early_stopping_patience"] == 2  # ceil(10 / 7)
    assert (taa.expansion, naa.expansion) == (1, 7)
    assert none.config["epochs"] == 5  # a block's own fields override the model's
    assert vgg.config["folds"] == [1, 2, 3, 4, 5] and "lr" not in vgg.config
    same = load_grid(write_grid(tmp_path / "e.toml", PAPERISH, budget="equal-epochs"))
    assert [c.config["epochs"] for c in same.cells[:2]] == [84, 84]
    assert same.out == Path("runs/e")  # default run root: runs/<name>
    assert cell_name("esc10", "cnn7", "naa", "random-split") == "esc10-cnn7-naa-random-split-leaky"


def test_a_cell_is_complete_for_the_folds_the_grid_asks(tmp_path: Path) -> None:
    grid = load_grid(write_grid(tmp_path / "g.toml", PAPERISH, out=str(tmp_path / "r")))
    cell = grid.cells[0]
    assert not cell.is_complete()
    cell.run_dir.mkdir(parents=True)
    done = {"complete": True, "planned_folds": [1, 2, 3, 4, 5]}
    (cell.run_dir / "results.json").write_text(json.dumps(done))
    assert cell.is_complete()
    # The grid now asks for folds the run did not plan: not complete, so it is run (resumed).
    done["planned_folds"] = [1]
    (cell.run_dir / "results.json").write_text(json.dumps(done))
    assert not cell.is_complete()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[[cells]]\ndatasets = ['esc10']\nmodels = ['cnn7']\naugment = ['taa'", "not valid TOML"),
        ("[grid]\nbudgets = 1\n", "unknown key"),
        ("[grids]\n", "unknown table"),
        ("[grid]\nbudget = 'equal-time'\n", "budget must be one of"),
        ("[grid]\n", "no \\[\\[cells\\]\\] block"),
        ("[[cells]]\ndatasets = ['esc10']\nmodels = ['cnn77']\naugment = ['taa']", "cnn77"),
        ("[[cells]]\ndatasets = ['esc11']\nmodels = ['cnn7']\naugment = ['taa']", "esc11"),
        ("[[cells]]\ndatasets = ['esc10']\nmodels = ['cnn7']\naugment = ['ta']", "'ta'"),
        ("[[cells]]\ndatasets = ['esc10']\nmodels = ['cnn7']", "missing augment"),
        (
            "[[cells]]\ndatasets = ['esc10']\nmodels = ['cnn7']\naugment = ['taa']\nepoch = 3",
            "unknown TrainConfig field",
        ),
        (
            "[[cells]]\ndatasets = ['esc10']\nmodels = ['cnn7']\naugment = ['taa', 'taa']",
            "listed twice",
        ),
    ],
)
def test_grid_errors_name_the_file(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ValueError, match=message) as info:
        load_grid(path)
    assert str(path) in str(info.value)


def test_dry_run_estimate_from_the_throughput_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_grid(tmp_path / "g.toml", PAPERISH, budget="equal-images")
    plan = plan_grid(path)
    (taa, e1, *_), (naa, e2, *_), (_, e3, *_), (vgg, e4, *_) = plan
    assert e1 is not None and e2 is not None and e3 is not None and e4 is not None
    # ESC-10: 400 clips, 5 folds; 4/5 train, 10 % of it validation -> 288 training clips.
    assert (e1.train_images, e2.train_images) == (288, 2016)
    rate = RUN_SAMPLES_PER_S["cnn7"]
    expected = 5 * (84 * 288 / rate + (84 * 32 + 80) / (3 * rate))
    assert e1.seconds == pytest.approx(expected)
    assert e2.naa_seconds > 0 and e1.naa_seconds == 0  # the first NAA cell pays the expansion
    assert e4.source == "benchmark rate"
    unknown = estimate_cell_seconds({"dataset": "esc10", "model": "tiny_test_cnn"}, expansion=1)
    assert unknown is None
    lines = format_plan(plan)
    assert "estimated total" in lines[-2] and "ESTIMATE" in lines[-1]
    assert main(["experiment", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 cell(s), budget equal-images" in out and "esc10-cnn7-naa-official-folds" in out
    assert "5 folds x 12 epochs x 2016 images" in out


def test_dry_run_prefers_the_rate_of_the_grids_completed_cells(tmp_path: Path) -> None:
    out = tmp_path / "r"
    path = write_grid(tmp_path / "g.toml", PAPERISH, budget="equal-images", out=str(out))
    done = out / "esc10-cnn7-taa-official-folds"
    (done / "fold1").mkdir(parents=True)
    results = {"complete": True, "planned_folds": [1, 2, 3, 4, 5]}
    (done / "results.json").write_text(json.dumps(results))
    rows = "".join(f"{e},1000\n" for e in range(1, 6))  # 5 epochs x 1000 images in 100 s
    (done / "fold1" / "metrics.csv").write_text("epoch,train_samples\n" + rows)
    (done / "cell.json").write_text(json.dumps({"seconds": 100.0, "resumed": False}))
    plan = plan_grid(path)
    (_, _, taa_done, *_), (_, naa, *_), _, (_, vgg, *_) = plan
    assert taa_done and naa is not None and vgg is not None
    assert naa.rate == pytest.approx(50.0) and naa.source == "this grid's completed cells"
    assert vgg.source == "benchmark rate"  # no completed vgg16 cell: the table's figure
    assert "cnn7 50.0 images/s" in format_plan(plan)[-1]
    # A resumed cell's wall time covers its last attempt only: its rate is not trusted.
    (done / "cell.json").write_text(json.dumps({"seconds": 100.0, "resumed": True}))
    assert plan_grid(path)[1].estimate.source == "whole-run rate"  # type: ignore[union-attr]


def test_dry_run_names_pretrained_weights_this_machine_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache
    body = """
        [defaults]
        folds = [1]

        [models.squeezenet1_1]
        pretrained = true

        [[cells]]
        datasets = ["esc10"]
        models = ["squeezenet1_1", "cnn7"]
        augment = ["taa"]
    """
    path = write_grid(tmp_path / "g.toml", body, out=str(tmp_path / "r"))
    squeeze, cnn7 = plan_grid(path)
    assert squeeze.missing_weights is not None and cnn7.missing_weights is None
    assert "squeezenet1_1-b8a52dc0.pth" in squeeze.missing_weights
    assert str(tmp_path / "torch") in squeeze.missing_weights
    lines = format_plan([squeeze, cnn7])
    assert sum("needs weights: squeezenet1_1-b8a52dc0.pth" in line for line in lines) == 1
    assert any(line.startswith("1 cell(s) need pretrained weights") for line in lines)
    # With the file in the hub cache, nothing is missing (its contents are checked at run time).
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "squeezenet1_1-b8a52dc0.pth").write_bytes(b"")
    assert [p.missing_weights for p in plan_grid(path)] == [None, None]
    assert not any("pretrained weights" in line for line in format_plan(plan_grid(path)))


# ---------------------------------------------------------------------------------------------
# a grid of two tiny cells on synthetic data


@pytest.fixture(scope="module")
def tiny_grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("grid")
    write_sound_classes(base / "data" / "esc50", per_fold=4)
    body = f"""
        [defaults]
        folds = [1, 2]
        epochs = 2
        batch_size = 8
        lr = 5e-3
        warmup_epochs = 0.5
        val_fraction = 0.2
        clip_seconds = 1.0
        workers = 1
        data_dir = "{base / "data"}"
        cache_dir = "{base / "cache"}"

        [[cells]]
        datasets = ["esc50"]
        models = ["tiny_test_cnn"]
        augment = ["none", "taa"]
    """
    return write_grid(base / "tiny.toml", body, name="tiny", budget="equal-epochs")


KILLER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import _ddp_worker  # registers tiny_test_cnn
from escnet.experiment.grid import run_grid

def report(line):
    print(line, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # killed right after the first cell

run_grid({grid!r}, out={out!r}, progress=False, report=report)
"""


def _metric_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    drop = {"seconds", "seconds_source", "commit", "run_dir"}
    # Losses are means of float32 cross-entropies: two processes on a loaded CPU can differ in
    # the 7th digit (oneDNN's reduction order); accuracies and folds must agree exactly.
    rounded = {"loss_mean", "loss_std"}
    return [
        {k: f"{float(v):.5f}" if k in rounded and v else v for k, v in r.items() if k not in drop}
        for r in rows
    ]


def test_killed_grid_resumes_to_the_same_table(tiny_grid: Path, tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    script = KILLER.format(tests=str(TESTS), grid=str(tiny_grid), out=str(killed))
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert proc.stdout.startswith("[1/2] esc50-tiny_test_cnn-none-official-folds: accuracy")
    first = killed / "esc50-tiny_test_cnn-none-official-folds"
    second = killed / "esc50-tiny_test_cnn-taa-official-folds"
    assert (first / "cell.json").is_file() and not (second / "results.json").exists()

    lines: list[str] = []
    outcomes = run_grid(tiny_grid, out=killed, progress=False, report=lines.append)
    assert [o.status for o in outcomes] == ["skipped", "done"]
    assert "complete already, skipped" in lines[0] and lines[1].startswith("[2/2] esc50-tiny")
    cell = json.loads((second / "cell.json").read_text())
    assert cell["protocol"] == "official-folds" and cell["seconds"] > 0 and cell["commit"]

    straight = tmp_path / "straight"
    run_grid(tiny_grid, out=straight, progress=False, report=lambda _: None)
    a = aggregate([killed], tmp_path / "res-killed")
    b = aggregate([straight], tmp_path / "res-straight")
    assert _metric_rows(a.out / "results.csv") == _metric_rows(b.out / "results.csv")
    assert len(a.rows) == 2 and all(r.complete for r in a.rows)

    # A third run finds both cells complete and trains nothing.
    again = run_grid(tiny_grid, out=killed, progress=False, report=lambda _: None)
    assert [o.status for o in again] == ["skipped", "skipped"]


def test_a_cell_records_the_commit_that_started_it(
    tiny_grid: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long cell may end on another checkout than it started on (commits made meanwhile): the
    # code that ran is the one it started with.
    trained = {"yet": False}
    real = experiment.cross_validate

    def cross_validate(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        trained["yet"] = True
        return out

    monkeypatch.setattr(experiment, "cross_validate", cross_validate)
    monkeypatch.setattr(experiment, "code_commit", lambda: "end" if trained["yet"] else "start")
    run_grid(tiny_grid, out=tmp_path, only=["*-none-*"], progress=False, report=lambda _: None)
    cell_json = tmp_path / "esc50-tiny_test_cnn-none-official-folds" / "cell.json"
    cell = json.loads(cell_json.read_text())
    assert cell["commit"] == "start" and trained["yet"]


def test_only_selects_cells_and_cli_reports_errors(
    tiny_grid: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert [c.name for c in load_grid(tiny_grid).select(["*-taa-*"])] == [
        "esc50-tiny_test_cnn-taa-official-folds"
    ]
    assert main(["experiment", str(tiny_grid), "--dry-run", "--only", "*-mixup-*"]) == 2
    err = capsys.readouterr().err
    assert "no cell of" in err and len(err.strip().splitlines()) == 1
    assert main(["experiment", str(tiny_grid.with_name("absent.toml"))]) == 2
    assert "no such grid file" in capsys.readouterr().err


def test_leaky_cells_train_leaky_and_say_so(tiny_grid: Path, tmp_path: Path) -> None:
    body = tiny_grid.read_text().split("[[cells]]")[0].split("\n", 3)[3]
    body += """
[[cells]]
datasets = ["esc50"]
models = ["tiny_test_cnn"]
augment = ["none"]
protocols = ["random-split"]

[[cells]]
datasets = ["esc50"]
models = ["tiny_test_cnn"]
augment = ["naa"]
protocols = ["augment-then-split"]
"""
    grid = write_grid(tmp_path / "leaky.toml", body, budget="equal-epochs")
    outcomes = run_grid(grid, out=tmp_path / "runs", progress=False, report=lambda _: None)
    random_cell, ats_cell = (o.cell for o in outcomes)
    assert random_cell.name == "esc50-tiny_test_cnn-none-random-split-leaky"
    assert ats_cell.name == "esc50-tiny_test_cnn-naa-augment-then-split-leaky"
    for cell in (random_cell, ats_cell):
        results = json.loads((cell.run_dir / "results.json").read_text())
        assert results["config"]["protocol"] == cell.protocol
        assert results["protocol"].startswith(f"{cell.protocol} (leaky)")
        assert "(leaky)" in (cell.run_dir / "report.md").read_text().splitlines()[0]
    # random-split: clip-disjoint, but the test fold is not an official fold.
    split = json.loads((random_cell.run_dir / "fold1" / "split.json").read_text())
    assert split["protocol"] == "random-split (leaky)"
    assert not set(split["train"]) & set(split["test"])
    assert len({c.split("-")[0] for c in split["test"]}) > 1  # official fold = first field
    # augment-then-split: NAA variants of test clips were trained on.
    split = json.loads((ats_cell.run_dir / "fold1" / "split.json").read_text())
    assert not set(split["train"]) & set(split["test"])  # no image on both sides ...
    train_clips = {name.split("#")[0] for name in split["train"]}
    test_clips = {name.split("#")[0] for name in split["test"]}
    assert len(test_clips & train_clips) > 0.8 * len(test_clips)  # ... but most clips are
    assert split["train_images"]["count"] == len(split["train"])
    table = aggregate([tmp_path / "runs"], tmp_path / "res").out / "results.md"
    assert "augment-then-split (leaky)" in table.read_text()


def test_code_commit_escnet_commit_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tree copied to another machine records the commit its copier named, with or without a
    .git there (the GPU machine's copy had a stale one)."""
    monkeypatch.setenv("ESCNET_COMMIT", "abc1234")
    assert experiment.code_commit() == "abc1234"
    monkeypatch.delenv("ESCNET_COMMIT")
    assert experiment.code_commit() not in ("abc1234", "")

    def no_git(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("git")

    monkeypatch.setattr(experiment.subprocess, "run", no_git)
    assert experiment.code_commit() == "unknown"


def _recorded_csv(path: Path, cells: dict[str, str]) -> Path:
    """A results.csv as escnet results writes it, one complete row per (augment, folds)."""
    from escnet.results.files import write_csv
    from escnet.results.rows import RunRow

    rows = [
        RunRow(
            dataset="esc50",
            model="tiny_test_cnn",
            augment=augment,
            protocol="official-folds",
            folds=[int(f) for f in folds.split()],
            complete=True,
            accuracy=(0.75, 0.05),
            loss=(0.5, 0.1),
            macro_f1=(0.7, 0.05),
            fold_accuracies=[0.75] * len(folds.split()),
            seconds=12.0,
            seconds_source="wall",
            commit="abc",
            run_dir=Path("runs/gone") / augment,
        )
        for augment, folds in cells.items()
    ]
    return write_csv(rows, path)


def test_cells_recorded_in_an_earlier_results_csv_are_not_run_again(
    tiny_grid: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a fresh machine the committed results/results.csv says which cells are done."""
    both = _recorded_csv(tmp_path / "both.csv", {"none": "1 2", "taa": "1 2"})
    lines: list[str] = []
    out = tmp_path / "fresh"
    outcomes = run_grid(tiny_grid, out=out, progress=False, report=lines.append, recorded=both)
    assert [o.status for o in outcomes] == ["recorded", "recorded"]
    assert "in the results given already, skipped (accuracy 75.00 % +- 5.00)" in lines[0]
    assert not out.exists()  # nothing trained, no run directory made

    # A row with other folds than the grid asks for is not the same cell: it would run.
    fewer = _recorded_csv(tmp_path / "fewer.csv", {"none": "1 2", "taa": "1"})
    plan = plan_grid(tiny_grid, out=out, recorded=fewer)
    assert [(p.done, p.recorded) for p in plan] == [(True, True), (False, False)]
    text = format_plan(plan)
    assert "in the results given already: skipped" in text[0]
    assert any("; 1 complete already" in line for line in text)

    args = ["experiment", str(tiny_grid), "--out", str(out), "--recorded", str(both)]
    assert main(["-q", *args]) == 0
    assert "2 in the results given" in capsys.readouterr().out
    meta = tmp_path / "meta.csv"
    meta.write_text("filename,fold\n")
    assert main([*args[:-1], str(meta)]) == 2
    err = capsys.readouterr().err
    assert "meta.csv: not a results.csv" in err and len(err.strip().splitlines()) == 1


def test_offline_a_cell_without_its_weights_is_skipped_listed_and_the_grid_goes_on(
    tiny_grid: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The paper's grid offline: ImageNet's squeezenet1_1 weights cannot be downloaded. That
    cell is skipped and named at the end; the next cell still runs; exit status 0."""
    import urllib.error

    import torch

    def offline(*_args: object, **_kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    body = tiny_grid.read_text().replace('models = ["tiny_test_cnn"]\naugment = ["none", "taa"]',
                                         'models = ["squeezenet1_1", "tiny_test_cnn"]\n'
                                         'augment = ["none"]\nepochs = 1\n'
                                         "[models.squeezenet1_1]\npretrained = true")  # fmt: skip
    assert "squeezenet1_1" in body
    grid = tmp_path / "offline.toml"
    grid.write_text(body)
    out = tmp_path / "runs"
    assert main(["-q", "experiment", str(grid), "--out", str(out)]) == 0
    # torch.hub prints its attempt ("Downloading: ...") on stdout too
    printed = [ln for ln in capsys.readouterr().out.splitlines() if "Downloading" not in ln]
    assert printed[0].startswith("[1/2] esc50-squeezenet1_1-none")
    assert "skipped, its pretrained weights are not at hand" in printed[0]
    assert printed[1].startswith("[2/2] esc50-tiny_test_cnn-none") and "accuracy" in printed[1]
    assert "1 run now" in printed[2] and "1 without their weights, 0 failed" in printed[2]
    assert printed[3].startswith(
        "not run for want of pretrained weights (1): esc50-squeezenet1_1-none-official-folds; put"
    )


@pytest.mark.parametrize("runs", ["absent", "empty"])
def test_results_of_a_recorded_csv_and_a_run_root_with_no_run_yet(
    tmp_path: Path, runs: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's third command on a new machine: runs/paper absent, or made but empty."""
    recorded = _recorded_csv(tmp_path / "recorded.csv", {"none": "1 2"})
    root = tmp_path / "runs" / "paper"
    if runs == "empty":
        root.mkdir(parents=True)
    args = ["results", str(recorded), str(root), "--complete-only", "--out", str(tmp_path / "r")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"{root}: no finished run there yet; the rows of the results given are kept" in out
    assert "1 cell(s) aggregated" in out
    # Without a results.csv to carry, an empty root is still an error: there is nothing to show.
    assert main(["results", str(root)]) == 2

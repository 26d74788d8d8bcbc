"""Ensembles at inference: one body pass for every probe that shares it (equal to running each
member on its own), and the whole ensemble as one ONNX graph run by onnxruntime alone.

The members are made by hand, as a refit writes them: probes of one randomly initialised
``mn04_as`` body (a stand-in for the AudioSet weights; 1-s clips keep it fast) with their own
blocks, heads, standardisation and TTA rolls, saved under ``members/`` beside a ``model.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

import escnet
from escnet.cli import main
from escnet.errors import EscnetError
from escnet.export.onnx import export_model
from escnet.inference.ensemble_backend import load_ensemble
from escnet.model_dir.ensemble import load_ensemble_model
from escnet.model_dir.io import save_model
from escnet.models import create_model
from escnet.models.mobilenet_audioset import MobileNetAudioSet

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["a", "b", "c"]
RATE = 32000
#: (blocks, MLP width (0: linear), TTA rolls): members that differ as the recipe's do.
RECIPE = (
    ([12, 16], 0, [0, 8, 16, 24]),
    ([8, 12, 16], 32, [0, 8, 16, 24]),
    ([11, 14, 16], 0, [0]),
    ([10, 13, 16], 32, [0, 16]),
)
WEIGHTS = (0.4, 0.3, 0.2, 0.1)
#: A large temperature, on a member with huge logits, reaches the floor on log-probabilities.
TEMPERATURES = (1.3, 0.8, 20.0, 1.0)


def make_member(
    path: Path, body: dict[str, torch.Tensor], blocks: list[int], hidden: int, shifts: list[int],
    seed: int, scale: float = 1.0,
) -> Path:  # fmt: skip
    """A probe with ``body`` as its frozen body and a random head, saved at ``path``."""
    kwargs: dict[str, Any] = {"blocks": blocks, "embedding": True, "hidden": hidden}
    kwargs["tta_shifts"] = shifts
    model = create_model("mn04_as_probe", len(CLASSES), **kwargs)
    net = model.net
    net.body.load_state_dict(body)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.feature_mean.copy_(0.1 * torch.randn(net.feature_mean.shape, generator=g))
        net.feature_std.copy_(0.5 + torch.rand(net.feature_std.shape, generator=g))
        for p in net.head.parameters():
            p.copy_(scale * 0.3 * torch.randn(p.shape, generator=g))
    return save_model(path, model, CLASSES, clip_seconds=1.0, model_kwargs=kwargs)


def stand_in_body(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return MobileNetAudioSet().eval().state_dict()


def make_refit(
    root: Path,
    bodies: Sequence[dict[str, torch.Tensor]] | None = None,
    recipe: Sequence[tuple[list[int], int, list[int]]] = RECIPE,
) -> Path:
    """A refitted ensemble at ``root``: model.json listing members/m0.. with weights and
    temperatures (member 2 has huge logits and temperature 20)."""
    bodies = bodies or [stand_in_body()] * len(recipe)
    records = []
    for i, ((blocks, hidden, shifts), body) in enumerate(zip(recipe, bodies, strict=True)):
        make_member(root / "members" / f"m{i}", body, blocks, hidden, shifts, seed=i,
                    scale=40.0 if i == 2 else 1.0)  # fmt: skip
        records.append(
            {"dir": f"members/m{i}", "weight": WEIGHTS[i], "temperature": TEMPERATURES[i]}
        )
    meta = {
        "format_version": 1,
        "members": records,
        "classes": CLASSES,
        "sample_rate": RATE,
        "clip_seconds": 1.0,
        "trained_on": {"dataset": "hand-made"},
    }
    (root / "model.json").write_text(json.dumps(meta))
    return root


def waveforms(n: int = 5, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    rows = [0.1 * rng.standard_normal(t.size) for _ in range(n - 2)]
    rows += [0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 3000 * t)]
    return np.stack(rows).astype(np.float32)


@pytest.fixture(scope="module")
def refit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_refit(tmp_path_factory.mktemp("refit") / "recipe")


@pytest.fixture(scope="module")
def check_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few clips to check exported graphs on (what ESC-50 is when it is at hand)."""
    root = tmp_path_factory.mktemp("check")
    for i, x in enumerate(waveforms(6, seed=9)):
        sf.write(root / f"clip{i}.wav", x, RATE)
    return root


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks on a shared CPU: more threads only contend
    yield
    torch.set_num_threads(threads)


# ---- one pass -----------------------------------------------------------------------------


def test_one_pass_equals_four_pass(refit: Path) -> None:
    one_spec, one = load_ensemble(refit)
    four_spec, four = load_ensemble(refit, one_pass=False)
    assert one_spec.metadata["shared_body_groups"] == [[0, 1, 2, 3]]
    # 4 distinct rolls: 4 body passes, against 4 + 4 + 1 + 2 member by member.
    assert (one_spec.metadata["network_passes"], four_spec.metadata["network_passes"]) == (4, 11)
    x = waveforms()
    a, b = one(x), four(x)
    assert a.shape == (5, 3)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-5)
    # The views as one batch of the body give the same.
    batched = load_ensemble_model(refit, batch_views=True)
    with torch.inference_mode():
        c = batched.probabilities(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(c, b, rtol=0, atol=1e-5)
    # Member 2 (temperature 20, logits hundreds apart) reaches the log-probability floor: the
    # one-pass network floors as the four-pass path did.
    member = load_ensemble_model(refit).network.member_logits(torch.from_numpy(x))[2]
    assert float((member.log_softmax(1) < np.log(1e-30)).float().mean()) > 0


def test_members_with_another_body_run_on_their_own(tmp_path: Path) -> None:
    bodies = [stand_in_body(0), stand_in_body(0), stand_in_body(1)]
    root = make_refit(tmp_path / "mixed", bodies, RECIPE[:3])
    one_spec, one = load_ensemble(root)
    assert one_spec.metadata["shared_body_groups"] == [[0, 1], [2]]
    _, four = load_ensemble(root, one_pass=False)
    x = waveforms(3)
    np.testing.assert_allclose(one(x), four(x), rtol=0, atol=1e-5)


def test_an_ensemble_refuses_a_multi_label_member(tmp_path: Path) -> None:
    root = make_refit(tmp_path / "sig", recipe=RECIPE[:2])
    meta_path = root / "members" / "m1" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["activation"] = "sigmoid"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(EscnetError, match="sigmoid"):
        load_ensemble(root)


# ---- one ONNX graph -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def recipe_onnx(refit: Path, check_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "recipe-onnx"
    result = export_model(refit, out, onnx=True, check_audio=check_dir)
    assert result.onnx is not None
    check = result.onnx["check"]
    assert check["clips"] == 6 and check["top1_equal"] == 6 and check["max_abs_diff"] <= 1e-4
    return out


def test_the_recipe_is_one_onnx_graph(refit: Path, recipe_onnx: Path) -> None:
    meta = json.loads((recipe_onnx / "model.json").read_text())
    assert [m["dir"] for m in meta["members"]] == [f"members/m{i}" for i in range(4)]
    assert meta["activation"] == "softmax" and meta["onnx"]["file"] == "model.onnx"
    assert sorted(p.name for p in recipe_onnx.iterdir()) == ["members", "model.json", "model.onnx"]
    onnx_p = escnet.load(recipe_onnx, backend="onnx", threads=1)
    torch_p = escnet.load(refit)
    copy_p = escnet.load(recipe_onnx)  # the exported directory still runs in PyTorch
    assert onnx_p.classes == torch_p.classes == CLASSES
    x = waveforms(7, seed=3)
    a, b, c = onnx_p.probabilities(x), torch_p.probabilities(x), copy_p.probabilities(x)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(b, c)
    assert (a.argmax(1) == b.argmax(1)).all()
    # Longer recordings: the samples axis of the graph is dynamic, windows are batched.
    long = np.concatenate(list(waveforms(3, seed=4)))
    assert onnx_p.predict(long, RATE).label == torch_p.predict(long, RATE).label
    import onnx

    graph = onnx.load(str(recipe_onnx / "model.onnx"))
    # One front end for the four members, and one body (its stem convolution once per view).
    scopes = {n.name.split("/")[1] for n in graph.graph.node if n.name.count("/") > 1}
    assert {s for s in scopes if s.startswith("front_ends")} == {"front_ends.0"}
    stems = [n for n in graph.graph.node if n.op_type == "Conv" and "features.0/" in n.name]
    assert len(stems) == 4  # rolls 0, 8, 16, 24


def test_the_recipe_graph_runs_without_torch(recipe_onnx: Path, check_dir: Path) -> None:
    code = (
        "import json, sys\n"
        "from escnet.cli import main\n"
        "rc = main(['-q', 'predict', sys.argv[1], sys.argv[2], '--backend', 'onnx',"
        " '--format', 'json', '--top-k', '1'])\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print(json.dumps({'rc': rc, 'torch_modules': loaded}), file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(REPO / "src")
    proc = subprocess.run(
        [sys.executable, "-c", code, str(recipe_onnx), str(check_dir / "clip0.wav")],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == {"rc": 0, "torch_modules": []}
    answer = json.loads(proc.stdout)[0]
    assert answer["activation"] == "softmax" and answer["top_k"][0]["label"] in CLASSES


def test_a_run_exports_its_refitted_ensemble_and_a_cross_validation_ensemble_its_fold(
    refit: Path, check_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # RUN/final, a refitted ensemble, is what `escnet export RUN` takes.
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    make_refit(run / "final", recipe=RECIPE[:2])
    out = tmp_path / "final-onnx"
    argv = ["export", str(run), "--onnx", "--out", str(out), "--check-audio", str(check_dir)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"(from {run / 'final'})" in printed and "top-1 equal on 6" in printed
    assert escnet.load(out, backend="onnx").spec.name == "ensemble of 2 (mn04_as_probe x2)"

    # A cross-validation ensemble: its runs' fold models, copied in as members.
    body = stand_in_body()
    runs = []
    for i, (blocks, hidden, shifts) in enumerate(RECIPE[:2]):
        r = tmp_path / f"cv{i}"
        (r / "fold1").mkdir(parents=True)
        (r / "config.json").write_text("{}")
        make_member(r / "fold1" / "model", body, blocks, hidden, shifts, seed=i)
        runs.append(str(r))
    ens = tmp_path / "ens"
    ens.mkdir()
    record = {"test_fold": 1, "weights": [0.75, 0.25], "temperatures": [1.0, 2.0], "val_acc": 0.9}
    (ens / "ensemble.json").write_text(json.dumps({"members": runs, "folds": [record]}))
    out = tmp_path / "cv-onnx"
    result = export_model(ens, out, onnx=True, check_audio=check_dir)
    meta = json.loads((out / "model.json").read_text())
    assert [m["dir"] for m in meta["members"]] == ["members/cv0-fold1", "members/cv1-fold1"]
    assert meta["trained_on"]["fold"] == 1 and result.source == ens
    x = waveforms(3)
    np.testing.assert_allclose(
        escnet.load(out, backend="onnx").probabilities(x),
        escnet.load(ens).probabilities(x),
        rtol=0,
        atol=1e-4,
    )


@pytest.mark.shared
@pytest.mark.slow
def test_real_mn04_as_members_one_pass_and_onnx_on_100_esc50_clips(
    shared_datasets: Path, shared_weights: Path, tmp_path: Path
) -> None:
    """Probes of the AudioSet mn04_as (random heads): one pass equals four, and the recipe's
    graph gives PyTorch's top-1 on 100 ESC-50 clips, probabilities within 1e-4."""
    from escnet.models.mobilenet_audioset import MN04_AS_FILENAME, load_checkpoint

    weights = shared_weights / "efficientat" / MN04_AS_FILENAME
    if not weights.is_file():
        pytest.skip(f"{weights} is absent")
    body = MobileNetAudioSet()
    load_checkpoint(body, weights)
    root = make_refit(tmp_path / "recipe", [body.eval().state_dict()] * 4)
    for d in (root / "members").iterdir():  # 5-s clips, as the recipe's
        meta = json.loads((d / "model.json").read_text())
        meta["clip_seconds"] = 5.0
        (d / "model.json").write_text(json.dumps(meta))
    meta = json.loads((root / "model.json").read_text())
    meta["clip_seconds"] = 5.0
    (root / "model.json").write_text(json.dumps(meta))
    audio = shared_datasets / "esc50" / "audio"
    _, one = load_ensemble(root)
    _, four = load_ensemble(root, one_pass=False)
    from escnet.export.check import load_check_clips

    clips, _ = load_check_clips(audio, RATE, 5.0, 8)
    np.testing.assert_allclose(one(clips), four(clips), rtol=0, atol=1e-5)
    result = export_model(root, tmp_path / "onnx", onnx=True, check_audio=audio, check_clips=100)
    assert result.onnx is not None
    check = result.onnx["check"]
    assert check["clips"] == 100 and check["top1_equal"] == 100
    assert check["max_abs_diff"] <= 1e-4

"""The README is a short front door whose examples name only what escnet has, and the
documentation's generated tables are the generated files' current content
(``scripts/sync_readme.py``)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
_spec = importlib.util.spec_from_file_location("sync_readme", REPO / "scripts" / "sync_readme.py")
assert _spec is not None and _spec.loader is not None
sync_readme = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("sync_readme", sync_readme)  # its dataclass looks its module up
_spec.loader.exec_module(sync_readme)


def _render(text: str, page: Path, root: Path) -> str:
    return sync_readme.render(text, page, root).text


# ------------------------------------------------------------------ sync_readme.py


def test_render_replaces_each_block_with_its_source_lines(tmp_path: Path) -> None:
    (tmp_path / "t.md").write_text("title\n\n| a |\n|---|\n| 1 |\n\nfooter\n")
    readme = (
        "intro\n<!-- generated from t.md: lines 3-5 -->\nTYPED BY HAND\n<!-- end generated -->\n"
        "middle\n<!-- generated from t.md: lines 7- -->\nold\n<!-- end generated -->\n"
        "<!-- generated from t.md -->\n<!-- end generated -->\nend\n"
    )
    out = _render(readme, tmp_path / "README.md", tmp_path)
    assert "TYPED BY HAND" not in out
    assert "lines 3-5 -->\n| a |\n|---|\n| 1 |\n<!-- end generated -->\nmiddle" in out
    assert "lines 7- -->\nfooter\n<!-- end generated -->" in out
    assert "t.md -->\ntitle\n\n| a |\n|---|\n| 1 |\n\nfooter\n<!-- end generated -->\nend" in out
    assert _render(out, tmp_path / "README.md", tmp_path) == out  # idempotent


def test_headings_nest_under_the_page_section_and_figures_keep_pointing_at_their_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "a.png").write_bytes(b"png")
    (tmp_path / "results" / "r.md").write_text(
        "## ESC-10\n\n### Leakage\n\n![a chart](a.png) [x](https://e.org/b.png)\n"
        "\n```bash\n## the source's own shell comment\n```\n"
    )
    readme = (
        "# T\n\n### Results\n\n```bash\n# a shell comment, not a heading\n```\n\n"
        "<!-- generated from results/r.md -->\n<!-- end generated -->\n"
    )
    rendered = sync_readme.render(readme, tmp_path / "README.md", tmp_path)
    out = rendered.text
    assert "\n#### ESC-10\n\n##### Leakage\n" in out
    assert "![a chart](results/a.png) [x](https://e.org/b.png)" in out
    assert "\n## the source's own shell comment\n" in out  # code is copied as it is
    assert rendered.copies == {}  # the README may show files anywhere in the repository
    assert _render(out, tmp_path / "README.md", tmp_path) == out  # idempotent


def test_a_figure_outside_docs_is_copied_into_docs_assets_for_a_docs_page(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "a.png").write_bytes(b"png")
    (tmp_path / "results" / "r.md").write_text("![a chart](a.png)\n")
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "inside.png").write_bytes(b"png")
    (tmp_path / "docs" / "src.md").write_text("![here](inside.png)\n")
    page = tmp_path / "docs" / "results" / "grid.md"
    text = (
        "# Grid\n\n<!-- generated from results/r.md -->\n<!-- end generated -->\n"
        "<!-- generated from docs/src.md -->\n<!-- end generated -->\n"
    )
    rendered = sync_readme.render(text, page, tmp_path)
    assert "![a chart](../assets/results/a.png)" in rendered.text
    assert "![here](../inside.png)" in rendered.text
    copy = (tmp_path / "docs" / "assets" / "results" / "a.png").resolve()
    assert rendered.copies == {copy: (tmp_path / "results" / "a.png").resolve()}


def test_sections_and_their_tables_are_selected_by_heading_path(tmp_path: Path) -> None:
    (tmp_path / "r.md").write_text(
        "# R\n\n## ESC-10\n\n### Leakage: leaky minus official\n\n| a |\n|---|\n| 10 |\n\n"
        "text after\n\n## ESC-50\n\n### Leakage: leaky minus official\n\nintro\n\n| a |\n|---|\n"
        "| 50 |\n"
    )
    page = tmp_path / "p.md"
    out = _render(
        "<!-- generated from r.md: table in ESC-50 > Leakage -->\n<!-- end generated -->\n"
        "<!-- generated from r.md: section ESC-10 > Leakage -->\n<!-- end generated -->\n",
        page,
        tmp_path,
    )
    assert "Leakage -->\n| a |\n|---|\n| 50 |\n<!-- end generated -->" in out
    assert "Leakage -->\n| a |\n|---|\n| 10 |\n\ntext after\n<!-- end generated -->" in out
    with pytest.raises(SystemExit, match="no section 'ESC-50 > Nope'"):
        _render(
            "<!-- generated from r.md: section ESC-50 > Nope -->\n<!-- end generated -->",
            page,
            tmp_path,
        )


def test_pipes_escaped_for_github_are_unescaped_in_docs_tables(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("## Commands\n\n| c |\n|---|\n| `a\\|b` and a\\|b |\n")
    (tmp_path / "docs").mkdir()
    block = "<!-- generated from README.md: section Commands -->\n<!-- end generated -->\n"
    assert "| `a|b` and a\\|b |" in _render(block, tmp_path / "docs" / "c.md", tmp_path)
    assert "| `a\\|b` and a\\|b |" in _render(block, tmp_path / "other.md", tmp_path)


@pytest.mark.parametrize(
    "line",
    ["as issue #12 asked", "see ../shared/data", "--weights /home/me/w.pt", "/work/main/x"],
)
def test_a_source_with_an_issue_a_shared_link_or_a_machine_path_is_refused(
    tmp_path: Path, line: str
) -> None:
    (tmp_path / "s.md").write_text(f"fine\n{line}\n")
    with pytest.raises(SystemExit, match=r"s\.md:2 "):
        _render("<!-- generated from s.md -->\n<!-- end generated -->", tmp_path / "p.md", tmp_path)


def test_a_missing_source_is_named(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="nope.md"):
        _render(
            "<!-- generated from nope.md -->\n<!-- end generated -->", tmp_path / "p.md", tmp_path
        )


def test_check_finds_stale_pages_and_copies_and_a_run_fixes_them(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "a.png").write_bytes(b"new")
    (tmp_path / "results" / "r.md").write_text("| x |\n|---|\n| 2 |\n\n![a](a.png)\n")
    (tmp_path / "docs" / "assets" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "assets" / "results" / "a.png").write_bytes(b"old")
    (tmp_path / "docs" / "assets" / "gone.png").write_bytes(b"shown by no page")
    (tmp_path / "docs" / "page.md").write_text(
        "# P\n\n<!-- generated from results/r.md -->\n| x |\n|---|\n| 1 |\n<!-- end generated -->\n"
    )
    (tmp_path / "README.md").write_text("# R\n")
    args = ["--root", str(tmp_path)]
    assert sync_readme.main(["--check", *args]) == 1
    assert (tmp_path / "docs" / "assets" / "gone.png").exists()  # --check changes nothing
    assert sync_readme.main(args) == 0
    assert sync_readme.main(["--check", *args]) == 0
    assert "| 2 |" in (tmp_path / "docs" / "page.md").read_text()
    assert (tmp_path / "docs" / "assets" / "results" / "a.png").read_bytes() == b"new"
    assert not (tmp_path / "docs" / "assets" / "gone.png").exists()


def test_the_docs_and_readme_are_in_sync_with_their_generated_files() -> None:
    assert sync_readme.main(["--check"]) == 0


# ------------------------------------------------------------------ the README itself


def test_the_readme_is_a_short_front_door() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 260, f"README.md has {len(lines)} lines; move detail into docs/"
    first_screen = "\n".join(lines[:60])
    for what in ("pip install", "escnet predict", "--dataset folder"):
        assert what in first_screen, f"{what!r} is not on the README's first screen"


def _user_docs() -> list[Path]:
    return [README, *sorted((REPO / "docs").rglob("*.md"))]


@pytest.mark.parametrize(
    ("pattern", "what"),
    [
        (r"\bissues?\s+#\d+", "a reference to an issue"),
        (r"\.\./shared", "a ../shared path or link"),
        (r"/work/", "a path of one machine"),
    ],
)
def test_user_docs_name_no_issue_no_shared_link_and_no_machine_path(
    pattern: str, what: str
) -> None:
    found = [
        f"{page.relative_to(REPO)}:{i}"
        for page in _user_docs()
        for i, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(pattern, line, flags=re.IGNORECASE)
    ]
    assert not found, f"{what} in {found}"


def test_the_readme_links_only_files_of_the_repository() -> None:
    text = README.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        assert not re.match(r"[a-z]+:", target), f"README links outside the repository: {target}"
        path = target.split("#")[0]
        assert not path or (REPO / path).exists(), f"README links {target}, which does not exist"


def _python_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_the_readme_python_examples_parse_and_import_only_what_exists() -> None:
    # Running them needs the data sets and minutes of CPU; the names drift first, so check those.
    blocks = _python_blocks()
    assert len(blocks) >= 3
    for block in blocks:
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("escnet"):
                assert node.module is not None
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"


def test_the_readme_python_examples_are_formatted_as_the_code_is() -> None:
    importlib.import_module("ruff")  # in the dev extras: a missing one fails, never skips

    ruff = [sys.executable, "-m", "ruff", "format", "--diff", "--stdin-filename", "readme.py"]
    for block in _python_blocks():
        done = subprocess.run(
            [*ruff, "-"],
            input=block,
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def resolve(dotted: str) -> object:
    """The object a dotted name such as ``escnet.data.folds.fold_split`` names: the longest
    importable module prefix, then attributes."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:n]))
        except ModuleNotFoundError:
            continue
        for name in parts[n:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(dotted)


def dotted_names(text: str) -> set[str]:
    """Every ``escnet.x.y`` named in a code span (``escnet.load(MODEL).predict_file``: the part
    before the call)."""
    return set(re.findall(r"`(escnet(?:\.\w+)+)", text))


def test_every_python_name_in_the_readme_exists() -> None:
    names = dotted_names(README.read_text(encoding="utf-8"))
    assert "escnet.training.cross_validate" in names  # the command table names its functions
    missing = []
    for name in sorted(names):
        try:
            resolve(name)
        except (ImportError, AttributeError) as e:
            missing.append(f"{name} ({e})")
    assert not missing, missing


# ------------------------------------------------------------------ the README's commands


def readme_commands(text: str | None = None) -> list[list[str]]:
    """Every ``escnet ...`` command of the README's (or ``text``'s) shell and console blocks, as
    argv (console blocks: the ``$`` lines; continuation lines joined)."""
    import shlex

    text = README.read_text(encoding="utf-8") if text is None else text
    commands = []
    for kind, block in re.findall(r"^```(bash|console)\n(.*?)^```$", text, flags=re.S | re.M):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.strip()
            if kind == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            argv = shlex.split(line, comments=True)
            if argv and argv[0] == "escnet":
                commands.append(argv[1:])
    return commands


def test_every_readme_command_is_one_escnet_takes() -> None:
    from escnet.cli import build_parser

    commands = readme_commands()
    assert {argv[0] for argv in commands} >= {"predict", "fit", "experiment", "results"}
    parser = build_parser()
    for argv in commands:
        try:
            parser.parse_args(argv)
        except SystemExit:  # an unknown option or a bad value: the README misleads
            pytest.fail(f"the README's `escnet {' '.join(argv)}` is refused by escnet")


def test_the_readme_own_folder_commands_fit_the_recipe_on_two_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The section "Train on your own folder of sounds", run as written in a directory holding
    ``my-sounds/`` (two classes of recordings cut into fragments) and ``new-recordings/``."""
    import json

    import torch

    from escnet.cli import main
    from escnet.models.mobilenet_audioset import MobileNetAudioSet

    sys.path.insert(0, str(Path(__file__).parent))
    from test_train_dataset import sides_of_groups, write_fragmented_folder

    torch.manual_seed(0)  # a random stand-in for the AudioSet weights, as tests/test_probe.py
    weights = tmp_path / "mn04_stand_in.pt"
    torch.save(MobileNetAudioSet().state_dict(), weights)
    monkeypatch.setattr("escnet.models.weights.fetch_weights", lambda *a, **k: weights)
    monkeypatch.setattr("escnet.models.probe.fetch_weights", lambda *a, **k: weights)
    write_fragmented_folder(tmp_path / "my-sounds", recordings=3, fragments=2)
    (tmp_path / "new-recordings").mkdir()
    for wav in sorted((tmp_path / "my-sounds").rglob("*-0.wav"))[:2]:
        (tmp_path / "new-recordings" / wav.name).write_bytes(wav.read_bytes())
    monkeypatch.chdir(tmp_path)
    section = README.read_text(encoding="utf-8").split("## Train on your own folder")[1]
    section = section.split("\n## ")[0]
    commands = readme_commands(section)
    assert [c[0] for c in commands] == ["fit", "predict"]
    for argv in commands:
        assert main(["-q", *argv]) == 0, argv
    out = capsys.readouterr().out
    assert out.count("tone") + out.count("noise_band") >= 2  # both new recordings labelled
    run = tmp_path / "runs" / "my-sounds"
    fit = json.loads((run / "fit.json").read_text())
    assert fit["recipe"] == "main" and sorted(map(int, fit["folds"])) == [1, 2, 3, 4, 5]
    for member in fit["members"]:  # no recording on two sides of any split of any member
        sides = sides_of_groups(run / member["name"])
        assert sides and all(len(s) == 1 for s in sides.values())


def test_the_readme_events_and_archive_commands_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The section "Find events, label archives, listen live", run as written in a directory
    holding a small model as ``runs/main``, a 60-s ``dawn.wav`` with two known sounds, and an
    ``archive.txt`` listing two recordings."""
    import numpy as np
    import pyarrow.parquet as pq
    import soundfile as sf

    sys.path.insert(0, str(REPO / "tests"))
    from _inference_helpers import SAMPLE_RATE, synth, train_tiny_model
    from escnet.cli import main
    from escnet.events.formats import read_raven
    from escnet.events.soundscape import SoundscapeConfig, synthesize, write_soundscape

    train_tiny_model(tmp_path / "runs" / "main")
    placements = []
    for i, (kind, onset) in enumerate((("low_tone", 10.0), ("high_tone", 40.0))):
        clip = np.zeros(5 * SAMPLE_RATE, np.float32)
        clip[SAMPLE_RATE : 3 * SAMPLE_RATE] = synth(
            kind, 2.0, SAMPLE_RATE, np.random.default_rng(i)
        )
        sf.write(tmp_path / f"{kind}.wav", clip, SAMPLE_RATE)
        placements.append((str(tmp_path / f"{kind}.wav"), kind, onset, 55.0))
    config = SoundscapeConfig(duration=60.0, sample_rate=SAMPLE_RATE, background_db=-70.0)
    write_soundscape(synthesize([], config, seed=2, placements=placements), tmp_path / "dawn")
    (tmp_path / "archive.txt").write_text("low_tone.wav\nhigh_tone.wav\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    section = README.read_text(encoding="utf-8").split("## Find events, label archives")[1]
    commands = readme_commands(section.split("\n## ")[0])
    assert [c[0] for c in commands] == ["detect", "predict"]
    for argv in commands:
        assert main(["-q", *argv]) == 0, argv
    found = {
        (e.label, round(e.onset)) for e in read_raven(tmp_path / "events" / "events.selections.txt")
    }
    assert {("low_tone", 10), ("high_tone", 40)} <= found, found
    assert (tmp_path / "events" / "dawn.png").read_bytes()[:4] == b"\x89PNG"
    assert pq.read_table(tmp_path / "labels.parquet").num_rows == 2


def test_the_readme_data_examples_run_on_a_small_esc50(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first two Python blocks (data, folds, spectral images, augmentation) on an ESC-50
    layout of a few synthetic clips; the later ones train for minutes and are checked for the
    names they use above."""
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import write_esc50

    write_esc50(tmp_path / "data" / "esc50", classes=3, per_fold=2, seconds=5.0)
    monkeypatch.setenv("ESCNET_DATA_DIR", str(tmp_path / "data"))
    scope: dict[str, object] = {}
    first, second = _python_blocks()[:2]
    exec(compile(first, "README.md", "exec"), scope)
    feats = scope["feats"]
    assert feats.features.shape == (30, 128, 216)  # type: ignore[attr-defined]
    exec(compile(second, "README.md", "exec"), scope)
    assert len(scope["variants"]) == 6  # type: ignore[arg-type]


#: The lines ``escnet predict --top-k 3`` prints for files of one window: its banner (which
#: model, which scores), then per file its name and length, and its three labels with scores.
PREDICT_LINES = (
    r"escnet predict: model \S+ \(.+; (softmax|sigmoid) \w+\)",
    r"\S+  \([0-9]+\.[0-9]{2} s\)",
    r"(  \S+ [01]\.[0-9]{3}){3}",
)


def test_the_readme_predict_example_is_what_predict_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's predict output is the main job's; a run of today's ``escnet predict`` on a
    small model must print lines of the same shape (the banner, then a file line and a labels
    line per file), so that the example cannot fall behind the command again."""
    sys.path.insert(0, str(REPO / "tests"))
    import numpy as np
    import soundfile as sf

    from _inference_helpers import synth, train_tiny_model
    from escnet.cli import main

    block = re.search(r"```console\n\$ escnet predict (.*?)```", README.read_text(), re.S)
    assert block is not None
    shown = [ln for ln in block.group(1).splitlines()[2:] if ln.strip()]
    model = train_tiny_model(tmp_path / "model", epochs=2)
    rng = np.random.default_rng(0)
    files = []
    for k, kind in enumerate(("low_tone", "high_tone", "low_tone")):
        files.append(tmp_path / f"clip{k}.wav")
        sf.write(files[-1], synth(kind, 1.0, 16000, rng), 16000)
    assert main(["predict", str(model), *map(str, files), "--top-k", "3"]) == 0
    out = capsys.readouterr()
    printed = [ln for ln in (out.err + out.out).splitlines() if ln.strip() and "%|" not in ln]
    assert len(printed) == len(shown) == 7
    kinds = [0, 1, 2, 1, 2, 1, 2]  # banner, then (file, labels) per file
    for k, example, line in zip(kinds, shown, printed, strict=True):
        assert re.fullmatch(PREDICT_LINES[k], example), f"README: {example!r}"
        assert re.fullmatch(PREDICT_LINES[k], line), f"escnet predict: {line!r}"

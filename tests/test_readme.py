"""The README's generated tables are the generated files' current content, and its Python
examples name only what escnet has."""

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
_spec = importlib.util.spec_from_file_location("sync_readme", REPO / "scripts" / "sync_readme.py")
assert _spec is not None and _spec.loader is not None
sync_readme = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync_readme)


def test_render_replaces_each_block_with_its_source_lines(tmp_path: Path) -> None:
    (tmp_path / "t.md").write_text("title\n\n| a |\n|---|\n| 1 |\n\nfooter\n")
    readme = (
        "intro\n<!-- generated from t.md: lines 3-5 -->\nTYPED BY HAND\n<!-- end generated -->\n"
        "middle\n<!-- generated from t.md: lines 7- -->\nold\n<!-- end generated -->\n"
        "<!-- generated from t.md -->\n<!-- end generated -->\nend\n"
    )
    out = sync_readme.render(readme, tmp_path)
    assert "TYPED BY HAND" not in out
    assert "lines 3-5 -->\n| a |\n|---|\n| 1 |\n<!-- end generated -->\nmiddle" in out
    assert "lines 7- -->\nfooter\n<!-- end generated -->" in out
    assert "t.md -->\ntitle\n\n| a |\n|---|\n| 1 |\n\nfooter\n<!-- end generated -->\nend" in out
    assert sync_readme.render(out, tmp_path) == out  # idempotent


def test_headings_nest_under_the_readme_section_and_figures_keep_pointing_at_their_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.md").write_text(
        "## ESC-10\n\n### Leakage\n\n![a chart](a.png) [x](https://e.org/b.png)\n"
        "\n```bash\n## the source's own shell comment\n```\n"
    )
    readme = (
        "# T\n\n### Results\n\n```bash\n# a shell comment, not a heading\n```\n\n"
        "<!-- generated from results/r.md -->\n<!-- end generated -->\n"
    )
    out = sync_readme.render(readme, tmp_path)
    assert "\n#### ESC-10\n\n##### Leakage\n" in out
    assert "![a chart](results/a.png) [x](https://e.org/b.png)" in out
    assert "\n## the source's own shell comment\n" in out  # code is copied as it is
    assert sync_readme.render(out, tmp_path) == out  # idempotent


def test_a_missing_source_is_named(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="nope.md"):
        sync_readme.render("<!-- generated from nope.md -->\n<!-- end generated -->", tmp_path)


def test_the_readme_is_in_sync_with_its_generated_files() -> None:
    assert sync_readme.main(["--check", "--readme", str(REPO / "README.md")]) == 0


def _python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
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
    pytest.importorskip("ruff")
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

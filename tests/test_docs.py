"""The documentation site builds without a warning (broken links, missing pages, docstrings
mkdocstrings cannot read), and its pages' Python examples name only what escnet has."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
# Raw outputs of the benchmarks, copied into pages: not pages themselves (mkdocs.yml, exclude_docs).
RAW = "ablation_*.md"

_spec = importlib.util.spec_from_file_location(
    "readme_checks", Path(__file__).with_name("test_readme.py")
)
assert _spec is not None and _spec.loader is not None
_readme_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_readme_tests)


def _pages() -> list[Path]:
    return [
        p
        for p in sorted(DOCS.rglob("*.md"))
        if not p.match(RAW) and not (p.parent.name == "benchmarks" and p.name != "index.md")
    ]


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        # In the dev extras: a missing one is a broken install, an error, not a skip.
        importlib.import_module(module)
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,  # the changelog page includes CHANGELOG.md relative to the repository
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # no end-of-life banner
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-8000:]
    assert (tmp_path / "site" / "api" / "data" / "index.html").is_file()


def _python_blocks() -> list[tuple[Path, str]]:
    return [
        (page, block)
        for page in _pages()
        for block in re.findall(
            r"^```python\n(.*?)^```$", page.read_text(encoding="utf-8"), flags=re.S | re.M
        )
    ]


def test_the_docs_python_examples_import_only_what_exists() -> None:
    blocks = _python_blocks()
    assert len(blocks) >= 5
    for page, block in blocks:
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("escnet"):
                assert node.module is not None
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), (
                        f"{page.relative_to(REPO)}: {node.module} has no {alias.name}"
                    )


def test_the_docs_python_examples_are_formatted_as_the_code_is() -> None:
    importlib.import_module("ruff")  # in the dev extras: a missing one fails, never skips

    ruff = [sys.executable, "-m", "ruff", "format", "--diff", "--stdin-filename", "docs.py", "-"]
    for page, block in _python_blocks():
        done = subprocess.run(ruff, input=block, capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 0, f"{page.relative_to(REPO)}\n{done.stdout}{done.stderr}"


def test_every_python_name_in_the_docs_exists() -> None:
    missing = []
    for page in _pages():
        for name in sorted(_readme_tests.dotted_names(page.read_text(encoding="utf-8"))):
            try:
                _readme_tests.resolve(name)
            except (ImportError, AttributeError) as e:
                missing.append(f"{page.relative_to(REPO)}: {name} ({e})")
    assert not missing, missing


def test_every_api_page_documents_modules_that_exist() -> None:
    for page in sorted((DOCS / "api").glob("*.md")):
        for name in re.findall(r"^::: (\S+)", page.read_text(encoding="utf-8"), flags=re.M):
            assert importlib.util.find_spec(name) is not None, f"{page.name}: no module {name}"


def test_benchmark_command_lines_name_no_path_of_the_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Benchmarks print their command above the table that goes into the docs."""
    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo / "benchmarks"))
    try:
        from _machine import command_line
    finally:
        sys.path.pop(0)
    weights = tmp_path / "weights"
    (weights / "efficientat").mkdir(parents=True)
    monkeypatch.setenv("ESCNET_WEIGHTS_DIR", str(weights))
    line = command_line(
        [
            str(repo / "benchmarks" / "bench_recipe.py"),
            "--recipe",
            "runs/main/final",
            "--weights",
            str(weights / "efficientat" / "mn04_as_mAP_432.pt"),
            "--label",
            "two words",
        ]
    )
    assert line == (
        "python benchmarks/bench_recipe.py --recipe runs/main/final "
        "--weights $ESCNET_WEIGHTS_DIR/efficientat/mn04_as_mAP_432.pt --label 'two words'"
    )

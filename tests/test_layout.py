"""The package's layout keeps its promise: stages stacked in the data flow's order, no import
circles, no import from a lower stage up to a higher one, no private name used across files.

Read from the source with :mod:`ast` (nothing is imported), so that a later change that brings a
circle or a back-arrow back fails here, with the edge named.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "escnet"

#: The floors, bottom up: a module may import from its own floor's package or any floor below.
FLOORS = (
    ("escnet._lazy", "escnet.errors", "escnet.version", "escnet.settings", "escnet.machine"),
    ("escnet.cache",),
    ("escnet.data",),
    ("escnet.augment",),
    ("escnet.features",),
    ("escnet.models",),
    ("escnet.embeddings",),
    ("escnet.model_dir",),
    ("escnet.metrics",),
    ("escnet.training",),
    ("escnet.results",),
    ("escnet.experiment",),
    ("escnet.recipes",),
    ("escnet.export",),
    ("escnet.inference", "escnet.events"),
    ("escnet.live", "escnet.batch"),
    ("escnet.serve",),
    ("escnet.cli",),
    ("escnet", "escnet.__main__"),
)
#: The root holds the frame only.
MAX_ROOT_MODULES = 8


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path, *, top_level: bool = False) -> list[tuple[str, list[str], int]]:
    """``(module imported, names taken from it, line)`` for every escnet import of a module
    (``top_level``: only those run when the module is imported, not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    out = []
    for node in _top_level(tree) if top_level else ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("escnet")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if not module.startswith("escnet"):
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                if sub in MODULES:
                    out.append((sub, [], node.lineno))
                else:
                    out.append((module, [alias.name], node.lineno))
    return out


def _top_level(tree: ast.Module) -> list[ast.stmt]:
    """The module's own statements, into ``if``/``try`` blocks but not ``if TYPE_CHECKING``."""
    out: list[ast.stmt] = []
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
            todo += node.body + node.orelse
        elif isinstance(node, ast.Try):
            todo += node.body + node.orelse + node.finalbody
    return out


def _floor(module: str) -> int:
    best, level = -1, -1
    for i, members in enumerate(FLOORS):
        for m in members:
            if (module == m or module.startswith(m + ".")) and len(m) > best:
                best, level = len(m), i
    if level < 0:
        raise AssertionError(f"{module} is on no floor: add it to FLOORS in {__file__}")
    return level


GRAPH = {
    name: sorted({m for m, _, _ in _imports(name, path) if m in MODULES and m != name})
    for name, path in MODULES.items()
}


def test_the_root_holds_the_frame_only() -> None:
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, root


def test_every_module_is_on_a_floor() -> None:
    for name in MODULES:
        _floor(name)


def test_no_import_circle() -> None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for dep in GRAPH[node]:
            if state.get(dep) == 1:
                circle = path[path.index(dep) :] + [dep]
                pytest.fail("import circle: " + " -> ".join(circle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def test_no_import_runs_back_up() -> None:
    back = [
        f"{name} (floor {_floor(name)}) imports {dep} (floor {_floor(dep)})"
        for name, deps in GRAPH.items()
        for dep in deps
        if _floor(dep) > _floor(name)
    ]
    assert not back, "\n".join(back)


def test_no_private_name_crosses_files() -> None:
    crossing = [
        f"{MODULES[name].relative_to(SRC)}:{line}: {', '.join(private)} from {module}"
        for name, path in MODULES.items()
        for module, names, line in _imports(name, path)
        if (private := [n for n in names if n.startswith("_") and not n.startswith("__")])
    ]
    assert not crossing, "\n".join(crossing)


def test_the_onnx_path_is_torch_free_by_its_imports() -> None:
    """What ``predict --backend onnx`` imports when its modules load names no torch."""
    seen: set[str] = set()
    todo = ["escnet.inference.onnx_backend", "escnet.inference.predictor", "escnet.model_dir"]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo += [m for m, _, _ in _imports(node, MODULES[node], top_level=True) if m in MODULES]
    heavy = []
    for name in sorted(seen):
        for node in _top_level(ast.parse(MODULES[name].read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            if any(m.split(".")[0] == "torch" for m in modules):
                heavy.append(name)
    assert not heavy, f"modules on the ONNX path import torch when loaded: {heavy}"

"""Copy generated tables into the documentation, so that no figure in it is typed by hand.

A page (``README.md`` or any Markdown file under ``docs/``) marks each generated block::

    <!-- generated from docs/ablation_esc50.md: lines 3- -->
    ...(replaced)...
    <!-- end generated -->

and this script replaces what lies between the markers with the named part of the named file (a
file written by a benchmark or by ``escnet results``; its path is relative to the repository
root). The part is one of:

* nothing: the whole file;
* ``lines A-B`` or ``lines A-`` (to the end);
* ``section A > B``: what lies under the heading ``B`` (inside the section ``A``), up to the next
  heading of the same or a higher level; each name matches a heading that starts with it;
* ``table in A > B``: the first Markdown table of that section.

Headings in the copied lines are nested under the page heading above the block. In a table
copied into a page under ``docs/``, a pipe escaped inside code (GitHub's ``\\|``) is unescaped:
Python-Markdown, which builds the site, keeps the backslash there. Relative links
(figures) are rewritten to point from the page to the same files; a figure outside ``docs/``
that a page under ``docs/`` shows is copied to ``docs/assets/<its path in the repository>``,
because the documentation site serves only what lies in ``docs/``. Everything in
``docs/assets/`` is written by this script: a copy no page shows any more is removed.

The copied text must not refer to an issue, name ``../shared`` or a path of one machine (such as
``/home/...``): such a source is refused with its file and line, to be fixed there and in what
writes it.

``--check`` changes nothing and exits 1 when a page or a copy is out of date (the test suite
runs it).

Usage::

    python scripts/sync_readme.py [--check] [PAGE ...]

Without pages: ``README.md`` and every page under ``docs/`` that holds a generated block.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = "docs"
ASSETS = "docs/assets"

BLOCK = re.compile(
    r"(<!-- generated from (?P<path>\S+?)(?:: (?P<part>[^\n]*?))? -->\n)"
    r"(?P<body>.*?)"
    r"<!-- end generated -->",
    re.DOTALL,
)
LINES = re.compile(r"lines (?P<a>\d+)-(?P<b>\d*)")
SECTION = re.compile(r"(?P<table>table in )?section (?P<path>.+)|table in (?P<tpath>.+)")

HEADING = re.compile(r"^(#{1,6}) ", re.MULTILINE)
CODE = re.compile(r"`[^`]*`")
LINK = re.compile(r"(\]\()(?!https?:|/|#)([^)\s]+)(\))")

#: Text that has no place in user documentation, and why.
FORBIDDEN = (
    (re.compile(r"\bissues?\s+#\d+", re.IGNORECASE), "refers to an issue"),
    (re.compile(r"\.\./shared\b"), "names ../shared"),
    (re.compile(r"(?<![\w.~])/(?:work|home|Users|root|mnt)/\S*"), "names a path of one machine"),
)


@dataclass
class Rendered:
    """A page with its generated blocks filled, and the figures it needs copied into ``docs/``
    (copy -> original, both absolute)."""

    text: str
    copies: dict[Path, Path] = field(default_factory=dict)


def _headings(lines: list[str]) -> list[int | None]:
    """Each line's heading level, or ``None`` for a line that is no heading: text, or any line
    inside a fenced code block, where a shell comment looks like a heading."""
    levels: list[int | None] = []
    fenced = False
    for line in lines:
        if line.lstrip().startswith("```"):
            fenced = not fenced
            levels.append(None)
        else:
            m = None if fenced else HEADING.match(line)
            levels.append(len(m[1]) if m else None)
    return levels


def _nest(lines: list[str], level: int) -> list[str]:
    """Shift the lines' headings so that the highest becomes one level below ``level``: a
    source's "## ESC-10" must not open a top-level section of the page."""
    levels = _headings(lines)
    found = [lv for lv in levels if lv is not None]
    if not found:
        return lines
    shift = level + 1 - min(found)
    return [
        line if lv is None else HEADING.sub("#" * min(6, lv + shift) + " ", line, count=1)
        for line, lv in zip(lines, levels, strict=True)
    ]


def _section_level(text: str) -> int:
    """The level of the last heading in ``text`` (0 for none)."""
    found = [lv for lv in _headings(text.splitlines()) if lv is not None]
    return found[-1] if found else 0


def _section(lines: list[str], path: str, source: str) -> tuple[int, list[str]]:
    """The first line's index and the lines of the section ``A > B > ...`` (heading excluded)."""
    wanted = [name.strip() for name in path.split(">")]
    levels = _headings(lines)
    stack: list[tuple[int, str]] = []
    for i, (line, level) in enumerate(zip(lines, levels, strict=True)):
        if level is None:
            continue
        stack = [(lv, title) for lv, title in stack if lv < level]
        stack.append((level, line[level:].strip()))
        if not stack[-1][1].startswith(wanted[-1]):
            continue
        ancestors = iter(title for _, title in stack[:-1])
        if all(any(title.startswith(name) for title in ancestors) for name in wanted[:-1]):
            end = next(
                (j for j in range(i + 1, len(lines)) if (levels[j] or 7) <= level), len(lines)
            )
            return i + 1, lines[i + 1 : end]
    raise SystemExit(f"sync_readme: {source} has no section {path!r}")


def _table(first: int, lines: list[str], source: str, path: str) -> tuple[int, list[str]]:
    """The first Markdown table in ``lines`` (which start at index ``first``)."""
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if start is None:
        raise SystemExit(f"sync_readme: {source}: section {path!r} holds no table")
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return first + start, lines[start:end]


def _select(lines: list[str], part: str | None, source: str) -> tuple[int, list[str]]:
    """The index of the first selected line and the selected lines."""
    if not part:
        return 0, lines
    if m := LINES.fullmatch(part):
        a = int(m["a"]) - 1
        return a, lines[a : int(m["b"]) if m["b"] else None]
    if m := SECTION.fullmatch(part):
        path = m["path"] or m["tpath"]
        first, selected = _section(lines, path, source)
        if m["table"] or m["tpath"]:
            return _table(first, selected, source, path)
        return first, selected
    raise SystemExit(
        f"sync_readme: cannot read the part {part!r} of {source}: "
        "write 'lines A-B', 'section A > B' or 'table in A > B'"
    )


def _refuse_forbidden(lines: list[str], first: int, source: str) -> None:
    for i, line in enumerate(lines):
        for pattern, why in FORBIDDEN:
            if m := pattern.search(line):
                raise SystemExit(
                    f"sync_readme: {source}:{first + i + 1} {why} ({m[0]!r}); fix it there, and in "
                    "whatever writes that file"
                )


def _relink(line: str, source: Path, page: Path, root: Path, copies: dict[Path, Path]) -> str:
    """``line`` with its relative links pointing from ``page`` to the files they name."""

    def fix(m: re.Match[str]) -> str:
        target = Path(os.path.normpath(source.parent / m[2]))
        if not target.is_file():
            raise SystemExit(
                f"sync_readme: {source.relative_to(root)} links {m[2]}, which does not exist"
            )
        docs = root / DOCS
        if page.is_relative_to(docs) and not target.is_relative_to(docs):
            copy = root / ASSETS / target.relative_to(root)
            copies[copy] = target
            target = copy
        return f"{m[1]}{Path(os.path.relpath(target, page.parent)).as_posix()}{m[3]}"

    return LINK.sub(fix, line)


def _unescape_pipes(line: str) -> str:
    """A table row's code spans with ``\\|`` made ``|``, as Python-Markdown wants them."""
    if not line.startswith("|"):
        return line
    return CODE.sub(lambda m: m[0].replace("\\|", "|"), line)


def render(text: str, page: Path, root: Path = REPO) -> Rendered:
    """``text`` (the content of ``page``) with every generated block replaced by its source's
    current lines."""
    page = page.resolve()
    root = root.resolve()
    copies: dict[Path, Path] = {}

    def fill(match: re.Match[str]) -> str:
        source = root / match["path"]
        if not source.is_file():
            raise SystemExit(f"sync_readme: {source} (named in {page}) does not exist")
        first, lines = _select(
            source.read_text(encoding="utf-8").splitlines(), match["part"], match["path"]
        )
        _refuse_forbidden(lines, first, match["path"])
        lines = _nest(lines, _section_level(text[: match.start()]))
        lines = [_relink(line, source, page, root, copies) for line in lines]
        if page.is_relative_to(root / DOCS):
            lines = [_unescape_pipes(line) for line in lines]
        body = "\n".join(lines).strip("\n")
        return f"{match[1]}{body}\n<!-- end generated -->"

    return Rendered(BLOCK.sub(fill, text), copies)


def default_pages(root: Path = REPO) -> list[Path]:
    """``README.md`` and every page under ``docs/`` that holds a generated block."""
    pages = [root / "README.md"]
    pages += [
        p
        for p in sorted((root / DOCS).rglob("*.md"))
        if "<!-- generated from " in p.read_text(encoding="utf-8")
    ]
    return [p for p in pages if p.is_file()]


def _stale_copies(root: Path, wanted: dict[Path, Path]) -> list[Path]:
    assets = root / ASSETS
    existing = [p for p in assets.rglob("*") if p.is_file()] if assets.is_dir() else []
    return sorted(p for p in existing if p not in wanted)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a page is out of date")
    ap.add_argument("--root", default=str(REPO), help="the repository (default: this one)")
    ap.add_argument("pages", nargs="*", help="pages to fill (default: all that have blocks)")
    args = ap.parse_args(argv)
    root = Path(args.root).resolve()
    pages = [Path(p).resolve() for p in args.pages] or default_pages(root)

    stale: list[str] = []
    wanted: dict[Path, Path] = {}
    for page in pages:
        current = page.read_text(encoding="utf-8")
        rendered = render(current, page, root)
        wanted.update(rendered.copies)
        if rendered.text != current:
            stale.append(str(page.relative_to(root)))
            if not args.check:
                page.write_text(rendered.text, encoding="utf-8")
    for copy, original in sorted(wanted.items()):
        if not copy.is_file() or not filecmp.cmp(copy, original, shallow=False):
            stale.append(f"{copy.relative_to(root)} (a copy of {original.relative_to(root)})")
            if not args.check:
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(original, copy)
    if not args.pages:  # only a full run knows every copy that is still shown
        for copy in _stale_copies(root, wanted):
            stale.append(f"{copy.relative_to(root)} (shown by no page)")
            if not args.check:
                copy.unlink()

    if args.check and stale:
        print(
            "out of date (run python scripts/sync_readme.py): " + ", ".join(stale),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Copy generated tables into the README, so that no figure in it is typed by hand.

The README marks each generated block::

    <!-- generated from docs/ablation_esc50.md: lines 5-30 -->
    ...(replaced)...
    <!-- end generated -->

and this script replaces what lies between the markers with those lines of the named file (a
file written by a benchmark or by ``escnet results``). ``lines A-B`` or ``lines A-`` (to the
end) is optional: the whole file otherwise. Headings in the copied lines are nested under the
README heading above the block, and relative links (figures) are rewritten to point from the
README to the same files. ``--check`` changes nothing and exits 1 when the README is out of date
(the test suite runs it).

Usage::

    python scripts/sync_readme.py [--check] [--readme README.md]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(
    r"(<!-- generated from (?P<path>\S+?)(?:: lines (?P<a>\d+)-(?P<b>\d*))? -->\n)"
    r"(?P<body>.*?)"
    r"<!-- end generated -->",
    re.DOTALL,
)


HEADING = re.compile(r"^(#{1,6}) ", re.MULTILINE)
LINK = re.compile(r"(\]\()(?!https?:|/|#)([^)\s]+)(\))")


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
    source's "## ESC-10" must not open a top-level section of the README."""
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


def render(readme: str, root: Path) -> str:
    """The README with every generated block replaced by its source's current lines."""

    def fill(match: re.Match[str]) -> str:
        source = root / match["path"]
        if not source.is_file():
            raise SystemExit(f"sync_readme: {source} (named in the README) does not exist")
        lines = source.read_text(encoding="utf-8").splitlines()
        if match["a"]:
            lines = lines[int(match["a"]) - 1 : int(match["b"]) if match["b"] else None]
        lines = _nest(lines, _section_level(readme[: match.start()]))
        # A figure beside its table is named relative to the table's file; the README is not.
        folder = Path(match["path"]).parent.as_posix()
        if folder != ".":
            lines = [LINK.sub(lambda m: f"{m[1]}{folder}/{m[2]}{m[3]}", line) for line in lines]
        body = "\n".join(lines).strip("\n")
        return f"{match[1]}{body}\n<!-- end generated -->"

    return BLOCK.sub(fill, readme)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the README is out of date")
    ap.add_argument("--readme", default=str(REPO / "README.md"))
    args = ap.parse_args(argv)
    path = Path(args.readme)
    current = path.read_text(encoding="utf-8")
    wanted = render(current, path.parent)
    if args.check:
        if wanted != current:
            print(f"{path} is out of date: run python scripts/sync_readme.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

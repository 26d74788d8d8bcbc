"""The shell scripts beside the package (scripts/, experiments/): they parse, and the GPU carry
script refuses a wrong data directory with one line and exit status 2 before it writes anything.

The scripts' happy paths need the package registry (wheels) or a GPU, so they are checked by
hand (the README's experiments section says how they ran); these tests keep the cheap parts
honest.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*REPO.glob("scripts/*.sh"), *REPO.glob("experiments/*.sh")])


def test_there_are_scripts_to_check() -> None:
    # A moved folder must not turn the parametrised test below into zero tests.
    names = {p.name for p in SCRIPTS}
    assert {"install.sh", "test.sh", "run-paper-gpu.sh", "prepare-gpu-carry.sh"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_parses(script: Path) -> None:
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("given", ["missing", "empty", "none"])
def test_prepare_gpu_carry_refuses_a_wrong_data_dir(tmp_path: Path, given: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(REPO / "experiments" / "prepare-gpu-carry.sh", work / "prepare.sh")
    (tmp_path / "empty").mkdir()
    args = {"missing": [str(tmp_path / "nowhere")], "empty": [str(tmp_path / "empty")], "none": []}
    env = {"PATH": "/usr/bin:/bin", "CARRY": "carry"}  # no ESCNET_DATA_DIR to fall back on
    done = subprocess.run(
        ["bash", "prepare.sh", *args[given]], cwd=work, env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "esc50/meta/esc50.csv" in lines[0], done.stderr
    assert "ESCNET_DATA_DIR" in lines[0]
    assert not (work / "carry").exists()  # nothing written before the check


def test_the_test_command_requires_the_browser_test_to_run() -> None:
    """scripts/test.sh (what CI runs) sets ESCNET_REQUIRE_BROWSER=1 before pytest, so that the
    page test fails there instead of skipping when chromium or playwright is missing."""
    script = REPO / "scripts" / "test.sh"
    code = (
        f"source <(sed -n '/ESCNET_REQUIRE_BROWSER=/p' {script}); "
        'echo "[$ESCNET_REQUIRE_BROWSER]"'
    )
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run(["bash", "-c", code], env=env, capture_output=True, text=True)
    assert done.stdout == "[1]\n", done.stderr
    lines = script.read_text().splitlines()
    sets = next(i for i, line in enumerate(lines) if line.startswith("export ESCNET_REQUIRE_B"))
    runs = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    assert sets < runs

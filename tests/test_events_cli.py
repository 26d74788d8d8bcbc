"""`escnet detect` and `POST /detect` with a tiny model trained on tones (tests/_inference_helpers).

The synthetic version of the "done when" check: a 60-s soundscape with two known events
(``low_tone`` standing in for a dog at 10 s, ``high_tone`` for a siren at 40 s). The tiny model
knows clean tones only, so the background is faint pink noise (-70 dBFS, below the silence level)
and the events are placed 55 dB over it (about -15 dBFS, the levels the model was trained at).
Detection finds both with onsets within 1 s, its Raven table and Audacity labels read back with
crowsetta, and the picture is a PNG.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
from _inference_helpers import SAMPLE_RATE, Server, synth, train_tiny_model  # noqa: E402
from escnet.cli import main  # noqa: E402
from escnet.events.formats import read_audacity, read_raven  # noqa: E402
from escnet.events.soundscape import SoundscapeConfig, synthesize, write_soundscape  # noqa: E402
from escnet.inference import load  # noqa: E402

TRUE = {"low_tone": 10.0, "high_tone": 40.0}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_model(tmp_path_factory.mktemp("detect") / "model")


def _source(path: Path, kind: str, seed: int) -> str:
    """A 5-s clip with 2 s of ``kind`` in it, silence around (as ESC-50 clips often have)."""
    y = np.zeros(5 * SAMPLE_RATE, np.float32)
    y[SAMPLE_RATE : 3 * SAMPLE_RATE] = synth(kind, 2.0, SAMPLE_RATE, np.random.default_rng(seed))
    sf.write(path, y, SAMPLE_RATE)
    return str(path)


@pytest.fixture(scope="module")
def soundscape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scape")
    placements = [
        (_source(root / f"{k}.wav", k, i), k, t, 55.0) for i, (k, t) in enumerate(TRUE.items())
    ]
    config = SoundscapeConfig(duration=60.0, sample_rate=SAMPLE_RATE, background_db=-70.0)
    return write_soundscape(synthesize([], config, seed=2, placements=placements), root / "scape")


def _found(events: list, label: str) -> list[float]:
    return [e.onset for e in events if e.label == label and abs(e.onset - TRUE[label]) <= 1.0]


def test_detect_finds_both_events_and_writes_raven_audacity_and_a_picture(
    model_dir: Path, soundscape: Path, tmp_path: Path
) -> None:
    out, plots = tmp_path / "out", tmp_path / "plots"
    base = ["-q", "detect", str(model_dir), str(soundscape)]
    assert main([*base, "--format", "raven", "--output", f"{out}/", "--plot", str(plots)]) == 0
    raven = read_raven(out / "events.selections.txt")
    assert _found(raven, "low_tone") and _found(raven, "high_tone"), raven
    assert main([*base, "--format", "audacity", "--output", str(out)]) == 0
    labels = read_audacity(out / "scape.txt")
    assert _found(labels, "low_tone") and _found(labels, "high_tone"), labels
    png = (plots / "scape.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    # The true events (the soundscape's own label track) read back the same way.
    truth = read_audacity(soundscape.with_suffix(".txt"))
    assert [(e.label, e.onset) for e in truth] == [("low_tone", 10.0), ("high_tone", 40.0)]


def test_python_api_matches_the_command_and_silence_gives_no_events(model_dir: Path) -> None:
    predictor = load(model_dir, threads=1)
    x = np.zeros(20 * SAMPLE_RATE, np.float32)
    x[5 * SAMPLE_RATE : 8 * SAMPLE_RATE] = synth(
        "high_tone", 3.0, SAMPLE_RATE, np.random.default_rng(0)
    )
    detection = predictor.detect(x, SAMPLE_RATE, hop=0.5)
    assert [(e.label, e.onset, e.offset) for e in detection.events] == [("high_tone", 5.0, 8.0)]
    silent = predictor.detect(np.zeros(10 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    assert silent.events == [] and any("silent" in w for w in silent.warnings)
    # The windows and scores are predict's, at the same hop.
    prediction = predictor.predict(x, SAMPLE_RATE, window=1.0, hop=0.5)
    assert detection.tracks.windows == len(prediction.windows)


def test_a_recording_shorter_than_a_window_gets_one_and_says_so(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    short = tmp_path / "short.wav"
    sf.write(short, synth("noise", 0.6, SAMPLE_RATE, np.random.default_rng(1)), SAMPLE_RATE)
    assert (
        main(["-q", "detect", str(model_dir), str(short), "--hop", "0.5", "--format", "json"]) == 0
    )
    captured = capsys.readouterr()
    assert '"windows": 1' in captured.out and "shorter than one 1-s window" in captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hop", "0"], "--hop"),
        (["--hop", "-1"], "--hop"),
        (["--threshold", "1.5"], "--threshold"),
        (["--min-duration", "-1"], "--min-duration"),
        (["--max-gap", "-0.5"], "--max-gap"),
        (["--level-edges", "-2"], "--level-edges"),
        (["--level-margin", "-1"], "--level-margin"),
        (["--format", "kaleidoscope"], "--format"),
        (["--hop", "2"], "longer than the 1-s window"),
        (["--save-thresholds"], "--choose-thresholds"),
    ],
)
def test_bad_options_are_one_line_with_status_2(
    model_dir: Path,
    soundscape: Path,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        status = main(["-q", "detect", str(model_dir), str(soundscape), *args])
    except SystemExit as exc:  # argparse's refusals exit at once
        status = int(exc.code or 0)
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_bad_files_are_skipped_and_counted(
    model_dir: Path, soundscape: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF nonsense")
    tiny = tmp_path / "tiny.wav"
    sf.write(tiny, np.full(800, 0.1, np.float32), SAMPLE_RATE)  # 0.1 s: shorter than the hop
    argv = ["-q", "detect", str(model_dir), str(soundscape), str(broken), str(tiny)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "skipped" in err and "broken.wav" in err and "longer than the recording" in err
    assert "in 1 of 3 file(s), 2 skipped" in err
    assert main([*argv, "--strict"]) == 2
    assert main(["-q", "detect", str(model_dir), str(broken)]) == 2


def test_thresholds_chosen_on_soundscapes_are_saved_and_used(
    model_dir: Path, soundscape: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import shutil

    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    val = tmp_path / "val"
    val.mkdir()
    for suffix in (".wav", ".txt"):
        shutil.copy(soundscape.with_suffix(suffix), val / f"v{suffix}")
    argv = ["-q", "detect", str(model), str(soundscape)]
    argv += ["--choose-thresholds", str(val), "--save-thresholds"]
    assert main(argv) == 0
    saved = json.loads((model / "model.json").read_text())["detection"]
    assert set(saved["thresholds"]) == {"low_tone", "high_tone", "noise"} and saved["hop"] == 1.0
    assert "thresholds chosen on 1 recording" in capsys.readouterr().err
    assert load(model).detect_file(soundscape).params.thresholds == saved["thresholds"]


def test_the_service_detects_events(model_dir: Path, soundscape: Path, tmp_path: Path) -> None:
    import httpx

    tmpdir = tmp_path / "server-tmp"
    tmpdir.mkdir()
    with Server(model_dir, ["--threads", "1"], tmpdir, tmp_path / "server.log") as server:
        data = soundscape.read_bytes()
        r = httpx.post(f"{server.url}/detect", files={"file": ("s.wav", data)}, timeout=120)
        assert r.status_code == 200, r.text
        body = r.json()
        bad = httpx.post(f"{server.url}/detect?hop=5", files={"file": ("s.wav", data)})
        silent = io.BytesIO()
        sf.write(silent, np.zeros(3 * SAMPLE_RATE, np.float32), SAMPLE_RATE, format="WAV")
        quiet = httpx.post(f"{server.url}/detect", files={"file": ("q.wav", silent.getvalue())})
    onsets = {e["label"]: e["onset"] for e in body["events"] if e["label"] in TRUE}
    assert all(abs(onsets[k] - t) <= 1.0 for k, t in TRUE.items()), body["events"]
    assert body["hop"] == 1.0 and body["tracks"]["classes"][:1] and body["source"] == "s.wav"
    assert bad.status_code == 422 and "hop" in bad.json()["detail"]
    assert quiet.status_code == 200 and quiet.json()["events"] == []

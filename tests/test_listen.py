"""Live input: the event tracker, the listener, raw PCM, and `escnet listen` on a pipe.

The model is the tiny synthetic one (tests/_inference_helpers.py), trained on clips padded with
silence as ESC-50's are, so that it labels a window partly filled with sound by that sound.
"""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from escnet.cli import main
from escnet.errors import EscnetError, ParameterError
from escnet.inference import load
from escnet.live import (
    Event,
    EventTracker,
    Listener,
    Microphone,
    TrackerConfig,
    level_db,
    pcm16_blocks,
    pcm16_to_float,
)

sys.path.insert(0, str(Path(__file__).parent))
from _inference_helpers import TESTS, synth, train_tiny_model  # noqa: E402

RATE = 8000


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 80 epochs: sure of itself on partly filled windows too (30 leaves it near 0.5 there)
    return train_tiny_model(tmp_path_factory.mktemp("listen") / "model", epochs=80, padded=True)


def a_silence_b(sr: int, seed: int = 3) -> np.ndarray:
    """3 s of low_tone, 2 s of digital silence, 3 s of high_tone."""
    rng = np.random.default_rng(seed)
    gap = np.zeros(2 * sr, np.float32)
    return np.concatenate([synth("low_tone", 3, sr, rng), gap, synth("high_tone", 3, sr, rng)])


def pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).round().astype("<i2").tobytes()


# ------------------------------------------------------------------------------------------------
# The tracker: hysteresis, silence, minimum duration, thresholds
# ------------------------------------------------------------------------------------------------


def run_tracker(tracker: EventTracker, scores: list[float | None], hop: float = 1.0) -> list[Event]:
    """Windows of 2 hops, with these class-0 scores (class 1 scores 0); None: a silent one."""
    events = []
    for i, s in enumerate(scores):
        p = None if s is None else np.array([s, 0.0])
        events += tracker.update(i * hop, i * hop + 2 * hop, p)
    return events + tracker.close(len(scores) * hop + hop)


def test_tracker_hysteresis_keeps_one_event_through_a_dip() -> None:
    # 0.4 is under the onset but over the offset: the sound goes on, no second event.
    scores = [0.1, 0.9, 0.4, 0.8, 0.2, 0.1]
    events = run_tracker(EventTracker(["a", "b"]), scores)
    assert [(e.label, e.onset, e.offset, e.score) for e in events] == [
        ("a", 2.0, None, 0.9),  # new in the window of 1-3 s: 2-3 s
        ("a", 2.0, 4.0, 0.9),  # the window of 4-6 s no longer has it
    ]
    # Without hysteresis, the dip splits the sound in two.
    flat_config = TrackerConfig(onset=0.5, offset=0.5, confident=0.5)
    flat = run_tracker(EventTracker(["a", "b"], flat_config), scores)
    assert [e.onset for e in flat if e.ongoing] == [2.0, 4.0]


def test_tracker_splits_at_silence_and_under_the_offset() -> None:
    tracker = EventTracker(["a", "b"], TrackerConfig(onset=0.95, offset=0.9))
    events = run_tracker(tracker, [0.96, None, 0.97, 0.5, 0.99])
    started = [(e.label, e.onset) for e in events if e.ongoing]
    assert started == [("a", 0.0), ("a", 3.0), ("a", 5.0)]
    assert tracker.reported == 3


def test_tracker_minimum_duration_drops_blips() -> None:
    config = TrackerConfig(onset=0.6, offset=0.6, min_duration=2.5)
    # a: one window (1 s new) then gone; then three windows (3 s): only the second is reported
    events = run_tracker(EventTracker(["a", "b"], config), [0.9, 0.5, 0.9, 0.9, 0.9, 0.5])
    assert [(e.label, e.onset, e.offset) for e in events] == [
        ("a", 3.0, None),
        ("a", 3.0, 5.0),
    ]


def test_tracker_waits_a_window_to_confirm_an_unsure_event() -> None:
    tracker = EventTracker(["a", "b"])  # onset 0.5, confident 0.9
    # 0.7 once: a fragment's guess, dropped; 0.7 twice: reported at its second window.
    assert tracker.update(0, 2, np.array([0.7, 0.0])) == []
    assert tracker.update(1, 3, np.array([0.1, 0.0])) == []
    assert tracker.update(2, 4, np.array([0.7, 0.0])) == []
    assert tracker.update(3, 5, np.array([0.6, 0.0])) == [Event("a", 3.0, None, 0.7)]
    assert tracker.reported == 1
    # Unsure at the very end of the stream: no window is left to confirm it, so it is reported.
    tracker.update(4, 6, None)
    assert tracker.update(5, 7, np.array([0.0, 0.8])) == []
    assert tracker.close(7.0) == [Event("b", 6.0, None, 0.8), Event("b", 6.0, 7.0, 0.8)]
    with pytest.raises(ParameterError, match="confident"):
        TrackerConfig(confident=0)


def test_tracker_per_class_thresholds_and_bad_values() -> None:
    config = TrackerConfig(per_class={"b": (0.2, 0.1)}, confident=0.25)
    events = EventTracker(["a", "b"], config).update(0, 1, np.array([0.7, 0.3]))
    assert {e.label for e in events} == {"a", "b"}
    with pytest.raises(ParameterError, match="per-class thresholds for zebra"):
        EventTracker(["a"], TrackerConfig(per_class={"zebra": (0.5, 0.5)}))
    for kwargs in ({"onset": 0.3, "offset": 0.5}, {"onset": 1.5}, {"offset": float("nan")}):
        with pytest.raises(ParameterError, match="0 < offset <= onset <= 1"):
            TrackerConfig(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="silence_db"):
        TrackerConfig(silence_db=3)


def test_level_db_gates_on_the_loudest_frame() -> None:
    x = np.zeros(RATE * 5, np.float32)
    assert level_db(x, RATE) == -np.inf
    x[1200:1600] = 0.01  # one 50-ms frame at -40 dB in five seconds of silence
    assert level_db(x, RATE) == pytest.approx(-40, abs=0.5)


# ------------------------------------------------------------------------------------------------
# Raw PCM
# ------------------------------------------------------------------------------------------------


class Trickle(io.RawIOBase):
    """A pipe that hands out its bytes a few at a time (odd counts: samples split)."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.pos = data, step, 0

    def readable(self) -> bool:
        return True

    def read1(self, n: int = -1) -> bytes:
        chunk = self.data[self.pos : self.pos + min(n, self.step)]
        self.pos += len(chunk)
        return chunk

    read = read1  # type: ignore[assignment]


def test_pcm16_blocks_join_split_samples() -> None:
    x = np.linspace(-1, 1, 1001, dtype=np.float32)
    data = pcm16(x) + b"\x01"  # a stray last byte is dropped
    blocks = list(pcm16_blocks(Trickle(data, 7)))  # type: ignore[arg-type]
    assert max(b.size for b in blocks) <= 4
    joined = np.concatenate(blocks)
    np.testing.assert_array_equal(joined, pcm16_to_float(pcm16(x)))
    np.testing.assert_allclose(joined, x, atol=2 / 32768)  # written x 32767, read / 32768


# ------------------------------------------------------------------------------------------------
# The listener, in process
# ------------------------------------------------------------------------------------------------


def listen_all(model: Path, x: np.ndarray, sr: int, block: int) -> tuple[list[Event], Listener]:
    listener = Listener(load(model, threads=1), sr)
    events = []
    for i in range(0, x.size, block):
        events += listener.feed(x[i : i + block])
    return events + listener.end(), listener


@pytest.mark.parametrize("sr", [RATE, 16000])  # 16 kHz: resampled to the model's 8 kHz
def test_listener_one_event_per_sound(model: Path, sr: int) -> None:
    x = a_silence_b(sr)
    events, listener = listen_all(model, x, sr, block=sr // 10)
    started = [e for e in events if e.ongoing]
    ended = [e for e in events if not e.ongoing]
    assert [e.label for e in started] == ["low_tone", "high_tone"]
    assert [e.label for e in ended] == ["low_tone", "high_tone"]
    low, high = ended
    # Located to within a window (1 s) of the truth: 0-3 s and 5-8 s.
    assert low.onset < 1.0 and 2.0 <= low.offset <= 4.0
    assert 4.5 <= high.onset <= 6.0 and high.offset == pytest.approx(8.0)
    assert listener.duration == pytest.approx(8.0)
    assert 0 < listener.scored < listener.windows  # the gap's windows were not scored
    # The same events whatever the block size: the stream, not its blocks, decides.
    again, _ = listen_all(model, x, sr, block=sr * 3 + 17)  # batched: scores differ by 1e-7
    assert [(e.label, e.onset, e.offset) for e in again] == [
        (e.label, e.onset, e.offset) for e in events
    ]
    assert [e.score for e in again] == pytest.approx([e.score for e in events], abs=1e-5)


def test_listener_silence_prints_nothing(model: Path) -> None:
    quiet = np.random.default_rng(0).standard_normal(RATE * 4).astype(np.float32) * 1e-4
    events, listener = listen_all(model, quiet, RATE, block=800)  # -80 dB: under the gate
    assert events == [] and listener.scored == 0 and listener.windows > 10


def test_listener_short_input_gets_one_window(model: Path) -> None:
    x = synth("high_tone", 0.1, RATE, np.random.default_rng(1))
    events, listener = listen_all(model, x, RATE, block=RATE)
    assert listener.windows == 1


def test_listener_refuses_bad_rates_and_hops(model: Path) -> None:
    predictor = load(model, threads=1)
    with pytest.raises(ParameterError, match="sample rate must be"):
        Listener(predictor, 10)
    with pytest.raises(ParameterError, match="hop"):
        Listener(predictor, RATE, hop=0.001)


# ------------------------------------------------------------------------------------------------
# escnet listen
# ------------------------------------------------------------------------------------------------


def listen_command(model: Path, *args: str) -> list[str]:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import _inference_helpers; "
        "from escnet.cli import main; sys.exit(main(sys.argv[2:]))"
    )
    return [sys.executable, "-c", code, str(TESTS), "listen", str(model), *args]


@pytest.mark.slow
def test_listen_command_prints_each_sound_once(model: Path, tmp_path: Path) -> None:
    table = tmp_path / "events.csv"
    cmd = listen_command(model, "--input", "-", "--rate", "16000", "--csv", str(table))
    for run in (1, 2):  # the second run appends to the table
        done = subprocess.run(
            cmd, input=pcm16(a_silence_b(16000)), capture_output=True, timeout=300
        )
        assert done.returncode == 0, done.stderr.decode()
        lines = done.stdout.decode().splitlines()
        assert [line.split()[1] for line in lines] == ["low_tone", "high_tone"]
        assert "end of input after 8.00 s of audio: 2 event(s)" in done.stderr.decode()
        rows = table.read_text().splitlines()
        assert rows[0] == "onset,offset,label,score" and len(rows) == 1 + 2 * run
    assert [r.split(",")[2] for r in rows[1:]] == ["low_tone", "high_tone"] * 2


@pytest.mark.slow
def test_listen_command_stops_cleanly_on_ctrl_c(model: Path, tmp_path: Path) -> None:
    table = tmp_path / "events.csv"
    cmd = listen_command(model, "--input", "-", "--rate", str(RATE), "--csv", str(table))
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # As from a terminal: a test run started in the background (`cmd &` in a script)
        # ignores SIGINT, and Python keeps an ignored SIGINT ignored in its children.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(pcm16(synth("noise", 2.0, RATE, np.random.default_rng(0))))
    proc.stdin.flush()  # the pipe stays open: the sound is still going on
    first = proc.stdout.readline().decode()  # printed while the input is still open
    assert first.split()[1] == "noise"
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    # Wait with the pipe still open: communicate() would close it at once, and on a busy
    # machine the end of the input could then reach the listener before the signal does.
    proc.wait(timeout=60)
    assert proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.stdin.close()
    assert proc.returncode == 0, err.decode()
    assert out.decode() == ""  # no second line for the same sound
    assert "stopped (Ctrl-C) after" in err.decode() and "1 event(s)" in err.decode()
    assert "Traceback" not in err.decode()
    assert table.read_text().splitlines()[1].split(",")[2] == "noise"  # the open event, ended


def test_listen_command_errors_are_one_line(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["listen", str(model), "--input", "-"]) == 2
    assert "--input needs --rate" in capsys.readouterr().err
    missing = str(tmp_path / "nope.raw")
    assert main(["listen", str(model), "--input", missing, "--rate", "8000"]) == 2
    assert "nope.raw" in capsys.readouterr().err
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    assert main(["listen", str(model), "--input", "-", "--rate", "8000", "--csv", str(other)]) == 2
    assert "not an event table" in capsys.readouterr().err
    assert main(["listen", str(model), "--input", "-", "--rate", "8000", "--onset", "0.2",
                 "--offset", "0.4"]) == 2  # fmt: skip
    assert "offset <= onset" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["listen", str(model), "--rate", "100"])
    assert exit_info.value.code == 2


def test_microphone_errors_name_the_fix(
    monkeypatch: pytest.MonkeyPatch, model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # not installed
    with pytest.raises(EscnetError, match=r"pip install 'escnet\[live\]'"):
        Microphone()
    assert main(["listen", str(model)]) == 2
    assert "needs the sounddevice package" in capsys.readouterr().err

    class PortAudioError(Exception):
        pass

    def no_device(device: object = None, kind: str | None = None) -> dict[str, object]:
        raise PortAudioError("Error querying device -1")

    fake = types.SimpleNamespace(PortAudioError=PortAudioError, query_devices=no_device)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    with pytest.raises(EscnetError, match="no microphone: the default input: Error querying"):
        Microphone()
    assert main(["listen", str(model), "--device", "3"]) == 2
    err = capsys.readouterr().err
    assert "no microphone: --device 3" in err and "--input - --rate R" in err
    assert len(err.strip().splitlines()) == 1


def test_microphone_blocks_reach_the_listener(monkeypatch: pytest.MonkeyPatch, model: Path) -> None:
    """A fake PortAudio input device that plays a recording: the same path as a real one."""
    x = a_silence_b(RATE)

    class Stream:
        def __init__(self, *, callback: object, blocksize: int, **kw: object) -> None:
            self.callback, self.blocksize, self.active = callback, blocksize, False

        def start(self) -> None:
            self.active = True
            flags = types.SimpleNamespace(input_overflow=False)
            for i in range(0, x.size, self.blocksize):
                block = x[i : i + self.blocksize, None]
                self.callback(block, len(block), None, flags)  # type: ignore[operator]
            self.active = False  # the device stops at the end of the recording

        def stop(self) -> None:
            pass

        def close(self) -> None:
            pass

    fake = types.SimpleNamespace(
        PortAudioError=OSError,
        query_devices=lambda device=None, kind=None: {
            "name": "fake", "default_samplerate": float(RATE)
        },
        InputStream=Stream,
    )  # fmt: skip
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    listener = Listener(load(model, threads=1), RATE)
    events = []
    with Microphone() as mic:
        assert mic.sample_rate == RATE and mic.name == "fake"
        for block in mic.blocks():
            events += listener.feed(block)
    events += listener.end()
    assert [e.label for e in events if e.ongoing] == ["low_tone", "high_tone"]


def test_an_audio_file_on_standard_input_is_refused(tmp_path: Path, model: Path) -> None:
    wav = tmp_path / "clip.wav"
    sf.write(wav, synth("noise", 0.5, RATE, np.random.default_rng(0)), RATE)
    with wav.open("rb") as f, pytest.raises(ParameterError, match="like a WAV file, not raw PCM"):
        list(pcm16_blocks(f))
    done = subprocess.run(
        listen_command(model, "--input", "-", "--rate", "8000"),
        input=wav.read_bytes(),
        capture_output=True,
        timeout=300,
    )
    err = done.stderr.decode()
    assert done.returncode == 2 and "--input - begins like a WAV file" in err
    assert "Traceback" not in err

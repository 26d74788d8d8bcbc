"""The events stage on its own: score tracks, event extraction, formats, thresholds, soundscapes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from escnet.errors import AudioError, ModelDirError, ParameterError
from escnet.events import DetectionParams, Event, FrameLevels, ScoreTracks, extract_events
from escnet.events.detect import Detection
from escnet.events.evaluate import score_events
from escnet.events.formats import (
    RAVEN_COLUMNS,
    audacity_text,
    csv_text,
    read_audacity,
    read_raven,
    write_events,
)
from escnet.events.soundscape import (
    SoundscapeConfig,
    read_reference,
    synthesize,
    trim_silence,
    write_soundscapes,
)
from escnet.events.thresholds import choose_thresholds, save_thresholds, saved_params
from escnet.events.tracks import frame_tracks
from escnet.inference.backend import ModelSpec

CLASSES = ["dog", "siren", "rain"]


def _tracks(scores: np.ndarray, activation: str = "softmax", levels=None) -> ScoreTracks:
    n = scores.shape[0]
    lv = np.zeros(n, np.float32) if levels is None else levels
    return ScoreTracks(CLASSES, scores.astype(np.float32), lv, n * 0.1, 5.0, 1.0, n, activation)


def _ramp(n: int, spans: dict[int, list[tuple[int, int]]], high: float = 0.9) -> np.ndarray:
    scores = np.full((n, len(CLASSES)), 0.05)
    for c, pieces in spans.items():
        for a, b in pieces:
            scores[a:b, c] = high
    return scores


def test_frame_tracks_average_the_windows_covering_each_frame() -> None:
    # Two 1-s windows overlapping by half: the shared half gets their mean.
    scores, levels = frame_tracks(
        np.array([0.0, 0.5]), np.array([1.0, 1.5]), np.array([[1.0, 0.0], [0.0, 1.0]]), 1.5
    )
    assert scores.shape == (15, 2)
    assert np.allclose(scores[:5, 0], 1) and np.allclose(scores[5:10, 0], 0.5)
    assert np.allclose(scores[10:, 1], 1)
    assert np.all(levels == 0)  # no levels measured: nothing counts as silent


def test_frame_levels_stream_block_by_block_like_at_once() -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(12_345) * 0.1).astype(np.float32)
    x[4000:8000] = 0
    whole, parts = FrameLevels(1000), FrameLevels(1000)
    whole.push(x)
    for k in range(0, x.size, 777):
        parts.push(x[k : k + 777])
    assert np.allclose(whole.levels(), parts.levels())
    assert whole.levels()[50] == -120.0 and -25 < whole.levels()[0] < -15


def test_events_keep_their_edges_merge_short_gaps_and_drop_short_runs() -> None:
    scores = _ramp(300, {0: [(100, 140), (145, 160), (200, 203)], 1: [(250, 280)]})
    events = extract_events(_tracks(scores), DetectionParams(median_filter=0.3), source="a.wav")
    assert [(e.label, e.onset, e.offset) for e in events] == [
        ("dog", 10.0, 16.0),  # the 0.5-s gap closed; the 0.3-s blip at 20 s dropped
        ("siren", 25.0, 28.0),
    ]
    assert events[0].file == "a.wav" and events[0].peak == pytest.approx(0.9)
    assert events[0].mean < events[0].peak  # the closed gap's frames count in the mean


def test_softmax_gives_one_class_at_a_time_sigmoid_may_overlap() -> None:
    scores = _ramp(200, {0: [(50, 150)], 1: [(100, 200)]})
    scores[100:150, 1] = 0.95  # siren louder where both sound
    soft = extract_events(_tracks(scores), DetectionParams(median_filter=0))
    assert [(e.label, e.onset, e.offset) for e in soft] == [
        ("dog", 5.0, 10.0),
        ("siren", 10.0, 20.0),
    ]
    multi = extract_events(_tracks(scores, "sigmoid"), DetectionParams(median_filter=0))
    assert [(e.label, e.onset, e.offset) for e in multi] == [
        ("dog", 5.0, 15.0),
        ("siren", 10.0, 20.0),
    ]


def test_edges_narrow_an_event_to_where_its_track_is_high() -> None:
    # A track that climbs over 5 s to a 2-s plateau and falls again, as overlapping windows
    # make it around a sound at 15-17 s.
    scores = np.full((300, 3), 0.02)
    up = np.linspace(0.1, 0.9, 50)
    scores[100:150, 0], scores[150:170, 0], scores[170:220, 0] = up, 0.9, up[::-1]
    wide = extract_events(_tracks(scores), DetectionParams(threshold=0.3, median_filter=0))
    narrow = extract_events(
        _tracks(scores), DetectionParams(threshold=0.3, median_filter=0, edge=0.9)
    )
    assert [(e.onset, e.offset) for e in wide] == [(11.3, 20.7)]
    assert [(e.onset, e.offset) for e in narrow] == [(14.4, 17.6)]


def test_relative_tracks_ignore_a_steady_background_class() -> None:
    scores = _ramp(300, {2: [(0, 300)]}, high=0.7)  # "rain" all along: the background
    scores[100:150, 0] = 0.75  # a dog over it
    plain = extract_events(_tracks(scores, "sigmoid"), DetectionParams(median_filter=0))
    relative = DetectionParams(median_filter=0, relative=True, threshold=0.3)
    assert [e.label for e in plain] == ["rain", "dog"]
    assert [
        (e.label, e.onset, e.offset) for e in extract_events(_tracks(scores, "sigmoid"), relative)
    ] == [("dog", 10.0, 15.0)]


def _noise_floor(n: int, seed: int = 0) -> np.ndarray:
    """Frame levels of a steady background: -40 dBFS, give or take half a dB."""
    return (-40.0 + np.random.default_rng(seed).uniform(-0.5, 0.5, n)).astype(np.float32)


def test_level_edges_put_an_event_where_its_sound_is() -> None:
    # 60 s; the windows' scores rise 5 s before a sound at 20.0-22.0 s and fall 5 s after it,
    # as overlapping windows make them; the sound is 8 dB over a steady background.
    scores = np.full((600, 3), 0.02)
    up = np.linspace(0.1, 0.9, 50)
    scores[150:200, 0], scores[200:220, 0], scores[220:270, 0] = up, 0.9, up[::-1]
    levels = _noise_floor(600)
    levels[200:220] = -32.0
    tracks = _tracks(scores, levels=levels)
    by_level = extract_events(tracks, DetectionParams(threshold=0.5, median_filter=0))
    by_track = DetectionParams(threshold=0.5, median_filter=0, level_edges=0)
    assert [(e.label, e.onset, e.offset) for e in by_level] == [("dog", 20.0, 22.0)]
    assert [(e.onset, e.offset) for e in extract_events(tracks, by_track)] == [(17.5, 24.5)]


def test_a_short_sound_keeps_its_short_event_while_a_short_run_is_dropped() -> None:
    # A 0.2-s bark at 10.0 s: the windows that hold it score it for about 5 s, the level says
    # 0.2 s. The minimum duration is of the run of the track, so the bark stays.
    scores = _ramp(600, {0: [(60, 110)]})
    levels = _noise_floor(600)
    levels[100:102] = -32.0
    tracks = _tracks(scores, levels=levels)
    events = extract_events(tracks, DetectionParams(median_filter=0, min_duration=0.5))
    assert [(e.label, e.onset, e.offset) for e in events] == [("dog", 10.0, 10.2)]
    # A 0.3-s run of the track is a blip, even over a loud sound.
    blip = _tracks(_ramp(600, {0: [(100, 103)]}), levels=levels)
    assert extract_events(blip, DetectionParams(median_filter=0, min_duration=0.5)) == []


def test_level_edges_drop_a_run_with_no_sound_over_the_background() -> None:
    # The model names the steady background "rain" for 10 s; nothing is louder there.
    scores = _ramp(600, {2: [(100, 200)]}, high=0.95)
    tracks = _tracks(scores, levels=_noise_floor(600))
    assert extract_events(tracks, DetectionParams(median_filter=0)) == []
    off = DetectionParams(median_filter=0, level_edges=0)
    assert [e.label for e in extract_events(tracks, off)] == ["rain"]
    # Under 30 s, a steady sound cannot be told from the background: the tracks' edges.
    short = _tracks(scores[:290], levels=_noise_floor(290))
    assert [e.label for e in extract_events(short, DetectionParams(median_filter=0))] == ["rain"]


def test_level_edges_keep_one_class_per_sound_for_a_softmax_model() -> None:
    # Two classes take turns at the top around one sound: both runs find it; one event stays,
    # the class with the higher mean score over it.
    scores = np.full((600, 3), 0.05)
    scores[190:205, 0], scores[205:225, 1] = 0.6, 0.8
    levels = _noise_floor(600)
    levels[195:222] = -30.0
    events = extract_events(_tracks(scores, levels=levels), DetectionParams(median_filter=0))
    assert [(e.label, e.onset, e.offset) for e in events] == [("siren", 19.5, 22.2)]


def test_silent_frames_get_no_events_whatever_the_scores() -> None:
    scores = _ramp(200, {0: [(0, 200)]}, high=0.96)
    levels = np.full(200, -120.0, np.float32)
    levels[120:160] = -20.0
    events = extract_events(_tracks(scores, levels=levels))
    assert [(e.onset, e.offset) for e in events] == [(12.0, 16.0)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 1.5},
        {"threshold": -0.1},
        {"thresholds": {"dog": float("nan")}},
        {"min_duration": -1.0},
        {"max_gap": float("inf")},
        {"median_filter": -0.5},
        {"edge": 1.2},
        {"level_edges": -1.0},
        {"level_margin": float("nan")},
    ],
)
def test_bad_params_are_refused_naming_the_option(kwargs: dict) -> None:
    with pytest.raises(ParameterError, match=next(iter(kwargs)).rstrip("s")):
        DetectionParams(**kwargs)


def _detection(events: list[Event], duration: float = 30.0) -> Detection:
    tracks = _tracks(np.zeros((int(duration * 10), 3)))
    return Detection(events[0].file if events else "x.wav", events, tracks, DetectionParams())


def test_raven_tables_and_audacity_labels_read_back_with_crowsetta(tmp_path: Path) -> None:
    a = [Event("a.wav", 1.0, 2.5, "dog", 0.9, 0.8), Event("a.wav", 10.0, 12.0, "siren", 0.7, 0.6)]
    b = [Event("b.wav", 3.0, 4.0, "rain", 0.95, 0.9)]
    table = write_events([_detection(a), _detection(b)], tmp_path / "t.txt", "raven")
    header = table.read_text().splitlines()[0].split("\t")
    assert tuple(header) == RAVEN_COLUMNS
    back = read_raven(table)
    assert [(e.file, e.onset, e.offset, e.label) for e in back] == [
        ("a.wav", 1.0, 2.5, "dog"),
        ("a.wav", 10.0, 12.0, "siren"),
        ("b.wav", 33.0, 34.0, "rain"),  # the second file's times run on after the first's 30 s
    ]
    assert back[0].peak == pytest.approx(0.9) and back[0].mean == pytest.approx(0.8)
    labels = write_events([_detection(a)], tmp_path / "a.txt", "audacity")
    assert labels.read_text() == "1.0\t2.5\tdog\n10.0\t12.0\tsiren\n"
    assert [(e.onset, e.offset, e.label) for e in read_audacity(labels)] == [
        (1.0, 2.5, "dog"),
        (10.0, 12.0, "siren"),
    ]
    empty = write_events([_detection([])], tmp_path / "none.txt", "raven")
    assert read_raven(empty) == [] and audacity_text([_detection([])]) == ""
    assert csv_text([_detection(a)]).splitlines()[1] == "a.wav,1.0,2.5,dog,0.9,0.8"


def test_scores_follow_sed_eval_collars() -> None:
    ref = [[Event("a", 10.0, 15.0, "dog", 1, 1), Event("a", 40.0, 45.0, "siren", 1, 1)]]
    near = [[Event("a", 10.4, 15.3, "dog", 1, 1), Event("a", 41.0, 45.0, "siren", 1, 1)]]
    s = score_events(ref, near, [60.0], CLASSES)
    assert s.per_class["dog"]["event_f1"] == 1.0  # onset 0.4 s late: inside the 0.5-s collar
    assert s.per_class["siren"]["event_f1"] == 0.0  # 1 s late: outside
    assert s.event_f1 == pytest.approx(0.5)
    # 1-s segments: dog 10-15 for 10-14 (one extra), siren 41-44 for 40-44 (one missed)
    assert s.segment_f1 == pytest.approx(18 / 20)


def test_thresholds_are_chosen_saved_and_read_back(tmp_path: Path) -> None:
    scores = _ramp(600, {0: [(100, 150)]}, high=0.9)
    scores[300:350, 0] = 0.52  # a weaker false alarm: the chosen threshold must be above it
    det = Detection("a.wav", [], _tracks(scores), DetectionParams())
    ref = [[Event("a.wav", 10.0, 15.0, "dog", 1, 1)]]
    chosen = choose_thresholds([det], ref, params=DetectionParams(median_filter=0))
    assert 0.52 < chosen.thresholds["dog"] <= 0.9
    # The others had no reference event and no false alarm: the default.
    assert chosen.thresholds["siren"] == chosen.thresholds["rain"] == 0.5
    model = tmp_path / "model"
    model.mkdir()
    meta = {"model": "m", "classes": CLASSES, "sample_rate": 16000, "clip_seconds": 5.0}
    (model / "model.json").write_text(json.dumps(meta))
    save_thresholds(model, chosen, chosen_on="one soundscape", hop=1.0)
    saved = json.loads((model / "model.json").read_text())
    assert saved["detection"]["chosen_on"] == "one soundscape"
    spec = ModelSpec("m", CLASSES, 16000, 5.0, metadata=saved, path=model)
    assert saved_params(spec) == chosen
    # Saved before events took their edges from the level: they keep the tracks' edges.
    del saved["detection"]["level_edges"]
    old = saved_params(ModelSpec("m", CLASSES, 16000, 5.0, metadata=saved, path=model))
    assert old.level_edges == 0 and DetectionParams().level_edges == 2
    saved["detection"]["thresholds"] = {"cat": 0.5}
    with pytest.raises(ModelDirError, match="model.json.*cat"):
        saved_params(ModelSpec("m", CLASSES, 16000, 5.0, metadata=saved, path=model))


def _clip(path: Path, freq: float, sr: int = 16000) -> str:
    t = np.arange(int(1.5 * sr)) / sr
    y = np.zeros(5 * sr, np.float32)
    y[sr : sr + t.size] = 0.5 * np.sin(2 * np.pi * freq * t)  # 1.5 s of tone in 5 s
    sf.write(path, y, sr)
    return str(path)


def test_soundscapes_follow_their_stated_draws_and_resume(tmp_path: Path) -> None:
    sources = [
        (_clip(tmp_path / f"{f}.wav", f), name) for f, name in ((300, "dog"), (3000, "siren"))
    ]
    config = SoundscapeConfig(duration=20.0, snr=(6.0, 6.0), sample_rate=8000)
    paths = write_soundscapes(sources, tmp_path / "out", 3, config, seed=5)
    for path in paths:
        y, sr = sf.read(path)
        assert sr == 8000 and y.size == 160_000
        events = read_reference(path)
        record = json.loads(path.with_suffix(".json").read_text())
        assert 1 <= len(events) <= 4 == config.max_events
        assert len(record["events"]) == len(events)
        for e in events:
            assert e.offset - e.onset == pytest.approx(1.5, abs=0.06)  # trimmed to the tone
            assert e.onset >= 0 and e.offset <= 20.0
        for a, b in zip(events, events[1:], strict=False):
            assert b.onset >= a.offset + config.min_gap - 1e-6
    stamp = paths[0].stat().st_mtime_ns
    write_soundscapes(sources, tmp_path / "out", 3, config, seed=5)
    assert paths[0].stat().st_mtime_ns == stamp  # already there: kept, not made again


def test_the_background_has_its_stated_level() -> None:
    config = SoundscapeConfig(duration=10.0, sample_rate=8000, min_events=0, max_events=0)
    scape = synthesize([], config, seed=1)
    assert scape.placements == []
    rms = np.sqrt(np.mean(scape.audio.astype(np.float64) ** 2))
    assert 20 * np.log10(rms) == pytest.approx(-35.0, abs=0.5)


def test_a_placed_event_is_at_its_onset_at_the_asked_snr(tmp_path: Path) -> None:
    sr = 8000
    clip = _clip(tmp_path / "tone.wav", 1000)
    config = SoundscapeConfig(duration=10.0, sample_rate=sr, min_events=0, max_events=0)
    quiet = synthesize([], config, seed=3)
    loud = synthesize([], config, seed=3, placements=[(clip, "tone", 4.0, 6.0)])
    (p,) = loud.placements
    assert p.onset == 4.0 and p.duration == pytest.approx(1.5, abs=0.06)
    a, b = int(4.0 * sr), int(5.5 * sr)
    event = loud.audio[a:b].astype(np.float64) - quiet.audio[a:b]
    snr = 20 * np.log10(np.sqrt(np.mean(event**2)) / np.sqrt(np.mean(quiet.audio[a:b] ** 2)))
    assert snr == pytest.approx(6.0, abs=0.5)
    assert np.allclose(loud.audio[: a - 10], quiet.audio[: a - 10])


def test_a_silent_source_clip_is_refused() -> None:
    with pytest.raises(AudioError, match="silent"):
        trim_silence(np.zeros(8000, np.float32), 8000)

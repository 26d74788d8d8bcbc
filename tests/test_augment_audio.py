"""The paper's NAA transforms, on signals made here (tones, bursts, impulses; no files)."""

from __future__ import annotations

import json

import numpy as np
import pedalboard  # noqa: F401  (dev extras)
import pytest
import python_stretch  # noqa: F401  (dev extras)

from escnet.augment.audio import (
    DSP_BACKENDS,
    NAA_VARIANTS,
    AddNoise,
    BaseTransform,
    Compose,
    OneOf,
    PitchShift,
    TimeShift,
    TimeStretch,
    TrimSilence,
    active_duration,
    naa_transform,
    naa_variants,
    peak_frequency,
    random_naa_chain,
    time_stretch,
    variant_rng,
)

SR = 22050
PITCH_TOLERANCE = 0.01
DURATION_TOLERANCE = 0.02

# One parametrisation per backend. The optional back-ends' packages are in the dev extras and
# imported above: a missing one is a broken install and fails, not a reason to skip their tests.
BACKENDS = list(DSP_BACKENDS)


# The same test signals as benchmarks/bench_naa_dsp.py.
def tone(sr: int = SR, seconds: float = 3.0, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def tone_burst(
    sr: int = SR, seconds: float = 1.0, start: float = 0.25, total: float = 3.0
) -> np.ndarray:
    y = np.zeros(int(total * sr), dtype=np.float32)
    s = int(start * sr)
    y[s : s + int(seconds * sr)] = tone(sr, seconds)
    return y


def noise(seconds: float = 1.0, sr: int = SR, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    c = clean.astype(np.float64)
    n = noisy.astype(np.float64) - c
    return float(10 * np.log10(np.mean(c**2) / np.mean(n**2)))


def all_transforms() -> list[BaseTransform | Compose | OneOf]:
    return [
        TimeShift(0.2),
        PitchShift((-2.0, 2.0)),
        TimeStretch((0.8, 1.2)),
        TrimSilence(),
        AddNoise(20.0, "pink"),
        Compose([TimeShift(0.1), AddNoise(10.0)]),
        OneOf([TimeShift(0.1), AddNoise(10.0)]),
        random_naa_chain(),
    ]


# ----------------------------------------------------------------------------------- TimeShift


@pytest.mark.parametrize("direction", ["left", "right"])
def test_time_shift_moves_impulse_and_zeroes_vacated_part(direction: str) -> None:
    x = np.ones(4000, dtype=np.float32)
    x[1500] = 5.0
    t = TimeShift(max_seconds=0.1, direction=direction, seed=3)
    y = t(x, 8000)
    shift = t.parameters["shift"]
    assert shift != 0 and abs(shift) < 800
    # Paper semantics: "left" rolls forward (content later), "right" backward.
    assert (shift > 0) == (direction == "left")
    assert int(np.argmax(y)) == 1500 + shift
    if shift > 0:
        assert not y[:shift].any()
        np.testing.assert_array_equal(y[shift:], x[:-shift])
    else:
        assert not y[shift:].any()
        np.testing.assert_array_equal(y[:shift], x[-shift:])


def test_time_shift_both_directions_and_range() -> None:
    t = TimeShift(max_seconds=0.01, direction="both", seed=0)
    shifts = [t.randomize_parameters(np.zeros(10), 1000, t._rng)["shift"] for _ in range(200)]
    assert min(shifts) < 0 < max(shifts)
    assert all(-10 < s < 10 for s in shifts)  # [0, max_seconds * sr) in magnitude


def test_time_shift_apply_is_deterministic_and_zero_shift_is_identity() -> None:
    x = np.arange(10, dtype=np.float32)
    t = TimeShift()
    np.testing.assert_array_equal(t.apply(x, 10, shift=3), [0, 0, 0, 0, 1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(t.apply(x, 10, shift=-3), [3, 4, 5, 6, 7, 8, 9, 0, 0, 0])
    np.testing.assert_array_equal(t.apply(x, 10, shift=0), x)
    assert TimeShift(0.0)(x, 10).tolist() == x.tolist()


# ---------------------------------------------------------------------------------- PitchShift


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("semitones", [2.0, -2.0])
def test_pitch_shift_moves_spectral_peak(backend: str, semitones: float) -> None:
    x = tone()
    y = PitchShift(semitones, backend=backend)(x, SR)
    middle = slice(SR // 2, -SR // 2)
    ratio = peak_frequency(y[middle], SR) / peak_frequency(x[middle], SR)
    assert ratio == pytest.approx(2 ** (semitones / 12), rel=PITCH_TOLERANCE)


def test_pitch_presets() -> None:
    assert PitchShift.pps().semitones == 2.0
    assert PitchShift.nps().semitones == -2.0
    with pytest.raises(ValueError, match="semitones"):
        PitchShift.pps(-1.0)
    with pytest.raises(ValueError, match="semitones"):
        PitchShift.nps(1.0)


def test_pitch_shift_range_draws_inside_it() -> None:
    t = PitchShift((-3.0, -1.0), seed=0)
    drawn = [t.randomize_parameters(np.zeros(1), SR, t._rng)["semitones"] for _ in range(50)]
    assert all(-3.0 <= d <= -1.0 for d in drawn) and len(set(drawn)) == 50


# --------------------------------------------------------------------------------- TimeStretch


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rate", [0.7, 1.2])
def test_time_stretch_changes_burst_duration(backend: str, rate: float) -> None:
    x = tone_burst()
    t = TimeStretch(rate, backend=backend)
    raw = t.stretch(x, SR, rate=rate)
    assert raw.shape == (round(x.shape[0] / rate),)
    ratio = active_duration(raw, SR) / active_duration(x, SR)
    assert ratio == pytest.approx(1 / rate, rel=DURATION_TOLERANCE)
    y = t(x, SR)
    assert y.shape == x.shape
    if rate < 1:  # slow: the first N samples are kept
        np.testing.assert_array_equal(y, raw[: x.shape[0]])
    else:  # fast: zero-padded at the end
        np.testing.assert_array_equal(y[: raw.shape[0]], raw)
        assert not y[raw.shape[0] :].any()


def test_time_stretch_presets_and_function() -> None:
    assert TimeStretch.sts().rate == 0.7
    assert TimeStretch.fts().rate == 1.2
    with pytest.raises(ValueError, match="rate"):
        TimeStretch.sts(1.5)
    with pytest.raises(ValueError, match="rate"):
        TimeStretch.fts(0.5)
    assert time_stretch(np.zeros(4096, np.float32), sample_rate=SR, rate=0.5).shape == (8192,)


# --------------------------------------------------------------------------------- TrimSilence


def test_trim_silence_keeps_allowed_silence_between_bursts() -> None:
    sr = 16000
    burst = tone(sr, 0.3)
    gap = np.zeros(sr, np.float32)  # 1 s of silence between the bursts
    x = np.concatenate([np.zeros(8000, np.float32), burst, gap, burst, np.zeros(6400, np.float32)])
    keep = 0.2
    y = TrimSilence(top_db=30.0, keep_seconds=keep)(x, sr)
    assert y.shape == x.shape and y.dtype == np.float32
    loud = np.flatnonzero(np.abs(y) > 1e-3)
    gaps = np.diff(loud) - 1
    inner = int(gaps.max())
    # The 1 s silence shrinks to keep_seconds (a sine's first/last loud sample: within 2 samples).
    assert abs(inner - keep * sr) <= 2
    # Leading silence shrinks to keep_seconds / 2.
    assert abs(loud[0] - keep * sr / 2) <= 2
    # Both bursts survive whole, and the end is zero padding.
    assert loud[-1] - loud[0] + 1 == pytest.approx(2 * burst.size + keep * sr, abs=4)
    assert not y[loud[-1] + int(keep * sr / 2) + 2 :].any()


def test_trim_silence_short_gap_kept_whole_and_silent_clip_unchanged() -> None:
    sr = 16000
    burst = tone(sr, 0.2)
    x = np.concatenate([burst, np.zeros(800, np.float32), burst])  # 50 ms gap < keep
    np.testing.assert_array_equal(TrimSilence(keep_seconds=0.2)(x, sr), x)
    silent = np.zeros(1000, np.float32)
    np.testing.assert_array_equal(TrimSilence()(silent, sr), silent)


# ------------------------------------------------------------------------------------ AddNoise


@pytest.mark.parametrize("color", ["white", "pink"])
@pytest.mark.parametrize("target", [0.0, 10.0, 25.0])
def test_add_noise_reaches_snr(color: str, target: float) -> None:
    x = tone(seconds=1.0)
    y = AddNoise(target, color=color, seed=1)(x, SR)
    assert snr_db(x, y) == pytest.approx(target, abs=0.5)


def test_add_noise_range_and_pink_spectrum() -> None:
    x = tone(seconds=1.0)
    t = AddNoise((5.0, 15.0), seed=0)
    for _ in range(5):
        y = t(x, SR)
        assert snr_db(x, y) == pytest.approx(t.parameters["snr_db"], abs=0.5)
        assert 5.0 <= t.parameters["snr_db"] <= 15.0
    # Pink: power density ~ 1/f, so 100-200 Hz is ~10 dB above 1-2 kHz per Hz.
    silence_free = np.full(4 * SR, 0.1, np.float32)  # DC: its own spectrum is a single bin
    n = AddNoise(0.0, "pink", seed=2)(silence_free, SR) - silence_free
    psd = np.abs(np.fft.rfft(n)) ** 2
    f = np.fft.rfftfreq(n.size, 1 / SR)
    low = psd[(f >= 100) & (f < 200)].mean()
    high = psd[(f >= 1000) & (f < 2000)].mean()
    assert 10 * np.log10(low / high) == pytest.approx(10.0, abs=1.5)


def test_add_noise_leaves_silent_clip_alone() -> None:
    silent = np.zeros(100, np.float32)
    np.testing.assert_array_equal(AddNoise(10.0)(silent, SR), silent)


# ------------------------------------------------------------------------- seeds, p, contract


def random_transforms(seed: int) -> list[BaseTransform | Compose | OneOf]:
    return [
        TimeShift(0.2, seed=seed),
        PitchShift((-2.0, 2.0), seed=seed),
        TimeStretch((0.8, 1.2), seed=seed),
        AddNoise((10.0, 20.0), seed=seed),
        OneOf([TimeShift(0.2), AddNoise(10.0)], seed=seed),
        random_naa_chain(p_trim=0.0, p_stretch=1.0, p_pitch=0.0, p_shift=1.0, seed=seed),
    ]


@pytest.mark.parametrize("index", range(6))
def test_same_seed_same_output_different_seed_different_output(index: int) -> None:
    x = noise(0.5)

    def run(seed: int) -> np.ndarray:
        return random_transforms(seed)[index](x, SR)

    np.testing.assert_array_equal(run(7), run(7))
    assert not np.array_equal(run(7), run(8))


def test_seed_argument_reproduces_sequence_and_rng_overrides_it() -> None:
    x = noise(0.5)
    a, b = TimeShift(0.2, seed=5), TimeShift(0.2, seed=5)
    assert [a(x, SR).tolist() for _ in range(3)] == [b(x, SR).tolist() for _ in range(3)]
    a.reseed(5)
    np.testing.assert_array_equal(a(x, SR), TimeShift(0.2, seed=5)(x, SR))
    chain = random_naa_chain(seed=1)
    first = chain(x, SR)
    chain(x, SR)
    chain.reseed(1)
    np.testing.assert_array_equal(chain(x, SR), first)
    c = TimeShift(0.2, seed=123)
    np.testing.assert_array_equal(
        c(x, SR, rng=np.random.default_rng(9)), a(x, SR, rng=np.random.default_rng(9))
    )


def test_p_zero_returns_unchanged_copy() -> None:
    x = noise(0.5)
    for t in all_transforms():
        t.p = 0.0
        y = t(x, SR)
        assert y is not x
        np.testing.assert_array_equal(y, x)


def test_probability_applies_about_p_of_the_time() -> None:
    x = noise(0.05)
    t = AddNoise(10.0, p=0.3, seed=0)
    applied = sum(not np.array_equal(t(x, SR), x) for _ in range(400))
    assert 80 <= applied <= 160


@pytest.mark.parametrize("index", range(8))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_untouched_output_float32_same_length(index: int, dtype: type) -> None:
    x = np.concatenate([np.zeros(2000), noise(0.5).astype(np.float64), np.zeros(3000)])
    x = x.astype(dtype)
    before = x.copy()
    y = all_transforms()[index](x, SR, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(x, before)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert not np.shares_memory(x, y)


# ------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: TimeStretch(rate=-1), "rate"),
        (lambda: TimeStretch(rate=0), "rate"),
        (lambda: TimeStretch(rate=(1.2, 0.8)), "rate"),
        (lambda: TrimSilence(top_db=0), "top_db"),
        (lambda: TrimSilence(top_db=-5), "top_db"),
        (lambda: TrimSilence(keep_seconds=-0.1), "keep_seconds"),
        (lambda: TimeShift(p=1.5), "p"),
        (lambda: PitchShift(p=-0.1), "p"),
        (lambda: Compose([TimeShift()], p=2), "p"),
        (lambda: TimeShift(direction="up"), "direction"),
        (lambda: TimeShift(max_seconds=-1), "max_seconds"),
        (lambda: PitchShift(semitones=float("nan")), "semitones"),
        (lambda: PitchShift(backend="sox"), "backend"),
        (lambda: AddNoise(color="blue"), "color"),
        (lambda: AddNoise(snr_db="loud"), "snr_db"),
        (lambda: TimeShift(seed=-1), "seed"),
        (lambda: Compose([]), "transforms"),
        (lambda: OneOf([TimeShift()], weights=[1, 2]), "weights"),
        (lambda: naa_transform("reverb"), "name"),
        (lambda: random_naa_chain(p_pitch=3.0), "p_pitch"),
    ],
)
def test_bad_parameters_raise_value_error_naming_them(make: object, name: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        make()  # type: ignore[operator]


def test_message_format() -> None:
    with pytest.raises(ValueError, match=r"^rate must be > 0, got -1$"):
        TimeStretch(rate=-1)


def test_bad_call_arguments() -> None:
    with pytest.raises(ValueError, match="samples"):
        TimeShift()(np.zeros((2, 100), np.float32), SR)
    with pytest.raises(ValueError, match="sample_rate"):
        TimeShift()(np.zeros(100, np.float32), 0)


# ----------------------------------------------------------------------- params, repr, variants


def test_params_and_repr() -> None:
    t = TimeStretch((0.8, 1.2), p=0.5, seed=3)
    assert t.params() == {"rate": (0.8, 1.2), "backend": "librosa", "p": 0.5, "seed": 3}
    assert repr(t) == "TimeStretch(rate=(0.8, 1.2), backend='librosa', p=0.5, seed=3)"
    chain = random_naa_chain(seed=1)
    json.dumps(chain.params())  # usable as a cache key
    assert "TrimSilence(top_db=30.0" in repr(chain)
    assert [m["transform"] for m in chain.params()["transforms"]] == [
        "TrimSilence",
        "OneOf",
        "OneOf",
        "TimeShift",
        "AddNoise",
    ]


def test_naa_variants_order_shapes_and_determinism() -> None:
    x = np.concatenate([np.zeros(SR // 2, np.float32), noise(1.0), np.zeros(SR // 2, np.float32)])
    v = naa_variants(x, SR, seed=4)
    assert tuple(v) == NAA_VARIANTS == ("shift", "pps", "nps", "sts", "fts", "ts")
    for y in v.values():
        assert y.dtype == np.float32 and y.shape == x.shape
        assert not np.array_equal(y, x)
    again = naa_variants(x, SR, seed=4)
    assert all(np.array_equal(v[k], again[k]) for k in v)
    assert not np.array_equal(naa_variants(x, SR, seed=5)["shift"], v["shift"])
    # A variant depends on (clip, params, seed) only, not on which others are computed.
    np.testing.assert_array_equal(
        naa_variants(x, SR, seed=4, names=("shift",))["shift"], v["shift"]
    )
    np.testing.assert_array_equal(
        naa_transform("shift")(x, SR, rng=variant_rng(4, "shift")), v["shift"]
    )


def test_naa_transform_defaults() -> None:
    assert naa_transform("shift").params()["max_seconds"] == 0.5
    assert naa_transform("shift").params()["direction"] == "both"
    assert naa_transform("pps").params()["semitones"] == 2.0
    assert naa_transform("nps").params()["semitones"] == -2.0
    assert naa_transform("sts").params()["rate"] == 0.7
    assert naa_transform("fts").params()["rate"] == 1.2
    assert naa_transform("ts").params()["top_db"] == 30.0


def test_random_chain_varies_between_calls() -> None:
    chain = random_naa_chain(seed=0)
    x = noise(0.5)
    outs = [chain(x, SR) for _ in range(8)]
    assert len({o.tobytes() for o in outs}) > 3

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import tone
from escnet.data.audio import READ_MARGIN_S, AudioConfig, fix_length, load_audio, resample
from escnet.errors import AudioError


def test_stereo_is_mixed_to_mono_and_resampled(tmp_path: Path) -> None:
    left, right = tone(440, 1.0, 44100), np.zeros(44100, np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 44100)
    y = load_audio(path, AudioConfig(sample_rate=22050, duration=None))
    assert y.shape == (22050,) and y.dtype == np.float32
    # The mix is the mean of the channels: half the tone's amplitude.
    assert abs(np.abs(y[1000:-1000]).max() - 0.25) < 0.01
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 22050 / len(y) - 440) < 2


def test_pad_and_crop_to_duration(tmp_path: Path) -> None:
    path = tmp_path / "short.flac"
    sf.write(path, tone(200, 1.0, 16000), 16000)
    y = load_audio(path, AudioConfig(sample_rate=16000, duration=2.5))
    assert y.shape == (40000,)
    assert not y[16000:].any()  # zero-padded at the end
    y = load_audio(path, AudioConfig(sample_rate=16000, duration=0.5))
    assert y.shape == (8000,)
    # Cropping keeps the start; FLAC stores 16-bit samples, hence the tolerance.
    np.testing.assert_allclose(y, tone(200, 1.0, 16000)[:8000], atol=1e-4)
    assert fix_length(np.arange(5.0), 3).tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.wav", b"", "empty"),
        ("text.wav", b"this is not audio at all\n" * 20, "cannot decode"),
        ("corrupt.flac", b"fLaC\x00\x00\x00\x22" + b"\x13" * 200, "cannot decode"),
    ],
)
def test_unusable_files_raise_audio_error_naming_the_file(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioError, match=message) as info:
        load_audio(path)
    assert name in str(info.value)
    assert info.value.path == path


def test_nan_zero_length_and_missing_files(tmp_path: Path) -> None:
    nan = tmp_path / "nan.wav"
    data = tone(300, 0.2, 8000)
    data[10:20] = np.nan
    sf.write(nan, data, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(nan)
    empty = tmp_path / "zero.wav"
    sf.write(empty, np.zeros(0, np.float32), 8000)
    with pytest.raises(AudioError, match="zero samples"):
        load_audio(empty)
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "missing.wav")


def test_silent_file_loads_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(8000, np.float32), 8000)
    with pytest.warns(UserWarning, match="silent"):
        y = load_audio(path, AudioConfig(sample_rate=8000, duration=1.0))
    assert not y.any()


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        AudioConfig(sample_rate=0)
    with pytest.raises(ValueError, match="duration"):
        AudioConfig(duration=-1)


def test_truncated_wav_is_reported_not_padded(tmp_path: Path) -> None:
    whole = tmp_path / "whole.wav"
    sf.write(whole, tone(300, 1.0, 8000), 8000)
    data = whole.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated: its WAV header declares 16000 bytes") as info:
        load_audio(cut, AudioConfig(sample_rate=8000, duration=1.0))
    assert info.value.path == cut and "complete copy" in info.value.reason
    # A streaming writer's unknown length (0xFFFFFFFF) is not truncation.
    streamed = tmp_path / "streamed.wav"
    streamed.write_bytes(data[:40] + b"\xff\xff\xff\xff" + data[44:])
    assert load_audio(streamed, AudioConfig(sample_rate=8000, duration=None)).shape == (8000,)


def test_truncated_flac_is_reported(tmp_path: Path) -> None:
    whole = tmp_path / "whole.flac"
    sf.write(whole, tone(300, 1.0, 8000), 8000)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(AudioError, match="truncated or damaged"):
        load_audio(cut)


def test_directory_and_unreadable_files_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "clip.wav"
    folder.mkdir()
    with pytest.raises(AudioError, match="is a directory, not an audio file"):
        load_audio(folder)
    locked = tmp_path / "locked.wav"
    sf.write(locked, tone(300, 0.1, 8000), 8000)
    real_open = open

    def deny(file: object, *args: object, **kwargs: object) -> object:
        if str(file) == str(locked):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    # root may read any file, so the refusal is simulated where the loader opens the file.
    monkeypatch.setattr("builtins.open", deny)
    with pytest.raises(AudioError, match="permission denied") as info:
        load_audio(locked)
    assert "cannot decode" not in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_permission_denied_for_real(tmp_path: Path) -> None:
    locked = tmp_path / "locked.wav"
    sf.write(locked, tone(300, 0.1, 8000), 8000)
    locked.chmod(0)
    with pytest.raises(AudioError, match="permission denied"):
        load_audio(locked)


def test_long_file_is_read_only_as_far_as_the_duration_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "long.wav"
    sf.write(
        path, np.random.default_rng(0).uniform(-0.5, 0.5, 44100 * 20).astype(np.float32), 44100
    )
    cfg = AudioConfig(sample_rate=22050, duration=2.0)
    frames: list[int] = []
    real_read = sf.SoundFile.read

    def counting(self: sf.SoundFile, frames_: int = -1, *args: object, **kw: object) -> object:
        out = real_read(self, frames_, *args, **kw)  # type: ignore[arg-type]
        frames.append(len(out))
        return out

    monkeypatch.setattr(sf.SoundFile, "read", counting)
    y = load_audio(path, cfg)
    assert sum(frames) == int(np.ceil((2.0 + READ_MARGIN_S) * 44100))  # not 20 s
    # ... and the clip is exactly what decoding the whole file, then cropping, gives.
    data, sr = sf.read(path, dtype="float32")
    expected = resample(data, sr, 22050)[: cfg.num_samples]
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("duration", [float("inf"), float("nan"), -1.0, 0.0, 1e12])
def test_absurd_durations_are_refused(duration: float) -> None:
    with pytest.raises(ValueError, match="duration must be a number of seconds in"):
        AudioConfig(duration=duration)


def test_every_reader_refuses_a_bad_file_with_the_same_reason(tmp_path: Path) -> None:
    from conftest import bad_audio_files
    from escnet.data.audio import audio_duration, decode_blocks, open_sound
    from escnet.inference.stream import iter_blocks, open_audio

    def upload(path: Path) -> None:  # the service: the file's bytes, decoded from memory
        with open_sound(path.read_bytes(), path.name) as f:
            list(decode_blocks(f, path.name, 4096))

    expected = {
        "wav_4gb": "truncated: its WAV header declares 4000000000 bytes of audio but the file "
        "holds 32000; replace it with a complete copy",
        "wav_half": "truncated: its WAV header declares 96000 bytes",
        "flac_half": "truncated or damaged: the decoder failed",
        "flac_unknown_length": "its header does not state its length",
        "absurd_rate": "its header declares a sample rate of 2147483647 Hz, outside the "
        "1000-1000000 Hz of real recordings",
        "too_short": "holds 4 sample(s) at 8000 Hz, less than 1 ms",
        "dangling": "dangling symbolic link to",
    }
    for kind, path in bad_audio_files(tmp_path).items():
        readers = [load_audio, lambda p: list(iter_blocks(p, 8000))]
        if kind != "flac_half":  # found from the header, before decoding
            readers += [audio_duration, open_audio]
        if kind != "dangling":
            readers.append(upload)
        reasons = []
        for read in readers:
            with pytest.raises(AudioError) as info:
                read(path)
            reasons.append(info.value.reason)
        assert len(set(reasons)) == 1, (kind, reasons)
        assert reasons[0].startswith(expected[kind]), (kind, reasons[0])
        assert any(fix in reasons[0] for fix in ("replace it", "re-encode", "remove it"))

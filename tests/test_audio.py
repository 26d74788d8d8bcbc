from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import tone
from escnet.audio import AudioConfig, fix_length, load_audio
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

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from conftest import tone
from escnet.features.spectrogram import LogMel, LogMelConfig, log_mel


def _librosa_db(y: np.ndarray, cfg: LogMelConfig) -> np.ndarray:
    mel = librosa.feature.melspectrogram(
        y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels
    )
    return librosa.power_to_db(mel, ref=np.max if cfg.ref == "max" else cfg.ref, top_db=cfg.top_db)


SIGNALS = {
    "noise": lambda: np.random.default_rng(0).standard_normal(110250).astype(np.float32) * 0.1,
    "tone": lambda: tone(440.0, 5.0, 22050),
    "chirp": lambda: librosa.chirp(fmin=100, fmax=8000, sr=22050, duration=5.0).astype(np.float32),
    "quiet_tones": lambda: tone(1000, 5.0, 22050, 1e-3) + tone(3000, 5.0, 22050, 0.3),
}


@pytest.mark.parametrize("name", sorted(SIGNALS))
@pytest.mark.parametrize("ref", [1.0, "max"])
def test_matches_librosa_within_0_01_db(name: str, ref: float | str) -> None:
    cfg = LogMelConfig(ref=ref)
    y = SIGNALS[name]()
    expected = _librosa_db(y, cfg)
    got = log_mel(y, cfg)
    assert got.shape == expected.shape == (128, 216)
    # Every bin, the ones top_db clamps to the floor too: a floor in the wrong place (or none)
    # differs there by decibels.
    assert np.abs(got - expected).max() < 0.01
    if name != "noise":  # white noise has no bin 80 dB under its loudest
        floor = expected.max() - cfg.top_db
        assert np.isclose(expected, floor).any() and np.isclose(got, got.max() - cfg.top_db).any()


def test_batch_shape_and_batch_independence() -> None:
    rng = np.random.default_rng(1)
    batch = rng.standard_normal((3, 22050)).astype(np.float32)
    module = LogMel(LogMelConfig())
    out = module(torch.from_numpy(batch))
    assert tuple(out.shape) == (3, 1, 128, 44)
    single = module(torch.from_numpy(batch[1:2]))
    torch.testing.assert_close(out[1:2], single)
    assert LogMelConfig().num_frames(22050) == 44


def test_module_rejects_wrong_rank_and_config_is_validated() -> None:
    with pytest.raises(ValueError, match="batch, samples"):
        LogMel()(torch.zeros(10))
    with pytest.raises(ValueError, match="n_mels"):
        LogMelConfig(n_mels=0)
    with pytest.raises(ValueError, match="ref"):
        LogMelConfig(ref="min")

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import tone
from escnet.cache import CODE_VERSIONS, ArrayCache, DigestMemo, file_digest
from escnet.data.audio import AudioConfig, load_audio
from escnet.data.datasets import get_dataset
from escnet.features.prepare import prepare_features
from escnet.features.spectrogram import LogMelConfig, log_mel


def test_prepare_computes_then_reuses_the_cache(tiny_esc50: Path, tmp_path: Path) -> None:
    ds = get_dataset("esc50", root=tiny_esc50)
    cold = prepare_features(ds, cache_dir=tmp_path / "c", progress=False)
    assert cold.features.shape == (30, 128, 216) and cold.cache_hits == 0
    warm = prepare_features(ds, cache_dir=tmp_path / "c", progress=False)
    assert warm.cache_hits == 30
    np.testing.assert_array_equal(cold.features, warm.features)
    # The cached image is exactly what the per-clip API computes.
    expected = log_mel(load_audio(ds[0].path, AudioConfig(sample_rate=22050, duration=5.0)))
    np.testing.assert_allclose(cold.features[0], expected, atol=1e-4)
    # Other parameters never hit entries of the first.
    other = prepare_features(ds, LogMelConfig(n_mels=64), cache_dir=tmp_path / "c", progress=False)
    assert other.cache_hits == 0 and other.features.shape[1] == 64


def test_cache_is_keyed_by_content_not_name(tiny_esc50: Path, tmp_path: Path) -> None:
    ds = get_dataset("esc50", root=tiny_esc50)
    prepare_features(ds, cache_dir=tmp_path / "c", progress=False)
    a, b = ds[0].path, ds[1].path
    sf.write(a, tone(2500, 1.0, 16000), 16000)  # same name, new content
    again = prepare_features(ds, cache_dir=tmp_path / "c", progress=False)
    assert again.cache_hits == len(ds) - 1
    expected = log_mel(load_audio(a, AudioConfig(sample_rate=22050, duration=5.0)))
    np.testing.assert_allclose(again.features[0], expected, atol=1e-4)
    shutil.copyfile(b, a)  # a copy of another clip's bytes reuses that clip's entry
    assert prepare_features(ds, cache_dir=tmp_path / "c", progress=False).cache_hits == len(ds)


def test_bad_files_are_skipped_named_and_counted(
    tiny_esc50: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ds = get_dataset("esc50", root=tiny_esc50)
    corrupt, empty, text = ds[3].path, ds[7].path, ds[11].path
    corrupt.write_bytes(corrupt.read_bytes()[:60])
    empty.write_bytes(b"")
    text.write_text("not audio\n" * 50)
    result = prepare_features(ds, cache_dir=tmp_path / "c", progress=False)
    assert len(result.skipped) == 3
    assert {p for p, _ in result.skipped} == {corrupt, empty, text}
    assert len(result.indices) == len(result.features) == len(ds) - 3
    assert 3 not in set(result.indices.tolist())
    assert result.labels.tolist() == [ds[i].label for i in result.indices]
    assert "skipped 3 of 30" in caplog.text
    assert corrupt.name in caplog.text


def test_no_partial_cache_entries(tiny_esc50: Path, tmp_path: Path) -> None:
    ds = get_dataset("esc50", root=tiny_esc50)
    prepare_features(ds, cache_dir=tmp_path / "c", progress=False)
    files = list((tmp_path / "c").rglob("*"))
    assert not [f for f in files if f.name.endswith(".tmp")]
    cache = ArrayCache(tmp_path / "c", "features")
    broken = next(cache.dir.rglob("*.npy"))
    broken.write_bytes(b"garbage")  # a damaged entry is recomputed, not trusted
    again = prepare_features(ds, cache_dir=tmp_path / "c", progress=False)
    assert again.cache_hits == len(ds) - 1


def test_digest_memo_sees_a_rewrite_that_keeps_size_and_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DigestMemo, "RACY_NS", 0)  # trust entries at once (no racy window)
    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"RIFF" + b"a" * 100)
    old = os.stat(clip)
    memo = DigestMemo(tmp_path / "digests.json")
    first = memo.digest(clip)
    memo.save()
    # An unchanged file is not read again.
    monkeypatch.setattr("escnet.cache.file_digest", lambda *_: pytest.fail("re-hashed"))
    assert DigestMemo(tmp_path / "digests.json").digest(clip) == first
    monkeypatch.undo()
    monkeypatch.setattr(DigestMemo, "RACY_NS", 0)
    # cp -p / rsync -t: same size, new content, the old mtime restored.
    clip.write_bytes(b"RIFF" + b"b" * 100)
    os.utime(clip, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert os.stat(clip).st_size == old.st_size and os.stat(clip).st_mtime_ns == old.st_mtime_ns
    assert DigestMemo(tmp_path / "digests.json").digest(clip) == file_digest(clip) != first


def test_code_version_is_part_of_the_feature_key(
    tiny_esc50: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = get_dataset("esc50", root=tiny_esc50).subset(range(4))
    prepare_features(ds, cache_dir=tmp_path / "c", progress=False)
    assert prepare_features(ds, cache_dir=tmp_path / "c", progress=False).cache_hits == 4
    monkeypatch.setitem(CODE_VERSIONS, "features", CODE_VERSIONS["features"] + 1)
    assert prepare_features(ds, cache_dir=tmp_path / "c", progress=False).cache_hits == 0


def test_directory_and_truncated_clips_are_skipped_with_their_reason(
    tiny_esc50: Path, tmp_path: Path
) -> None:
    ds = get_dataset("esc50", root=tiny_esc50)
    ds[0].path.unlink()
    ds[0].path.mkdir()  # a directory where a clip should be
    wav = ds[1].path.with_suffix(".wav")
    sf.write(wav, tone(440, 1.0, 16000), 16000)
    wav.write_bytes(wav.read_bytes()[:5000])
    ds.clips[1] = dataclasses.replace(ds.clips[1], path=wav)
    result = prepare_features(ds, cache_dir=tmp_path / "c", progress=False)
    reasons = dict(result.skipped)
    assert "is a directory" in reasons[ds[0].path]
    assert reasons[wav].startswith("truncated")
    assert len(result.indices) == len(ds) - 2


@pytest.mark.parametrize("stage", ["naa", "features"])
def test_code_versions_are_part_of_the_naa_key(stage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from escnet.augment.audio import NAA_VARIANTS
    from escnet.features.offline_naa import variants_params_digest

    args = (NAA_VARIANTS, 0, LogMelConfig(), AudioConfig())
    before = variants_params_digest(*args)
    monkeypatch.setitem(CODE_VERSIONS, stage, CODE_VERSIONS[stage] + 1)
    assert variants_params_digest(*args) != before

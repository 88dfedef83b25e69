"""Resemblyzer d-vector speaker encoder: weights, preprocessing, and speaker verification on real speech."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest
import torch

from conftest import shared_path
from speechunits.audio import load
from speechunits.encoders import speaker as spk
from speechunits.encoders.speaker import SpeakerEncoder, SpeakerEncoderError, cosine_similarity, partial_slices

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("resemblyzer") is None, reason="resemblyzer weights not installed (pip install --no-deps resemblyzer==0.1.4)"
)


@pytest.fixture(scope="module")
def encoder() -> SpeakerEncoder:
    torch.set_num_threads(1)
    return SpeakerEncoder.from_installed()


def _voice(seconds: float, f0: float, seed: int = 0) -> np.ndarray:
    """A buzzy harmonic 'voice' with syllable-rate amplitude modulation and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    x = sum(np.sin(2 * np.pi * f0 * h * t + h) / h for h in range(1, 20))
    env = 0.5 * (1 + np.sin(2 * np.pi * 4 * t))
    return (0.1 * x * env / np.abs(x).max() + 0.002 * rng.standard_normal(t.size)).astype(np.float32)


def test_weights_load_and_are_checked(encoder, tmp_path):
    assert encoder.dim == 256 and encoder.sample_rate == 16000
    assert encoder.lstm.num_layers == 3 and encoder.lstm.input_size == 40
    path = spk._find_weights()
    assert spk.file_sha256(path) == spk.PRETRAINED_SHA256
    bad = tmp_path / "pretrained.pt"
    shutil.copy(path, bad)
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside a weight tensor
    bad.write_bytes(bytes(data))
    with pytest.raises(SpeakerEncoderError, match="sha256"):
        SpeakerEncoder.from_file(bad)
    with pytest.raises(SpeakerEncoderError, match="not found"):
        SpeakerEncoder.from_file(tmp_path / "missing.pt")


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SpeakerEncoderError, match="pip install --no-deps resemblyzer==0.1.4"):
        SpeakerEncoder.from_installed()


def test_partial_slices_match_resemblyzer():
    # 77-frame steps (16000 / 1.3 / 160 rounded); the last partial kept only when >= 75 % covered
    assert [(s.start, s.stop) for s in partial_slices(16000)] == [(0, 160)]
    assert [(s.start, s.stop) for s in partial_slices(int(16000 * 2.8))] == [(0, 160), (77, 237), (154, 314)]
    assert len(partial_slices(int(16000 * 2.5))) == 2  # the third partial only 60 % covered: dropped


def test_embeddings_unit_norm_deterministic_and_batched(encoder):
    a, b = _voice(2.5, 120.0), _voice(3.2, 230.0, seed=1)
    e1 = encoder.embed(a)
    assert e1.dtype == np.float32 and e1.shape == (256,)
    assert abs(np.linalg.norm(e1) - 1) < 1e-5
    assert (e1 >= 0).all()  # ReLU before the norm
    np.testing.assert_array_equal(e1, encoder.embed(a.copy()))
    batch = encoder.embed_batch([a, b])
    assert batch.shape == (2, 256)
    np.testing.assert_allclose(batch[0], e1, atol=1e-5)
    # Volume does not matter below -30 dBFS (raised to it), long silence is trimmed away
    np.testing.assert_allclose(encoder.embed(0.5 * a), e1, atol=1e-4)
    padded = np.concatenate([np.zeros(16000, np.float32), a, np.zeros(16000, np.float32)])
    trimmed, voiced = spk.trim_long_silences(padded)
    assert len(a) - 480 <= len(trimmed) < len(a) + 0.3 * 16000 and voiced < 2.6
    assert cosine_similarity(encoder.embed(padded), e1) > 0.97


def test_bad_input_errors(encoder):
    with pytest.raises(ValueError, match="empty"):
        encoder.embed(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        encoder.embed(np.full(16000, np.nan, np.float32))
    with pytest.raises(ValueError, match="silent"):
        encoder.embed(np.zeros(16000, np.float32))
    with pytest.raises(ValueError, match="voiced"):
        encoder.embed(_voice(0.2, 150.0))
    with pytest.raises(ValueError, match="1-D"):
        encoder.embed(np.zeros((2, 16000), np.float32))
    with pytest.raises(ValueError, match="wave 1"):
        encoder.embed_batch([_voice(2.0, 150.0), np.zeros(0, np.float32)])


def test_cosine_similarity():
    assert cosine_similarity(np.array([1.0, 0.0]), np.array([2.0, 0.0])) == pytest.approx(1.0)
    assert cosine_similarity(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="zero"):
        cosine_similarity(np.zeros(2), np.ones(2))


def _eer(same: np.ndarray, diff: np.ndarray) -> float:
    """Equal error rate: the threshold where false accepts and false rejects are closest."""
    best = (2.0, 1.0)
    for t in np.sort(np.concatenate([same, diff])):
        far, frr = float((diff >= t).mean()), float((same < t).mean())
        best = min(best, (abs(far - frr), (far + frr) / 2))
    return best[1]


def test_speaker_verification_on_librispeech(encoder):
    root = shared_path("librispeech-mini", "test-other")
    speakers = sorted(p for p in root.iterdir() if p.is_dir())
    assert len(speakers) == 10
    # 4 utterances a speaker keeps the test quick (all 100 give an EER of 0.9 %, see docs/metrics.md)
    files = [f for s in speakers for f in sorted(s.glob("*.flac"))[:4]]
    labels = np.array([f.parent.name for f in files])
    emb = encoder.embed_batch([load(f) for f in files])
    sim = emb @ emb.T
    iu = np.triu_indices(len(files), k=1)
    same_mask = labels[iu[0]] == labels[iu[1]]
    same, diff = sim[iu][same_mask], sim[iu][~same_mask]
    assert same.mean() - diff.mean() > 0.2
    assert _eer(same, diff) < 0.05

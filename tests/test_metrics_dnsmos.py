"""DNSMOS on real speech: clean scores above the same speech in noise, deterministic, files checked."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest

from conftest import shared_path
from speechunits.audio import load
from speechunits.encoders.whisper.melspec import mel_filters
from speechunits.metrics.dnsmos import Dnsmos, DnsmosError, dnsmos_mel, segments

pytestmark = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None
                                or importlib.util.find_spec("speechmos") is None,
                                reason="onnxruntime or speechmos (DNSMOS models) not installed")


@pytest.fixture(scope="module")
def scorer() -> Dnsmos:
    return Dnsmos.from_installed()


def test_segmentation_and_features_follow_the_reference():
    # 3 s is doubled to 12 s: 3 segments of 144,160 samples. 20 s has 11 hops, but the reference's
    # float bounds make hops 7-10 one sample short (int(7.01 * 16000) ... = 144,159) and it skips them
    assert [len(s) for s in segments(np.ones(48000, np.float32))] == [144160] * 3
    assert len(segments(np.ones(20 * 16000, np.float32))) == 7
    fb = mel_filters(120, 321, 16000).numpy()
    assert fb.shape == (120, 161) and (fb >= 0).all() and (fb.sum(axis=1) > 0).all()
    rng = np.random.default_rng(0)
    mel = dnsmos_mel(0.1 * rng.standard_normal(144000).astype(np.float32))
    assert mel.shape == (900, 120)  # odd n_fft: 1 + (144000 + 320 - 321) // 160 frames, what the P.808 model takes
    assert mel.max() == pytest.approx(1.0) and mel.min() >= -1.0  # ref=max, top_db=80, (x + 40) / 40


def test_clean_speech_scores_above_noisy(scorer):
    wave = load(shared_path("librivox-aligned") / "sense_and_sensibility_01_austen_64kb-0880.wav")
    rng = np.random.default_rng(0)
    noisy = wave + np.sqrt(np.mean(wave**2)) * rng.standard_normal(wave.size).astype(np.float32)  # 0 dB SNR
    noisy /= max(1.0, float(np.abs(noisy).max()))
    clean_s, noisy_s = scorer.score(wave), scorer.score(noisy)
    assert set(clean_s) == {"p808_mos", "sig", "bak", "ovrl"}
    # speechmos 0.0.1.1 itself gives 3.31 / 3.56 / 3.55 / 3.02 (clean) on this clip
    assert clean_s["ovrl"] > 2.7 and clean_s["bak"] > 3.2
    assert clean_s["ovrl"] - noisy_s["ovrl"] > 1.0 and clean_s["bak"] - noisy_s["bak"] > 1.5
    assert clean_s["p808_mos"] - noisy_s["p808_mos"] > 0.5
    assert scorer.score(wave.copy()) == clean_s


def test_bad_input_and_altered_models(scorer, tmp_path):
    with pytest.raises(ValueError, match="non-empty"):
        scorer.score(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        scorer.score(np.full(16000, np.nan, np.float32))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        scorer.score(np.full(16000, 2.0, np.float32))
    src = importlib.util.find_spec("speechmos").submodule_search_locations[0] + "/dnsmos_models"
    for f in ("sig_bak_ovr.onnx", "model_v8.onnx"):
        shutil.copy(f"{src}/{f}", tmp_path / f)
    with open(tmp_path / "model_v8.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(DnsmosError, match="sha256"):
        Dnsmos(tmp_path)
    with pytest.raises(DnsmosError, match="not found"):
        Dnsmos(tmp_path / "none")

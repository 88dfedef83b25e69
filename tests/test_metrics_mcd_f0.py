"""Mel-cepstral distortion with DTW, and Praat F0 error / voicing agreement, on generated and real speech."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import shared_path
from speechunits.audio import load
from speechunits.metrics.mcd import dtw_path, mcd_dtw, mel_cepstrum, warped_cepstrum


def _vowel(seconds: float, f0: float, sr: int = 16000) -> np.ndarray:
    """A glottal-pulse train through two formant resonators: voiced, with a speech-like envelope."""
    from scipy.signal import lfilter

    n = int(seconds * sr)
    src = np.zeros(n)
    src[:: int(sr / f0)] = 1.0
    y = src
    for freq, bw in ((700.0, 80.0), (1200.0, 100.0)):
        r = np.exp(-np.pi * bw / sr)
        y = lfilter([1.0], [1.0, -2 * r * np.cos(2 * np.pi * freq / sr), r * r], y)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def test_warped_cepstrum_inverts_the_all_pass_warp():
    # a log spectrum that is a cosine series in the warped frequency comes back as its coefficients
    alpha, coefs = 0.42, np.array([0.3, -0.2, 0.1, 0.05])
    w = np.linspace(0, np.pi, 257)
    beta = w + 2 * np.arctan(alpha * np.sin(w) / (1 - alpha * np.cos(w)))
    log_amp = coefs[0] + sum(c * np.cos(k * beta) for k, c in enumerate(coefs) if k)
    np.testing.assert_allclose(warped_cepstrum(log_amp[None], order=5, alpha=alpha)[0], [*coefs, 0, 0], atol=1e-4)


def test_dtw_path_finds_the_diagonal_and_a_delay():
    r, c, cost = dtw_path(np.abs(np.subtract.outer(np.arange(5.0), np.arange(5.0))))
    assert r.tolist() == c.tolist() == [0, 1, 2, 3, 4] and cost == 0.0
    a = np.array([0.0, 1, 2, 3])
    r, c, cost = dtw_path(np.abs(np.subtract.outer(a, np.array([0.0, 0, 0, 1, 2, 3]))))
    assert cost == 0.0 and c[-1] == 5 and r[-1] == 3


def test_mcd_zero_for_identical_and_grows_with_noise():
    x = np.concatenate([_vowel(0.6, 120.0), np.zeros(1600, np.float32), _vowel(0.5, 180.0)])
    assert mel_cepstrum(x).shape == (1 + len(x) // 80, 25)
    assert mcd_dtw(x, x.copy()) == 0.0
    assert mcd_dtw(x, 0.25 * x) == pytest.approx(0.0, abs=1e-9)  # gain goes to c0 and the floor: ignored
    rng = np.random.default_rng(0)
    rms = np.sqrt(np.mean(x**2))
    scores = [mcd_dtw(x, x + rms * 10 ** (-snr / 20) * rng.standard_normal(x.size).astype(np.float32))
              for snr in (30, 20, 10, 0)]
    assert all(b > a + 0.5 for a, b in zip(scores, scores[1:])), scores
    # DTW absorbs a pure delay
    delayed = np.concatenate([np.zeros(800, np.float32), x])
    assert mcd_dtw(x, delayed) < 0.5 * scores[0]
    with pytest.raises(ValueError, match="sample rate"):
        mcd_dtw(x, x, sr=22050)
    with pytest.raises(ValueError, match="NaN"):
        mcd_dtw(x, np.full(8000, np.nan, np.float32))


def test_mcd_on_real_speech_orders_noise_and_other_sentences():
    root = shared_path("librivox-aligned")
    files = sorted(root.glob("*.wav"))
    a, other = load(files[1]), load(files[0])
    rng = np.random.default_rng(1)
    noisy20 = a + 0.1 * np.sqrt(np.mean(a**2)) * rng.standard_normal(a.size).astype(np.float32)
    m_noise, m_other = mcd_dtw(a, noisy20), mcd_dtw(a, other)
    assert 2.0 < m_noise < m_other  # measured 4.4 and 7.3 dB
    assert m_other < 12.0


needs_praat = pytest.mark.skipif(importlib.util.find_spec("parselmouth") is None, reason="praat-parselmouth not installed")


@needs_praat
def test_f0_scores_on_generated_voices():
    from speechunits.metrics.f0 import f0_scores, praat_f0

    x = _vowel(1.0, 150.0)
    times, f0 = praat_f0(x)
    voiced = f0[f0 > 0]
    assert len(voiced) > 0.8 * len(f0) and abs(np.median(voiced) - 150.0) < 3.0  # 16000 / 106 samples
    same = f0_scores(x, x.copy())
    assert same == {"vuv_agreement": 1.0, "voiced_pairs": same["voiced_pairs"], "f0_rmse_hz": 0.0,
                    "f0_rmse_cents": 0.0} and same["voiced_pairs"] > 150
    higher = f0_scores(x, _vowel(1.0, 160.0), alignment="time")  # 16000 / 100 exactly
    assert higher["f0_rmse_hz"] == pytest.approx(160.0 - 16000 / 106, abs=2.0)
    assert higher["f0_rmse_cents"] == pytest.approx(1200 * np.log2(160 / (16000 / 106)), abs=20.0)
    half_silent = np.concatenate([x[:8000], np.zeros(8000, np.float32)])
    s = f0_scores(x, half_silent, alignment="time")
    assert 0.35 < s["vuv_agreement"] < 0.65
    none = f0_scores(x, np.zeros(16000, np.float32) + 1e-4 * np.random.default_rng(0).standard_normal(16000).astype(np.float32))
    assert none["voiced_pairs"] == 0 and none["f0_rmse_hz"] is None
    with pytest.raises(ValueError, match="alignment"):
        f0_scores(x, x, alignment="nearest")
    with pytest.raises(ValueError, match="too short"):
        praat_f0(x[:300])


@needs_praat
def test_f0_dtw_on_real_speech_absorbs_a_delay_that_time_alignment_does_not():
    from speechunits.metrics.f0 import f0_scores

    a = load(sorted(shared_path("librivox-aligned").glob("*.wav"))[1])
    delayed = np.concatenate([np.zeros(1600, np.float32), a])
    dtw, time = f0_scores(a, delayed), f0_scores(a, delayed, alignment="time")
    assert dtw["vuv_agreement"] > 0.95 and dtw["f0_rmse_cents"] < 50  # measured 0.985 and 15 cents
    assert time["vuv_agreement"] < 0.8 and time["f0_rmse_cents"] > 200


@needs_praat
def test_docstring_examples():
    import doctest
    import importlib

    for name in ("speechunits.metrics.mcd", "speechunits.metrics.f0", "speechunits.metrics.intelligibility",
                 "speechunits.metrics.resynthesis", "speechunits.encoders.speaker"):
        res = doctest.testmod(importlib.import_module(name))
        assert res.failed == 0 and res.attempted > 0, name

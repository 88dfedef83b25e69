"""Log-mel and MFCC: frame convention, Kaldi pipeline (against a per-frame numpy reference), deltas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speechunits.encoders import SpectralEncoder, load_encoder
from speechunits.encoders.spectral import dct_matrix, deltas, mel_filterbank, mel_scale


def noise(n: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype(np.float32)


def reference_kaldi(x: np.ndarray, kind: str, hop: int = 320, n_mels: int = 23, n_ceps: int = 13) -> np.ndarray:
    """Kaldi's fbank/MFCC written frame by frame, filters built in Hz with explicit loops."""
    win_len, n_fft, sr = 400, 512, 16000
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_len) / (win_len - 1))) ** 0.85
    lo, hi = mel_scale(20.0), mel_scale(8000.0)
    centers = [lo + (hi - lo) * (m + 1) / (n_mels + 1) for m in range(n_mels + 2)]
    edges = [lo] + centers[:-1]
    fb = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(n_mels):
        left, center, right = edges[m], edges[m + 1], edges[m + 2]
        for k in range(n_fft // 2):  # Kaldi leaves the Nyquist bin out
            mel = mel_scale(k * sr / n_fft)
            if left < mel < right:
                fb[m, k] = (mel - left) / (center - left) if mel <= center else (right - mel) / (right - center)
    rows = []
    for start in range(0, len(x) - win_len + 1, hop):
        f = x[start : start + win_len].astype(np.float64)
        f = f - f.mean()
        f = f - 0.97 * np.concatenate([[f[0]], f[:-1]])
        spec = np.abs(np.fft.rfft(f * window, n_fft)) ** 2
        logmel = np.log(np.maximum(fb @ spec, np.finfo(np.float32).eps))
        if kind == "logmel":
            rows.append(logmel)
            continue
        ceps = [
            math.sqrt((1 if q == 0 else 2) / n_mels)
            * sum(logmel[j] * math.cos(math.pi * q * (j + 0.5) / n_mels) for j in range(n_mels))
            for q in range(n_ceps)
        ]
        lifter = 1 + 11 * np.sin(np.pi * np.arange(n_ceps) / 22)
        rows.append(np.array(ceps) * lifter)
    return np.array(rows)


@pytest.mark.parametrize("n", [0, 1, 399, 400, 401, 719, 720, 721, 16000, 16001])
def test_frame_count_matches_ssl_convention(n):
    enc = SpectralEncoder("mfcc")
    expected = max(0, (n - 400) // 320 + 1)
    assert enc.num_frames(n) == expected
    out = enc.encode([np.zeros(n, dtype=np.float32) + 0.01], layers=[0])[0]
    assert out.shape == (expected, 1, 39) and out.dtype == torch.float32


def test_frame_rate_is_configurable():
    enc = load_encoder("logmel", frame_rate=100)
    assert (enc.hop, enc.window, enc.frame_rate) == (160, 400, 100.0)
    assert enc.encode([noise(16000)])[0].shape == (98, 1, 80)
    with pytest.raises(ValueError, match="whole"):
        SpectralEncoder("mfcc", frame_rate=33)


def test_logmel_equals_reference():
    x = noise(8000)
    ours = SpectralEncoder("logmel", n_mels=40).encode([x])[0][:, 0].numpy()
    ref = reference_kaldi(x, "logmel", n_mels=40)
    np.testing.assert_allclose(ours, ref, atol=2e-4)


def test_mfcc_equals_reference_with_deltas():
    x = noise(8000, seed=1)
    ours = SpectralEncoder("mfcc").encode([x])[0][:, 0].numpy()
    ref = reference_kaldi(x, "mfcc")
    np.testing.assert_allclose(ours[:, :13], ref, atol=2e-3)
    # Deltas: regression over +-2 frames, edges replicated (torchaudio.functional.compute_deltas).
    pad = np.concatenate([ref[:1], ref[:1], ref, ref[-1:], ref[-1:]])
    d = sum(k * (pad[2 + k : 2 + k + len(ref)] - pad[2 - k : 2 - k + len(ref)]) for k in (1, 2)) / 10
    np.testing.assert_allclose(ours[:, 13:26], d, atol=2e-3)


def test_mel_filterbank_shape_and_peaks():
    fb = mel_filterbank(23, 512, 16000)
    assert fb.shape == (23, 257) and (fb >= 0).all() and fb[:, -1].sum() == 0
    assert (fb.max(axis=1) > 0.8).all()  # every filter has bins near its centre
    # A 1 kHz tone peaks in the filter whose centre is nearest 1 kHz on the mel scale.
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    logmel = SpectralEncoder("logmel", n_mels=23).encode([tone])[0][:, 0].mean(0).numpy()
    lo, hi = mel_scale(20.0), mel_scale(8000.0)
    centers = lo + (hi - lo) * np.arange(1, 24) / 24
    assert int(logmel.argmax()) == int(np.abs(centers - mel_scale(1000.0)).argmin())


def test_dct_is_orthonormal():
    d = dct_matrix(23, 23)
    np.testing.assert_allclose(d.T @ d, np.eye(23), atol=1e-5)


def test_deltas_of_a_ramp_are_its_slope():
    x = torch.arange(20, dtype=torch.float32)[:, None] * torch.tensor([[1.0, -2.0]])
    d = deltas(x)
    np.testing.assert_allclose(d[2:-2].numpy(), np.tile([[1.0, -2.0]], (16, 1)), atol=1e-6)
    assert deltas(torch.zeros(0, 3)).shape == (0, 3)


def test_cmvn_and_layer_selection():
    enc = SpectralEncoder("mfcc", cmvn=True)
    out = enc.encode([noise(32000)], layers=[0, -1])[0]
    assert out.shape == (99, 2, 39)
    np.testing.assert_allclose(out[:, 0].mean(0).numpy(), 0, atol=1e-4)
    np.testing.assert_allclose(out[:, 0].std(0, unbiased=False).numpy(), 1, atol=1e-3)
    assert torch.equal(out[:, 0], out[:, 1])
    with pytest.raises(ValueError, match="layer 1 out of range"):
        enc.encode([noise(1000)], layers=[1])


def test_batch_equals_single_and_deterministic():
    enc = SpectralEncoder("mfcc")
    waves = [noise(n, seed=n) for n in (5000, 16000, 721)]
    together = enc.encode(waves)
    for w, t in zip(waves, together):
        assert torch.equal(enc.encode([w])[0], t)


def test_config_and_bad_input():
    enc = load_encoder("MFCC")
    cfg = enc.config()
    assert cfg["type"] == "spectral" and cfg["dim"] == 39 and cfg["frame_rate"] == 50.0
    assert cfg["cmvn"] is False and cfg["layers_available"] == [0]
    with pytest.raises(ValueError, match="NaN"):
        enc.encode([np.full(1000, np.nan, dtype=np.float32)])
    with pytest.raises(TypeError, match="float"):
        enc.encode([np.zeros(1000, dtype=np.int16)])
    with pytest.raises(ValueError, match="mono"):
        enc.encode([np.zeros((2, 1000), dtype=np.float32)])


@pytest.mark.parametrize("kind,delta_order,cmvn", [("mfcc", 2, False), ("mfcc", 1, True), ("logmel", 0, False), ("logmel", 2, True)])
@pytest.mark.parametrize("max_seconds", [7.3, 0.1])
def test_windowed_features_equal_the_whole_file_frame_for_frame(kind, delta_order, cmvn, max_seconds):
    """Long audio runs in windows; the stitched frames are those of one whole-file computation."""
    x = noise(16000 * 20 + 123, seed=3)
    whole = SpectralEncoder(kind, delta_order=delta_order, cmvn=cmvn, max_seconds=1e6).encode([x])[0]
    windowed = SpectralEncoder(kind, delta_order=delta_order, cmvn=cmvn, max_seconds=max_seconds).encode([x])[0]
    assert windowed.shape == whole.shape == (1000, 1, whole.shape[2]) and windowed.dtype == torch.float32
    # A frame off by one, or a delta computed next to a window edge, differs by ~0.1..10.
    torch.testing.assert_close(windowed, whole, rtol=0, atol=1e-5)
    # The default window (30 s) is shorter than this input: the default path is windowed too.
    torch.testing.assert_close(SpectralEncoder(kind, delta_order=delta_order, cmvn=cmvn).encode([x])[0], whole,
                               rtol=0, atol=1e-5)


_PEAK_SCRIPT = """
import resource, sys
import numpy as np, torch
torch.set_num_threads(1)
from speechunits.encoders import SpectralEncoder
enc = SpectralEncoder(sys.argv[1])
x = np.random.default_rng(0).standard_normal(16000 * 600, dtype=np.float32) * np.float32(0.1)
enc.encode([x[:16000]])  # warm-up: kernels and allocator pools are not what is measured
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
feats = enc.encode([x])[0]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((peak - before) / 1024.0, feats.numel() * 4 / 2**20)
"""


@pytest.mark.parametrize("kind", ["mfcc", "logmel"])
def test_memory_of_long_audio_is_the_output_plus_one_window(kind):
    """Ten minutes: the whole-file computation grew the peak by ~370 MB (float64 frames, and
    isfinite's full-size temporaries); now it is the features (and their per-layer copy) plus
    one window's work."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, kind], capture_output=True, text=True, env=env,
                         check=True, timeout=300)
    grew_mb, out_mb = map(float, res.stdout.split())
    assert grew_mb < 2 * out_mb + 40, f"peak grew {grew_mb:.0f} MB for {out_mb:.0f} MB of features"

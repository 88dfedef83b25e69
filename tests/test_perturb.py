"""Seeded audio perturbations: physical effect, determinism, records, edge cases.

Test signals are built here (harmonic complex tones, a source-filter vowel with known formants);
one test also uses espeak-ng speech and skips when espeak-ng is absent.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import warnings

import numpy as np
import parselmouth
import pytest
from scipy.signal import lfilter, welch

from speechunits.audio import AudioError, AudioWarning
from speechunits.audio.perturb import (
    Perturbation,
    active_speech_level,
    add_noise,
    available_perturbations,
    babble_noise,
    build_perturbation,
    chain,
    measure_rt60,
    measure_snr,
    median_f0,
    parametric_eq,
    pink_noise,
    pitch_shift,
    random_speaker_perturbation,
    reverberate,
    speaker_perturb,
    synthetic_rir,
    time_stretch,
    white_noise,
)

SR = 16000
VOWEL_FORMANTS = (700.0, 1220.0, 2600.0, 3300.0)


# ----------------------------------------------------------------------------- test signals


def harmonic(f0: float = 150.0, dur: float = 1.0, amp: float = 0.3) -> np.ndarray:
    """Harmonic complex tone, harmonics 1/k up to Nyquist."""
    t = np.arange(int(dur * SR)) / SR
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 40) if f0 * k < SR / 2)
    return (amp * x / np.max(np.abs(x))).astype(np.float32)


def vowel(
    f0: float = 120.0,
    formants: tuple[float, ...] = VOWEL_FORMANTS,
    bws: tuple[float, ...] = (80.0, 90.0, 120.0, 150.0),
    dur: float = 1.0,
    amp: float = 0.5,
) -> np.ndarray:
    """Source-filter vowel: pulse train -> glottal tilt -> formant resonators -> radiation."""
    n = int(dur * SR)
    src = np.zeros(n)
    src[np.round(np.arange(0, n - 1, SR / f0)).astype(int)] = 1.0
    p = np.exp(-2 * np.pi * 100 / SR)
    y = lfilter([1.0], [1.0, -2 * p, p * p], src)  # -12 dB/octave glottal spectrum
    for f, bw in zip(formants, bws, strict=True):
        r, th = np.exp(-np.pi * bw / SR), 2 * np.pi * f / SR
        a = [1.0, -2 * r * np.cos(th), r * r]
        y = lfilter([sum(a)], a, y)  # unity gain at DC, resonance at f
    y = np.diff(y, prepend=0.0)  # lip radiation
    return (amp * y / np.max(np.abs(y))).astype(np.float32)


def measured_formants(x: np.ndarray, n: int = 2) -> np.ndarray:
    """Median F1..Fn over the middle 60% (Praat Burg, 4 formants below 5 kHz)."""
    snd = parselmouth.Sound(x.astype(np.float64), sampling_frequency=SR)
    fm = snd.to_formant_burg(max_number_of_formants=4, maximum_formant=5000.0)
    ts = np.linspace(0.2 * snd.duration, 0.8 * snd.duration, 25)
    return np.array([np.nanmedian([fm.get_value_at_time(i + 1, t) for t in ts]) for i in range(n)])


def with_pauses(x: np.ndarray, pause_s: float = 0.5) -> np.ndarray:
    z = np.zeros(int(pause_s * SR), dtype=np.float32)
    return np.concatenate([z, x, z, x, z])


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """A sentence of espeak-ng speech at 16 kHz (skips if espeak-ng is missing)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    import soundfile as sf
    import soxr

    out = subprocess.run(
        ["espeak-ng", "--stdout", "The quick brown fox jumps over the lazy dog."],
        check=True,
        capture_output=True,
    ).stdout
    import io

    x, sr = sf.read(io.BytesIO(out), dtype="float32")
    return soxr.resample(x, sr, SR).astype(np.float32)


# ----------------------------------------------------------------------------- level and noise


def test_active_level_ignores_pauses():
    x = harmonic(dur=2.0)
    tone_power = float(np.mean(x.astype(np.float64) ** 2))
    assert abs(10 * np.log10(active_speech_level(x).power / tone_power)) < 0.2
    padded = np.concatenate([x, np.zeros(2 * SR, dtype=np.float32)])
    lvl = active_speech_level(padded)
    # Mean power drops 3 dB with the pause; the active level stays within the P.56 hangover bias.
    assert abs(10 * np.log10(lvl.power / tone_power)) < 0.7
    assert 0.5 < lvl.activity < 0.62


@pytest.mark.filterwarnings("ignore::speechunits.audio.AudioWarning")  # -5 dB peaks > 1.0
@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 30.0])
def test_noise_hits_target_snr(kind, snr_db):
    clean = with_pauses(vowel())
    sources = [
        vowel(f0=f, formants=(600.0 + 40 * i, 1500.0, 2500.0, 3400.0), dur=0.7)
        for i, f in enumerate((95.0, 140.0, 210.0))
    ]
    noisy = add_noise(clean, snr_db, kind, seed=3, sources=sources if kind == "babble" else None)
    assert noisy.dtype == np.float32 and noisy.shape == clean.shape
    assert abs(measure_snr(clean, noisy) - snr_db) < 0.5
    # Independent recomputation of the definition: active speech power over added-noise power.
    added = noisy.astype(np.float64) - clean
    ref = 10 * np.log10(active_speech_level(clean).power / np.mean(added**2))
    assert abs(ref - snr_db) < 0.5


def test_noise_spectra():
    def slope(x):
        f, p = welch(x, fs=SR, nperseg=4096)
        band = (f > 100) & (f < 7000)
        return np.polyfit(np.log10(f[band]), np.log10(p[band]), 1)[0]

    assert abs(slope(white_noise(8 * SR, seed=1))) < 0.1
    assert abs(slope(pink_noise(8 * SR, seed=1)) + 1.0) < 0.1  # power ~ 1/f


def test_babble_is_level_normalised_sum():
    a, b = vowel(f0=100.0, amp=0.05), vowel(f0=180.0, amp=0.8)
    bab = babble_noise(SR, [a, b], seed=0)
    # Each talker contributes unit active level regardless of its input level.
    assert 1.5 < active_speech_level(bab).power < 2.5
    one = babble_noise(SR, [a, b], seed=0, n_talkers=1)
    assert abs(active_speech_level(one).power - 1.0) < 0.1
    assert not np.array_equal(babble_noise(SR, [a, b], seed=1), bab)  # offsets move with seed


@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
def test_noise_determinism(kind):
    x = vowel()
    srcs = [harmonic(110.0, dur=0.6), harmonic(170.0, dur=0.9)] if kind == "babble" else None
    a = add_noise(x, 5.0, kind, seed=11, sources=srcs)
    b = add_noise(x, 5.0, kind, seed=11, sources=srcs)
    c = add_noise(x, 5.0, kind, seed=12, sources=srcs)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)


def test_noise_edge_cases():
    with pytest.raises(ValueError, match="empty"):
        add_noise(np.zeros(0, dtype=np.float32), 10.0)
    with pytest.raises(AudioError, match="silent"):
        add_noise(np.zeros(SR, dtype=np.float32), 10.0)
    with pytest.raises(ValueError, match="snr_db"):
        add_noise(vowel(), 200.0)
    with pytest.raises(ValueError, match="kind"):
        add_noise(vowel(), 10.0, "brown")
    with pytest.raises(ValueError, match="sources"):
        add_noise(vowel(), 10.0, "babble")
    with pytest.raises(ValueError, match="n_talkers"):
        add_noise(vowel(), 10.0, "babble", sources=[vowel()], n_talkers=2)
    with pytest.raises(AudioError, match="source 0 is silent"):
        add_noise(vowel(), 10.0, "babble", sources=[np.zeros(100)])
    with pytest.raises(ValueError, match="NaN"):
        add_noise(np.array([0.1, np.nan, 0.2]), 10.0)
    with pytest.raises(ValueError, match="1-D"):
        add_noise(np.zeros((2, 100)), 10.0)
    with pytest.raises(ValueError, match="float audio"):
        add_noise(np.ones(100, dtype=np.int16), 10.0)


def test_noise_does_not_clip():
    loud = harmonic(amp=0.95)
    with pytest.warns(AudioWarning, match="not clipped"):
        y = add_noise(loud, -5.0, "white", seed=0)
    assert np.max(np.abs(y)) > 1.0
    assert abs(measure_snr(loud, y) + 5.0) < 0.5


# ----------------------------------------------------------------------------- reverberation


@pytest.mark.parametrize("rt60", [0.2, 0.5, 1.0, 2.0])
def test_rir_rt60(rt60):
    for seed in (0, 1, 2):
        rir = synthetic_rir(rt60, seed=seed)
        for method in ("T20", "T30"):
            assert abs(measure_rt60(rir, SR, method) / rt60 - 1) < 0.10, (seed, method)


def test_rir_structure():
    rir = synthetic_rir(0.6, seed=5, drr_db=3.0).astype(np.float64)
    assert rir[0] == 1.0 and int(np.argmax(np.abs(rir))) == 0  # direct path first, no delay
    assert abs(10 * np.log10(1.0 / np.sum(rir[1:] ** 2)) - 3.0) < 0.01  # DRR as requested
    assert rir.shape[0] == int(np.ceil(0.6 * SR))


def test_reverberate_contract():
    x = with_pauses(vowel(), 0.2)
    y = reverberate(x, 0.7, seed=4)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.isclose(np.std(y.astype(np.float64)), np.std(x.astype(np.float64)), rtol=1e-3)
    # Still aligned: the cross-correlation peaks at lag 0.
    xc = np.correlate(y[:4000].astype(np.float64), x[:4000].astype(np.float64), "full")
    assert int(np.argmax(xc)) - 3999 == 0
    assert reverberate(x, 0.7, seed=4).tobytes() == y.tobytes()
    assert not np.array_equal(reverberate(x, 0.7, seed=5), y)
    assert not np.any(reverberate(np.zeros(SR, dtype=np.float32), 0.5))  # silence stays silent
    with pytest.raises(ValueError, match="rt60"):
        reverberate(x, 10.0)
    with pytest.raises(ValueError, match="empty"):
        reverberate(np.zeros(0, dtype=np.float32), 0.5)


# ----------------------------------------------------------------------------- pitch and time


@pytest.mark.parametrize("semitones", [-5.0, 3.0, 7.0])
def test_pitch_shift_ratio_and_duration(semitones):
    for x in (harmonic(150.0), vowel(120.0)):
        y = pitch_shift(x, semitones)
        assert y.shape == x.shape
        ratio = median_f0(y, pitch_floor=50.0) / median_f0(x, pitch_floor=50.0)
        assert abs(ratio / 2 ** (semitones / 12) - 1) < 0.02


def test_pitch_shift_keeps_formants():
    x = vowel(120.0)
    y = pitch_shift(x, 4.0)
    assert np.allclose(measured_formants(y) / measured_formants(x), 1.0, atol=0.04)


def test_pitch_shift_unvoiced_and_invalid():
    noise = white_noise(SR, seed=0).astype(np.float32) * 0.1
    assert np.array_equal(pitch_shift(noise, 5.0), noise)  # nothing voiced: unchanged
    assert not np.any(pitch_shift(np.zeros(SR, dtype=np.float32), 5.0))
    short = harmonic(dur=0.03)  # < 3 periods of the 75 Hz floor: no pitch analysis possible
    assert np.array_equal(pitch_shift(short, 5.0), short)
    assert np.isnan(median_f0(short))
    with pytest.raises(ValueError, match="semitones"):
        pitch_shift(harmonic(), 30.0)
    with pytest.raises(ValueError, match="pitch_floor"):
        pitch_shift(harmonic(), 2.0, pitch_floor=700.0, pitch_ceiling=600.0)
    with pytest.raises(ValueError, match="empty"):
        pitch_shift(np.zeros(0, dtype=np.float32), 2.0)


@pytest.mark.parametrize("rate", [0.6, 0.8, 1.25, 2.0])
def test_time_stretch_duration_and_pitch(rate):
    x = vowel(120.0, dur=1.5)
    y = time_stretch(x, rate)
    assert abs(len(y) / (len(x) / rate) - 1) < 0.01
    assert abs(median_f0(y) / median_f0(x) - 1) < 0.02
    assert time_stretch(x, rate).tobytes() == y.tobytes()


def test_time_stretch_edge_cases():
    x = harmonic()
    assert np.array_equal(time_stretch(x, 1.0), x)
    assert time_stretch(x[:10], 2.0).shape == (5,)  # shorter than a window still works
    with pytest.raises(ValueError, match="rate"):
        time_stretch(x, 0.0)
    with pytest.raises(ValueError, match="empty"):
        time_stretch(np.zeros(0, dtype=np.float32), 1.5)


def test_pitch_and_stretch_on_speech(speech):
    f0 = median_f0(speech, pitch_floor=50.0)
    y = pitch_shift(speech, -4.0)
    assert y.shape == speech.shape
    assert abs(median_f0(y, pitch_floor=50.0) / f0 / 2 ** (-4 / 12) - 1) < 0.02
    z = time_stretch(speech, 1.3)
    assert abs(len(z) * 1.3 / len(speech) - 1) < 0.01
    assert abs(median_f0(z, pitch_floor=50.0) / f0 - 1) < 0.02
    s = speaker_perturb(speech, formant_ratio=0.9, f0_ratio=1.4, seed=3)
    assert s.tobytes() == speaker_perturb(speech, 0.9, 1.4, seed=3).tobytes()
    assert s.shape == speech.shape
    assert abs(median_f0(s, pitch_floor=50.0) / f0 / 1.4 - 1) < 0.02


# ----------------------------------------------------------------------------- speaker


@pytest.mark.parametrize(("formant_ratio", "f0_ratio"), [(1.2, 1.5), (0.85, 0.8), (1.0, 1.3)])
def test_speaker_perturb_scales_f0_and_formants(formant_ratio, f0_ratio):
    x = vowel(120.0)
    y = speaker_perturb(x, formant_ratio=formant_ratio, f0_ratio=f0_ratio)
    assert y.shape == x.shape
    assert abs(median_f0(y) / median_f0(x) / f0_ratio - 1) < 0.02
    shift = measured_formants(y) / measured_formants(x)
    assert np.allclose(shift, formant_ratio, atol=0.05), shift


def test_speaker_perturb_edge_cases():
    noise = (white_noise(SR, seed=2) * 0.1).astype(np.float32)
    y = speaker_perturb(noise, formant_ratio=1.2)  # unvoiced: formant scaling only
    assert y.shape == noise.shape and np.all(np.isfinite(y))
    assert not np.any(speaker_perturb(np.zeros(SR, dtype=np.float32), 1.2, 1.5))
    short = harmonic(dur=0.03)
    assert np.array_equal(speaker_perturb(short, 1.2, 1.5), short)
    with pytest.raises(ValueError, match="formant_ratio"):
        speaker_perturb(vowel(), formant_ratio=3.0)
    with pytest.raises(ValueError, match="f0_ratio"):
        speaker_perturb(vowel(), f0_ratio=-1.0)


def test_praat_based_perturbations_are_deterministic():
    # Voiced vowels separated by unvoiced noise: Praat's PSOLA draws random numbers there.
    x = with_pauses(vowel(), 0.3) + (white_noise(len(with_pauses(vowel(), 0.3)), seed=1) * 0.02)
    x = x.astype(np.float32)
    for fn in (
        lambda a: pitch_shift(a, 3.0),
        lambda a: speaker_perturb(a, 1.1, 0.9, 1.2, seed=5),
        lambda a: speaker_perturb(a, 1.0, 1.0, seed=6),
    ):
        assert fn(x).tobytes() == fn(x).tobytes()


def test_random_speaker_perturbation_ranges_and_replay():
    draws = [random_speaker_perturbation(s, eq=False).params for s in range(200)]
    for key, hi in (("formant_ratio", 1.4), ("f0_ratio", 2.0), ("pitch_range_ratio", 1.5)):
        v = np.array([d[key] for d in draws])
        assert np.all((v >= 1 / hi - 1e-12) & (v <= hi + 1e-12))
        assert 0.3 < np.mean(v > 1) < 0.7  # inverted half of the time
    p = random_speaker_perturbation(42)
    assert p == random_speaker_perturbation(42) != random_speaker_perturbation(43)
    gains = p.params["steps"][1].params["gains_db"]
    assert len(gains) == 10 and all(-12 <= g <= 12 for g in gains)
    x = vowel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AudioWarning)  # +12 dB EQ bands may exceed 1.0
        a = p.apply(x)
        b = Perturbation.from_json(p.to_json()).apply(x)
    assert a.tobytes() == b.tobytes() and a.shape == x.shape


def test_eq_identity_and_gain():
    x = (white_noise(SR, seed=0) * 0.05).astype(np.float32)
    flat = parametric_eq(x, [0.0] * 10, [3.0] * 10)
    assert np.max(np.abs(flat - x)) < 1e-6
    boosted = parametric_eq(x, [6.0] * 10, [1.0] * 10)
    assert 10 * np.log10(np.mean(boosted.astype(float) ** 2) / np.mean(x.astype(float) ** 2)) > 3
    with pytest.raises(ValueError, match="one gain"):
        parametric_eq(x, [0.0] * 3, [1.0] * 10)


# ----------------------------------------------------------------------------- records


RECORDS = [
    ("noise", {"snr_db": 5.0, "kind": "pink"}, 7),
    ("reverb", {"rt60": 0.4, "drr_db": 2.0}, 8),
    ("pitch_shift", {"semitones": -2.0}, 0),
    ("time_stretch", {"rate": 1.1}, 0),
    ("speaker", {"formant_ratio": 1.1, "f0_ratio": 0.9}, 0),
    ("eq", {"gains_db": [3.0] * 10, "qs": [2.0] * 10}, 0),
]


@pytest.mark.parametrize(("name", "params", "seed"), RECORDS)
def test_record_round_trip_and_apply(name, params, seed):
    p = build_perturbation(name, seed=seed, **params)
    d = json.loads(json.dumps(p.to_dict()))
    q = Perturbation.from_dict(d)
    assert q == p and q.to_json() == p.to_json() and hash(q) == hash(p)
    assert set(params) <= set(d["params"])  # defaults filled in, so the record is complete
    x = vowel(dur=0.5)
    assert p.apply(x).tobytes() == q.apply(x).tobytes()


def test_record_matches_plain_function():
    x = vowel(dur=0.5)
    srcs = [harmonic(100.0, dur=0.3)]
    p = build_perturbation("noise", seed=9, snr_db=3.0, kind="babble")
    assert (
        p.apply(x, sources=srcs).tobytes()
        == add_noise(x, 3.0, "babble", seed=9, sources=srcs).tobytes()
    )
    r = build_perturbation("reverb", seed=2, rt60=0.3)
    assert r.apply(x).tobytes() == reverberate(x, 0.3, seed=2).tobytes()


def test_chain_record():
    c = chain(
        build_perturbation("time_stretch", rate=1.2),
        build_perturbation("reverb", seed=1, rt60=0.3),
        build_perturbation("noise", seed=2, snr_db=15.0),
    )
    again = Perturbation.from_json(c.to_json())
    assert again == c
    x = vowel(dur=0.6)
    y = again.apply(x)
    assert y.shape == (round(len(x) / 1.2),) and y.tobytes() == c.apply(x).tobytes()


def test_record_validation():
    assert set(available_perturbations()) >= {"noise", "reverb", "speaker", "chain"}
    with pytest.raises(ValueError, match="unknown perturbation"):
        build_perturbation("chorus")
    with pytest.raises(ValueError, match="unknown parameter"):
        build_perturbation("noise", snr_db=1.0, colour="pink")
    with pytest.raises(ValueError, match="missing required"):
        build_perturbation("reverb")
    with pytest.raises(ValueError, match="rate"):
        build_perturbation("time_stretch", rate=100.0)
    with pytest.raises(ValueError, match="seed"):
        build_perturbation("noise", seed=-1, snr_db=1.0)
    with pytest.raises(ValueError, match="unknown key"):
        Perturbation.from_dict({"name": "noise", "params": {"snr_db": 1}, "sed": 3})
    p = build_perturbation("noise", snr_db=1.0)
    with pytest.raises(TypeError):
        p.params["snr_db"] = 2.0  # records are read-only


def test_global_rng_untouched():
    np_state, py_state = np.random.get_state(), random.getstate()
    x = vowel(dur=0.5)
    add_noise(x, 5.0, "pink", seed=1)
    reverberate(x, 0.5, seed=1)
    random_speaker_perturbation(1).apply(x)
    after = np.random.get_state()
    assert all(np.array_equal(a, b) for a, b in zip(np_state, after, strict=True))
    assert random.getstate() == py_state


def test_docstring_examples():
    import doctest
    import importlib

    for mod in ("level", "noise", "reverb", "pitch", "stretch", "eq", "speaker", "record", "random_speaker"):
        m = importlib.import_module(f"speechunits.audio.perturb.{mod}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AudioWarning)
            result = doctest.testmod(m, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, mod
    assert doctest.testmod(importlib.import_module("speechunits.audio.perturb")).failed == 0

"""audio.load: every format and sample width, resampling, mixdown, and every bad input."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
import soundfile as sf

from speechunits.audio import AudioError, AudioWarning, info, load

FORMATS = [
    ("wav", "WAV", "PCM_U8", 1e-2),
    ("wav", "WAV", "PCM_16", 1e-4),
    ("wav", "WAV", "PCM_24", 1e-5),
    ("wav", "WAV", "PCM_32", 1e-5),
    ("wav", "WAV", "FLOAT", 1e-5),
    ("flac", "FLAC", "PCM_16", 1e-4),
    ("flac", "FLAC", "PCM_24", 1e-5),
]


def _reference(x: np.ndarray, sr: int) -> np.ndarray:
    return load(x, sample_rate=sr)


@pytest.mark.parametrize("ext,fmt,subtype,tol", FORMATS)
def test_lossless_formats_match_the_array_path(tmp_path, tone, ext, fmt, subtype, tol):
    x, sr = tone
    path = tmp_path / f"a.{ext}"
    sf.write(path, x, sr, format=fmt, subtype=subtype)
    y = load(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == 16000
    np.testing.assert_allclose(y, _reference(x, sr), atol=tol * 4)


@pytest.mark.parametrize("ext,fmt,subtype", [("ogg", "OGG", "VORBIS"), ("mp3", "MP3", "MPEG_LAYER_III")])
def test_lossy_formats_load_with_the_right_length_and_level(tmp_path, tone, ext, fmt, subtype):
    x, sr = tone
    path = tmp_path / f"a.{ext}"
    sf.write(path, x, sr, format=fmt, subtype=subtype)
    y = load(path)
    # mp3 encoders add a few ms of priming; the level must survive.
    assert abs(len(y) - 16000) < 0.05 * 16000
    assert 0.4 < np.abs(y).max() < 0.6


def test_stereo_is_averaged_and_bytes_load(tmp_path, tone):
    x, sr = tone
    stereo = np.stack([x, -x * 0 + 0.25 * x], axis=1)
    path = tmp_path / "s.wav"
    sf.write(path, stereo, sr, subtype="FLOAT")
    y = load(path)
    np.testing.assert_allclose(y, load(stereo.mean(axis=1), sample_rate=sr), atol=1e-6)
    np.testing.assert_allclose(load(path.read_bytes()), y, atol=1e-7)


def test_arrays_int_and_channels_first(tone):
    x, sr = tone
    ints = np.round(x * 32767).astype(np.int16)
    np.testing.assert_allclose(load(ints, sample_rate=sr), load(x, sample_rate=sr), atol=1e-4)
    chan_first = np.stack([x, x])  # [2, samples]
    np.testing.assert_allclose(load(chan_first, sample_rate=sr), load(x, sample_rate=sr), atol=1e-6)
    same = load(x[:16000], sample_rate=16000)
    np.testing.assert_array_equal(same, x[:16000])  # no resampling at 16 kHz


def test_resampling_keeps_frequency(tone):
    x, sr = tone
    y = load(x, sample_rate=sr)
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) * 16000 / len(y) - 220) < 2


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda p: None, "file not found"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(b"this is not audio at all " * 20), "unsupported or unrecognised"),
        (lambda p: p.write_bytes(b"RIFF" + bytes(60)), "unsupported or unrecognised"),
    ],
    ids=["missing", "empty", "garbage", "bad-riff"],
)
def test_bad_files_name_the_input_and_reason(tmp_path, make, reason):
    p = tmp_path / "bad.wav"
    make(p)
    with pytest.raises(AudioError) as e:
        load(p)
    assert str(p) in str(e.value) and reason in str(e.value)


def test_zero_length_file(tmp_path):
    p = tmp_path / "zero.wav"
    sf.write(p, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="zero-length"):
        load(p)


@pytest.mark.parametrize("fmt,ext", [("WAV", "wav"), ("FLAC", "flac"), ("MP3", "mp3")])
def test_truncated_files(tmp_path, tone, fmt, ext):
    x, sr = tone
    good = tmp_path / f"good.{ext}"
    sf.write(good, x, sr, format=fmt)
    data = good.read_bytes()
    bad = tmp_path / f"cut.{ext}"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"truncated|corrupt") as e:
        load(bad)
    assert str(bad) in str(e.value)


def test_nan_and_inf_samples(tmp_path, tone):
    x, sr = tone
    x = x.copy()
    x[1000] = np.nan
    with pytest.raises(AudioError, match="NaN or infinite.*first at sample 1000"):
        load(x, sample_rate=sr, name="utt7")
    p = tmp_path / "inf.wav"
    x[1000] = np.inf
    sf.write(p, x, sr, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        load(p)


def test_array_errors():
    with pytest.raises(AudioError, match="needs its sample_rate"):
        load(np.zeros(10, np.float32))
    with pytest.raises(AudioError, match="too low"):
        load(np.zeros(10, np.float32), sample_rate=100)
    with pytest.raises(AudioError, match="empty"):
        load(np.zeros(0, np.float32), sample_rate=16000)
    with pytest.raises(AudioError, match="empty"):
        load(b"")


def test_silent_and_clipped_audio_warn_but_load(tone):
    x, sr = tone
    with pytest.warns(AudioWarning, match="all silent"):
        y = load(np.zeros(16000, np.float32), sample_rate=16000)
    assert len(y) == 16000
    with pytest.warns(AudioWarning, match="clipped"):
        load(np.clip(4 * x, -1, 1), sample_rate=sr)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(x, sample_rate=sr)  # a normal signal warns nothing


def test_info_reads_the_header(tmp_path, tone):
    x, sr = tone
    p = tmp_path / "a.flac"
    sf.write(p, x, sr)
    i = info(p)
    assert (i.sample_rate, i.channels, i.frames) == (sr, 1, len(x))
    assert i.duration == pytest.approx(1.0)


def test_long_file_memory_is_bounded_beyond_its_samples(tmp_path):
    """Ten minutes of 44.1 kHz stereo: peak memory is the output plus a few MB of blocks."""
    sr, minutes = 44100, 10
    p = tmp_path / "long.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(p, "w", sr, 2, subtype="PCM_16") as f:
        for _ in range(minutes * 60):
            f.write((0.1 * rng.standard_normal((sr, 2))).astype(np.float32))
    tracemalloc.start()
    y = load(p)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out_bytes = y.nbytes
    assert len(y) == minutes * 60 * 16000
    # A naive read would hold the stereo float64 original (~423 MB) on top of the output.
    assert peak - out_bytes < 24 * 2**20, f"{(peak - out_bytes) / 2**20:.1f} MB beyond the output"

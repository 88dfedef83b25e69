"""audio.load: every format and sample width, resampling, mixdown, and every bad input."""

from __future__ import annotations

import io
import os
import struct
import tracemalloc
import warnings

import numpy as np
import pytest
import soundfile as sf

from speechunits.audio import AudioError, AudioWarning, info, load
from unprivileged import restore, run_unprivileged

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


# -- hostile headers, truncated Ogg, file-system reasons (issue 13, items 5, 6, 8) ------------


def _wav_bytes(x: np.ndarray, sr: int, subtype: str) -> bytearray:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype=subtype)
    return bytearray(buf.getvalue())


def _load_traced(source) -> tuple[object, int]:
    """``load(source)`` (its value or its exception) and the peak of what it allocated."""
    tracemalloc.start()
    try:
        result = load(source)
    except Exception as e:  # noqa: BLE001 - the caller checks which
        result = e
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, peak


def test_wav_header_claiming_4_gb_is_an_audio_error_without_allocating_it(tmp_path, tone):
    """8 KB of 8 kHz 8-bit WAV whose data chunk declares ~4 GB: 32 GiB of float32 at 16 kHz."""
    x, _ = tone
    b = _wav_bytes(x[:8000], 8000, "PCM_U8")
    i = b.index(b"data")
    b[i + 4 : i + 8] = struct.pack("<I", 0xFFFFFFF0)
    p = tmp_path / "liar.wav"
    p.write_bytes(bytes(b))
    err, peak = _load_traced(p)
    assert isinstance(err, AudioError), err
    assert str(p) in str(err) and "truncated: header declares 4294967280 frames" in str(err)
    assert peak < 8 * 2**20, f"allocated {peak / 2**20:.0f} MB for an 8 KB file"


def test_flac_header_claiming_2_to_36_frames_is_bounded_by_the_file_size(tmp_path, tone):
    x, sr = tone
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="FLAC")
    b = bytearray(buf.getvalue())
    assert b[:4] == b"fLaC" and b[4] & 0x7F == 0  # STREAMINFO first
    # STREAMINFO bytes 10..17: rate (20 bits), channels-1 (3), bits-1 (5), total samples (36).
    field = int.from_bytes(b[18:26], "big") | (2**36 - 1)
    b[18:26] = field.to_bytes(8, "big")
    p = tmp_path / "liar.flac"
    p.write_bytes(bytes(b))
    err, peak = _load_traced(p)
    assert isinstance(err, AudioError) and "truncated" in str(err), err
    assert peak < 64 * len(b) * 4 * 2 + 8 * 2**20


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_corrupted_files_raise_only_audio_errors_and_allocate_within_bounds(seed):
    """Cut and byte-flipped files of every format: a float32 array or an AudioError, nothing else."""
    x = (0.3 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    rng = np.random.default_rng(seed)
    formats = [("WAV", "PCM_16"), ("WAV", "PCM_U8"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("OGG", "OPUS"),
               ("MP3", "MPEG_LAYER_III")]
    for fmt, subtype in formats:
        buf = io.BytesIO()
        sf.write(buf, x, 16000, format=fmt, subtype=subtype)
        good = buf.getvalue()
        for i in range(60):
            b = bytearray(good)
            if i % 3 == 0:
                b = b[: rng.integers(1, len(b))]
            else:  # the header (first 200 bytes) or anywhere
                span = min(len(b), 200) if i % 3 == 1 else len(b)
                for _ in range(rng.integers(1, 20)):
                    b[rng.integers(0, span)] = rng.integers(0, 256)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", AudioWarning)
                result, peak = _load_traced(bytes(b))
            case = f"{fmt}/{subtype} case {i}"
            assert isinstance(result, (np.ndarray, AudioError)), f"{case}: {type(result).__name__}: {result}"
            if isinstance(result, np.ndarray):
                assert result.dtype == np.float32
            assert peak < 32 * 2**20, f"{case}: allocated {peak / 2**20:.0f} MB for {len(b)} bytes"


def _ogg(tmp_path, subtype: str, seconds: int = 10):
    rng = np.random.default_rng(1)
    t = np.arange(16000 * seconds) / 16000
    x = (0.3 * np.sin(2 * np.pi * 200 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    p = tmp_path / f"good.{subtype.lower()}.ogg"
    with sf.SoundFile(p, "w", 16000, 1, format="OGG", subtype=subtype) as f:
        for i in range(0, len(x), 16000):  # libsndfile's vorbis writer crashes on large single writes
            f.write(x[i : i + 16000])
    return p


@pytest.mark.parametrize("subtype", ["VORBIS", "OPUS"])
@pytest.mark.parametrize("fraction", [0.42, 0.8, 0.99])
def test_truncated_ogg_is_an_audio_error(tmp_path, subtype, fraction):
    good = _ogg(tmp_path, subtype)
    assert len(load(good)) == pytest.approx(160000, rel=0.01)  # the whole file loads
    data = good.read_bytes()
    cut = tmp_path / "cut.ogg"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(AudioError, match="truncated") as e:
        load(cut)
    assert str(cut) in str(e.value)
    with pytest.raises(AudioError, match="truncated"):
        load(cut.read_bytes())


def test_ogg_cut_on_a_page_boundary_or_damaged_inside_is_an_audio_error(tmp_path):
    data = _ogg(tmp_path, "VORBIS").read_bytes()
    # The start of the last page: whole pages remain, but the stream never ends.
    last = data.rindex(b"OggS")
    p = tmp_path / "pages.ogg"
    p.write_bytes(data[:last])
    with pytest.raises(AudioError, match="end-of-stream"):
        load(p)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x55
    p.write_bytes(bytes(flipped))
    with pytest.raises(AudioError, match="checksum"):
        load(p)
    second = data.index(b"OggS", data.index(b"OggS", 4) + 4)  # drop a whole page from the middle
    third = data.index(b"OggS", second + 4)
    p.write_bytes(data[:second] + data[third:])
    with pytest.raises(AudioError, match="pages missing"):
        load(p)


def test_file_system_reasons_are_right(tmp_path, tone):
    x, sr = tone
    (tmp_path / "loop.wav").symlink_to(tmp_path / "loop.wav")
    (tmp_path / "dangling.wav").symlink_to(tmp_path / "nowhere.wav")
    (tmp_path / "dir.wav").mkdir()
    os.mkfifo(tmp_path / "fifo.wav")
    expected = {"loop.wav": "symbolic link loop", "dangling.wav": "broken symbolic link",
                "dir.wav": "is a directory", "fifo.wav": "not a regular file", "missing.wav": "file not found"}
    for name, reason in expected.items():
        with pytest.raises(AudioError) as e:
            load(tmp_path / name)
        assert str(e.value) == f"{tmp_path / name}: {e.value.reason}" and reason in e.value.reason, str(e.value)
    with pytest.raises(AudioError, match="symbolic link loop"):
        info(tmp_path / "loop.wav")


def test_unreadable_file_is_permission_denied_even_for_root(tmp_path, tone):
    x, sr = tone
    p = tmp_path / "locked.wav"
    sf.write(p, x, sr)
    p.chmod(0)
    try:
        code = (
            "from speechunits.audio import AudioError, load\n"
            f"try:\n    load({str(p)!r})\nexcept AudioError as e:\n    print(e)\n"
        )
        # libsndfile alone says "System error".
        assert run_unprivileged(code, tmp_path).strip() == f"{p}: permission denied"
    finally:
        restore(tmp_path)


def test_implausible_sample_rate_in_a_header(tmp_path, tone):
    x, _ = tone
    b = _wav_bytes(x[:1000], 16000, "PCM_16")
    b[24:28] = struct.pack("<I", 10_000_000)  # fmt chunk: sample rate (libsndfile takes it)
    b[28:32] = struct.pack("<I", 20_000_000)  # byte rate
    p = tmp_path / "rate.wav"
    p.write_bytes(bytes(b))
    with pytest.raises(AudioError, match="sample rate 10000000 Hz is implausible"):
        load(p)  # it loaded as 2 samples


def test_integer_arrays_convert_without_float64_copies(tone):
    x, sr = tone
    stereo = np.round(np.stack([x, 0.5 * x], axis=1) * 32767).astype(np.int16)
    y = load(stereo, sample_rate=sr)
    # Multi-channel integer arrays are scaled like mono ones (they were returned unscaled).
    np.testing.assert_allclose(y, load(0.75 * x, sample_rate=sr), atol=1e-4)
    long = np.tile(np.round(x[:16000] * 32767).astype(np.int16), 600)  # ten minutes at 16 kHz
    tracemalloc.start()
    out = load(long, sample_rate=16000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(out[:16000], (long[:16000] / 32768.0).astype(np.float32))
    # A float64 copy would be 77 MB beyond the 38 MB output.
    assert peak - out.nbytes < 16 * 2**20, f"{(peak - out.nbytes) / 2**20:.0f} MB beyond the output"

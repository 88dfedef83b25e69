"""Load any audio input to float32 mono at 16 kHz, validated.

Sources: a path (wav, flac, ogg/vorbis/opus, mp3 and whatever else libsndfile reads), raw file
bytes, or an array with its sample rate. Files are decoded block by block; each block is mixed
down to mono and fed through a streaming soxr resampler into one preallocated output, so a file
of an hour or more needs its output samples plus a fixed few MB, never a stereo or
original-rate copy of the whole file.

Example:
    >>> import numpy as np
    >>> from speechunits.audio import load
    >>> tone = np.sin(2 * np.pi * 440 * np.arange(44100) / 44100).astype("float32")
    >>> wav = load(tone, sample_rate=44100)
    >>> wav.dtype, wav.shape
    (dtype('float32'), (16000,))
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
import soxr

from speechunits.audio.errors import AudioError, AudioWarning

TARGET_RATE = 16000
MIN_RATE = 4000  # below this nothing speech-like survives; treat as a wrong rate
BLOCK_FRAMES = 1 << 18  # 262k frames per decode block: ~2 MB for stereo float32
SILENCE_PEAK = 1e-4  # about -80 dBFS
CLIP_LEVEL = 0.999
CLIP_MIN_SHARE = 1e-3  # warn when at least 0.1% of samples sit at full scale

AudioSource = Union[str, os.PathLike, bytes, bytearray, np.ndarray]


@dataclass(frozen=True)
class AudioInfo:
    """What a file declares, read from its header without decoding."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def info(path: str | os.PathLike) -> AudioInfo:
    """Header information of an audio file (raises ``AudioError`` for bad files)."""
    path = _check_path(path)
    try:
        i = sf.info(str(path))
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError variants
        raise AudioError(path, _decode_reason(path, e)) from None
    return AudioInfo(str(path), int(i.samplerate), int(i.channels), int(i.frames), i.format, i.subtype)


def num_samples_at(frames: int, sample_rate: int, target_rate: int = TARGET_RATE) -> int:
    """Number of samples ``load`` returns for a file of ``frames`` frames at ``sample_rate``."""
    if sample_rate == target_rate:
        return frames
    return int(round(frames * target_rate / sample_rate))


def load(
    source: AudioSource,
    sample_rate: int | None = None,
    *,
    target_rate: int = TARGET_RATE,
    name: str | None = None,
) -> np.ndarray:
    """Return ``source`` as a float32 mono array at ``target_rate`` (16 kHz).

    ``sample_rate`` is required for an array source and ignored otherwise. Integer arrays are
    scaled to [-1, 1) by their dtype's range; a 2-D array is ``[samples, channels]`` (or
    ``[channels, samples]`` when it has at most 8 rows and more columns) and is averaged to mono.
    ``name`` names the input in errors (default: the path, or ``<bytes>``/``<array>``).

    Raises ``AudioError`` for a missing, empty, truncated, corrupt or unsupported file, a
    missing or implausible sample rate, and NaN/inf samples. Warns ``AudioWarning`` for all-silent
    or clipped audio, which still loads.
    """
    if isinstance(source, np.ndarray):
        label = name or "<array>"
        wav = _from_array(source, sample_rate, target_rate, label)
    elif isinstance(source, (bytes, bytearray)):
        label = name or "<bytes>"
        if len(source) == 0:
            raise AudioError(label, "empty input (0 bytes)")
        wav = _from_file(io.BytesIO(bytes(source)), label, target_rate)
    elif isinstance(source, (str, os.PathLike)):
        path = _check_path(source)
        label = name or str(path)
        wav = _from_file(path, label, target_rate)
    else:
        raise TypeError(f"cannot load audio from {type(source).__name__}; give a path, bytes or an array")
    _check_content(wav, label)
    return wav


# -- sources ------------------------------------------------------------------------------


def _check_path(source: str | os.PathLike) -> Path:
    path = Path(source)
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    return path


def _decode_reason(label: object, err: Exception) -> str:
    msg = str(err).split("\n")[0]
    low = msg.lower()
    if "format not recognised" in low or "unknown format" in low or "not supported" in low:
        return f"unsupported or unrecognised audio format ({msg})"
    return f"corrupt or unreadable audio ({msg})"


def _from_file(file: Path | io.BytesIO, label: str, target_rate: int) -> np.ndarray:
    try:
        snd = sf.SoundFile(file if isinstance(file, io.BytesIO) else str(file))
    except Exception as e:
        raise AudioError(label, _decode_reason(label, e)) from None
    with snd:
        rate, declared = int(snd.samplerate), int(snd.frames)
        _check_rate(rate, label)
        # libsndfile quietly shortens a WAV whose data chunk runs past the end of the file,
        # so compare with what the RIFF header itself declares.
        if snd.format in ("WAV", "WAVEX"):
            declared = max(declared, _riff_declared_frames(file, snd.channels, snd.subtype) or 0)
        # MP3 and Ogg headers only estimate the length; PCM containers state it exactly.
        exact_length = snd.format not in ("MP3", "MPEG", "OGG")
        if declared == 0:
            raise AudioError(label, "zero-length audio (the file holds no samples)")
        capacity = num_samples_at(max(declared, 1), rate, target_rate) + 64
        out = np.empty(capacity, dtype=np.float32)
        resampler = None if rate == target_rate else soxr.ResampleStream(rate, target_rate, 1, dtype="float32")
        filled = read = 0
        try:
            while True:
                block = snd.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
                last = len(block) < BLOCK_FRAMES
                read += len(block)
                mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
                _check_finite(mono, label, read - len(block))
                chunk = mono if resampler is None else resampler.resample_chunk(mono, last=last)
                if filled + len(chunk) > len(out):  # only for estimated lengths
                    out = np.resize(out, max(2 * len(out), filled + len(chunk)))
                out[filled : filled + len(chunk)] = chunk
                filled += len(chunk)
                if last:
                    break
        except AudioError:
            raise
        except Exception as e:
            raise AudioError(label, f"truncated or corrupt audio data after {read} frames ({e})") from None
    # Estimated lengths (MP3 without an exact Xing count, Ogg) may be off by a little.
    missing = declared - read
    if missing > 0 and (exact_length or missing > 0.02 * declared + 2048):
        raise AudioError(label, f"truncated: header declares {declared} frames but only {read} could be read")
    if read == 0:
        raise AudioError(label, "zero-length audio (the file holds no samples)")
    # A view, not a copy: copying would double the peak for an hour-long file, and the
    # unused tail of the buffer is only the resampler's few samples of slack.
    return out[:filled]


def _from_array(arr: np.ndarray, sample_rate: int | None, target_rate: int, label: str) -> np.ndarray:
    if sample_rate is None:
        raise AudioError(label, "an array needs its sample_rate")
    _check_rate(int(sample_rate), label)
    if arr.ndim == 2:
        # Accept [channels, samples] for the few-channel layout torch users pass.
        if arr.shape[0] <= 8 and arr.shape[1] > arr.shape[0]:
            arr = arr.T
        arr = arr.astype(np.float64).mean(axis=1) if arr.dtype.kind in "iu" else arr.mean(axis=1)
    elif arr.ndim != 1:
        raise AudioError(label, f"expected 1-D or 2-D audio, got shape {arr.shape}")
    if arr.size == 0:
        raise AudioError(label, "empty input (0 samples)")
    wav = _to_float32(arr, label)
    _check_finite(wav, label, 0)
    if int(sample_rate) != target_rate:
        wav = soxr.resample(wav, int(sample_rate), target_rate).astype(np.float32, copy=False)
    return np.ascontiguousarray(wav)


def _to_float32(arr: np.ndarray, label: str) -> np.ndarray:
    if arr.dtype.kind == "f":
        return arr.astype(np.float32, copy=False)
    if arr.dtype.kind == "u":  # unsigned PCM (8-bit WAV) is centred on half range
        info_ = np.iinfo(arr.dtype)
        half = (info_.max + 1) / 2
        return ((arr.astype(np.float64) - half) / half).astype(np.float32)
    if arr.dtype.kind == "i":
        return (arr.astype(np.float64) / -np.iinfo(arr.dtype).min).astype(np.float32)
    raise AudioError(label, f"unsupported sample type {arr.dtype}")


def _check_rate(rate: int, label: str) -> None:
    if rate < MIN_RATE:
        raise AudioError(label, f"sample rate {rate} Hz is too low for speech (minimum {MIN_RATE} Hz)")


def _check_finite(samples: np.ndarray, label: str, offset: int) -> None:
    finite = np.isfinite(samples)
    if not finite.all():
        first = offset + int(np.argmin(finite))
        bad = int(samples.size - np.count_nonzero(finite))
        raise AudioError(label, f"NaN or infinite samples ({bad} in a block, first at sample {first})")


def _riff_declared_frames(file: Path | io.BytesIO, channels: int, subtype: str) -> int | None:
    """Frames the RIFF ``data`` chunk header declares, or None when it cannot be told."""
    bits = {"PCM_U8": 8, "PCM_S8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64}
    if subtype not in bits:
        return None
    if isinstance(file, io.BytesIO):
        head = file.getvalue()[:1 << 16]
    else:
        with open(file, "rb") as f:
            head = f.read(1 << 16)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if cid == b"data":
            if size in (0, 0xFFFFFFFF):  # streaming writers leave the size unset
                return None
            return size // (channels * bits[subtype] // 8)
        pos += 8 + size + (size & 1)
    return None


def _check_content(wav: np.ndarray, label: str) -> None:
    if wav.size == 0:
        raise AudioError(label, "zero-length audio after resampling")
    # Block by block: np.abs over an hour of audio would be a second copy of it.
    peak, clipped = 0.0, 0
    for i in range(0, wav.size, BLOCK_FRAMES):
        block = np.abs(wav[i : i + BLOCK_FRAMES])
        peak = max(peak, float(block.max()))
        clipped += int(np.count_nonzero(block >= CLIP_LEVEL))
    if peak < SILENCE_PEAK:
        warnings.warn(f"{label}: all silent (peak {peak:.2e})", AudioWarning, stacklevel=3)
        return
    if clipped > max(10, CLIP_MIN_SHARE * wav.size):
        share = 100.0 * clipped / wav.size
        warnings.warn(f"{label}: clipped ({clipped} samples, {share:.2f}%, at full scale)", AudioWarning, stacklevel=3)

"""Load any audio input to float32 mono at 16 kHz, validated.

Sources: a path (wav, flac, ogg/vorbis/opus, mp3 and whatever else libsndfile reads), raw file
bytes, or an array with its sample rate. Files are decoded block by block; each block is mixed
down to mono and fed through a streaming soxr resampler into one preallocated output, so a file
of an hour or more needs its output samples plus a fixed few MB, never a stereo or
original-rate copy of the whole file. The output is sized from the header's length only up
to what the file's bytes can hold (a header is untrusted input), and a container's own
structure is checked where decoders stay silent (``audio.containers``: WAV data size, Ogg pages).

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
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import soundfile as sf
import soxr

from speechunits.audio.containers import PCM_BITS, byte_size, check_ogg, riff_data_frames
from speechunits.audio.errors import AudioError, AudioWarning, os_error_reason

TARGET_RATE = 16000
MIN_RATE = 4000  # below this nothing speech-like survives; treat as a wrong rate
MAX_RATE = 768000  # above the highest rate any recorder writes: a damaged header
BLOCK_FRAMES = 1 << 18  # 262k frames per decode block: ~2 MB for stereo float32
# A compressed file's header may claim any length (FLAC: up to 2**36 frames); the first output
# buffer is bounded by the file's size instead, at a ratio above any real codec's (opus at
# 6 kbit/s is 64 frames a byte), and grows only as real samples arrive.
MAX_FRAMES_PER_BYTE = 64
SILENCE_PEAK = 1e-4  # about -80 dBFS
CLIP_LEVEL = 0.999
CLIP_MIN_SHARE = 1e-3  # warn when at least 0.1% of samples sit at full scale

_PCM_CONTAINERS = ("WAV", "WAVEX", "W64", "RF64", "AIFF", "AU", "CAF", "RAW")  # uncompressed samples

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

    Raises ``AudioError`` (and no other error) for a bad file: missing, unreadable (permission
    denied, symbolic link loop), empty, truncated, corrupt or unsupported, a header that claims
    more audio than the file holds, a missing or implausible sample rate, NaN/inf samples.
    Memory never follows a header's claims: a file's output buffer is bounded by its size, and
    nothing the length of the audio is ever held in float64. Warns ``AudioWarning`` for
    all-silent or clipped audio, which still loads.
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
    try:
        st = os.stat(path)
    except OSError as e:
        if isinstance(e, FileNotFoundError) and os.path.islink(path):
            raise AudioError(path, f"broken symbolic link (its target {os.readlink(path)} does not exist)") from None
        raise AudioError(path, os_error_reason(e)) from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(path, "is a directory, not an audio file")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        raise AudioError(path, "not a regular file")
    if st.st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:  # libsndfile reports an unreadable file as "System error"; say what it is
        with open(path, "rb"):
            pass
    except OSError as e:
        raise AudioError(path, os_error_reason(e)) from None
    return path


def _decode_reason(label: object, err: Exception) -> str:
    # soundfile says "Error opening <_io.BytesIO object at 0x..>: ..." (or the path): the caller
    # names the input already
    msg = re.sub(r"^Error opening (<[^>]*>|'[^']*'|\"[^\"]*\"): ", "", str(err).split("\n")[0])
    low = msg.lower()
    if "format not recognised" in low or "unknown format" in low or "not supported" in low:
        return f"unsupported or unrecognised audio format ({msg})"
    return f"corrupt or unreadable audio ({msg})"


def _from_file(file: Path | io.BytesIO, label: str, target_rate: int) -> np.ndarray:
    try:
        return _decode(file, label, target_rate)
    except AudioError:
        raise
    except MemoryError:
        raise AudioError(label, "not enough memory to hold the decoded audio") from None
    except Exception as e:  # load's promise: a bad file is an AudioError, whatever broke
        raise AudioError(label, f"corrupt or unreadable audio ({type(e).__name__}: {e})") from None


def _decode(file: Path | io.BytesIO, label: str, target_rate: int) -> np.ndarray:
    try:
        snd = sf.SoundFile(file if isinstance(file, io.BytesIO) else str(file))
    except Exception as e:
        raise AudioError(label, _decode_reason(label, e)) from None
    with snd:
        rate, channels, declared = int(snd.samplerate), int(snd.channels), int(snd.frames)
        _check_rate(rate, label)
        size = byte_size(file)
        if snd.format in ("WAV", "WAVEX"):
            # libsndfile quietly shortens a WAV whose data chunk runs past the end of the file,
            # so compare with what the RIFF header itself declares, and with what the file's
            # bytes can hold: a header must not decide how much memory is allocated.
            riff = riff_data_frames(file, channels, snd.subtype)
            if riff is not None:
                room = max(0, size - riff[1]) // (channels * PCM_BITS[snd.subtype] // 8)
                if riff[0] > room:
                    raise AudioError(label, f"truncated: header declares {riff[0]} frames but the file "
                                            f"({size} bytes) holds at most {room}")
                declared = max(declared, riff[0])
        elif snd.format == "OGG":
            # A cut Ogg file decodes to the cut without an error, and its length (from the last
            # surviving page) agrees: only the pages themselves tell.
            check_ogg(file, label)
        # MP3 and Ogg headers only estimate the length; PCM containers state it exactly.
        exact_length = snd.format not in ("MP3", "MPEG", "OGG")
        if declared == 0:
            raise AudioError(label, "zero-length audio (the file holds no samples)")
        if snd.format in _PCM_CONTAINERS and snd.subtype in PCM_BITS:
            plausible = size // (channels * PCM_BITS[snd.subtype] // 8)
        else:
            plausible = size * MAX_FRAMES_PER_BYTE
        out = np.empty(num_samples_at(min(declared, plausible), rate, target_rate) + 64, dtype=np.float32)
        resampler = None if rate == target_rate else soxr.ResampleStream(rate, target_rate, 1, dtype="float32")
        # Blocks of ~2 MB whatever the channel count (libsndfile allows 1024 channels).
        block_frames = min(BLOCK_FRAMES, max(1024, 2 * BLOCK_FRAMES // channels))
        filled = read = 0
        try:
            while True:
                block = snd.read(block_frames, dtype="float32", always_2d=True)
                last = len(block) < block_frames
                read += len(block)
                mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
                _check_finite(mono, label, read - len(block))
                chunk = mono if resampler is None else resampler.resample_chunk(mono, last=last)
                if filled + len(chunk) > len(out):  # estimated lengths, or audio past the bound
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
    elif arr.ndim != 1:
        raise AudioError(label, f"expected 1-D or 2-D audio, got shape {arr.shape}")
    if arr.size == 0:
        raise AudioError(label, "empty input (0 samples)")
    if arr.dtype.kind not in "fiu":
        raise AudioError(label, f"unsupported sample type {arr.dtype}")
    if arr.ndim == 1 and arr.dtype == np.float32:
        wav = arr
    else:
        # Block by block into one float32 output: a float64 copy of an hour of stereo integer
        # audio would be ~0.9 GB on top of it.
        wav = np.empty(arr.shape[0], dtype=np.float32)
        for i in range(0, arr.shape[0], BLOCK_FRAMES):
            block = arr[i : i + BLOCK_FRAMES]
            if block.ndim == 2:
                block = block.mean(axis=1, dtype=np.float64 if block.dtype.kind in "iu" else block.dtype)
            wav[i : i + len(block)] = _to_float32(block, arr.dtype)
    _check_finite_blocks(wav, label)
    if int(sample_rate) != target_rate:
        wav = soxr.resample(wav, int(sample_rate), target_rate).astype(np.float32, copy=False)
    return np.ascontiguousarray(wav)


def _to_float32(block: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Samples of a block (already mixed down, maybe float64) of ``dtype`` PCM on [-1, 1)."""
    if dtype.kind == "f":
        return block.astype(np.float32, copy=False)
    if dtype.kind == "u":  # unsigned PCM (8-bit WAV) is centred on half range
        half = (np.iinfo(dtype).max + 1) / 2
        return ((block.astype(np.float64) - half) / half).astype(np.float32)
    return (block.astype(np.float64) / -np.iinfo(dtype).min).astype(np.float32)


def _check_rate(rate: int, label: str) -> None:
    if rate < MIN_RATE:
        raise AudioError(label, f"sample rate {rate} Hz is too low for speech (minimum {MIN_RATE} Hz)")
    if rate > MAX_RATE:
        raise AudioError(label, f"sample rate {rate} Hz is implausible (maximum {MAX_RATE} Hz): a damaged header?")


def _check_finite(samples: np.ndarray, label: str, offset: int) -> None:
    finite = np.isfinite(samples)
    if not finite.all():
        first = offset + int(np.argmin(finite))
        bad = int(samples.size - np.count_nonzero(finite))
        raise AudioError(label, f"NaN or infinite samples ({bad} in a block, first at sample {first})")


def _check_finite_blocks(wav: np.ndarray, label: str) -> None:
    for i in range(0, wav.size, BLOCK_FRAMES):  # np.isfinite of the whole is a mask its size
        _check_finite(wav[i : i + BLOCK_FRAMES], label, i)


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

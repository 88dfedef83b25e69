"""What audio containers declare, read from their own structure, to catch what decoders hide.

libsndfile quietly shortens a WAV whose ``data`` chunk runs past the end of the file, and decodes
a cut Ogg stream up to the cut without a word (its length comes from the last page that
survived). These helpers read the container itself:

* :func:`riff_data_frames`: the frames a WAV's ``data`` chunk header declares;
* :func:`check_ogg`: walks every Ogg page (header, CRC, sequence) and requires each logical
  stream to end with its end-of-stream page, so a truncated or damaged Ogg/Vorbis or Ogg/Opus
  file is an ``AudioError`` like a truncated WAV, FLAC or MP3.

Example:
    >>> import io, numpy as np, soundfile as sf
    >>> buf = io.BytesIO(); sf.write(buf, np.zeros(8000, np.float32), 16000, format="OGG")
    >>> check_ogg(io.BytesIO(buf.getvalue()[:-100]), "cut.ogg")
    Traceback (most recent call last):
    ...
    speechunits.audio.errors.AudioError: cut.ogg: truncated: the last Ogg page is cut off (...)
"""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path
from typing import BinaryIO, Union

from speechunits.audio.errors import AudioError

Source = Union[Path, io.BytesIO]

PCM_BITS = {"PCM_U8": 8, "PCM_S8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64}

_OGG_HEADER = 27
_BOS, _EOS = 0x02, 0x04
# Ogg's CRC-32 is the unreflected polynomial 0x04C11DB7 with no initial or final XOR; zlib's is
# the reflected one. Reflecting every input byte and the result turns one into the other, so the
# check runs at zlib's (C) speed instead of a Python loop over every byte.
_REVERSE_BYTE = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def byte_size(file: Source) -> int:
    """Size in bytes of a file or an in-memory buffer."""
    if isinstance(file, io.BytesIO):
        return len(file.getvalue())
    return os.stat(file).st_size


def riff_data_frames(file: Source, channels: int, subtype: str) -> tuple[int, int] | None:
    """``(declared frames, byte offset of the samples)`` from a WAV's ``data`` chunk header.

    None when it cannot be told: not RIFF/WAVE, a compressed subtype, no ``data`` chunk in the
    first 64 KB, or a size left unset by a streaming writer (0 or 0xFFFFFFFF).
    """
    if subtype not in PCM_BITS or channels < 1:
        return None
    head = _read_head(file, 1 << 16)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if cid == b"data":
            if size in (0, 0xFFFFFFFF):
                return None
            return size // (channels * PCM_BITS[subtype] // 8), pos + 8
        pos += 8 + size + (size & 1)
    return None


def check_ogg(file: Source, label: str) -> None:
    """Raise ``AudioError`` unless every Ogg page is whole and intact and every stream ends.

    Reads page headers and bodies one page (at most ~64 KB) at a time.
    """
    with _open(file) as f:
        size = byte_size(file)
        pos = 0
        open_streams: dict[int, int] = {}  # serial -> last page sequence number
        ended = 0
        while pos < size:
            header = f.read(_OGG_HEADER)
            if header[:4] != b"OggS":
                if not open_streams and ended:
                    return  # bytes after the last stream ended (a tag or padding): not audio
                raise AudioError(label, f"corrupt: no Ogg page where one should start (byte {pos})")
            if len(header) < _OGG_HEADER:
                raise AudioError(label, f"truncated: the last Ogg page is cut off (at byte {pos} of {size})")
            segments = f.read(header[26])
            body_len = sum(segments)
            body = f.read(body_len)
            if len(segments) < header[26] or len(body) < body_len:
                raise AudioError(label, f"truncated: the last Ogg page is cut off (at byte {pos} of {size})")
            page = header[:22] + b"\0\0\0\0" + header[26:] + segments + body
            if _ogg_crc(page) != int.from_bytes(header[22:26], "little"):
                raise AudioError(label, f"corrupt: Ogg page at byte {pos} fails its checksum")
            flags = header[5]
            serial = int.from_bytes(header[14:18], "little")
            seq = int.from_bytes(header[18:22], "little")
            if flags & _BOS:
                open_streams[serial] = seq
            elif serial not in open_streams:
                raise AudioError(label, f"corrupt: Ogg page at byte {pos} belongs to no open stream")
            elif seq != open_streams[serial] + 1:
                raise AudioError(label, f"corrupt: Ogg pages missing before byte {pos} "
                                        f"(page {open_streams[serial] + 1} expected, {seq} found)")
            else:
                open_streams[serial] = seq
            if flags & _EOS:
                del open_streams[serial]
                ended += 1
            pos += _OGG_HEADER + len(segments) + body_len
        if open_streams or not ended:
            raise AudioError(label, "truncated: the Ogg stream stops before its end-of-stream page")


def _ogg_crc(page: bytes) -> int:
    reflected = zlib.crc32(page.translate(_REVERSE_BYTE), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


def _read_head(file: Source, n: int) -> bytes:
    if isinstance(file, io.BytesIO):
        return file.getvalue()[:n]
    with open(file, "rb") as f:
        return f.read(n)


def _open(file: Source) -> BinaryIO:
    return io.BytesIO(file.getvalue()) if isinstance(file, io.BytesIO) else open(file, "rb")

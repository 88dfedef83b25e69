"""Decode audio ahead of the model, in background threads, recording bad files instead of dying.

libsndfile and soxr release the GIL while they work, so decode threads keep the next
utterances ready while the encoder runs on the main thread: tokenizing then costs about the
encoder's own time, not encoder + decode. (One file is decoded at a time, so that each file's
audio warnings are recorded against it.) Any exception one file raises, MemoryError included,
becomes that file's ``error``; it never reaches the caller's loop.

Example:
    >>> from speechunits.data.loader import iter_audio
    >>> for item in iter_audio([]):
    ...     pass
"""

from __future__ import annotations

import collections
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from speechunits.audio import AudioError, AudioWarning, load
from speechunits.audio.errors import os_error_reason
from speechunits.data.manifest import Utterance


@dataclass
class LoadedAudio:
    """One utterance's audio, or the reason it could not be loaded (``wave is None``)."""

    utt: Utterance
    wave: np.ndarray | None
    error: str | None = None
    warnings: tuple[str, ...] = ()


def describe_failure(err: BaseException, stage: str = "decoding") -> str:
    """A one-line reason for a batch log, for any exception one utterance raised."""
    if isinstance(err, AudioError):
        return err.reason
    if isinstance(err, MemoryError):
        return f"out of memory while {stage} ({str(err) or 'MemoryError'})"
    if isinstance(err, OSError) and err.strerror:
        return os_error_reason(err)  # the caller names the file
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"unexpected error while {stage}: {type(err).__name__}" + (f": {first}" if first else "")


# catch_warnings swaps process-wide state: two decode threads recording at once attribute one
# file's warning to the other's utterance (or lose it). Decoding holds this lock; it still runs
# beside the encoder on the main thread, which is where the overlap pays.
_WARNINGS_LOCK = threading.Lock()


def _load_one(utt: Utterance) -> LoadedAudio:
    where = utt.path if utt.audio is None else utt.audio
    if utt.error is not None:  # a folder the scan could not list, already a failure
        return LoadedAudio(utt, None, f"{where}: {utt.error}")
    # Audio inside a container (data.formats) is read outside the lock: bytes decoded from
    # memory, a file path, or (samples, rate) for a span of a file.
    try:
        source = utt.path if utt.audio is None else utt.audio.read()
    except Exception as e:
        return LoadedAudio(utt, None, f"{where}: {describe_failure(e, 'reading')}")
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AudioWarning)
        try:
            name = utt.id if utt.id != str(utt.path) else None
            wave = load(*source, name=name) if isinstance(source, tuple) else load(source, name=name)
        # Whatever one file does (a header asking for 32 GiB, a decoder bug, permissions), it
        # costs that file only: a batch job records the reason and goes on with the rest.
        except Exception as e:
            return LoadedAudio(utt, None, f"{where}: {describe_failure(e)}")
    msgs = tuple(str(w.message) for w in caught if issubclass(w.category, AudioWarning))
    return LoadedAudio(utt, wave, None, msgs)


def iter_audio(utts: Iterable[Utterance], prefetch: int = 8, workers: int = 2) -> Iterator[LoadedAudio]:
    """Yield ``LoadedAudio`` for each utterance, in order, decoding up to ``prefetch`` ahead."""
    if workers <= 0:
        for u in utts:
            yield _load_one(u)
        return
    pending: collections.deque[Future] = collections.deque()
    it = iter(utts)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="speechunits-decode") as pool:
        for u in it:
            pending.append(pool.submit(_load_one, u))
            if len(pending) >= prefetch:
                break
        while pending:
            item = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(_load_one, nxt))
            yield item

"""Decode audio ahead of the model, in background threads, recording bad files instead of dying.

libsndfile and soxr release the GIL while they work, so a couple of decode threads keep the
next utterances ready while the encoder runs on the main thread: tokenizing then costs about
the encoder's own time, not encoder + decode.

Example:
    >>> from speechunits.data.loader import iter_audio
    >>> for item in iter_audio([]):
    ...     pass
"""

from __future__ import annotations

import collections
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


def _load_one(utt: Utterance) -> LoadedAudio:
    if utt.error is not None:  # a folder the scan could not list, already a failure
        return LoadedAudio(utt, None, f"{utt.path}: {utt.error}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AudioWarning)
        try:
            wave = load(utt.path, name=utt.id if utt.id != str(utt.path) else None)
        except AudioError as e:
            return LoadedAudio(utt, None, f"{utt.path}: {e.reason}")
        except OSError as e:  # I/O errors: still one bad file, not the whole job
            return LoadedAudio(utt, None, f"{utt.path}: {os_error_reason(e)}")
        except Exception as e:  # noqa: BLE001 - load promises AudioError; one file never ends a job
            return LoadedAudio(utt, None, f"{utt.path}: unexpected error ({type(e).__name__}: {e})")
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

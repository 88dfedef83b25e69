"""Phones in, frame durations out: the text side of text-to-units.

The model reads ARPAbet phones (stress removed, consecutive pauses merged into one ``sil``), the
labels the synthetic corpus' alignments carry (``data.corpus.phones.COMMON_PHONES``). Training
targets come from an alignment: each phone's length in *unit frames* of the tokenizer, counted
with the vocoder's framing (frame ``i`` belongs to the phone holding its centre
``offset + i / rate``), so the durations of an utterance sum exactly to its number of frames.

New text is phonemized the way the corpus was made: espeak-ng's MBROLA phone file for the whole
sentence (``espeak-ng -v mb-us1 --pho``), mapped to the common set, with the corpus' leading
pause. For corpus sentences this gives exactly the phone tier of their alignment (checked in
tests), so the model sees at synthesis the sequences it was trained on.

Example:
    >>> from speechunits.data.alignment import Segment
    >>> segs = [Segment(0.0, 0.05, "sil"), Segment(0.05, 0.12, "HH"), Segment(0.12, 0.2, "AY")]
    >>> frame_durations(segs, num_frames=10, rate=50.0, offset_s=0.0).tolist()
    [3, 3, 4]
    >>> phone_ids(["sil", "HH", "AY"])[:3].tolist()
    [40, 16, 6]
"""

from __future__ import annotations

import re
import shutil
from typing import Sequence

import numpy as np

from speechunits.data.alignment import Segment
from speechunits.data.corpus.phones import COMMON_PHONES

#: The model's input symbols: id 0 is padding, then the common phone set (``sil`` last).
PAD = "<pad>"
PHONES: tuple[str, ...] = (PAD, *COMMON_PHONES)
_INDEX = {p: i for i, p in enumerate(PHONES)}
LEAD_MS, TAIL_MS = 120.0, 150.0  # the corpus' pauses around every utterance (data.corpus.synth)
VOICES = ("us1", "us2", "us3", "en1")


class TextError(ValueError):
    """Text that cannot be turned into phones: ``"<text>: <reason>"``."""


def phone_ids(labels: Sequence[str]) -> np.ndarray:
    """Ids of common-set phone labels (stress digits dropped; an unknown label raises)."""
    out = []
    for lab in labels:
        p = re.sub(r"\d$", "", lab) if lab != "sil" else lab
        p = p.upper() if p.lower() != "sil" else "sil"
        if p not in _INDEX or p == PAD:
            raise TextError(f"phone {lab!r} is not in the ARPAbet set the model reads")
        out.append(_INDEX[p])
    return np.asarray(out, dtype=np.int64)


def merge_pauses(labels: Sequence[str]) -> list[str]:
    """Consecutive ``sil`` merged into one (as the corpus' phone tier has them)."""
    out: list[str] = []
    for lab in labels:
        if not (lab == "sil" and out and out[-1] == "sil"):
            out.append(lab)
    return out


def frame_durations(phones: Sequence[Segment], num_frames: int, rate: float, offset_s: float) -> np.ndarray:
    """Frames of each phone: frame ``i`` goes to the phone holding ``offset_s + i / rate`` (frames
    past either end go to the first / last phone), so the result sums to ``num_frames``."""
    if not phones:
        raise ValueError("no phones in the alignment")
    starts = np.array([s.start for s in phones])
    centres = offset_s + np.arange(num_frames) / rate
    # rounded to the nanosecond, as data.alignment.frame_labels does: a centre on a boundary
    # belongs to the phone that starts there
    idx = np.searchsorted(np.round(starts, 9), np.round(centres, 9), side="right") - 1
    idx = np.clip(idx, 0, len(phones) - 1)
    return np.bincount(idx, minlength=len(phones)).astype(np.int64)


def _has_word(text: str) -> bool:
    return bool(re.search(r"[A-Za-z0-9]", text))


def text_to_phones(text: str, voice: str = "us1") -> list[str]:
    """Common-set phones of ``text`` as the corpus' ``voice`` reads it (espeak-ng ``mb-<voice>``),
    with the corpus' leading and trailing pause. Raises :class:`TextError` for text with no word
    to say and ``ToolMissingError`` when espeak-ng is missing."""
    from speechunits.data.corpus.phones import parse_pho, retime, to_common
    from speechunits.data.corpus.tools import INSTALL_HINT, ToolMissingError, ensure_final_punctuation, espeak_pho

    shown = text if len(text) <= 40 else text[:37] + "..."
    if voice not in VOICES:
        raise TextError(f"{voice!r}: not a phonemizer voice ({', '.join(VOICES)})")
    if not isinstance(text, str) or not _has_word(text):
        raise TextError(f"{shown!r}: no word to say (give text with letters or digits)")
    if shutil.which("espeak-ng") is None:
        raise ToolMissingError(f"espeak-ng not found (needed to turn text into phones): {INSTALL_HINT}")
    raw = parse_pho(espeak_pho(ensure_final_punctuation(" ".join(text.split())), voice))
    labels = []
    for p in retime(raw, 1.0, LEAD_MS, TAIL_MS):
        try:
            labels.append(to_common(p.label, voice))
        except KeyError:  # espeak-ng's own names for odd spellings: no common phone, skip it
            continue
    labels = merge_pauses(labels)
    if not any(lab != "sil" for lab in labels):
        raise TextError(f"{shown!r}: espeak-ng found nothing to say in it")
    return labels

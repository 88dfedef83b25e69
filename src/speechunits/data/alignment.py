"""Time alignments of phones, words and characters, and frame labels derived from them.

An alignment is three tiers of ``Segment(start, end, label)`` in seconds. The corpus generator
writes them (phones tile the audio exactly), and real forced alignments (the librivox-aligned
``*.phone.json`` files) are read into the same record.

Frame labelling rule (``frame_labels``): frame ``i`` starts at ``i * hop`` and spans ``window``
seconds (``window`` defaults to ``hop``); it gets the label of the segment that contains its
*centre* ``i * hop + window / 2``. A centre that falls exactly on a boundary belongs to the
segment that *starts* there (segments are half-open ``[start, end)``). Frames whose centre lies
in no segment (gaps, or past the end) get ``unknown``. Frames are attributed by their centre as
in ZeroSpeech's ABX item files. For the 50 Hz encoders here a frame covers samples
``[320 i, 320 i + 400)``, so pass ``window_s=0.025``: its centre is at ``20 i + 12.5`` ms, not
``20 i + 10`` ms.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    label: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)) or self.end < self.start:
            raise ValueError(f"bad segment {self.label!r}: start={self.start} end={self.end}")


@dataclass
class Alignment:
    """Phone, word and character tiers of one utterance (seconds)."""

    phones: list[Segment] = field(default_factory=list)
    words: list[Segment] = field(default_factory=list)
    chars: list[Segment] = field(default_factory=list)
    duration: float | None = None

    def tier(self, name: str) -> list[Segment]:
        if name not in ("phones", "words", "chars"):
            raise KeyError(f"unknown alignment tier {name!r} (phones, words or chars)")
        return getattr(self, name)

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        def tier(segs: list[Segment]) -> list[list]:
            return [[round(s.start, 6), round(s.end, 6), s.label] for s in segs]

        return {
            "duration": self.duration,
            "phones": tier(self.phones),
            "words": tier(self.words),
            "chars": tier(self.chars),
        }

    @classmethod
    def from_dict(cls, d: dict, source: object = "<dict>") -> "Alignment":
        def tier(name: str) -> list[Segment]:
            rows = d.get(name, []) or []
            out = []
            for i, row in enumerate(rows):
                try:
                    start, end, label = row
                    out.append(Segment(float(start), float(end), str(label)))
                except (TypeError, ValueError) as e:
                    raise ValueError(f"{source}: {name}[{i}] is not [start, end, label]: {e}") from e
            return out

        if not isinstance(d, dict):
            raise ValueError(f"{source}: alignment must be a JSON object")
        dur = d.get("duration")
        return cls(tier("phones"), tier("words"), tier("chars"), None if dur is None else float(dur))

    def save(self, path: str | Path) -> None:
        from speechunits.data.atomic import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> "Alignment":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: alignment file not found") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        # Two formats: ours ({"phones": ...}) and pocketsphinx's nested {"b","d","t","w"}.
        if isinstance(d, list) or (isinstance(d, dict) and "w" in d and "phones" not in d):
            return cls.from_librivox_phone_json(d, source=path)
        return cls.from_dict(d, source=path)

    @classmethod
    def from_librivox_phone_json(cls, d: dict | list, source: object = "<json>") -> "Alignment":
        """Read the pocketsphinx-style ``*.phone.json`` of ``librivox-aligned``.

        Word segments carry ``b`` (begin, s), ``d`` (duration, s), ``t`` (label) and a nested
        ``w`` list of phone segments of the same shape. Silence words (``<sil>``, ``<s>``,
        ``</s>``) become ``sil`` phones and are not words.
        """
        items = d if isinstance(d, list) else d["w"]
        phones: list[Segment] = []
        words: list[Segment] = []
        for i, w in enumerate(items):
            try:
                b, dur, t = float(w["b"]), float(w["d"]), str(w["t"])
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{source}: word {i} lacks b/d/t ({e})") from None
            is_sil = t.startswith("<") or t in ("sil", "SIL")
            if not is_sil:
                words.append(Segment(b, b + dur, t.split("(")[0].lower()))
            sub = w.get("w") or []
            if is_sil or not sub:
                phones.append(Segment(b, b + dur, "sil" if is_sil else t))
                continue
            for p in sub:
                pb, pd = float(p["b"]), float(p["d"])
                label = str(p["t"]).upper()
                phones.append(Segment(pb, pb + pd, "sil" if label == "SIL" else label))
        end = max((s.end for s in phones), default=0.0)
        al = cls(phones=phones, words=words, duration=end)
        al.chars = chars_from_words(words)
        return al


def chars_from_words(words: Iterable[Segment]) -> list[Segment]:
    """Spread each word's characters evenly over the word's span (the corpus's char tier)."""
    out: list[Segment] = []
    for w in words:
        letters = [c for c in w.label if not c.isspace()]
        if not letters:
            continue
        step = (w.end - w.start) / len(letters)
        for j, c in enumerate(letters):
            end = w.end if j == len(letters) - 1 else w.start + (j + 1) * step
            out.append(Segment(w.start + j * step, end, c))
    return out


def frame_labels(
    segments: Sequence[Segment],
    num_frames: int,
    frame_rate: float = 50.0,
    unknown: str = "<unk>",
    window_s: float | None = None,
) -> list[str]:
    """Label each of ``num_frames`` frames by the segment containing its centre (see module doc)."""
    if num_frames < 0:
        raise ValueError("num_frames must be >= 0")
    hop = 1.0 / frame_rate
    window = hop if window_s is None else float(window_s)
    labels = [unknown] * num_frames
    segs = sorted(segments, key=lambda s: s.start)
    # Rounded to the nanosecond so that a centre on a boundary is on it, not 1e-17 s before.
    starts = np.round(np.array([s.start for s in segs]), 9)
    ends = np.round(np.array([s.end for s in segs]), 9)
    centres = np.round(np.arange(num_frames) * hop + window / 2, 9)
    # Index of the last segment starting at or before the centre.
    idx = np.searchsorted(starts, centres, side="right") - 1
    for i, (c, j) in enumerate(zip(centres, idx)):
        if j >= 0 and c < ends[j]:
            labels[i] = segs[j].label
    return labels


def frame_label_ids(
    segments: Sequence[Segment],
    num_frames: int,
    vocab: dict[str, int],
    frame_rate: float = 50.0,
    unknown_id: int = -1,
    window_s: float | None = None,
) -> np.ndarray:
    """``frame_labels`` mapped through ``vocab`` (labels not in it get ``unknown_id``)."""
    labels = frame_labels(segments, num_frames, frame_rate, unknown="\0", window_s=window_s)
    return np.array([vocab.get(lab, unknown_id) for lab in labels], dtype=np.int64)

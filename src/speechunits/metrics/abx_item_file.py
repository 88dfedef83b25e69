"""ZeroSpeech / libri-light ``.item`` files: ABX items as text, to score the same triphones elsewhere.

An item file has a header line and then one item per line, seven fields separated by spaces::

    #file onset offset #phone prev-phone next-phone speaker
    u0003 0.41 0.63 a b t s1

``onset`` and ``offset`` are in seconds: for triphone items, from the start of the previous phone
to the end of the next one (the ZeroSpeech 2017 / 2021 and libri-light files). This is the input
of libri-light's ``eval_ABX.py``, zerospeech-libriabx2 and fastabx (``zerospeech_abx``).

- :func:`write_item_file` writes the items :func:`~speechunits.metrics.abx_items` builds from
  alignments, so that another implementation scores exactly the same triphones;
- :func:`read_item_file` turns an item file (e.g. ZeroSpeech 2021's LibriSpeech ones) into items
  for :func:`~speechunits.metrics.abx_error`, framed by libri-light's rule
  (:func:`~speechunits.metrics.span_frames`), in libri-light's item order: the files in the order
  given, each file's items in the order of the file.

Example:
    >>> import tempfile, pathlib
    >>> from speechunits.data.alignment import Segment
    >>> segs = [Segment(0.1 * i, 0.1 * i + 0.1, p) for i, p in enumerate("babapa")]
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "abx.item"
    >>> write_item_file(path, [segs], ["s1"], ["u0"])
    4
    >>> path.read_text().splitlines()[1]
    'u0 0.0 0.3 a b b s1'
    >>> read_item_file(path, ["u0"])[0]
    AbxItem(utt=0, start=0, end=14, phone='a', prev='b', next='b', speaker='s1')
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from ..data.alignment import Alignment, Segment
from ..data.atomic import atomic_write_text
from .abx import DEFAULT_EXCLUDE, AbxItem, span_frames, triphones

HEADER = "#file onset offset #phone prev-phone next-phone speaker"


def _time(t: float) -> str:
    # Rounded to the microsecond: exact decimals for readers that parse them as such (fastabx).
    return repr(round(float(t), 6))


def write_item_file(
    path: str | Path,
    phone_tiers: Sequence[Sequence[Segment] | Alignment],
    speakers: Sequence[str],
    file_ids: Sequence[str],
    span: str = "triphone",
    exclude: frozenset[str] | set[str] = DEFAULT_EXCLUDE,
) -> int:
    """Write the items of ``phone_tiers`` (utterance ``u`` is file ``file_ids[u]``, spoken by
    ``speakers[u]``) to ``path`` atomically; returns the number of items.

    The triphones are those of :func:`~speechunits.metrics.abx_items` with the same ``span`` and
    ``exclude``, before any framing (a reader drops the spans too short for one frame).
    """
    if not len(speakers) == len(file_ids) == len(phone_tiers):
        raise ValueError(f"{len(phone_tiers)} utterances, {len(speakers)} speakers, {len(file_ids)} file ids")
    if len(set(file_ids)) != len(file_ids):
        raise ValueError("file ids must be distinct")
    lines = [HEADER]
    for tier, spk, fid in zip(phone_tiers, speakers, file_ids):
        for on, off, prev, cur, nxt in triphones(tier, span, exclude):
            fields = [str(fid), _time(on), _time(off), cur, prev, nxt, str(spk)]
            bad = next((f for f in fields if not f or len(f.split()) != 1), None)
            if bad is not None:
                raise ValueError(f"item field {bad!r} of file {fid!r}: item files need non-empty fields "
                                 "without spaces")
            lines.append(" ".join(fields))
    atomic_write_text(path, "\n".join(lines) + "\n")
    return len(lines) - 1


def read_item_file(
    path: str | Path,
    file_ids: Sequence[str],
    frame_rate: float = 50.0,
    num_frames: Sequence[int] | None = None,
    window_s: float | None = None,
) -> list[AbxItem]:
    """Items of the item file ``path`` for the files ``file_ids`` (item ``utt`` = the index of its
    file there; ``num_frames[u]``: the length of file ``u``'s features, to clip spans).

    Frames follow :func:`~speechunits.metrics.span_frames` (``window_s=None``: libri-light's
    centres); spans with no frame are dropped, and so are the items of files not in ``file_ids``
    (libri-light scores the files it has features for). The first line is a header and is not read.
    """
    index = {str(f): u for u, f in enumerate(file_ids)}
    if len(index) != len(file_ids):
        raise ValueError("file ids must be distinct")
    if num_frames is not None and len(num_frames) != len(file_ids):
        raise ValueError(f"{len(num_frames)} frame counts for {len(file_ids)} files")
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()[1:]
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read the item file: {e}") from None
    by_file: list[list[AbxItem]] = [[] for _ in file_ids]
    named = 0
    for lineno, line in enumerate(lines, start=2):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 7:
            raise ValueError(f"{path}:{lineno}: expected 7 fields (file onset offset phone prev next "
                             f"speaker), got {len(fields)}")
        fid, on_s, off_s, phone, prev, nxt, spk = fields
        try:
            on, off = float(on_s), float(off_s)
        except ValueError:
            raise ValueError(f"{path}:{lineno}: onset {on_s!r} and offset {off_s!r} must be numbers") from None
        if not (math.isfinite(on) and math.isfinite(off)) or off < on or on < 0:
            raise ValueError(f"{path}:{lineno}: bad span onset={on_s} offset={off_s}")
        u = index.get(fid)
        if u is None:
            continue
        named += 1
        n = None if num_frames is None else int(num_frames[u])
        start, end = span_frames(on, off, frame_rate, n, window_s)
        if end > start:
            by_file[u].append(AbxItem(u, start, end, phone, prev, nxt, spk))
    if lines and not named:
        raise ValueError(f"{path}: none of its {len(lines)} items names one of the {len(file_ids)} files given")
    return [it for items in by_file for it in items]

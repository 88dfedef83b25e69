"""ABX phone discriminability of one layer: on its units and on its continuous features.

The metric is :func:`speechunits.metrics.abx_error` (ZeroSpeech / libri-light: triphone items,
DTW normalised by path length, errors averaged over contexts, speakers, then phone pairs). This
module only chooses its inputs:

- **units**: the layer's frame ids; the frame distance is the cosine distance between the codes'
  k-means centroids (taken from the tokenizer's quantizer) when the quantizer is k-means, else
  0/1 (one-hot: equal code or not);
- **features**: the encoder's continuous features of the same layer, cosine (angular) distance;
- **within** speaker always; **across** speakers when the data has speaker labels and at least
  two speakers. Without speaker labels, each utterance counts as its own speaker for the within
  test (all three tokens then come from one utterance, hence one speaker) and across is skipped.

Item spans place the frames by libri-light's convention by default (``frames="librilight"``:
frame ``i`` centred at ``(i + 1/2)`` hops, 20 i + 10 ms at 50 Hz, as libri-light, ABXpy and fastabx
do for any model, so that scores compare with theirs); ``frames="window"`` centres them in the
encoder's analysis window instead (``i hop + window / 2``: 20 i + 12.5 ms for 25 ms windows, 20 i
for Whisper, whose encoder reports a 0 window). Either way the span is libri-light's slicing
(:func:`~speechunits.metrics.span_frames`). The convention used is written in the section
(``frames``, with its frame centre in ms).

Sampling is bounded and seeded (``max_size_group`` items per (context, speaker, phone),
``max_x_across`` X speakers, ``max_cells_per_pair`` cells per ordered phone pair), so an hour of
speech is scored in about a minute.

Example:
    >>> import numpy as np
    >>> from speechunits.data.alignment import Alignment, Segment
    >>> segs = [Segment(0.1 * i, 0.1 * i + 0.1, p) for i, p in enumerate("babapapa")]
    >>> ids = [np.repeat([int(s.label == "p") for s in segs], 5)] * 2
    >>> feats = [np.eye(2, dtype=np.float32)[x] for x in ids]
    >>> r = abx_section(ids, feats, [Alignment(phones=segs)] * 2, ["s1", "s1"], 50.0, 0.02,
    ...                 centroids=None, settings=AbxSettings(span="phone"))
    >>> r["units"]["within"]["error"], r["features"]["within"]["error"], r["units"]["across"]["skipped"]
    (0.0, 0.0, True)
    >>> r["frames"]
    'librilight: frame i centred at 20 i + 10 ms (half the 20 ms hop)'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

from speechunits.data.alignment import Alignment
from speechunits.metrics import abx_error, abx_items

from ._result import skipped


FRAME_CONVENTIONS = ("librilight", "window")


def _check_frames(frames: str) -> None:
    if frames not in FRAME_CONVENTIONS:
        raise ValueError(f"ABX frame convention must be one of {', '.join(FRAME_CONVENTIONS)}, got {frames!r}")


@dataclass
class AbxSettings:
    """Sampling bounds (libri-light's defaults for the first two), the seed, and where frames are
    centred (``frames``: ``"librilight"``, half a hop after the frame's start, or ``"window"``,
    the middle of the encoder's analysis window)."""

    max_size_group: int = 10
    max_x_across: int = 5
    max_cells_per_pair: int | None = 50
    span: str = "triphone"
    seed: int = 0
    frames: str = "librilight"

    def __post_init__(self) -> None:
        _check_frames(self.frames)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Below these, an error rate is noise (librivox-aligned alone gave 1 pair, 2 triplets): it is
# reported as skipped, with its counts, rather than as a number beside real ones.
MIN_PHONE_PAIRS = 2
MIN_TRIPLETS = 10


def frame_convention(frames: str, frame_rate: float, window_s: float) -> tuple[float | None, str]:
    """``window_s`` for :func:`~speechunits.metrics.abx_items` (None: libri-light's centres) and
    the convention in words, with frame ``i``'s centre in ms."""
    _check_frames(frames)
    hop_ms = 1000.0 / frame_rate
    if frames == "librilight":
        return None, f"librilight: frame i centred at {hop_ms:g} i + {hop_ms / 2:g} ms (half the {hop_ms:g} ms hop)"
    w_ms = 1000.0 * window_s
    if not w_ms:  # Whisper: its encoder frame i is centred on 20 i ms and reports a 0 window
        return window_s, f"window: frame i centred at {hop_ms:g} i ms (the encoder's frames are centred on their start)"
    return window_s, (f"window: frame i centred at {hop_ms:g} i + {w_ms / 2:g} ms "
                      f"(the middle of the encoder's {w_ms:g} ms window)")


def abx_section(
    ids: Sequence[np.ndarray],
    features: Sequence[np.ndarray] | None,
    alignments: Sequence[Alignment | None],
    speakers: Sequence[str | None],
    frame_rate: float,
    window_s: float,
    *,
    centroids: np.ndarray | None,
    settings: AbxSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """ABX within/across speakers on units and on features (``features=None``: units only).

    ``features[i]`` is needed only where ``alignments[i]`` is not None. ``window_s`` (the
    encoder's analysis window) is used only by ``settings.frames == "window"``.
    """
    settings = settings or AbxSettings()
    item_window_s, convention = frame_convention(settings.frames, frame_rate, window_s)
    keep = [i for i, a in enumerate(alignments) if a is not None]
    if not keep:
        reason = "no alignments: ABX needs phone boundaries"
        return {"units": skipped(reason), "features": skipped(reason)}
    spk = [speakers[i] for i in keep]
    if all(s is not None for s in spk):
        source = "manifest"
    else:
        source = "utterance"  # each utterance its own speaker: a valid within-speaker test
        spk = [f"utt{i}" for i in keep]
    unit_seqs = [np.asarray(ids[i]) for i in keep]
    items = abx_items([alignments[i] for i in keep], spk, frame_rate=frame_rate,
                      num_frames=[len(x) for x in unit_seqs], span=settings.span, window_s=item_window_s)
    n_spk = len(set(spk))
    out: dict[str, Any] = {
        "settings": settings.to_dict(),
        "frames": convention,
        "num_items": len(items),
        "utterances": len(keep),
        "speakers": n_spk if source == "manifest" else None,
        "speaker_source": source,
    }
    if source == "utterance":
        across_reason = (f"{sum(s is None for s in (speakers[i] for i in keep))} aligned utterances have no "
                         "speaker label (within-speaker ABX uses each utterance as its own speaker)")
    elif n_spk < 2:
        across_reason = f"only {n_spk} speaker: across-speaker ABX needs at least 2"
    else:
        across_reason = None
    kinds: list[tuple[str, Sequence[np.ndarray], dict[str, Any]]] = [
        ("units", unit_seqs, {"centroids": centroids}),
    ]
    if features is not None:
        kinds.append(("features", [np.asarray(features[i]) for i in keep], {"distance": "cosine"}))
    for name, inputs, kw in kinds:
        res: dict[str, Any] = {}
        for mode in ("within", "across"):
            if mode == "across" and across_reason:
                res[mode] = skipped(across_reason)
                continue
            if progress is not None:
                progress(f"ABX {mode} {name}")
            r = abx_error(items, inputs, mode, max_size_group=settings.max_size_group,
                          max_x_across=settings.max_x_across,
                          max_cells_per_pair=settings.max_cells_per_pair, seed=settings.seed, **kw)
            if r.num_cells == 0:
                res[mode] = skipped(f"no ABX cell among {len(items)} items: too few repeated triphone "
                                    f"contexts{' across speakers' if mode == 'across' else ''}")
                continue
            if r.num_phone_pairs < MIN_PHONE_PAIRS or r.num_triplets < MIN_TRIPLETS:
                res[mode] = skipped(f"only {r.num_phone_pairs} phone pair(s), {r.num_cells} cell(s), "
                                    f"{r.num_triplets} triplet(s): too little data for an ABX score (needs "
                                    f">= {MIN_PHONE_PAIRS} phone pairs and >= {MIN_TRIPLETS} triplets)")
                continue
            d = r.to_dict()
            d.pop("pair_errors")  # one number per phone pair: too long for the report
            res[mode] = d
        res["distance"] = "centroid-cosine" if kw.get("centroids") is not None else (
            "onehot" if name == "units" else "cosine")
        out[name] = res
    if features is None:
        out["features"] = skipped("features not kept")
    return out

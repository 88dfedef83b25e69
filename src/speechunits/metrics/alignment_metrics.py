"""Phone (PNMI) and character (CNMI) normalised mutual information of units, and purities.

Exactly the statistics of HuBERT's ``measure_teacher_quality.py`` (fairseq,
``examples/hubert/measure_teacher_quality.py``; Hsu et al., "HuBERT", 2021, Sec. IV-B). Over all
frames whose label is known, with ``x`` = the reference label (phone, or character for CNMI) and
``y`` = the unit (code), the joint distribution is ``p(x, y) = count(x, y) / N``. Then

- ``PNMI = I(x; y) / H(x)`` with ``I(x; y) = sum p(x,y) log p(x,y) / (p(x) p(y))``: the share of
  the phone's uncertainty removed by knowing the code (1 = the code determines the phone);
- ``H(x | y) = H(x) - I(x; y)``: the phone entropy left given the code;
- phone purity = ``E_y[max_x p(x | y)] = sum_y max_x p(x, y)``: the frame accuracy of mapping
  each code to its most likely phone (the script's ``ref pur``);
- cluster purity = ``E_x[max_y p(y | x)] = sum_x max_y p(x, y)`` (the script's ``hyp pur``).

Entropies are reported in bits (the script uses nats; PNMI and the purities do not depend on the
base). The script adds ``1e-8`` inside its logarithms; here zero cells are skipped exactly, so
values agree with it to about 1e-7. As in the script, a unit/label pair of unequal lengths is
truncated to the shorter one and the total absolute frame difference is reported
(``frame_diff``); ``max_frame_diff`` (per pair) turns a larger mismatch into an error, since it
usually means a frame-rate or offset bug rather than the last-frame rounding of an encoder.

Frames whose label equals ``unknown`` (gaps, no alignment) are excluded before anything is
counted. Use :func:`frame_label_pairs` to build the pairs from alignments (frame ``i`` is labelled
by the segment containing its centre, :func:`speechunits.data.alignment.frame_labels`).

Example:
    >>> import numpy as np
    >>> codes = [np.array([3, 3, 7, 7, 7, 1])]
    >>> phones = [["a", "a", "b", "b", "b", "<unk>"]]
    >>> r = pnmi(list(zip(codes, phones)))
    >>> round(r.pnmi, 6), r.phone_purity, r.num_frames
    (1.0, 1.0, 5)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable, Sequence

import numpy as np

from ..data.alignment import Alignment, frame_labels
from ..tokens.dedup import expand_ids
from ..tokens.units import Units, as_int_ids

UNKNOWN = "<unk>"


@dataclass
class AlignmentStats:
    """Result of :func:`pnmi` / :func:`cnmi` (see the module docstring).

    ``p_label_given_code[i, j] = p(labels[i] | codes[j])``: rows are the labels sorted by
    decreasing frequency, columns the codes sorted by their most likely label (in that row order)
    and then by decreasing ``p(label | code)``, so the matrix is near block-diagonal for a heat map.
    ``code_counts[j]`` frames carry code ``codes[j]``; ``label_counts[i]`` carry ``labels[i]``.
    """

    nmi: float
    mutual_info_bits: float
    h_label_bits: float
    h_code_bits: float
    h_label_given_code_bits: float
    label_purity: float
    cluster_purity: float
    num_frames: int
    frame_diff: int
    labels: list = field(repr=False)
    codes: np.ndarray = field(repr=False)
    label_counts: np.ndarray = field(repr=False)
    code_counts: np.ndarray = field(repr=False)
    p_label_given_code: np.ndarray = field(repr=False)

    # Names in the vocabulary of the PNMI papers.
    @property
    def pnmi(self) -> float:
        return self.nmi

    @property
    def phone_purity(self) -> float:
        return self.label_purity

    @property
    def h_phone_given_code_bits(self) -> float:
        return self.h_label_given_code_bits

    def to_dict(self) -> dict[str, Any]:
        """Scalars only (JSON-able); the matrix stays on the object."""
        return {
            "nmi": self.nmi,
            "mutual_info_bits": self.mutual_info_bits,
            "h_label_bits": self.h_label_bits,
            "h_code_bits": self.h_code_bits,
            "h_label_given_code_bits": self.h_label_given_code_bits,
            "label_purity": self.label_purity,
            "cluster_purity": self.cluster_purity,
            "num_frames": self.num_frames,
            "frame_diff": self.frame_diff,
            "num_labels": len(self.labels),
            "num_codes_used": int(len(self.codes)),
        }


Pair = tuple[Any, Sequence[Hashable]]


def label_code_stats(
    pairs: Sequence[Pair], unknown: Hashable = UNKNOWN, max_frame_diff: int | None = 2
) -> AlignmentStats:
    """NMI, conditional entropy and purities of codes against frame labels (module docstring).

    Args:
        pairs: ``(frame codes, frame labels)`` per utterance; codes are 1-D int arrays (or
            ``Units``; de-duplicated ones are expanded back to frames), labels any hashables.
        unknown: label of frames to exclude.
        max_frame_diff: largest allowed ``|len(codes) - len(labels)|`` per pair (``None``: any).
    """
    code_chunks, label_chunks, frame_diff = [], [], 0
    for i, (codes, labels) in enumerate(pairs):
        c = _frame_codes(codes, f"pair {i}")
        labels = list(labels)
        diff = abs(len(c) - len(labels))
        if max_frame_diff is not None and diff > max_frame_diff:
            raise ValueError(
                f"pair {i}: {len(c)} code frames but {len(labels)} label frames "
                f"(difference {diff} > max_frame_diff={max_frame_diff})"
            )
        frame_diff += diff
        n = min(len(c), len(labels))
        code_chunks.append(c[:n])
        label_chunks.append(labels[:n])
    codes = np.concatenate(code_chunks) if code_chunks else np.zeros(0, np.int64)
    labels_all = [lab for chunk in label_chunks for lab in chunk]
    keep = np.fromiter((lab != unknown for lab in labels_all), dtype=bool, count=len(labels_all))
    codes = codes[keep]
    if len(codes) == 0:
        raise ValueError("no frame with a known label: nothing to measure")
    index: dict[Hashable, int] = {}
    label_idx = np.fromiter(
        (index.setdefault(lab, len(index)) for lab, k in zip(labels_all, keep) if k),
        dtype=np.int64, count=len(codes),
    )
    label_names = list(index)
    code_names, code_idx = np.unique(codes, return_inverse=True)
    shape = (len(label_names), len(code_names))
    flat = label_idx * shape[1] + code_idx.reshape(-1)
    joint = np.bincount(flat, minlength=shape[0] * shape[1]).reshape(shape).astype(np.float64)
    return _from_joint(joint, label_names, code_names, frame_diff)


def pnmi(
    pairs: Sequence[Pair], unknown: Hashable = UNKNOWN, max_frame_diff: int | None = 2
) -> AlignmentStats:
    """Phone-normalised mutual information (labels = frame phones); see :func:`label_code_stats`."""
    return label_code_stats(pairs, unknown, max_frame_diff)


def cnmi(
    pairs: Sequence[Pair], unknown: Hashable = UNKNOWN, max_frame_diff: int | None = 2
) -> AlignmentStats:
    """Character-normalised mutual information (labels = frame characters), as in DC-Spin."""
    return label_code_stats(pairs, unknown, max_frame_diff)


def frame_label_pairs(
    units: Sequence[Any],
    alignments: Sequence[Alignment],
    tier: str = "phones",
    frame_rate: float = 50.0,
    unknown: str = UNKNOWN,
    window_s: float | None = None,
) -> list[tuple[np.ndarray, list[str]]]:
    """``(frame codes, frame labels)`` pairs from units and alignments (labels by frame centre).

    ``window_s`` is the frames' analysis window (0.025 for the 50 Hz encoders here), so that each
    frame is labelled at its true centre (see :func:`speechunits.data.alignment.frame_labels`).
    """
    if len(units) != len(alignments):
        raise ValueError(f"{len(units)} unit sequences but {len(alignments)} alignments")
    out = []
    for i, (u, al) in enumerate(zip(units, alignments)):
        c = _frame_codes(u, f"utterance {i}")
        out.append((c, frame_labels(al.tier(tier), len(c), frame_rate, unknown=unknown, window_s=window_s)))
    return out


def _from_joint(counts: np.ndarray, labels: list, codes: np.ndarray, frame_diff: int) -> AlignmentStats:
    n = counts.sum()
    p_xy = counts / n
    p_x = p_xy.sum(axis=1)
    p_y = p_xy.sum(axis=0)
    nz = p_xy > 0
    outer = np.outer(p_x, p_y)
    mi = float((p_xy[nz] * np.log2(p_xy[nz] / outer[nz])).sum())
    h_x = float(-(p_x * np.log2(p_x)).sum())
    h_y = float(-(p_y * np.log2(p_y)).sum())
    mi = min(max(mi, 0.0), min(h_x, h_y))  # clip float noise
    nmi = mi / h_x if h_x > 0 else float("nan")  # a single label has no entropy to explain
    # Rows by decreasing label frequency (ties by name), columns by argmax row then purity.
    row = np.lexsort((np.array([str(lab) for lab in labels]), -counts.sum(axis=1)))
    counts_r = counts[row]
    p_x_given_y = counts_r / counts_r.sum(axis=0, keepdims=True)
    best = p_x_given_y.argmax(axis=0)
    col = np.lexsort((-p_x_given_y.max(axis=0), best))
    return AlignmentStats(
        nmi=float(nmi),
        mutual_info_bits=mi,
        h_label_bits=h_x,
        h_code_bits=h_y,
        h_label_given_code_bits=max(h_x - mi, 0.0),
        label_purity=float(p_xy.max(axis=0).sum()),
        cluster_purity=float(p_xy.max(axis=1).sum()),
        num_frames=int(n),
        frame_diff=int(frame_diff),
        labels=[labels[i] for i in row],
        codes=np.asarray(codes)[col],
        label_counts=counts_r.sum(axis=1).astype(np.int64),
        code_counts=counts_r.sum(axis=0)[col].astype(np.int64),
        p_label_given_code=p_x_given_y[:, col],
    )


def _frame_codes(codes: Any, what: str) -> np.ndarray:
    if isinstance(codes, Units):
        ids = codes.ids if codes.durations is None else expand_ids(codes.ids, codes.durations)
    else:
        ids = as_int_ids(codes, what)
    if ids.ndim != 1:
        raise ValueError(f"{what}: codes must be [T] frame ids, got shape {ids.shape}")
    return ids

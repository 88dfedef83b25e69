"""Zero-shot pair scoring (sWUGGY / sBLIMP / StoryCloze style): is the correct member of each
pair more likely under the LM than the incorrect one?

Each utterance is scored by its log-probability, summed over its scored tokens (units and the
end token) and normalised by their number; accuracy is reported with both. A tie counts 0.5, as
in the ZeroSpeech 2021 scorer.

Gold file (CSV or TSV; header names are matched case-insensitively, extra columns ignored):

- sLM21 layout, one row per file: ``filename``, ``correct`` (1/0, true/false) and ``id``; the
  rows sharing ``id`` (and ``voice`` / ``speaker`` when present) form a group, and every
  (correct, incorrect) combination inside a group is a pair. ``type`` (or ``category``) is used,
  when present, to report accuracy per type.
- one row per pair: ``correct`` and ``incorrect`` holding file names (also accepted:
  ``good``/``bad``, ``correct_filename``/``incorrect_filename``), optional ``id`` and ``type``.

File names are matched to utterance ids of the units file exactly, else by their base name
without the extension (``dev/aAbc.wav`` matches id ``aAbc``).

Example:
    >>> import io
    >>> gold = "id,filename,correct,voice\\n1,a.wav,1,v\\n1,b.wav,0,v\\n"
    >>> [(p.correct, p.incorrect) for p in read_gold(io.StringIO(gold))]
    [('a.wav', 'b.wav')]
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np

from ..tokens import Units
from .evaluate import sequence_nll
from .packing import Example

_TRUE, _FALSE = {"1", "true", "yes", "y", "t"}, {"0", "false", "no", "n", "f"}
_PAIR_COLUMNS = (("correct", "incorrect"), ("good", "bad"),
                 ("correct_filename", "incorrect_filename"), ("filename_correct", "filename_incorrect"))


class GoldFileError(ValueError):
    """A gold file that cannot be read as pairs."""


@dataclass(frozen=True)
class Pair:
    id: str
    correct: str
    incorrect: str
    type: str | None = None


def _rows(source: str | Path | IO[str]) -> tuple[list[dict[str, str]], str]:
    if isinstance(source, (str, Path)):
        name, text = str(source), Path(source).read_text(encoding="utf-8-sig")
    else:
        name, text = "<gold>", source.read().lstrip("\ufeff")
    first = text.split("\n", 1)[0]
    delim = max(",\t;", key=first.count)
    reader = csv.DictReader(io.StringIO(text), delimiter=delim)
    if not reader.fieldnames:
        raise GoldFileError(f"{name}: empty gold file")
    reader.fieldnames = [(f or "").strip().lower() for f in reader.fieldnames]
    rows = [{k: (v or "").strip() for k, v in r.items() if k} for r in reader]
    return rows, name


def read_gold(source: str | Path | IO[str]) -> list[Pair]:
    """Pairs from a gold file (see the module docstring for the accepted layouts)."""
    rows, name = _rows(source)
    cols = set(rows[0]) if rows else set()
    type_col = next((c for c in ("type", "category", "subtype") if c in cols), None)
    for good, bad in _PAIR_COLUMNS:
        if {good, bad} <= cols and not all(r[good].lower() in _TRUE | _FALSE for r in rows):
            return [Pair(r.get("id") or str(i), r[good], r[bad], r.get(type_col) if type_col else None)
                    for i, r in enumerate(rows)]
    if not {"filename", "correct", "id"} <= cols:
        raise GoldFileError(
            f"{name}: need columns id, filename, correct (one row per file) or correct, incorrect "
            f"(one row per pair); found {sorted(cols)}")
    keys = ["id"] + [c for c in ("voice", "speaker") if c in cols]
    groups: dict[tuple, dict[bool, list[dict[str, str]]]] = defaultdict(lambda: {True: [], False: []})
    for line, r in enumerate(rows, start=2):
        flag = r["correct"].lower()
        if flag not in _TRUE | _FALSE:
            raise GoldFileError(f"{name}:{line}: 'correct' must be 1/0 or true/false, got {r['correct']!r}")
        groups[tuple(r[k] for k in keys)][flag in _TRUE].append(r)
    pairs = []
    for key, g in groups.items():
        for good in g[True]:
            for bad in g[False]:
                pairs.append(Pair("/".join(key), good["filename"], bad["filename"],
                                  good.get(type_col) if type_col else None))
    if not pairs:
        raise GoldFileError(f"{name}: no group holds both a correct and an incorrect file")
    return pairs


def match_files(names: list[str], units: dict[str, Units]) -> dict[str, str]:
    """``{file name: utterance id}``; raises ``KeyError`` naming the files with no utterance."""
    index: dict[str, str] = {}
    for uid in units:
        for alias in (PurePosixPath(uid).stem, PurePosixPath(uid).name):
            index.setdefault(alias, uid)
    index.update({uid: uid for uid in units})  # an exact id wins over another id's alias
    out, missing = {}, []
    for n in names:
        p = PurePosixPath(n.replace("\\", "/"))
        uid = next((index[a] for a in (n, str(p.with_suffix("")), p.name, p.stem) if a in index), None)
        if uid is None:
            missing.append(n)
        else:
            out[n] = uid
    if missing:
        raise KeyError(f"{len(missing)} file(s) of the gold file have no utterance in the units "
                       f"file, e.g. {missing[:3]}")
    return out


def utterance_logprobs(lm, units: list[Units], batch_tokens: int = 4096,
                       progress: bool = False) -> np.ndarray:
    """``[N, 2]``: log-probability of each utterance (sum over scored tokens) and token count."""
    scores = sequence_nll(lm, [Example(lm.encode_units(u)) for u in units], batch_tokens, progress)
    return np.array([(-float(s.sum()), len(s)) for s in scores], dtype=np.float64).reshape(-1, 2)


@dataclass
class PairResult:
    n_pairs: int
    accuracy_sum: float
    accuracy_mean: float
    by_type: dict[str, dict[str, float]]
    pairs: list[dict[str, Any]]

    def to_dict(self, with_pairs: bool = False) -> dict[str, Any]:
        d = {"n_pairs": self.n_pairs, "accuracy_sum": self.accuracy_sum,
             "accuracy_mean": self.accuracy_mean, "by_type": self.by_type}
        return {**d, "pairs": self.pairs} if with_pairs else d


def _acc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))


def score_pairs(lm, pairs: list[Pair], units: dict[str, Units], batch_tokens: int = 4096,
                progress: bool = False) -> PairResult:
    """Accuracy of ``lm`` on ``pairs`` whose files are utterances of ``units`` (by id).

    ``batch_tokens=0`` scores one utterance at a time (same scores, slower)."""
    if not pairs:
        raise ValueError("no pairs to score")
    files = sorted({p.correct for p in pairs} | {p.incorrect for p in pairs})
    ids = match_files(files, units)
    uniq = sorted(set(ids.values()))
    lp = utterance_logprobs(lm, [units[u] for u in uniq], batch_tokens, progress)
    by_id = {u: lp[i] for i, u in enumerate(uniq)}
    good = np.array([by_id[ids[p.correct]] for p in pairs])
    bad = np.array([by_id[ids[p.incorrect]] for p in pairs])
    acc_sum = _acc(good[:, 0], bad[:, 0])
    acc_mean = _acc(good[:, 0] / good[:, 1], bad[:, 0] / bad[:, 1])
    by_type: dict[str, dict[str, float]] = {}
    types = [p.type for p in pairs]
    for t in sorted({t for t in types if t is not None}):
        m = np.array([x == t for x in types])
        by_type[t] = {"n_pairs": int(m.sum()), "accuracy_sum": float(acc_sum[m].mean()),
                      "accuracy_mean": float(acc_mean[m].mean())}
    rows = [{"id": p.id, "correct": p.correct, "incorrect": p.incorrect, "type": p.type,
             "logprob_correct": float(g[0]), "logprob_incorrect": float(b[0]),
             "tokens_correct": int(g[1]), "tokens_incorrect": int(b[1])}
            for p, g, b in zip(pairs, good, bad)]
    return PairResult(len(pairs), float(acc_sum.mean()), float(acc_mean.mean()), by_type, rows)

"""Find the words in a sentence's phone sequence.

espeak-ng's .pho has no word boundaries. Each word's phones said alone are known (one batched
espeak-ng call); in the sentence they change a little (weak forms: "the" D AH vs D IY, flapping,
aspiration, linking r), so the two sequences are aligned by edit-distance DP with cheap
substitutions inside a phone class (vowel for vowel, consonant for consonant). Every sentence
phone then belongs to the word of the phone it was aligned with; phones that only the sentence
has go to the word before them, unless a pause separates them from it.

>>> from speechunits.data.corpus.wordalign import align_words
>>> sent = ["DH", "AH", "K", "AE", "T", "sil", "S", "AE", "T"]
>>> align_words(sent, [["DH", "IY"], ["K", "AE", "T"], ["S", "AE", "T"]]).spans
[(0, 2), (2, 5), (6, 9)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from speechunits.data.corpus.phones import VOWELS

PAUSE = "sil"
_DEL = 1.0      # a word phone the sentence lacks
_INS = 1.0      # a sentence phone no word predicted
_SUB_SAME = 0.6  # vowel for vowel, consonant for consonant: cheaper than a deletion + insertion
_SUB_DIFF = 1.9  # vowel for consonant: almost never better than ins + del


@dataclass(frozen=True)
class WordSpans:
    """``spans[k] = (first, stop)``: word k owns sentence phones ``first .. stop-1``.

    A word the sentence swallowed entirely gets an empty span ``(i, i)`` at its boundary.
    ``matched`` counts sentence phones aligned to an identical word phone (a quality measure).
    """

    spans: list[tuple[int, int]]
    matched: int
    total: int

    @property
    def match_rate(self) -> float:
        return self.matched / self.total if self.total else 1.0


def _sub_cost(a: str, b: str) -> float:
    if a == b:
        return 0.0
    return _SUB_SAME if (a in VOWELS) == (b in VOWELS) else _SUB_DIFF


def align_words(sentence: Sequence[str], words: Sequence[Sequence[str]]) -> WordSpans:
    """Assign each non-pause phone of ``sentence`` to one of ``words`` (both in the common set),
    monotonically. Pauses (``sil``) belong to no word."""
    idx = [i for i, p in enumerate(sentence) if p != PAUSE]
    s = [sentence[i] for i in idx]
    w = [p for word in words for p in word]
    owner = [k for k, word in enumerate(words) for _ in word]
    n, m = len(s), len(w)
    # Edit-distance table over (sentence phones, word phones), back-pointers in a flat list.
    inf = float("inf")
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    back = [[0] * (m + 1) for _ in range(n + 1)]  # 0 diag, 1 up (insert s), 2 left (delete w)
    cost[0][0] = 0.0
    for j in range(1, m + 1):
        cost[0][j], back[0][j] = j * _DEL, 2
    for i in range(1, n + 1):
        si, row, prev = s[i - 1], cost[i], cost[i - 1]
        row[0], back[i][0] = i * _INS, 1
        brow = back[i]
        for j in range(1, m + 1):
            d = prev[j - 1] + _sub_cost(si, w[j - 1])
            u = prev[j] + _INS
            le = row[j - 1] + _DEL
            if d <= u and d <= le:
                row[j] = d
            elif u <= le:
                row[j], brow[j] = u, 1
            else:
                row[j], brow[j] = le, 2
    assigned: list[int | None] = [None] * n
    matched = 0
    i, j = n, m
    while i > 0 or j > 0:
        b = back[i][j]
        if i > 0 and j > 0 and b == 0:
            assigned[i - 1] = owner[j - 1]
            matched += s[i - 1] == w[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and (j == 0 or b == 1):
            i -= 1
        else:
            j -= 1
    _fill_unassigned(assigned, idx)
    spans = _spans(assigned, idx, len(words), len(sentence))
    return WordSpans(spans, matched, n)


def _fill_unassigned(assigned: list[int | None], idx: list[int]) -> None:
    """Give inserted phones the previous word, or the next one across a pause or at the start."""
    n = len(assigned)
    for i in range(n):
        if assigned[i] is not None:
            continue
        prev = next((k for k in range(i - 1, -1, -1) if assigned[k] is not None), None)
        if prev is not None and idx[i] - idx[prev] == i - prev:  # no pause in between
            assigned[i] = assigned[prev]
            continue
        nxt = next((k for k in range(i + 1, n) if assigned[k] is not None), None)
        if nxt is not None:
            assigned[i] = assigned[nxt]
        elif prev is not None:
            assigned[i] = assigned[prev]
        else:
            assigned[i] = 0
    # Forward fill from a later word can break monotonicity only if the DP did; it cannot, but
    # keep the invariant explicit for the span computation.
    for i in range(1, n):
        if assigned[i] < assigned[i - 1]:  # type: ignore[operator]
            assigned[i] = assigned[i - 1]


def _spans(assigned: list, idx: list[int], n_words: int, n_sent: int) -> list[tuple[int, int]]:
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for k, pos in zip(assigned, idx):
        first.setdefault(k, pos)
        last[k] = pos
    spans: list[tuple[int, int]] = []
    cursor = 0
    for k in range(n_words):
        if k in first:
            spans.append((first[k], last[k] + 1))
            cursor = last[k] + 1
        else:
            # Swallowed word: empty span right after the previous word's last phone.
            spans.append((cursor, cursor))
    return spans

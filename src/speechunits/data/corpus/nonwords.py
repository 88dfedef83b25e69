"""Phonotactically plausible non-words for the lexical (sWUGGY-style) pairs.

A non-word is a real word with one syllable onset or nucleus replaced, Wuggy-style, by a spelling
chunk of the same kind seen in the same position (word-initial, medial, final) in the lexicon.
It is kept only if every letter trigram (with word edges) occurs in the lexicon, it is not a
lexicon form (nor in ``/usr/share/dict/words`` when that exists), and espeak-ng pronounces it
unlike the word and unlike every lexicon form (so it is no homophone of a real word either).

>>> import random
>>> from speechunits.data.corpus.nonwords import NonwordMaker
>>> maker = NonwordMaker()
>>> cands = maker.candidates("garden", random.Random(0), k=3)
>>> all(c not in maker.lex.forms for c in cands)
True
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from speechunits.data.corpus.lexicon import Lexicon, load_lexicon

_VOWELS = set("aeiou")
_CONTENT_POS = ("noun", "verb", "adj", "adv")
SYSTEM_WORD_LISTS = ("/usr/share/dict/words",)


def chunks(word: str) -> list[tuple[str, str]]:
    """Split a spelling into runs of consonant (``C``) and vowel (``V``) letters.

    ``y`` is a vowel after a consonant ("city", "gym") and a consonant elsewhere ("yard");
    the ``u`` of ``qu`` goes with the ``q``.
    """
    out: list[tuple[str, str]] = []
    for i, ch in enumerate(word):
        if ch == "y":
            kind = "V" if i > 0 and out and out[-1][0] == "C" else "C"
        elif ch == "u" and i > 0 and word[i - 1] == "q":
            kind = "C"
        else:
            kind = "V" if ch in _VOWELS else "C"
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + ch)
        else:
            out.append((kind, ch))
    return out


def _position(i: int, n: int) -> str:
    return "initial" if i == 0 else ("final" if i == n - 1 else "medial")


@dataclass(frozen=True)
class LexicalPair:
    word: str
    nonword: str
    word_phones: tuple[str, ...]
    nonword_phones: tuple[str, ...]


class NonwordMaker:
    """Chunk inventories and trigram statistics of the lexicon's content words."""

    def __init__(self, lex: Lexicon | None = None, word_lists: Sequence[str] = SYSTEM_WORD_LISTS) -> None:
        self.lex = lex or load_lexicon()
        self.words = sorted({f.lower() for e in self.lex.entries if e.pos in _CONTENT_POS
                             for f in e.forms if f.isalpha() and len(f) >= 3})
        self.inventory: dict[tuple[str, str], Counter] = {}
        self.trigrams: set[str] = set()
        for w in self.words:
            cs = chunks(w)
            for i, (kind, text) in enumerate(cs):
                self.inventory.setdefault((kind, _position(i, len(cs))), Counter())[text] += 1
            padded = f"^{w}$"
            self.trigrams.update(padded[i:i + 3] for i in range(len(padded) - 2))
        # A subset lexicon's non-words must not be words of the full one either.
        self.real = set(self.lex.forms) | set(load_lexicon().forms)
        for path in word_lists:  # a bigger dictionary, when the system has one, rejects more
            p = Path(path)
            if p.is_file():
                self.real.update(x.strip().lower() for x in p.read_text(errors="ignore").splitlines())

    def plausible(self, s: str) -> bool:
        padded = f"^{s}$"
        return all(padded[i:i + 3] in self.trigrams for i in range(len(padded) - 2))

    def candidates(self, word: str, rng: random.Random, k: int = 6, tries: int = 200) -> list[str]:
        """Up to ``k`` distinct spelling-level non-words derived from ``word``."""
        cs = chunks(word)
        # Syllable onsets (a consonant run before a vowel) and nuclei (vowel runs).
        slots = [i for i, (kind, _) in enumerate(cs)
                 if kind == "V" or (i + 1 < len(cs) and cs[i + 1][0] == "V")]
        out: list[str] = []
        for _ in range(tries):
            if len(out) >= k or not slots:
                break
            i = rng.choice(slots)
            kind, old = cs[i]
            inv = self.inventory.get((kind, _position(i, len(cs))))
            if not inv:
                continue
            choices, weights = zip(*sorted(inv.items()))
            new = rng.choices(choices, weights)[0]
            if new == old:
                continue
            cand = "".join(new if j == i else t for j, (_, t) in enumerate(cs))
            if (abs(len(cand) - len(word)) <= 1 and cand not in self.real and cand not in out
                    and self.plausible(cand)):
                out.append(cand)
        return out


def make_lexical_pairs(n: int, seed: int, voice: str = "us1", lex: Lexicon | None = None,
                       maker: NonwordMaker | None = None) -> list[LexicalPair]:
    """``n`` word / non-word pairs, deterministic for ``seed``.

    Pronunciations come from espeak-ng with ``voice`` (one call for the lexicon, one per round of
    candidates); a non-word whose phones equal its word's or any lexicon form's is rejected.
    """
    from speechunits.data.corpus.synth import word_phones

    maker = maker or NonwordMaker(lex)
    rng = random.Random(f"speechunits-lexical:{seed}")
    known = word_phones(sorted(maker.lex.forms | load_lexicon().forms), voice)
    homophones = {tuple(p) for p in known.values()}
    order = list(maker.words)
    rng.shuffle(order)
    pairs: list[LexicalPair] = []
    used_nonwords: set[str] = set()
    rounds = 0
    while len(pairs) < n and rounds < 5:  # each round gives every word one more non-word
        rounds += 1
        for start in range(0, len(order), 400):
            if len(pairs) >= n:
                break
            block = order[start:start + 400]
            cands = {w: [c for c in maker.candidates(w, rng) if c not in used_nonwords] for w in block}
            prons = word_phones(sorted({c for cs in cands.values() for c in cs}), voice, skip_unknown=True)
            for w in block:
                wp = tuple(known.get(w) or ())
                for c in cands[w]:
                    cp = tuple(prons.get(c) or ())
                    if cp and cp != wp and cp not in homophones and abs(len(cp) - len(wp)) <= 2:
                        pairs.append(LexicalPair(w, c, wp, cp))
                        used_nonwords.add(c)
                        break
                if len(pairs) >= n:
                    break
    if len(pairs) < n:
        raise ValueError(f"could only make {len(pairs)} lexical pairs from {len(order)} words (asked {n})")
    return pairs

"""Grammatical / ungrammatical minimal pairs (sBLIMP-style) from the corpus grammar.

Every pair differs by ONE word substituted or TWO adjacent words swapped, and each type isolates
one phenomenon (BLiMP's paradigms, restricted to what the lexicon's tags support):

==========================  ================================================================
subject_verb_agreement      The dogs near the barn *runs* (with an attractor of the other number)
determiner_noun_agreement   He saw *this* apples
auxiliary_agreement         The boys *has* eaten / *Does* the girls sleep?
irregular_participle        She has *ate* the cake
do_support                  The cat does not *eats* fish
argument_structure          The girl *slept* the apple (an intransitive verb with an object)
reflexive_agreement         Mary blamed *himself*
pronoun_case                *Her* saw the dog
word_order                  The boy bought a *car red*
indefinite_article          The boy saw *an* dog
==========================  ================================================================

>>> import random
>>> from speechunits.data.corpus.minimal_pairs import make_syntactic_pairs
>>> p = make_syntactic_pairs(10, seed=0)[0]
>>> p.good != p.bad and p.type
'subject_verb_agreement'
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from speechunits.data.corpus.grammar import NP, Grammar, _detokenize
from speechunits.data.corpus.lexicon import Entry, Lexicon, load_lexicon

_REFL = {"m": "himself", "f": "herself"}
_OBJ = {"he": "him", "she": "her", "they": "them", "we": "us", "I": "me"}
# Verbs whose simple past is also an accepted participle ("has sewed", "has showed").
_DOUBLE_PARTICIPLE = {"sew", "dive", "show", "mow", "prove", "swell", "knit", "smell"}


@dataclass(frozen=True)
class SyntacticPair:
    good: str
    bad: str
    type: str


class _Maker:
    def __init__(self, g: Grammar) -> None:
        self.g = g
        self.rng = g.rng
        self.lex = g.lex
        verbs = self.lex.by_pos["verb"]
        self.intr_only = [v for v in verbs if v.tag_list("frames") == ["intr"]]
        self.tr_person_subj = [v for v in verbs if any(f.startswith("tr:") for f in v.tag_list("frames"))]
        self.irregular = [v for v in verbs if v.verb("past") != v.verb("participle")
                          and v.word not in _DOUBLE_PARTICIPLE]

    def _tr(self, verbs: list[Entry] | None = None, cls: str | None = None) -> tuple[Entry, str]:
        """A transitive verb and an object class it takes."""
        def objects(v: Entry) -> list[str]:
            classes = [c for f in v.tag_list("frames") if f.startswith("tr:") for c in f[3:].split("+")]
            return [c for c in classes if cls is None or c == cls]

        # Filter first (not draw-and-retry): a small lexicon may have no such verb at all.
        usable = [v for v in (verbs or self.tr_person_subj) if objects(v)]
        if not usable:
            raise ValueError(f"{self.lex.source}: no transitive verb{f' taking {cls}' if cls else ''} "
                             f"for a minimal pair")
        v = self.g._pick(usable)
        return v, self.g._pick(objects(v))

    def _subject(self, plural: bool | None = None) -> NP:
        return self.g.np("person", plural=plural, pron_ok=False, mods=False)

    def _obj(self, cls: str, plural: bool | None = None, mods: bool = False) -> list[str]:
        return self.g.np(cls, plural=plural, pron_ok=False, mods=mods).tokens

    # -- one method per type: returns (good tokens, bad tokens) ----------------------------
    def subject_verb_agreement(self):
        plural = self.rng.random() < 0.5
        subj = self._subject(plural)
        attractor = self.g.np("place", plural=not plural, pron_ok=False, mods=False).tokens
        prep = self.g._pick(["near", "behind", "beside"])
        v, cls = self._tr()
        obj = self._obj(cls)
        good = [*subj.tokens, prep, *attractor, v.verb("base" if plural else "3sg"), *obj]
        bad = [*subj.tokens, prep, *attractor, v.verb("3sg" if plural else "base"), *obj]
        return good, bad

    def determiner_noun_agreement(self):
        subj = self._subject()
        v, cls = self._tr()
        nouns = [n for n in self.lex.nouns_by_class[cls] if not n.mass]
        if not nouns:
            return None
        n = self.g._pick(nouns)
        plural = self.rng.random() < 0.5
        d_good, d_bad = self.g._pick([("these", "this"), ("those", "that")] if plural else
                                      [("this", "these"), ("that", "those")])
        head = [*subj.tokens, v.verb("past")]
        return [*head, d_good, n.noun(plural)], [*head, d_bad, n.noun(plural)]

    def auxiliary_agreement(self):
        plural = self.rng.random() < 0.5
        subj = self._subject(plural)
        if self.rng.random() < 0.5:  # perfect: has / have
            v, cls = self._tr()
            aux = ("have", "has") if plural else ("has", "have")
            rest = [v.verb("participle"), *self._obj(cls)]
            return [*subj.tokens, aux[0], *rest], [*subj.tokens, aux[1], *rest]
        v = self.g._pick(self.intr_only)  # question: does / do
        aux = ("Do", "Does") if plural else ("Does", "Do")
        return [aux[0], *subj.tokens, v.verb("base")], [aux[1], *subj.tokens, v.verb("base")]

    def irregular_participle(self):
        subj = self._subject()
        v, cls = self._tr(self.irregular)
        have = "has" if subj.sg3 else "have"
        obj = self._obj(cls)
        return [*subj.tokens, have, v.verb("participle"), *obj], [*subj.tokens, have, v.verb("past"), *obj]

    def do_support(self):
        subj = self._subject(plural=False)
        v, cls = self._tr()
        obj = self._obj(cls)
        return ([*subj.tokens, "does", "not", v.verb("base"), *obj],
                [*subj.tokens, "does", "not", v.verb("3sg"), *obj])

    def argument_structure(self):
        subj = self._subject()
        v, cls = self._tr()
        bad_v = self.g._pick(self.intr_only)
        obj = self._obj(cls)
        return [*subj.tokens, v.verb("past"), *obj], [*subj.tokens, bad_v.verb("past"), *obj]

    def reflexive_agreement(self):
        v, _ = self._tr(cls="person")
        if self.rng.random() < 0.6:  # a gendered singular antecedent
            name = self.g._pick(self.lex.by_pos["name"])
            g = name.tag("gender")
            subj, good = [name.word], _REFL[g]
            bad = self.g._pick(["herself" if g == "m" else "himself", "themselves"])
        else:
            subj, good = self._subject(plural=True).tokens, "themselves"
            bad = self.g._pick(["himself", "herself"])
        return [*subj, v.verb("past"), good], [*subj, v.verb("past"), bad]

    def pronoun_case(self):
        v, cls = self._tr()
        pron = self.g._pick(["he", "she", "they", "we", "I"])
        if self.rng.random() < 0.5:  # subject position: "she saw" / "her saw"
            obj = self._obj(cls)
            return [pron, v.verb("past"), *obj], [_OBJ[pron], v.verb("past"), *obj]
        v, _ = self._tr(cls="person")  # object position: "saw him" / "saw he"
        subj = self._subject()
        return [*subj.tokens, v.verb("past"), _OBJ[pron]], [*subj.tokens, v.verb("past"), pron]

    def word_order(self):
        subj = self._subject()
        v, cls = self._tr()
        adjs = self.lex.adjs_by_class.get(cls)
        nouns = self.lex.nouns_by_class[cls]
        if not adjs or not nouns:
            return None
        a, n = self.g._pick(adjs), self.g._pick(nouns)
        det = self.g._pick(["the", "my", "his", "her", "their"])
        head = [*subj.tokens, v.verb("past"), det]
        return [*head, a.word, n.noun(False)], [*head, n.noun(False), a.word]

    def indefinite_article(self):
        subj = self._subject()
        v, cls = self._tr()
        nouns = [n for n in self.lex.nouns_by_class[cls] if not n.mass]
        if not nouns:
            return None
        n = self.g._pick(nouns).word
        art = self.lex.article(n)
        head = [*subj.tokens, v.verb("past")]
        return [*head, art, n], [*head, "an" if art == "a" else "a", n]


TYPES: tuple[str, ...] = (
    "subject_verb_agreement", "determiner_noun_agreement", "auxiliary_agreement",
    "irregular_participle", "do_support", "argument_structure", "reflexive_agreement",
    "pronoun_case", "word_order", "indefinite_article",
)


def make_syntactic_pairs(n: int, seed: int, types: tuple[str, ...] = TYPES,
                         lex: Lexicon | None = None) -> list[SyntacticPair]:
    """``n`` pairs cycling through ``types`` (balanced), distinct sentences, deterministic."""
    g = Grammar(random.Random(f"speechunits-syntactic:{seed}"), lex or load_lexicon(), complexity=0)
    maker = _Maker(g)
    out: list[SyntacticPair] = []
    seen: set[str] = set()
    i = 0
    while len(out) < n:
        kind = types[i % len(types)]
        i += 1
        made = None
        for _ in range(50):
            fn: Callable = getattr(maker, kind)
            made = fn()
            if made is None:
                continue
            good, bad = (_detokenize(t, "?" if t[0] in ("Do", "Does") else ".") for t in made)
            if good != bad and good not in seen:
                break
            made = None
        if made is None:
            raise RuntimeError(f"could not make a new {kind} pair")
        seen.add(good)
        out.append(SyntacticPair(good, bad, kind))
    return out

"""A sentence grammar over the lexicon, with the structure a language model can learn.

It keeps subject-verb agreement (also across relative clauses and prepositional phrases),
determiner-noun number, verb frames (intransitive, transitive with the object's semantic class,
ditransitive, clausal complement, motion, prepositional object), tense-adverb agreement, and
mixes declaratives, copular and existential clauses, coordination, subordination, relative
clauses, yes/no and wh-questions and imperatives. ``complexity`` (0-3) scales the number of
modifiers, so lengths vary from a few words to a few clauses.

>>> import random
>>> from speechunits.data.corpus.grammar import Grammar
>>> g = Grammar(random.Random(0))
>>> s = g.sentence()
>>> s[0].isupper() and s[-1] in ".?"
True
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from speechunits.data.corpus.lexicon import ANIMATE, CONCRETE, Entry, Lexicon, load_lexicon

TENSES = ("present", "past", "progressive", "past_progressive", "perfect", "future", "modal")
_MODALS = ("can", "could", "should", "must", "might", "will")
_SUBJ_PRON = {(1, False): "I", (2, False): "you", (1, True): "we", (2, True): "you", (3, True): "they"}
_OBJ_PRON = {"I": "me", "you": "you", "he": "him", "she": "her", "it": "it", "we": "us", "they": "them"}
_REFLEXIVE = {("m", False): "himself", ("f", False): "herself", ("n", False): "itself", ("", True): "themselves"}


@dataclass
class NP:
    tokens: list[str]
    plural: bool = False
    person: int = 3
    gender: str = "n"  # m, f, n (unknown or neuter)
    cls: str = "thing"
    head: Entry | None = None
    pronoun: bool = False

    @property
    def sg3(self) -> bool:
        return self.person == 3 and not self.plural


@dataclass
class Grammar:
    rng: random.Random
    lex: Lexicon = field(default_factory=load_lexicon)
    complexity: int = 1
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # -- small helpers ----------------------------------------------------------------------
    def _p(self, prob: float) -> bool:
        return self.rng.random() < prob * (0.5 + 0.5 * self.complexity)

    def _pick(self, items: list):
        return items[self.rng.randrange(len(items))]

    def words(self, pos: str, **tags: str) -> list[str]:
        key = (pos, *sorted(tags.items()))
        if key not in self._cache:  # generation calls this thousands of times: filter once
            self._cache[key] = [e.word for e in self.lex.by_pos[pos]
                                if all(e.tags.get(k) == v for k, v in tags.items())]
        return self._cache[key]

    # -- noun phrases -----------------------------------------------------------------------
    def np(self, cls: str, plural: bool | None = None, depth: int = 0, pron_ok: bool = True,
           mods: bool = True) -> NP:
        """A noun phrase of semantic class ``cls``."""
        r = self.rng.random()
        if cls == "person" and r < 0.2 and plural is not True:
            name = self._pick(self.lex.by_pos["name"])
            return NP([name.word], False, 3, name.tag("gender"), "person", name)
        if pron_ok and cls in ANIMATE and r < 0.28:
            return self._pronoun_np(cls, plural)
        noun = self._pick(self.lex.nouns_by_class[cls])
        plural = False if noun.mass else (self.rng.random() < 0.35 if plural is None else plural)
        if noun.mass and plural:  # a mass noun cannot be plural: pick a count noun instead
            counts = [n for n in self.lex.nouns_by_class[cls] if not n.mass]
            noun = self._pick(counts)
        adjs = []
        if mods and self._p(0.35):
            adjs = self.rng.sample(self.lex.adjs_by_class[cls], 2 if self._p(0.15) else 1)
        words = [a.word for a in adjs] + [noun.noun(plural)]
        det = self._determiner(plural, noun.mass, words[0])
        np_ = NP([*det, *words], plural, 3, noun.tag("gender", "n"), cls, noun)
        if mods and depth < 1 and self._p(0.12):
            np_.tokens += self._np_modifier(np_, depth)
        return np_

    def _pronoun_np(self, cls: str, plural: bool | None) -> NP:
        if cls == "animal":
            pl = self.rng.random() < 0.4 if plural is None else plural
            return NP(["they" if pl else "it"], pl, 3, "n", cls, pronoun=True)
        person = self._pick([1, 2, 3, 3, 3])
        pl = self.rng.random() < 0.35 if plural is None else plural
        if person == 3 and not pl:
            g = self._pick(["m", "f"])
            return NP(["he" if g == "m" else "she"], False, 3, g, cls, pronoun=True)
        return NP([_SUBJ_PRON[(person, pl)]], pl, person, "n", cls, pronoun=True)

    def _determiner(self, plural: bool, mass: bool, first: str) -> list[str]:
        num = "pl" if plural else "sg"
        if mass:
            options = ["the", "the", "some", "my", "his", "her", "our", "their", "no", "this", "that"]
        else:
            options = ["the", "the", "the"] + self.words("det", num=num) + [
                d for d in self.words("det", num="any") if d != "its"]
        d = self._pick(options)
        if d in ("a", "an"):
            d = self.lex.article(first)
        return [d]

    def _np_modifier(self, head: NP, depth: int) -> list[str]:
        """A prepositional phrase or a relative clause after the head noun."""
        if self.rng.random() < 0.5:
            prep = self._pick(["near", "behind", "beside", "in", "on", "under"])
            cls = self._pick(["place", "furniture", "vehicle"] if prep == "in" else ["furniture", "place", "vehicle"])
            return [prep, *self.np(cls, depth=depth + 1, pron_ok=False, mods=False).tokens]
        rel = "who" if head.cls == "person" else "that"
        if head.cls in ANIMATE and self.rng.random() < 0.6:  # subject relative: agrees with head
            verb, comp = self._verb_and_complement(head, depth + 1)
            return [rel, *self.verb_group(verb, head, self._pick(["present", "past"])), *comp]
        # Object relative: "the cake that the boy ate"; the verb must take this class as object.
        verbs = [v for v in self.lex.verbs_with("tr:") if head.cls in _tr_classes(v)]
        if not verbs:
            return []
        verb = self._pick(verbs)
        subj = self.np(self._subject_class(verb), depth=depth + 1, mods=False)
        return ["that", *subj.tokens, *self.verb_group(verb, subj, "past")]

    # -- verbs ------------------------------------------------------------------------------
    def _subject_class(self, verb: Entry) -> str:
        subj = verb.tag("subj", "person")
        return self._pick(["person", "animal"]) if subj == "anim" else subj

    def verb_group(self, verb: Entry, subj: NP, tense: str, neg: bool = False) -> list[str]:
        """The inflected verb (with auxiliaries) agreeing with ``subj``."""
        sg3, not_ = subj.sg3, (["not"] if neg else [])
        if tense == "present":
            return ["does" if sg3 else "do", "not", verb.verb("base")] if neg else \
                [verb.verb("3sg") if sg3 else verb.verb("base")]
        if tense == "past":
            return ["did", "not", verb.verb("base")] if neg else [verb.verb("past")]
        if tense in ("progressive", "past_progressive"):
            return [self.be(subj, tense == "past_progressive"), *not_, verb.verb("gerund")]
        if tense == "perfect":
            return ["has" if sg3 else "have", *not_, verb.verb("participle")]
        modal = "will" if tense == "future" else self._pick(_MODALS)
        return [modal, *not_, verb.verb("base")]

    @staticmethod
    def be(subj: NP, past: bool = False) -> str:
        if past:
            return "were" if subj.plural or subj.person == 2 else "was"
        if subj.person == 1 and not subj.plural:
            return "am"
        return "is" if subj.sg3 else "are"

    def _verb_and_complement(self, subj: NP, depth: int) -> tuple[Entry, list[str]]:
        """A verb the subject can do, and its complement by one of the verb's frames."""
        key = ("verbs-for", subj.cls)
        if key not in self._cache:
            ok = {"person": ("person", "anim"), "animal": ("anim", "animal")}[subj.cls]
            self._cache[key] = [v for v in self.lex.by_pos["verb"] if v.tag("subj", "person") in ok]
        verbs = self._cache[key]
        verb = self._pick(verbs)
        frames = verb.tag_list("frames")
        if depth > 0:  # no clausal complements inside clauses inside clauses
            frames = [f for f in frames if f != "cls"] or ["intr"]
        frame = self._pick(frames)
        return verb, self.complement(frame, depth)

    def complement(self, frame: str, depth: int) -> list[str]:
        kind, _, rest = frame.partition(":")
        if kind == "intr":
            return []
        if kind == "tr":
            return self.np(self._pick(rest.split("+")), depth=depth + 1, pron_ok=False).tokens
        if kind == "ditr":
            obj = self.np(self._pick(rest.split("+")), depth=depth + 1, pron_ok=False, mods=False)
            return [*obj.tokens, "to", *self._object(self.np("person", depth=depth + 1, mods=False))]
        if kind == "cls":
            return (["that"] if self.rng.random() < 0.7 else []) + self.clause(depth + 1)
        if kind == "loc":
            return ["to", *self.np("place", depth=depth + 1, pron_ok=False).tokens]
        if kind == "pp":
            prep, _, classes = rest.partition(":")
            return [prep, *self._object(self.np(self._pick(classes.split("+")), depth=depth + 1))]
        raise ValueError(f"unknown verb frame {frame!r}")

    @staticmethod
    def _object(np_: NP) -> list[str]:
        return [_OBJ_PRON.get(np_.tokens[0], np_.tokens[0])] if np_.pronoun else np_.tokens

    # -- clauses ----------------------------------------------------------------------------
    def clause(self, depth: int = 0, tense: str | None = None) -> list[str]:
        """A declarative clause with optional adjuncts agreeing with its tense."""
        tense = tense or self._pick(TENSES)
        subj = self.np(self._pick(["person", "person", "animal"]), depth=depth)
        if self.rng.random() < 0.12:
            return self.copular(subj, tense)
        verb, comp = self._verb_and_complement(subj, depth)
        neg = self.rng.random() < 0.12
        vg = self.verb_group(verb, subj, tense, neg)
        if tense == "present" and not neg and self._p(0.2):
            vg = [self._pick(self.words("adv", type="freq")), *vg]
        out = [*subj.tokens, *vg, *comp]
        if self._p(0.25):
            out += [self._pick(self.lex.adverbs_by_type["manner"]).word]
        if self._p(0.25):
            prep = self._pick(["in", "near", "behind", "at"])
            out += [prep, *self.np("place", depth=depth + 1, pron_ok=False, mods=False).tokens]
        time_adv = {"past": "yesterday", "past_progressive": "yesterday", "future": "tomorrow"}
        if tense in time_adv and self._p(0.2):
            out += [self._pick([time_adv[tense], "last week" if tense != "future" else "next week"])]
        return " ".join(out).split()

    def copular(self, subj: NP, tense: str) -> list[str]:
        adjs = self.lex.adjs_by_class[subj.cls]
        pred = [self._pick(adjs).word]
        if self._p(0.3):
            pred = [self._pick(self.words("adv", type="degree")), *pred]
        if self._p(0.2):
            pred += ["and", self._pick(adjs).word]
        past = tense in ("past", "past_progressive")
        if tense in ("future", "modal"):
            return [*subj.tokens, "will", "be", *pred]
        if tense == "perfect":
            return [*subj.tokens, "has" if subj.sg3 else "have", "been", *pred]
        return [*subj.tokens, self.be(subj, past), *pred]

    def question(self) -> list[str]:
        r = self.rng.random()
        subj = self.np(self._pick(["person", "animal"]))
        verb, comp = self._verb_and_complement(subj, 1)
        tense = self._pick(["present", "past", "progressive", "perfect", "future", "modal"])
        vg = self.verb_group(verb, subj, tense)
        if len(vg) == 1:  # do-support: "does the dog eat"
            aux = {"present": "does" if subj.sg3 else "do", "past": "did"}[tense]
            vg = [aux, verb.verb("base")]
        aux, rest = vg[0], vg[1:]
        frame_obj = verb.tag_list("frames")
        if r < 0.55 or not comp:
            return [aux, *subj.tokens, *rest, *comp]
        # Wh-question about the object or a place: "what did the girl eat", "where did he go".
        tr = [f for f in frame_obj if f.startswith("tr:")]
        if tr:
            cls = self._pick(tr[0][3:].split("+"))
            return ["who" if cls == "person" else "what", aux, *subj.tokens, *rest]
        wh = self._pick(["why", "how", "when"])
        return [wh, aux, *subj.tokens, *rest, *comp]

    def sentence(self, complexity: int | None = None) -> str:
        """One sentence, capitalised and punctuated."""
        if complexity is not None:
            self.complexity = complexity
        r = self.rng.random()
        end = "."
        if r < 0.14:
            toks, end = self.question(), "?"
        elif r < 0.24:
            toks = [*self.clause(), ",", self._pick(["and", "but", "so"]), *self.clause(1)]
        elif r < 0.34:
            conj = self._pick(["because", "when", "while", "before", "after", "although", "until"])
            tense = self._pick(["past", "past_progressive", "present"])
            main, sub = self.clause(tense=tense), self.clause(1, tense=tense)
            toks = [conj, *sub, ",", *main] if self.rng.random() < 0.5 else [*main, conj, *sub]
        elif r < 0.40:
            toks = self.existential()
        elif r < 0.44:
            verb = self._pick([v for v in self.lex.by_pos["verb"] if v.tag("subj") in ("person", "anim")])
            frame = self._pick([f for f in verb.tag_list("frames") if f != "cls"] or ["intr"])
            toks = (["please"] if self.rng.random() < 0.4 else []) + [verb.verb("base"), *self.complement(frame, 1)]
        elif r < 0.50:
            a, b = self.np("person", mods=False, pron_ok=False), self.np("person", mods=False, pron_ok=False)
            subj = NP([*a.tokens, "and", *b.tokens], True, 3, "n", "person")
            verb, comp = self._verb_and_complement(subj, 1)
            toks = [*subj.tokens, *self.verb_group(verb, subj, self._pick(TENSES)), *comp]
        else:
            toks = self.clause()
        return _detokenize(toks, end)

    def existential(self) -> list[str]:
        """"There is a cat in the garden": an indefinite noun phrase and a place."""
        noun = self._pick(self.lex.nouns_by_class[self._pick(["animal", "person", *CONCRETE])])
        plural = not noun.mass and self.rng.random() < 0.5
        words = [noun.noun(plural)]
        if self._p(0.3):
            words.insert(0, self._pick(self.lex.adjs_by_class[noun.tag("class")]).word)
        if noun.mass:
            det = "some"
        elif plural:
            det = self._pick(["some", "many", "several", "two", "three", "four", "five", "ten"])
        else:
            det = self.lex.article(words[0])
        be = self._pick(["are", "were"]) if plural else self._pick(["is", "was"])
        place = self.np("place", pron_ok=False, mods=False)
        return ["there", be, det, *words, self._pick(["in", "near", "behind"]), *place.tokens]


def _tr_classes(verb: Entry) -> list[str]:
    return [c for f in verb.tag_list("frames") if f.startswith("tr:") for c in f[3:].split("+")]


def _detokenize(tokens: list[str], end: str) -> str:
    text = " ".join(tokens).replace(" ,", ",")
    text = text.replace(", ,", ",")
    return text[0].upper() + text[1:] + end

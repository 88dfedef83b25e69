"""The corpus lexicon: about 1,600 English words with part of speech, inflections and the
semantic tags the grammar uses for agreement and argument structure.

The data file ``lexicon.txt`` ships inside the package (tab-separated despite the suffix, which
keeps it inside the wheel's package data): ``word<TAB>pos<TAB>forms<TAB>tags``, forms joined by
``|`` (nouns: singular|plural, mass nouns singular only; verbs: base|3sg|past|participle|gerund),
tags ``key=value`` joined by ``;`` with list values joined by ``,``.

>>> from speechunits.data.corpus.lexicon import load_lexicon
>>> lex = load_lexicon()
>>> lex.size >= 1500, lex.entry("child", "noun").forms
(True, ('child', 'children'))
>>> lex.article("hour"), lex.article("unicorn"), lex.article("egg")
('an', 'a', 'an')

A smaller lexicon (``subset_lexicon``) makes a corpus in which every word recurs often enough
for a small language model trained on a few hours to learn it; ``format_lexicon`` writes it in
the same file format, for ``corpus synth --lexicon`` and ``corpus pairs --lexicon``:

>>> small = subset_lexicon(lex, 300, seed=0)
>>> 280 <= sum(e.pos in OPEN_POS for e in small.entries) <= 340, small.by_pos["det"] == lex.by_pos["det"]
(True, True)
>>> parse_lexicon(format_lexicon(small)).digest == small.digest
True
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

#: Noun classes that denote concrete, movable or touchable things.
CONCRETE = ("food", "drink", "readable", "container", "tool", "furniture", "clothing", "vehicle",
            "thing", "plant")
ANIMATE = ("person", "animal")
#: Open word classes: ``subset_lexicon`` samples these and keeps every closed-class word.
OPEN_POS = ("noun", "verb", "adj", "adv", "name")
#: Fewest words a subset keeps per group (an adjective class needs two: "the big red ...").
_MIN_PER_GROUP = 3

# Vowel letters that start with a consonant sound, and h-words that start with a vowel sound.
_A_EXCEPTIONS = ("uni", "use", "usu", "uti", "eu", "one", "once", "ewe", "ur")
_AN_EXCEPTIONS = ("hour", "honest", "honor", "heir", "herb")


@dataclass(frozen=True)
class Entry:
    word: str
    pos: str
    forms: tuple[str, ...]
    tags: dict = field(default_factory=dict, compare=False, hash=False)

    def tag(self, key: str, default: str = "") -> str:
        return self.tags.get(key, default)

    def tag_list(self, key: str) -> list[str]:
        v = self.tags.get(key, "")
        return v.split(",") if v else []

    # -- nouns ----------------------------------------------------------------------------
    @property
    def mass(self) -> bool:
        return self.tags.get("mass") == "1"

    def noun(self, plural: bool) -> str:
        return self.forms[1] if plural and len(self.forms) > 1 else self.forms[0]

    # -- verbs ----------------------------------------------------------------------------
    def verb(self, form: str) -> str:
        """``form`` in base, 3sg, past, participle, gerund."""
        return self.forms[("base", "3sg", "past", "participle", "gerund").index(form)]


class Lexicon:
    """Entries with indices by part of speech and semantic tags."""

    def __init__(self, entries: list[Entry], source: str = "<lexicon>") -> None:
        self.entries = entries
        self.source = source
        self.by_pos: dict[str, list[Entry]] = defaultdict(list)
        self.nouns_by_class: dict[str, list[Entry]] = defaultdict(list)
        self.adjs_by_class: dict[str, list[Entry]] = defaultdict(list)
        self.adverbs_by_type: dict[str, list[Entry]] = defaultdict(list)
        self._index: dict[tuple[str, str], Entry] = {}
        self._frames: dict[str, list[Entry]] = {}
        for e in entries:
            self.by_pos[e.pos].append(e)
            self._index[(e.word, e.pos)] = e
            if e.pos == "noun":
                self.nouns_by_class[e.tag("class")].append(e)
            elif e.pos == "adj":
                for c in e.tag_list("mods"):
                    self.adjs_by_class[c].append(e)
            elif e.pos == "adv":
                self.adverbs_by_type[e.tag("type")].append(e)

    @property
    def size(self) -> int:
        """Number of distinct words (lemmas, case-insensitive)."""
        return len({e.word.lower() for e in self.entries})

    @functools.cached_property
    def forms(self) -> frozenset[str]:
        """Every word form (lower case): what counts as a real word for the non-word check."""
        return frozenset(f.lower() for e in self.entries for f in e.forms)

    @functools.cached_property
    def digest(self) -> str:
        text = "\n".join(f"{e.word}\t{e.pos}\t{'|'.join(e.forms)}" for e in self.entries)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def entry(self, word: str, pos: str) -> Entry:
        try:
            return self._index[(word, pos)]
        except KeyError:
            raise KeyError(f"{self.source}: no {pos} {word!r}") from None

    def verbs_with(self, frame_prefix: str) -> list[Entry]:
        """Verbs having a frame starting with ``frame_prefix`` (e.g. ``tr:``, ``intr``, ``cls``)."""
        if frame_prefix not in self._frames:
            self._frames[frame_prefix] = [e for e in self.by_pos["verb"]
                                          if any(f.startswith(frame_prefix) for f in e.tag_list("frames"))]
        return self._frames[frame_prefix]

    @staticmethod
    def article(next_word: str) -> str:
        """``a`` or ``an`` before ``next_word``, by its first sound (spelling approximations)."""
        w = next_word.lower()
        if w.startswith(_AN_EXCEPTIONS):
            return "an"
        if w.startswith(_A_EXCEPTIONS):
            return "a"
        return "an" if w[:1] in "aeiou" else "a"


def parse_lexicon(text: str, source: str = "<lexicon>") -> Lexicon:
    entries = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            raise ValueError(f"{source}:{n}: expected word<TAB>pos<TAB>forms[<TAB>tags]: {line!r}")
        tags = {}
        for kv in (parts[3].split(";") if len(parts) > 3 and parts[3] else []):
            k, _, v = kv.partition("=")
            tags[k] = v
        entries.append(Entry(parts[0], parts[1], tuple(parts[2].split("|")), tags))
    return Lexicon(entries, source)


@functools.lru_cache(maxsize=4)
def load_lexicon(path: str | Path | None = None) -> Lexicon:
    """The packaged lexicon, or one in the same format at ``path``."""
    if path is None:
        res = resources.files("speechunits.data.corpus").joinpath("lexicon.txt")
        return parse_lexicon(res.read_text(encoding="utf-8"), "speechunits/data/corpus/lexicon.txt")
    path = Path(path)
    return parse_lexicon(path.read_text(encoding="utf-8"), str(path))


def _groups(entry: Entry) -> list[tuple[str, ...]]:
    """The groups the grammar draws ``entry`` from: a subset keeps every group populated."""
    if entry.pos == "noun":
        return [("noun", entry.tag("class"), entry.tag("mass"))]
    if entry.pos == "verb":  # the minimal pairs also need intransitive, transitive and irregular verbs
        frames = {f.partition(":")[0] for f in entry.tag_list("frames")}
        irregular = len(entry.forms) == 5 and entry.forms[2] != entry.forms[3]
        return [("verb", entry.tag("subj", "person")), *(("verb-frame", f) for f in sorted(frames)),
                *([("verb-frames", "intr only")] if frames == {"intr"} else []),
                *([("verb-irregular", "tr")] if irregular and "tr" in frames else [])]
    if entry.pos == "adj":
        return [("adj", c) for c in entry.tag_list("mods")] or [("adj", "")]
    if entry.pos == "adv":
        return [("adv", entry.tag("type"))]
    return [(entry.pos, entry.tag("gender"))]


def subset_lexicon(lex: Lexicon, words: int, seed: int = 0) -> Lexicon:
    """About ``words`` open-class lemmas of ``lex`` (seeded), with every closed-class word.

    Each group the grammar draws from (nouns by semantic class and countability, verbs by
    subject class, adjectives by the classes they modify, adverbs by type, names by gender)
    keeps the same share of its words, and at least three (or all it has), so every sentence
    the full lexicon can make still has words to fill it. Entries keep their file order.
    """
    open_entries = [e for e in lex.entries if e.pos in OPEN_POS]
    if words < 1:
        raise ValueError(f"a lexicon subset needs at least 1 word, not {words}")
    share = min(1.0, words / max(1, len(open_entries)))
    rng = random.Random(f"speechunits-lexicon-subset:{seed}")
    order = open_entries[:]
    rng.shuffle(order)
    members: dict[tuple[str, ...], list[Entry]] = defaultdict(list)
    for e in order:
        for g in _groups(e):
            members[g].append(e)
    keep: set[int] = set()
    for g in sorted(members):  # sorted: the draw must not depend on dict order
        quota = max(_MIN_PER_GROUP, round(share * len(members[g])))
        have = sum(id(e) in keep for e in members[g])
        for e in members[g]:
            if have >= quota:
                break
            if id(e) not in keep:
                keep.add(id(e))
                have += 1
    kept = [e for e in lex.entries if e.pos not in OPEN_POS or id(e) in keep]
    return Lexicon(kept, f"{lex.source} (subset of {words} words, seed {seed})")


def format_lexicon(lex: Lexicon, header: str = "") -> str:
    """``lex`` in the lexicon file format (``parse_lexicon`` reads it back)."""
    lines = [f"# {h}" for h in header.splitlines()]
    lines += [f"{e.word}\t{e.pos}\t{'|'.join(e.forms)}\t{';'.join(f'{k}={v}' for k, v in e.tags.items())}"
              for e in lex.entries]
    return "\n".join(lines) + "\n"

"""Lexicon, grammar, corpus plan and the text side of the pair sets (no synthesizer needed)."""

from __future__ import annotations

import random
import re

import pytest

from speechunits.data.corpus import tools
from speechunits.data.corpus.grammar import NP, Grammar
from speechunits.data.corpus.lexicon import load_lexicon
from speechunits.data.corpus.minimal_pairs import TYPES, make_syntactic_pairs
from speechunits.data.corpus.nonwords import NonwordMaker, chunks
from speechunits.data.corpus.plan import SPLIT_PATTERN, plan_corpus
from speechunits.data.corpus.stories import make_story_pairs
from speechunits.data.corpus.voices import SPEAKERS, TEST_SPEAKERS


@pytest.fixture(scope="module")
def lex():
    return load_lexicon()


def test_lexicon_size_and_forms(lex):
    assert lex.size >= 1500
    for pos, n in (("noun", 500), ("verb", 250), ("adj", 150), ("adv", 50), ("name", 100)):
        assert len(lex.by_pos[pos]) >= n, pos
    for v in lex.by_pos["verb"]:
        assert len(v.forms) == 5 and v.tag_list("frames"), v.word
    for n in lex.by_pos["noun"]:
        assert len(n.forms) == (1 if n.mass else 2), n.word
    assert lex.entry("go", "verb").forms == ("go", "goes", "went", "gone", "going")
    assert lex.entry("mouse", "noun").noun(True) == "mice"
    assert [lex.article(w) for w in ("apple", "hour", "university", "dog")] == ["an", "an", "a", "a"]


def test_grammar_sentences_use_the_lexicon_and_vary(lex):
    g = Grammar(random.Random(0), lex)
    sents = [g.sentence(complexity=i % 4) for i in range(600)]
    assert len(set(sents)) > 580
    for s in sents:
        assert s[0].isupper() and s[-1] in ".?"
        assert all(w.lower() in lex.forms for w in re.findall(r"[A-Za-z']+", s)), s
    assert sum(s.endswith("?") for s in sents) > 30
    assert any(" who " in s for s in sents) and any(" that " in s for s in sents)
    lengths = [len(s.split()) for s in sents]
    assert min(lengths) <= 3 and max(lengths) >= 20


def test_agreement_in_verb_groups(lex):
    g = Grammar(random.Random(0), lex)
    eat = lex.entry("eat", "verb")
    sg, pl, me = NP(["the", "dog"]), NP(["the", "dogs"], plural=True), NP(["I"], person=1)
    assert g.verb_group(eat, sg, "present") == ["eats"]
    assert g.verb_group(eat, pl, "present") == ["eat"]
    assert g.verb_group(eat, sg, "present", neg=True) == ["does", "not", "eat"]
    assert g.verb_group(eat, pl, "perfect") == ["have", "eaten"]
    assert g.verb_group(eat, me, "progressive") == ["am", "eating"]
    assert g.verb_group(eat, pl, "past_progressive") == ["were", "eating"]


def test_plan_splits_speakers_and_prefix_stability():
    small = plan_corpus(2.0, seed=5, durations=None)
    big = plan_corpus(5.0, seed=5, durations=None)
    assert big[:len(small)] == small
    assert plan_corpus(2.0, seed=5, durations=None) == small
    assert plan_corpus(2.0, seed=6, durations=None) != small
    assert [u.split for u in big] == [SPLIT_PATTERN[i % len(SPLIT_PATTERN)] for i in range(len(big))]
    sent_split = {}
    for u in big:
        for s in u.sentences:
            assert sent_split.setdefault(s, u.split) == u.split  # every sentence used once
        assert (u.speaker in TEST_SPEAKERS) == (u.split == "test")
    assert len({u.speaker for u in big if u.split == "train"}) == len(SPEAKERS) - len(TEST_SPEAKERS)


def test_syntactic_pairs_differ_minimally():
    pairs = make_syntactic_pairs(60, seed=1)
    assert {p.type for p in pairs} == set(TYPES)
    assert pairs == make_syntactic_pairs(60, seed=1)
    for p in pairs:
        a, b = p.good[:-1].split(), p.bad[:-1].split()
        assert len(a) == len(b) and a != b, p
        diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        one_substitution = len(diff) == 1
        adjacent_swap = len(diff) == 2 and diff[1] == diff[0] + 1 and \
            (a[diff[0]], a[diff[1]]) == (b[diff[1]], b[diff[0]])
        assert one_substitution or adjacent_swap, p


def test_story_pairs_share_the_setup_and_differ_in_the_ending():
    pairs = make_story_pairs(80, seed=2)
    assert {p.type for p in pairs} == {"event", "pronoun"}
    for p in pairs:
        first = re.match(r"[^.]+\.", p.good).group(0)
        assert p.bad.startswith(first) and p.good != p.bad
    assert len({p.good for p in pairs}) == len(pairs)


def test_nonword_candidates_are_plausible_and_not_words(lex):
    assert chunks("queen") == [("C", "qu"), ("V", "ee"), ("C", "n")]
    assert chunks("city") == [("C", "c"), ("V", "i"), ("C", "t"), ("V", "y")]
    maker = NonwordMaker(lex)
    rng = random.Random(0)
    for w in ("garden", "teacher", "quickly", "bottles"):
        cands = maker.candidates(w, rng, k=5)
        assert cands
        for c in cands:
            assert c not in lex.forms and c != w and maker.plausible(c) and abs(len(c) - len(w)) <= 1


def test_missing_tools_name_the_packages(monkeypatch):
    monkeypatch.setattr(tools.shutil, "which", lambda name: None)
    monkeypatch.setattr(tools, "voice_database", lambda v: None)
    assert tools.missing_tools() == ["espeak-ng", "mbrola", "mbrola-us1", "mbrola-us2",
                                     "mbrola-us3", "mbrola-en1"]
    with pytest.raises(tools.ToolMissingError) as e:
        tools.check_tools()
    assert "contrib" in str(e.value)
    assert "apt-get install espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1" in str(e.value)


def test_long_corpus_plan_widens_instead_of_failing():
    """Two hours used to fail ("could not plan an utterance of the minimum length") once the short
    sentences ran out; the limit now widens, and every sentence is still new to the corpus."""
    from speechunits.data.corpus.plan import _EST_MIN

    plan = plan_corpus(120, 0, None)
    assert sum(u.est_seconds for u in plan) >= 120 * 60
    assert all(u.est_seconds >= _EST_MIN for u in plan)
    sentences = [s for u in plan for s in u.sentences]
    assert len(sentences) == len(set(sentences))


def test_lexicon_subset_keeps_every_group_and_round_trips(lex, tmp_path):
    from speechunits.data.corpus.lexicon import OPEN_POS, format_lexicon, subset_lexicon

    small = subset_lexicon(lex, 150, seed=0)
    open_words = [e for e in small.entries if e.pos in OPEN_POS]
    assert 150 <= len(open_words) <= 200 and len(small.forms) < len(lex.forms) / 4
    for pos in ("det", "pron", "prep", "aux", "conj"):  # closed classes are kept whole
        assert small.by_pos[pos] == lex.by_pos[pos]
    for cls, nouns in lex.nouns_by_class.items():  # every class the grammar draws from still has words
        assert len(small.nouns_by_class[cls]) >= min(3, len(nouns)), cls
    for cls in lex.adjs_by_class:
        assert len(small.adjs_by_class[cls]) >= 2, cls
    assert subset_lexicon(lex, 150, seed=0).digest == small.digest != subset_lexicon(lex, 150, seed=1).digest
    path = tmp_path / "small.tsv"
    path.write_text(format_lexicon(small, "a test subset"))
    assert load_lexicon(path).digest == small.digest and load_lexicon(path).forms == small.forms
    with pytest.raises(ValueError, match="at least 1 word"):
        subset_lexicon(lex, 0)


def test_subset_grammar_and_pairs_draw_from_the_subset(lex):
    from speechunits.data.corpus.lexicon import subset_lexicon

    small = subset_lexicon(lex, 60, seed=2)
    g = Grammar(random.Random(0), small)
    hardcoded = {"tomorrow", "week"}  # the grammar's own time adverbials
    for s in (g.sentence(complexity=i % 4) for i in range(400)):
        assert all(w.lower() in small.forms | hardcoded for w in re.findall(r"[A-Za-z']+", s)), s
    pairs = make_syntactic_pairs(len(TYPES) * 20, seed=0, lex=small)  # every type, from a small lexicon
    assert {p.type for p in pairs} == set(TYPES)
    for p in pairs:
        assert all(w.lower() in small.forms for w in re.findall(r"[A-Za-z']+", p.good + " " + p.bad)), p
    maker = NonwordMaker(small)  # non-words are not words of the full lexicon either
    rng = random.Random(0)
    for w in maker.words[:40]:
        assert w in small.forms
        assert all(c not in lex.forms for c in maker.candidates(w, rng, k=3))

"""Word-to-phone DP, the common phone set, and exact timings under every speaker setting."""

from __future__ import annotations

import random

import numpy as np
import pytest

from speechunits.data.corpus import tools
from speechunits.data.corpus.phones import COMMON_PHONES, PhoLine, format_pho, parse_pho, retime, to_common
from speechunits.data.corpus.wordalign import align_words

needs_tools = pytest.mark.skipif(
    bool(tools.missing_tools()), reason=f"needs espeak-ng + MBROLA voices: {tools.INSTALL_HINT}")


# -- the DP, on hand-made sequences ------------------------------------------------------------
def test_exact_match_and_pauses():
    sent = ["DH", "AH", "K", "AE", "T", "sil", "S", "AE", "T"]
    r = align_words(sent, [["DH", "AH"], ["K", "AE", "T"], ["S", "AE", "T"]])
    assert r.spans == [(0, 2), (2, 5), (6, 9)] and r.match_rate == 1.0


def test_weak_forms_flaps_and_inserted_phones():
    # "the" said D IY alone but D AH in context; "city" with a flap mapped to T; a linking R
    sent = ["DH", "AH", "S", "IH", "T", "IY", "R", "AH", "W", "EY"]
    words = [["DH", "IY"], ["S", "IH", "T", "IY"], ["AH", "W", "EY"]]
    r = align_words(sent, words)
    assert r.spans == [(0, 2), (2, 7), (7, 10)]  # the inserted R goes to the word before it


def test_swallowed_word_gets_an_empty_span_and_order_is_kept():
    sent = ["B", "IH", "G", "D", "AO", "G"]
    r = align_words(sent, [["B", "IH", "G"], ["AH"], ["D", "AO", "G"]])
    assert r.spans[0] == (0, 3) and r.spans[2] == (3, 6)
    assert r.spans[1][0] == r.spans[1][1] == 3


def test_inserted_phone_after_a_pause_goes_to_the_next_word():
    sent = ["HH", "AY", "sil", "AH", "B", "AA", "B"]
    r = align_words(sent, [["HH", "AY"], ["B", "AA", "B"]])
    assert r.spans == [(0, 2), (3, 7)]


def test_pho_roundtrip_and_retime():
    lines = parse_pho("; comment\nh\t60\n@U\t120\t 0 180 100 160\n_\t300\n_\t1\n")
    assert lines[1] == PhoLine("@U", 120.0, "0 180 100 160")
    again = parse_pho(format_pho(lines))
    assert again == lines
    r = retime(lines, tempo=2.0, lead_ms=100, tail_ms=150)
    assert r[0] == PhoLine("_", 100.0) and r[1].ms == 30.0 and r[-1].ms == 150.0


def test_common_phone_set_is_arpabet():
    assert len(COMMON_PHONES) == 40 and "sil" in COMMON_PHONES
    assert to_common("3:", "en1") == "ER" and to_common("r=", "us2") == "ER"
    with pytest.raises(KeyError, match="no common-set mapping"):
        to_common("XX", "us1")


# -- with espeak-ng and MBROLA ------------------------------------------------------------------
@needs_tools
def test_every_phone_of_the_lexicon_maps_for_every_voice():
    from speechunits.data.corpus.lexicon import load_lexicon
    from speechunits.data.corpus.synth import word_phones

    forms = sorted(load_lexicon().forms)
    for voice in tools.MBROLA_VOICES:
        prons = word_phones(forms, voice)  # raises on an unmapped phone
        assert len(prons) == len(forms)
        assert {p for ph in prons.values() for p in ph} <= set(COMMON_PHONES)


@needs_tools
@pytest.mark.parametrize("voice", tools.MBROLA_VOICES)
def test_timings_stay_exact_under_pitch_quality_and_tempo(voice):
    from speechunits.data.corpus.synth import synthesize
    from speechunits.data.corpus.voices import SPEAKERS

    text = "The old farmer, who lives near the river, sold three cows yesterday. Did he?"
    lengths = {}
    for spk in [s for s in SPEAKERS if s.voice == voice]:
        for tempo in (0.9, 1.12):
            utt = synthesize(text, spk, tempo=tempo, lead_ms=150)
            ph = utt.alignment.phones
            assert ph[0].start == 0 and ph[0].label == "sil" and ph[0].end == pytest.approx(0.15)
            assert all(a.end == b.start for a, b in zip(ph, ph[1:]))
            assert ph[-1].end == len(utt.audio) / 16000
            assert utt.audio.dtype == np.int16 and np.abs(utt.audio).max() > 1000
            assert [w.label for w in utt.alignment.words][:3] == ["the", "old", "farmer"]
            assert utt.match_rate > 0.85
            lengths[(spk.id, tempo)] = len(utt.audio)
    # voice quality (-l) and pitch (-f) leave the length (so the timing) within a few ms
    for tempo in (0.9, 1.12):
        same = [n for (s, t), n in lengths.items() if t == tempo]
        assert max(same) - min(same) < 0.02 * 16000
    fast, slow = (np.mean([n for (s, t), n in lengths.items() if t == x]) for x in (1.12, 0.9))
    assert fast < slow * 0.9


@needs_tools
def test_batched_espeak_equals_one_call_per_text():
    from speechunits.data.corpus.grammar import Grammar

    g = Grammar(random.Random(3))
    texts = [g.sentence(complexity=k % 4) for k in range(12)] + ["no punctuation here"]
    batch = tools.espeak_pho_batch(texts, "us1")
    alone = [tools.espeak_pho(tools.ensure_final_punctuation(t), "us1") for t in texts]
    assert [parse_pho(b) for b in batch] == [parse_pho(a) for a in alone]


@needs_tools
def test_word_alignment_quality_on_grammar_sentences():
    from speechunits.data.corpus.grammar import Grammar
    from speechunits.data.corpus.synth import synthesize
    from speechunits.data.corpus.voices import speaker

    g = Grammar(random.Random(11))
    rates = []
    for k, voice in enumerate(("us1", "en1") * 4):
        text = " ".join(g.sentence(complexity=k % 4) for _ in range(2))
        rates.append(synthesize(text, speaker(f"{voice}-f1.00-l16000")).match_rate)
    assert np.mean(rates) > 0.9

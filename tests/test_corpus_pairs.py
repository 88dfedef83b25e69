"""Zero-shot pair sets synthesized: non-words, gold files, layout, resume."""

from __future__ import annotations

import csv
import json
from collections import defaultdict

import pytest
import soundfile as sf

from speechunits.data.corpus import tools
from speechunits.data.corpus.lexicon import load_lexicon

pytestmark = pytest.mark.skipif(
    bool(tools.missing_tools()), reason=f"needs espeak-ng + MBROLA voices: {tools.INSTALL_HINT}")

N = 4
GOLD_COLUMNS = {
    "lexical": ["id", "filename", "correct", "voice", "word", "phones"],
    "syntactic": ["id", "filename", "correct", "voice", "type", "transcription"],
    "story": ["id", "filename", "correct", "voice", "type", "topic", "transcription"],
}


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    from speechunits.data.corpus import synthesize_pairs

    out = tmp_path_factory.mktemp("pairs")
    summary = synthesize_pairs(out, kind="all", n=N, seed=3, workers=2, progress=False)
    assert summary.pairs == {"lexical": N, "syntactic": N, "story": N} and not summary.failed
    return out


def test_nonwords_are_not_words_and_sound_different():
    from speechunits.data.corpus.nonwords import make_lexical_pairs

    lex = load_lexicon()
    pairs = make_lexical_pairs(40, seed=0)
    assert len({p.nonword for p in pairs}) == 40
    for p in pairs:
        assert p.word in lex.forms and p.nonword not in lex.forms
        assert p.nonword_phones and p.nonword_phones != p.word_phones


@pytest.mark.parametrize("kind", ["lexical", "syntactic", "story"])
def test_gold_files_are_well_formed(pairs_dir, kind):
    root = pairs_dir / kind
    with open(root / "gold.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == GOLD_COLUMNS[kind]
        rows = list(reader)
    assert len(rows) == 2 * N
    assert len({r["filename"] for r in rows}) == 2 * N
    by_pair = defaultdict(list)
    for r in rows:
        by_pair[r["id"]].append(r)
        info = sf.info(str(root / f"{r['filename']}.wav"))
        assert info.samplerate == 16000 and info.frames > 8000
    for pid, (a, b) in by_pair.items():
        assert {a["correct"], b["correct"]} == {"1", "0"}
        assert a["voice"] == b["voice"]
        text = "word" if kind == "lexical" else "transcription"
        assert a[text] != b[text]
    manifest = [json.loads(x) for x in (root / "manifest.jsonl").read_text().splitlines()]
    assert {m["id"] for m in manifest} == {r["filename"] for r in rows}
    assert all(m["split"] == kind and m["sample_rate"] == 16000 for m in manifest)
    if kind == "lexical":
        lex = load_lexicon()
        for r in rows:
            assert (r["word"] in lex.forms) == (r["correct"] == "1")
            assert r["phones"] and "sil" not in r["phones"].split()


def test_pairs_resume_and_are_deterministic(pairs_dir, tmp_path):
    from speechunits.data.corpus import synthesize_pairs

    again = synthesize_pairs(pairs_dir, kind="syntactic", n=N, seed=3, progress=False)
    assert again.generated == 0
    fresh = synthesize_pairs(tmp_path, kind="syntactic", n=N, seed=3, workers=1, progress=False)
    assert fresh.generated == 2 * N
    for name in ("gold.csv", "manifest.jsonl", "syntactic_00000_a.wav", "syntactic_00001_b.wav"):
        assert (tmp_path / "syntactic" / name).read_bytes() == (pairs_dir / "syntactic" / name).read_bytes()


def test_unknown_kind_is_an_error(tmp_path):
    from speechunits.data.corpus import synthesize_pairs

    with pytest.raises(ValueError, match="unknown pair kind"):
        synthesize_pairs(tmp_path, kind="semantic", n=2)


def test_other_seed_in_same_folder_is_refused(pairs_dir):
    from speechunits.data.corpus import synthesize_pairs

    with pytest.raises(ValueError, match="other settings"):
        synthesize_pairs(pairs_dir, kind="syntactic", n=N, seed=4, progress=False)


def test_pairs_from_a_lexicon_file_use_its_words(tmp_path):
    """`corpus lexicon` writes a subset; `corpus pairs --lexicon` draws the lexical words from it."""
    from speechunits.cli import main

    lexfile = tmp_path / "small.tsv"
    assert main(["corpus", "lexicon", "--out", str(lexfile), "--words", "80", "--seed", "1"]) == 0
    small = load_lexicon(lexfile)
    assert main(["corpus", "pairs", "--out", str(tmp_path / "p"), "--kind", "lexical", "--n", "6",
                 "--seed", "0", "--workers", "1", "--no-progress", "--lexicon", str(lexfile)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "p" / "lexical" / "gold.csv")))
    assert len(rows) == 12
    full = load_lexicon()
    for r in rows:
        assert (r["word"] in small.forms) if r["correct"] == "1" else (r["word"] not in full.forms)
    info = json.loads((tmp_path / "p" / "pairs.json").read_text())
    assert info["lexicon"]["digest"] == small.digest
    # the packaged lexicon in the same folder is other settings: refused, not mixed
    assert main(["corpus", "pairs", "--out", str(tmp_path / "p"), "--kind", "lexical", "--n", "6",
                 "--seed", "0", "--workers", "1", "--no-progress"]) == 2

"""The keyword-spotting corpus (`corpus words`): real synthesis of three words by every voice;
manifests, labels, splits, audio, determinism, resume, skipped words, CLI."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechunits.data.alignment import Alignment
from speechunits.data.corpus import tools
from speechunits.data.corpus.lexicon import load_lexicon
from speechunits.data.corpus.phones import VOWELS
from speechunits.data.corpus.voices import SPEAKERS, TEST_SPEAKERS

needs_tools = pytest.mark.skipif(
    bool(tools.missing_tools()), reason=f"needs espeak-ng + MBROLA voices: {tools.INSTALL_HINT}")

N_WORDS, SEED = 3, 5
KEYS = ["id", "path", "speaker", "text", "alignment", "split", "num_samples", "sample_rate", "label"]
VOICES = ("en1", "us1", "us2", "us3")


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def words_dir(tmp_path_factory):
    from speechunits.data.corpus import synthesize_words

    out = tmp_path_factory.mktemp("words")
    summary = synthesize_words(out, n_words=N_WORDS, seed=SEED, workers=1, progress=False)
    return out, summary, _rows(out / "manifest.jsonl")


@needs_tools
def test_manifests_labels_and_summary(words_dir):
    out, summary, rows = words_dir
    assert not summary.failed and not summary.skipped and len(summary.keywords) == N_WORDS
    n_train_spk = len(SPEAKERS) - len(TEST_SPEAKERS)
    assert len(rows) == N_WORDS * (n_train_spk * (3 + 1) + len(TEST_SPEAKERS) * 2)
    for r in rows:
        assert list(r) == KEYS
        assert r["label"] == r["text"] and r["label"] in summary.keywords
        assert r["id"] == f"{r['speaker']}_{r['label']}_{r['id'].rsplit('_', 1)[1]}"
        assert not Path(r["path"]).is_absolute() and not Path(r["alignment"]).is_absolute()
    assert len({r["id"] for r in rows}) == len(rows)
    by_split = {s: _rows(out / f"{s}.jsonl") for s in ("train", "dev", "test")}
    assert all(r["split"] == s for s, rs in by_split.items() for r in rs)
    assert sorted(r["id"] for rs in by_split.values() for r in rs) == sorted(r["id"] for r in rows)
    meta = json.loads((out / "corpus.json").read_text())
    assert meta["words"] == summary.keywords and meta["seed"] == SEED and meta["utterances"] == len(rows)
    assert {s: meta["splits"][s]["utterances"] for s in by_split} == {s: len(rs) for s, rs in by_split.items()}
    assert set(meta["versions"]) >= {"espeak-ng", "mbrola", "speechunits"}
    # The manifests read back through the project's reader, the label kept as an extra field.
    from speechunits.data.manifest import read_manifest

    utts = read_manifest(out / "test.jsonl")
    assert [u.extra["label"] for u in utts] == [r["label"] for r in by_split["test"]]
    assert all(u.path.is_file() and u.alignment.is_file() for u in utts)


@needs_tools
def test_splits_keep_test_voices_unseen(words_dir):
    _, summary, rows = words_dir
    test_spk = set(TEST_SPEAKERS)
    seen = {r["speaker"] for r in rows if r["split"] in ("train", "dev")}
    assert not seen & test_spk and len(seen) == len(SPEAKERS) - len(test_spk)
    assert {r["speaker"] for r in rows if r["split"] == "test"} == test_spk
    counts = Counter((r["split"], r["label"], r["speaker"]) for r in rows)
    for w in summary.keywords:
        for s in SPEAKERS:
            if s.id in test_spk:
                assert counts[("test", w, s.id)] == 2
            else:
                assert (counts[("train", w, s.id)], counts[("dev", w, s.id)]) == (3, 1)
    # dev holds other takes than train: no file in both
    assert not {r["path"] for r in rows if r["split"] == "train"} & {r["path"] for r in rows if r["split"] == "dev"}


@needs_tools
def test_audio_is_16k_speech_where_the_word_is(words_dir):
    out, _, rows = words_dir
    for r in rows:
        info = sf.info(str(out / r["path"]))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.frames == r["num_samples"] and 0.4 < info.frames / 16000 < 2.5
        audio, _ = sf.read(str(out / r["path"]), dtype="float32")
        al = Alignment.load(out / r["alignment"])
        assert [w.label for w in al.words] == [r["label"]]
        ph = al.phones
        assert ph[0].start == 0.0 and all(a.end == b.start for a, b in zip(ph, ph[1:]))
        assert ph[-1].end == pytest.approx(r["num_samples"] / 16000, abs=1e-6)
        w = al.words[0]
        word = audio[int(w.start * 16000):int(w.end * 16000)]
        lead = audio[:int(ph[0].end * 16000)]
        rms_word = float(np.sqrt(np.mean(word ** 2)))
        assert rms_word > 0.01, r["id"]
        assert float(np.sqrt(np.mean(lead ** 2))) < 0.1 * rms_word, r["id"]


@needs_tools
def test_takes_differ_in_tempo_pitch_and_lead(words_dir):
    from speechunits.data.corpus.words import take_variation

    out, summary, rows = words_dir
    spk = SPEAKERS[0].id
    takes = [r for r in rows if r["speaker"] == spk and r["label"] == summary.keywords[0]]
    assert len(takes) == 4
    assert len({r["num_samples"] for r in takes}) == 4
    assert len({(out / r["path"]).read_bytes() for r in takes}) == 4
    params = [take_variation(SEED, spk, summary.keywords[0], t) for t in range(4)]
    assert len({p[0] for p in params}) == 4 and len({p[1] for p in params}) == 4
    assert all(0.85 <= t <= 1.15 and 0.93 <= p <= 1.07 and 60 <= ld <= 250 for t, p, ld in params)
    # The lead silence in the alignment is the take's drawn one.
    al = Alignment.load(out / takes[0]["alignment"])
    assert al.phones[0].label == "sil" and al.phones[0].end * 1000 >= params[0][2] - 1e-6


@needs_tools
def test_selection_is_seeded_distinct_and_prefix_stable():
    from speechunits.data.corpus.words import keyword_pool, pronunciations, select_keywords

    pool = keyword_pool()
    prons = pronunciations(pool, VOICES)
    a, _ = select_keywords(30, 0, prons)
    assert select_keywords(30, 0, prons)[0] == a
    assert select_keywords(30, 1, prons)[0] != a
    assert select_keywords(10, 0, prons)[0] == a[:10]
    lex = load_lexicon()
    nouns_verbs = {e.word for e in lex.entries if e.pos in ("noun", "verb")}
    assert len(set(a)) == 30 and set(a) <= nouns_verbs
    for v in VOICES:
        assert len({tuple(prons[v][w][0]) for w in a}) == 30  # no two keywords sound alike
        assert all(1 <= sum(p in VOWELS for p in prons[v][w][0]) <= 3 for w in a)


@needs_tools
def test_homophones_and_unsayable_words_are_skipped(tmp_path, caplog):
    from speechunits.data.corpus import synthesize_words
    from speechunits.data.corpus.words import check_keywords, pronunciations

    prons = pronunciations(["meat", "meet", "cat"], VOICES)
    chosen, skipped = check_keywords(["meat", "meet", "cat"], prons)
    assert chosen == ["meat", "cat"] and skipped[0]["word"] == "meet"
    assert "sounds like the keyword 'meat'" in skipped[0]["reason"]

    odd = "loire"  # espeak-ng renders its l as 'l/', which no MBROLA voice table maps
    if odd in pronunciations([odd], ["us1"])["us1"]:
        pytest.skip(f"this espeak-ng says {odd!r} with ordinary phones")
    takes = {"train": 1, "dev": 0, "test": 1}
    with caplog.at_level("WARNING"):
        s = synthesize_words(tmp_path, keywords=["Cat", odd], seed=0, takes=takes, workers=1, progress=False)
    assert s.keywords == ["cat"] and [k["word"] for k in s.skipped] == [odd] and not s.failed
    assert "cannot say" in s.skipped[0]["reason"] and f"skipped word {odd!r}" in s.format()
    assert odd in caplog.text
    assert {r["label"] for r in _rows(tmp_path / "manifest.jsonl")} == {"cat"}
    assert json.loads((tmp_path / "corpus.json").read_text())["skipped_words"][0]["word"] == odd
    with pytest.raises(ValueError, match="none of the keywords"):
        synthesize_words(tmp_path, keywords=[odd], seed=0, takes=takes, progress=False)
    with pytest.raises(ValueError, match="only letters"):
        synthesize_words(tmp_path, keywords=["ice-cream"], seed=0, progress=False)


@needs_tools
def test_same_seed_same_bytes_whatever_the_word_list(words_dir, tmp_path):
    """A file depends on (seed, speaker, word, take) only: synthesizing one of the words alone
    gives byte-identical wavs and alignments."""
    from speechunits.data.corpus import synthesize_words

    out, summary, rows = words_dir
    word = summary.keywords[1]
    s = synthesize_words(tmp_path, keywords=[word], seed=SEED, workers=1, progress=False)
    mine = [r for r in rows if r["label"] == word]
    assert s.generated == len(mine) == len(_rows(tmp_path / "manifest.jsonl"))
    for r in mine:
        assert (tmp_path / r["path"]).read_bytes() == (out / r["path"]).read_bytes()
        assert (tmp_path / r["alignment"]).read_bytes() == (out / r["alignment"]).read_bytes()
    assert _rows(tmp_path / "manifest.jsonl") == mine


@needs_tools
def test_full_rebuild_is_byte_identical(words_dir, tmp_path):
    from speechunits.data.corpus import synthesize_words

    out, _, rows = words_dir
    synthesize_words(tmp_path, n_words=N_WORDS, seed=SEED, workers=1, progress=False)
    for name in ("manifest.jsonl", "train.jsonl", "dev.jsonl", "test.jsonl", "corpus.json"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
    for r in rows:
        assert (tmp_path / r["path"]).read_bytes() == (out / r["path"]).read_bytes()


@needs_tools
def test_resume_regenerates_only_what_is_missing(words_dir, tmp_path):
    from speechunits.data.corpus import synthesize_words

    out, _, rows = words_dir
    work = tmp_path / "w"
    shutil.copytree(out, work)
    victim = rows[len(rows) // 3]
    (work / victim["path"]).unlink()
    stale = work / "wav" / victim["speaker"] / ".x.wav.abc.tmp"  # what a killed write leaves
    stale.write_bytes(b"half")
    before = {p: p.stat().st_mtime_ns for p in (work / "wav").rglob("*.wav")}
    summary = synthesize_words(work, n_words=N_WORDS, seed=SEED, workers=1, progress=False)
    assert summary.generated == 1 and not stale.exists()
    assert (work / victim["path"]).read_bytes() == (out / victim["path"]).read_bytes()
    for p, t in before.items():
        assert p.stat().st_mtime_ns == t, f"{p} was rewritten"
    for name in ("manifest.jsonl", "train.jsonl", "dev.jsonl", "test.jsonl", "corpus.json"):
        assert (work / name).read_bytes() == (out / name).read_bytes(), name
    with pytest.raises(ValueError, match="other settings"):
        synthesize_words(work, n_words=N_WORDS, seed=SEED + 1, progress=False)


@needs_tools
def test_cli_words_resumes_and_prints_summary(words_dir, capsys):
    from speechunits.cli import main

    rc = main(["corpus", "words", "--out", str(words_dir[0]), "--words", str(N_WORDS), "--seed", str(SEED),
               "--workers", "1", "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert f"{N_WORDS} words" in printed and "0 synthesized now" in printed and "test" in printed


def test_cli_missing_tools_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    from speechunits.cli import main

    monkeypatch.setattr(tools.shutil, "which", lambda name: None)
    rc = main(["corpus", "words", "--out", str(tmp_path / "w"), "--words", "2", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "missing espeak-ng, mbrola" in err and "apt-get install" in err
    assert not (tmp_path / "w").exists()  # nothing written before the check


@needs_tools
def test_cli_bad_arguments_are_one_line_errors_and_write_nothing(tmp_path, capsys):
    from speechunits.cli import main

    for extra, reason in ((["--words", "0"], "must be >= 1"), (["--keywords", "cat", "Cat"], "more than once"),
                          (["--keywords", "ice-cream"], "only letters")):
        rc = main(["corpus", "words", "--out", str(tmp_path / "w"), *extra, "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and reason in err, err
        assert not (tmp_path / "w").exists()


@needs_tools
def test_a_jobs_pitch_scale_moves_f0_and_not_the_timing(tmp_path):
    """Job.pitch_scale (the takes' pitch variation) scales the rendered F0; durations stay."""
    from speechunits.audio.perturb.pitch import median_f0
    from speechunits.data.corpus.jobs import Job, run_jobs

    spk = "us2-f1.00-l16000"
    jobs = [Job(f"p{i}", "window", spk, 1.0, 100.0, f"p{i}.wav", f"p{i}.json", scale)
            for i, scale in enumerate((1.0, 1.07))]
    res = run_jobs(tmp_path, jobs, workers=1, progress=False)
    assert res["p0"].num_samples == res["p1"].num_samples and not any(r.error for r in res.values())
    f0 = [median_f0(sf.read(str(tmp_path / f"p{i}.wav"), dtype="float32")[0]) for i in range(2)]
    assert f0[1] / f0[0] == pytest.approx(1.07, abs=0.02)
    assert (tmp_path / "p0.json").read_bytes() == (tmp_path / "p1.json").read_bytes()

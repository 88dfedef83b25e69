"""The synthetic corpus end to end: alignments, manifests, splits, determinism, resume, CLI."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import pytest
import soundfile as sf

from speechunits.data.alignment import Alignment
from speechunits.data.corpus import tools
from speechunits.data.corpus.phones import COMMON_PHONES
from speechunits.data.corpus.synth import words_of

pytestmark = pytest.mark.skipif(
    bool(tools.missing_tools()), reason=f"needs espeak-ng + MBROLA voices: {tools.INSTALL_HINT}")

MINUTES, SEED = 0.5, 7
KEYS = ["id", "path", "speaker", "text", "alignment", "split", "num_samples", "sample_rate"]


def _build(out: Path):
    from speechunits.data.corpus import synthesize_corpus

    return synthesize_corpus(out, minutes=MINUTES, seed=SEED, workers=2, progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, object, list[dict]]:
    out = tmp_path_factory.mktemp("corpus")
    summary = _build(out)
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return out, summary, rows


def _alignments(out: Path, rows: list[dict]):
    for r in rows:
        yield r, Alignment.load(out / r["alignment"])


def test_manifest_format(corpus):
    out, summary, rows = corpus
    assert rows and summary.utterances == len(rows) and not summary.failed
    for r in rows:
        assert list(r) == KEYS
        assert not Path(r["path"]).is_absolute() and not Path(r["alignment"]).is_absolute()
        info = sf.info(str(out / r["path"]))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.frames == r["num_samples"] and r["sample_rate"] == 16000
    split_rows = [json.loads(x) for s in ("train", "dev", "test")
                  for x in (out / f"{s}.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in split_rows) == sorted(r["id"] for r in rows)
    meta = json.loads((out / "corpus.json").read_text())
    assert meta["seed"] == SEED and meta["lexicon"]["words"] >= 1500
    assert set(meta["versions"]) >= {"espeak-ng", "mbrola"}
    assert sum(meta["splits"][s]["utterances"] for s in ("train", "dev", "test")) == len(rows)


def test_phones_tile_the_audio_exactly(corpus):
    out, _, rows = corpus
    for r, al in _alignments(out, rows):
        ph = al.phones
        assert ph[0].start == 0.0
        assert all(a.end == b.start for a, b in zip(ph, ph[1:])), r["id"]
        assert ph[-1].end == pytest.approx(r["num_samples"] / 16000, abs=1e-6)
        assert ph[-1].label == "sil" and ph[-1].end - ph[-1].start > 0.05
        assert {p.label for p in ph} <= set(COMMON_PHONES)


def test_words_in_text_order_and_contain_their_phones(corpus):
    out, _, rows = corpus
    for r, al in _alignments(out, rows):
        assert [w.label for w in al.words] == words_of(r["text"])
        for a, b in zip(al.words, al.words[1:]):
            assert a.end <= b.start + 1e-9
        for w in al.words:
            inside = [p for p in al.phones if p.start >= w.start - 1e-9 and p.end <= w.end + 1e-9]
            # the word's span is exactly a run of whole phones, none of them a pause
            assert w.end == w.start or (inside and inside[0].start == w.start and inside[-1].end == w.end)
            assert all(p.label != "sil" for p in inside), (r["id"], w)


def test_characters_spread_inside_their_words(corpus):
    out, _, rows = corpus
    for _, al in _alignments(out, rows):
        chars = iter(al.chars)
        for w in al.words:
            cs = [next(chars) for _ in w.label]
            assert "".join(c.label for c in cs) == w.label
            assert all(w.start - 1e-6 <= c.start <= c.end <= w.end + 1e-6 for c in cs)


def test_durations_and_speakers_and_splits(corpus):
    out, summary, rows = corpus
    assert all(2.0 <= r["num_samples"] / 16000 <= 15.0 for r in rows)
    meta = json.loads((out / "corpus.json").read_text())
    ids = {s["id"] for s in meta["speakers"]}
    assert len(ids) >= 12
    test_spk = {s["id"] for s in meta["speakers"] if s["split"] == "test"}
    assert len(test_spk) >= 3
    by_split = {s: [r for r in rows if r["split"] == s] for s in ("train", "dev", "test")}
    assert all(by_split.values()), "a tiny corpus still has all three splits"
    assert not {r["speaker"] for r in by_split["train"] + by_split["dev"]} & test_spk
    assert {r["speaker"] for r in by_split["test"]} <= test_spk

    def sentences(split):
        return {s for r in by_split[split] for s in re.findall(r"[^.?]+[.?]", r["text"])}

    assert not sentences("train") & sentences("dev")
    assert not sentences("train") & sentences("test")
    assert not sentences("dev") & sentences("test")


@pytest.mark.slow
def test_same_seed_gives_identical_bytes(corpus, tmp_path):
    out, _, rows = corpus
    _build(tmp_path)
    for name in ("manifest.jsonl", "train.jsonl", "dev.jsonl", "test.jsonl", "corpus.json"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
    for r in rows:
        assert (tmp_path / r["path"]).read_bytes() == (out / r["path"]).read_bytes()
        assert (tmp_path / r["alignment"]).read_bytes() == (out / r["alignment"]).read_bytes()


def test_resume_regenerates_only_what_is_missing(corpus, tmp_path):
    out, _, rows = corpus
    work = tmp_path / "c"
    shutil.copytree(out, work)
    victim = rows[len(rows) // 2]
    (work / victim["path"]).unlink()
    stale = work / "wav" / victim["speaker"] / ".x.wav.abc.tmp"  # what a killed write leaves
    stale.write_bytes(b"half")
    before = {p: p.stat().st_mtime_ns for p in (work / "wav").rglob("*.wav")}
    summary = _build(work)
    assert summary.generated == 1 and not stale.exists()
    assert (work / victim["path"]).read_bytes() == (out / victim["path"]).read_bytes()
    for p, t in before.items():
        assert p.stat().st_mtime_ns == t, f"{p} was rewritten"
    assert (work / "manifest.jsonl").read_bytes() == (out / "manifest.jsonl").read_bytes()


def test_other_seed_in_same_folder_is_refused(corpus):
    from speechunits.data.corpus import synthesize_corpus

    with pytest.raises(ValueError, match="other settings"):
        synthesize_corpus(corpus[0], minutes=MINUTES, seed=SEED + 1, progress=False)


def test_a_lexicon_file_sets_the_words_and_is_recorded(corpus, tmp_path):
    from speechunits.data.corpus import synthesize_corpus
    from speechunits.data.corpus.lexicon import format_lexicon, load_lexicon, subset_lexicon

    small = subset_lexicon(load_lexicon(), 60, seed=0)
    lexfile = tmp_path / "small.tsv"
    lexfile.write_text(format_lexicon(small))
    summary = synthesize_corpus(tmp_path / "c", minutes=0.3, seed=SEED, workers=2, progress=False, lexicon=lexfile)
    texts = [json.loads(line)["text"] for line in (tmp_path / "c" / "manifest.jsonl").read_text().splitlines()]
    assert texts and not summary.failed
    words = {w.lower() for t in texts for w in words_of(t)}
    assert words <= small.forms | {"tomorrow", "week"}  # the grammar's own time adverbials
    assert summary.lexicon["digest"] == small.digest and summary.lexicon["file"] == str(lexfile)
    with pytest.raises(ValueError, match="other settings"):  # the packaged lexicon: another corpus
        synthesize_corpus(tmp_path / "c", minutes=0.3, seed=SEED, progress=False)


def test_cli_synth_resumes_and_prints_summary(corpus, capsys):
    from speechunits.cli import corpus as cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["corpus", "synth", "--out", str(corpus[0]), "--minutes", str(MINUTES),
                              "--seed", str(SEED), "--no-progress"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "utterances" in printed and "test" in printed and "0 synthesized now" in printed



@pytest.mark.slow
def test_killed_run_leaves_only_whole_files_and_resumes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "k"
    code = ("from speechunits.data.corpus import synthesize_corpus; "
            f"synthesize_corpus({str(out)!r}, minutes=3, seed=1, workers=2, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not list(out.glob("align/*/*.json")) and proc.poll() is None:
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group: the run and its workers
        proc.wait()
    for wav in out.glob("wav/*/*.wav"):
        assert sf.info(str(wav)).frames > 0  # complete RIFF files only, never a half-written one
    from speechunits.data.corpus import synthesize_corpus

    summary = synthesize_corpus(out, minutes=3, seed=1, workers=2, progress=False)
    assert not summary.failed and not list(out.rglob(".*.tmp"))
    for r in (json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()):
        al = Alignment.load(out / r["alignment"])
        assert sf.info(str(out / r["path"])).frames == r["num_samples"]
        assert al.phones[-1].end == pytest.approx(r["num_samples"] / 16000, abs=1e-6)

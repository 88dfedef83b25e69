"""The fit / tokenize / bpe / stream commands end to end, as a user runs them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from speechunits.cli import main
from speechunits.tokens import read_jsonl, read_km, read_parquet
from test_tokenizer import speechlike


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    for i in range(6):
        sub = d / f"spk{i % 2}"
        sub.mkdir(exist_ok=True)
        sf.write(sub / f"utt{i}.wav", speechlike(8000 + 2500 * i, i), 16000)
    return d


@pytest.fixture(scope="module")
def tokdir(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "mfcc-k16"
    assert main(["fit", "--encoder", "mfcc", "--k", "16", "--data", str(folder), "--out", str(out),
                 "--seed", "3", "--max-frames", "2000", "--no-progress"]) == 0
    return out


def test_fit_writes_a_tokenizer(tokdir):
    cfg = json.loads((tokdir / "config.json").read_text())
    assert cfg["k"] == 16 and cfg["seed"] == 3 and cfg["sampling"]["max_frames"] == 2000
    assert cfg["quantizer"]["layers"]["0"]["fit_data"]["frames_sampled"] <= 2000


def test_tokenize_records_bad_files_and_goes_on(folder, tokdir, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.wav").write_bytes(b"RIFF" + bytes(50))
    (bad / "empty.flac").write_bytes(b"")
    out = tmp_path / "units.jsonl"
    # exit 1: some inputs failed (the others are written)
    assert main(["tokenize", "--tokenizer", str(tokdir), "--out", str(out), str(folder), str(bad), "--no-progress"]) == 1
    units = read_jsonl(out)
    assert [u.utt_id for u in units] == [f"spk{i % 2}/utt{i}" for i in (0, 2, 4, 1, 3, 5)]
    errors = [json.loads(x) for x in (tmp_path / "units.jsonl.errors.jsonl").read_text().splitlines()]
    assert {e["id"] for e in errors} == {"broken", "empty"}
    assert all(e["reason"] for e in errors)
    assert "2 failed" in capsys.readouterr().err


def test_resume_after_a_kill_gives_the_same_file(folder, tokdir, tmp_path):
    clean = tmp_path / "clean.jsonl"
    main(["tokenize", "--tokenizer", str(tokdir), "--out", str(clean), str(folder), "--no-progress", "--dedup"])
    killed = tmp_path / "killed.jsonl"
    lines = clean.read_text().splitlines(keepends=True)
    killed.write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])  # a kill mid-line
    for side in (".config.json", ".job.json"):  # what a killed job leaves beside its output
        (tmp_path / f"killed.jsonl{side}").write_bytes((tmp_path / f"clean.jsonl{side}").read_bytes())
    main(["tokenize", "--tokenizer", str(tokdir), "--out", str(killed), str(folder), "--no-progress", "--dedup"])
    assert killed.read_text() == clean.read_text()


def test_formats_and_shards(folder, tokdir, tmp_path):
    main(["tokenize", "--tokenizer", str(tokdir), "--out", str(tmp_path / "u.parquet"), str(folder), "--no-progress"])
    main(["tokenize", "--tokenizer", str(tokdir), "--out", str(tmp_path / "u.km"), str(folder), "--no-progress",
          "--nshard", "2", "--rank", "0"])
    main(["tokenize", "--tokenizer", str(tokdir), "--out", str(tmp_path / "u.km"), str(folder), "--no-progress",
          "--nshard", "2", "--rank", "1"])
    whole = read_parquet(tmp_path / "u.parquet")
    shards = read_km(tmp_path / "u_0_2.km") + read_km(tmp_path / "u_1_2.km")
    assert [u.utt_id for u in shards] == [u.utt_id for u in whole]  # no utterance lost or doubled
    for a, b in zip(whole, shards):
        assert np.array_equal(a.ids, b.ids)
    assert not (tmp_path / "u.parquet.partial.jsonl").exists()


def test_sweep_and_bpe_and_stream(folder, tmp_path, capsys):
    out = tmp_path / "sweep"
    main(["fit", "--encoder", "logmel", "--k", "8", "12", "--data", str(folder), "--out", str(out), "--no-progress"])
    assert sorted(p.name for p in out.iterdir()) == ["layer0_k12", "layer0_k8"]
    tok = out / "layer0_k8"
    units = tmp_path / "u.jsonl"
    main(["tokenize", "--tokenizer", str(tok), "--out", str(units), str(folder), "--no-progress"])
    assert main(["bpe", "--tokenizer", str(tok), "--units", str(units), "--vocab-size", "30"]) == 0
    assert (tok / "tokenizer.json").is_file()
    main(["tokenize", "--tokenizer", str(tok), "--out", str(tmp_path / "b.jsonl"), str(folder), "--bpe", "--no-progress"])
    b = read_jsonl(tmp_path / "b.jsonl")
    assert all(u.is_deduplicated for u in b) and max(int(u.ids.max()) for u in b) >= 8  # merged tokens appear
    capsys.readouterr()
    wav = next(folder.rglob("utt5.wav"))
    assert main(["stream", "--tokenizer", str(tok), str(wav), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["agreement"]["same_length"] and summary["latency"]["num_encodes"] >= 1
    emitted = sum(len(json.loads(x)["units"]) for x in lines[:-1])
    assert emitted == summary["agreement"]["num_offline"]

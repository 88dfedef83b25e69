"""Issue 13, the CLI as users meet it: bad files never stop a batch job, honest exit codes,
resume that cannot mix outputs, output paths checked first, one-line user errors."""

from __future__ import annotations

import json
import os
import shutil
import struct

import numpy as np
import pytest
import soundfile as sf
import torch

from speechunits.cli import main
from speechunits.data.manifest import read_manifest
from speechunits.tokens import read_jsonl, read_parquet
from test_tokenizer import speechlike

GOOD = [f"spk{i % 2}/utt{i}" for i in (0, 2, 1, 3)]  # folder order: spk0 first, then spk1


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    for i in range(4):
        sub = d / f"spk{i % 2}"
        sub.mkdir(exist_ok=True)
        sf.write(sub / f"utt{i}.wav", speechlike(8000 + 2500 * i, i), 16000)
    return d


@pytest.fixture(scope="module")
def tokdir(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "mfcc-k8"
    assert main(["fit", "--encoder", "mfcc", "--k", "8", "--data", str(folder), "--out", str(out),
                 "--max-frames", "2000", "--no-progress"]) == 0
    return out


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(args))
    got = capsys.readouterr()
    return rc, got.out, got.err


def _one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("speechunits: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def _huge_header_wav(path) -> None:
    """8 KB of 8-bit 8 kHz audio whose RIFF and data chunks declare ~4 GB: trusting the header
    means allocating 32 GiB of float32 at 16 kHz."""
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 8000, 1, 8)
    data = b"data" + struct.pack("<I", 0xFFFFFF00) + bytes(range(256)) * 32
    path.write_bytes(b"RIFF" + struct.pack("<I", 0xFFFFFFF0) + b"WAVE" + fmt + data)


def _records(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


# ------------------------------------------------------------------ item 5 (+16): bad files never stop a job
def test_a_header_that_asks_for_32_gib_costs_one_file_in_tokenize_fit_and_eval(folder, tokdir, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(folder, data)
    _huge_header_wav(data / "huge.wav")
    out = tmp_path / "u.jsonl"
    rc, _, err = _cli(capsys, "tokenize", "--tokenizer", str(tokdir), "--out", str(out), str(data), "--no-progress")
    assert rc == 1  # some inputs failed, the others are written
    assert [u.utt_id for u in read_jsonl(out)] == GOOD
    (bad,) = _records(tmp_path / "u.jsonl.errors.jsonl")
    assert bad["id"] == "huge" and bad["path"].endswith("huge.wav") and bad["reason"]
    assert "1 failed" in err

    tok = tmp_path / "tok"
    rc, _, err = _cli(capsys, "fit", "--encoder", "mfcc", "--k", "4", "--data", str(data), "--out", str(tok),
                      "--max-frames", "500", "--no-progress")
    assert rc == 1 and (tok / "config.json").is_file()
    assert [r["id"] for r in _records(tmp_path / "tok.errors.jsonl")] == ["huge"]
    assert json.loads((tok / "config.json").read_text())["training_data"]["failed"] == 1
    assert "huge" in err

    ev = tmp_path / "eval"
    rc, _, err = _cli(capsys, "eval", "--tokenizer", str(tokdir), "--data", str(data), "--out", str(ev),
                      "--skip", "abx", "robustness", "speed", "--no-plots", "--no-progress")
    assert rc == 1 and (ev / "metrics.json").is_file()
    assert [r["id"] for r in _records(ev / "errors.jsonl")] == ["huge"]
    assert json.loads((ev / "metrics.json").read_text())["datasets"][0]["data"]["utterances"] == 4


def test_any_exception_of_one_file_is_recorded_and_the_batch_goes_on(folder, tokdir, tmp_path, capsys, monkeypatch):
    """A decoder that crashes on one file and an encoder that runs out of memory on another
    (injected): each costs only its own utterance, with its reason; the rest are unchanged."""
    from speechunits.data import loader
    from speechunits.encoders.spectral import SpectralEncoder

    clean = tmp_path / "clean.jsonl"
    assert main(["tokenize", "--tokenizer", str(tokdir), "--out", str(clean), str(folder), "--no-progress"]) == 0
    data = tmp_path / "data"
    shutil.copytree(folder, data)
    sf.write(data / "crash.wav", speechlike(9000, 7), 16000)
    sf.write(data / "oom.wav", speechlike(12345, 8), 16000)

    real_load, real_encode = loader.load, SpectralEncoder.encode

    def crashing_load(path, *a, **k):
        if str(path).endswith("crash.wav"):
            raise RuntimeError("decoder crashed")
        return real_load(path, *a, **k)

    def oom_encode(self, waves, *a, **k):
        if any(len(w) == 12345 for w in waves):
            raise MemoryError("cannot allocate")
        return real_encode(self, waves, *a, **k)

    monkeypatch.setattr(loader, "load", crashing_load)
    monkeypatch.setattr(SpectralEncoder, "encode", oom_encode)

    out = tmp_path / "u.jsonl"
    rc, _, _ = _cli(capsys, "tokenize", "--tokenizer", str(tokdir), "--out", str(out), str(data), "--no-progress")
    assert rc == 1
    assert read_jsonl(out) == read_jsonl(clean)  # the batch holding oom.wav was redone one by one
    reasons = {r["id"]: r["reason"] for r in _records(tmp_path / "u.jsonl.errors.jsonl")}
    assert "RuntimeError: decoder crashed" in reasons["crash"]
    assert "out of memory while encoding" in reasons["oom"]

    tok = tmp_path / "tok"
    rc, _, _ = _cli(capsys, "fit", "--encoder", "mfcc", "--k", "4", "--data", str(data), "--out", str(tok),
                    "--no-progress")
    assert rc == 1 and (tok / "config.json").is_file()
    assert sorted(r["id"] for r in _records(tmp_path / "tok.errors.jsonl")) == ["crash", "oom"]

    ev = tmp_path / "eval"
    rc, _, _ = _cli(capsys, "eval", "--tokenizer", str(tokdir), "--data", str(data), "--out", str(ev),
                    "--skip", "abx", "robustness", "speed", "--no-plots", "--no-progress")
    assert rc == 1
    assert sorted(r["id"] for r in _records(ev / "errors.jsonl")) == ["crash", "oom"]


def test_eval_train_data_failures_are_recorded_and_skipped(folder, tokdir, tmp_path, capsys, monkeypatch):
    """--train-data: an encoder failure on one training utterance (out of memory, injected) and an
    undecodable training file cost only themselves, as in the evaluated data: the n-gram LM is
    trained on the rest, both are listed in errors.jsonl and metrics.json, the exit is 1."""
    from speechunits.encoders.spectral import SpectralEncoder

    train = tmp_path / "train"
    shutil.copytree(folder, train)
    sf.write(train / "oom.wav", speechlike(12345, 8), 16000)
    (train / "bad.wav").write_bytes(b"RIFF" + bytes(40))
    real_encode = SpectralEncoder.encode

    def oom_encode(self, waves, *a, **k):
        if any(len(w) == 12345 for w in waves):
            raise MemoryError("cannot allocate")
        return real_encode(self, waves, *a, **k)

    monkeypatch.setattr(SpectralEncoder, "encode", oom_encode)
    ev = tmp_path / "eval"
    rc, _, err = _cli(capsys, "eval", "--tokenizer", str(tokdir), "--data", str(folder), "--train-data", str(train),
                      "--out", str(ev), "--skip", "abx", "robustness", "speed", "--no-plots", "--no-progress")
    assert rc == 1 and "2 utterance(s) failed" in err
    reasons = {r["id"]: r["reason"] for r in _records(ev / "errors.jsonl")}
    assert sorted(reasons) == ["bad", "oom"] and "out of memory while encoding" in reasons["oom"]
    assert {r["dataset"] for r in _records(ev / "errors.jsonl")} == {"train (--train-data)"}
    m = json.loads((ev / "metrics.json").read_text())
    assert m["lm_train_data"]["utterances"] == 4 and len(m["lm_train_data"]["failed"]) == 2
    assert m["datasets"][0]["data"]["failed"] == []
    (sec,) = m["datasets"][0]["layers"].values()
    assert sec["ngram"]["train_utterances"] == 4 and "4 utterances of" in sec["ngram"]["split"]


def test_eval_train_units_refuses_bpe_tokens(folder, tokdir, tmp_path, capsys):
    """--train-units of BPE tokens (written by `tokenize --bpe`) would train the n-gram LM on ids
    that are not this codebook's: a one-line error, whether the file's job record says so or
    (without it) its ids go past k; de-duplicated units of the same tokenizer are accepted."""
    tok = tmp_path / "tok"
    shutil.copytree(tokdir, tok)
    dedup = tmp_path / "dedup.jsonl"
    assert main(["tokenize", "--tokenizer", str(tok), "--out", str(dedup), "--dedup", str(folder),
                 "--no-progress"]) == 0
    assert main(["bpe", "--tokenizer", str(tok), "--units", str(dedup), "--vocab-size", "24"]) == 0
    bpe = tmp_path / "bpe.jsonl"
    assert main(["tokenize", "--tokenizer", str(tok), "--out", str(bpe), "--bpe", str(folder), "--no-progress"]) == 0
    assert max(int(u.ids.max()) for u in read_jsonl(bpe)) >= 8  # merges: ids past the k = 8 codes
    common = ["eval", "--tokenizer", str(tok), "--data", str(folder), "--skip", "abx", "robustness", "speed",
              "alignment", "--no-plots", "--no-progress"]
    rc, _, err = _cli(capsys, *common, "--train-units", str(bpe), "--out", str(tmp_path / "e1"))
    assert rc == 2
    _one_line_error(err, str(bpe), "holds BPE tokens")
    (tmp_path / "bpe.jsonl.job.json").unlink()  # no job record: the ids past k still tell
    rc, _, err = _cli(capsys, *common, "--train-units", str(bpe), "--out", str(tmp_path / "e2"))
    assert rc == 2
    _one_line_error(err, str(bpe), "holds BPE tokens")
    rc, _, _ = _cli(capsys, *common, "--train-units", str(dedup), "--out", str(tmp_path / "e3"))
    assert rc == 0
    (sec,) = json.loads((tmp_path / "e3" / "metrics.json").read_text())["datasets"][0]["layers"].values()
    assert sec["ngram"]["train_utterances"] == 4


def test_tokenize_exits_1_when_every_file_failed(tokdir, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.wav").write_bytes(b"RIFF" + bytes(40))
    (bad / "b.flac").write_bytes(b"fLaC" + bytes(40))
    rc, _, err = _cli(capsys, "tokenize", "--tokenizer", str(tokdir), "--out", str(tmp_path / "u.jsonl"), str(bad),
                      "--no-progress")
    assert rc == 1 and "2 failed" in err
    assert read_jsonl(tmp_path / "u.jsonl") == []
    rc, _, err = _cli(capsys, "fit", "--encoder", "mfcc", "--k", "4", "--data", str(bad), "--out", str(tmp_path / "t"),
                      "--no-progress")
    assert rc == 1 and "no utterance could be encoded (2 failed)" in err and not (tmp_path / "t").exists()
    assert sorted(r["id"] for r in _records(tmp_path / "t.errors.jsonl")) == ["a", "b"]


@pytest.mark.parametrize("verb", [["tokenize"], ["fit"], ["eval"], ["perturb"], ["corpus", "synth"], ["corpus", "words"], ["probe", "train"], ["probe", "eval"], ["benchmark"],
                                  ["ssl", "targets"], ["ssl", "pretrain"], ["ssl", "ctc"], ["ssl", "spin"]])
def test_help_states_the_exit_status(verb, capsys):
    with pytest.raises(SystemExit) as e:
        main([*verb, "--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0" in text and "1 some" in text and "2 usage or user error" in text


# ------------------------------------------------------------------ item 10: warnings shown and saved
def test_silent_and_clipped_audio_is_counted_and_listed_beside_the_errors(folder, tmp_path, tokdir, capsys):
    data = tmp_path / "data"
    shutil.copytree(folder, data)
    sf.write(data / "silent.wav", np.zeros(8000, np.float32), 16000)
    sf.write(data / "loud.wav", np.clip(8 * speechlike(8000, 5), -1, 1), 16000)
    out = tmp_path / "u.jsonl"
    rc, text, _ = _cli(capsys, "tokenize", "--tokenizer", str(tokdir), "--out", str(out), str(data), "--no-progress")
    assert rc == 0 and len(read_jsonl(out)) == 6  # warned, still tokenized
    warned = {r["id"]: r["warning"] for r in _records(tmp_path / "u.jsonl.warnings.jsonl")}
    assert set(warned) == {"silent", "loud"}
    assert "all silent" in warned["silent"] and "clipped" in warned["loud"]
    assert "2 audio warning(s)" in text and "u.jsonl.warnings.jsonl" in text

    tok = tmp_path / "tok"
    rc, text, _ = _cli(capsys, "fit", "--encoder", "mfcc", "--k", "4", "--data", str(data), "--out", str(tok),
                       "--no-progress")
    assert rc == 0 and "2 audio warning(s)" in text
    assert {r["id"] for r in _records(tmp_path / "tok.warnings.jsonl")} == {"silent", "loud"}


# ------------------------------------------------------------------ item 11: resume never mixes outputs
def test_a_rerun_with_other_options_or_inputs_is_refused_saying_what_differs(folder, tokdir, tmp_path, capsys):
    out = tmp_path / "u.jsonl"
    base = ["tokenize", "--tokenizer", str(tokdir), "--out", str(out), "--no-progress"]
    assert main([*base, str(folder)]) == 0
    before = out.read_bytes()
    rc, _, err = _cli(capsys, *base, str(folder), "--dedup")
    assert rc == 2
    _one_line_error(err, str(out), "dedup: False before, True now", "--no-resume")
    extra = tmp_path / "extra.wav"
    sf.write(extra, speechlike(9000, 9), 16000)
    rc, _, err = _cli(capsys, *base, str(folder), str(extra))
    assert rc == 2
    _one_line_error(err, "utterances: 4 before, 5 now")
    assert out.read_bytes() == before  # nothing appended, nothing mixed
    assert main([*base, str(folder)]) == 0 and out.read_bytes() == before  # same job: all done already

    assert main([*base, str(folder), "--dedup", "--no-resume"]) == 0  # replaced as a whole
    assert all(u.is_deduplicated for u in read_jsonl(out)) and len(read_jsonl(out)) == 4
    assert json.loads((tmp_path / "u.jsonl.job.json").read_text())["dedup"] is True


def test_parquet_is_not_replaced_by_another_job_without_no_resume(folder, tokdir, tmp_path, capsys):
    out = tmp_path / "u.parquet"
    base = ["tokenize", "--tokenizer", str(tokdir), "--out", str(out), "--no-progress"]
    assert main([*base, str(folder)]) == 0
    before = out.read_bytes()
    extra = tmp_path / "extra.wav"
    sf.write(extra, speechlike(9000, 9), 16000)
    rc, _, err = _cli(capsys, *base, str(folder), str(extra))
    assert rc == 2 and "utterances: 4 before, 5 now" in err and out.read_bytes() == before
    assert main([*base, str(folder), str(extra), "--no-resume"]) == 0
    assert [u.utt_id for u in read_parquet(out)] == [*GOOD, "extra"]


def test_no_resume_keeps_the_old_output_until_the_new_one_is_complete(folder, tokdir, tmp_path, monkeypatch):
    from speechunits.tokenizer import Tokenizer

    out = tmp_path / "u.jsonl"
    base = ["tokenize", "--tokenizer", str(tokdir), "--out", str(out), "--no-progress", str(folder)]
    assert main(base) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real, calls = Tokenizer.postprocess, []

    def killed_midway(self, *a, **k):  # the job is interrupted after one utterance
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Tokenizer, "postprocess", killed_midway)
    try:
        rc = main([*base, "--dedup", "--no-resume"])
    except KeyboardInterrupt:  # main reports it as exit 130; never let it end the test session
        rc = 130
    assert rc == 130
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if not p.name.endswith(".partial.jsonl")
             and not p.name.startswith("u.jsonl.partial")}
    assert after == before  # the old output, its config and job record: untouched
    assert main(base) == 0 and out.read_bytes() == before["u.jsonl"]


# ------------------------------------------------------------------ item 12: bad outputs refused first
def test_out_equal_to_an_input_or_a_folder_is_refused_before_writing(folder, tokdir, tmp_path, capsys):
    man = tmp_path / "list.jsonl"
    man.write_text("".join(json.dumps({"id": u.id, "path": str(u.path)}) + "\n" for u in read_manifest(folder)))
    before = man.read_bytes()
    rc, _, err = _cli(capsys, "tokenize", "--tokenizer", str(tokdir), "--out", str(man), str(man), "--no-progress")
    assert rc == 2
    _one_line_error(err, "would overwrite the input")
    assert man.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["list.jsonl"]

    d = tmp_path / "outdir"
    d.mkdir()
    rc, _, err = _cli(capsys, "tokenize", "--tokenizer", str(tokdir), "--out", str(d), str(folder), "--no-progress")
    assert rc == 2
    _one_line_error(err, "is a folder")
    assert list(d.iterdir()) == []


def _unwritable_folder(tmp_path):
    """A folder this process cannot create files in: a chmod 555 one, or for root (whom modes do
    not stop) sysfs, where nobody can."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    for cand in (d, "/sys"):
        try:
            with open(os.path.join(cand, ".probe"), "w"):
                pass
            os.unlink(os.path.join(cand, ".probe"))
        except OSError:
            return cand
    pytest.skip("no folder here refuses writes to this user")


def test_an_unwritable_output_folder_is_named_not_a_temp_file(folder, tokdir, tmp_path, capsys):
    ro = _unwritable_folder(tmp_path)
    try:
        rc, _, err = _cli(capsys, "tokenize", "--tokenizer", str(tokdir), "--out", os.path.join(ro, "u.jsonl"),
                          str(folder), "--no-progress")
    finally:
        (tmp_path / "ro").chmod(0o755)
    assert rc == 2
    _one_line_error(err, f"{ro}: cannot write the output here")
    assert ".tmp" not in err and not os.path.exists(os.path.join(ro, "u.jsonl"))


def test_bpe_without_a_bpe_is_refused_and_leaves_no_empty_outputs(folder, tokdir, tmp_path, capsys):
    out = tmp_path / "o" / "u.parquet"
    rc, _, err = _cli(capsys, "tokenize", "--tokenizer", str(tokdir), "--out", str(out), str(folder), "--bpe",
                      "--no-progress")
    assert rc == 2
    _one_line_error(err, "has no BPE")
    assert not out.parent.exists()  # not even the folder


# ------------------------------------------------------------------ item 14: perturb paths and names
def test_perturb_relative_out_and_ids_sharing_a_base_name(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    rows = []
    for i, uid in enumerate(["spk1/x", "spk2/x", "../escape"]):
        p = src / f"f{i}.wav"
        sf.write(p, speechlike(8000, i), 16000)
        rows.append({"id": uid, "path": p.name})
    (src / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.chdir(tmp_path)
    assert main(["perturb", "--data", "src/data.jsonl", "--distortion", "white_10dB", "--out", "pout"]) == 0
    utts = read_manifest(tmp_path / "pout" / "white_10dB.jsonl")
    assert [u.id for u in utts] == ["spk1/x", "spk2/x", "../escape"]
    assert all(u.path.is_file() for u in utts)
    assert len({u.path for u in utts}) == 3 and utts[0].path.read_bytes() != utts[1].path.read_bytes()
    folder = (tmp_path / "pout" / "white_10dB").resolve()
    assert all(folder in u.path.resolve().parents for u in utts)  # no id leaves the folder


# ------------------------------------------------------------------ item 17: one-line user errors
def test_user_errors_are_one_line_without_traceback(folder, tokdir, tmp_path, capsys):
    rc, _, err = _cli(capsys, "tokenize", "--tokenizer", str(tmp_path / "nope"), "--out", str(tmp_path / "u.jsonl"),
                      str(folder), "--no-progress")
    assert rc == 2
    _one_line_error(err, "nope")
    bad_manifest = tmp_path / "bad.jsonl"
    bad_manifest.write_text('{"id": "a", "path": "a.wav"}\nnot json\n')
    rc, _, err = _cli(capsys, "tokenize", "--tokenizer", str(tokdir), "--out", str(tmp_path / "u.jsonl"),
                      str(bad_manifest), "--no-progress")
    assert rc == 2
    _one_line_error(err, "bad.jsonl")
    rc, _, err = _cli(capsys, "tokenize", "--tokenizer", str(tokdir), "--out", str(tmp_path / "u.csv"), str(folder),
                      "--no-progress")
    assert rc == 2
    _one_line_error(err, "unknown output format '.csv'")
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF" + bytes(60))
    rc, _, err = _cli(capsys, "stream", "--tokenizer", str(tokdir), str(broken))
    assert rc == 2
    _one_line_error(err, "broken.wav")
    units = tmp_path / "nocfg.jsonl"
    units.write_text('{"id": "a", "units": [1]}\n')
    rc, _, err = _cli(capsys, "bpe", "--tokenizer", str(tokdir), "--units", str(units), "--vocab-size", "10")
    assert rc == 2
    _one_line_error(err, "nocfg.jsonl", "missing tokenizer config")


def test_debug_flag_or_env_shows_the_traceback(folder, tmp_path, monkeypatch):
    from speechunits.tokenizer import TokenizerError

    args = ["tokenize", "--tokenizer", str(tmp_path / "nope"), "--out", str(tmp_path / "u.jsonl"), str(folder)]
    with pytest.raises(TokenizerError):
        main([*args, "--debug"])
    monkeypatch.setenv("SPEECHUNITS_DEBUG", "1")
    with pytest.raises(TokenizerError):
        main(args)


def test_devices_are_checked_on_every_path_mfcc_included(folder, tokdir, tmp_path, capsys):
    rc, _, err = _cli(capsys, "fit", "--encoder", "mfcc", "--data", str(folder), "--out", str(tmp_path / "t"),
                      "--device", "cdua")
    assert rc == 2
    _one_line_error(err, "'cdua'")
    assert not (tmp_path / "t").exists()
    if torch.cuda.is_available():
        return  # a GPU machine: cuda is a valid device here
    for args in (["fit", "--encoder", "mfcc", "--data", str(folder), "--out", str(tmp_path / "t")],
                 ["tokenize", "--tokenizer", str(tokdir), "--out", str(tmp_path / "u.jsonl"), str(folder)],
                 ["lm", "eval", "--model", str(tmp_path), "--units", str(tmp_path / "u.jsonl")]):
        rc, _, err = _cli(capsys, *args, "--device", "cuda")
        assert rc == 2
        _one_line_error(err, "CUDA is not available")
    from speechunits.encoders import load_encoder

    with pytest.raises(ValueError, match="CUDA is not available"):
        load_encoder("mfcc", device="cuda")  # the library path too, not torch's AssertionError


# ------------------------------------------------------------------ item 18: shards
@pytest.mark.parametrize("value", ["0", "-2"])
def test_nshard_below_one_is_a_usage_error(value, folder, tokdir, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["tokenize", "--tokenizer", str(tokdir), "--out", str(tmp_path / "u.jsonl"), str(folder),
              "--nshard", value])
    assert e.value.code == 2 and "must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "u.jsonl").exists()


def test_shard_counts_from_the_environment_are_checked(folder, tokdir, tmp_path, capsys, monkeypatch):
    base = ["tokenize", "--tokenizer", str(tokdir), "--out", str(tmp_path / "u.jsonl"), str(folder)]
    monkeypatch.setenv("WORLD_SIZE", "0")
    rc, _, err = _cli(capsys, *base)
    assert rc == 2
    _one_line_error(err, "$WORLD_SIZE=0 must be at least 1")
    monkeypatch.delenv("WORLD_SIZE")
    rc, _, err = _cli(capsys, *base, "--nshard", "2", "--rank", "2")
    assert rc == 2
    _one_line_error(err, "rank 2 (from --rank) must be in 0..1")

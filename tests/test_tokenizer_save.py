"""Saving a tokenizer over an existing one swaps the folder whole (issue 13, item 13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from speechunits.encoders import load_encoder
from speechunits.fit import fit_tokenizer
from speechunits.tokenizer import Tokenizer, TokenizerError
from test_encoders_hf import build


def _waves() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [(0.1 * rng.standard_normal(9000 + 700 * i)).astype(np.float32) for i in range(3)]


def test_refit_into_an_existing_tokenizer_leaves_nothing_of_the_old_one(tmp_path):
    build("hubert", "group").save_pretrained(tmp_path / "model")
    hf = fit_tokenizer(load_encoder(str(tmp_path / "model")), _waves(), layers=[1], k=4, seed=0, n_init=1)
    d = tmp_path / "tok"
    hf.save_pretrained(d)
    assert (d / "encoder").is_dir()
    mfcc = fit_tokenizer(load_encoder("mfcc"), _waves(), layers=[0], k=5, seed=0, n_init=1)
    mfcc.save_pretrained(d)  # the re-fit: another encoder, into the same folder
    assert not (d / "encoder").exists()  # no stale encoder/
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "quantizer.safetensors"]
    assert json.loads((d / "config.json").read_text())["encoder"]["name"] == "mfcc"
    assert Tokenizer.from_pretrained(d).vocab_sizes == [5]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "tok"]  # no temporary folder left
    assert oct(d.stat().st_mode & 0o777) == oct(0o777 & ~_umask())  # a plain folder's mode


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_save_killed_before_the_config_is_written_keeps_the_old_tokenizer(tmp_path):
    old = fit_tokenizer(load_encoder("mfcc"), _waves(), layers=[0], k=4, seed=0, n_init=1)
    new = fit_tokenizer(load_encoder("mfcc"), _waves(), layers=[0], k=6, seed=1, n_init=1)
    d, other = tmp_path / "tok", tmp_path / "new"
    old.save_pretrained(d)
    new.save_pretrained(other)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    # kill -9 after the new codebooks are written, just as config.json is about to be
    script = textwrap.dedent(f"""
        import os, signal
        import speechunits.tokenizer as t
        def killed(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        t.atomic_write_text = killed
        t.Tokenizer.from_pretrained({str(other)!r}).save_pretrained({str(d)!r})
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == -9, out.stderr
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before  # the old tokenizer, untouched
    w = _waves()[0]
    assert np.array_equal(Tokenizer.from_pretrained(d).encode(w).ids, old.encode(w).ids)


def test_a_failed_save_cleans_up_and_keeps_the_old_tokenizer(tmp_path, monkeypatch):
    import speechunits.tokenizer as t

    old = fit_tokenizer(load_encoder("mfcc"), _waves(), layers=[0], k=4, seed=0, n_init=1)
    d = tmp_path / "tok"
    old.save_pretrained(d)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(t, "atomic_write_text", fail)
    with pytest.raises(OSError, match="disk full"):
        old.save_pretrained(d)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]
    assert Tokenizer.from_pretrained(d).vocab_sizes == [4]


def test_saving_over_a_folder_that_is_not_a_tokenizer_is_refused(tmp_path):
    tok = fit_tokenizer(load_encoder("mfcc"), _waves(), layers=[0], k=4, seed=0, n_init=1)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    with pytest.raises(TokenizerError, match="mine: exists and is not a speechunits tokenizer folder"):
        tok.save_pretrained(tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "years of work"
    (tmp_path / "file").write_text("x")
    with pytest.raises(TokenizerError, match="exists and is not a folder"):
        tok.save_pretrained(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    tok.save_pretrained(tmp_path / "empty")  # an empty folder is fine
    assert Tokenizer.from_pretrained(tmp_path / "empty").vocab_sizes == [4]


def test_bpe_keeps_the_files_a_user_put_in_the_tokenizer_folder(tmp_path):
    """`speechunits bpe` re-saves the folder whole; a model card and a licence put there stay
    (byte for byte, same mode), while hidden files, links and our own files that the new save
    does not write (a re-fit without BPE) are not carried over."""
    import soundfile as sf

    from speechunits.cli import main

    d = tmp_path / "tok"
    fit_tokenizer(load_encoder("mfcc"), _waves(), layers=[0], k=4, seed=0, n_init=1).save_pretrained(d)
    (d / "README.md").write_text("# my tokenizer\nmodel card\n")
    (d / "LICENSE-whisper.txt").write_bytes(b"MIT License\n\x00\xff")
    os.chmod(d / "LICENSE-whisper.txt", 0o640)
    (d / ".notes").write_text("hidden")
    (d / "card-link.md").symlink_to(d / "README.md")
    audio = tmp_path / "audio"
    audio.mkdir()
    for i, w in enumerate(_waves()):
        sf.write(audio / f"u{i}.wav", w, 16000)
    units = tmp_path / "units.jsonl"
    assert main(["tokenize", "--tokenizer", str(d), "--out", str(units), str(audio), "--no-progress"]) == 0
    assert main(["bpe", "--tokenizer", str(d), "--units", str(units), "--vocab-size", "8"]) == 0
    assert (d / "README.md").read_text() == "# my tokenizer\nmodel card\n"
    assert (d / "LICENSE-whisper.txt").read_bytes() == b"MIT License\n\x00\xff"
    assert (d / "LICENSE-whisper.txt").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in d.iterdir()) == ["LICENSE-whisper.txt", "README.md", "bpe_config.json",
                                                   "config.json", "quantizer.safetensors", "tokenizer.json"]
    assert Tokenizer.from_pretrained(d).bpe.vocab_size == 8
    # a re-fit without BPE: the user's files stay, the old BPE files go
    fit_tokenizer(load_encoder("mfcc"), _waves(), layers=[0], k=5, seed=0, n_init=1).save_pretrained(d)
    assert sorted(p.name for p in d.iterdir()) == ["LICENSE-whisper.txt", "README.md", "config.json",
                                                   "quantizer.safetensors"]
    assert Tokenizer.from_pretrained(d).bpe is None

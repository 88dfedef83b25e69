"""The bundled default tokenizer loads by name, verifies, and tokenizes."""

from __future__ import annotations

import numpy as np

from speechunits.tokenizer import DEFAULT_DIR, Tokenizer
from test_tokenizer import speechlike


def test_default_loads_and_encodes():
    tok = Tokenizer.from_pretrained("default")  # checks every file's sha256
    assert tok.vocab_sizes == [500] and tok.encoder.name == "mfcc" and tok.frame_rate == 50.0
    assert tok.info["recipe"]["name"] == "interim-mfcc-default"
    assert tok.info["training_data"]["utterances"] > 100
    units = tok.encode(speechlike(32000, 0))
    assert units.ids.shape == (99,) and units.ids.max() < 500
    assert (DEFAULT_DIR / "README.md").read_text().startswith("# speechunits default tokenizer")


def test_tokenize_without_naming_a_tokenizer(tmp_path):
    import soundfile as sf

    from speechunits.cli import main
    from speechunits.tokens import read_jsonl

    sf.write(tmp_path / "a.wav", speechlike(16000, 1), 16000)
    assert main(["tokenize", "--out", str(tmp_path / "u.jsonl"), str(tmp_path / "a.wav"), "--no-progress"]) == 0
    (u,) = read_jsonl(tmp_path / "u.jsonl")
    assert np.array_equal(u.ids, Tokenizer.from_pretrained("default").encode(tmp_path / "a.wav").ids)

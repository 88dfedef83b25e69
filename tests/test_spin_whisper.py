"""Spin and DC-Spin on a Whisper encoder: the position guard, training, the tokenizer it writes."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from speechunits.encoders.whisper import WhisperDims, WhisperEncoder, WhisperEncoderModel
from speechunits.quantizers.spin_backbone import WhisperBackbone

from test_spin import harmonic_corpus


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _tiny(seed: int = 0, positional_only: bool = False) -> WhisperEncoder:
    torch.manual_seed(seed)
    model = WhisperEncoderModel(WhisperDims(d_model=32, layers=3, heads=2, ffn=64))
    if positional_only:  # the stem outputs gelu(0) = 0: every frame is its position and nothing else
        with torch.no_grad():
            for conv in (model.conv1, model.conv2):
                conv.weight.zero_()
                conv.bias.zero_()
    return WhisperEncoder(model, name="tiny-whisper")


def test_position_guard_gives_each_view_its_own_positions():
    """On an encoder that sees only positions, unguarded views are identical (a free 100 % agreement
    for any codebook); the guard takes that shortcut away."""
    rng = np.random.default_rng(0)
    a = [(0.1 * rng.standard_normal(16000)).astype(np.float32) for _ in range(2)]
    b = [(0.1 * rng.standard_normal(16000)).astype(np.float32) for _ in range(2)]
    enc = _tiny(positional_only=True)
    off = WhisperBackbone(enc, position_guard=False)
    h_a, h_b = off.pair_features(a, b, np.random.default_rng(1), torch.device("cpu"))
    assert h_a.shape == h_b.shape == (100, 32)
    assert torch.allclose(h_a, h_b)
    on = WhisperBackbone(enc, position_guard=True)
    g_a, g_b = on.pair_features(a, b, np.random.default_rng(1), torch.device("cpu"))
    assert (g_a - g_b).abs().amax(dim=1).min() > 1e-3  # no frame of A equals its partner in B
    again = on.pair_features(a, b, np.random.default_rng(1), torch.device("cpu"))
    assert torch.equal(again[0], g_a)  # seeded


def test_backbone_trains_only_the_layers_below_the_spin_layer():
    bb = WhisperBackbone(_tiny(), layer=2)
    params = bb.freeze(1)
    assert sorted({n.split(".")[1] for n in params}) == ["1"]  # layer 2 = index 1
    with pytest.raises(ValueError):
        WhisperBackbone(_tiny(), layer=0)


@pytest.mark.slow
def test_dcspin_on_whisper_trains_and_writes_a_tokenizer(tmp_path):
    from speechunits.cli.ssl import _save_spin_tokenizer
    from speechunits.quantizers.dcspin import load_spin, train_spin
    from speechunits.tokenizer import Tokenizer

    manifest = harmonic_corpus(tmp_path / "corpus", n=6, seconds=2.0)
    enc_dir = _tiny(3).save_encoder_dir(tmp_path / "whisper", dtype=torch.float32)
    before = {k: v.clone() for k, v in WhisperEncoder.from_pretrained(enc_dir).model.state_dict().items()}
    r = train_spin(enc_dir, manifest, tmp_path / "run", codebooks=(16, 32), steps=4, batch_size=2,
                   crop_seconds=1.0, trainable_layers=1, checkpoint_every=2, progress=False, lr=1e-3)
    assert r.encoder_dir is not None and r.config["position_guard"] is True and r.config["spin_layer"] == 3
    assert all(np.isfinite(h["loss"]) for h in r.history) and len(r.history) == 4
    enc, q = load_spin(tmp_path / "run")
    after = enc.model.state_dict()
    changed = {k.split(".")[1] for k in before if k.startswith("layers.") and not torch.equal(before[k], after[k])}
    assert changed == {"2"}  # only the top layer trained
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("layers."))
    tok = Tokenizer.from_pretrained(_save_spin_tokenizer(str(tmp_path / "run")))
    units = tok.encode(np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1)
    assert units.ids.shape == (50,) and units.ids.max() < 16


def test_ctc_on_whisper_is_a_clear_error(tmp_path):
    from speechunits.encoders.pretrain import ctc_finetune

    enc_dir = _tiny(4).save_encoder_dir(tmp_path / "whisper", dtype=torch.float32)
    with pytest.raises(ValueError, match="not supported yet"):
        ctc_finetune(enc_dir, tmp_path / "none.jsonl", tmp_path / "out", tier="phones", progress=False)

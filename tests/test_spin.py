"""Spin and DC-Spin: Sinkhorn targets, the swapped-prediction loss, the quantizer, training.

Tiny encoders (hidden 32, 2 layers) on audio made here (the synthetic corpus when espeak-ng and
MBROLA exist, else vowel-like harmonic signals); torch on one thread.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from speechunits.encoders.pretrain import build_model, save_encoder
from speechunits.quantizers.dcspin import load_spin, perturbed_view, train_spin
from speechunits.quantizers.spin import SpinHead, SpinHeads, SpinQuantizer, sinkhorn


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def harmonic_corpus(root: Path, n: int = 8, seconds: float = 2.5) -> Path:
    """Voiced vowel-like tones with gliding F0 and formant-shaped spectra, 4 voices."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        t = np.arange(int(seconds * 16000)) / 16000
        f0 = [100.0, 130.0, 190.0, 230.0][i % 4] * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
        phase = 2 * np.pi * np.cumsum(f0) / 16000
        f1 = 300 + 400 * (1 + np.sin(2 * np.pi * rng.uniform(1, 3) * t)) / 2
        x = sum(np.sin(h * phase) / (1 + ((h * f0 - f1) / 100) ** 2) for h in range(1, 30))
        sf.write(root / "wav" / f"h{i}.wav", (0.2 * x / np.abs(x).max()).astype(np.float32), 16000)
        lines.append(json.dumps({"id": f"h{i}", "path": f"wav/h{i}.wav"}))
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    return root / "train.jsonl"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from speechunits.data.corpus import missing_tools, synthesize_corpus

    root = tmp_path_factory.mktemp("spin_corpus")
    if not missing_tools():
        synthesize_corpus(root, minutes=0.7, seed=1, progress=False)
        return root / "train.jsonl"
    return harmonic_corpus(root)


@pytest.fixture(scope="module")
def base_encoder(tmp_path_factory) -> Path:
    return save_encoder(build_model("tiny", seed=4).eval(), tmp_path_factory.mktemp("enc") / "encoder")


@pytest.fixture(scope="module")
def dcspin(corpus, base_encoder, tmp_path_factory):
    out = tmp_path_factory.mktemp("dcspin") / "run"
    r = train_spin(base_encoder, corpus, out, codebooks=(16, 64), steps=12, trainable_layers=1, batch_size=3,
                   crop_seconds=1.5, lr=3e-3, warmup=2, mask_prob=0.01, seed=0, progress=False, checkpoint_every=0)
    return r


# -- Sinkhorn ------------------------------------------------------------------------------------


def test_sinkhorn_rows_sum_to_one_and_codes_are_balanced():
    torch.manual_seed(0)
    unit = torch.nn.functional.normalize
    cos = unit(torch.randn(300, 16), dim=1) @ unit(torch.randn(12, 16), dim=1).T
    q = sinkhorn(cos, epsilon=0.05, iterations=3)
    assert q.shape == (300, 12) and bool((q >= 0).all())
    assert torch.allclose(q.sum(1), torch.ones(300), atol=1e-5)  # each frame: one unit of mass
    cols = q.sum(0)
    assert float(cols.std() / cols.mean()) < 0.25  # roughly N/K per code after 3 iterations...
    qc = sinkhorn(cos, epsilon=0.05, iterations=200)
    assert torch.allclose(qc.sum(0), torch.full((12,), 300 / 12), rtol=1e-3)  # ... exactly N/K when converged
    assert torch.equal(q, sinkhorn(cos, epsilon=0.05, iterations=3))  # deterministic
    # epsilon 0.02 on cosines in [-1, 1] (exp(50) without the max shift) stays finite
    sharp = sinkhorn(cos, epsilon=0.02, iterations=3)
    assert bool(torch.isfinite(sharp).all()) and torch.allclose(sharp.sum(1), torch.ones(300), atol=1e-5)
    # with equal logits everything is uniform
    assert torch.allclose(sinkhorn(torch.zeros(10, 5)), torch.full((10, 5), 0.2))


def test_swapped_prediction_loss_decreases_on_a_tiny_model():
    torch.manual_seed(0)
    frames = torch.randn(256, 8)
    enc = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.GELU(), torch.nn.Linear(32, 32))
    heads = SpinHeads(32, [10], proj_dim=16)
    opt = torch.optim.Adam(list(enc.parameters()) + list(heads.parameters()), lr=1e-2)
    losses = []
    for step in range(15):
        g = torch.Generator().manual_seed(step)
        a = enc(frames + 0.1 * torch.randn(frames.shape, generator=g))  # two "views" of the same frames
        b = enc(frames + 0.1 * torch.randn(frames.shape, generator=g))
        out = heads(a, b)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        heads.normalize_codebooks()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < losses[0] - 0.3
    assert torch.allclose(heads.primary.codebook.weight.norm(dim=1), torch.ones(10), atol=1e-5)


def test_hard_targets_and_view_shapes():
    head = SpinHead(8, 5, proj_dim=4, hard_targets=True)
    out = head(torch.randn(20, 8), torch.randn(20, 8))
    assert math.isfinite(float(out["loss"].detach())) and 1.0 <= float(out["code_perplexity"]) <= 5.0
    with pytest.raises(ValueError, match="same frames"):
        head(torch.randn(20, 8), torch.randn(19, 8))


# -- the quantizer ---------------------------------------------------------------------------------


def test_assignment_equals_brute_force_argmax_cosine():
    torch.manual_seed(1)
    head = SpinHead(24, 50, proj_dim=12)
    q = head.quantizer(layer=2)
    feats = torch.randn(400, 1, 24)
    ids = q.assign(feats)
    assert ids.shape == (400, 1) and ids.dtype == torch.long
    w, b = head.proj.weight.detach().double(), head.proj.bias.detach().double()
    c = head.codebook.weight.detach().double()
    for t in range(400):
        z = w @ feats[t, 0].double() + b
        cos = [float(z @ c[j] / (z.norm() * c[j].norm())) for j in range(50)]
        assert ids[t, 0] == int(np.argmax(cos))
    assert q.assign(torch.zeros(0, 1, 24)).shape == (0, 1)
    with pytest.raises(ValueError, match="expected features"):
        q.assign(torch.randn(5, 1, 23))


def test_quantizer_contract_roundtrip(tmp_path):
    head = SpinHead(16, 32, proj_dim=8)
    q = head.quantizer(layer=6, info={"method": "spin"})
    assert q.layers == [6] and q.ks == [32]
    cfg = q.config()
    assert cfg["type"] == "spin" and json.loads(json.dumps(cfg)) == cfg
    q2 = SpinQuantizer.from_state(cfg, q.state_dict(), source="test")
    x = torch.randn(50, 1, 16)
    assert torch.equal(q.assign(x), q2.assign(x)) and q2.config() == cfg
    q.save_pretrained(tmp_path)
    assert torch.equal(SpinQuantizer.from_pretrained(tmp_path).assign(x), q.assign(x))
    assert (tmp_path / "config.json").is_file() and (tmp_path / "model.safetensors").is_file()
    with pytest.raises(ValueError, match="expected 'spin'"):
        SpinQuantizer.from_state({**cfg, "type": "kmeans"}, q.state_dict())
    with pytest.raises(ValueError, match="codebook"):
        SpinQuantizer.from_state({**cfg, "ks": [31]}, q.state_dict())
    stack = torch.randn(50, 3, 16)  # a whole layer stack: pick layer 6 by position
    assert torch.equal(q.assign(stack, input_layers=[2, 6, 9]), q.assign(stack[:, 1:2]))


# -- training ------------------------------------------------------------------------------------


def test_perturbed_view_keeps_length(corpus):
    from speechunits.encoders.pretrain.data import load_audio_set

    w = load_audio_set(corpus, progress=False).waves[0][:24000]
    y = perturbed_view(w, seed=3)
    assert y.shape == w.shape and not np.allclose(y, w) and np.abs(y).max() <= 1.0
    assert np.array_equal(y, perturbed_view(w, seed=3))


def test_dcspin_trains_two_codebooks_with_both_losses(dcspin):
    h = dcspin.history
    assert len(h) == 12
    for rec in h:
        assert rec["loss"] == pytest.approx(rec["loss_0"] + rec["loss_1"], rel=1e-5)
    assert np.mean([r["loss"] for r in h[-4:]]) < np.mean([r["loss"] for r in h[:4]])
    meta = json.loads((dcspin.out_dir / "spin_heads.json").read_text())
    assert meta["codebooks"] == [16, 64]
    enc, q = load_spin(dcspin.out_dir)
    assert q.ks == [16] and q.layers == [2] and q.config()["method"] == "dc-spin"
    _, aux = load_spin(dcspin.out_dir, codebook=1)
    assert aux.ks == [64]
    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    feats = enc.encode([wave], q.layers)[0]
    ids = q.assign(feats)
    assert ids.shape == (49, 1) and int(ids.max()) < 16


def test_frozen_layers_do_not_change(dcspin, base_encoder):
    from safetensors.torch import load_file

    before = load_file(str(base_encoder / "model.safetensors"))
    after = load_file(str(dcspin.encoder_dir / "model.safetensors"))
    assert before.keys() == after.keys()
    # the top layer trains, and with masking on the mask vector too (as in Spin); nothing else
    top = [k for k in before if k.startswith("encoder.layers.1.")] + ["masked_spec_embed"]
    frozen = [k for k in before if k not in top]
    assert len(frozen) > len(top) and all(torch.equal(before[k], after[k]) for k in frozen)
    assert all(not torch.equal(before[k], after[k]) for k in top if k.endswith("weight") or k == "masked_spec_embed")
    saved = json.loads((dcspin.encoder_dir / "preprocessor_config.json").read_text())
    assert saved["do_normalize"] is True


def test_load_spin_refuses_another_encoder(dcspin, base_encoder, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(dcspin.out_dir, run)
    shutil.copy(base_encoder / "model.safetensors", run / "encoder" / "model.safetensors")
    with pytest.raises(ValueError, match="weights differ"):
        load_spin(run)


def test_spin_resume_is_exact(corpus, base_encoder, tmp_path):
    from safetensors.torch import load_file

    kw = dict(codebooks=(8,), steps=4, trainable_layers=2, batch_size=2, crop_seconds=1.0, lr=1e-3, warmup=1,
              seed=7, progress=False, checkpoint_every=0)
    a = train_spin(base_encoder, corpus, tmp_path / "a", **kw)
    assert train_spin(base_encoder, corpus, tmp_path / "b", stop_at=2, **kw).encoder_dir is None
    b = train_spin(base_encoder, corpus, tmp_path / "b", **kw)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    qa, qb = (load_file(str(tmp_path / r / "quantizer" / "model.safetensors")) for r in "ab")
    assert all(torch.equal(qa[k], qb[k]) for k in qa)


def test_tokenizer_can_hold_a_spin_quantizer(dcspin):
    tokenizer = pytest.importorskip("speechunits.tokenizer", reason="tokenizer needs the k-means quantizers")
    enc, q = load_spin(dcspin.out_dir)
    tok = tokenizer.Tokenizer(enc, q)
    wave = np.random.default_rng(1).standard_normal(20000).astype(np.float32) * 0.1
    ids = tok.frame_units([wave])[0]
    assert ids.shape == (enc.num_frames(20000),) and tok.vocab_sizes == [16]
    assert np.array_equal(ids, q.assign(enc.encode([wave], q.layers)[0])[:, 0].numpy())

"""Tokenizer: fit, encode, post-process, save/load with hashes, every HF family, streaming."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from transformers import Wav2Vec2FeatureExtractor

from speechunits.encoders import load_encoder
from speechunits.fit import fit_tokenizers
from speechunits.fit import fit_tokenizer
from speechunits.tokenizer import Tokenizer, TokenizerError
from speechunits.tokens import UnitBPE, expand
from test_encoders_hf import VARIANTS, build


def speechlike(n: int, seed: int) -> np.ndarray:
    """Harmonic tones whose F0 and vowel-like spectral tilt change every 100 ms."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    out = np.zeros(n)
    for start in range(0, n, 1600):
        seg = slice(start, start + 1600)
        f0 = rng.uniform(90, 250)
        for h in range(1, 12):
            out[seg] += rng.uniform(0, 1) / h * np.sin(2 * np.pi * f0 * h * t[seg])
    out += 0.01 * rng.standard_normal(n)
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


@pytest.fixture(scope="module")
def waves():
    return [speechlike(n, s) for s, n in enumerate([16000, 23456, 9000, 30000, 12000])]


@pytest.fixture(scope="module")
def mfcc_tok(waves):
    return fit_tokenizer(load_encoder("mfcc"), waves, layers=[0], k=16, seed=0)


def test_encode_gives_frame_units_with_provenance(mfcc_tok, waves):
    u = mfcc_tok.encode(waves[1], utt_id="x")
    assert u.ids.shape == (mfcc_tok.encoder.num_frames(23456),) and u.ids.dtype == np.int64
    assert u.frame_rate == 50.0 and u.durations is None and u.utt_id == "x"
    assert 0 <= u.ids.min() and u.ids.max() < 16
    assert u.provenance["k"] == 16 and u.provenance["encoder"] == "mfcc"
    # The same audio at another rate goes through load(): resampled, same length in frames.
    import soxr

    u44 = mfcc_tok.encode(soxr.resample(waves[1], 16000, 44100), sample_rate=44100)
    assert abs(len(u44.ids) - len(u.ids)) <= 1


def test_dedup_and_bpe_postprocessing(mfcc_tok, waves):
    frame = mfcc_tok.encode(waves[3])
    d = mfcc_tok.encode(waves[3], dedup=True)
    assert d.is_deduplicated and np.array_equal(expand(d).ids, frame.ids)
    assert not np.any(d.ids[1:] == d.ids[:-1])
    bpe = UnitBPE.train([mfcc_tok.encode(w).ids for w in waves], vocab_size=40, k=16)
    tok = Tokenizer(mfcc_tok.encoder, mfcc_tok.quantizer, bpe=bpe)
    b = tok.encode(waves[3])
    assert b.durations.sum() == len(frame.ids)  # BPE tokens keep the frames they cover
    assert np.array_equal(bpe.decode(b.ids), d.ids)
    assert len(b.ids) < len(d.ids)
    with pytest.raises(TokenizerError, match="no BPE"):
        mfcc_tok.encode(waves[0], bpe=True)


def test_save_load_round_trip_and_config(mfcc_tok, waves, tmp_path):
    mfcc_tok.save_pretrained(tmp_path / "tok")
    cfg = json.loads((tmp_path / "tok" / "config.json").read_text())
    assert cfg["type"] == "speechunits-tokenizer" and cfg["k"] == 16 and cfg["layers"] == [0]
    assert cfg["seed"] == 0 and cfg["training_data"]["utterances"] == 5
    assert cfg["encoder"]["type"] == "spectral" and set(cfg["files"]) == {"quantizer.safetensors"}
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "tok", moved)  # another machine: only the directory travels
    again = Tokenizer.from_pretrained(moved)
    for w in waves:
        assert np.array_equal(again.encode(w).ids, mfcc_tok.encode(w).ids)


def test_corrupt_tokenizer_directories_are_refused(mfcc_tok, tmp_path):
    d = tmp_path / "tok"
    mfcc_tok.save_pretrained(d)
    q = d / "quantizer.safetensors"
    data = bytearray(q.read_bytes())
    data[-5] ^= 0xFF
    q.write_bytes(bytes(data))
    with pytest.raises(TokenizerError, match="quantizer.safetensors: sha256 mismatch"):
        Tokenizer.from_pretrained(d)
    q.unlink()
    with pytest.raises(TokenizerError, match="quantizer.safetensors: missing"):
        Tokenizer.from_pretrained(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="not valid JSON"):
        Tokenizer.from_pretrained(d)
    (d / "config.json").write_text('{"type": "something-else"}')
    with pytest.raises(TokenizerError, match="not a speechunits tokenizer"):
        Tokenizer.from_pretrained(d)
    with pytest.raises(TokenizerError, match="no tokenizer config"):
        Tokenizer.from_pretrained(tmp_path / "nothing")


def test_one_pass_sweep_and_joint_layers(waves):
    class Counting:
        def __init__(self, enc):
            self.enc, self.calls = enc, 0

        def __getattr__(self, name):
            return getattr(self.enc, name)

        def encode(self, ws, layers):
            self.calls += 1
            return self.enc.encode(ws, layers)

    enc = Counting(load_encoder("logmel"))
    toks = fit_tokenizers(enc, waves, layers=[0], ks=[8, 12, 16], seed=1)
    assert [t.vocab_sizes for t in toks] == [[8], [12], [16]]
    assert enc.calls == len(waves)  # one encoder pass for the whole sweep


@pytest.mark.parametrize("family,norm", VARIANTS)
def test_hf_family_tokenizer_batched_equals_unbatched_and_reloads(family, norm, waves, tmp_path):
    model_dir = tmp_path / "model"
    build(family, norm).save_pretrained(model_dir)
    Wav2Vec2FeatureExtractor(do_normalize=norm == "layer").save_pretrained(model_dir)
    enc = load_encoder(str(model_dir), batch_size=4)
    tok = fit_tokenizers(enc, waves, layers=[1, -1], ks=[8], seed=0)[0]
    assert tok.layers == [1, 3]
    batched = tok.encode_batch(waves)
    for w, b in zip(waves, batched):
        single = tok.encode(w)
        assert b.ids.shape == (enc.num_frames(len(w)), 2)
        assert np.array_equal(b.ids, single.ids)
    tok.save_pretrained(tmp_path / "tok")  # a local model directory is stored with the tokenizer
    assert (tmp_path / "tok" / "encoder" / "config.json").is_file()
    shutil.rmtree(model_dir)
    again = Tokenizer.from_pretrained(tmp_path / "tok")
    for w, b in zip(waves, batched):
        assert np.array_equal(again.encode(w).ids, b.ids)


def test_referenced_encoder_with_changed_weights_is_refused(waves, tmp_path):
    model_dir = tmp_path / "model"
    build("hubert", "group").save_pretrained(model_dir)
    tok = fit_tokenizers(load_encoder(str(model_dir)), waves[:2], layers=[2], ks=[4], seed=0)[0]
    tok.save_pretrained(tmp_path / "tok", store_encoder=False)
    # A path in a tokenizer config is only followed when the caller names the encoder.
    with pytest.raises(TokenizerError, match="'encoder.name' is .*a path.*encoder=PATH"):
        Tokenizer.from_pretrained(tmp_path / "tok")
    assert Tokenizer.from_pretrained(tmp_path / "tok", encoder=model_dir).layers == [2]
    other = build("hubert", "group", seed=1)
    other.save_pretrained(model_dir)  # same name, other weights
    with pytest.raises(TokenizerError, match="weights differ"):
        Tokenizer.from_pretrained(tmp_path / "tok", encoder=model_dir)


def test_stream_matches_offline(mfcc_tok, waves):
    wave = waves[3]
    s = mfcc_tok.stream(chunk_s=1.0, shift_s=0.4)
    parts = [s.push(wave[i : i + 3000]) for i in range(0, len(wave), 3000)] + [s.flush()]
    streamed = np.concatenate(parts)
    assert np.array_equal(streamed, mfcc_tok.encode(wave).ids)


def test_layer_validation(mfcc_tok):
    from speechunits.quantizers import MultiLayerKMeans

    with pytest.raises(ValueError, match="out of range"):
        Tokenizer(mfcc_tok.encoder, MultiLayerKMeans({3: mfcc_tok.quantizer.quantizers[0]}))
    with pytest.raises(ValueError, match="same layer twice"):
        fit_tokenizers(load_encoder("mfcc"), [np.zeros(8000, np.float32)], layers=[0, -1], ks=[2])

"""Feature dumps: content, bad files, fairseq sharding, and resumption after a kill."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

from speechunits.audio import load as load_audio
from speechunits.encoders import FeatureShard, SpectralEncoder, dump_features, load_encoder, shard_range

LENGTHS = [16000, 9000, 12345, 401, 30000, 7000, 20000, 5000, 11111, 16001, 8000]


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Wav files of varied lengths plus a corrupt file and one too short for a frame."""
    d = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    items = []
    for i, n in enumerate(LENGTHS):
        path = d / f"u{i:02d}.wav"
        sf.write(path, (rng.standard_normal(n) * 0.1).astype(np.float32), 16000, subtype="FLOAT")
        items.append((f"utt{i:02d}", path))
    (d / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    sf.write(d / "short.wav", np.full(300, 0.1, dtype=np.float32), 16000)
    items.insert(3, ("bad", d / "bad.wav"))
    items.insert(8, ("short", d / "short.wav"))
    return items


@pytest.fixture(scope="module")
def hubert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny-hubert")
    torch.manual_seed(0)
    cfg = HubertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
    )
    HubertModel(cfg).save_pretrained(d)
    Wav2Vec2FeatureExtractor(do_normalize=False).save_pretrained(d)
    return load_encoder(d)


def read_all(out, layer, rank=0, nshard=1):
    shard = FeatureShard(out, layer, rank, nshard)
    return [(uid, np.array(x)) for uid, x in shard]


def test_dump_content_and_errors(corpus, hubert, tmp_path):
    summary = dump_features(hubert, corpus, [0, -1], tmp_path, progress=False)
    assert summary["complete"] and summary["utts"] == len(LENGTHS) and summary["errors"] == 2
    good = [(uid, p) for uid, p in corpus if uid not in ("bad", "short")]
    expected = hubert.encode([load_audio(p) for _, p in good], layers=[0, 2])
    for col, layer in enumerate([0, 2]):
        got = read_all(tmp_path, layer)
        assert [uid for uid, _ in got] == [uid for uid, _ in good]
        for (uid, x), ref in zip(got, expected):
            assert x.dtype == np.float16 and x.shape == (ref.shape[0], 32)
            np.testing.assert_allclose(x.astype(np.float32), ref[:, col].numpy(), rtol=1e-3, atol=1e-3)
    shard = FeatureShard(tmp_path, -1)
    assert shard.layer == 2 and shard.complete and len(shard) == len(good)
    assert isinstance(shard.data, np.memmap)  # features stay on disk until read
    errors = {e["id"]: e["reason"] for e in shard.errors()}
    assert set(errors) == {"bad", "short"} and "too short" in errors["short"]
    meta = json.loads((tmp_path / "0_1.meta.json").read_text())
    assert meta["layers"] == [0, 2] and meta["encoder"]["model_type"] == "hubert"


@pytest.mark.parametrize("kill_after,flush_every", [(7, 3), (1, 4), (12, 5)])
def test_resume_after_kill_equals_uninterrupted(corpus, tmp_path, kill_after, flush_every):
    enc = SpectralEncoder("mfcc")
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    dump_features(enc, corpus, [0], ref_dir, flush_every=flush_every, progress=False)

    def kill(pos, uid):
        if pos + 1 == kill_after:
            raise Killed

    with pytest.raises(Killed):
        dump_features(enc, corpus, [0], run_dir, flush_every=flush_every, chunk_size=3, progress=False, on_utterance=kill)
    partial = FeatureShard(run_dir, 0) if (run_dir / "0_1.progress.json").exists() else None
    committed = (kill_after // flush_every) * flush_every
    if partial is not None:  # a reader sees only committed utterances while the shard is unfinished
        assert not partial.complete and partial.progress["next"] == committed
    for name in ("layer0_0_1.f16", "0_1.len", "0_1.ids", "0_1.errors.jsonl"):
        with open(run_dir / name, "ab") as f:  # a torn write after the last commit
            f.write(b"\x01garbage")
    seen = []
    dump_features(enc, corpus, [0], run_dir, flush_every=flush_every, progress=False, on_utterance=lambda p, u: seen.append(p))
    assert seen == list(range(committed, len(corpus)))  # resumed at the last commit
    for name in ("layer0_0_1.f16", "0_1.len", "0_1.ids", "0_1.errors.jsonl"):
        assert (run_dir / name).read_bytes() == (ref_dir / name).read_bytes(), name
    # A finished shard is left alone.
    dump_features(enc, corpus, [0], run_dir, progress=False, on_utterance=lambda p, u: pytest.fail("redone"))


def test_shards_partition_the_manifest(corpus, tmp_path):
    enc = SpectralEncoder("logmel")
    nshard = 3
    ids = []
    for rank in range(nshard):
        dump_features(enc, corpus, [0], tmp_path, nshard=nshard, rank=rank, progress=False)
        ids += [uid for uid, _ in FeatureShard(tmp_path, 0, rank, nshard)]
        start, end = shard_range(len(corpus), nshard, rank)
        assert (start, end) == (round(len(corpus) / nshard * rank), round(len(corpus) / nshard * (rank + 1)))
    assert ids == [uid for uid, _ in corpus if uid not in ("bad", "short")]
    with pytest.raises(ValueError, match="rank"):
        shard_range(10, 2, 2)


def test_resume_refuses_a_different_job(corpus, tmp_path):
    dump_features(SpectralEncoder("mfcc"), corpus[:4], [0], tmp_path, progress=False)
    with pytest.raises(ValueError, match="different encoder"):
        dump_features(SpectralEncoder("mfcc", cmvn=True), corpus[:4], [0], tmp_path, progress=False)
    with pytest.raises(ValueError, match="different encoder"):
        dump_features(SpectralEncoder("mfcc"), corpus[:5], [0], tmp_path, progress=False)


def test_empty_shard_and_utterance_objects(tmp_path, corpus):
    class Utt:
        def __init__(self, uid, path):
            self.id, self.path = uid, path

    items = [Utt(uid, p) for uid, p in corpus[:2]]
    dump_features(SpectralEncoder("mfcc"), items, [0], tmp_path, nshard=4, rank=0, progress=False)
    shard = FeatureShard(tmp_path, 0, 0, 4)  # 2 items over 4 shards: rank 0 gets none
    assert shard.complete and len(shard) == 0 and list(shard) == []
    with pytest.raises(FileNotFoundError):
        FeatureShard(tmp_path, 0, 1, 4)

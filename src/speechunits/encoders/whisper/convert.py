"""Whisper checkpoints in three formats, to one: a transformers directory (config + safetensors).

* **transformers** (``openai/whisper-*`` snapshots, or a converted directory): ``config.json`` of
  model type ``whisper`` and ``model.safetensors`` (``pytorch_model.bin`` is read with
  ``torch.load(weights_only=True)``).
* **OpenAI** ``.pt`` (``whisper.load_model``'s files): ``{"dims": ..., "model_state_dict": ...}``,
  read with ``torch.load(weights_only=True)``: tensors and plain numbers only, nothing executed.
* **CTranslate2** directory (``model.bin``, faster-whisper's format): parsed by
  :mod:`~speechunits.encoders.whisper.ct2`; fused q/k/v projections are split back (the key
  projection has no bias: its slice of the fused bias must be zero and is checked).

Each reader returns ``(config, state)``: a transformers ``WhisperConfig`` dict and the state dict of
``WhisperForConditionalGeneration`` (``model.encoder.*``, ``model.decoder.*``, ``proj_out.weight``)
in float32, so that any of them can be written with :func:`save_hf_dir` and read back by all of
transformers, this package and a test that compares them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from speechunits.encoders.whisper.ct2 import CT2Model, read_ct2

__all__ = [
    "WhisperFormatError",
    "detect_format",
    "encoder_state",
    "is_converted",
    "read_any",
    "read_ct2_dir",
    "read_hf_dir",
    "read_openai",
    "save_hf_dir",
]


class WhisperFormatError(ValueError):
    """A Whisper checkpoint that cannot be read or does not have the expected tensors."""


def detect_format(path: str | os.PathLike) -> str | None:
    """``"hf"``, ``"openai"`` or ``"ct2"`` for a Whisper checkpoint path, or None when it is none of them."""
    p = Path(path)
    if p.is_file() and p.suffix in (".pt", ".pth"):
        return "openai"
    if p.is_dir():
        if (p / "model.bin").is_file() and not (p / "pytorch_model.bin").exists():
            cfg = _json(p / "config.json") if (p / "config.json").is_file() else {}
            if cfg.get("model_type") != "whisper":
                return "ct2"
        if (p / "config.json").is_file() and _json(p / "config.json").get("model_type") == "whisper":
            return "hf"
    return None


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WhisperFormatError(f"{path}: not a readable JSON file: {e}") from None
    if not isinstance(data, dict):
        raise WhisperFormatError(f"{path}: expected a JSON object")
    return data


def _hf_config(*, n_mels: int, d_model: int, enc_layers: int, enc_heads: int, enc_ffn: int, dec_layers: int,
               dec_heads: int, dec_ffn: int, vocab: int, audio_ctx: int, text_ctx: int, tokens: dict) -> dict:
    multilingual = vocab >= 51865
    eot = tokens.get("<|endoftext|>", 50257 if multilingual else 50256)
    sot = tokens.get("<|startoftranscript|>", eot + 1)
    if sot >= vocab:  # not a real Whisper vocabulary (a test model): placeholders inside it
        eot, sot = vocab - 2, vocab - 1
    return {
        "model_type": "whisper",
        "architectures": ["WhisperForConditionalGeneration"],
        "vocab_size": vocab,
        "num_mel_bins": n_mels,
        "d_model": d_model,
        "encoder_layers": enc_layers,
        "encoder_attention_heads": enc_heads,
        "encoder_ffn_dim": enc_ffn,
        "decoder_layers": dec_layers,
        "decoder_attention_heads": dec_heads,
        "decoder_ffn_dim": dec_ffn,
        "max_source_positions": audio_ctx,
        "max_target_positions": text_ctx,
        "activation_function": "gelu",
        "scale_embedding": False,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "decoder_start_token_id": sot,
    }


# -- transformers ---------------------------------------------------------------------------


def read_hf_dir(path: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """A transformers Whisper directory (any size): its config and float32 state dict."""
    p = Path(path)
    cfg = _json(p / "config.json")
    if cfg.get("model_type") != "whisper":
        raise WhisperFormatError(f"{p / 'config.json'}: model_type is {cfg.get('model_type')!r}, not 'whisper'")
    shards = sorted(p.glob("*.safetensors"))
    state: dict[str, torch.Tensor] = {}
    if shards:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        for f in shards:
            try:
                state.update(load_file(str(f)))
            except (SafetensorError, OSError) as e:
                raise WhisperFormatError(f"{f}: not a readable safetensors file: {e}") from None
    elif (p / "pytorch_model.bin").is_file():
        try:
            state = torch.load(p / "pytorch_model.bin", map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises many kinds for a bad or unsafe file
            raise WhisperFormatError(f"{p / 'pytorch_model.bin'}: not loadable with weights_only=True: {e}") from None
    else:
        raise WhisperFormatError(f"{p}: no *.safetensors or pytorch_model.bin weights")
    return cfg, {k: v.float() for k, v in state.items()}


def encoder_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder's tensors under transformers' ``WhisperEncoder`` names (prefix removed)."""
    for prefix in ("model.encoder.", "encoder.", ""):
        if f"{prefix}conv1.weight" in state:
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)
                    and not k[len(prefix):].startswith(("decoder.", "model.", "encoder.", "proj_out"))}
    raise WhisperFormatError("no Whisper encoder tensors (conv1.weight) in this state dict")


# -- OpenAI ---------------------------------------------------------------------------------


def read_openai(path: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """An OpenAI ``whisper`` ``.pt`` checkpoint, loaded with ``weights_only=True``."""
    p = Path(path)
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise WhisperFormatError(f"{p}: not loadable with weights_only=True: {e}") from None
    if not isinstance(ckpt, dict) or "dims" not in ckpt or "model_state_dict" not in ckpt:
        raise WhisperFormatError(f"{p}: not an OpenAI Whisper checkpoint (needs 'dims' and 'model_state_dict')")
    d, sd = ckpt["dims"], ckpt["model_state_dict"]

    def ffn(side: str, state: int) -> int:  # 4 x width in every OpenAI model; read it anyway
        w = sd.get(f"{side}.blocks.0.mlp.0.weight")
        return int(w.shape[0]) if w is not None else 4 * state

    cfg = _hf_config(n_mels=d["n_mels"], d_model=d["n_audio_state"], enc_layers=d["n_audio_layer"],
                     enc_heads=d["n_audio_head"], enc_ffn=ffn("encoder", d["n_audio_state"]),
                     dec_layers=d["n_text_layer"], dec_heads=d["n_text_head"],
                     dec_ffn=ffn("decoder", d["n_text_state"]), vocab=d["n_vocab"],
                     audio_ctx=d["n_audio_ctx"], text_ctx=d["n_text_ctx"], tokens={})
    out: dict[str, torch.Tensor] = {}

    def block(src: str, dst: str, cross: bool) -> None:
        for a, b in (("attn", "self_attn"),) + ((("cross_attn", "encoder_attn"),) if cross else ()):
            for o, h in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj"), ("out", "out_proj")):
                out[f"{dst}.{b}.{h}.weight"] = sd[f"{src}.{a}.{o}.weight"]
                if o != "key":
                    out[f"{dst}.{b}.{h}.bias"] = sd[f"{src}.{a}.{o}.bias"]
            for w in ("weight", "bias"):
                out[f"{dst}.{b}_layer_norm.{w}"] = sd[f"{src}.{a}_ln.{w}"]
        for w in ("weight", "bias"):
            out[f"{dst}.fc1.{w}"] = sd[f"{src}.mlp.0.{w}"]
            out[f"{dst}.fc2.{w}"] = sd[f"{src}.mlp.2.{w}"]
            out[f"{dst}.final_layer_norm.{w}"] = sd[f"{src}.mlp_ln.{w}"]

    try:
        for w in ("weight", "bias"):
            out[f"model.encoder.conv1.{w}"] = sd[f"encoder.conv1.{w}"]
            out[f"model.encoder.conv2.{w}"] = sd[f"encoder.conv2.{w}"]
            out[f"model.encoder.layer_norm.{w}"] = sd[f"encoder.ln_post.{w}"]
            out[f"model.decoder.layer_norm.{w}"] = sd[f"decoder.ln.{w}"]
        from speechunits.encoders.whisper.model import sinusoids

        out["model.encoder.embed_positions.weight"] = sd.get(
            "encoder.positional_embedding", sinusoids(d["n_audio_ctx"], d["n_audio_state"]))
        out["model.decoder.embed_positions.weight"] = sd["decoder.positional_embedding"]
        out["model.decoder.embed_tokens.weight"] = sd["decoder.token_embedding.weight"]
        out["proj_out.weight"] = sd["decoder.token_embedding.weight"]
        for i in range(d["n_audio_layer"]):
            block(f"encoder.blocks.{i}", f"model.encoder.layers.{i}", cross=False)
        for i in range(d["n_text_layer"]):
            block(f"decoder.blocks.{i}", f"model.decoder.layers.{i}", cross=True)
    except KeyError as e:
        raise WhisperFormatError(f"{p}: tensor {e.args[0]} missing from model_state_dict") from None
    return cfg, {k: v.float() for k, v in out.items()}


# -- CTranslate2 ----------------------------------------------------------------------------


def _vocab_ids(p: Path) -> dict:
    """Special token ids from the directory's ``vocabulary.txt`` / ``vocabulary.json`` when present."""
    tokens: list[str] = []
    if (p / "vocabulary.json").is_file():
        tokens = json.loads((p / "vocabulary.json").read_text())
    elif (p / "vocabulary.txt").is_file():
        tokens = (p / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    wanted = ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>")
    return {t: i for i, t in enumerate(tokens) if t in wanted}


def read_ct2_dir(path: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """A CTranslate2 Whisper directory (``model.bin``, spec ``WhisperSpec``)."""
    p = Path(path)
    m = read_ct2(p)
    if m.spec != "WhisperSpec":
        raise WhisperFormatError(f"{p / 'model.bin'}: spec {m.spec!r} is not WhisperSpec")
    return _from_ct2(m, _vocab_ids(p), str(p / "model.bin"))


def _from_ct2(m: CT2Model, tokens: dict, source: str) -> tuple[dict, dict[str, torch.Tensor]]:
    def t(name: str) -> torch.Tensor:
        try:
            return torch.from_numpy(np.ascontiguousarray(m.get(name)))
        except KeyError:
            raise WhisperFormatError(f"{source}: variable {name} missing") from None

    def count(prefix: str) -> int:
        return len({k.split("/")[1] for k in m.variables
                    if k.startswith(prefix + "/layer_") and k.split("/")[1][len("layer_"):].isdigit()})

    out: dict[str, torch.Tensor] = {}

    def linear(src: str, dst: str, bias: bool = True) -> None:
        out[f"{dst}.weight"] = t(f"{src}/weight")
        if bias:
            out[f"{dst}.bias"] = t(f"{src}/bias")

    def norm(src: str, dst: str) -> None:
        out[f"{dst}.weight"], out[f"{dst}.bias"] = t(f"{src}/gamma"), t(f"{src}/beta")

    def fused(src: str, dst: str, names: tuple[str, ...]) -> None:
        w, b = t(f"{src}/weight"), t(f"{src}/bias")
        d = w.shape[1]
        for j, h in enumerate(names):
            out[f"{dst}.{h}.weight"] = w[j * d : (j + 1) * d].clone()
            if h == "k_proj":
                if float(b[j * d : (j + 1) * d].abs().max()) > 0:
                    raise WhisperFormatError(f"{source}: {src} has a non-zero key bias, which Whisper never has")
            else:
                out[f"{dst}.{h}.bias"] = b[j * d : (j + 1) * d].clone()

    def layer(src: str, dst: str, cross: bool) -> None:
        fused(f"{src}/self_attention/linear_0", f"{dst}.self_attn", ("q_proj", "k_proj", "v_proj"))
        linear(f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj")
        norm(f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
        if cross:
            linear(f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj")
            fused(f"{src}/attention/linear_1", f"{dst}.encoder_attn", ("k_proj", "v_proj"))
            linear(f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj")
            norm(f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
        linear(f"{src}/ffn/linear_0", f"{dst}.fc1")
        linear(f"{src}/ffn/linear_1", f"{dst}.fc2")
        norm(f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")

    n_enc, n_dec = count("encoder"), count("decoder")
    linear("encoder/conv1", "model.encoder.conv1")
    linear("encoder/conv2", "model.encoder.conv2")
    out["model.encoder.embed_positions.weight"] = t("encoder/position_encodings/encodings")
    norm("encoder/layer_norm", "model.encoder.layer_norm")
    for i in range(n_enc):
        layer(f"encoder/layer_{i}", f"model.encoder.layers.{i}", cross=False)
    out["model.decoder.embed_tokens.weight"] = t("decoder/embeddings/weight")
    out["model.decoder.embed_positions.weight"] = t("decoder/position_encodings/encodings")
    norm("decoder/layer_norm", "model.decoder.layer_norm")
    for i in range(n_dec):
        layer(f"decoder/layer_{i}", f"model.decoder.layers.{i}", cross=True)
    out["proj_out.weight"] = t("decoder/projection/weight")
    enc_heads = int(m.variables["encoder/num_heads"]) if "encoder/num_heads" in m.variables else None
    dec_heads = int(m.variables["decoder/num_heads"]) if "decoder/num_heads" in m.variables else None
    d_model = out["model.encoder.conv1.weight"].shape[0]
    cfg = _hf_config(
        n_mels=out["model.encoder.conv1.weight"].shape[1], d_model=d_model, enc_layers=n_enc,
        enc_heads=enc_heads or d_model // 64, enc_ffn=out["model.encoder.layers.0.fc1.weight"].shape[0],
        dec_layers=n_dec, dec_heads=dec_heads or d_model // 64,
        dec_ffn=out["model.decoder.layers.0.fc1.weight"].shape[0],
        vocab=out["model.decoder.embed_tokens.weight"].shape[0],
        audio_ctx=out["model.encoder.embed_positions.weight"].shape[0],
        text_ctx=out["model.decoder.embed_positions.weight"].shape[0], tokens=tokens,
    )
    return cfg, out


def read_any(path: str | os.PathLike) -> tuple[str, dict, dict[str, torch.Tensor]]:
    """``(format, config, state)`` for a Whisper checkpoint in any of the three formats."""
    fmt = detect_format(path)
    if fmt == "hf":
        return (fmt, *read_hf_dir(path))
    if fmt == "openai":
        return (fmt, *read_openai(path))
    if fmt == "ct2":
        return (fmt, *read_ct2_dir(path))
    raise WhisperFormatError(
        f"{path}: not a Whisper checkpoint (a transformers directory with model_type 'whisper', an "
        "OpenAI .pt file, or a CTranslate2 directory with model.bin)"
    )


def is_converted(directory: Path) -> bool:
    """Whether ``directory`` holds a finished :func:`save_hf_dir` output (it is written atomically)."""
    return (directory / "config.json").is_file() and (directory / "model.safetensors").is_file()


def save_hf_dir(directory: str | os.PathLike, config: dict, state: dict[str, torch.Tensor],
                dtype: torch.dtype = torch.float16, extra: dict[str, str] | None = None) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (tied ``proj_out`` left out, as transformers does)."""
    from safetensors.torch import save_file

    from speechunits.data.atomic import replace_dir

    d = Path(directory)
    tensors = {k: v.to(dtype).contiguous() for k, v in state.items() if k != "proj_out.weight"}

    tmp = d.with_name(f".{d.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "config.json").write_text(json.dumps({**config, "torch_dtype": str(dtype).split(".")[-1]}, indent=2) + "\n")
    save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(tmp / "model.safetensors", 0o644)  # safetensors creates it 0600; a plain file's mode
    for name, text in (extra or {}).items():
        (tmp / name).write_text(text)
    return replace_dir(tmp, d)

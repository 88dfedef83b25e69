"""``Tokenizer`` = encoder + quantizer + post-processing (de-duplication, BPE): speech in, units out.

A tokenizer is a directory in the Hugging Face style::

    config.json            everything needed to reproduce the units, plus sha256 of every file
    quantizer.safetensors  the codebook(s)
    tokenizer.json         optional BPE over units (with bpe_config.json)
    encoder/               optional: the encoder's own weights, when stored with the tokenizer

An encoder that is not stored is referenced by name (a spectral recipe, or a Hugging Face model
name or directory) and the sha256 of its weights; loading checks that the weights found are the
ones the tokenizer was fitted with, so the same audio gives the same units on every machine.

Example:
    >>> import numpy as np, tempfile
    >>> from speechunits.tokenizer import Tokenizer
    >>> from speechunits.fit import fit_tokenizer
    >>> from speechunits.encoders import load_encoder
    >>> rng = np.random.default_rng(0)
    >>> waves = [rng.standard_normal(16000).astype("float32") * 0.1 for _ in range(4)]
    >>> tok = fit_tokenizer(load_encoder("mfcc"), waves, layers=[0], k=8, seed=0)
    >>> units = tok.encode(waves[0])
    >>> units.ids.shape, units.frame_rate
    ((49,), 50.0)
    >>> d = tempfile.mkdtemp(); tok.save_pretrained(d)
    >>> bool((Tokenizer.from_pretrained(d).encode(waves[0]).ids == units.ids).all())
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from speechunits import __version__
from speechunits.audio import load
from speechunits.data.atomic import FILE_MODE, atomic_write_text
from speechunits.encoders import Encoder, HFEncoder, SpectralEncoder, load_encoder
from speechunits.quantizers import MultiLayerKMeans
from speechunits.tokens import StreamingTokenizer, UnitBPE, Units, config_hash
from speechunits.tokens import dedup as dedup_units

TOKENIZER_TYPE = "speechunits-tokenizer"
FORMAT_VERSION = 1
QUANTIZER_FILE = "quantizer.safetensors"
ENCODER_DIR = "encoder"
DEFAULT_DIR = Path(__file__).parent / "pretrained" / "default"


# What a tokenizer needs of its quantizer: ``layers``, ``ks``, ``assign(features [T, L, D],
# input_layers=...) -> [T, L]``, ``config()`` with a ``"type"``, ``state_dict()`` and a
# ``from_state`` that ``quantizer_from_state`` dispatches to. k-means and Spin/DC-Spin qualify.
Quantizer = Any


class TokenizerError(ValueError):
    """A tokenizer directory that cannot be used; the message names the file and the reason."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Tokenizer:
    """Encoder + one k-means codebook per chosen layer + optional de-duplication and BPE.

    Units are frame-level ids (``[T]`` for one layer, ``[T, L]`` for several) unless
    de-duplication or BPE is asked for, at construction (the default of ``encode``) or per call.
    """

    def __init__(
        self,
        encoder: Encoder,
        quantizer: Quantizer,
        *,
        dedup: bool = False,
        bpe: UnitBPE | None = None,
        info: dict | None = None,
    ) -> None:
        self.encoder = encoder
        self.quantizer = quantizer
        self.layers = [int(x) for x in quantizer.layers]
        if encoder.resolve_layers(self.layers) != self.layers:  # fail now, not at the first encode
            raise TokenizerError(f"quantizer layers {self.layers} must be absolute layer indices of {encoder.name}")
        self.dedup = bool(dedup)
        self.bpe = bpe
        if bpe is not None and len(self.layers) != 1:
            raise TokenizerError("BPE needs single-layer units")
        self.info = dict(info or {})
        self._bpe_lengths: np.ndarray | None = None

    # -- properties --------------------------------------------------------------------------
    @property
    def frame_rate(self) -> float:
        return float(self.encoder.frame_rate)

    @property
    def vocab_sizes(self) -> list[int]:
        return [int(k) for k in self.quantizer.ks]

    def config(self) -> dict[str, Any]:
        """What reproduces these units: encoder, layers, codebooks, post-processing, data, seed."""
        return {
            "type": TOKENIZER_TYPE,
            "format_version": FORMAT_VERSION,
            "speechunits_version": __version__,
            "encoder": self.encoder.config(),
            "layers": self.layers,
            "frame_rate": self.frame_rate,
            "k": self.vocab_sizes if len(self.layers) > 1 else self.vocab_sizes[0],
            "quantizer": self.quantizer.config(),
            "dedup": self.dedup,
            "bpe": None if self.bpe is None else dict(self.bpe.config),
            **self.info,
        }

    def provenance(self) -> dict[str, Any]:
        """The short summary every ``Units`` made by this tokenizer carries."""
        cfg = self.config()
        enc = cfg["encoder"]
        return {
            "tokenizer": config_hash(cfg),
            "encoder": enc.get("name"),
            "layers": self.layers,
            "k": cfg["k"],
            "dedup": self.dedup,
            "bpe": None if self.bpe is None else self.bpe.vocab_size,
        }

    # -- encoding ----------------------------------------------------------------------------
    def frame_units(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Frame-level ids (``[T]`` or ``[T, L]`` int64) for 16 kHz float32 waves."""
        feats = self.encoder.encode(waves, self.layers)
        out = []
        for f in feats:
            ids = self.quantizer.assign(f, input_layers=self.layers).cpu().numpy().astype(np.int64)
            out.append(ids[:, 0] if ids.shape[1] == 1 else ids)
        return out

    def encode(
        self,
        source: str | os.PathLike | np.ndarray,
        *,
        sample_rate: int = 16000,
        dedup: bool | None = None,
        bpe: bool | None = None,
        utt_id: str | None = None,
    ) -> Units:
        """Units of one file or array (an array is at ``sample_rate``)."""
        return self.encode_batch([source], sample_rate=sample_rate, dedup=dedup, bpe=bpe, utt_ids=[utt_id])[0]

    def encode_batch(
        self,
        sources: Sequence[str | os.PathLike | np.ndarray],
        *,
        sample_rate: int = 16000,
        dedup: bool | None = None,
        bpe: bool | None = None,
        utt_ids: Sequence[str | None] | None = None,
    ) -> list[Units]:
        """Units of several inputs, in order; the encoder batches where that is exact."""
        waves = [load(s, sample_rate=sample_rate) if isinstance(s, np.ndarray) else load(s) for s in sources]
        ids = utt_ids or [None] * len(waves)
        return [self.postprocess(u, dedup=dedup, bpe=bpe, utt_id=i) for u, i in zip(self.frame_units(waves), ids)]

    def postprocess(
        self, frame_ids: np.ndarray, *, dedup: bool | None = None, bpe: bool | None = None, utt_id: str | None = None
    ) -> Units:
        """Frame ids to ``Units``: de-duplicate and apply BPE as asked (BPE implies de-dup)."""
        use_bpe = (self.bpe is not None) if bpe is None else bool(bpe)
        if use_bpe and self.bpe is None:
            raise TokenizerError("this tokenizer has no BPE (train one with `speechunits bpe`)")
        units = Units(frame_ids, frame_rate=self.frame_rate, provenance=self.provenance(), utt_id=utt_id)
        if use_bpe or (self.dedup if dedup is None else dedup):
            units = dedup_units(units)
        if use_bpe:
            units = self._apply_bpe(units)
        return units

    def _apply_bpe(self, units: Units) -> Units:
        """BPE tokens of de-duplicated units; each token's duration is its units' total."""
        assert self.bpe is not None
        tokens = self.bpe.encode(units.ids)
        if self._bpe_lengths is None:
            self._bpe_lengths = np.array(
                [len(self.bpe.decode([t])) for t in range(self.bpe.vocab_size)], dtype=np.int64
            )
        ends = np.cumsum(self._bpe_lengths[tokens])
        frame_ends = np.concatenate([[0], np.cumsum(units.durations)])[ends]
        durations = np.diff(np.concatenate([[0], frame_ends]))
        prov = dict(units.provenance, bpe=self.bpe.vocab_size)
        return Units(tokens, units.frame_rate, durations=durations, provenance=prov, utt_id=units.utt_id)

    def stream(self, chunk_s: float = 1.0, shift_s: float = 0.4, max_context_s: float | None = None) -> StreamingTokenizer:
        """A chunk-wise streaming tokenizer emitting only final frame-level units (see ``tokens.streaming``)."""
        if len(self.layers) != 1:
            raise TokenizerError("streaming emits single-layer units; this tokenizer has several layers")
        return StreamingTokenizer(
            lambda wave: self.frame_units([wave])[0],
            self.encoder.num_frames,
            chunk_s=chunk_s,
            shift_s=shift_s,
            max_context_s=max_context_s,
            sample_rate=self.encoder.sample_rate,
            frame_rate=self.frame_rate,
        )

    # -- artifacts ---------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike, *, store_encoder: bool | None = None) -> Path:
        """Write the tokenizer directory; ``store_encoder`` copies an HF encoder's files into it.

        By default an HF encoder from a local directory that is not in the HF cache is stored
        (a path on this machine means nothing elsewhere); a hub model is referenced.
        """
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        cfg = self.config()
        files: dict[str, str] = {}
        qpath = d / QUANTIZER_FILE
        tmp = d / f".{QUANTIZER_FILE}.tmp"
        save_file({k: v.contiguous().cpu() for k, v in self.quantizer.state_dict().items()}, str(tmp))
        os.chmod(tmp, FILE_MODE)  # safetensors creates it 0600; give it a plain file's mode
        os.replace(tmp, qpath)
        files[QUANTIZER_FILE] = sha256_file(qpath)
        if self.bpe is not None:
            self.bpe.save_pretrained(d)
            for name in ("tokenizer.json", "bpe_config.json"):
                files[name] = sha256_file(d / name)
        if isinstance(self.encoder, HFEncoder):
            if self.quantizer.config().get("type") == "spin":
                store_encoder = True  # Spin fine-tunes the encoder: its weights are part of the tokenizer
            elif store_encoder is None:
                store_encoder = self.encoder.source_dir is not None and "snapshots" not in self.encoder.source_dir.parts
            if store_encoder:
                files.update(self._store_encoder(d))
                cfg["encoder"]["stored"] = ENCODER_DIR
        cfg["files"] = files
        atomic_write_text(d / "config.json", json.dumps(cfg, indent=2, sort_keys=False) + "\n")
        return d

    def _store_encoder(self, d: Path) -> dict[str, str]:
        enc = self.encoder
        assert isinstance(enc, HFEncoder)
        target = d / ENCODER_DIR
        tmp = d / f".{ENCODER_DIR}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if enc.source_dir is not None:
            shutil.copytree(enc.source_dir, tmp, ignore=shutil.ignore_patterns(".*", "*.bin", "*.pt", "*.ckpt"))
        else:
            enc.model.save_pretrained(tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return {f"{ENCODER_DIR}/{p.name}": sha256_file(p) for p in sorted(target.iterdir()) if p.is_file()}

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike = "default", *, device: str | torch.device = "cpu", verify: bool = True
    ) -> "Tokenizer":
        """Load a tokenizer directory (``"default"``: the bundled one), checking every file's hash."""
        d = DEFAULT_DIR if str(directory) == "default" else Path(directory)
        cfg_path = d / "config.json"
        if not cfg_path.is_file():
            hint = " (the bundled default is not built yet; fit one with `speechunits fit`)" if str(directory) == "default" else ""
            raise TokenizerError(f"{cfg_path}: no tokenizer config{hint}")
        try:
            cfg = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as e:
            raise TokenizerError(f"{cfg_path}: not valid JSON ({e})") from None
        if not isinstance(cfg, dict) or cfg.get("type") != TOKENIZER_TYPE:
            raise TokenizerError(f"{cfg_path}: not a speechunits tokenizer (type {cfg.get('type') if isinstance(cfg, dict) else None!r})")
        if int(cfg.get("format_version", 0)) > FORMAT_VERSION:
            raise TokenizerError(f"{cfg_path}: format version {cfg['format_version']} is newer than this speechunits reads ({FORMAT_VERSION})")
        if verify:
            for name, digest in (cfg.get("files") or {}).items():
                p = d / name
                if not p.is_file():
                    raise TokenizerError(f"{p}: missing (listed in {cfg_path})")
                if sha256_file(p) != digest:
                    raise TokenizerError(f"{p}: sha256 mismatch with {cfg_path} (file changed or corrupt)")
        from safetensors.torch import load_file

        qpath = d / QUANTIZER_FILE
        try:
            tensors = load_file(str(qpath))
        except Exception as e:
            raise TokenizerError(f"{qpath}: cannot read codebooks ({e})") from None
        quantizer = quantizer_from_state(cfg.get("quantizer") or {}, tensors, source=qpath, device=device)
        encoder = encoder_from_config(cfg["encoder"], d, device=device, verify=verify)
        bpe = UnitBPE.from_pretrained(d) if cfg.get("bpe") else None
        known = {"type", "format_version", "speechunits_version", "encoder", "layers", "frame_rate", "k",
                 "quantizer", "dedup", "bpe", "files"}
        info = {k: v for k, v in cfg.items() if k not in known}
        return cls(encoder, quantizer, dedup=bool(cfg.get("dedup")), bpe=bpe, info=info)


def quantizer_from_state(config: dict, tensors: dict, *, source: object, device: str | torch.device = "cpu"):
    """The quantizer a tokenizer recorded, by its config's ``type``."""
    kind = config.get("type")
    if kind == "multilayer_kmeans":
        return MultiLayerKMeans.from_state(config, tensors, source=source, device=device)
    if kind == "spin":
        from speechunits.quantizers.spin import SpinQuantizer

        return SpinQuantizer.from_state(config, tensors, source=source, device=device)
    raise TokenizerError(f"{source}: unknown quantizer type {kind!r}")


def encoder_from_config(cfg: dict, base: Path, *, device: str | torch.device = "cpu", verify: bool = True) -> Encoder:
    """Rebuild the encoder a tokenizer recorded: spectral from its recipe, HF from files + hash check."""
    kind = cfg.get("type")
    if kind == "spectral":
        params = {k: cfg[k] for k in ("sample_rate", "frame_rate", "n_mels", "delta_order", "preemphasis", "cmvn") if k in cfg}
        if cfg.get("name") == "mfcc":
            params.update({k: cfg[k] for k in ("n_ceps", "cepstral_lifter") if cfg.get(k) is not None})
        lo, hi = cfg.get("mel_range_hz", [20.0, 0.0])
        params["low_freq"] = lo
        params["window_ms"] = 1000.0 * cfg["window_samples"] / cfg["sample_rate"]
        enc = SpectralEncoder(cfg["name"], device=device, **params)
        mismatch = {k for k in ("dim", "hop_samples", "window_samples", "n_fft") if enc.config().get(k) != cfg.get(k)}
        if mismatch:
            raise TokenizerError(f"{base / 'config.json'}: spectral encoder rebuilt differently ({sorted(mismatch)})")
        return enc
    if kind == "hf":
        src = base / cfg["stored"] if cfg.get("stored") else cfg["name"]
        enc = load_encoder(str(src), device=device, revision=None if cfg.get("stored") else cfg.get("revision"),
                           normalize=cfg.get("normalize"), max_seconds=cfg.get("max_seconds", 30.0),
                           overlap_seconds=cfg.get("overlap_seconds", 4.0))
        if verify and cfg.get("weights_sha256") and enc.weights_sha256() != cfg["weights_sha256"]:
            raise TokenizerError(
                f"{src}: encoder weights differ from those the tokenizer at {base} was fitted with "
                "(sha256 mismatch); units would not be reproducible"
            )
        return enc
    raise TokenizerError(f"{base / 'config.json'}: unknown encoder type {kind!r}")


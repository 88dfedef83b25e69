"""``Tokenizer`` = encoder + quantizer + post-processing (de-duplication, BPE): speech in, units out.

A tokenizer is a directory in the Hugging Face style::

    config.json            everything needed to reproduce the units, plus sha256 of every file
    quantizer.safetensors  the codebook(s)
    tokenizer.json         optional BPE over units (with bpe_config.json)
    encoder/               optional: the encoder's own weights, when stored with the tokenizer

An encoder that is not stored is referenced by name (a spectral recipe, or a Hugging Face hub model
name) and the sha256 of its weights; loading checks that the weights found are the ones the
tokenizer was fitted with, so the same audio gives the same units on every machine. A tokenizer
directory is untrusted input: loading checks every field, path and hash first
(:mod:`speechunits.tokenizer_config`) and never runs code shipped in it (:mod:`speechunits.security`).

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
    >>> d = tempfile.mkdtemp() + "/tok"; _ = tok.save_pretrained(d)
    >>> bool((Tokenizer.from_pretrained(d).encode(waves[0]).ids == units.ids).all())
    True
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from speechunits import __version__
from speechunits.audio import load
from speechunits.data.atomic import FILE_MODE, atomic_write_text, replace_dir
from speechunits.encoders import Encoder, HFEncoder
from speechunits.encoders.hf import check_device
from speechunits.encoders.whisper import WhisperEncoder
from speechunits.quantizers.checkpoint import CheckpointError
from speechunits.tokenizer_config import (
    BPE_FILES,
    CONFIG_FILE,
    ENCODER_DIR,
    FORMAT_VERSION,
    QUANTIZER_FILE,
    TOKENIZER_TYPE,
    TokenizerError,
    check_files,
    is_hub_name,
    read_config,
    sha256_file,
)
from speechunits.tokenizer_load import encoder_from_config, quantizer_from_state
from speechunits.tokens import StreamingTokenizer, UnitBPE, Units, config_hash
from speechunits.tokens import dedup as dedup_units

DEFAULT_DIR = Path(__file__).parent / "pretrained" / "default"
# A folder gets the mode mkdir would give it: the file mode plus search where it is readable.
DIR_MODE = FILE_MODE | ((FILE_MODE & 0o444) >> 2)
__all__ = ["DEFAULT_DIR", "Tokenizer", "TokenizerError", "encoder_from_config", "quantizer_from_state", "sha256_file"]


# What a tokenizer needs of its quantizer: ``layers``, ``ks``, ``assign(features [T, L, D],
# input_layers=...) -> [T, L]``, ``config()`` with a ``"type"``, ``state_dict()`` and a
# ``from_state`` that ``quantizer_from_state`` dispatches to. k-means and Spin/DC-Spin qualify.
Quantizer = Any


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

        By default an HF encoder is stored unless it is a hub model read from the HF cache (a path
        on this machine means nothing elsewhere, and a tokenizer naming one is not loaded unasked).
        The directory is written beside ``directory`` and swapped in whole
        (:func:`~speechunits.data.atomic.replace_dir`): re-fitting into an existing tokenizer leaves
        nothing of the old one (no stale ``encoder/``), and a save killed half-way leaves the old
        one intact. Top-level files a user or recipe added (a model card ``README.md``, a licence)
        are carried over: regular files only, not hidden ones, links or names the tokenizer owns.
        An existing non-empty folder that is not a tokenizer is never replaced.
        """
        d = Path(directory)
        _check_replaceable(d)
        d.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{d.name}.", suffix=".tmp", dir=d.parent))
        try:
            os.chmod(tmp, DIR_MODE)  # mkdtemp makes it 0700
            self._write(tmp, store_encoder)
            _carry_extra_files(d, tmp)
            replace_dir(tmp, d)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return d

    def _write(self, d: Path, store_encoder: bool | None) -> None:
        from safetensors.torch import save_file

        cfg = self.config()
        files: dict[str, str] = {}
        qpath = d / QUANTIZER_FILE
        save_file({k: v.contiguous().cpu() for k, v in self.quantizer.state_dict().items()}, str(qpath))
        os.chmod(qpath, FILE_MODE)  # safetensors creates it 0600; give it a plain file's mode
        files[QUANTIZER_FILE] = sha256_file(qpath)
        if self.bpe is not None:
            self.bpe.save_pretrained(d)
            for name in ("tokenizer.json", "bpe_config.json"):
                files[name] = sha256_file(d / name)
        if isinstance(self.encoder, WhisperEncoder):
            # Always stored, as float16 and only up to the layers the quantizer reads: a few MB
            # that make the tokenizer self-contained (no converted cache, no package needed).
            files.update(self._store_whisper(d, cfg))
        elif isinstance(self.encoder, HFEncoder):
            if self.quantizer.config().get("type") == "spin":
                store_encoder = True  # Spin fine-tunes the encoder: its weights are part of the tokenizer
            elif store_encoder is None:
                src = self.encoder.source_dir
                from_cache = src is not None and src.parent.name == "snapshots"
                store_encoder = not (from_cache and is_hub_name(self.encoder.name))
            if store_encoder:
                files.update(self._store_encoder(d))
                cfg["encoder"]["stored"] = ENCODER_DIR
        cfg["files"] = files
        atomic_write_text(d / CONFIG_FILE, json.dumps(cfg, indent=2, sort_keys=False) + "\n")

    def _store_whisper(self, d: Path, cfg: dict[str, Any]) -> dict[str, str]:
        """Store the layers the quantizer reads (float16); the config then describes that copy."""
        enc = self.encoder
        assert isinstance(enc, WhisperEncoder)
        target = enc.save_encoder_dir(d / ENCODER_DIR, layers=self.layers)
        stored = WhisperEncoder.from_pretrained(target, mode=enc.mode, max_seconds=enc.max_seconds,
                                                overlap_seconds=enc.overlap_seconds)
        cfg["encoder"] = {**stored.config(), "name": enc.name, "stored": ENCODER_DIR,
                          "source_weights_sha256": cfg["encoder"]["weights_sha256"]}
        return {f"{ENCODER_DIR}/{p.name}": sha256_file(p) for p in sorted(target.iterdir()) if p.is_file()}

    def _store_encoder(self, d: Path) -> dict[str, str]:
        """Copy the encoder's own top-level files (not hidden ones, no pickles) into ``d/encoder``."""
        enc = self.encoder
        assert isinstance(enc, HFEncoder)
        target = d / ENCODER_DIR
        if enc.source_dir is not None:
            target.mkdir()
            for p in sorted(enc.source_dir.iterdir()):
                if p.is_file() and not p.name.startswith(".") and p.suffix not in (".bin", ".pt", ".ckpt"):
                    shutil.copyfile(p, target / p.name)
        else:
            enc.model.save_pretrained(target)
        return {f"{ENCODER_DIR}/{p.name}": sha256_file(p) for p in sorted(target.iterdir()) if p.is_file()}

    @classmethod
    def from_pretrained(
        cls,
        directory: str | os.PathLike = "default",
        *,
        device: str | torch.device = "cpu",
        verify: bool = True,
        encoder: str | os.PathLike | Encoder | None = None,
        allow_unhashed: bool = False,
    ) -> "Tokenizer":
        """Load a tokenizer directory (``"default"``: the bundled one), treating it as untrusted input.

        Every field of ``config.json`` is checked, every file read must lie inside the directory and
        match its sha256 in ``files``, and no model code shipped in it is ever run
        (:mod:`speechunits.tokenizer_config`, :mod:`speechunits.security`).

        Args:
            encoder: use this encoder (a model directory or an :class:`Encoder`) instead of the
                one the config names. Needed when the config names its encoder by a path on the
                machine that fitted it; its weights must still match the config's hashes.
            allow_unhashed: load even if ``config.json`` has no ``files`` list, or leaves out a
                file that is read (a warning instead of an error).
            verify: ``False`` skips the sha256 checks (fields and paths are still checked).
        """
        check_device(device)  # a bad device is the caller's error, not the directory's
        is_default = str(directory) == "default"
        d = DEFAULT_DIR if is_default else Path(directory)
        cfg = read_config(d, is_default=is_default)
        cfg_path = d / CONFIG_FILE
        check_files(d, cfg, allow_unhashed=allow_unhashed, hashes=verify)
        from safetensors.torch import load_file

        qpath = d / QUANTIZER_FILE
        try:
            tensors = load_file(str(qpath))
        except Exception as e:
            raise TokenizerError(f"{qpath}: cannot read codebooks ({e})") from None
        try:
            quantizer = quantizer_from_state(cfg["quantizer"], tensors, source=qpath, device=device)
        except CheckpointError as e:
            raise TokenizerError(str(e)) from None
        enc = encoder_from_config(cfg, d, device=device, verify=verify, encoder=encoder, allow_unhashed=allow_unhashed)
        bpe = None
        if cfg.get("bpe"):
            try:
                bpe = UnitBPE.from_pretrained(d)
            except (OSError, ValueError) as e:
                raise TokenizerError(str(e)) from None
        known = {"type", "format_version", "speechunits_version", "encoder", "layers", "frame_rate", "k",
                 "quantizer", "dedup", "bpe", "files"}
        info = {k: v for k, v in cfg.items() if k not in known}
        try:
            tok = cls(enc, quantizer, dedup=bool(cfg.get("dedup")), bpe=bpe, info=info)
        except (TokenizerError, ValueError) as e:
            raise TokenizerError(f"{cfg_path}: {e}") from None
        if tok.layers != sorted(cfg["layers"]):
            raise TokenizerError(f"{cfg_path}: field 'layers' is {cfg['layers']}; expected the quantizer's layers {tok.layers}")
        k = tok.vocab_sizes if len(tok.layers) > 1 else tok.vocab_sizes[0]
        if "k" in cfg and cfg["k"] != k:
            raise TokenizerError(f"{cfg_path}: field 'k' is {cfg['k']!r}; expected {k}, the codebook size in {QUANTIZER_FILE}")
        return tok


# Names a saved tokenizer owns: a save decides them (an old tokenizer.json must not outlive a
# re-fit without BPE); any other top-level file belongs to whoever put it there.
_OWN_NAMES = frozenset({CONFIG_FILE, QUANTIZER_FILE, ENCODER_DIR, *BPE_FILES})


def _carry_extra_files(old: Path, new: Path) -> None:
    """Copy ``old``'s unknown top-level regular files (not hidden, not symbolic links) into
    ``new``, so re-saving a tokenizer keeps its model card and licence files."""
    if not old.is_dir():
        return
    with os.scandir(old) as it:
        extra = [e for e in it if not e.name.startswith(".") and e.name not in _OWN_NAMES
                 and e.is_file(follow_symlinks=False)]
    for e in extra:
        if not (new / e.name).exists():
            shutil.copy2(e.path, new / e.name, follow_symlinks=False)


def _check_replaceable(d: Path) -> None:
    """Refuse to save over a file, or over a non-empty folder that is not a speechunits tokenizer."""
    if d.exists() and not d.is_dir():
        raise TokenizerError(f"{d}: exists and is not a folder; a tokenizer is saved as a folder")
    if not d.is_dir() or not any(d.iterdir()):
        return
    try:
        kind = json.loads((d / CONFIG_FILE).read_text(encoding="utf-8")).get("type")
    except (OSError, ValueError, AttributeError):
        kind = None
    if kind != TOKENIZER_TYPE:
        raise TokenizerError(f"{d}: exists and is not a speechunits tokenizer folder (no {CONFIG_FILE} of type "
                             f"{TOKENIZER_TYPE!r}); refusing to replace it: choose a new folder or remove it first")

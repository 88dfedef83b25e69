"""Reading a tokenizer directory's ``config.json`` as untrusted input: every field, every path, every hash.

A tokenizer directory may come from anywhere, so before anything in it is used:

* **Fields** (:func:`read_config`): every field the loader relies on is present and of the
  right type, and the encoder's dimension equals the codebooks'. A malformed config is a
  :class:`TokenizerError` naming ``config.json``, the field and the expected value, at load time,
  never an exception deep inside ``encode``.
* **Paths** (:func:`inside`): ``encoder.stored`` and every ``files`` entry are relative paths that
  stay inside the directory: no absolute path, no ``..``, no symlink leading out of it. An HF
  encoder that is neither stored nor a hub model name (a path on the machine that fitted it) is
  only used when the caller names an encoder explicitly (:func:`encoder_reference`).
* **Hashes** (:func:`check_files`): every file the loader reads (codebooks, BPE, each file of a
  stored encoder) is listed in ``files`` with its sha256 and matches it; a missing list, or a
  file read but not listed, is refused unless the caller allows unhashed files explicitly (then
  it is a warning).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import warnings
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Callable

TOKENIZER_TYPE = "speechunits-tokenizer"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
QUANTIZER_FILE = "quantizer.safetensors"
ENCODER_DIR = "encoder"
BPE_FILES = ("tokenizer.json", "bpe_config.json")  # speechunits.tokens.bpe's file names
ENCODER_TYPES = ("spectral", "hf", "whisper")
SPECTRAL_NAMES = ("mfcc", "logmel")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# A Hugging Face repo id: "name" or "org/name" (huggingface_hub.utils.validate_repo_id's rules).
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_MISSING = object()

log = logging.getLogger(__name__)


class TokenizerError(ValueError):
    """A tokenizer directory that cannot be used; the message names the file and the reason."""


class UnhashedFilesWarning(UserWarning):
    """A tokenizer loaded with files its config does not cover by a sha256 (allowed explicitly)."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_hub_name(name: str) -> bool:
    """Whether ``name`` reads as a Hugging Face hub model id rather than a path."""
    return bool(_HUB_NAME.fullmatch(name)) and ".." not in name and "--" not in name and not name.endswith((".", "-"))


# -- fields ------------------------------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _pos_int(v: Any) -> bool:
    return _is_int(v) and v > 0


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _pos_number(v: Any) -> bool:
    return _number(v) and v > 0


def _text(v: Any) -> bool:
    return isinstance(v, str) and v.strip() != ""


class _Fields:
    """Checks fields of one config file; each failure names the file, the field and what was expected."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, field: str, expected: str, value: Any = _MISSING) -> TokenizerError:
        if value is _MISSING:
            return TokenizerError(f"{self.path}: field {field!r} is missing; expected {expected}")
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return TokenizerError(f"{self.path}: field {field!r} is {shown}; expected {expected}")

    def get(self, obj: dict, field: str, check: Callable[[Any], bool], expected: str,
            *, required: bool = True, nullable: bool = False) -> Any:
        key = field.rpartition(".")[2]
        value = obj.get(key, _MISSING)
        if value is _MISSING:
            if required:
                raise self.fail(field, expected)
            return None
        if value is None and nullable:
            return None
        if not check(value):
            raise self.fail(field, expected, value)
        return value


def read_config(directory: Path, *, is_default: bool = False) -> dict:
    """``directory/config.json``, parsed and checked field by field (see the module docstring)."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        hint = " (the bundled default is not built yet; fit one with `speechunits fit`)" if is_default else ""
        raise TokenizerError(f"{path}: no tokenizer config{hint}")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TokenizerError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict) or cfg.get("type") != TOKENIZER_TYPE:
        got = cfg.get("type") if isinstance(cfg, dict) else None
        raise TokenizerError(f"{path}: not a speechunits tokenizer (type {got!r}, expected {TOKENIZER_TYPE!r})")
    f = _Fields(path)
    version = f.get(cfg, "format_version", _pos_int, f"an integer format version (this speechunits reads 1..{FORMAT_VERSION})")
    if version > FORMAT_VERSION:
        raise TokenizerError(f"{path}: format version {version} is newer than this speechunits reads ({FORMAT_VERSION})")
    layers = f.get(cfg, "layers", lambda v: isinstance(v, list) and v != [] and all(_is_int(x) for x in v),
                   "a non-empty list of layer indices")
    f.get(cfg, "dedup", lambda v: isinstance(v, bool), "true or false", required=False)
    f.get(cfg, "bpe", lambda v: isinstance(v, dict), "null or the BPE's settings (an object)", required=False, nullable=True)
    f.get(cfg, "files", lambda v: isinstance(v, dict) and all(isinstance(h, str) and _SHA256.fullmatch(h) for h in v.values()),
          "an object mapping file names to sha256 hex digests", required=False)
    enc = f.get(cfg, "encoder", lambda v: isinstance(v, dict), "an object describing the encoder (type, name, dim...)")
    _check_encoder(f, enc)
    quantizer = f.get(cfg, "quantizer", lambda v: isinstance(v, dict) and "type" in v,
                      "an object describing the quantizer (with its 'type')")
    dims = quantizer_dims(quantizer)
    if not dims:
        raise f.fail("quantizer.layers", "the quantizer's layers (k-means: an object per layer, Spin: a "
                     "one-element list)", quantizer.get("layers", _MISSING))
    if sorted(dims) != sorted(layers):
        raise f.fail("layers", f"the quantizer's layers {sorted(dims)}", layers)
    for layer, (field, dim) in dims.items():
        if not _pos_int(dim):
            raise f.fail(field, "a positive integer (the codebook's dimension)", dim if dim is not None else _MISSING)
        if dim != enc["dim"]:
            raise f.fail("encoder.dim", f"{dim}, the dimension of the layer-{layer} codebook in {QUANTIZER_FILE} "
                         f"({field})", enc["dim"])
    return cfg


def _check_encoder(f: _Fields, enc: dict) -> None:
    kind = f.get(enc, "encoder.type", lambda v: v in ENCODER_TYPES, f"one of {list(ENCODER_TYPES)}")
    f.get(enc, "encoder.dim", _pos_int, "a positive integer (the feature dimension)")
    if kind == "spectral":
        f.get(enc, "encoder.name", lambda v: v in SPECTRAL_NAMES, f"one of {list(SPECTRAL_NAMES)}")
        for key in ("sample_rate", "window_samples", "hop_samples", "n_fft"):
            f.get(enc, f"encoder.{key}", _pos_int, "a positive integer")
        f.get(enc, "encoder.n_mels", _pos_int, "a positive integer", required=False)
        f.get(enc, "encoder.delta_order", lambda v: v in (0, 1, 2) and _is_int(v), "0, 1 or 2", required=False)
        f.get(enc, "encoder.preemphasis", _number, "a number", required=False)
        f.get(enc, "encoder.cmvn", lambda v: isinstance(v, bool), "true or false", required=False)
        f.get(enc, "encoder.n_ceps", _pos_int, "a positive integer or null", required=False, nullable=True)
        f.get(enc, "encoder.cepstral_lifter", _number, "a number or null", required=False, nullable=True)
        f.get(enc, "encoder.mel_range_hz", lambda v: isinstance(v, list) and len(v) == 2 and all(map(_number, v)),
              "[low, high] in Hz", required=False)
        return
    f.get(enc, "encoder.name", _text, "the encoder's Hugging Face model name")
    f.get(enc, "encoder.stored", _text, "the folder holding the stored encoder, relative to the tokenizer",
          required=False, nullable=True)
    f.get(enc, "encoder.weights_sha256", lambda v: isinstance(v, dict) and v != {} and all(
        isinstance(h, str) and _SHA256.fullmatch(h) for h in v.values()), "an object of sha256 hex digests",
        required=False)
    f.get(enc, "encoder.revision", _text, "a revision string or null", required=False, nullable=True)
    f.get(enc, "encoder.normalize", lambda v: isinstance(v, bool), "true, false or null", required=False, nullable=True)
    for key in ("max_seconds", "overlap_seconds"):
        f.get(enc, f"encoder.{key}", _pos_number, "a positive number of seconds", required=False)


def quantizer_dims(quantizer: dict) -> dict[int, tuple[str, Any]]:
    """``{layer: (field, declared feature dimension)}`` from the quantizer's config (k-means per
    layer, or Spin's single layer); empty when the config has no readable layers."""
    layers = quantizer.get("layers")
    if quantizer.get("type") == "multilayer_kmeans" and isinstance(layers, dict):
        return {int(n): (f"quantizer.layers.{n}.dim", c.get("dim") if isinstance(c, dict) else None)
                for n, c in layers.items() if str(n).lstrip("-").isdigit()}
    if isinstance(layers, list) and len(layers) == 1 and _is_int(layers[0]):
        return {layers[0]: ("quantizer.dim", quantizer.get("dim"))}
    return {}


# -- paths -------------------------------------------------------------------------------------------------


def inside(directory: Path, relative: str, field: str) -> Path:
    """``directory / relative``, refused unless it stays inside ``directory`` (symlinks resolved)."""
    cfg_path = directory / CONFIG_FILE
    pure = PurePosixPath(relative)
    if (not relative or "\\" in relative or pure.is_absolute() or PureWindowsPath(relative).drive
            or ".." in pure.parts):
        raise TokenizerError(f"{cfg_path}: field {field!r} is {relative!r}; expected a path relative to "
                             f"the tokenizer directory, inside it (no absolute path, no '..')")
    path = directory / pure
    root = directory.resolve()
    real = path.resolve()
    if real != root and not real.is_relative_to(root):
        raise TokenizerError(f"{path}: leads out of the tokenizer directory {directory} (to {real}); "
                             f"refused ({cfg_path} field {field!r})")
    return path


def encoder_reference(directory: Path, cfg: dict) -> tuple[str, Path | str]:
    """Where the encoder comes from: ``("spectral", name)``, ``("stored", folder)``, ``("hub", name)``
    or ``("path", name)``: a path on the machine that fitted it, which is not opened unasked."""
    enc = cfg["encoder"]
    if enc["type"] == "spectral":
        return "spectral", enc["name"]
    if enc.get("stored"):
        folder = inside(directory, enc["stored"], "encoder.stored")
        if not folder.is_dir():
            raise TokenizerError(f"{folder}: missing (the stored encoder named by {directory / CONFIG_FILE})")
        return "stored", folder
    return ("hub" if is_hub_name(enc["name"]) else "path"), enc["name"]


# -- hashes ------------------------------------------------------------------------------------------------


def loaded_files(directory: Path, cfg: dict) -> list[str]:
    """The files (relative, posix) the loader reads from ``directory``: each needs a hash."""
    names = [QUANTIZER_FILE] + (list(BPE_FILES) if cfg.get("bpe") else [])
    kind, where = encoder_reference(directory, cfg)
    if kind == "stored":
        assert isinstance(where, Path)
        for root, dirs, files in os.walk(where):  # symlinked folders are listed, not followed
            for name in sorted(files) + sorted(d for d in dirs if Path(root, d).is_symlink()):
                names.append(Path(root, name).relative_to(directory).as_posix())
    return names


def check_files(directory: Path, cfg: dict, *, allow_unhashed: bool = False, hashes: bool = True) -> None:
    """Every file the loader reads is inside ``directory``, listed in ``files`` and matches its sha256.

    ``allow_unhashed``: a missing list, or read files it does not list, are a warning, not an error.
    ``hashes=False`` checks the paths only.
    """
    cfg_path = directory / CONFIG_FILE
    files = cfg.get("files") or {}
    needed = loaded_files(directory, cfg)  # first: checks encoder.stored itself
    for name in files:
        inside(directory, name, f"files.{name}")
    for name in needed:
        inside(directory, name, f"files.{name}")  # a symlink inside a stored encoder, too
    if not hashes:
        return
    unlisted = [n for n in needed if n not in files]
    if unlisted:
        what = ("has no 'files' list" if not files else
                f"does not cover {', '.join(unlisted)} by a sha256 in 'files'")
        message = f"{cfg_path}: {what}; every file a tokenizer loads must be hashed"
        if not allow_unhashed:
            raise TokenizerError(message + " (allow_unhashed=True / --allow-unhashed loads it anyway)")
        warnings.warn(message + "; loading unverified files as asked (allow_unhashed)", UnhashedFilesWarning,
                      stacklevel=3)
    for name, digest in files.items():
        path = directory / name
        if not path.is_file():
            raise TokenizerError(f"{path}: missing (listed in {cfg_path})")
        if sha256_file(path) != digest:
            raise TokenizerError(f"{path}: sha256 mismatch with {cfg_path} (file changed or corrupt)")

"""Finding Hugging Face checkpoints without the network, and fingerprinting their weights.

A hub name is looked up in the local cache (``models--org--name/snapshots/<commit>``) directly,
so an offline load fails at once with a clear message instead of retrying HTTP requests
(transformers 5 probes the Hub for adapter files even with ``local_files_only=True``).

Example:
    >>> snapshot_dir("no-such-org/no-such-model", None, "/nonexistent") is None
    True
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch


class EncoderNotFoundError(OSError):
    """A model name that is neither a local directory nor in the local Hugging Face cache."""


def hub_cache() -> str:
    """The default Hugging Face hub cache directory."""
    try:
        from huggingface_hub import constants

        return constants.HF_HUB_CACHE
    except Exception:  # pragma: no cover
        return "~/.cache/huggingface/hub"


def snapshot_dir(repo_id: str, revision: str | None, cache_dir: str | os.PathLike | None) -> Path | None:
    """The cache snapshot directory holding ``repo_id``'s ``config.json``, or None; no network."""
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir, revision=revision)
    except Exception:  # an invalid repo id is simply not in the cache
        return None
    return Path(hit).parent if isinstance(hit, str) else None


def read_preprocessor(
    source_dir: Path | None, name: str, revision: str | None, cache_dir: str | os.PathLike | None, fetch: bool
) -> dict | None:
    """``preprocessor_config.json`` beside the weights (fetched from the Hub if ``fetch``), or None."""
    path = source_dir / "preprocessor_config.json" if source_dir is not None else None
    if (path is None or not path.is_file()) and fetch:
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(name, "preprocessor_config.json", revision=revision, cache_dir=cache_dir))
        except Exception:  # a checkpoint without one: the default applies
            return None
    if path is None or not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def installed_file(module: str, relative: str) -> Path | None:
    """A data file shipped inside an installed package (``module/relative``), found without
    importing the package (its ``__init__`` may import what speechunits does not install)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    for loc in list(spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(loc) / relative
        if path.exists():
            return path
    return None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def state_dict_sha256(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()

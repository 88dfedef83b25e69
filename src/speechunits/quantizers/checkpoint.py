"""Quantizer artifacts: a directory with ``config.json`` and ``model.safetensors``. No pickle.

Both files are written atomically (temp file + rename), tensors first, so a reader never sees a
config that points at half-written tensors. Every problem on load is a :class:`CheckpointError`
(a ``ValueError``) whose message names the file and the reason.

Example:
    >>> import tempfile, torch
    >>> d = tempfile.mkdtemp()
    >>> save_dir(d, {"type": "demo"}, {"w": torch.zeros(2, 3)})
    >>> cfg, t = load_dir(d, expected_type="demo")
    >>> cfg["type"], tuple(t["w"].shape)
    ('demo', (2, 3))
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..data.atomic import atomic_write_bytes, atomic_write_text

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(ValueError):
    """A quantizer file that cannot be used: ``str(err)`` is ``"<file>: <reason>"``."""

    def __init__(self, file: object, reason: str) -> None:
        self.file = str(file)
        self.reason = reason
        super().__init__(f"{self.file}: {reason}")


def save_dir(path: str | os.PathLike, config: dict, tensors: dict[str, torch.Tensor]) -> None:
    """Write ``tensors`` (contiguous CPU copies) and ``config`` into the directory ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cpu = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    atomic_write_bytes(path / WEIGHTS_NAME, st_save(cpu, metadata={"format": "pt"}))
    atomic_write_text(path / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")


def load_dir(path: str | os.PathLike, expected_type: str | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read ``config.json`` and ``model.safetensors`` from ``path``; errors name the file."""
    path = Path(path)
    cfg_file, st_file = path / CONFIG_NAME, path / WEIGHTS_NAME
    if not path.is_dir():
        raise CheckpointError(path, "not a directory")
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(cfg_file, "missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(cfg_file, f"not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(cfg_file, "expected a JSON object")
    if expected_type is not None and config.get("type") != expected_type:
        raise CheckpointError(cfg_file, f"type is {config.get('type')!r}, expected {expected_type!r}")
    try:
        tensors = st_load(st_file.read_bytes())
    except FileNotFoundError:
        raise CheckpointError(st_file, "missing") from None
    except (SafetensorError, ValueError, OSError) as e:
        raise CheckpointError(st_file, f"not a readable safetensors file ({e})") from None
    return config, tensors


def check_centroids(
    tensors: dict[str, torch.Tensor], name: str, k: int, dim: int | None, file: object
) -> torch.Tensor:
    """Return ``tensors[name]`` as float32 after checking presence, shape ``[k, dim]`` and finiteness."""
    if name not in tensors:
        raise CheckpointError(file, f"missing tensor {name!r} (has {sorted(tensors)})")
    c = tensors[name]
    if not c.is_floating_point():
        raise CheckpointError(file, f"tensor {name!r} has dtype {c.dtype}, expected a float type")
    if c.ndim != 2 or c.shape[0] != k or (dim is not None and c.shape[1] != dim):
        want = f"[{k}, {dim if dim is not None else 'dim'}]"
        raise CheckpointError(file, f"tensor {name!r} has shape {list(c.shape)}, config says {want}")
    if not bool(torch.isfinite(c).all()):
        raise CheckpointError(file, f"tensor {name!r} holds NaN or infinite values")
    return c.float()


def config_int(config: dict, key: str, file: object, minimum: int = 1) -> int:
    """``config[key]`` as an int >= ``minimum``, or a CheckpointError naming ``file``."""
    v = config.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise CheckpointError(file, f"config key {key!r} must be an integer >= {minimum}, got {v!r}")
    return v

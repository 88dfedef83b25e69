"""A reader for CTranslate2 ``model.bin`` files (binary format version 6): parse, never execute.

The layout, as ``ctranslate2.specs.model_spec.ModelSpec.save`` writes it (all little-endian):
``uint32 version``, ``string spec_name``, ``uint32 spec_revision``, ``uint32 n_variables``, then
per variable ``string name``, ``uint8 rank``, ``uint32 dims[rank]``, ``uint8 dtype``,
``uint32 n_bytes`` and the raw bytes; then ``uint32 n_aliases`` and ``(string alias, string
target)`` pairs. A string is ``uint16 length`` (including its NUL) followed by the bytes and the
NUL. dtype ids are CTranslate2's ``DataType`` enum: float32, int8, int16, int32, float16, bfloat16.

Every size is checked against what is left of the file before anything is allocated, so a
truncated or lying file is a :class:`CT2FormatError` naming the file and the byte offset, not a
huge allocation.

Example:
    >>> import io, struct
    >>> def s(t): return struct.pack("<H", len(t) + 1) + t.encode() + b"\\0"
    >>> blob = (struct.pack("<I", 6) + s("WhisperSpec") + struct.pack("<II", 3, 1) + s("w")
    ...         + struct.pack("<BI", 1, 2) + struct.pack("<BI", 0, 8) + struct.pack("<2f", 1.0, 2.0)
    ...         + struct.pack("<I", 0))
    >>> m = read_ct2_bytes(blob, "x.bin")
    >>> m.spec, m.revision, m.variables["w"].tolist()
    ('WhisperSpec', 3, [1.0, 2.0])
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SUPPORTED_VERSIONS = (5, 6)
# CTranslate2's DataType enum, in order.
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_BFLOAT16 = 5
__all__ = ["CT2FormatError", "CT2Model", "read_ct2", "read_ct2_bytes"]


class CT2FormatError(ValueError):
    """A CTranslate2 model file that cannot be parsed (truncated, corrupt or unsupported)."""


@dataclass
class CT2Model:
    """The parsed content of a ``model.bin``: spec name and revision, named arrays, aliases."""

    spec: str
    revision: int
    version: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        """A variable by name, following aliases; int8 weights are dequantized with their scale."""
        name = self.aliases.get(name, name)
        value = self.variables[name]
        if value.dtype == np.int8:
            scale_name = name.rsplit("/", 1)[0] + "/weight_scale"
            if scale_name not in self.variables:
                raise KeyError(f"{name} is int8 but {scale_name} is missing")
            scale = self.variables[scale_name].astype(np.float32)
            return value.astype(np.float32) / scale.reshape(-1, *([1] * (value.ndim - 1)))
        return value.astype(np.float32)


class _Reader:
    def __init__(self, data: bytes | memoryview, source: str) -> None:
        self.data, self.pos, self.source = memoryview(data), 0, source

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise CT2FormatError(
                f"{self.source}: truncated or corrupt at byte {self.pos}: {what} needs {n} bytes, "
                f"{len(self.data) - self.pos} left"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def string(self, what: str) -> str:
        (n,) = self.unpack("H", what + " length")
        raw = bytes(self.take(n, what))
        if n == 0 or raw[-1] != 0:
            raise CT2FormatError(f"{self.source}: {what} at byte {self.pos - n} is not NUL-terminated")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as e:
            raise CT2FormatError(f"{self.source}: {what} at byte {self.pos - n} is not UTF-8") from e


def read_ct2_bytes(data: bytes | memoryview, source: str = "<bytes>") -> CT2Model:
    """Parse the bytes of a ``model.bin``; ``source`` names it in errors."""
    r = _Reader(data, source)
    (version,) = r.unpack("I", "format version")
    if version not in SUPPORTED_VERSIONS:
        raise CT2FormatError(
            f"{source}: CTranslate2 binary format version {version} is not supported "
            f"(supported: {', '.join(map(str, SUPPORTED_VERSIONS))})"
        )
    spec = r.string("spec name")
    (revision,) = r.unpack("I", "spec revision")
    (count,) = r.unpack("I", "variable count")
    model = CT2Model(spec=spec, revision=revision, version=version)
    for i in range(count):
        name = r.string(f"name of variable {i}")
        (rank,) = r.unpack("B", f"rank of {name}")
        shape = r.unpack(f"{rank}I", f"shape of {name}") if rank else ()
        (dtype_id,) = r.unpack("B", f"dtype of {name}")
        (nbytes,) = r.unpack("I", f"size of {name}")
        raw = r.take(nbytes, f"data of {name}")
        if dtype_id == _BFLOAT16:  # numpy has no bfloat16: widen to float32 by hand
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif dtype_id in _DTYPES:
            arr = np.frombuffer(raw, dtype=_DTYPES[dtype_id])
        else:
            raise CT2FormatError(f"{source}: variable {name} has unknown dtype id {dtype_id}")
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise CT2FormatError(f"{source}: variable {name}: {nbytes} bytes do not hold shape {list(shape)}")
        model.variables[name] = arr.reshape(shape)
    (n_alias,) = r.unpack("I", "alias count")
    for _ in range(n_alias):
        alias = r.string("alias name")
        target = r.string(f"target of alias {alias}")
        if target not in model.variables:
            raise CT2FormatError(f"{source}: alias {alias} points to unknown variable {target}")
        model.aliases[alias] = target
    if r.pos != len(r.data):
        raise CT2FormatError(f"{source}: {len(r.data) - r.pos} unexpected bytes after the aliases")
    return model


def read_ct2(path: str | os.PathLike) -> CT2Model:
    """Parse a CTranslate2 ``model.bin`` (or the directory holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.bin"
    try:
        data = p.read_bytes()
    except OSError as e:
        raise CT2FormatError(f"{p}: cannot read: {e.strerror or e}") from None
    return read_ct2_bytes(data, str(p))

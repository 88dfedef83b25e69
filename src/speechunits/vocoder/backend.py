"""Running the universal HiFi-GAN: ONNX Runtime on CPU (1.58x faster than torch here), torch on GPU.

On CPU the generator is exported once to ONNX (``$SPEECHUNITS_CACHE/hifigan/``, its sha256 kept
beside it and checked on every load; a mismatch re-exports) and run with ONNX Runtime's CPU
provider: RTF 0.386 on 2 threads against torch's 0.609 (benchmarks/bench_vocoder.py, BENCHMARKS.md). Where
``onnx``/``onnxruntime`` are missing, or ``SPEECHUNITS_VOCODER_BACKEND=torch``, torch runs it.

``SPEECHUNITS_VOCODER_BACKEND=onnx-int8`` (opt-in, CPU) runs an int8 copy instead (``int8.py``): the
fp32 export statically quantized once with the shipped range table, cached beside it as
``universal-<sha>-int8-<table digest>.onnx``: RTF 0.174 in the same run (not the default: see
docs/vocoder.md, "Speed").
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from speechunits.encoders.whisper.registry import cache_root

from speechunits.encoders.hub import file_sha256

from .hifigan import UNIVERSAL, load_universal

log = logging.getLogger("speechunits.vocoder")
_CACHE: dict[tuple[str, str], "Backend"] = {}
KINDS = ("auto", "torch", "onnx", "onnx-int8")


class Backend:
    """``backend(mel [80, M] or [B, 80, M]) -> 22.05 kHz waveform [B, samples]`` (numpy float32)."""

    kind = "torch"

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.generator = load_universal(self.device)

    @torch.inference_mode()
    def __call__(self, mel: torch.Tensor) -> np.ndarray:
        mel = mel[None] if mel.ndim == 2 else mel
        return self.generator(mel.to(self.device).float())[:, 0].cpu().numpy()


class OnnxBackend(Backend):
    kind = "onnxruntime"

    def __init__(self, threads: int | None = None, int8: bool = False) -> None:
        import onnxruntime as ort

        self.device = torch.device("cpu")
        path = int8_onnx_file() if int8 else onnx_file()
        self.kind = "onnxruntime-int8" if int8 else "onnxruntime"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, mel: torch.Tensor) -> np.ndarray:
        mel = mel[None] if mel.ndim == 2 else mel
        x = mel.detach().cpu().float().numpy()
        return self.session.run(None, {"mel": x})[0][:, 0]


def _cached(path: Path, make) -> Path:
    """``path`` if it matches the sha256 stamped beside it, else ``make(tmp)`` then an atomic swap."""
    stamp = Path(str(path) + ".sha256")
    if path.is_file() and stamp.is_file() and file_sha256(path) == stamp.read_text().strip():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        make(tmp)
        stamp_tmp = Path(str(stamp) + f".{os.getpid()}.tmp")
        stamp_tmp.write_text(file_sha256(tmp) + "\n")
        os.replace(tmp, path)
        os.replace(stamp_tmp, stamp)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def onnx_file() -> Path:
    """The ONNX export of the universal generator in the cache, made (atomically) when missing or changed."""
    path = cache_root() / "hifigan" / f"universal-{UNIVERSAL['sha256'][:16]}.onnx"

    def export(tmp: Path) -> None:
        log.info("exporting the universal HiFi-GAN to ONNX (once): %s", path)
        gen = load_universal("cpu")
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(gen, (torch.zeros(1, 80, 32),), str(tmp), input_names=["mel"], output_names=["wave"],
                              dynamic_axes={"mel": {0: "batch", 2: "frames"}, "wave": {0: "batch", 2: "samples"}},
                              dynamo=False)

    return _cached(path, export)


def int8_onnx_file(table_path: str | Path | None = None) -> Path:
    """The int8 (QDQ) copy of :func:`onnx_file` in the same folder, named by the range table's digest;
    made once from ``table_path`` (default: the shipped ``hifigan_int8.json``)."""
    from . import int8

    table = int8.load_table(table_path or int8.TABLE)
    fp32 = onnx_file()
    path = fp32.with_name(f"{fp32.stem}-int8-{int8.table_digest(table)[:16]}.onnx")

    def make(tmp: Path) -> None:
        log.info("quantizing the universal HiFi-GAN to int8 (once): %s", path)
        int8.quantize(fp32, table, tmp)

    return _cached(path, make)


def get_backend(device: str | torch.device = "cpu", kind: str | None = None) -> Backend:
    """The generator runner for ``device`` (cached): ONNX Runtime on CPU when available."""
    dev = torch.device(device)
    kind = kind or os.environ.get("SPEECHUNITS_VOCODER_BACKEND", "auto")
    if kind not in KINDS:
        raise ValueError(f"SPEECHUNITS_VOCODER_BACKEND must be one of {', '.join(KINDS)}, got {kind!r}")
    key = (str(dev), kind)
    if key not in _CACHE:
        backend: Backend | None = None
        if dev.type == "cpu" and kind != "torch":
            try:
                backend = OnnxBackend(int8=kind == "onnx-int8")
            except ImportError as e:
                if kind != "auto":
                    raise ValueError(f"the {kind} back end needs onnx and onnxruntime ({e})") from None
                log.info("onnx/onnxruntime not installed: the HiFi-GAN runs in torch (slower)")
        _CACHE[key] = backend or Backend(dev)
    return _CACHE[key]

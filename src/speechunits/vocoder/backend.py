"""Running the universal HiFi-GAN: ONNX Runtime on CPU (1.37x faster than torch here), torch on GPU.

On CPU the generator is exported once to ONNX (``$SPEECHUNITS_CACHE/hifigan/``, its sha256 kept
beside it and checked on every load; a mismatch re-exports) and run with ONNX Runtime's CPU
provider: RTF 0.349 on 2 threads against torch's 0.478 (benchmarks/bench_vocoder.py, BENCHMARKS.md). Where
``onnx``/``onnxruntime`` are missing, or ``SPEECHUNITS_VOCODER_BACKEND=torch``, torch runs it.
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

    def __init__(self, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.device = torch.device("cpu")
        path = onnx_file()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, mel: torch.Tensor) -> np.ndarray:
        mel = mel[None] if mel.ndim == 2 else mel
        x = mel.detach().cpu().float().numpy()
        return self.session.run(None, {"mel": x})[0][:, 0]


def onnx_file() -> Path:
    """The ONNX export of the universal generator in the cache, made (atomically) when missing or changed."""
    folder = cache_root() / "hifigan"
    path = folder / f"universal-{UNIVERSAL['sha256'][:16]}.onnx"
    stamp = Path(str(path) + ".sha256")
    if path.is_file() and stamp.is_file() and file_sha256(path) == stamp.read_text().strip():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    log.info("exporting the universal HiFi-GAN to ONNX (once): %s", path)
    gen = load_universal("cpu")
    tmp = folder / f".{path.name}.{os.getpid()}.tmp"
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(gen, (torch.zeros(1, 80, 32),), str(tmp), input_names=["mel"], output_names=["wave"],
                          dynamic_axes={"mel": {0: "batch", 2: "frames"}, "wave": {0: "batch", 2: "samples"}},
                          dynamo=False)
    stamp_tmp = Path(str(stamp) + f".{os.getpid()}.tmp")
    stamp_tmp.write_text(file_sha256(tmp) + "\n")
    os.replace(tmp, path)
    os.replace(stamp_tmp, stamp)
    return path


def get_backend(device: str | torch.device = "cpu", kind: str | None = None) -> Backend:
    """The generator runner for ``device`` (cached): ONNX Runtime on CPU when available."""
    dev = torch.device(device)
    kind = kind or os.environ.get("SPEECHUNITS_VOCODER_BACKEND", "auto")
    if kind not in ("auto", "torch", "onnx"):
        raise ValueError(f"SPEECHUNITS_VOCODER_BACKEND must be auto, torch or onnx, got {kind!r}")
    key = (str(dev), kind)
    if key not in _CACHE:
        backend: Backend | None = None
        if dev.type == "cpu" and kind in ("auto", "onnx"):
            try:
                backend = OnnxBackend()
            except ImportError as e:
                if kind == "onnx":
                    raise ValueError(f"the ONNX back end needs onnx and onnxruntime ({e})") from None
                log.info("onnx/onnxruntime not installed: the HiFi-GAN runs in torch (slower)")
        _CACHE[key] = backend or Backend(dev)
    return _CACHE[key]

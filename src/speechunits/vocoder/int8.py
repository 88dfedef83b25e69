"""Int8 HiFi-GAN for ONNX Runtime's CPU provider: static QDQ quantization from a shipped range table.

The fp32 ONNX export of the universal generator (``backend.onnx_file``) is quantized by ONNX
Runtime's own ``quantize_static`` (QDQ format; ORT's graph optimizer then fuses each
``DequantizeLinear -> Conv -> QuantizeLinear`` into an int8 ``QLinearConv``):

- **quantized**: the 54 Convs of the first three upsampling stages (``resblocks.0``-``8``);
  activations uint8 (asymmetric), weights int8 per output channel in 7 bits (``reduce_range``,
  which keeps the u8 x s8 multiply-add of x86 CPUs without VNNI from saturating; it costs
  nothing measurable here);
- **kept in float**: ``conv_pre``, ``conv_post`` and the 18 Convs of the last stage
  (``resblocks.9``-``11``, 32 channels at the full 22.05 kHz rate). Quantized, those add a
  fixed-step noise floor that is heard in pauses (a one-off check while this module was written,
  every Conv quantized, not re-runnable from the repository: copy-synthesis DNSMOS 3.14 -> 2.59,
  Whisper WER 1.4 -> 8.5 % on librivox-aligned);
- **ConvTranspose stays float**: ONNX Runtime's CPU provider has no int8 ConvTranspose kernel (a
  QDQ ConvTranspose is only dequantized back to float, slower and less exact).

Activation ranges are not measured at run time (users have no calibration speech): they come
from ``hifigan_int8.json`` beside this file, made once by ``scripts/calibrate_hifigan_int8.py``
with :func:`calibrate` (ORT's percentile calibrator, 99.999 %, 2048 bins, on the log-mels of fixed
LibriSpeech files named in the table), and are fed to ``quantize_static`` as its calibration
cache. Measured: docs/vocoder.md ("Speed"), BENCHMARKS.md.

Example::

    table = load_table()
    quantize(onnx_file(), table, Path("hifigan-int8.onnx"))
"""

from __future__ import annotations

import hashlib
import inspect
import json
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from .hifigan import UNIVERSAL, HiFiGANConfig

TABLE = Path(__file__).with_name("hifigan_int8.json")
TABLE_TYPE = "speechunits-hifigan-int8-ranges"
PERCENTILE, NUM_BINS = 99.999, 2048


class Int8Error(ValueError):
    """The int8 generator cannot be made: ``"<file>: <reason>"``."""


def float_nodes(config: HiFiGANConfig | None = None) -> list[str]:
    """Names (in torch's ONNX export) of the Convs kept in float: pre, post and the last stage."""
    c = config or HiFiGANConfig()
    k, stages = len(c.resblock_kernel_sizes), len(c.upsample_rates)
    last = [f"/resblocks.{i}/convs{j}.{d}/Conv" for i in range((stages - 1) * k, stages * k)
            for j in (1, 2) for d in range(len(c.resblock_dilation_sizes[i % k]))]
    return ["/conv_pre/Conv", "/conv_post/Conv", *last]


def conv_activations(model) -> set[str]:
    """Every tensor a Conv reads or writes that is not a weight: what calibration must range."""
    weights = {t.name for t in model.graph.initializer}
    return {name for n in model.graph.node if n.op_type == "Conv"
            for name in (n.input[0], n.output[0]) if name not in weights}


def calibrate(fp32_path: str | Path, mels: Iterable[np.ndarray], *, percentile: float = PERCENTILE,
              num_bins: int = NUM_BINS) -> dict[str, list[float]]:
    """``{tensor: [low, high]}`` of every Conv input/output over ``mels`` (each ``[80, frames]``
    float32): ONNX Runtime's percentile calibrator (symmetric ranges), deterministic for fixed mels."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator

    feeds = [{"mel": np.ascontiguousarray(np.asarray(m, dtype=np.float32)[None])} for m in mels]
    if not feeds or any(f["mel"].ndim != 3 or f["mel"].shape[1] != 80 or f["mel"].shape[2] < 1 for f in feeds):
        raise ValueError("calibration mels: need at least one [80, frames] array with frames >= 1")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory(prefix="su-calib-") as tmp:
        cal = create_calibrator(Path(fp32_path), ["Conv"], augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                calibrate_method=CalibrationMethod.Percentile,
                                extra_options={"percentile": percentile, "num_bins": num_bins, "symmetric": True})
        cal.collect_data(Reader())
        ranges = cal.compute_data()
        out = {}
        for name, td in ranges.data.items():
            lo, hi = td.range_value
            out[name] = [float(np.asarray(lo).reshape(-1)[0]), float(np.asarray(hi).reshape(-1)[0])]
        del cal
    return dict(sorted(out.items()))


def make_table(ranges: dict[str, list[float]], calibration: dict) -> dict:
    """The JSON record :func:`quantize` reads (``calibration`` says what the ranges were measured on)."""
    return {"type": TABLE_TYPE, "format_version": 1, "generator_sha256": UNIVERSAL["sha256"],
            "calibration": {"method": "percentile", "percentile": PERCENTILE, "num_bins": NUM_BINS,
                            "symmetric": True, **calibration},
            "quantization": {"format": "QDQ", "op_types": ["Conv"], "activations": "uint8 asymmetric",
                             "weights": "int8 symmetric, per output channel, 7-bit (reduce_range)"},
            "float_nodes": float_nodes(), "ranges": ranges}


def load_table(path: str | Path = TABLE) -> dict:
    """The range table, checked (type, generator, finite ranges); ``Int8Error`` names what is wrong."""
    path = Path(path)
    try:
        t = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise Int8Error(f"{path}: cannot be read as a JSON range table ({e})") from None
    if not isinstance(t, dict) or t.get("type") != TABLE_TYPE:
        raise Int8Error(f"{path}: not a {TABLE_TYPE} file")
    if t.get("generator_sha256") != UNIVERSAL["sha256"]:
        raise Int8Error(f"{path}: made for another generator than the pinned {UNIVERSAL['sha256'][:16]}...")
    ranges = t.get("ranges")
    if not isinstance(ranges, dict) or not ranges:
        raise Int8Error(f"{path}: no ranges")
    for name, r in ranges.items():
        if not (isinstance(r, list) and len(r) == 2 and all(isinstance(v, (int, float)) for v in r)
                and np.isfinite(r).all() and r[0] <= r[1]):
            raise Int8Error(f"{path}: range of {name!r} is not [low, high] with low <= high: {r!r}")
    if not isinstance(t.get("float_nodes"), list):
        raise Int8Error(f"{path}: float_nodes missing")
    return t


def table_digest(table: dict) -> str:
    """sha256 of the table's canonical JSON: names the int8 cache file it makes."""
    return hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()


def check_table(model, table: dict, where: str = "range table") -> list[str]:
    """The Convs to leave in float, after checking that the table fits this export."""
    convs = {n.name for n in model.graph.node if n.op_type == "Conv"}
    missing_nodes = [n for n in table["float_nodes"] if n not in convs]
    if missing_nodes:
        raise Int8Error(f"{where}: float node {missing_nodes[0]!r} is not a Conv of this ONNX export "
                        "(exported by another torch version?)")
    missing = sorted(conv_activations(model) - set(table["ranges"]))
    if missing:
        raise Int8Error(f"{where}: no range for {missing[0]!r} ({len(missing)} tensors of this ONNX export "
                        "have none; exported by another torch version?)")
    return list(table["float_nodes"])


def quantize(fp32_path: str | Path, table: dict, out_path: str | Path) -> None:
    """Write the QDQ int8 model of ``fp32_path`` to ``out_path`` with the table's ranges."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
        import onnxruntime

        raise Int8Error(f"onnxruntime {onnxruntime.__version__}: quantize_static takes no calibration_cache_path "
                        "(needed to apply the shipped ranges); a newer onnxruntime has it")
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

    model = onnx.load(str(fp32_path))
    exclude = check_table(model, table)
    data = {k: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for k, (lo, hi) in table["ranges"].items()}
    with tempfile.TemporaryDirectory(prefix="su-int8-") as tmp:
        cache = Path(tmp) / "ranges.json"
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), cache)
        quantize_static(model, str(out_path), None, quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                        per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
                        calibrate_method=CalibrationMethod.MinMax, calibration_cache_path=str(cache))


def quantized_convs(model) -> tuple[list[str], list[str]]:
    """``(Convs fed by a DequantizeLinear'd weight, the other Convs)`` of a QDQ model."""
    produced = {o: n.op_type for n in model.graph.node for o in n.output}
    q, f = [], []
    for n in model.graph.node:
        if n.op_type == "Conv":
            (q if produced.get(n.input[1]) == "DequantizeLinear" else f).append(n.name)
    return q, f


"""Int8 HiFi-GAN (vocoder/int8.py, SPEECHUNITS_VOCODER_BACKEND=onnx-int8): the shipped range table,
refusal of a bad one, the quantized graph, and output close to fp32 on real speech."""

from __future__ import annotations

import json

import numpy as np
import pytest

from speechunits.vocoder import int8
from speechunits.vocoder.int8 import Int8Error, load_table, table_digest
from test_vocoder import needs_hifigan
from conftest import shared_path

pytest.importorskip("onnxruntime.quantization")


def _one_line_error(path, text: str, match: str) -> None:
    path.write_text(text)
    with pytest.raises(Int8Error, match=match) as e:
        load_table(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_shipped_table_loads():
    t = load_table()
    assert t["format_version"] == 1 and len(t["ranges"]) > 100
    assert t["float_nodes"] == int8.float_nodes()  # conv_pre, conv_post, the last stage's 18 Convs
    assert len(t["float_nodes"]) == 20
    assert table_digest(t) == table_digest(json.loads(int8.TABLE.read_text()))


def test_corrupt_or_foreign_table_is_refused(tmp_path):
    good = load_table()
    p = tmp_path / "t.json"
    _one_line_error(p, '{"type": "speechunits-hifigan-int8-ran', "cannot be read")
    _one_line_error(p, json.dumps({**good, "type": "speechunits-unit-vocoder"}), "not a speechunits-hifigan-int8")
    _one_line_error(p, json.dumps({**good, "generator_sha256": "0" * 64}), "another generator")
    _one_line_error(p, json.dumps({**good, "ranges": {}}), "no ranges")
    bad = dict(good["ranges"])
    bad[next(iter(bad))] = [2.0, 1.0]
    _one_line_error(p, json.dumps({**good, "ranges": bad}), "low <= high")
    bad[next(iter(bad))] = [float("nan"), 1.0]
    _one_line_error(p, json.dumps({**good, "ranges": bad}), "low <= high")


def test_unknown_backend_kind_is_refused():
    from speechunits.vocoder.backend import get_backend

    with pytest.raises(ValueError, match="onnx-int8, got 'int4'"):
        get_backend("cpu", "int4")


def test_old_onnxruntime_is_refused(monkeypatch, tmp_path):
    import onnxruntime.quantization as q

    monkeypatch.setattr(q, "quantize_static", lambda model_input, model_output, calibration_data_reader: None)
    with pytest.raises(Int8Error, match="onnxruntime .*calibration_cache_path"):
        int8.quantize(tmp_path / "absent.onnx", load_table(), tmp_path / "out.onnx")


@needs_hifigan
def test_int8_graph_has_the_expected_quantized_and_float_convs():
    import onnx

    from speechunits.vocoder.backend import int8_onnx_file, onnx_file

    path = int8_onnx_file()
    assert path.parent == onnx_file().parent and table_digest(load_table())[:16] in path.name
    model = onnx.load(str(path))
    quantized, kept = int8.quantized_convs(model)
    assert len(quantized) == 54 and sorted(kept) == sorted(int8.float_nodes())
    assert all(n.startswith(tuple(f"/resblocks.{i}/" for i in range(9))) for n in quantized)
    assert sum(n.op_type == "ConvTranspose" for n in model.graph.node) == 4  # upsamplers stay float


@needs_hifigan
def test_int8_output_is_close_to_fp32_on_real_speech():
    from speechunits.audio import load
    from speechunits.vocoder.backend import get_backend
    from speechunits.vocoder.mel import log_mel, to_16k

    wave = load(shared_path("librispeech-mini", "test-other", "1688", "1688-142285-0000.flac"))[:32000]
    mel = log_mel(wave)
    fp32, q8 = get_backend("cpu", "onnx")(mel)[0], get_backend("cpu", "onnx-int8")(mel)[0]
    assert get_backend("cpu", "onnx-int8").kind == "onnxruntime-int8"
    # measured on this clip: SNR 19.2 dB, correlation 0.994, log-mel error 0.287 (fp32) / 0.287 (int8)
    snr = 10 * np.log10((fp32 ** 2).sum() / ((fp32 - q8) ** 2).sum())
    assert snr > 15 and np.corrcoef(fp32, q8)[0, 1] > 0.98, snr
    m32, m8 = log_mel(to_16k(fp32)), log_mel(to_16k(q8))
    n = min(m32.shape[1], m8.shape[1], mel.shape[1])
    loud = mel[:, :n] > -6
    err32, err8 = ((m[:, :n] - mel[:, :n]).abs()[loud].mean().item() for m in (m32, m8))
    assert err8 < err32 + 0.02 and err8 < 0.35, (err32, err8)

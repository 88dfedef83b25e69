"""KMeans / MultiLayerKMeans save and load: round trips and clear errors for bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from speechunits.quantizers import CheckpointError, KMeans, MultiLayerKMeans


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((600, 6)).astype(np.float32)


@pytest.fixture(scope="module")
def fitted(data):
    return KMeans(7, seed=3, max_iter=10).fit(data)


def test_round_trip_identical_assignment_and_config(tmp_path, fitted, data):
    fitted.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["type"] == "kmeans" and cfg["k"] == 7 and cfg["dim"] == 6 and cfg["seed"] == 3
    assert cfg["fit_data"] == {"frames_seen": 600, "frames_sampled": 600}
    for key in ("n_init", "iterations", "inertia", "empty_clusters", "format_version", "speechunits_version"):
        assert key in cfg
    loaded = KMeans.from_pretrained(tmp_path)
    assert torch.equal(loaded.centroids, fitted.centroids)
    assert torch.equal(loaded.assign(data), fitted.assign(data))
    assert loaded.config() == fitted.config()
    again = KMeans.from_state(fitted.config(), fitted.state_dict())
    assert torch.equal(again.assign(data), fitted.assign(data))


def _write(tmp_path, cfg: dict, tensors: dict) -> None:
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    save_file(tensors, str(tmp_path / "model.safetensors"))


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda cfg, t: t.update(centroids=torch.zeros(7, 5)), r"shape \[7, 5\], config says \[7, 6\]"),
        (lambda cfg, t: cfg.update(k=8), r"shape \[7, 6\], config says \[8, 6\]"),
        (lambda cfg, t: t.update(centroids=torch.full((7, 6), float("nan"))), "NaN"),
        (lambda cfg, t: t.update(other=t.pop("centroids")), "missing tensor 'centroids'"),
        (lambda cfg, t: t.update(centroids=torch.zeros(7, 6, dtype=torch.int32)), "dtype"),
        (lambda cfg, t: cfg.update(k="7"), "'k' must be an integer"),
        (lambda cfg, t: cfg.update(type="spin"), "type is 'spin'"),
    ],
)
def test_mismatched_files_name_file_and_reason(tmp_path, fitted, change, match):
    cfg, tensors = fitted.config(), {"centroids": fitted.centroids.clone()}
    change(cfg, tensors)
    _write(tmp_path, cfg, tensors)
    with pytest.raises(ValueError, match=match) as err:
        KMeans.from_pretrained(tmp_path)
    assert isinstance(err.value, CheckpointError) and str(tmp_path) in str(err.value)


def test_corrupt_or_missing_files(tmp_path, fitted):
    fitted.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00garbage" * 3)
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors"):
        KMeans.from_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors: missing"):
        KMeans.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json: not valid JSON"):
        KMeans.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="not a directory"):
        KMeans.from_pretrained(tmp_path / "nowhere")


def test_multilayer_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(1)
    feats = rng.standard_normal((400, 5, 4)).astype(np.float32)  # [frames, 5 layers, dim]
    ml = MultiLayerKMeans.fit_layers(feats, layers=[4, 1], k={1: 3, 4: 6}, seed=0, max_iter=5)
    assert ml.layers == [1, 4] and ml.ks == [3, 6]
    units = ml.assign(feats, input_layers=range(5))
    assert units.shape == (400, 2) and units.dtype == torch.int64
    assert torch.equal(units[:, 0], ml.quantizers[1].assign(feats[:, 1]))
    assert torch.equal(units[:, 1], ml.quantizers[4].assign(feats[:, 4]))
    assert torch.equal(ml.assign(feats[:, [1, 4]]), units)  # the chosen layers only, in order
    assert torch.equal(ml.assign({1: feats[:, 1], 4: feats[:, 4]}), units)
    with pytest.raises(ValueError, match="input_layers"):
        ml.assign(feats)

    ml.save_pretrained(tmp_path)
    loaded = MultiLayerKMeans.from_pretrained(tmp_path)
    assert torch.equal(loaded.assign(feats[:, [1, 4]]), units)
    assert set(ml.state_dict()) == {"layer1.centroids", "layer4.centroids"}

    cfg = json.loads((tmp_path / "config.json").read_text())
    tensors = ml.state_dict()
    tensors["layer4.centroids"] = tensors["layer4.centroids"][:5]
    _write(tmp_path, cfg, tensors)
    with pytest.raises(CheckpointError, match=r"layer4\.centroids.*shape \[5, 4\], config says \[6, 4\]"):
        MultiLayerKMeans.from_pretrained(tmp_path)
    del tensors["layer4.centroids"]
    _write(tmp_path, cfg, tensors)
    with pytest.raises(CheckpointError, match="missing tensor 'layer4.centroids'"):
        MultiLayerKMeans.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="expected 'kmeans'"):
        KMeans.from_pretrained(tmp_path)

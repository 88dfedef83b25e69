"""KMeans: known answer, exact assignment, determinism, restarts, empty clusters."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from speechunits.quantizers import KMeans


def blobs(n_per: int = 100, k: int = 8, dim: int = 16, std: float = 0.1, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 5.0, (k, dim)).astype(np.float32)
    x = np.concatenate([c + rng.normal(0.0, std, (n_per, dim)) for c in centres]).astype(np.float32)
    return x, centres


def brute_force(x: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = ((x.astype(np.float64)[:, None, :] - c.astype(np.float64)[None, :, :]) ** 2).sum(-1)
    return d.argmin(1), d.min(1)


def test_known_answer_recovers_blob_centres():
    x, centres = blobs()
    km = KMeans(8, seed=0).fit(x)
    got = km.centroids.numpy()
    # each true centre has exactly one fitted centroid within 0.05 (the mean of 100 points, std 0.1)
    d = np.sqrt(((centres[:, None] - got[None]) ** 2).sum(-1))
    assert sorted(d.argmin(1).tolist()) == list(range(8))
    assert d.min(1).max() < 0.05
    # inertia per frame ~ dim * std^2 = 0.16 (minus the dim/n_per degrees of freedom the means absorb)
    assert km.fit_stats["inertia_per_frame"] == pytest.approx(16 * 0.01 * (1 - 1 / 100), rel=0.1)
    assert km.fit_stats["utilization"] == 1.0 and km.fit_stats["empty_clusters"] == 0
    assert km.assign(x).bincount().tolist() == [100] * 8


@pytest.mark.parametrize("onednn", [True, False], ids=["onednn", "addmm"])
def test_assign_equals_float64_brute_force(monkeypatch, onednn):
    from speechunits.quantizers import _lloyd

    if not onednn:
        monkeypatch.setattr(_lloyd, "_ONEDNN", False)  # the portable addmm path
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5000, 37)).astype(np.float32)
    c = rng.standard_normal((53, 37)).astype(np.float32)
    km = KMeans.from_centroids(c, chunk=512)  # several chunks, one ragged
    want_lab, want_d = brute_force(x, c)
    lab = km.assign(x)
    assert lab.dtype == torch.int64 and lab.shape == (5000,)
    assert np.array_equal(lab.numpy(), want_lab)
    np.testing.assert_allclose(km.distances(x).numpy(), want_d, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(km.transform(x[:100]).numpy(), ((x[:100, None] - c[None]) ** 2).sum(-1),
                               rtol=1e-4, atol=1e-4)
    # float16 numpy and torch inputs give the same ids as float32
    assert torch.equal(km.assign(torch.from_numpy(x)), lab)
    x16 = x.astype(np.float16)
    assert np.array_equal(km.assign(x16).numpy(), brute_force(x16.astype(np.float32), c)[0])


def test_assign_resolves_near_ties_exactly():
    # points on the bisector of +-c (exact ties) and within float32 noise of it
    c = np.zeros((3, 4), np.float32)
    c[0, 0], c[1, 0], c[2, 0] = 1000.0, -1000.0, 5000.0
    x = np.zeros((4, 4), np.float32)
    x[:, 1] = 3.0
    x[1, 0], x[2, 0], x[3, 0] = 1e-3, -1e-3, 0.0
    lab = KMeans.from_centroids(c).assign(x)
    assert lab.tolist() == [0, 0, 1, 0]  # exact ties -> lowest index, like numpy argmin


def test_assign_rejects_wrong_dim_and_unfitted():
    km = KMeans.from_centroids(np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match=r"\[frames, 3\]"):
        km.assign(np.zeros((2, 4), np.float32))
    with pytest.raises(RuntimeError, match="not fitted"):
        KMeans(3).assign(np.zeros((2, 3), np.float32))


def test_same_seed_same_centroids_other_seed_differs():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1500, 8)).astype(np.float32)
    a = KMeans(10, seed=5, n_init=2, max_iter=15).fit(x)
    b = KMeans(10, seed=5, n_init=2, max_iter=15).fit(x)
    assert torch.equal(a.centroids, b.centroids)
    assert a.fit_stats["inertia"] == b.fit_stats["inertia"]
    c = KMeans(10, seed=6, n_init=2, max_iter=15).fit(x)
    assert not torch.equal(a.centroids, c.centroids)


def test_restarts_keep_lowest_inertia_and_log(caplog):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2000, 8)).astype(np.float32)
    with caplog.at_level(logging.INFO, logger="speechunits.quantizers.kmeans"):
        km = KMeans(16, seed=0, n_init=3, init="random", max_iter=5).fit(x)
    s = km.fit_stats
    inertias = [r["inertia"] for r in s["restarts"]]
    assert len(inertias) == 3 and s["inertia"] == min(inertias)
    assert s["best_restart"] == int(np.argmin(inertias))
    hist = s["restarts"][0]["history"]
    assert {"iter", "inertia", "utilization", "empty"} <= set(hist[0])
    assert all(b["inertia"] <= a["inertia"] * (1 + 1e-6) for a, b in zip(hist, hist[1:]))  # Lloyd is monotone
    assert sum("restart" in r.getMessage() for r in caplog.records) == 3
    # reported inertia is exactly that of the returned centroids
    assert s["inertia"] == pytest.approx(float(km.distances(x).double().sum()), rel=1e-5)


def test_empty_clusters_are_reseeded_and_reported(caplog):
    x, _ = blobs(n_per=50, k=6, dim=5, std=0.2, seed=4)
    init = np.repeat(x[:2], 3, axis=0)  # six centroids, only two distinct -> four empty clusters
    with caplog.at_level(logging.WARNING, logger="speechunits.quantizers.kmeans"):
        km = KMeans(6, init=init, seed=0).fit(x)
    assert km.fit_stats["empty_clusters"] >= 4
    assert km.fit_stats["empty_clusters_final"] == 0 and km.fit_stats["utilization"] == 1.0
    assert km.centroids.shape == (6, 5) and len(torch.unique(km.centroids, dim=0)) == 6
    assert any("empty cluster" in r.getMessage() for r in caplog.records)


def test_duplicates_with_k_distinct_points_give_those_points():
    rng = np.random.default_rng(5)
    points = rng.normal(0, 3, (10, 4)).astype(np.float32)
    x = points[rng.integers(0, 10, 2000)]
    x[:10] = points  # every distinct point present
    km = KMeans(10, seed=0).fit(x)
    d = np.abs(points[:, None] - km.centroids.numpy()[None]).max(-1)  # [point, centroid]
    assert sorted(d.argmin(1).tolist()) == list(range(10)) and d.min(1).max() < 1e-4
    assert km.fit_stats["inertia"] == pytest.approx(0.0, abs=1e-3)


def test_fewer_distinct_points_than_k_is_a_clear_error():
    x = np.repeat(np.arange(5, dtype=np.float32)[:, None], 40, axis=0) * np.ones((1, 3), np.float32)
    with pytest.raises(ValueError, match="distinct"):
        KMeans(8, seed=0).fit(x)
    with pytest.raises(ValueError, match="at least k"):
        KMeans(8).fit(np.zeros((5, 3), np.float32))


def test_plain_and_random_init_and_bad_arguments():
    x, _ = blobs(n_per=40, k=4, dim=6, seed=6)
    for kw in ({"n_trials": 1}, {"init": "random", "n_init": 4}):
        assert KMeans(4, seed=0, **kw).fit(x).fit_stats["inertia_per_frame"] < 0.1
    with pytest.raises(ValueError):
        KMeans(0)
    with pytest.raises(ValueError, match="init"):
        KMeans(3, init="kmeans||")
    with pytest.raises(ValueError, match="shape"):
        KMeans(3, init=np.zeros((2, 6), np.float32)).fit(x)


def test_pruned_lloyd_matches_full_recomputation():
    from speechunits.quantizers import _lloyd

    x, _ = blobs(n_per=300, k=12, dim=10, std=2.0, seed=7)  # overlapping blobs: frames keep moving
    c0 = torch.from_numpy(x[:40].copy())
    full = _lloyd.lloyd(torch.from_numpy(x), c0, max_iter=15, tol=0.0, prune=False)
    fast = _lloyd.lloyd(torch.from_numpy(x), c0, max_iter=15, tol=0.0, prune=True)
    assert torch.allclose(full.centroids, fast.centroids, atol=1e-5)
    assert full.inertia == pytest.approx(fast.inertia, rel=1e-6)
    assert min(h["recomputed"] for h in fast.history) < 0.5  # the bounds did skip work


def test_non_finite_features_are_rejected():
    x, _ = blobs(n_per=20, k=3, dim=4)
    x[17, 2] = np.nan
    with pytest.raises(ValueError, match="frame 17 .*NaN"):
        KMeans(3).fit(x)


def test_onehot_cluster_sums_used_on_gpus_match_index_add():
    from speechunits.quantizers import _lloyd

    rng = np.random.default_rng(8)
    x = torch.from_numpy(rng.standard_normal((5000, 6)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 9, 5000))
    a = _lloyd.cluster_sums(x, labels, 9, chunk=1024, onehot=False)
    b = _lloyd.cluster_sums(x, labels, 9, chunk=1024, onehot=True)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fit_matches_cpu_assignment():
    x, _ = blobs(n_per=200, k=8, dim=16, std=0.5, seed=9)
    cpu = KMeans(8, seed=0).fit(x)
    gpu = KMeans(8, seed=0, device="cuda").fit(x)
    assert gpu.centroids.device.type == "cuda" and gpu.assign(x).device.type == "cuda"
    torch.testing.assert_close(gpu.centroids.cpu(), cpu.centroids, rtol=1e-4, atol=1e-4)
    assert torch.equal(gpu.assign(x).cpu(), cpu.assign(x))
    assert torch.equal(KMeans(8, seed=0, device="cuda").fit(x).centroids, gpu.centroids)  # deterministic

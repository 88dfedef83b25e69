"""Streamed fitting: uniform seeded sampling, memory budget, single-pass sweeps."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from speechunits.quantizers import FrameSampler, KMeans, MultiLayerKMeans, fit_sweep, sample_frames


def index_stream(n_items: int, frames: int, dim: int = 3, dtype=np.float32):
    """Items whose first column is the global frame index (to check which frames were kept)."""
    for i in range(n_items):
        a = np.zeros((frames, dim), dtype)
        a[:, 0] = np.arange(i * frames, (i + 1) * frames)
        yield a


def test_reservoir_is_uniform_seeded_and_shuffled():
    kept = []
    for seed in range(40):
        s = sample_frames(index_stream(50, 40, dtype=np.float64), max_frames=100, seed=seed)
        assert s.data.shape == (100, 3) and s.frames_seen == 2000 and s.capacity == 100
        idx = s.data[:, 0].astype(int)
        assert len(set(idx)) == 100  # without replacement
        kept.append(idx)
    # every 500-frame quarter of the stream gets ~1/4 of the sample (4000 draws: +-5 sigma ~ 0.035)
    quarters = np.bincount(np.concatenate(kept) // 500, minlength=4) / 4000
    np.testing.assert_allclose(quarters, 0.25, atol=0.035)
    again = sample_frames(index_stream(50, 40, dtype=np.float64), max_frames=100, seed=0)
    once_more = sample_frames(index_stream(50, 40, dtype=np.float64), max_frames=100, seed=0)
    assert np.array_equal(again.data, once_more.data)
    # shuffled: the first rows are not simply the earliest frames
    assert not np.all(np.diff(again.data[:, 0]) > 0)


def test_percent_thins_and_small_streams_are_kept_whole():
    s = sample_frames(index_stream(20, 500), percent=10, seed=0)
    assert abs(len(s) - 1000) < 120 and s.frames_seen == 10_000 and s.capacity is None
    whole = sample_frames(index_stream(3, 10), max_frames=10**12, seed=0)  # buffers grow as needed
    assert sorted(whole.data[:, 0].astype(int).tolist()) == list(range(30))
    with pytest.raises(ValueError, match="percent"):
        FrameSampler(percent=0)
    with pytest.raises(ValueError, match="empty"):
        sample_frames(iter([]), max_frames=5)
    with pytest.raises(ValueError, match="dims changed"):
        sample_frames([np.zeros((4, 3)), np.zeros((4, 2))], max_frames=5)


def test_fit_on_float16_stream_twice_the_budget_stays_within_it(tmp_path):
    rng = np.random.default_rng(0)
    dim, k, total = 64, 16, 100_000
    mm = np.lib.format.open_memmap(tmp_path / "feats.npy", mode="w+", dtype=np.float16, shape=(total, dim))
    centres = rng.normal(0, 4, (k, dim))
    mm[:] = centres[rng.integers(0, k, total)] + rng.normal(0, 0.5, (total, dim))
    mm.flush()
    feats = np.load(tmp_path / "feats.npy", mmap_mode="r")  # read-only float16 memmap
    stream_bytes = total * dim * 4  # as float32, what the k-means works on
    budget = stream_bytes // 2

    def stream():
        for s in range(0, total, 400):
            yield feats[s : s + 400]

    km = KMeans(k, seed=0, init_size=2000)
    tracemalloc.start()
    sample = km.sample(stream(), max_bytes=budget)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    fixed, per_frame = km.working_bytes([dim])
    assert sample.frames_seen == total and 0 < len(sample) < total // 2
    assert sample.data.nbytes + fixed + per_frame * len(sample) <= budget
    assert peak <= budget  # the sampling pass itself (numpy allocations) stays within the budget
    km.fit_sample(sample)
    st = km.fit_stats
    assert st["frames_seen"] == total and st["frames_sampled"] == len(sample)
    assert st["inertia_per_frame"] < dim * 0.25 * 1.2  # found the blobs (noise variance 0.25/dim)
    assert km.config()["fit_data"]["frames_sampled"] == len(sample)
    # fit() with the same budget on the same stream gives the same model
    km2 = KMeans(k, seed=0, init_size=2000).fit(stream(), max_bytes=budget)
    assert torch.equal(km2.centroids, km.centroids)
    with pytest.raises(ValueError, match="no room"):
        KMeans(k).fit(stream(), max_bytes=1000)


class CountingFeatures:
    """An iterable 'encoder output': counts passes over the data and encoder calls."""

    def __init__(self, n_utts: int = 6, frames: int = 120, n_layers: int = 4, dim: int = 5):
        self.passes = self.calls = 0
        self.n_utts, self.frames, self.n_layers, self.dim = n_utts, frames, n_layers, dim

    def encode(self, i: int) -> torch.Tensor:
        self.calls += 1
        g = torch.Generator().manual_seed(i)
        base = torch.randn(self.frames, 1, self.dim, generator=g)
        return base + torch.arange(self.n_layers).view(1, -1, 1) * 10.0  # [frames, L, D], layer-dependent

    def __iter__(self):
        self.passes += 1
        for i in range(self.n_utts):
            yield self.encode(i)


def test_sweep_reads_the_stream_once():
    feats = CountingFeatures()
    fits = fit_sweep(feats, layers=[0, 2, 3], ks=[4, 9], max_frames=500, seed=1, max_iter=5)
    assert feats.passes == 1 and feats.calls == feats.n_utts
    assert sorted(fits) == [(layer, k) for layer in (0, 2, 3) for k in (4, 9)]
    for (layer, k), km in fits.items():
        assert km.k == k and km.dim == 5 and km.fit_stats["layer"] == layer
        assert km.fit_stats["frames_seen"] == 720 and km.fit_stats["frames_sampled"] == 500
        assert abs(float(km.centroids.mean()) - 10.0 * layer) < 1.0  # fitted on its own layer
    ml = MultiLayerKMeans({layer: fits[layer, 4] for layer in (0, 2)})
    assert ml.assign(feats.encode(0)[:, [0, 2]]).shape == (120, 2)


def test_views_share_the_sampled_frames():
    rng = np.random.default_rng(0)
    items = [rng.standard_normal((100, 2, 3)) for _ in range(10)]
    for it in items:
        it[:, 1] = it[:, 0] + 20.0
    s = sample_frames(items, max_frames=150, seed=0)
    assert len(s.arrays) == 2
    np.testing.assert_allclose(s.arrays[1], s.arrays[0] + 20.0, atol=1e-5)


def test_sweep_accepts_dicts_and_lists_and_checks_layers():
    rng = np.random.default_rng(0)
    items = [{3: rng.standard_normal((50, 4)), 7: rng.standard_normal((50, 2))} for _ in range(4)]
    fits = fit_sweep(items, layers=[3, 7], ks=[5], seed=0, max_iter=3)
    assert fits[3, 5].dim == 4 and fits[7, 5].dim == 2
    lists = [[rng.standard_normal((30, 4)) for _ in range(3)] for _ in range(3)]
    assert fit_sweep(lists, layers=[2], ks=[3], seed=0, max_iter=3)[2, 3].fit_stats["frames_seen"] == 90
    with pytest.raises(ValueError, match="asks for"):
        fit_sweep([np.zeros((10, 2, 3))], layers=[5], ks=[2])

"""Chunk-wise streaming: frame counts at every length, exactness with enough lookahead."""

from __future__ import annotations

import numpy as np
import pytest

from speechunits.tokens import StreamingTokenizer, stream_agreement

SR, HOP, WIN = 16000, 320, 400


def nf(n: int) -> int:
    return max(0, (n - WIN) // HOP + 1)


def make_net(c: int, k: int = 50, layers: int | None = None, seed: int = 0):
    """A tiny random conv net in integer arithmetic (so results are bit-exact across contexts).

    Layer 1: per-frame features over the 400-sample window; layer 2: a conv over 2c+1 frames
    (edge-padded at the context borders), so frame i sees frames i-c..i+c: its receptive field
    reaches c*HOP samples beyond its own window on each side.
    """
    rng = np.random.default_rng(seed)
    w = rng.integers(-3, 4, size=(2 * c + 1, 3, k))

    def fn(audio: np.ndarray) -> np.ndarray:
        n = nf(len(audio))
        if n == 0:
            return np.zeros(0 if layers is None else (0, layers), dtype=np.int64)
        a = np.round(np.asarray(audio) * 1000).astype(np.int64)
        win = np.lib.stride_tricks.sliding_window_view(a, WIN)[::HOP][:n]
        feats = np.stack([np.abs(win).sum(1), win.sum(1), win.max(1)], axis=1)
        pad = np.pad(feats, ((c, c), (0, 0)), mode="edge")
        h = sum(pad[j : j + n] @ w[j] for j in range(2 * c + 1))
        units = h.argmax(1).astype(np.int64)
        if layers is not None:
            units = np.stack([(units + j * 7) % k for j in range(layers)], axis=1)
        return units

    return fn


def _audio(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Varying loudness so units change from frame to frame.
    env = np.repeat(rng.uniform(0.05, 1.0, n // 800 + 1), 800)[:n]
    return (rng.standard_normal(n) * env).astype(np.float32)


def _stream(st: StreamingTokenizer, audio: np.ndarray, seed: int) -> np.ndarray:
    """Push in random-size blocks, flush, concatenate."""
    rng = np.random.default_rng(seed)
    st.reset()
    parts, i = [], 0
    while i < len(audio):
        j = i + int(rng.integers(1, 5000))
        parts.append(st.push(audio[i:j]))
        i = j
    parts.append(st.flush())
    return np.concatenate(parts)


def _lengths():
    chunk, shift = SR, int(0.4 * SR)
    special = [0, 1, WIN - 1, WIN, WIN + 1, chunk - 1, chunk, chunk + 1]
    special += [chunk + m * shift + d for m in (1, 2, 5) for d in (-HOP, -1, 0, 1, HOP)]
    rng = np.random.default_rng(3)
    return special + rng.integers(0, 4 * SR, 30).tolist()


@pytest.mark.parametrize("max_context_s", [None, 1.5])
def test_exact_with_enough_lookahead_every_length(max_context_s):
    fn = make_net(c=3)  # right reach 3*320 = 960 samples < lookahead 0.6 s = 9600
    st = StreamingTokenizer(fn, nf, chunk_s=1.0, shift_s=0.4, max_context_s=max_context_s)
    for t, n in enumerate(_lengths()):
        audio = _audio(n, seed=t)
        out = _stream(st, audio, seed=t)
        offline = fn(audio)
        assert len(out) == nf(n) == len(offline), n
        assert np.array_equal(out, offline), n


def test_output_independent_of_push_blocks():
    fn = make_net(c=2)
    st = StreamingTokenizer(fn, nf, chunk_s=0.5, shift_s=0.2)
    audio = _audio(int(2.3 * SR), seed=9)
    ref = st.stream_all(audio, block=SR * 10)  # one push
    for seed in range(3):
        assert np.array_equal(_stream(st, audio, seed), ref)
    short = audio[: int(0.9 * SR)]  # sample-by-sample pushes: same units, linear cost
    assert np.array_equal(st.stream_all(short, block=1), st.stream_all(short, block=len(short)))


def test_short_lookahead_changes_units_but_not_count():
    fn = make_net(c=8)  # right reach 2560 samples > lookahead 0.02 s = 320
    st = StreamingTokenizer(fn, nf, chunk_s=0.5, shift_s=0.48)
    mismatches = 0
    for t, n in enumerate([SR, 2 * SR + 77, 3 * SR + 5]):
        audio = _audio(n, seed=100 + t)
        out = st.stream_all(audio, block=1000)
        agree = stream_agreement(out, fn(audio))
        assert agree["same_length"] and agree["num_offline"] == nf(n)
        mismatches += agree["edit_distance"]
    assert mismatches > 0  # the test would be vacuous if edge effects never showed


def test_tight_capped_context_keeps_count_and_bounds_memory():
    fn = make_net(c=3)
    st = StreamingTokenizer(fn, nf, chunk_s=1.0, shift_s=0.4, max_context_s=1.0)
    for t, n in enumerate([0, 500, SR, 3 * SR + 1, 10 * SR + 123]):
        audio = _audio(n, seed=200 + t)
        out = st.stream_all(audio, block=1600)
        assert len(out) == nf(n)
        assert st.buffered_samples <= st.max_context + 1600 + HOP
    rep = st.latency_report()
    # A context is at most max(max_context, chunk + one frame window).
    assert rep["context_s_max"] <= 1.0 + WIN / SR


def test_multilayer_units_and_latency_report():
    fn = make_net(c=1, layers=3)
    st = StreamingTokenizer(fn, nf, chunk_s=1.0, shift_s=0.4)
    audio = _audio(int(3.1 * SR), seed=4)
    out = st.stream_all(audio, block=3200)
    assert out.shape == (nf(len(audio)), 3) and np.array_equal(out, fn(audio))
    rep = st.latency_report()
    # Steps at 1.0, 1.4, ..., 3.0 s (six) plus the flush.
    assert rep["num_encodes"] == 7 and len(rep["encode_wall_s"]) == 7
    assert rep["lookahead_s"] == pytest.approx(0.6) and rep["max_algorithmic_latency_s"] == 1.0
    assert all(w >= 0 for w in rep["encode_wall_s"]) and rep["keeps_up"] in (True, False)
    assert [s["end_s"] for s in st.steps][:2] == [1.0, 1.4]
    # The first step emits the frames inside the first shift_s (0.4 s): nf(6400) = 19.
    assert st.steps[0]["new_frames"] == nf(int(0.4 * SR))


def test_stream_agreement_values():
    a = stream_agreement(np.array([1, 2, 3, 4]), np.array([1, 2, 3, 4]))
    assert a["exact"] and a["unit_edit_distance"] == 0.0 and a["frame_agreement"] == 1.0
    b = stream_agreement(np.array([1, 2, 3]), np.array([1, 9, 3, 4]))
    assert not b["exact"] and b["edit_distance"] == 2 and b["unit_edit_distance"] == 0.5
    assert b["frame_agreement"] == 0.5 and not b["same_length"]
    assert stream_agreement(np.array([]), np.array([]))["exact"]


def test_errors():
    fn = make_net(c=1)
    with pytest.raises(ValueError, match="shift_s"):
        StreamingTokenizer(fn, nf, chunk_s=0.4, shift_s=0.5)
    with pytest.raises(ValueError, match="max_context_s"):
        StreamingTokenizer(fn, nf, chunk_s=1.0, shift_s=0.5, max_context_s=0.5)
    with pytest.raises(ValueError, match="whole number"):
        StreamingTokenizer(fn, nf, sample_rate=16000, frame_rate=48.0)
    st = StreamingTokenizer(fn, nf)
    st.flush()
    with pytest.raises(RuntimeError, match="flushed"):
        st.push(np.zeros(10))
    bad = StreamingTokenizer(lambda a: np.zeros(3, dtype=np.int64), nf)
    with pytest.raises(ValueError, match="num_frames_fn says"):
        bad.push(np.zeros(SR))

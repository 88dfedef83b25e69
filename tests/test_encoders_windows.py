"""Frame counting and the long-audio window plan: exact tiling, context, hop alignment."""

from __future__ import annotations

import pytest

from speechunits.encoders.base import conv_num_frames, receptive_field
from speechunits.encoders.windows import plan_windows

W2V_KERNELS = (10, 3, 3, 3, 3, 2, 2)
W2V_STRIDES = (5, 2, 2, 2, 2, 2, 2)


def formula(n: int) -> int:
    return max(0, (n - 400) // 320 + 1)


def test_receptive_field_of_wav2vec2_cnn():
    assert receptive_field(W2V_KERNELS, W2V_STRIDES) == (400, 320)


@pytest.mark.parametrize("n", [0, 1, 9, 10, 399, 400, 401, 719, 720, 721, 1039, 1040, 160000, 160001])
def test_conv_frames_edge_cases(n):
    assert conv_num_frames(n, W2V_KERNELS, W2V_STRIDES) == formula(n)


def test_conv_frames_match_formula_for_every_length():
    # The layer-by-layer formula (what the model computes) equals the closed form everywhere.
    for n in range(0, 40000):
        assert conv_num_frames(n, W2V_KERNELS, W2V_STRIDES) == formula(n), n


@pytest.mark.parametrize("window,context", [(10, 0), (10, 4), (37, 3), (64, 16), (7, 1)])
def test_plan_tiles_frames_exactly_with_context(window, context):
    for n in range(0, 300):
        plan = plan_windows(n, window, context)
        if n == 0:
            assert plan == []
            continue
        kept = [f for w in plan for f in range(w.keep_start, w.keep_stop)]
        assert kept == list(range(n)), (n, plan)  # no frame dropped or doubled, in order
        for i, w in enumerate(plan):
            assert 0 <= w.start <= w.keep_start < w.keep_stop <= w.stop <= n
            if len(plan) > 1:
                assert w.stop - w.start == window  # equal lengths: batchable without padding
            if i > 0:
                assert w.keep_start - w.start >= context
            if i < len(plan) - 1:
                assert w.stop - w.keep_stop >= context


def test_plan_window_samples_give_exact_frames():
    win, hop = receptive_field(W2V_KERNELS, W2V_STRIDES)
    for w in plan_windows(5000, 1500, 100):
        a, b = w.samples(win, hop)
        assert a % hop == 0  # hop-aligned: the CNN sees the same samples as in a full run
        assert conv_num_frames(b - a, W2V_KERNELS, W2V_STRIDES) == w.stop - w.start


def test_plan_rejects_too_much_context():
    with pytest.raises(ValueError, match="context"):
        plan_windows(100, 10, 5)

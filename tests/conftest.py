"""Shared fixtures: generated audio, and ../shared/data when it exists (tests skip otherwise)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SPEECHUNITS_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not present: {p}")
    return p


@pytest.fixture
def tone() -> tuple[np.ndarray, int]:
    """One second of a 220 Hz harmonic tone at 44.1 kHz, peak 0.5."""
    sr = 44100
    t = np.arange(sr) / sr
    x = sum(np.sin(2 * np.pi * 220 * h * t) / h for h in range(1, 6))
    return (0.5 * x / np.abs(x).max()).astype(np.float32), sr


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module's tests (two pytest-xdist workers share two cores)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

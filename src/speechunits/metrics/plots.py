"""Plots of the metrics as PNG files (matplotlib, Agg canvas, no pyplot global state).

Each helper writes one figure atomically (temporary file beside the target, then rename), creates
the parent directory and returns the path:

- :func:`plot_correlation`: a proxy-correlation matrix (:mod:`.correlation`) as a heat map in
  ``[-1, 1]`` with the values written in the cells;
- :func:`plot_pphone_given_code`: ``P(phone | code)`` (:mod:`.alignment_metrics`), phones as rows;
- :func:`plot_unit_frequency`: the rank-frequency curve of unit counts, log-log (Zipf plot);
- :func:`plot_bars`: a bar chart of ``{name: value}``.

Example:
    >>> import tempfile, os
    >>> p = plot_bars({"k=100": 0.4, "k=500": 0.6}, os.path.join(tempfile.mkdtemp(), "b.png"), "PNMI")
    >>> os.path.getsize(p) > 5000
    True
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..data.atomic import atomic_write_bytes


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def plot_correlation(matrix: Any, path: str | Path, labels: Sequence[str] | None = None,
                     title: str = "Proxy correlation (Pearson r)") -> Path:
    """Heat map of a square correlation matrix (array, nested lists or ``CorrelationResult``)."""
    if hasattr(matrix, "matrix") and hasattr(matrix, "metrics"):
        labels = labels or matrix.metrics
        matrix = matrix.matrix
    m = np.array(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"correlation matrix must be square, got shape {m.shape}")
    k = m.shape[0]
    labels = list(labels) if labels is not None else [str(i) for i in range(k)]
    side = max(4.0, 0.6 * k + 2)
    fig = _figure(side + 1, side)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(np.ma.masked_invalid(m), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(k), labels, rotation=45, ha="right")
    ax.set_yticks(range(k), labels)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                txt = "n/a" if math.isnan(m[i, j]) else f"{m[i, j]:.2f}"
                ax.text(j, i, txt, ha="center", va="center", fontsize=8,
                        color="white" if abs(np.nan_to_num(m[i, j])) > 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title)
    return _save(fig, path)


def plot_pphone_given_code(matrix: Any, phones: Sequence[str], path: str | Path,
                           title: str = "P(phone | code)") -> Path:
    """Heat map of ``P(phone | code)`` (rows = phones, columns = codes, e.g. from ``pnmi``)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != len(phones):
        raise ValueError(f"matrix of shape {m.shape} does not have {len(phones)} phone rows")
    n_ph, n_code = m.shape
    fig = _figure(min(16.0, 4 + 0.02 * n_code), max(4.0, min(14.0, 0.18 * n_ph + 1.5)))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(m, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(range(n_ph), [str(p) for p in phones], fontsize=max(4, min(9, 400 // max(n_ph, 1))))
    ax.set_xlabel(f"code ({n_code}, sorted by most likely phone)")
    ax.set_ylabel("phone (by frequency)")
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    ax.set_title(title)
    return _save(fig, path)


def plot_unit_frequency(counts: Any, path: str | Path, title: str = "Unit rank-frequency",
                        label: str | None = None) -> Path:
    """Rank-frequency (log-log) of unit counts; a mapping ``{name: counts}`` draws several curves."""
    series = dict(counts) if isinstance(counts, Mapping) else {label or "units": counts}
    fig = _figure(6, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    drawn = False
    for name, c in series.items():
        c = np.sort(np.asarray(c, dtype=np.float64))[::-1]
        c = c[c > 0]
        if len(c):
            ax.loglog(np.arange(1, len(c) + 1), c / c.sum(), label=str(name), linewidth=1.5)
            drawn = True
    if not drawn:
        raise ValueError("no non-zero counts to plot")
    ax.set_xlabel("rank")
    ax.set_ylabel("relative frequency")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def plot_bars(values: Mapping[str, float], path: str | Path, title: str = "",
              ylabel: str = "") -> Path:
    """Bar chart of ``{name: value}`` (NaN drawn as an empty slot), values written on the bars."""
    if not values:
        raise ValueError("nothing to plot")
    names = [str(k) for k in values]
    vals = np.array([float(v) for v in values.values()])
    fig = _figure(max(5.0, 0.5 * len(names) + 2), 4.5)
    ax = fig.add_subplot(1, 1, 1)
    bars = ax.bar(range(len(names)), np.nan_to_num(vals), color="tab:blue")
    for b, v in zip(bars, vals):
        if np.isfinite(v):
            ax.annotate(f"{v:.3g}", (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize=8)
    tilt = len(names) > 4
    ax.set_xticks(range(len(names)), names, rotation=30 if tilt else 0, ha="right" if tilt else "center")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)

"""The evaluation's plots, written as PNG files under ``OUT/plots/`` by :mod:`speechunits.metrics.plots`.

Each helper returns a list of ``{"title", "file"}`` (``file`` relative to ``OUT``), which the
metrics record and the reports embed; a plot with nothing to show is simply not made.

- :func:`layer_plots`: the rank-frequency curve of units (frames, de-duplicated, BPE), the
  P(phone | code) heat map (when alignments exist) and the ABX error bars;
- :func:`ued_plot`: UED per distortion.

Example:
    >>> import numpy as np, tempfile
    >>> p = layer_plots(tempfile.mkdtemp(), "demo", "demo", {"frames": np.array([5, 3, 1])}, None, None)
    >>> [x["title"] for x in p]
    ['Unit rank-frequency: demo']
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from speechunits.metrics import plot_bars, plot_pphone_given_code, plot_unit_frequency

from ._result import is_skipped

PLOT_DIR = "plots"


def plots_unavailable() -> str | None:
    """Why no plot can be drawn (matplotlib missing), or None."""
    if importlib.util.find_spec("matplotlib") is None:
        return "matplotlib is not installed (pip install 'speechunits[report]'): no plots"
    return None


def _rel(out: str | os.PathLike, name: str) -> tuple[Path, str]:
    rel = f"{PLOT_DIR}/{name}.png"
    return Path(out) / rel, rel


def layer_plots(out: str | os.PathLike, slug: str, title: str, counts: Mapping[str, np.ndarray],
                phone_stats: Any, abx: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """Rank-frequency, P(phone | code) and ABX plots of one layer of one dataset."""
    if plots_unavailable():
        return []
    plots = []
    if any(np.asarray(c).sum() > 0 for c in counts.values()):
        path, rel = _rel(out, f"{slug}_units")
        plot_unit_frequency(dict(counts), path, f"Unit rank-frequency: {title}")
        plots.append({"title": f"Unit rank-frequency: {title}", "file": rel})
    if phone_stats is not None:
        path, rel = _rel(out, f"{slug}_pphone")
        plot_pphone_given_code(phone_stats.p_label_given_code, phone_stats.labels, path,
                               f"P(phone | code): {title}")
        # one column per code: a large codebook needs the page's whole width
        plots.append({"title": f"P(phone | code): {title}", "file": rel, "wide": len(phone_stats.codes) > 64})
    bars = {}
    for kind in ("units", "features"):
        sec = (abx or {}).get(kind)
        for mode in ("within", "across"):
            r = sec.get(mode) if isinstance(sec, dict) and not is_skipped(sec) else None
            if r is not None and not is_skipped(r) and r.get("error") is not None:
                bars[f"{kind}\n{mode}"] = 100.0 * r["error"]
    if bars:
        path, rel = _rel(out, f"{slug}_abx")
        plot_bars(bars, path, f"ABX error: {title}", "error (%)")
        plots.append({"title": f"ABX error: {title}", "file": rel})
    return plots


def ued_plot(out: str | os.PathLike, slug: str, robustness: Mapping[str, Any], title: str) -> list[dict[str, str]]:
    """Bar chart of UED per distortion (empty when robustness was skipped)."""
    if is_skipped(robustness) or plots_unavailable():
        return []
    vals = {name: r["ued"] for name, r in robustness["distortions"].items() if not is_skipped(r)}
    if not vals:
        return []
    path, rel = _rel(out, f"{slug}_ued")
    plot_bars(vals, path, f"Unit edit distance under distortion: {title}", "UED (de-duplicated)")
    return [{"title": f"UED per distortion: {title}", "file": rel}]

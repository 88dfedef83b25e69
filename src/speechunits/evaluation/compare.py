"""Compare several evaluations: one table of headline proxies, bar plots, and (given downstream
scores) the Pearson correlation of every proxy and score across tokenizers, DC-Spin style.

Rows come from each evaluation's ``summary`` (one per dataset and layer). A row is labelled by
the evaluation's name, plus `` / dataset`` when the evaluation covers several datasets and
`` L<layer>`` when the tokenizer has several layers (``dataset=`` keeps one dataset per evaluation).

**Scores** are ``{tokenizer: {score: value}}``; a key matches a row's label, or an evaluation's
name when that evaluation has exactly one row. Before correlating, every lower-is-better metric
is negated, so a positive r always means "better proxy, better score" (as in the DC-Spin paper):
the proxies in :data:`~.run.LOWER_IS_BETTER` (ABX errors, perplexity, UED), and scores whose name
contains one of :data:`LOWER_SCORE_HINTS` (``wer``, ``cer``, ``per``, ``error``, ``loss``, ``nll``,
``ppl``, ``perplexity``) unless listed in ``higher_is_better``, plus any in ``lower_is_better``.
Speed (RTF) is shown in the table but is not a quality proxy and is left out of the correlation.

Example:
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name, pnmi in (("a", 0.3), ("b", 0.5), ("c", 0.6)):
    ...     (d / name).mkdir()
    ...     m = {"name": name, "summary": [{"dataset": "x", "layer": 0, "pnmi": pnmi}]}
    ...     _ = (d / name / "metrics.json").write_text(json.dumps(m))
    >>> scores = {"a": {"wer": 30}, "b": {"wer": 20}, "c": {"wer": 12}}
    >>> r = compare([d / "a", d / "b", d / "c"], d / "cmp", scores=scores)
    >>> round(r["correlation"]["matrix"][0][1], 3), r["correlation"]["negated"]
    (0.992, ['wer'])
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from speechunits.data.atomic import atomic_write_text
from speechunits.metrics import plot_bars, plot_correlation, proxy_correlation

from . import doc
from ._result import json_safe
from .plots import PLOT_DIR, plots_unavailable
from .run import HEADLINE, LOWER_IS_BETTER

LOWER_SCORE_HINTS = ("wer", "cer", "per", "error", "loss", "nll", "ppl", "perplexity")
NOT_PROXIES = ("rtf", "stream_rtf", "stream_ued", "pnmi_chance", "position_nmi", "position_nmi_margin")


def load_eval(path: str | os.PathLike) -> dict[str, Any]:
    """``metrics.json`` of an evaluation directory (or the file itself)."""
    p = Path(path)
    f = p / "metrics.json" if p.is_dir() else p
    if not f.is_file():
        raise FileNotFoundError(f"{p}: no metrics.json (run `speechunits eval --out {p}` first)")
    try:
        m = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{f}: not valid JSON ({e})") from None
    if not isinstance(m, dict) or "summary" not in m:
        raise ValueError(f"{f}: not a speechunits evaluation (no 'summary')")
    return m


def comparison_rows(evals: Sequence[Mapping[str, Any]], dataset: str | None = None) -> list[dict[str, Any]]:
    """One row per (evaluation, dataset, layer): ``{"label", "name", "dataset", "layer", metrics...}``."""
    rows = []
    for i, m in enumerate(evals):
        name = str(m.get("name") or f"eval{i}")
        summ = [r for r in m["summary"] if dataset is None or r["dataset"] == dataset]
        if dataset is not None and not summ:
            raise ValueError(f"evaluation {name!r} has no dataset {dataset!r} "
                             f"(it has {sorted({r['dataset'] for r in m['summary']})})")
        multi_ds = len({r["dataset"] for r in summ}) > 1
        multi_layer = len({r["layer"] for r in summ}) > 1
        for r in summ:
            label = name + (f" / {r['dataset']}" if multi_ds else "") + (f" L{r['layer']}" if multi_layer else "")
            rows.append({"label": label, "name": name, "single": len(summ) == 1, **r})
    labels = [r["label"] for r in rows]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ValueError(f"two evaluations share the label(s) {dup}: give them different --name")
    return rows


def score_direction(name: str, lower: Sequence[str] = (), higher: Sequence[str] = ()) -> bool:
    """True when a downstream score is lower-is-better (see the module docstring).

    >>> score_direction("asr_wer"), score_direction("swuggy_acc"), score_direction("wer", higher=["wer"])
    (True, False, False)
    """
    if name in higher:
        return False
    return name in lower or any(h in name.lower() for h in LOWER_SCORE_HINTS)


def compare(
    eval_dirs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    scores: Mapping[str, Mapping[str, float]] | None = None,
    dataset: str | None = None,
    lower_is_better: Sequence[str] = (),
    higher_is_better: Sequence[str] = (),
) -> dict[str, Any]:
    """Write ``compare.json``, ``compare.md``, ``compare.html`` and plots to ``out``; return the JSON."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = comparison_rows([load_eval(d) for d in eval_dirs], dataset)
    metrics = [(k, label, low) for k, label, low in HEADLINE if any(r.get(k) is not None for r in rows)]
    plots = []
    for key, label, low in (metrics if not plots_unavailable() else []):
        vals = {r["label"].replace(" / ", "\n"): r.get(key) for r in rows}  # two-line tick labels
        rel = f"{PLOT_DIR}/compare_{key}.png"
        plot_bars({k: (float("nan") if v is None else v) for k, v in vals.items()}, out / rel,
                  f"{label} ({'lower' if low else 'higher'} is better)")
        plots.append({"title": label, "file": rel})
    result: dict[str, Any] = {"rows": rows, "metrics": [k for k, _, _ in metrics], "plots": plots,
                              "correlation": None, "unmatched_scores": []}
    if scores:
        result.update(_correlate(rows, metrics, scores, lower_is_better, higher_is_better, out))
    result = json_safe(result)
    blocks = _blocks(result, metrics)
    atomic_write_text(out / "compare.json", json.dumps(result, indent=2, allow_nan=False) + "\n")
    atomic_write_text(out / "compare.md", doc.to_markdown(blocks))
    atomic_write_text(out / "compare.html", doc.to_html(blocks, title="Tokenizer comparison", base=out))
    return result


def _correlate(rows: list[dict], metrics: list, scores: Mapping[str, Mapping[str, float]],
               lower: Sequence[str], higher: Sequence[str], out: Path) -> dict[str, Any]:
    by_label = {r["label"]: r for r in rows}
    by_name = {r["name"]: r for r in rows if r["single"]}
    table: dict[str, dict[str, float]] = {}
    unmatched = []
    for key, sc in scores.items():
        r = by_label.get(key) or by_name.get(key)
        if r is None:
            unmatched.append(key)
            continue
        table[r["label"]] = {k: float(v) for k, v in sc.items() if v is not None}
    proxies = [k for k, _, _ in metrics if k not in NOT_PROXIES]
    score_names = list(dict.fromkeys(s for sc in table.values() for s in sc))
    full = {r["label"]: {**{k: r.get(k) for k in proxies if r.get(k) is not None}, **table.get(r["label"], {})}
            for r in rows}
    negate = [k for k in proxies if k in LOWER_IS_BETTER]
    negate += [s for s in score_names if score_direction(s, lower, higher)]
    corr = proxy_correlation(full, lower_is_better=negate, metrics=proxies + score_names)
    rel = None if plots_unavailable() else f"{PLOT_DIR}/compare_correlation.png"
    if rel:
        plot_correlation(corr, out / rel, title="Pearson r across tokenizers (lower-is-better negated)")
    return {"correlation": corr.to_dict(), "scores": table, "score_names": score_names,
            "unmatched_scores": unmatched, "correlation_plot": rel}


def _blocks(res: dict[str, Any], metrics: list) -> list[tuple]:
    rows = res["rows"]
    b = [doc.h(1, "Tokenizer comparison"),
         doc.p("Headline proxies of each evaluation (↑ higher is better, ↓ lower is better; — skipped "
               "in that evaluation, see its report)."),
         doc.table(["metric"] + [r["label"] for r in rows],
                   [[label + (" ↓" if low else " ↑")] + [r.get(k) for r in rows] for k, label, low in metrics])]
    corr = res.get("correlation")
    if corr:
        names, scores = corr["metrics"], res.get("score_names", [])
        idx = {n: i for i, n in enumerate(names)}
        b += [doc.h(2, "Correlation of proxies and downstream scores", "correlation"),
              doc.p(f"Pearson r across tokenizers, after negating the lower-is-better metrics "
                    f"({', '.join(corr['negated']) or 'none'}), so a positive r means the two agree on which "
                    "tokenizer is better. Each pair uses the tokenizers that have both values (n); the 95 % "
                    "interval is Fisher's z (none below n = 4). The heat "
                    "map shows every pair; compare.json holds the full matrix.")]
        if corr.get("note"):
            b.append(doc.note(corr["note"]))
        if scores:
            def cell(m: str, s: str) -> str:
                i, j = idx[m], idx[s]
                lows, highs = corr.get("ci_low"), corr.get("ci_high")
                lo, hi = (lows[i][j], highs[i][j]) if lows and highs else (None, None)
                ci = f" [{doc.fmt(lo)}, {doc.fmt(hi)}]" if lo is not None and hi is not None else ""
                return f"{doc.fmt(corr['matrix'][i][j])}{ci} ({corr['n'][i][j]})"

            b.append(doc.table(["proxy"] + [f"{s}: r [95 % CI] (n)" for s in scores],
                               [[m] + [cell(m, s) for s in scores] for m in names if m not in scores]))
        if res.get("unmatched_scores"):
            b.append(doc.note(f"scores for unknown tokenizers (ignored): {', '.join(res['unmatched_scores'])}; "
                              f"row labels are {', '.join(r['label'] for r in rows)}"))
        if res.get("correlation_plot"):
            b.append(doc.img("Proxy correlation", res["correlation_plot"]))
    b.append(doc.h(2, "Plots", "plots"))
    b += [doc.img(p["title"], p["file"]) for p in res["plots"]]
    return b

"""Run every proxy of token quality for one tokenizer on one or more datasets.

:func:`evaluate` loads each dataset, tokenizes it once (keeping the continuous features of the
aligned utterances for ABX), then per layer of the tokenizer computes codebook statistics,
PNMI/CNMI, ABX on units and features, and 4-gram perplexity; per dataset it runs the robustness
distortions and the speed measurements. Every section is timed. The result is the JSON-able
``metrics`` dict that :mod:`.report` writes (``metrics.json``, ``report.md``, ``report.html``);
plots go to ``OUT/plots/``.

Each dataset is its own section, so a quantizer fitted on one corpus and evaluated on several
(``--data A --data B``) gives the domain-transfer comparison in one run. A multi-layer tokenizer
(units ``[T, L]``) is evaluated per layer: each layer's codebook is one unit stream with its own
``k``, its own features and its own centroids; speed is measured once for the whole tokenizer.

Example:
    >>> import numpy as np, soundfile as sf, tempfile, pathlib
    >>> from speechunits.encoders import load_encoder
    >>> from speechunits.fit import fit_tokenizer
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> rng = np.random.default_rng(0)
    >>> for i in range(3):
    ...     sf.write(d / f"u{i}.wav", rng.standard_normal(16000).astype("float32") * 0.1, 16000)
    >>> tok = fit_tokenizer(load_encoder("mfcc"), [str(d / "u0.wav")], layers=[0], k=8, seed=0)
    >>> m = evaluate(tok, [d], EvalConfig(distortions=["identity"], progress=False), out=d / "eval")
    >>> m["datasets"][0]["layers"]["0"]["pnmi"]["skipped"]
    True
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from speechunits import __version__
from speechunits.data.loader import describe_failure

from ._result import is_skipped, json_safe, skipped
from .abx import AbxSettings, abx_section
from .dataset import SAMPLE_RATE, EvalData, load_dataset, subset_by_seconds
from .defaults import DEFAULT_DISTORTIONS, SECTIONS
from .plots import layer_plots, plots_unavailable, ued_plot
from .quality import alignment_section, codebook_section, lm_split, ngram_section, position_section
from .robustness import layer_view, parse_distortion, robustness
from .speed import offline_speed, streaming_speed

SCHEMA = "speechunits-eval/1"


@dataclass
class EvalConfig:
    """Everything that changes the numbers (recorded in metrics.json as ``settings``)."""

    seed: int = 0
    max_utterances: int | None = None
    alignments: str = "auto"
    distortions: Sequence[str] = DEFAULT_DISTORTIONS
    robustness_seconds: float | None = 600.0  # audio per dataset the distortions run on
    speed_seconds: float | None = 300.0  # audio timed offline, one utterance per call
    stream_seconds: float | None = 60.0  # audio pushed through the streaming tokenizer
    chunk_s: float = 1.0
    shift_s: float = 0.4
    ngram_order: int = 4
    train_units: str | None = None
    train_data: str | None = None
    abx: AbxSettings = field(default_factory=AbxSettings)
    abx_features: bool = True
    skip: Sequence[str] = ()
    vocoder: str | None = None  # a vocoder folder (or "default"): adds the resynthesis section
    resynthesis_seconds: float | None = 120.0  # audio per dataset resynthesized and scored
    resynthesis_examples: int = 3  # original / copy / resynthesized triples kept as WAV
    vocoder_layers: Sequence[int] | None = None  # a multi-layer vocoder: speak these of its layers
    plots: bool = True
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("progress")
        d["distortions"] = list(self.distortions)
        d["skip"] = list(self.skip)
        return d


def evaluate(
    tokenizer: Any,
    data: Sequence[str | os.PathLike | EvalData],
    config: EvalConfig | None = None,
    *,
    out: str | os.PathLike,
    name: str | None = None,
    tokenizer_path: str | None = None,
    robustness_engine: Any = None,
) -> dict[str, Any]:
    """All metrics of ``tokenizer`` on each dataset; plots under ``out/plots``; returns metrics.
    ``robustness_engine``: runs the robustness section's work items (the ``run_items`` of
    :func:`.robustness.robustness`, e.g. ``distributed.ray_eval.RayRobustness``); default here."""
    cfg = config or EvalConfig()
    unknown = set(cfg.skip) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown section(s) to skip {sorted(unknown)}; choose from {SECTIONS}")
    cfg = replace(cfg, abx=replace(cfg.abx, seed=cfg.seed))  # one seed for everything
    distortions = [parse_distortion(d) for d in cfg.distortions]
    out = Path(out)
    lm_train, lm_desc, lm_data = _lm_training_units(tokenizer, cfg)
    resynth = None  # (the vocoder, the scorers): loaded once for every dataset
    if cfg.vocoder and "resynthesis" not in cfg.skip:  # loaded (and checked) before any data is
        from speechunits.vocoder.resynth import resolve
        from speechunits.vocoder.vocoder import UnitVocoder

        from speechunits.metrics.resynthesis import load_scorers

        resynth = (UnitVocoder.from_pretrained(resolve(cfg.vocoder), tokenizer=tokenizer), load_scorers())
    datasets: list[dict[str, Any]] = []
    for src in data:
        ds = src if isinstance(src, EvalData) else None
        names = {d["data"]["name"] for d in datasets}
        datasets.append(_evaluate_dataset(tokenizer, ds, src, cfg, distortions, lm_train, lm_desc, out, names,
                                          resynth, robustness_engine))
    cfg_tok = tokenizer.config()
    metrics = {
        "schema": SCHEMA,
        "speechunits_version": __version__,
        "name": name or (Path(tokenizer_path).name if tokenizer_path else "tokenizer"),
        "tokenizer": {
            "path": tokenizer_path,
            "encoder": cfg_tok["encoder"].get("name"),
            "layers": tokenizer.layers,
            "k": tokenizer.vocab_sizes,
            "frame_rate": tokenizer.frame_rate,
            "quantizer": cfg_tok["quantizer"].get("type"),
            "bpe_vocab_size": None if tokenizer.bpe is None else tokenizer.bpe.vocab_size,
            "provenance": tokenizer.provenance(),
        },
        "settings": cfg.to_dict(),
        "notes": [n for n in (plots_unavailable() if cfg.plots else "plots disabled (--no-plots)",) if n],
        "datasets": datasets,
        # --train-data: what the n-gram LM was trained on, with the utterances left out (and why)
        "lm_train_data": None if lm_data is None else lm_data.summary(),
        "summary": [dict(dataset=d["data"]["name"], layer=int(layer), **headline(sec, d.get("speed")))
                    for d in datasets for layer, sec in d["layers"].items()],
    }
    return json_safe(metrics)


# --------------------------------------------------------------------------- one dataset
def _evaluate_dataset(tok: Any, ds: EvalData | None, src: Any, cfg: EvalConfig, distortions: list,
                      lm_train: list[np.ndarray] | None, lm_desc: str, out: Path, taken: set[str],
                      resynth: tuple | None = None, robustness_engine: Any = None) -> dict[str, Any]:
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if ds is None:
        ds = load_dataset(src, max_utterances=cfg.max_utterances, seed=cfg.seed, alignments=cfg.alignments,
                          progress=cfg.progress)
    timings["load"] = time.perf_counter() - t
    base, n = ds.name, 1
    while ds.name in taken:  # names key report sections and plot files: keep them distinct
        n += 1
        ds.name = f"{base} ({n})"
    if ds.num_utterances == 0:
        raise ValueError(f"{ds.source}: no usable utterance ({len(ds.failed)} failed)")
    window_s = tok.encoder.config()["window_samples"] / tok.encoder.sample_rate
    keep_feats = cfg.abx_features and "abx" not in cfg.skip
    t = time.perf_counter()
    failures: dict[int, str] = {}
    units, feats = tokenize_with_features(tok, ds.waves, [a is not None and keep_feats for a in ds.alignments],
                                          progress=cfg.progress, failures=failures)
    if failures:  # the utterances the encoder failed on are left out, with the reason, like bad audio
        ds.drop(failures)
        if ds.num_utterances == 0:
            raise ValueError(f"{ds.source}: no usable utterance ({len(ds.failed)} failed)")
    timings["tokenize"] = time.perf_counter() - t
    audio_s = ds.seconds
    result: dict[str, Any] = {
        "data": ds.summary(),
        "tokenize": {"seconds": timings["tokenize"], "rtf": timings["tokenize"] / audio_s,
                     "note": "encoder + quantizer over every utterance, features kept for ABX"},
        "layers": {},
    }
    slug = re.sub(r"[^A-Za-z0-9]+", "_", ds.name).strip("_") or "data"
    slugs = {str(layer): f"{slug}_L{layer}" for layer in tok.layers}
    for j, layer in enumerate(tok.layers):
        ids = [u if u.ndim == 1 else u[:, j] for u in units]
        lf = None if feats is None else [None if f is None else f[:, j] for f in feats]
        result["layers"][str(layer)] = _evaluate_layer(tok, ds, j, ids, lf, cfg, window_s, lm_train, lm_desc,
                                                       timings, out, slugs[str(layer)])
    _robustness(tok, ds, units, cfg, distortions, result, timings, robustness_engine)
    for layer, sec in result["layers"].items():
        t = time.perf_counter()
        if cfg.plots:
            sec["plots"] += ued_plot(out, slugs[layer], sec["robustness"], f"{ds.name}, layer {layer}")
        timings["plots"] = timings.get("plots", 0.0) + time.perf_counter() - t
    _speed(tok, ds, units, cfg, result, timings)
    if resynth is not None:
        from .resynthesis import resynthesis_section

        t = time.perf_counter()
        result["resynthesis"] = resynthesis_section(resynth[0], tok, ds, seconds=cfg.resynthesis_seconds,
                                                    examples=cfg.resynthesis_examples, out=out, slug=slug,
                                                    seed=cfg.seed, layers=cfg.vocoder_layers, scorers=resynth[1])
        timings["resynthesis"] = time.perf_counter() - t
    result["timings_s"] = timings
    result["timings_s"]["total"] = sum(timings.values())
    return result


def _evaluate_layer(tok: Any, ds: EvalData, j: int, ids: list[np.ndarray], feats: list | None, cfg: EvalConfig,
                    window_s: float, lm_train: list | None, lm_desc: str, timings: dict, out: Path,
                    slug: str) -> dict[str, Any]:
    k, fr, layer = tok.vocab_sizes[j], tok.frame_rate, tok.layers[j]
    sec: dict[str, Any] = {"k": k}

    def timed(key: str, fn):
        t = time.perf_counter()
        r = fn()
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - t
        return r

    bpe = (lambda x: tok.postprocess(x, bpe=True).ids) if tok.bpe is not None else None
    sec["codebook"], counts = timed("codebook", lambda: codebook_section(
        ids, k, fr, bpe, None if tok.bpe is None else tok.bpe.vocab_size))
    phone_stats = None
    off = "alignments disabled (--alignments none)" if ds.alignment_mode == "none" else None
    if "alignment" in cfg.skip or off:
        sec["pnmi"] = sec["cnmi"] = skipped(off or "disabled (--skip alignment)")
    else:
        ali, phone_stats = timed("alignment", lambda: alignment_section(ids, ds.alignments, fr, window_s))
        sec.update(ali)
    sec["position"] = timed("position", lambda: position_section(ids, fr, sec.get("pnmi")))
    if "abx" in cfg.skip or off:
        sec["abx"] = skipped(off or "disabled (--skip abx)")
    else:
        centroids = _centroids(tok, layer)
        sec["abx"] = timed("abx", lambda: abx_section(
            ids, feats, ds.alignments, ds.speakers, fr, window_s, centroids=centroids, settings=cfg.abx))
        if not cfg.abx_features and not is_skipped(sec["abx"]["units"]):
            sec["abx"]["features"] = skipped("disabled (--no-abx-features)")
    if "ngram" in cfg.skip:
        sec["ngram"] = skipped("disabled (--skip ngram)")
    else:
        sec["ngram"] = timed("ngram", lambda: _ngram(ids, j, k, ds, cfg, lm_train, lm_desc))
    sec["plots"] = [] if not cfg.plots else timed("plots", lambda: layer_plots(
        out, slug, f"{ds.name}, layer {layer}", counts, phone_stats, sec.get("abx")))
    return sec


def _ngram(ids: list[np.ndarray], j: int, k: int, ds: EvalData, cfg: EvalConfig, lm_train: list | None,
           lm_desc: str) -> dict[str, Any]:
    if lm_train is not None:
        train = [u if u.ndim == 1 else u[:, j] for u in lm_train]
        return ngram_section(train, ids, k, cfg.ngram_order, lm_desc)
    if len(ids) < 2:
        return skipped("one utterance: the 80/20 split needs at least 2 (or pass --train-units/--train-data)")
    tr, te = lm_split(len(ids), cfg.seed)
    desc = f"80/20 by utterance within the dataset (seeded permutation, seed {cfg.seed})"
    return ngram_section([ids[i] for i in tr], [ids[i] for i in te], k, cfg.ngram_order, desc)


def _robustness(tok: Any, ds: EvalData, units: list, cfg: EvalConfig, distortions: list, result: dict,
                timings: dict, engine: Any = None) -> None:
    if "robustness" in cfg.skip or not distortions:
        reason = "disabled (--skip robustness)" if "robustness" in cfg.skip else "no distortions asked for"
        for sec in result["layers"].values():
            sec["robustness"] = skipped(reason)
        return
    t = time.perf_counter()
    idx = subset_by_seconds([len(w) for w in ds.waves], cfg.robustness_seconds, cfg.seed, "robustness")
    subset = {"utterances": len(idx), "seconds": sum(len(ds.waves[i]) for i in idx) / SAMPLE_RATE,
              "max_seconds": cfg.robustness_seconds}
    res = robustness(lambda w: tok.frame_units([w])[0], [ds.waves[i] for i in idx], [ds.utts[i].id for i in idx],
                     distortions, seed=cfg.seed, clean=[units[i] for i in idx], progress=cfg.progress,
                     run_items=engine)
    for j, sec in enumerate(result["layers"].values()):
        sec["robustness"] = layer_view(res, j, subset)
    timings["robustness"] = time.perf_counter() - t


def _speed(tok: Any, ds: EvalData, units: list, cfg: EvalConfig, result: dict, timings: dict) -> None:
    if "speed" in cfg.skip:
        result["speed"] = skipped("disabled (--skip speed)")
        return
    t = time.perf_counter()
    lengths = [len(w) for w in ds.waves]
    sync = torch.cuda.synchronize if str(tok.encoder.device).startswith("cuda") else None
    idx = subset_by_seconds(lengths, cfg.speed_seconds, cfg.seed, "speed")
    result["speed"] = {"offline": offline_speed(tok, [ds.waves[i] for i in idx], sync)}
    idx = subset_by_seconds(lengths, cfg.stream_seconds, cfg.seed, "streaming")
    result["speed"]["streaming"] = streaming_speed(
        tok, [ds.waves[i] for i in idx], [ds.utts[i].id for i in idx], chunk_s=cfg.chunk_s, shift_s=cfg.shift_s,
        offline=[units[i] for i in idx] if len(tok.layers) == 1 else None, progress=cfg.progress)
    result["speed"]["device"] = str(tok.encoder.device)
    result["speed"]["torch_threads"] = torch.get_num_threads()
    timings["speed"] = time.perf_counter() - t


# --------------------------------------------------------------------------- helpers
def tokenize_with_features(tok: Any, waves: Sequence[np.ndarray], keep: Sequence[bool],
                           progress: bool = False, failures: dict[int, str] | None = None,
                           ) -> tuple[list[np.ndarray], list | None]:
    """Frame ids (``[T]`` or ``[T, L]``) of every wave, and float16 features ``[T, L, D]`` where
    ``keep`` (None elsewhere; None overall when nothing is kept). One encoder pass per utterance:
    the same calls ``Tokenizer.frame_units`` makes, so the ids are identical to it. With
    ``failures``, an utterance whose encoding raises is left out of both lists and recorded there
    (index -> reason) instead of stopping the evaluation."""
    from tqdm import tqdm

    units, feats = [], []
    for i, (w, k) in enumerate(zip(tqdm(waves, unit="utt", desc="tokenize", disable=not progress), keep)):
        try:
            f = tok.encoder.encode([w], tok.layers)[0]
            ids = tok.quantizer.assign(f, input_layers=tok.layers).cpu().numpy().astype(np.int64)
        except Exception as e:
            if failures is None:
                raise
            failures[i] = describe_failure(e, "encoding")
            continue
        units.append(ids[:, 0] if ids.shape[1] == 1 else ids)
        feats.append(f.numpy().astype(np.float16) if k else None)  # float16: half the memory, ABX-exact enough
    return units, (feats if any(keep) else None)


def _centroids(tok: Any, layer: int) -> np.ndarray | None:
    """k-means centroids of ``layer`` (None for other quantizers: ABX falls back to one-hot)."""
    qs = getattr(tok.quantizer, "quantizers", None)
    if not qs or layer not in qs or getattr(qs[layer], "centroids", None) is None:
        return None
    return qs[layer].centroids.detach().float().cpu().numpy()


def _lm_training_units(tok: Any, cfg: EvalConfig) -> tuple[list[np.ndarray] | None, str, EvalData | None]:
    """Units the n-gram LM is trained on, from ``train_units`` (a unit file of this tokenizer) or
    ``train_data`` (audio, tokenized here; returned too, with its failed utterances); (None, "",
    None) when neither is given."""
    if cfg.train_units and cfg.train_data:
        raise ValueError("give --train-units or --train-data, not both")
    if cfg.train_units:
        from .dataset import read_training_units

        return read_training_units(cfg.train_units, tok), f"trained on the units in {cfg.train_units}", None
    if cfg.train_data:
        ds = load_dataset(cfg.train_data, alignments="none", progress=cfg.progress)
        failures: dict[int, str] = {}
        units, _ = tokenize_with_features(tok, ds.waves, [False] * ds.num_utterances, progress=cfg.progress,
                                          failures=failures)
        ds.drop(failures)  # an encoder failure costs that utterance only, recorded as for evaluated data
        if not units:
            raise ValueError(f"{cfg.train_data}: no usable utterance to train the n-gram LM on "
                             f"({len(ds.failed)} failed)")
        return units, f"trained on {ds.num_utterances} utterances of {cfg.train_data}", ds
    return None, "", None


HEADLINE: tuple[tuple[str, str, bool], ...] = (
    # key, label, lower is better
    ("utilization", "utilization", False),
    ("entropy_bits", "entropy (bits/token, dedup)", False),
    ("entropy_bitrate", "entropy bitrate (bit/s, dedup)", False),
    ("nominal_bitrate", "nominal bitrate (bit/s, dedup)", False),
    ("pnmi", "PNMI", False),
    ("pnmi_chance", "PNMI, codes permuted (chance level)", False),
    ("cnmi", "CNMI", False),
    ("position_nmi", "position NMI (leakage)", True),
    ("position_nmi_margin", "position NMI over chance", True),
    ("phone_purity", "phone purity", False),
    ("abx_within_units_pct", "ABX within, units (%)", True),
    ("abx_across_units_pct", "ABX across, units (%)", True),
    ("abx_within_features_pct", "ABX within, features (%)", True),
    ("abx_across_features_pct", "ABX across, features (%)", True),
    ("ngram_perplexity", "4-gram perplexity", True),
    ("ued_mean", "mean UED", True),
    ("rtf", "RTF offline", True),
    ("stream_rtf", "RTF streaming", True),
    ("stream_ued", "UED stream vs offline", True),
)
LOWER_IS_BETTER = tuple(k for k, _, low in HEADLINE if low)


def headline(sec: dict[str, Any], speed: dict[str, Any] | None) -> dict[str, float | None]:
    """The flat row of headline proxies of one layer (None where skipped)."""
    def get(d: Any, *path: str) -> Any:
        for p in path:
            if not isinstance(d, dict) or is_skipped(d) or p not in d:
                return None
            d = d[p]
        return None if is_skipped(d) else d

    def pct(v: Any) -> Any:
        return None if v is None else 100.0 * v

    return {
        "utilization": get(sec, "codebook", "frames", "utilization"),
        "entropy_bits": get(sec, "codebook", "dedup", "entropy_bits"),
        "entropy_bitrate": get(sec, "codebook", "dedup", "entropy_bitrate"),
        "nominal_bitrate": get(sec, "codebook", "dedup", "nominal_bitrate"),
        "pnmi": get(sec, "pnmi", "nmi"),
        "pnmi_chance": get(sec, "pnmi", "nmi_chance"),
        "cnmi": get(sec, "cnmi", "nmi"),
        "position_nmi": get(sec, "position", "nmi"),
        "position_nmi_margin": get(sec, "position", "margin"),
        "phone_purity": get(sec, "pnmi", "label_purity"),
        "abx_within_units_pct": pct(get(sec, "abx", "units", "within", "error")),
        "abx_across_units_pct": pct(get(sec, "abx", "units", "across", "error")),
        "abx_within_features_pct": pct(get(sec, "abx", "features", "within", "error")),
        "abx_across_features_pct": pct(get(sec, "abx", "features", "across", "error")),
        "ngram_perplexity": get(sec, "ngram", "perplexity"),
        "ued_mean": get(sec, "robustness", "mean_ued"),
        "rtf": get(speed, "offline", "rtf"),
        "stream_rtf": get(speed, "streaming", "rtf"),
        "stream_ued": get(speed, "streaming", "unit_edit_distance"),
    }

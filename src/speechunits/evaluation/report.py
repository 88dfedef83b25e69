"""Write an evaluation: ``metrics.json``, ``report.md`` and a self-contained ``report.html``.

The reports are rendered from the metrics dict alone (plus the PNGs it names), so
``write_report(json.load(open("metrics.json")), out)`` rebuilds them. Layout: the tokenizer and
settings; a summary table with the datasets side by side (domain transfer); then per dataset its
data, per layer the codebook, alignment (PNMI/CNMI), ABX, n-gram and robustness sections with
plots, the speed section, the time each section took, and every skipped metric with its reason.

Example:
    >>> import tempfile, pathlib
    >>> m = {"name": "t", "tokenizer": {}, "settings": {}, "datasets": [], "summary": []}
    >>> paths = write_report(m, tempfile.mkdtemp())
    >>> sorted(pathlib.Path(p).name for p in paths)
    ['metrics.json', 'report.html', 'report.md']
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from speechunits.data.atomic import atomic_write_text

from . import doc
from ._result import is_skipped, json_safe
from .run import HEADLINE

CODEBOOK_COLS = [("num_tokens", "tokens"), ("token_rate_hz", "rate (Hz)"), ("used", "used"),
                 ("utilization", "utilization"), ("tokens_95", "tokens for 95%"),
                 ("share_tokens_95", "share for 95%"), ("top20_coverage", "top-20% coverage"),
                 ("entropy_bits", "entropy (bits)"), ("entropy_bitrate", "entropy bitrate (bit/s)"),
                 ("nominal_bitrate", "nominal bitrate (bit/s)")]
NMI_COLS = [("nmi", "NMI"), ("nmi_chance", "NMI, codes permuted"), ("h_label_bits", "H(label) bits"), ("h_label_given_code_bits", "H(label|code) bits"),
            ("label_purity", "label purity"), ("cluster_purity", "cluster purity"), ("num_frames", "frames"),
            ("num_labels", "labels"), ("num_codes_used", "codes used")]


def write_report(metrics: dict[str, Any], out: str | os.PathLike) -> list[Path]:
    """Write ``metrics.json``, ``report.md``, ``report.html`` into ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    blocks = report_blocks(metrics)
    title = f"Token quality: {metrics.get('name', 'tokenizer')}"
    paths = [out / "metrics.json", out / "report.md", out / "report.html"]
    atomic_write_text(paths[0], json.dumps(json_safe(metrics), indent=2, allow_nan=False) + "\n")
    atomic_write_text(paths[1], doc.to_markdown(blocks))
    atomic_write_text(paths[2], doc.to_html(blocks, title=title, base=out))
    return paths


def report_blocks(m: dict[str, Any]) -> list[tuple]:
    tok, st = m.get("tokenizer", {}), m.get("settings", {})
    b = [doc.h(1, f"Token quality: {m.get('name', 'tokenizer')}")]
    b.append(doc.p(
        f"Encoder `{tok.get('encoder')}`, layers {tok.get('layers')}, k {tok.get('k')}, "
        f"{doc.fmt(tok.get('frame_rate'))} Hz, quantizer `{tok.get('quantizer')}`, "
        f"BPE {tok.get('bpe_vocab_size') or 'none'}. Seed {st.get('seed')}; speechunits "
        f"{m.get('speechunits_version')}. Definitions of every metric: docs/evaluation.md."))
    b += [doc.note(n) for n in m.get("notes", [])]
    b += _summary(m)
    for d in m.get("datasets", []):
        b += _dataset(d)
    return b


def _summary(m: dict[str, Any]) -> list[tuple]:
    rows = m.get("summary", [])
    if not rows:
        return []
    multi_layer = len({r["layer"] for r in rows}) > 1
    cols = [r["dataset"] + (f" (layer {r['layer']})" if multi_layer else "") for r in rows]
    body = [[label + (" ↓" if low else " ↑")] + [r.get(key) for r in rows] for key, label, low in HEADLINE]
    return [doc.h(2, "Summary", "summary"),
            doc.p("Headline proxies per dataset (↑ higher is better, ↓ lower is better; — skipped, "
                  "reasons below). Several datasets side by side measure domain transfer."),
            doc.table(["metric"] + cols, body)]


def _dataset(d: dict[str, Any]) -> list[tuple]:
    data = d["data"]
    b = [doc.h(2, f"Dataset: {data['name']}")]
    b.append(doc.p(
        f"Source `{data['source']}`: {data['utterances']} utterances evaluated of {data['utterances_in_manifest']}, "
        f"{doc.fmt(data['seconds'] / 60)} min, {data['speakers']} speakers "
        f"({data['utterances_without_speaker']} utterances without a speaker label), "
        f"{data['aligned_utterances']} aligned (alignments: {data['alignments']})."))
    if data.get("failed"):
        few = "; ".join(f"{f['id']}: {f['reason']}" for f in data["failed"][:5])
        b.append(doc.note(f"{len(data['failed'])} utterances left out: {few}"))
    for layer, sec in d["layers"].items():
        b += _layer(data["name"], layer, sec)
    b += _speed(d.get("speed"))
    b += _resynthesis(d.get("resynthesis"))
    t = d.get("timings_s", {})
    b += [doc.h(3, "Time per section"), doc.table(["section", "seconds"], [[k, v] for k, v in t.items()])]
    reasons = list(_skipped_reasons(d))
    if reasons:
        b += [doc.h(3, "Skipped metrics"), doc.table(["metric", "reason"], reasons)]
    return b


def _layer(ds: str, layer: str, sec: dict[str, Any]) -> list[tuple]:
    b = [doc.h(3, f"{ds}: layer {layer} (k = {sec['k']})")]
    cb = sec["codebook"]
    rows = []
    for stage in ("frames", "dedup", "bpe"):
        s = cb[stage]
        rows.append([stage] + (["skipped"] + [None] * (len(CODEBOOK_COLS) - 1) if is_skipped(s)
                               else [s[k] for k, _ in CODEBOOK_COLS]))
    b += [doc.p(f"**Codebook** (de-duplication keeps 1 token in {doc.fmt(cb.get('dedup_ratio'))}):"),
          doc.table(["stage"] + [c for _, c in CODEBOOK_COLS], rows)]
    rows = [[name.upper()] + [sec[name][k] for k, _ in NMI_COLS] for name in ("pnmi", "cnmi")
            if not is_skipped(sec[name])]
    b.append(doc.p("**Alignment with phones (PNMI) and characters (CNMI):**"))
    if rows:
        b.append(doc.table(["metric"] + [c for _, c in NMI_COLS], rows))
    b += [doc.note(f"{name.upper()} skipped: {sec[name]['reason']}") for name in ("pnmi", "cnmi")
          if is_skipped(sec[name])]
    b += _abx(sec["abx"])
    ng = sec["ngram"]
    if is_skipped(ng):
        b.append(doc.note(f"4-gram perplexity skipped: {ng['reason']}"))
    else:
        b += [doc.p(f"**{ng['order']}-gram perplexity** (Kneser-Ney, de-duplicated units; {ng['split']}):"),
              doc.table(["perplexity", "train utterances", "train tokens", "test utterances", "test tokens"],
                        [[ng["perplexity"], ng["train_utterances"], ng["train_tokens"], ng["test_utterances"],
                          ng["test_tokens"]]])]
    b += _robustness(sec.get("robustness"))
    b += _position(sec.get("position"), sec.get("robustness"))
    b += [doc.img(pl["title"], pl["file"], pl.get("wide", False)) for pl in sec.get("plots", [])]
    return b


def _abx(abx: dict[str, Any]) -> list[tuple]:
    if is_skipped(abx):
        return [doc.note(f"ABX skipped: {abx['reason']}")]
    rows, notes = [], []
    for kind in ("units", "features"):
        sec = abx.get(kind, {})
        for mode in ("within", "across"):
            r = sec.get(mode) if not is_skipped(sec) else sec
            if r is None:
                continue
            if is_skipped(r):
                rows.append([f"{kind}, {mode}", "skipped", None, None, None, None, None])
                notes.append(doc.note(f"ABX {mode} speakers on {kind} skipped: {r['reason']}"))
            else:
                rows.append([f"{kind}, {mode}", 100 * r["error"], r["num_phone_pairs"], r["num_cells"],
                             r["num_triplets"], r["num_dtw"], r["distance"]])
    s = abx.get("settings", {})
    who = ("speakers from the manifest" if abx.get("speaker_source") == "manifest"
           else "no speaker labels: each utterance counts as its own speaker")
    return [doc.p(f"**ABX** ({abx.get('num_items')} triphone items, {who}; "
                  f"at most {s.get('max_size_group')} items per group, "
                  f"{s.get('max_x_across')} X speakers, {s.get('max_cells_per_pair')} cells per phone pair"
                  + (f"; frames: {abx['frames']}" if abx.get("frames") else "") + "):"),
            doc.table(["input, mode", "error (%)", "phone pairs", "cells", "triplets", "DTWs", "distance"], rows),
            *notes]


def _robustness(rob: dict[str, Any] | None) -> list[tuple]:
    if rob is None:
        return []
    if is_skipped(rob):
        return [doc.note(f"Robustness skipped: {rob['reason']}")]
    rows = [[name, "skipped", None, None, None] if is_skipped(r)
            else [name, r["ued"], r["distance"], r["reference_length"], r["num_utterances"]]
            for name, r in rob["distortions"].items()]
    notes = [doc.note(f"{name} skipped: {r['reason']}") for name, r in rob["distortions"].items() if is_skipped(r)]
    sub = rob["subset"]
    return [doc.p(f"**Robustness**: unit edit distance of de-duplicated units, distorted vs clean, on "
                  f"{sub['utterances']} utterances ({doc.fmt(sub['seconds'])} s); mean over distortions "
                  f"{doc.fmt(rob.get('mean_ued'))}."),
            doc.table(["distortion", "UED", "edits", "clean length", "utterances"], rows), *notes]


def _position(pos: dict[str, Any] | None, rob: dict[str, Any] | None) -> list[tuple]:
    if pos is None:
        return []
    if is_skipped(pos):
        return [doc.note(f"Position leakage skipped: {pos['reason']}")]
    b = [doc.p(f"**Position leakage**: NMI between units and the frame's time in the utterance "
               f"({doc.fmt(pos['bin_s'])} s bins), beside the same with units permuted ({pos['rule']}):"),
         doc.table(["position NMI", "permuted", "margin", "phone (PNMI) margin", "flagged"],
                   [[pos["nmi"], pos["nmi_chance"], pos["margin"], pos.get("phone_margin"),
                     "yes" if pos["flagged"] else "no"]])]
    if pos["flagged"]:
        b.append(doc.note("These units encode where a frame is more than what is said: their unit edit distance "
                          "under distortions is low because noise cannot move a position, not because they are "
                          "robust" + ("" if rob is None or is_skipped(rob) else f" (mean UED {doc.fmt(rob.get('mean_ued'))})")
                          + "."))
    return b


def _speed(sp: dict[str, Any] | None) -> list[tuple]:
    if sp is None:
        return []
    if is_skipped(sp):
        return [doc.note(f"Speed skipped: {sp['reason']}")]
    o, s = sp["offline"], sp["streaming"]
    b = [doc.h(3, "Speed"),
         doc.p(f"Offline, one utterance per call on `{sp.get('device')}` ({sp.get('torch_threads')} torch threads):"),
         doc.table(["utterances", "audio (s)", "RTF", "median latency (s)", "p90 latency (s)", "max latency (s)"],
                   [[o["num_utterances"], o["audio_seconds"], o["rtf"], o["median_latency_s"], o["p90_latency_s"],
                     o["max_latency_s"]]])]
    if is_skipped(s):
        b.append(doc.note(f"Streaming skipped: {s['reason']}"))
    else:
        b += [doc.p(f"Streaming, chunk {s['chunk_s']} s, shift {s['shift_s']} s, growing context "
                    f"(algorithmic latency {s['algorithmic_latency_s']['min']:g}-"
                    f"{s['algorithmic_latency_s']['max']:g} s):"),
              doc.table(["utterances", "audio (s)", "RTF", "UED vs offline", "frame agreement", "exact",
                         "slowest re-encode (s)", "keeps up"],
                        [[s["utterances"], s["audio_seconds"], s["rtf"], s["unit_edit_distance"],
                          s["frame_agreement"], s["exact_share"], s["encode_wall_s_max"], s["keeps_up_share"]]])]
    return b


RESYNTH_COLS = [("wer", "WER ↓"), ("cer", "CER ↓"), ("dwer", "dWER ↓"), ("dcer", "dCER ↓"),
                ("spk_sim", "speaker sim. ↑"), ("dnsmos_ovrl", "DNSMOS OVRL ↑"), ("dnsmos_sig", "SIG ↑"),
                ("dnsmos_bak", "BAK ↑"), ("dnsmos_p808", "P.808 ↑"), ("mcd", "MCD dB ↓"),
                ("f0_rmse_hz", "F0 RMSE Hz ↓"), ("vuv_agreement", "voicing agr. ↑")]


def _resynthesis(r: dict[str, Any] | None) -> list[tuple]:
    if not r:
        return []
    orig = {k: v for k, v in r.get("original", {}).items()}
    rows = [["resynthesized (units -> vocoder)"] + [r["scores"].get(k) for k, _ in RESYNTH_COLS],
            ["copy-synthesis (true mel -> same HiFi-GAN)"] + [r["copy_synthesis"].get(k) for k, _ in RESYNTH_COLS],
            ["original audio"] + [orig.get(k) if k not in ("dwer", "dcer", "spk_sim", "mcd", "f0_rmse_hz",
                                                          "vuv_agreement") else None for k, _ in RESYNTH_COLS]]
    b = [doc.h(3, "Resynthesis"),
         doc.p(f"Vocoder `{r['vocoder']}`: {r['utterances']} utterances ({doc.fmt(r['audio_seconds'])} s) through the "
               f"tokenizer and the vocoder in their own voice (synthesis RTF {doc.fmt(r['synthesis_rtf'])}). WER/CER "
               "against the transcript, dWER/dCER against Whisper tiny.en's transcript of the original; speaker "
               "similarity = cosine of Resemblyzer d-vectors; MCD with DTW. Definitions: docs/vocoder.md."),
         doc.table(["audio"] + [c for _, c in RESYNTH_COLS], rows)]
    conv = r.get("conversion")
    if conv and "skipped" not in conv:
        b.append(doc.p(f"Voice conversion ({conv['utterances']} utterances, each spoken in another speaker's voice): "
                       f"similarity to the target voice {doc.fmt(conv.get('spk_sim_target'))}, to the source voice "
                       f"{doc.fmt(conv.get('spk_sim'))}; dWER {doc.fmt(conv.get('dwer'))}."))
    elif conv:
        b.append(doc.note(f"voice conversion skipped: {conv['skipped']}"))
    b += [doc.note(n) for n in r.get("notes", [])]
    if r.get("failed"):
        b.append(doc.note(f"{len(r['failed'])} utterance(s) could not be resynthesized: "
                          + "; ".join(f"{f['id']}: {f['reason']}" for f in r["failed"][:5])))
    b += [doc.audio(f"{e['id']}", e["files"]) for e in r.get("examples", [])]
    return b


def _skipped_reasons(d: Any, path: str = ""):
    """(dotted path, reason) of every skipped entry under ``d``."""
    if isinstance(d, dict):
        if is_skipped(d):
            yield [path, d["reason"]]
            return
        for k, v in d.items():
            yield from _skipped_reasons(v, f"{path}.{k}" if path else str(k))

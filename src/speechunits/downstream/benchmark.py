"""The downstream benchmark: every task, every tokenizer, the same budget and seeds, one table.

For each tokenizer and task, probes are trained on: all of its layers with layer attention
(``all``), each single layer (``L<n>``, multi-layer tokenizers only) and the continuous
features of all its layers (``continuous``), as in the multi-layer-tokens paper (arXiv
2406.10735). Results go to ``benchmark.json``, ``benchmark.md`` and ``benchmark.html`` (the
table and, per task, the layer-attention weights of the ``all`` probes as bar plots).

Built-in task data (:func:`builtin_tasks`):

- ``asr`` / ``pr``: the synthetic corpus (``speechunits corpus synth``; train / dev splits,
  test = its unseen speakers), plus ``librivox-aligned`` (real speech: transcripts and phones)
  when ``../shared/data`` is present;
- ``sid``: ``librispeech-mini/train-clean-100`` (251 speakers, one utterance each: train on
  the first 70 % of each utterance, test on the rest), or, without the shared data, the
  synthetic corpus' training voices the same way;
- ``se``: noisy copies (``downstream.enhance``) of ``librispeech-mini/train-clean-100`` to
  train, of ``test-other`` to test (or the synthetic corpus' splits without the shared data);
- ``kws``: the keyword corpus (``speechunits corpus words``): single words by the training
  voices, test by unseen voices.
- ``tts``: a text-to-units model (``downstream.tts``) trained on the synthetic corpus' train
  split, its test split's texts spoken in its unseen voices through the tokenizer's vocoder
  (``--vocoder``); score: Whisper tiny.en's WER against the text (``downstream.tts.bench``).

User tasks: ``NAME=KIND:TRAIN[:TEST]`` with KIND ``classify`` (a ``label`` per line),
``transcribe`` (a ``text`` per line) or ``pr`` (phones of the ``alignment`` a line names);
without TEST, the last 30 % of each training utterance is the test (classify) or 10 % of the
utterances are held out (transcribe, pr).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from speechunits.data.atomic import atomic_write_text
from speechunits.data.manifest import Utterance, read_manifest

from .run import run_probe
from .tasks import get_task
from .train import ProbeSettings, headline


BUDGET_KEYS = ("steps", "batch", "dim", "hidden", "lstm_layers", "downsample", "lr", "seed")


@dataclass
class TaskData:
    """Where one task's data comes from."""

    name: str  # the row name ("asr", or a user task's name)
    task: str  # the task kind in tasks.TASKS
    train: list[Utterance]
    train_source: str
    dev: list[Utterance] | None = None
    tests: dict[str, list[Utterance]] = field(default_factory=dict)
    split_within: float | None = None


def _read_split(folder: Path, split: str) -> list[Utterance]:
    return read_manifest(folder / f"{split}.jsonl")


def builtin_tasks(names: Sequence[str], work: str | os.PathLike, shared: str | os.PathLike | None,
                  *, synth_minutes: float = 30.0, kws_words: int = 30, seed: int = 0,
                  progress: bool = True) -> tuple[list[TaskData], list[str]]:
    """The built-in data of ``names`` (synthesized under ``work`` when needed); returns the
    tasks and a note per task that could not be set up (and why)."""
    work = Path(work)
    shared = Path(shared) if shared else None
    have = shared is not None and (shared / "librispeech-mini").is_dir()
    tasks, notes = [], []
    corpus = work / "corpus"
    if {"asr", "pr", "tts"} & set(names) or ({"sid", "se"} & set(names) and not have):
        from speechunits.data.corpus import synthesize_corpus

        synthesize_corpus(corpus, synth_minutes, seed, workers=1, progress=progress)
    real = {}
    if have and (shared / "librivox-aligned").is_dir():
        real["librivox-aligned"] = read_manifest(shared / "librivox-aligned")
    for name in names:
        if name in ("asr", "pr", "tts"):
            tasks.append(TaskData(name, name, _read_split(corpus, "train"), "synthetic-train", _read_split(corpus, "dev"),
                                  {"synthetic-test-speakers": _read_split(corpus, "test"), **real}))
        elif name == "sid":
            if have:
                src = shared / "librispeech-mini" / "train-clean-100"
                tasks.append(TaskData("sid", "sid", read_manifest(src), "librispeech-train-clean-100", split_within=0.7))
            else:
                tasks.append(TaskData("sid", "sid", _read_split(corpus, "train"), "synthetic-train", split_within=0.7))
        elif name == "se":
            if have:
                lib = shared / "librispeech-mini"
                tasks.append(TaskData("se", "se", read_manifest(lib / "train-clean-100"), "librispeech-train-clean-100",
                                      tests={"librispeech-test-other": read_manifest(lib / "test-other")}))
            else:
                tasks.append(TaskData("se", "se", _read_split(corpus, "train"), "synthetic-train", _read_split(corpus, "dev"),
                                      {"synthetic-test-speakers": _read_split(corpus, "test")}))
        elif name == "kws":
            try:
                from speechunits.data.corpus import synthesize_words
            except ImportError:
                notes.append("kws: this version has no keyword corpus (speechunits corpus words)")
                continue
            words = work / "words"
            synthesize_words(words, kws_words, seed, workers=1, progress=progress)
            tasks.append(TaskData("kws", "kws", _read_split(words, "train"), "words-train", _read_split(words, "dev"),
                                  {"words-test-voices": _read_split(words, "test")}))
        else:
            raise ValueError(f"no built-in data for task {name!r}; built-in: asr, pr, sid, kws, se, tts "
                             "(bring your own with NAME=classify|transcribe:TRAIN[:TEST])")
    return tasks, notes


def user_task(spec: str) -> TaskData:
    """``NAME=KIND:TRAIN[:TEST]`` -> a :class:`TaskData` (KIND: classify, transcribe or pr)."""
    try:
        name, rest = spec.split("=", 1)
        kind, *paths = rest.split(":")
    except ValueError:
        raise ValueError(f"task spec {spec!r}: expected NAME=classify|transcribe|pr:TRAIN.jsonl[:TEST.jsonl]") from None
    if kind not in ("classify", "transcribe", "pr") or not name or len(paths) not in (1, 2):
        raise ValueError(f"task spec {spec!r}: expected NAME=classify|transcribe|pr:TRAIN.jsonl[:TEST.jsonl]")
    train = read_manifest(paths[0])
    if len(paths) == 2:
        return TaskData(name, kind, train, Path(paths[0]).name, tests={Path(paths[1]).name: read_manifest(paths[1])})
    if kind == "classify":
        return TaskData(name, kind, train, Path(paths[0]).name, split_within=0.7)
    cut = max(1, len(train) // 10)
    order = np.random.default_rng(0).permutation(len(train))
    test = [train[i] for i in sorted(order[:cut])]
    return TaskData(name, kind, [train[i] for i in sorted(order[cut:])], Path(paths[0]).name,
                    tests={f"{Path(paths[0]).name} (held-out 10 %)": test})


def variants(n_layers: int, which: Sequence[str]) -> list[tuple[str, dict]]:
    """``(name, settings changes)`` of the probes to train for a tokenizer of ``n_layers`` layers."""
    out = []
    if "all" in which:
        out.append(("all", {"input": "discrete", "columns": None}))
    if "single" in which and n_layers > 1:
        out += [(f"L{c}", {"input": "discrete", "columns": [c]}) for c in range(n_layers)]
    if "continuous" in which:
        out.append(("continuous", {"input": "continuous", "columns": None}))
    return out


def run_benchmark(tokenizers: dict[str, tuple], tasks: Sequence[TaskData], out: str | os.PathLike,
                  settings: dict[str, ProbeSettings], *, which: Sequence[str] = ("all", "single", "continuous"),
                  beam: int = 8, vocoders: dict | None = None, progress: bool = True) -> dict:
    """Train and score every (tokenizer, task, variant); write the table; return it.

    ``tokenizers``: name -> (Tokenizer, source path). ``settings``: task name -> its budget.
    ``vocoders``: tokenizer name -> a vocoder for it, to speak the enhancement and TTS tasks' units.
    Finished probes are kept and not retrained (``results.json`` in their folder).
    """
    out = Path(out)
    rows, failures, left_out = [], [], {}
    for tname, (tok, source) in tokenizers.items():
        want_features = "continuous" in which
        for td in tasks:
            s = settings.get(td.name, settings.get(td.task, ProbeSettings()))
            if td.task == "tts":  # a generative task: one model, spoken through the vocoder
                from .tts.bench import tts_rows

                r_, f_ = tts_rows(tname, tok, source, td, out / tname / td.name, (vocoders or {}).get(tname), s,
                                  progress=progress)
                rows, failures = rows + r_, failures + f_
                continue
            for vname, change in variants(len(tok.layers), which):
                run_dir = out / tname / td.name / vname
                names = [tok.layers[c] for c in (change["columns"] or range(len(tok.layers)))]
                try:
                    res = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").exists() else \
                        run_probe(td.task, tok, td.train, run_dir, replace(s, **change), data_dir=out / tname / "data",
                                  train_source=td.train_source, dev_utts=td.dev, tests=td.tests,
                                  split_within=td.split_within, features=want_features, beam=beam,
                                  vocoder=(vocoders or {}).get(tname) if td.task == "se" else None,
                                  tokenizer_source=str(source), progress=progress)
                except Exception as e:  # one probe's failure is recorded; the others still run
                    failures.append({"tokenizer": tname, "task": td.name, "variant": vname, "reason": str(e).splitlines()[0]})
                    continue
                for f in res.get("failed", []):  # the same utterance fails for every variant: keep it once
                    left_out[(tname, td.name, f["dataset"], f["id"])] = {**f, "dataset": f"{tname}/{td.name}/{f['dataset']}"}
                for test, r in res["tests"].items():
                    rows.append({"tokenizer": tname, "task": td.name, "variant": vname, "layers": names, "test": test,
                                 "metric": get_task(td.task).metric, "score": headline(r), "result": r,
                                 "steps": res["training"]["steps_run"], "best_step": res["training"]["best_step"],
                                 "step_s": res["training"]["median_step_s"],
                                 "budget": {k: res["training"]["settings"][k] for k in BUDGET_KEYS}})
    table = {"rows": rows, "failures": failures, "left_out": list(left_out.values()), "settings": {k: asdict(v) for k, v in settings.items()},
             "tokenizers": {k: str(v[1]) for k, v in tokenizers.items()}}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "benchmark.json", json.dumps(table, indent=2) + "\n")
    atomic_write_text(out / "benchmark.md", markdown(table))
    atomic_write_text(out / "benchmark.html", html_page(table))
    return table


def _ci(r: dict) -> tuple[float, float] | None:
    for key in ("accuracy", "unit_accuracy", "wer_beam", "per_beam", "wer_greedy", "per_greedy"):
        if key in r:
            return tuple(r[key]["ci95"])
    return None


def markdown(table: dict) -> str:
    """The benchmark table: one row per (tokenizer, task, test set, variant)."""
    lines = ["| tokenizer | task | test | probe | layers | metric | score (95 % CI) | layer weights (all) | steps (best) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in table["rows"]:
        ci = _ci(r["result"])
        pct = 100.0
        score = f"{pct * r['score']:.1f}" + (f" ({pct * ci[0]:.1f}-{pct * ci[1]:.1f})" if ci else "")
        w = r["result"].get("layer_weights", [])
        weights = " / ".join(f"{x:.2f}" for x in w) if r["variant"] in ("all", "continuous") and len(w) > 1 else ""
        lines.append(f"| {r['tokenizer']} | {r['task']} | {r['test']} | {r['variant']} | "
                     f"{','.join(map(str, r['layers']))} | {r['metric']} % | {score} | {weights} | "
                     f"{r['steps']} ({r['best_step']}) |")
    se = [r for r in table["rows"] if "unit_accuracy" in r["result"]]
    if se:
        lines += ["", "Enhancement: unit accuracy of the noisy input (do nothing) and of the probe; through the vocoder, "
                  "clean / noisy / enhanced units against the clean recording:", "",
                  "| tokenizer | probe | unit acc. noisy % | unit acc. enhanced % | dWER clean / noisy / enhanced % | "
                  "speaker sim. | DNSMOS OVRL |", "|---|---|---|---|---|---|---|"]
        for r in se:
            u, sp = r["result"]["unit_accuracy"], r["result"].get("speech", {})

            def three(key: str, scale: float = 1.0, fmt: str = "{:.2f}") -> str:
                vals = [sp.get(f"{w}_units", {}).get(key) for w in ("clean", "noisy", "enhanced")]
                return " / ".join("-" if v is None else fmt.format(scale * v) for v in vals)

            lines.append(f"| {r['tokenizer']} | {r['variant']} | {100 * u['noisy_value']:.1f} | {100 * u['value']:.1f} | "
                         f"{three('dwer', 100, '{:.1f}')} | {three('spk_sim')} | {three('dnsmos_ovrl')} |")
    for f in table["failures"]:
        lines.append(f"\nfailed: {f['tokenizer']} {f['task']} {f['variant']}: {f['reason']}")
    return "\n".join(lines) + "\n"


def _attention_png(rows: list[dict]) -> str | None:
    """Bar plots of the ``all`` probes' layer weights, one group per (tokenizer, task)."""
    groups = {}
    for r in rows:
        if r["variant"] in ("all", "continuous") and len(r["result"].get("layer_weights", [])) > 1:
            groups.setdefault(f"{r['tokenizer']} / {r['task']} / {r['variant']}", (r["layers"], r["result"]["layer_weights"]))
    if not groups:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups)), 3.5))
    n = max(len(w) for _, w in groups.values())
    width = 0.8 / n
    for j in range(n):
        xs = [i + j * width for i in range(len(groups))]
        ys = [w[j] if j < len(w) else 0 for _, w in groups.values()]
        ax.bar(xs, ys, width, label=f"position {j}")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))])
    ax.set_xticklabels(list(groups), rotation=20, ha="right", fontsize=7)
    ax.set_ylabel("mean attention weight")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def html_page(table: dict) -> str:
    head = ["tokenizer", "task", "test", "probe", "layers", "metric", "score %", "95 % CI", "layer weights"]
    body = []
    for r in table["rows"]:
        ci = _ci(r["result"])
        w = r["result"].get("layer_weights", [])
        cells = [r["tokenizer"], r["task"], r["test"], r["variant"], ",".join(map(str, r["layers"])), r["metric"],
                 f"{100 * r['score']:.1f}", f"{100 * ci[0]:.1f}-{100 * ci[1]:.1f}" if ci else "",
                 " / ".join(f"{x:.2f}" for x in w) if len(w) > 1 else ""]
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    png = _attention_png(table["rows"])
    img = f'<h2>Layer attention (mean weight per layer)</h2><img alt="layer attention" src="data:image/png;base64,{png}">' if png else ""
    fails = "".join(f"<li>{html.escape(json.dumps(f))}</li>" for f in table["failures"])
    return ("<!doctype html><html><head><meta charset='utf-8'><title>speechunits downstream benchmark</title>"
            "<style>td,th{border:1px solid #ccc;padding:2px 6px;font:13px sans-serif}</style></head><body>"
            "<h1>Downstream benchmark</h1><table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
            + "".join(body) + "</table>" + img + (f"<h2>Failed</h2><ul>{fails}</ul>" if fails else "")
            + "</body></html>\n")


def compare_scores(table: dict, variant: str = "all") -> tuple[dict[str, dict[str, float]], list[str], list[str]]:
    """``({tokenizer: {"<task> <metric> (<test>)": score}}, lower-is-better names, higher-is-better
    names)`` of one probe variant, for ``speechunits compare --scores`` (the DC-Spin paper's
    question: which proxy predicts the downstream score)."""
    out: dict[str, dict[str, float]] = {}
    lower, higher = set(), set()
    for r in table.get("rows", []):
        if r["variant"] == variant:
            name = f"{r['task']} {r['metric']} ({r['test']})"
            out.setdefault(r["tokenizer"], {})[name] = float(r["score"])
            (lower if get_task(_task_of(r)).lower_is_better else higher).add(name)
    if not out:
        raise ValueError(f"the benchmark table has no '{variant}' probe rows to correlate")
    return out, sorted(lower), sorted(higher)


def _task_of(row: dict) -> str:
    """The task kind of a row (a user task's row carries its metric only)."""
    by_metric = {"wer": "transcribe", "per": "pr", "accuracy": "classify", "unit_accuracy": "se"}
    return row["task"] if row["task"] in ("asr", "pr", "sid", "kws", "se", "classify", "transcribe") \
        else by_metric[row["metric"]]

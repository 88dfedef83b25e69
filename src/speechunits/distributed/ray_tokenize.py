"""``speechunits tokenize --engine ray``: the tokenize job of :mod:`speechunits.batch` on Ray Data.

The driver builds a dataset of utterance records (index, id, where the audio is: a path, or the
``AudioRef`` of a container row; never decoded audio), decodes and resamples them in CPU tasks
(``map_batches``, retried when a task dies), and runs the tokenizer in an actor pool: one model
per actor, loaded once with ``Tokenizer.from_pretrained`` (``num_gpus`` per actor on a GPU
cluster, the model then on ``cuda``). Each actor call sorts its utterances by length and hands
them to the encoder ``batch_size`` at a time. Decoding and tokenizing are the single-process
job's own functions (``data.loader.iter_audio``, ``batch.tokenize_loaded``), so the units and
the failure reasons are the same.

The driver writes every block the pool returns as one Parquet shard in ``<out>.ray/shards/``
and then lists it in ``<out>.ray/manifest.json`` (atomically): a shard not in the manifest does
not count. A killed or failed job rerun with the same arguments reads the listed shards and
sends only the rest to Ray; an actor that dies is restarted and its block retried by Ray, and a
block delivered twice is kept once. When every utterance is done, the output (``--out``, any
format, with its ``.config.json``, ``.job.json``, ``.errors.jsonl``) is written from the shards
in input order through the same path as the single-process job, so it is identical to it. The
work folder is removed when nothing failed; otherwise it stays and a rerun retries the failures.

Example (a local Ray started by the job; ``address="auto"`` or ``"head:6379"`` for a
cluster, whose workers must see the audio and this output folder's parent need not be shared)::

    from speechunits.distributed.ray_tokenize import tokenize_ray
    from speechunits.data.manifest import read_manifest
    report = tokenize_ray("default", read_manifest("corpus/"), "units.parquet", workers=2)
    print(report.summary())
"""

from __future__ import annotations

import functools
import heapq
import json
import logging
import os
import shutil
import socket
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from speechunits.batch import JobPlan, TokenizeReport, finish_job, plan_job, tokenize_loaded
from speechunits.data.atomic import atomic_open, atomic_write_text
from speechunits.data.loader import LoadedAudio, iter_audio
from speechunits.data.manifest import Utterance
from speechunits.tokens import UnitsFileError, UnitsWriter
from speechunits.tokens.io import parse_json_line, units_to_json_line
from speechunits.tokens.writer import describe_differences

INSTALL_HINT = "--engine ray needs Ray: pip install 'speechunits[ray]'"
COLUMNS = ("idx", "id", "line", "error", "warnings", "seconds", "worker")


class RayMissing(ImportError):
    """Ray is not installed (the ``ray`` extra)."""


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayMissing(INSTALL_HINT) from None
    return ray


def connect(address: str | None = None):
    """Ray, joined to the cluster at ``address`` (``None``: the one this process joined, else a
    new local one), with Ray Data's own progress output off (the jobs count utterances)."""
    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars, ctx.print_on_execution_start = False, False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return ray


def work_dir(out: str | os.PathLike) -> Path:
    """``<out>.ray``: the shards and the manifest of a Ray job writing ``out``."""
    return Path(str(out) + ".ray")


# ---------------------------------------------------------------- the stages (run on workers)
def decode_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """CPU task: utterance records -> 16 kHz float32 waves (or the reason a file failed)."""
    refs = batch["audio"] if "audio" in batch else [None] * len(batch["id"])
    utts = [Utterance(str(i), Path(p), audio=a if hasattr(a, "read") else None, error=e or None)
            for i, p, a, e in zip(batch["id"], batch["path"], refs, batch["scan_error"])]
    waves, errors, warns = np.empty(len(utts), dtype=object), [], []
    for j, item in enumerate(iter_audio(utts, workers=0)):
        waves[j] = item.wave if item.wave is not None else np.zeros(0, np.float32)
        errors.append("" if item.wave is not None else item.error or "could not be loaded")
        warns.append(json.dumps(list(item.warnings)))
    return {"idx": batch["idx"], "id": batch["id"], "path": batch["path"], "wave": waves,
            "error": np.array(errors, dtype=object), "warnings": np.array(warns, dtype=object)}


class TokenizeWorker:
    """Actor: one tokenizer, loaded once; decoded waves -> one JSONL line of units each."""

    def __init__(self, tokenizer: str, device: str, encoder: str | None, allow_unhashed: bool,
                 dedup: bool, bpe: bool, batch_size: int, threads: int) -> None:
        import torch

        from speechunits.tokenizer import Tokenizer

        torch.set_num_threads(max(1, threads))
        self.tok = Tokenizer.from_pretrained(tokenizer, device=device, encoder=encoder,
                                             allow_unhashed=allow_unhashed)
        self.dedup, self.bpe, self.batch_size = dedup, bpe, batch_size
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["idx"])
        lines, errors, seconds = [""] * n, list(batch["error"]), np.zeros(n)
        ok = [j for j in range(n) if not errors[j]]
        ok.sort(key=lambda j: len(batch["wave"][j]))  # similar lengths share a batch: less padding
        rate = self.tok.encoder.sample_rate
        for s in range(0, len(ok), self.batch_size):
            part = ok[s:s + self.batch_size]
            items = [LoadedAudio(Utterance(str(batch["id"][j]), Path(str(batch["path"][j]))),
                                 np.asarray(batch["wave"][j], dtype=np.float32)) for j in part]
            for j, item, units in zip(part, items, tokenize_loaded(self.tok, items, self.dedup, self.bpe)):
                if isinstance(units, str):
                    errors[j] = units
                else:
                    lines[j], seconds[j] = units_to_json_line(units), len(item.wave) / rate
        return {"idx": batch["idx"], "id": batch["id"], "line": np.array(lines, dtype=object),
                "error": np.array(errors, dtype=object), "warnings": batch["warnings"], "seconds": seconds,
                "worker": np.array([self.worker] * n, dtype=object)}


# ---------------------------------------------------------------- the driver
class _Shards:
    """The finished shards of one job: ``manifest.json`` lists them, in the order written. Only
    which utterances are done (and the reasons of failures) is held in memory; the units stay in
    the shards until the output is written from them."""

    def __init__(self, folder: Path, shard: Sequence[Utterance]) -> None:
        self.folder, self.shard = folder, shard
        self.manifest = folder / "manifest.json"
        self.files: list[dict] = []
        self.done = np.zeros(len(shard), dtype=bool)
        self.failed: dict[int, str] = {}  # idx -> reason, the latest record; retried on resume
        self.warnings: dict[int, list[str]] = {}
        self.seconds = 0.0  # audio tokenized by this run

    def load(self) -> None:
        import pyarrow.parquet as pq

        if self.manifest.exists():
            try:
                self.files = json.loads(self.manifest.read_text(encoding="utf-8"))["shards"]
                for entry in self.files:
                    self._take(pq.read_table(self._path(entry["file"]), columns=["idx", "id", "line", "error",
                                                                                    "warnings"]).to_pydict(),
                               entry["file"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise UnitsFileError(self.manifest, f"cannot resume from it ({e}); rerun with --no-resume") from None
        listed = {e["file"] for e in self.files}
        for p in (self.folder / "shards").glob("*.parquet"):  # written by a job killed before listing them
            if p.name not in listed:
                p.unlink()

    def _path(self, name: str) -> Path:
        if Path(name).name != name:  # the manifest names files in shards/, nothing else
            raise ValueError(f"bad shard name {name!r}")
        return self.folder / "shards" / name

    def _take(self, rows: dict[str, list], where: str) -> list[int]:
        """Count one shard's rows in; returns the rows that are new (a block delivered twice is kept once)."""
        new = []
        for r, (i, uid) in enumerate(zip(rows["idx"], rows["id"])):
            if not (0 <= i < len(self.shard)) or self.shard[i].id != uid:
                raise ValueError(f"{where}: row {r} is utterance {uid!r} at {i}, not one of this job's")
            if self.done[i]:
                continue
            new.append(r)
            self.warnings.pop(i, None)
            if rows["warnings"][r] != "[]":
                self.warnings[i] = json.loads(rows["warnings"][r])
            if rows["line"][r]:
                self.done[i] = True
                self.failed.pop(i, None)
            else:
                self.failed[i] = rows["error"][r]
        return new

    def add(self, table) -> int:
        """Write one block as a shard, then list it; returns how many utterances it added."""
        import pyarrow.parquet as pq

        new = self._take(table.to_pydict(), "a block from Ray")
        if not new:
            return 0
        table = table.select(list(COLUMNS)).take(new)
        self.seconds += sum(table["seconds"].to_pylist())
        name = f"part-{len(self.files):06d}-{uuid.uuid4().hex[:8]}.parquet"
        with atomic_open(self._path(name), "wb") as f:
            pq.write_table(table, f)
        idx = table["idx"].to_pylist()
        self.files.append({"file": name, "rows": len(new), "first": min(idx), "worker": table["worker"][0].as_py()})
        atomic_write_text(self.manifest, json.dumps({"shards": self.files}, indent=0) + "\n")
        return len(new)

    def lines(self) -> Iterator[tuple[int, str]]:
        """``(idx, JSONL line)`` of every done utterance in input order, a few shards open at a time
        (a block covers a run of consecutive utterances)."""
        import pyarrow.parquet as pq

        order = sorted(self.files, key=lambda e: e["first"])
        heap: list = []
        opened = 0

        def push(rows: Iterator[tuple[int, str]]) -> None:
            head = next(rows, None)
            if head is not None:
                heapq.heappush(heap, (head[0], id(rows), head[1], rows))

        for i in np.flatnonzero(self.done):
            while opened < len(order) and order[opened]["first"] <= i:
                t = pq.read_table(self._path(order[opened]["file"]), columns=["idx", "line"]).sort_by("idx")
                push(((j, line) for j, line in zip(t["idx"].to_pylist(), t["line"].to_pylist()) if line))
                opened += 1
            while heap and heap[0][0] < i:  # a success superseded nothing: cannot happen, skip defensively
                _, _, _, rows = heapq.heappop(heap)
                push(rows)
            if not heap or heap[0][0] != i:
                raise UnitsFileError(self.manifest, f"utterance {self.shard[i].id!r} is listed as done but is in "
                                     "no shard; rerun with --no-resume")
            _, _, line, rows = heapq.heappop(heap)
            push(rows)
            yield int(i), line


def tokenize_ray(
    tokenizer: str,
    utts: Sequence[Utterance],
    out: str | os.PathLike,
    *,
    dedup: bool | None = None,
    bpe: bool | None = None,
    nshard: int = 1,
    rank: int = 0,
    resume: bool = True,
    batch_size: int = 8,
    progress: bool = True,
    inputs: Sequence[str | os.PathLike] = (),
    format: str | None = None,
    address: str | None = None,
    workers: int = 1,
    gpus_per_worker: float = 0,
    cpus_per_worker: float = 1,
    shard_size: int = 64,
    device: str | None = None,
    encoder: str | None = None,
    allow_unhashed: bool = False,
    max_restarts: int = 4,
    on_shard: Callable[[dict], Any] | None = None,
) -> TokenizeReport:
    """Tokenize ``utts`` into ``out`` on Ray; arguments as :func:`speechunits.batch.tokenize_corpus`
    plus: ``tokenizer`` (a directory or ``"default"``, loaded in every actor), ``address`` (of a
    running cluster; ``None``: the one this process joined, else a local one), ``workers`` (actors),
    ``gpus_per_worker`` (the model then on ``device``, default ``cuda``), ``shard_size`` (utterances
    per block and shard), ``max_restarts`` (of a dead actor, and retries of its calls),
    ``on_shard`` (called with each manifest entry once written)."""
    import_ray()
    from speechunits.tokenizer import Tokenizer

    if batch_size < 1 or workers < 1 or shard_size < 1:
        raise ValueError(f"batch_size, workers and shard_size must be >= 1, got {batch_size}, {workers}, {shard_size}")
    device = device or ("cuda" if gpus_per_worker > 0 else "cpu")
    if device.startswith("cuda") and not gpus_per_worker > 0:
        raise ValueError(f"--device {device} with --engine ray needs --gpus-per-worker > 0 "
                         "(Ray gives GPUs only to the actors that ask for them)")
    # The driver reads the config only (its device may have no GPU); the actors run the model.
    tok = Tokenizer.from_pretrained(tokenizer, device="cpu", encoder=encoder, allow_unhashed=allow_unhashed)
    plan = plan_job(tok, utts, out, dedup=dedup, bpe=bpe, nshard=nshard, rank=rank, resume=resume,
                    inputs=inputs, format=format, in_place=False)
    del tok
    folder = work_dir(plan.out)
    state = {"config": plan.config, "job": plan.job}
    _open_work_dir(folder, json.loads(json.dumps(state)), resume)
    shards = _Shards(folder, plan.shard)
    shards.load()
    report = TokenizeReport(output=str(plan.out), total=len(plan.shard), done_before=int(shards.done.sum()))
    t0 = time.perf_counter()
    todo = np.flatnonzero(~shards.done).tolist()
    if todo:
        ray = connect(address)
        refs = any(plan.shard[i].audio is not None for i in todo)  # container rows: their AudioRef goes along
        rows = [{"idx": i, "id": plan.shard[i].id, "path": str(plan.shard[i].path), "scan_error": plan.shard[i].error or "",
                 **({"audio": plan.shard[i].audio} if refs else {})} for i in todo]
        ds = ray.data.from_items(rows, override_num_blocks=-(-len(rows) // shard_size))
        units = _pipeline(ray, ds, str(tokenizer), plan, device=device, encoder=encoder, allow_unhashed=allow_unhashed,
                          batch_size=batch_size, workers=workers, gpus=gpus_per_worker, cpus=cpus_per_worker,
                          shard_size=shard_size, max_restarts=max_restarts)
        from tqdm import tqdm

        with tqdm(total=len(todo), unit="utt", desc=f"tokenize {plan.out.name} (ray)", disable=not progress) as bar:
            for block in units.iter_batches(batch_size=None, batch_format="pyarrow"):
                added = shards.add(block)
                bar.update(added)
                if on_shard is not None and added:
                    on_shard(shards.files[-1])
    _merge(plan, shards, report)
    finish_job(plan, report)
    if not report.failed:
        shutil.rmtree(folder, ignore_errors=True)
    report.wall_seconds = time.perf_counter() - t0
    return report


def _pipeline(ray, ds, tokenizer: str, plan: JobPlan, *, device: str, encoder: str | None, allow_unhashed: bool,
              batch_size: int, workers: int, gpus: float, cpus: float, shard_size: int, max_restarts: int):
    """Decode in CPU tasks, tokenize in ``workers`` actors (one model each)."""
    with warnings.catch_warnings():
        # Ray 2.60 marks ray_remote_args_fn deprecated (for 2.64) without a named replacement for the
        # retry options; it also keeps Ray from fusing the decode tasks into the actors.
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = ds.map_batches(decode_batch, batch_size=shard_size, num_cpus=1,
                                 ray_remote_args_fn=functools.partial(dict, max_retries=max_restarts))
        return decoded.map_batches(
            TokenizeWorker, batch_size=shard_size, compute=ray.data.ActorPoolStrategy(size=workers),
            fn_constructor_kwargs=dict(tokenizer=tokenizer, device=device, encoder=encoder,
                                       allow_unhashed=allow_unhashed, dedup=plan.dedup, bpe=plan.bpe,
                                       batch_size=batch_size, threads=int(max(1, cpus))),
            num_cpus=cpus, num_gpus=gpus or None,
            ray_remote_args_fn=functools.partial(dict, max_restarts=max_restarts, max_task_retries=max_restarts))


def _open_work_dir(folder: Path, state: dict, resume: bool) -> None:
    """Start ``folder`` afresh, or check that it holds this job's shards."""
    record = folder / "job.json"
    if resume and record.exists():
        try:
            old = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UnitsFileError(record, f"unreadable ({e}); rerun with --no-resume") from None
        diffs = describe_differences(old.get("config"), state["config"], "tokenizer config")
        diffs += describe_differences(old.get("job"), state["job"], "")
        if diffs:
            raise UnitsFileError(folder, "holds the shards of another job: " + "; ".join(diffs)
                                 + " (rerun with --no-resume to start afresh, or choose another output path)")
        return
    if folder.exists():
        ours = ("job.json", "manifest.json", "shards")
        if not folder.is_dir() or any(p.name not in ours and not p.name.endswith(".tmp") for p in folder.iterdir()):  # never remove what this engine did not write
            raise UnitsFileError(folder, "exists and is not a Ray tokenize work folder; move it away or choose "
                                 "another output path")
        shutil.rmtree(folder)
    (folder / "shards").mkdir(parents=True)
    atomic_write_text(record, json.dumps(state, indent=1) + "\n")


def _merge(plan: JobPlan, shards: _Shards, report: TokenizeReport) -> None:
    """The work file from the shards, in input order; failures and warnings in the report."""
    with UnitsWriter(plan.work, plan.config, resume=False, job=plan.job) as writer:
        for i, line in shards.lines():
            writer.write(parse_json_line(line, plan.config, plan.work, i + 1))
    for i, utt in enumerate(plan.shard):
        report.warnings += [{"id": utt.id, "path": str(utt.path), "warning": w} for w in shards.warnings.get(i, ())]
        if not shards.done[i]:
            report.failed.append({"id": utt.id, "path": str(utt.path), "reason": shards.failed.get(i, "not done")})
    report.written = int(shards.done.sum()) - report.done_before
    report.audio_seconds = shards.seconds  # this run's audio only, as the single-process job counts

"""Run synthesis jobs over a process pool: resumable, atomic, with a progress bar.

A job is finished when both its wav and its alignment JSON exist; both are written atomically
(wav first, alignment last), so a killed run leaves either a finished job or nothing at the
final paths, and a re-run does only the unfinished jobs. Each job's output depends only on the
job, never on which worker ran it or in which order, so parallel runs are byte-identical to
serial ones.

>>> from pathlib import Path
>>> from speechunits.data.corpus.jobs import Job, run_jobs
>>> job = Job("u1", "Hello there.", "us1-f1.00-l16000", 1.0, 100.0, "wav/u1.wav", "align/u1.json")
>>> res = run_jobs(Path("/tmp/su_demo"), [job], workers=1, progress=False)
>>> res["u1"].num_samples > 0
True
"""

from __future__ import annotations

import io
import json
import dataclasses
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import soundfile as sf

from speechunits.data.atomic import atomic_write_bytes, atomic_write_text
from speechunits.data.corpus.synth import SAMPLE_RATE, synthesize
from speechunits.data.corpus.tools import espeak_pho_batch
from speechunits.data.corpus.voices import speaker

log = logging.getLogger(__name__)
BATCH = 16  # texts per espeak-ng call: its ~15 ms start-up is paid once per batch

# voice -> word -> phones; set in each worker by the pool initializer (sent once, not per job).
_PRONS: Mapping[str, Mapping[str, Sequence[str]]] = {}


@dataclass(frozen=True)
class Job:
    """One utterance to synthesize; ``wav`` and ``align`` are relative to the output root."""

    id: str
    text: str
    speaker: str
    tempo: float
    lead_ms: float
    wav: str
    align: str
    # Scales the speaker's MBROLA pitch ratio for this job only (a take's intonation varies
    # while the voice stays the speaker's); 1.0 renders the speaker as the table defines it.
    pitch_scale: float = 1.0


@dataclass(frozen=True)
class JobResult:
    id: str
    num_samples: int = 0
    generated: bool = False  # False: it was already there (resume)
    match_rate: float | None = None  # word-alignment quality, when generated
    error: str | None = None


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def is_done(root: Path, job: Job) -> bool:
    return (root / job.wav).is_file() and (root / job.align).is_file()


def check_folder_config(out: Path, name: str, config: dict) -> None:
    """Refuse to resume into a folder made with other settings (its files would be reused as if
    they were this run's); record ``config`` in ``out/name`` on the first run."""
    guard = Path(out) / name
    if guard.is_file():
        old = json.loads(guard.read_text())
        diff = [k for k in config if old.get(k) != config[k]]
        if diff:
            raise ValueError(f"{out} holds files made with other settings ("
                             f"{', '.join(f'{k}: {old.get(k)}' for k in diff)}); use a new --out folder")
        return
    atomic_write_text(guard, json.dumps(config, indent=2) + "\n")


def remove_stale_temporaries(root: Path, subdirs: Sequence[str]) -> int:
    """Delete the ``.NAME.XXXX.tmp`` files a killed run left behind (atomic_open's temp files)."""
    n = 0
    for sub in subdirs:
        d = root / sub
        if d.is_dir():
            for p in d.rglob(".*.tmp"):
                p.unlink(missing_ok=True)
                n += 1
    return n


def _init_worker(prons: Mapping[str, Mapping[str, Sequence[str]]], in_pool: bool = False) -> None:
    global _PRONS
    _PRONS = prons
    if in_pool:
        _die_with_parent()


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when its parent dies: a killed run leaves no orphans."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: workers still exit when the pool closes
        pass


def _run_batch(args: tuple[str, list[Job]]) -> list[JobResult]:
    """Jobs of one MBROLA voice: one espeak-ng call for all their texts, then one MBROLA call each."""
    root, jobs = Path(args[0]), args[1]
    voice = speaker(jobs[0].speaker).voice
    try:
        phos: list[str | None] = list(espeak_pho_batch([j.text for j in jobs], voice))
    except Exception:  # let each job fail (or succeed) on its own below
        phos = [None] * len(jobs)
    return [_run_one(root, job, pho) for job, pho in zip(jobs, phos)]


def _run_one(root: Path, job: Job, pho: str | None) -> JobResult:
    try:
        spk = speaker(job.speaker)
        if job.pitch_scale != 1.0:
            spk = dataclasses.replace(spk, pitch=spk.pitch * job.pitch_scale)
        utt = synthesize(job.text, spk, job.tempo, job.lead_ms, _PRONS.get(spk.voice), pho)
        buf = io.BytesIO()
        sf.write(buf, utt.audio, SAMPLE_RATE, format="WAV", subtype="PCM_16")
        atomic_write_bytes(root / job.wav, buf.getvalue())
        utt.alignment.save(root / job.align)  # last: its presence marks the job finished
        return JobResult(job.id, len(utt.audio), True, utt.match_rate)
    except Exception as e:  # a bad job is recorded and the batch goes on
        return JobResult(job.id, error=f"{job.id}: {type(e).__name__}: {e}")


def _batches(jobs: Sequence[Job], size: int) -> list[list[Job]]:
    """Consecutive jobs grouped by voice (espeak-ng is called once per batch)."""
    by_voice: dict[str, list[Job]] = {}
    for j in jobs:
        by_voice.setdefault(speaker(j.speaker).voice, []).append(j)
    return [js[i:i + size] for js in by_voice.values() for i in range(0, len(js), size)]


def run_jobs(root: Path, jobs: Sequence[Job], prons: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
             workers: int | None = None, progress: bool = True, desc: str = "synthesizing") -> dict[str, JobResult]:
    """Synthesize the unfinished ``jobs`` under ``root``; returns a result for every job."""
    from tqdm.auto import tqdm

    root = Path(root)
    prons = prons or {}
    results: dict[str, JobResult] = {}
    todo = []
    for job in jobs:
        if is_done(root, job):
            results[job.id] = JobResult(job.id, sf.info(str(root / job.wav)).frames)
        else:
            todo.append(job)
    workers = default_workers() if workers is None else max(1, workers)
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc=desc, unit="utt",
               disable=not progress, dynamic_ncols=True)
    # Small batches when there is little to do, so both workers get some.
    size = max(1, min(BATCH, -(-len(todo) // (2 * workers))))
    args = [(str(root), b) for b in _batches(todo, size)]
    ex = None
    try:
        if workers > 1 and len(args) > 1:
            ex = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(prons, True))
            outs = ex.map(_run_batch, args)
        else:
            _init_worker(prons)
            outs = map(_run_batch, args)
        for batch in outs:
            for r in batch:
                results[r.id] = r
            bar.update(len(batch))
    finally:
        if ex is not None:
            ex.shutdown(cancel_futures=True)
        bar.close()
    for r in results.values():
        if r.error:
            log.error("%s", r.error)
    return results

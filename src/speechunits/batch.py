"""Tokenize many files: sharded, resumable, with a progress bar and a record of failures.

The job follows the fairseq convention: shard ``rank`` of ``nshard`` takes a contiguous slice of
the utterance list, so the same command runs as a SLURM array, under torchrun (which sets
``RANK``/``WORLD_SIZE``), or by hand. Units go to a JSONL file line by line through
``UnitsWriter``: a killed job rerun with the same arguments skips what is done and writes each
remaining utterance exactly once. Other formats (Parquet, fairseq ``.km``, ``<|u|>`` text, a
Lhotse cuts manifest) are written from that JSONL when the shard completes.

Bad files never stop the job: whatever goes wrong with one utterance (undecodable audio, a
header that asks for more memory than there is, an encoder error) is recorded in
``<out>.errors.jsonl`` (id, path, reason) and the job goes on; audio that loads but looks wrong
(all silent, clipped) is listed in ``<out>.warnings.jsonl``.

What a file holds is fixed by the tokenizer config (``<out>.config.json``) and the job record
(``<out>.job.json``: de-dup, BPE, format, shard and the list of inputs). A rerun into an
existing output resumes only when both are equal and refuses otherwise, saying what differs;
``resume=False`` writes the new output beside the old one and swaps it in when complete. Bad
output paths (a folder, an input, a folder that cannot be written) and ``bpe=True`` without a
BPE are refused before anything is written.

Example:
    >>> from speechunits.batch import shard_output_path
    >>> str(shard_output_path("units.jsonl", 1, 4))
    'units_1_4.jsonl'
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from speechunits.data.atomic import atomic_write_text
from speechunits.data.loader import LoadedAudio, describe_failure, iter_audio
from speechunits.data.manifest import Utterance
from speechunits.encoders import shard_range
from speechunits.tokenizer import Tokenizer, TokenizerError
from speechunits.tokens import (Units, UnitsFileError, UnitsWriter, iter_jsonl, read_jsonl, write_config, write_km,
                                write_parquet, write_unit_text)
from speechunits.tokens.io import IDS_SUFFIX, config_path, job_path, write_job
from speechunits.tokens.writer import describe_differences

FORMATS = {".jsonl": "jsonl", ".parquet": "parquet", ".km": "km", ".txt": "text", ".jsonl.gz": "lhotse"}
# Lhotse cuts may also be written to a plain .jsonl (format="lhotse"); Lhotse reads either.
SUFFIXES = {"jsonl": (".jsonl",), "parquet": (".parquet",), "km": (".km",), "text": (".txt",),
            "lhotse": (".jsonl.gz", ".jsonl")}


class OutputError(ValueError):
    """An output path the job cannot use: ``"<path>: <reason>"``, raised before anything is written."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass
class TokenizeReport:
    """What a tokenize job did: counts, audio seconds, wall time, failures and warnings."""

    output: str
    total: int
    done_before: int = 0
    written: int = 0
    failed: list[dict] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    warnings: list[dict] = field(default_factory=list)
    errors_file: str | None = None
    warnings_file: str | None = None

    @property
    def real_time_factor(self) -> float:
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else float("nan")

    def summary(self) -> str:
        lines = [
            f"{self.output}: {self.written} utterances tokenized"
            + (f", {self.done_before} already done (resumed)" if self.done_before else "")
            + f", {len(self.failed)} failed, of {self.total}",
            f"audio {self.audio_seconds:.1f} s in {self.wall_seconds:.1f} s (RTF {self.real_time_factor:.3f})",
        ]
        if self.warnings:
            lines.append(f"{len(self.warnings)} audio warning(s) (silent or clipped audio, still tokenized): "
                         f"see {self.warnings_file}")
        if self.failed:
            lines.append(f"failures (all {len(self.failed)} in {self.errors_file}):")
            lines += [f"  {f['id']}: {f['reason']}" for f in self.failed[:20]]
            if len(self.failed) > 20:
                lines.append(f"  ... and {len(self.failed) - 20} more (see the errors file)")
        return "\n".join(lines)


def shard_output_path(out: str | os.PathLike, rank: int, nshard: int) -> Path:
    """``units.jsonl`` -> ``units_{rank}_{nshard}.jsonl`` when sharded (fairseq's naming);
    ``cuts.jsonl.gz`` -> ``cuts_{rank}_{nshard}.jsonl.gz``."""
    p = Path(out)
    if nshard == 1:
        return p
    suffix = ".jsonl.gz" if p.name.endswith(".jsonl.gz") else p.suffix
    return p.with_name(f"{p.name[: len(p.name) - len(suffix)]}_{rank}_{nshard}{suffix}")


def output_format(out: str | os.PathLike, fmt: str | None = None) -> str:
    """The format of output ``out``: ``fmt`` when given (checked against the suffix), else the
    suffix's (``.jsonl.gz``: Lhotse cuts). Raises ``OutputError``."""
    name = Path(out).name
    if fmt is None:
        fmt = next((f for s, f in sorted(FORMATS.items(), key=lambda x: -len(x[0])) if name.endswith(s)), None)
        if fmt is None:
            raise OutputError(out, f"unknown output format {Path(out).suffix!r} (choose one of {', '.join(FORMATS)})")
    elif fmt not in SUFFIXES:
        raise OutputError(out, f"unknown output format {fmt!r} (choose one of {', '.join(SUFFIXES)})")
    elif not name.endswith(SUFFIXES[fmt]):
        raise OutputError(out, f"a {fmt} output must end in {' or '.join(SUFFIXES[fmt])}")
    return fmt


def errors_path(out: str | os.PathLike) -> Path:
    """``<out>.errors.jsonl``: the utterances a job could not do, one JSON object a line."""
    return Path(str(out) + ".errors.jsonl")


def warnings_path(out: str | os.PathLike) -> Path:
    """``<out>.warnings.jsonl``: utterances done despite suspicious audio (silent, clipped)."""
    return Path(str(out) + ".warnings.jsonl")


def write_records(path: Path, records: list[dict]) -> None:
    """Write ``records`` as JSONL (atomically), or remove a stale file when there are none."""
    if records:
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    else:
        path.unlink(missing_ok=True)  # a clean rerun leaves no stale records behind


def check_output_file(out: str | os.PathLike, writes: Sequence[Path] = (),
                      inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Refuse an output that is a folder, that would overwrite one of ``inputs``, or whose folder
    cannot be written; nothing is created. Returns ``out``. ``writes`` are the other files the
    job will write (sidecars), checked against the inputs too."""
    out = Path(out)
    if out.is_dir():
        raise OutputError(out, "is a folder; give the output file, e.g. " + str(out / "units.jsonl"))
    mine = {_canonical(p) for p in (out, *writes)}
    names = {Path(p).name for p in mine} | {p.name for p in (out, *writes)}
    for item in inputs:
        p = Path(item)
        # realpath costs a syscall per path component: only for inputs that could be ours
        if (p.name in names or p.is_symlink()) and _canonical(p) in mine:
            raise OutputError(out, f"would overwrite the input {item}; choose another output path")
    # Probe the folder (or the nearest one that exists, where the missing ones would be made)
    # with a real file: permissions, read-only mounts and ACLs all answer the same way.
    folder = out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(folder, "is not a folder, so the output cannot be written under it")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        reason = (e.strerror or str(e)).lower()
        raise OutputError(folder, f"cannot write the output here: {reason}") from None
    return out


def _canonical(p: Path) -> str:
    return os.path.normcase(os.path.realpath(p))


def tokenize_corpus(
    tokenizer: Tokenizer,
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
    decode_workers: int = 1,
    inputs: Sequence[str | os.PathLike] = (),
    format: str | None = None,
) -> TokenizeReport:
    """Tokenize shard ``rank`` of ``nshard`` of ``utts`` into ``out`` (``format``: jsonl,
    parquet, km, text or lhotse; default from the suffix, see :func:`output_format`).

    ``inputs``: manifests or folders the utterances came from, which the output must not
    overwrite (the utterances' own files are checked too). Raises ``OutputError``,
    ``TokenizerError`` or ``UnitsFileError`` (an existing output written differently) before
    anything is written; per-utterance failures are recorded in the report, never raised.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    plan = plan_job(tokenizer, utts, out, dedup=dedup, bpe=bpe, nshard=nshard, rank=rank, resume=resume,
                    inputs=inputs, format=format, in_place=True)
    report = TokenizeReport(output=str(plan.out), total=len(plan.shard))
    t0 = time.perf_counter()
    with UnitsWriter(plan.work, plan.config, resume=resume, job=plan.job) as writer:
        todo = [u for u in plan.shard if u.id not in writer]
        report.done_before = len(plan.shard) - len(todo)
        _run(tokenizer, todo, writer, report, plan.dedup, plan.bpe, batch_size, progress, decode_workers, plan.out)
    finish_job(plan, report)
    report.wall_seconds = time.perf_counter() - t0
    return report


@dataclass
class JobPlan:
    """A tokenize job, checked and ready to run: where it writes, what it holds and for which
    utterances. ``work`` is the JSONL written before ``out`` (``out`` itself when in place)."""

    out: Path
    format: str
    work: Path
    shard: list[Utterance]
    config: dict
    job: dict
    dedup: bool
    bpe: bool


def plan_job(tokenizer: Tokenizer, utts: Sequence[Utterance], out: str | os.PathLike, *, dedup: bool | None,
             bpe: bool | None, nshard: int, rank: int, resume: bool, inputs: Sequence[str | os.PathLike],
             format: str | None, in_place: bool) -> JobPlan:
    """Check a tokenize job before anything is written (see :func:`tokenize_corpus` for the
    arguments; ``in_place``: a resumed JSONL output is appended to where it lies). Shared by
    the single-process job and the engines of :mod:`speechunits.distributed`."""
    if nshard < 1 or not 0 <= rank < nshard:
        raise ValueError(f"need nshard >= 1 and 0 <= rank < nshard, got rank {rank} of {nshard}")
    out = shard_output_path(out, rank, nshard)
    fmt = output_format(out, format)
    use_bpe = (tokenizer.bpe is not None) if bpe is None else bool(bpe)
    if use_bpe and tokenizer.bpe is None:
        raise TokenizerError("this tokenizer has no BPE, so --bpe / bpe=True cannot apply "
                             "(train one with `speechunits bpe`)")
    use_dedup = use_bpe or (tokenizer.dedup if dedup is None else bool(dedup))
    # The JSONL is written in place (that is what resumes); anything else, and a fresh start,
    # goes to a work file that replaces the output only when complete.
    work = out if in_place and fmt == "jsonl" and resume else out.with_name(out.name + ".partial.jsonl")
    sidecars = [config_path(out), job_path(out), errors_path(out), warnings_path(out), work,
                config_path(work), job_path(work), Path(str(out) + IDS_SUFFIX)]
    sources = [*inputs, *(u.path for u in utts), *(u.alignment for u in utts if u.alignment is not None)]
    check_output_file(out, sidecars, sources)
    start, end = shard_range(len(utts), nshard, rank)
    shard = list(utts[start:end])
    config = tokenizer.config()
    job = job_record(fmt, use_dedup, use_bpe, nshard, rank, shard)
    if resume and work != out and out.exists():
        _check_finished(out, config, job)  # a finished .parquet/.km/.txt from another job is not replaced
    return JobPlan(out, fmt, work, shard, config, job, use_dedup, use_bpe)


def finish_job(plan: JobPlan, report: TokenizeReport) -> None:
    """Record the job's failures and warnings beside its output and put the output in place."""
    out = plan.out
    report.errors_file, report.warnings_file = str(errors_path(out)), str(warnings_path(out))
    write_records(errors_path(out), report.failed)
    write_records(warnings_path(out), report.warnings)
    if plan.work != out:
        _commit(plan.work, out, plan.format, plan.config, plan.job, plan.shard)


def job_record(fmt: str, dedup: bool, bpe: bool, nshard: int, rank: int, shard: Sequence[Utterance]) -> dict:
    """What, besides the tokenizer config, decides the content of an output file."""
    h = hashlib.sha256()
    for u in shard:
        h.update(f"{u.id}\t{u.path}\n".encode("utf-8", "surrogateescape"))
    return {"format": fmt, "dedup": dedup, "bpe": bpe, "shard": [rank, nshard], "utterances": len(shard),
            "inputs_sha256": h.hexdigest()}


def _check_finished(out: Path, config: dict, job: dict) -> None:
    """A finished .parquet/.km/.txt is replaced only by the same job (or with resume=False)."""
    hint = " (replace it with --no-resume / resume=False, or choose another output path)"
    diffs: list[str] = []
    for what, side, new in (("tokenizer config", config_path(out), config), ("", job_path(out), job)):
        try:
            old = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise UnitsFileError(out, f"exists and its {side.name} is missing or unreadable, so it cannot "
                                 "be told apart from another job's output" + hint) from None
        diffs += describe_differences(old, json.loads(json.dumps(new)), what)
    if diffs:
        raise UnitsFileError(out, "exists and was written differently: " + "; ".join(diffs) + hint)


def _run(tokenizer: Tokenizer, todo: list[Utterance], writer: UnitsWriter, report: TokenizeReport,
         dedup: bool, bpe: bool, batch_size: int, progress: bool, decode_workers: int, out: Path) -> None:
    bar = tqdm(total=len(todo), unit="utt", desc=f"tokenize {out.name}", disable=not progress)
    batch: list[LoadedAudio] = []

    def fail(utt: Utterance, reason: str) -> None:
        report.failed.append({"id": utt.id, "path": str(utt.path), "reason": reason})

    def flush() -> None:
        for item, units in zip(batch, tokenize_loaded(tokenizer, batch, dedup, bpe)):
            if isinstance(units, str):
                fail(item.utt, units)
                continue
            writer.write(units)  # an error here (disk full...) is the job's, not the file's: raise
            report.written += 1
            report.audio_seconds += len(item.wave) / tokenizer.encoder.sample_rate
        bar.update(len(batch))
        batch.clear()

    for item in iter_audio(todo, workers=decode_workers):
        report.warnings.extend({"id": item.utt.id, "path": str(item.utt.path), "warning": w} for w in item.warnings)
        if item.wave is None:
            fail(item.utt, item.error or "could not be loaded")
            bar.update(1)
            continue
        batch.append(item)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    bar.close()


def tokenize_loaded(tokenizer: Tokenizer, batch: list[LoadedAudio], dedup: bool, bpe: bool) -> list[Units | str]:
    """``Units`` for each decoded item of ``batch``, or the reason (a str) that item failed: the
    per-utterance contract of a tokenize job, shared with the engines of ``distributed``."""
    out: list[Units | str] = []
    for item, ids in zip(batch, _frame_units(tokenizer, batch)):
        if isinstance(ids, str):
            out.append(ids)
        elif len(ids) == 0:
            out.append("shorter than one frame (25 ms)")
        else:
            try:
                out.append(tokenizer.postprocess(ids, dedup=dedup, bpe=bpe, utt_id=item.utt.id))
            except Exception as e:  # one utterance's problem
                out.append(describe_failure(e, "post-processing"))
    return out


def _frame_units(tokenizer: Tokenizer, batch: list[LoadedAudio]) -> list:
    """Frame ids per item, or the reason (a str) it failed. A batch that fails is retried one
    utterance at a time, so only the utterance at fault is lost (batched = unbatched ids)."""
    try:
        return tokenizer.frame_units([b.wave for b in batch])
    except Exception as e:
        if len(batch) == 1:
            return [describe_failure(e, "encoding")]
    out = []
    for b in batch:
        try:
            out.append(tokenizer.frame_units([b.wave])[0])
        except Exception as e:
            out.append(describe_failure(e, "encoding"))
    return out


def _commit(work: Path, out: Path, fmt: str, config: dict, job: dict, shard: Sequence[Utterance]) -> None:
    """Put the finished work file in place of ``out``. The old job record goes first and the new
    one last, so a kill in between leaves an output that is never resumed as if it matched."""
    job_path(out).unlink(missing_ok=True)
    if fmt == "jsonl":
        os.replace(work, out)
        os.replace(config_path(work), config_path(out))
    else:
        _convert(work, out, fmt, config, shard)
        work.unlink()
        config_path(work).unlink(missing_ok=True)
    job_path(work).unlink(missing_ok=True)
    write_job(out, job)


def _convert(src: Path, out: Path, fmt: str, config: dict, shard: Sequence[Utterance]) -> None:
    if fmt == "lhotse":  # streamed: a cuts manifest may be large
        from speechunits.data.formats.lhotse import write_cuts

        write_config(out, config)
        write_cuts(out, iter_jsonl(src), {u.id: u for u in shard})
        return
    units = read_jsonl(src)
    if fmt == "parquet":
        write_parquet(out, units, config)
    elif fmt == "km":
        write_km(out, units, config)
    else:
        write_unit_text(out, units, config)

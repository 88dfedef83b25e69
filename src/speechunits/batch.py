"""Tokenize many files: sharded, resumable, with a progress bar and a record of failures.

The job follows the fairseq convention: shard ``rank`` of ``nshard`` takes a contiguous slice of
the utterance list, so the same command runs as a SLURM array, under torchrun (which sets
``RANK``/``WORLD_SIZE``), or by hand. Units go to a JSONL file line by line through
``UnitsWriter``: a killed job rerun with the same arguments skips what is done and writes each
remaining utterance exactly once. Other formats (Parquet, fairseq ``.km``, ``<|u|>`` text) are
written from that JSONL when the shard completes. A file that cannot be decoded is recorded in
``<out>.errors.jsonl`` (id, path, reason) and the job goes on.

Example:
    >>> from speechunits.batch import shard_output_path
    >>> str(shard_output_path("units.jsonl", 1, 4))
    'units_1_4.jsonl'
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from speechunits.data.atomic import atomic_write_text
from speechunits.data.loader import LoadedAudio, iter_audio
from speechunits.data.manifest import Utterance
from speechunits.encoders import shard_range
from speechunits.tokenizer import Tokenizer
from speechunits.tokens import UnitsWriter, read_jsonl, write_km, write_parquet, write_unit_text

FORMATS = {".jsonl": "jsonl", ".parquet": "parquet", ".km": "km", ".txt": "text"}


@dataclass
class TokenizeReport:
    """What a tokenize job did: counts, audio seconds, wall time, failures."""

    output: str
    total: int
    done_before: int = 0
    written: int = 0
    failed: list[dict] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

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
        if self.failed:
            lines.append("failures:")
            lines += [f"  {f['id']}: {f['reason']}" for f in self.failed[:20]]
            if len(self.failed) > 20:
                lines.append(f"  ... and {len(self.failed) - 20} more (see the errors file)")
        return "\n".join(lines)


def shard_output_path(out: str | os.PathLike, rank: int, nshard: int) -> Path:
    """``units.jsonl`` -> ``units_{rank}_{nshard}.jsonl`` when sharded (fairseq's naming)."""
    p = Path(out)
    return p if nshard == 1 else p.with_name(f"{p.stem}_{rank}_{nshard}{p.suffix}")


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
) -> TokenizeReport:
    """Tokenize shard ``rank`` of ``nshard`` of ``utts`` into ``out`` (format from its suffix)."""
    out = shard_output_path(out, rank, nshard)
    fmt = FORMATS.get(out.suffix)
    if fmt is None:
        raise ValueError(f"{out}: unknown output format {out.suffix!r} (choose one of {', '.join(FORMATS)})")
    start, end = shard_range(len(utts), nshard, rank)
    shard = list(utts[start:end])
    work = out if fmt == "jsonl" else out.with_name(out.name + ".partial.jsonl")
    config = tokenizer.config()
    report = TokenizeReport(output=str(out), total=len(shard))
    errors_path = out.with_name(out.name + ".errors.jsonl")
    t0 = time.perf_counter()
    with UnitsWriter(work, config, resume=resume) as writer:
        todo = [u for u in shard if u.id not in writer]
        report.done_before = len(shard) - len(todo)
        bar = tqdm(total=len(todo), unit="utt", desc=f"tokenize {out.name}", disable=not progress)
        batch: list[LoadedAudio] = []

        def flush() -> None:
            waves = [b.wave for b in batch]
            for item, ids in zip(batch, tokenizer.frame_units(waves)):
                if len(ids) == 0:
                    report.failed.append({"id": item.utt.id, "path": str(item.utt.path),
                                          "reason": "shorter than one frame (25 ms)"})
                    continue
                writer.write(tokenizer.postprocess(ids, dedup=dedup, bpe=bpe, utt_id=item.utt.id))
                report.written += 1
                report.audio_seconds += len(item.wave) / tokenizer.encoder.sample_rate
            bar.update(len(batch))
            batch.clear()

        for item in iter_audio(todo, workers=decode_workers):
            report.warnings.extend(item.warnings)
            if item.wave is None:
                report.failed.append({"id": item.utt.id, "path": str(item.utt.path), "reason": item.error})
                bar.update(1)
                continue
            batch.append(item)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
        bar.close()
    if report.failed:
        atomic_write_text(errors_path, "".join(json.dumps(f) + "\n" for f in report.failed))
    elif errors_path.exists():
        errors_path.unlink()  # a clean rerun leaves no stale failures behind
    if fmt != "jsonl":
        _convert(work, out, fmt, config)
        work.unlink()
        Path(str(work) + ".config.json").unlink(missing_ok=True)
    report.wall_seconds = time.perf_counter() - t0
    return report


def _convert(src: Path, out: Path, fmt: str, config: dict) -> None:
    units = read_jsonl(src)
    if fmt == "parquet":
        write_parquet(out, units, config)
    elif fmt == "km":
        write_km(out, units, config)
    else:
        write_unit_text(out, units, config)

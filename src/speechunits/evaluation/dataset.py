"""The data one evaluation runs on: utterances, their audio, alignments and speakers.

``load_dataset(source)`` reads a manifest, folder or container (anything ``data.formats.read_input``
reads), keeps a seeded random subset of at most ``max_utterances`` (in manifest order, so the subset
is the same for a seed whatever the machine), decodes the audio (bad files are recorded with their reason and
left out, never fatal) and loads the phone/word/character alignments the manifest points to
(``alignments="auto"``) or ignores them (``"none"``). Speakers come from the manifest; a
LibriSpeech tree gives them from the file names.

Example:
    >>> import numpy as np, soundfile as sf, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> sf.write(d / "a.wav", np.zeros(8000, np.float32), 16000)
    >>> ds = load_dataset(d)
    >>> ds.num_utterances, ds.has_alignments, ds.seconds
    (1, False, 0.5)
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from speechunits.data.alignment import Alignment
from speechunits.data.loader import describe_failure, iter_audio
from speechunits.data.formats import read_input
from speechunits.data.manifest import Utterance

SAMPLE_RATE = 16000


@dataclass
class EvalData:
    """One dataset, loaded: ``waves[i]`` (16 kHz float32) belongs to ``utts[i]``.

    ``alignments[i]`` is None where the utterance has none (or alignments are off);
    ``failed`` lists ``{"id", "reason"}`` for utterances left out (undecodable audio, a broken
    alignment file, audio shorter than one frame); ``warnings`` lists ``{"id", "warning"}`` for
    utterances kept despite suspicious audio (all silent, clipped).
    """

    name: str
    source: str
    utts: list[Utterance]
    waves: list[np.ndarray]
    alignments: list[Alignment | None]
    failed: list[dict[str, str]] = field(default_factory=list)
    total_in_manifest: int = 0
    alignment_mode: str = "auto"
    warnings: list[dict[str, str]] = field(default_factory=list)  # {"id", "warning"}: silent, clipped

    def drop(self, reasons: dict[int, str]) -> None:
        """Leave out the utterances at these indices, recording each with its reason."""
        for i in sorted(reasons):
            self.failed.append({"id": self.utts[i].id, "reason": reasons[i]})
        keep = [i for i in range(len(self.utts)) if i not in reasons]
        self.utts = [self.utts[i] for i in keep]
        self.waves = [self.waves[i] for i in keep]
        self.alignments = [self.alignments[i] for i in keep]

    @property
    def num_utterances(self) -> int:
        return len(self.utts)

    @property
    def seconds(self) -> float:
        return float(sum(len(w) for w in self.waves)) / SAMPLE_RATE

    @property
    def speakers(self) -> list[str | None]:
        return [u.speaker for u in self.utts]

    @property
    def has_alignments(self) -> bool:
        return any(a is not None for a in self.alignments)

    def summary(self) -> dict[str, Any]:
        """JSON-able description (what metrics.json records about the data)."""
        spk = {s for s in self.speakers if s is not None}
        return {
            "name": self.name,
            "source": self.source,
            "utterances": self.num_utterances,
            "utterances_in_manifest": self.total_in_manifest,
            "seconds": round(self.seconds, 3),
            "speakers": len(spk),
            "utterances_without_speaker": sum(s is None for s in self.speakers),
            "aligned_utterances": sum(a is not None for a in self.alignments),
            "alignments": self.alignment_mode,
            "failed": self.failed,
            "warnings": self.warnings,
        }


def dataset_name(source: str | os.PathLike) -> str:
    """A short readable name: ``corpus/test.jsonl`` -> ``corpus/test``, a folder -> its name."""
    p = Path(source)
    stem = p.name if p.is_dir() else p.stem
    parent = p.resolve().parent.name if not p.is_dir() else ""
    return f"{parent}/{stem}" if parent else stem


def stable_seed(seed: int, *keys: str) -> int:
    """A 31-bit seed from ``seed`` and string keys (CRC32: identical across runs and machines).

    >>> stable_seed(0, "noise", "utt1") == stable_seed(0, "noise", "utt1")
    True
    """
    words = [int(seed) & 0xFFFFFFFF] + [zlib.crc32(k.encode("utf-8")) for k in keys]
    return int(np.random.SeedSequence(words).generate_state(1)[0] & 0x7FFFFFFF)


def sample_indices(n: int, max_n: int | None, seed: int) -> list[int]:
    """At most ``max_n`` of ``range(n)``, drawn with ``seed``, returned in ascending order.

    >>> sample_indices(5, None, 0)
    [0, 1, 2, 3, 4]
    >>> len(sample_indices(100, 10, 0))
    10
    """
    if max_n is None or max_n >= n:
        return list(range(n))
    if max_n < 1:
        raise ValueError(f"max_utterances must be >= 1, got {max_n}")
    rng = np.random.default_rng(stable_seed(seed, "utterance-subset"))
    return sorted(rng.choice(n, size=max_n, replace=False).tolist())


def subset_by_seconds(lengths: Sequence[int], max_seconds: float | None, seed: int, key: str,
                      sample_rate: int = SAMPLE_RATE) -> list[int]:
    """Indices of a seeded random subset whose audio totals at most ``max_seconds``
    (at least one utterance), in ascending order; ``None`` keeps everything.

    The order is a seeded permutation, so a larger budget extends a smaller one's subset.
    """
    n = len(lengths)
    if max_seconds is None or sum(lengths) / sample_rate <= max_seconds:
        return list(range(n))
    order = np.random.default_rng(stable_seed(seed, key)).permutation(n)
    keep, total = [], 0.0
    for i in order:
        sec = lengths[i] / sample_rate
        if keep and total + sec > max_seconds:
            continue
        keep.append(int(i))
        total += sec
    return sorted(keep)


def load_dataset(
    source: str | os.PathLike,
    *,
    max_utterances: int | None = None,
    seed: int = 0,
    alignments: str = "auto",
    min_samples: int = 400,
    progress: bool = False,
) -> EvalData:
    """Read, subsample and decode one dataset (see the module docstring).

    Args:
        source: a manifest (``.jsonl``/``.tsv``) or a folder (LibriSpeech tree or any audio).
        max_utterances: keep a seeded random subset of this many utterances.
        alignments: ``"auto"`` (use those the manifest names) or ``"none"``.
        min_samples: shorter audio gives no frame and is recorded as failed.
    """
    if alignments not in ("auto", "none"):
        raise ValueError(f"alignments must be 'auto' or 'none', got {alignments!r}")
    all_utts = read_input(source)
    chosen = [all_utts[i] for i in sample_indices(len(all_utts), max_utterances, seed)]
    utts, waves, aligns, failed, warned = [], [], [], [], []
    items = iter_audio(chosen, workers=1)
    if progress:
        from tqdm import tqdm

        items = tqdm(items, total=len(chosen), unit="utt", desc=f"load {dataset_name(source)}")
    for item in items:
        u = item.utt
        warned.extend({"id": u.id, "warning": w} for w in item.warnings)
        if item.wave is None:
            failed.append({"id": u.id, "reason": str(item.error)})
            continue
        if len(item.wave) < min_samples:
            failed.append({"id": u.id, "reason": f"{len(item.wave)} samples: shorter than one frame"})
            continue
        al = None
        if alignments == "auto" and u.alignment is not None:
            try:
                al = Alignment.load(u.alignment)
            except Exception as e:  # any failure of one alignment file costs that utterance only
                why = str(e) if isinstance(e, (OSError, ValueError)) else describe_failure(e, "reading it")
                failed.append({"id": u.id, "reason": f"alignment unreadable: {why}"})
                continue
        utts.append(u)
        waves.append(item.wave)
        aligns.append(al)
    return EvalData(
        name=dataset_name(source), source=str(source), utts=utts, waves=waves, alignments=aligns,
        failed=failed, total_in_manifest=len(all_utts), alignment_mode=alignments, warnings=warned,
    )


def read_training_units(path: str | os.PathLike, tokenizer: Any) -> list[np.ndarray]:
    """Frame or de-duplicated ids from a unit file (``.jsonl``, ``.parquet``, ``.km``) written by
    ``speechunits tokenize`` with ``tokenizer``; refuses units of another tokenizer or BPE tokens
    (their ids would not be this codebook's)."""
    import json

    from speechunits.tokens import read_config, read_jsonl, read_km, read_parquet
    from speechunits.tokens.io import job_path

    readers = {".jsonl": read_jsonl, ".parquet": read_parquet, ".km": read_km}
    p = Path(path)
    if p.suffix not in readers:
        raise ValueError(f"{p}: unit file must be .jsonl, .parquet or .km")
    cfg, mine = read_config(p), tokenizer.config()
    for key in ("encoder", "layers", "quantizer"):
        if cfg.get(key) != mine.get(key):
            raise ValueError(f"{p}: units were made by another tokenizer ({key} differs from "
                             f"{mine['encoder'].get('name')} k={mine['k']}); the n-gram LM must be trained on "
                             "this tokenizer's units")
    refuse = f"{p}: holds BPE tokens; give frame-level or de-duplicated units"
    # Units read back from a file carry no "bpe" mark: `tokenize` records the option in the job
    # record beside the file, and ids at or past k can only be BPE tokens (the reader has
    # already refused them unless the config has a BPE).
    try:
        job = json.loads(job_path(p).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        job = None  # written by the API, or the record is gone: the ids below still tell
    if isinstance(job, dict) and job.get("bpe"):
        raise ValueError(refuse)
    units = readers[p.suffix](p)
    ks = mine["k"] if isinstance(mine["k"], list) else [mine["k"]]
    if any(u.ids.size and int(u.ids.max()) >= max(ks) for u in units):
        raise ValueError(refuse)
    return [u.ids for u in units]

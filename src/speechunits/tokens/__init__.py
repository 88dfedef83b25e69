"""Tokens: the ``Units`` record, de-duplication, BPE over units, unit edit distance,
chunk-wise streaming tokenization and unit file formats.

Example:
    >>> import numpy as np
    >>> from speechunits.tokens import Units, dedup, expand
    >>> u = Units(np.array([4, 4, 4, 1]), frame_rate=50.0, utt_id="utt1")
    >>> d = dedup(u)
    >>> d.ids.tolist(), d.durations.tolist(), expand(d) == u
    ([4, 1], [3, 1], True)
"""

from .bpe import UnitBPE
from .dedup import dedup, dedup_ids, expand, expand_ids
from .distance import corpus_unit_edit_distance, edit_distance, unit_edit_distance
from .io import (
    UnitsFileError,
    config_path,
    iter_jsonl,
    parse_unit_text,
    provenance_for,
    read_config,
    read_jsonl,
    read_km,
    read_parquet,
    read_unit_text,
    read_units,
    to_unit_text,
    write_config,
    write_jsonl,
    write_km,
    write_parquet,
    write_unit_text,
)
from .streaming import StreamingTokenizer, stream_agreement
from .units import Units, config_hash
from .writer import UnitsWriter

__all__ = [
    "read_units",
    "Units",
    "config_hash",
    "dedup",
    "dedup_ids",
    "expand",
    "expand_ids",
    "UnitBPE",
    "edit_distance",
    "unit_edit_distance",
    "corpus_unit_edit_distance",
    "StreamingTokenizer",
    "stream_agreement",
    "UnitsFileError",
    "UnitsWriter",
    "config_path",
    "provenance_for",
    "read_config",
    "write_config",
    "write_jsonl",
    "read_jsonl",
    "iter_jsonl",
    "write_parquet",
    "read_parquet",
    "write_km",
    "read_km",
    "to_unit_text",
    "parse_unit_text",
    "write_unit_text",
    "read_unit_text",
]

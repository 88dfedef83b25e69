"""Merge the units files (and transcripts) of several synthetic corpora into one training set.

Corpora synthesized with different seeds reuse utterance ids (``<speaker>_<index>``), so every id
is prefixed with its corpus's name; the transcripts get the same prefix so that `lm asr-train`
still pairs them. The units files' sidecar config (tokenizer, k) is copied from the first one
after checking that every input was made by the same tokenizer.

    python scripts/merge_corpora.py --units OUT.jsonl --text OUT_TEXT.jsonl \
        s0=runs/ulm150/units/train.jsonl:runs/ulm150/corpus/train.jsonl \
        s1=runs/big/c1/units/train.jsonl:runs/big/c1/corpus/train.jsonl ...
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

from speechunits.data.atomic import atomic_open, atomic_write_text


def _config(units: Path) -> dict:
    """The tokenizer config `speechunits tokenize` writes beside a units file."""
    return json.loads(Path(f"{units}.config.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", required=True, type=Path, help="merged units file (.jsonl)")
    ap.add_argument("--text", type=Path, help="merged transcripts (.jsonl {id, text})")
    ap.add_argument("parts", nargs="+", help="NAME=UNITS.jsonl[:MANIFEST.jsonl]")
    a = ap.parse_args()
    parts = []
    for p in a.parts:
        name, _, files = p.partition("=")
        units, _, manifest = files.partition(":")
        if not name or not units:
            raise SystemExit(f"{p}: expected NAME=UNITS.jsonl[:MANIFEST.jsonl]")
        parts.append((name, Path(units), Path(manifest) if manifest else None))
    first = _config(parts[0][1])
    for name, units, _ in parts[1:]:
        if _config(units) != first:
            raise SystemExit(f"{units}: made by another tokenizer than {parts[0][1]}")
    n_utts = 0
    with contextlib.ExitStack() as files:  # each file appears whole or not at all
        fu = files.enter_context(atomic_open(a.units))
        ft = files.enter_context(atomic_open(a.text)) if a.text else None
        for name, units, manifest in parts:
            for line in units.open():
                row = json.loads(line)
                row["id"] = f"{name}_{row['id']}"
                fu.write(json.dumps(row) + "\n")
                n_utts += 1
            if ft is not None and manifest is not None:
                for line in manifest.open():
                    row = json.loads(line)
                    ft.write(json.dumps({"id": f"{name}_{row['id']}", "text": row["text"]}) + "\n")
    atomic_write_text(f"{a.units}.config.json", Path(f"{parts[0][1]}.config.json").read_text())
    print(f"{a.units}: {n_utts} utterances from {len(parts)} corpora")


if __name__ == "__main__":
    main()

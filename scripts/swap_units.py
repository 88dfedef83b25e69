"""A control for unit-LM ASR: every utterance gets the units of another one of about the same
length (neighbours in length order swap ids; an odd one out is dropped), so a decoder that scores
as well on these as on the true units is not reading the units' content, only their length.

    python scripts/swap_units.py UNITS.jsonl OUT.jsonl
    speechunits lm asr-eval --model ASR_MODEL --units OUT.jsonl --text TRANSCRIPTS ...
"""

from __future__ import annotations

import sys
from dataclasses import replace

from speechunits.tokens import read_config, read_units, write_jsonl


def swapped(units: list) -> list:
    order = sorted(range(len(units)), key=lambda i: (len(units[i]), units[i].utt_id))
    out = []
    for a, b in zip(order[0::2], order[1::2]):
        out += [replace(units[a], utt_id=units[b].utt_id), replace(units[b], utt_id=units[a].utt_id)]
    return out


if __name__ == "__main__":
    src, dst = sys.argv[1:3]
    write_jsonl(dst, swapped(read_units(src)), read_config(src))

"""Optimizer steps that fit in a time budget, from a probe run's train_log.jsonl.

    python scripts/steps_for_budget.py PROBE/train_log.jsonl SECONDS BATCH_TOKENS [MULTIPLE]

The rate is the probe's last logged ``tokens_per_s`` (its first window holds the warm-up); the
answer is rounded down to a multiple of MULTIPLE (default 6, so that evaluation every 1/6 of
the steps lands on whole steps), and is at least 100.
"""

import json
import sys


def main() -> None:
    log, seconds, batch = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    multiple = int(sys.argv[4]) if len(sys.argv) > 4 else 6
    rates = [r["tokens_per_s"] for r in map(json.loads, open(log)) if "tokens_per_s" in r]
    if not rates:
        raise SystemExit(f"{log}: no tokens_per_s record (did the probe run?)")
    print(max(100, int(seconds * rates[-1] / batch) // multiple * multiple))


if __name__ == "__main__":
    main()

"""The ``speechunits`` command: one module per verb group, each thin over the library.

Each module in ``VERB_GROUPS`` exposes ``register(subparsers)``; it adds its parser and sets
``func`` (called with the parsed args, returns an exit code) with ``set_defaults``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Module names under speechunits.cli, imported lazily so `speechunits --help` stays fast
# and a verb group whose optional dependency is missing does not break the others.
VERB_GROUPS: tuple[str, ...] = ("corpus", "fit", "tokenize", "bpe", "stream", "perturb", "demo", "recipe", "lm", "ssl", "eval")


def build_parser() -> argparse.ArgumentParser:
    from speechunits import __version__

    parser = argparse.ArgumentParser(
        prog="speechunits",
        description="Speech to discrete units: fit tokenizers, tokenize, evaluate, train unit LMs.",
    )
    parser.add_argument("--version", action="version", version=f"speechunits {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in VERB_GROUPS:
        importlib.import_module(f"speechunits.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

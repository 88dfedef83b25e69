"""The ``speechunits`` command: one module per verb group, each thin over the library.

Each module in ``VERB_GROUPS`` exposes ``register(subparsers)``; it adds its parser and sets
``func`` (called with the parsed args, returns an exit code) with ``set_defaults``.

Exit status (the same for every verb): 0 when everything was done; 1 when a batch verb could not
do some of its inputs (it records each with its reason, does the rest, and says where the record
is); 2 for a usage or user error (a bad option, a missing or malformed input, manifest, tokenizer
or units file, an output path that cannot be used, a device that is not there), reported as one
line ``speechunits: error: ...`` without a traceback unless ``--debug`` or ``SPEECHUNITS_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Module names under speechunits.cli, imported lazily so `speechunits --help` stays fast
# and a verb group whose optional dependency is missing does not break the others.
VERB_GROUPS: tuple[str, ...] = ("corpus", "fit", "tokenize", "bpe", "stream", "perturb", "demo", "recipe", "lm", "ssl", "eval",
                                 "vocoder", "probe", "tts")

EXIT_USER_ERROR = 2  # 0: all done; 1: some inputs failed (a batch verb returns it)

EXIT_STATUS_HELP = """exit status:
  0  everything was done
  1  some inputs failed: a batch verb (tokenize, fit, eval, perturb, corpus) recorded each one
     with its reason (e.g. in <out>.errors.jsonl), did all the others, and says so
  2  usage or user error (bad option, missing or malformed input, tokenizer, units file or
     output path, unavailable device): one line 'speechunits: error: ...', no traceback
     (--debug or SPEECHUNITS_DEBUG=1 shows it)"""


def build_parser() -> argparse.ArgumentParser:
    from speechunits import __version__

    parser = argparse.ArgumentParser(
        prog="speechunits",
        description="Speech to discrete units: fit tokenizers, tokenize, evaluate, train unit LMs.",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"speechunits {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (also SPEECHUNITS_DEBUG=1); allowed anywhere")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in VERB_GROUPS:
        importlib.import_module(f"speechunits.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted after the verb too (where users type it when a command fails).
    cut = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:cut] or os.environ.get("SPEECHUNITS_DEBUG", "").strip() not in ("", "0")
    argv = [a for i, a in enumerate(argv) if not (i < cut and a == "--debug")]
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not hasattr(args, "func"):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        if getattr(args, "device", None) is not None:
            from speechunits.encoders.hf import check_device

            check_device(args.device)  # before any model or data is loaded, on every path
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print("speechunits: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if debug or not is_user_error(e):
            raise  # a bug: the traceback is what a report needs
        print(f"speechunits: error: {one_line(e)}", file=sys.stderr)
        return EXIT_USER_ERROR


def is_user_error(err: BaseException) -> bool:
    """Errors caused by what the user gave (inputs, options, files), not by a bug.

    ManifestError, TokenizerError, AudioError, UnitsFileError, OutputError, CheckpointError and
    the like are ValueErrors; missing files, permissions and unknown models are OSErrors; a
    missing external tool is ToolMissingError.
    """
    if isinstance(err, (ValueError, OSError)):
        return True
    tools = sys.modules.get("speechunits.data.corpus.tools")
    return tools is not None and isinstance(err, tools.ToolMissingError)


def one_line(err: BaseException) -> str:
    """``err`` as one line: ``path: reason`` for OS errors, other messages joined with '; '."""
    if isinstance(err, OSError) and err.strerror:
        text = err.strerror[0].lower() + err.strerror[1:]
        if err.filename is not None:
            text = f"{os.fsdecode(err.filename)}: {text}"
        if getattr(err, "filename2", None) is not None:
            text += f" (-> {os.fsdecode(err.filename2)})"
        return text
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return "; ".join(lines) or type(err).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

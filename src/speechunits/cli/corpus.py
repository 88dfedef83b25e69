"""``speechunits corpus``: the aligned synthetic corpus and the zero-shot pair sets.

    speechunits corpus synth --out data/synth --minutes 60 --seed 0
    speechunits corpus pairs --out data/pairs --kind all --n 1000 --seed 0
    speechunits corpus words --out data/words --words 30 --seed 0
    speechunits corpus lexicon --out small.lexicon.tsv --words 150 --seed 0   (then --lexicon on synth/pairs)
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("corpus", help="synthesize the aligned corpus and zero-shot pair sets",
                              description="Aligned multi-speaker synthetic speech (espeak-ng + MBROLA).")
    sub = p.add_subparsers(dest="corpus_command", metavar="SUBCOMMAND", required=True)

    s = sub.add_parser("synth", help="synthesize the corpus (resumable)",
                       description="Write wavs, phone/word/character alignments, train/dev/test "
                                   "manifests and corpus.json under --out. Re-running resumes.",
                       epilog="exit status: 0 every utterance synthesized; 1 some failed (listed in the "
                              "summary); 2 usage or user error (e.g. espeak-ng or MBROLA missing).")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--minutes", type=float, default=10.0, help="total audio to plan (default 10)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    s.add_argument("--lexicon", default=None, metavar="FILE",
                   help="draw words from this lexicon file (from `corpus lexicon`; default: the packaged one)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_synth)

    q = sub.add_parser("pairs", help="synthesize zero-shot pair sets (sLM21 layout)",
                       description="lexical (word vs non-word), syntactic (minimal pairs), story "
                                   "(coherent vs incoherent ending): wavs + gold.csv per kind.",
                       epilog="exit status: 0 every pair synthesized; 1 some failed (listed in the "
                              "summary); 2 usage or user error (e.g. espeak-ng or MBROLA missing).")
    q.add_argument("--out", required=True, help="output folder")
    q.add_argument("--kind", choices=("lexical", "syntactic", "story", "all"), default="all")
    q.add_argument("--n", type=int, default=1000, help="pairs per kind (default 1000)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--speakers", nargs="+", default=None, help="speaker ids (default: all 16)")
    q.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    q.add_argument("--lexicon", default=None, metavar="FILE",
                   help="draw words from this lexicon file: give the corpus's, so the lexical words "
                        "are words the LM heard (non-words are never words of the packaged lexicon)")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.set_defaults(func=_pairs)

    x = sub.add_parser("lexicon", help="write a smaller lexicon (seeded) for corpus synth/pairs --lexicon",
                       description="About --words open-class words (nouns, verbs, adjectives, adverbs, "
                                   "names) drawn from the packaged lexicon, the same share of every group "
                                   "the grammar draws from (at least 3 each), with every closed-class "
                                   "word: a corpus in which each word recurs often, so a small LM trained "
                                   "on a few hours can learn its words.")
    x.add_argument("--out", required=True, help="the lexicon file to write")
    x.add_argument("--words", type=int, required=True, help="open-class words to keep (about)")
    x.add_argument("--seed", type=int, default=0)
    x.set_defaults(func=_lexicon)

    w = sub.add_parser("words", help="synthesize a keyword-spotting corpus of single words (resumable)",
                       description="Keywords drawn (seeded) from the lexicon's nouns and verbs, each said "
                                   "alone by every voice in several takes (tempo, pitch, lead silence "
                                   "varied): train/dev takes of the train voices, test with the unseen "
                                   "test voices. Writes wavs, alignments, train/dev/test manifests with "
                                   "a \"label\" field and corpus.json under --out. Re-running resumes.",
                       epilog="exit status: 0 every utterance synthesized; 1 some failed (listed in the "
                              "summary); 2 usage or user error (e.g. espeak-ng or MBROLA missing).")
    w.add_argument("--out", required=True, help="output folder")
    w.add_argument("--words", type=int, default=30, help="number of keywords to draw (default 30)")
    w.add_argument("--keywords", nargs="+", default=None, metavar="WORD",
                   help="use these keywords instead of drawing --words from the lexicon")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    w.set_defaults(func=_words)


def _synth(args: argparse.Namespace) -> int:
    from speechunits.data.corpus import synthesize_corpus

    summary = synthesize_corpus(args.out, args.minutes, args.seed, workers=args.workers,
                                progress=not args.no_progress, lexicon=args.lexicon)  # ToolMissingError, ValueError: cli.main, exit 2
    print(summary.format())
    return 1 if summary.failed else 0


def _pairs(args: argparse.Namespace) -> int:
    from speechunits.data.corpus import synthesize_pairs

    try:
        summary = synthesize_pairs(args.out, args.kind, args.n, args.seed, speakers=args.speakers,
                                   workers=args.workers, progress=not args.no_progress,
                                   lexicon=args.lexicon)
    except KeyError as e:  # an unknown speaker: a user error, worded without repr quotes
        raise ValueError(e.args[0] if e.args else str(e)) from None
    print(summary.format())
    return 1 if summary.failed else 0


def _words(args: argparse.Namespace) -> int:
    from speechunits.data.corpus import synthesize_words

    summary = synthesize_words(args.out, args.words, args.seed, workers=args.workers, keywords=args.keywords,
                               progress=not args.no_progress)  # ToolMissingError, ValueError: exit 2
    print(summary.format())
    return 1 if summary.failed else 0


def _lexicon(args: argparse.Namespace) -> int:
    from speechunits.data.atomic import atomic_write_text
    from speechunits.data.corpus.lexicon import format_lexicon, load_lexicon, subset_lexicon

    full = load_lexicon()
    small = subset_lexicon(full, args.words, args.seed)
    header = (f"speechunits corpus lexicon --words {args.words} --seed {args.seed}: a subset of the packaged "
              f"lexicon ({full.digest})\nword<TAB>pos<TAB>forms<TAB>tags (see speechunits/data/corpus/lexicon.txt)")
    atomic_write_text(args.out, format_lexicon(small, header))
    print(f"{args.out}: {small.size} words ({len(small.forms)} forms) of {full.size} ({len(full.forms)} forms), "
          f"digest {small.digest}")
    return 0

"""The aligned multi-speaker synthetic corpus and the zero-shot pair sets.

espeak-ng drives four English MBROLA voices (us1, us2, us3, en1) crossed with pitch and
voice-quality settings (16 speakers). Every utterance comes with phone, word and character
alignments whose phone tier tiles the audio exactly. Sentences come from a grammar over a
packaged lexicon of about 1,600 words. The pair sets follow ZeroSpeech 2021's sLM21 layout:
lexical (word vs non-word), syntactic (minimal pairs) and story (coherent vs incoherent ending).
The keyword corpus (``synthesize_words``) has single lexicon words said alone by every voice.

>>> from speechunits.data.corpus import synthesize_corpus, synthesize_pairs
>>> summary = synthesize_corpus("/tmp/su_corpus", minutes=0.3, seed=0, progress=False)
>>> pairs = synthesize_pairs("/tmp/su_pairs", kind="syntactic", n=4, seed=0, progress=False)
"""

from speechunits.data.corpus.build import CorpusSummary, synthesize_corpus
from speechunits.data.corpus.lexicon import Lexicon, load_lexicon
from speechunits.data.corpus.pairs import PairSummary, synthesize_pairs
from speechunits.data.corpus.synth import Utterance, synthesize
from speechunits.data.corpus.tools import ToolMissingError, check_tools, missing_tools
from speechunits.data.corpus.voices import SPEAKERS, TEST_SPEAKERS, Speaker
from speechunits.data.corpus.words import WordsSummary, synthesize_words

__all__ = [
    "CorpusSummary", "Lexicon", "PairSummary", "SPEAKERS", "Speaker", "TEST_SPEAKERS",
    "ToolMissingError", "Utterance", "check_tools", "load_lexicon", "missing_tools",
    "WordsSummary", "synthesize", "synthesize_corpus", "synthesize_pairs", "synthesize_words",
]

"""Unit quality metrics: pure functions over units, features and alignments.

- :mod:`.codebook`: utilization, token distribution, unigram entropy, entropy and nominal bitrate;
- :mod:`.alignment_metrics`: PNMI / CNMI, H(phone | code), phone and cluster purity, P(phone | code);
- :mod:`.abx`: ABX phone discriminability within and across speakers (DTW, ZeroSpeech style);
  :mod:`.abx_item_file` reads and writes its items as ZeroSpeech ``.item`` files;
- :mod:`.ngram`: interpolated modified Kneser-Ney n-gram LM and perplexity of units;
- :mod:`.robustness`: unit edit distance between clean and distorted units;
- :mod:`.position`: position leakage, NMI between units and the frame's time in the utterance;
- :mod:`.speed`: latency, real-time factor, throughput;
- :mod:`.correlation`: Pearson correlation of proxies across tokenizers;
- :mod:`.plots`: PNG heat maps, rank-frequency and bar plots.

Resynthesis (units -> speech) metrics, see ``docs/metrics.md``:

- :mod:`.asr` / :mod:`.intelligibility`: Whisper transcription; WER, CER, dWER, dCER;
- :mod:`.speaker_similarity`: cosine of Resemblyzer d-vectors;
- :mod:`.dnsmos`: DNSMOS P.808 and P.835 (SIG, BAK, OVRL) with Microsoft's ONNX models;
- :mod:`.mcd`: mel-cepstral distortion with DTW; :mod:`.f0`: F0 RMSE and voicing agreement (Praat);
- :mod:`.resynthesis`: all of them over (original, resynthesized) pairs, per item and on average.

Example:
    >>> import numpy as np
    >>> from speechunits.metrics import codebook_stats, pnmi
    >>> codebook_stats([np.array([0, 0, 1, 1])], k=4, frame_rate=50.0).utilization
    0.5
    >>> pnmi([(np.array([0, 0, 1, 1]), ["a", "a", "b", "b"])]).pnmi
    1.0
"""

from ._abx_dtw import dtw_normalized
from .abx import DEFAULT_EXCLUDE, AbxItem, AbxResult, abx_error, abx_items, abx_scores, span_frames
from .abx_item_file import read_item_file, write_item_file
from .alignment_metrics import AlignmentStats, cnmi, frame_label_pairs, label_code_stats, pnmi
from .codebook import CodebookStats, codebook_stats, entropy_bits, token_distribution, unit_counts
from .correlation import CorrelationResult, pearson, pearson_ci, proxy_correlation
from .ngram import KneserNeyLM, ngram_perplexity
from .plots import plot_bars, plot_correlation, plot_pphone_given_code, plot_unit_frequency
from .position import position_nmi
from .robustness import UedResult, corpus_ued, ued_by_distortion, ued_table
from .speed import SpeedResult, Timer, measure_rtf, rtf
from .asr import WhisperTranscriber
from .dnsmos import Dnsmos, DnsmosError
from .f0 import f0_scores, praat_f0
from .intelligibility import error_counts, intelligibility, intelligibility_batch, normalize_english
from .mcd import mcd_dtw, mel_cepstrum
from .resynthesis import ResynthesisPair, ResynthesisScores, resynthesis_scores
from .speaker_similarity import speaker_similarity

__all__ = [
    # codebook
    "CodebookStats",
    "codebook_stats",
    "unit_counts",
    "entropy_bits",
    "token_distribution",
    # alignment
    "AlignmentStats",
    "label_code_stats",
    "pnmi",
    "cnmi",
    "frame_label_pairs",
    # abx
    "AbxItem",
    "AbxResult",
    "DEFAULT_EXCLUDE",
    "abx_items",
    "abx_error",
    "abx_scores",
    "dtw_normalized",
    "span_frames",
    "read_item_file",
    "write_item_file",
    # ngram
    "KneserNeyLM",
    "ngram_perplexity",
    # position leakage
    "position_nmi",
    # robustness
    "UedResult",
    "corpus_ued",
    "ued_by_distortion",
    "ued_table",
    # speed
    "Timer",
    "SpeedResult",
    "measure_rtf",
    "rtf",
    # correlation
    "CorrelationResult",
    "proxy_correlation",
    "pearson",
    "pearson_ci",
    # plots
    "plot_correlation",
    "plot_pphone_given_code",
    "plot_unit_frequency",
    "plot_bars",
    # resynthesis
    "WhisperTranscriber",
    "normalize_english",
    "error_counts",
    "intelligibility",
    "intelligibility_batch",
    "speaker_similarity",
    "Dnsmos",
    "DnsmosError",
    "mcd_dtw",
    "mel_cepstrum",
    "f0_scores",
    "praat_f0",
    "ResynthesisPair",
    "ResynthesisScores",
    "resynthesis_scores",
]

"""The project's own HuBERT-style encoder and its pre-training (HuBERT iterations, SpinHuBERT).

No pretrained SSL speech encoder can be had offline here, so the project trains a small one: a
transformers ``HubertModel`` whose front-end is a light CNN, a filterbank-initialised CNN, or a
learnable log-mel filterbank (``LogMelHubertModel``, :mod:`speechunits.encoders.logmel_hubert`;
the recipe's choice), always a 400-sample window every 320 samples as in HuBERT, so 50 Hz frames
line up with every other encoder and with frame labels, pre-trained by masked prediction of
cluster targets:

1. iteration 1: k-means (k = 100) of MFCCs           -> :func:`fit_targets` (``encoder="mfcc"``)
2. iteration 2: k-means of a hidden layer of model 1 -> :func:`fit_targets` (``encoder=<model 1>``)
3. SpinHuBERT: units of a Spin / DC-Spin tokenizer   -> :func:`quantize_targets`

each followed by :func:`pretrain_hubert`. The result loads like any Hugging Face encoder:
``speechunits.encoders.load_encoder("<out>/encoder")``. :func:`ctc_finetune` is the optional
supervised stage (phones or characters from alignments) before DC-Spin.

Example (tiny scale; the recipe runs the real sizes):
    >>> from speechunits.encoders.pretrain import fit_targets, pretrain_hubert  # doctest: +SKIP
    >>> fit_targets("corpus/train.jsonl", "w/it1.jsonl", encoder="mfcc", k=100)  # doctest: +SKIP
    >>> r = pretrain_hubert("corpus/train.jsonl", "w/it1.jsonl", "w/it1", preset="medium", steps=2000)  # doctest: +SKIP
"""

from speechunits.encoders.pretrain.ctc import CTCResult, ctc_finetune
from speechunits.distributed.ddp import step_rng, step_seed
from speechunits.encoders.pretrain.loop import Trainer, lr_at
from speechunits.encoders.pretrain.model import (
    DEFAULT_PRESET,
    LIGHT_CONV,
    PRESETS,
    PretrainHead,
    build_model,
    hubert_config,
    save_encoder,
    span_mask,
)
from speechunits.encoders.pretrain.targets import (
    TargetsResult,
    choose_layer,
    fit_targets,
    quantize_targets,
    read_targets,
)
from speechunits.encoders.pretrain.train import PretrainResult, load_head, pretrain_hubert

__all__ = [
    "CTCResult", "DEFAULT_PRESET", "LIGHT_CONV", "PRESETS", "PretrainHead", "PretrainResult", "TargetsResult",
    "Trainer", "build_model", "choose_layer", "ctc_finetune", "fit_targets", "hubert_config", "load_head",
    "lr_at", "pretrain_hubert", "quantize_targets", "read_targets", "save_encoder", "span_mask",
    "step_rng", "step_seed",
]

"""Robustness runner: distort each utterance (seeded), tokenize clean and distorted, score UED.

For every distortion the corpus unit edit distance (:func:`speechunits.metrics.corpus_ued`) is
``sum lev(dedup(clean), dedup(distorted)) / sum len(dedup(clean))``, per layer. Both sides are
de-duplicated, so a time stretch (which changes durations, hence frame counts) is compared on
the order of its units, not on their lengths.

**Distortions** are named by a small grammar (:func:`parse_distortion`):

=================  ===============================================================================
name               what (``speechunits.audio.perturb``)
=================  ===============================================================================
``identity``       nothing: a sanity check (UED must be 0 for a deterministic tokenizer)
``white_10dB``     white noise at 10 dB SNR (P.56 active speech level); also ``pink_XdB``
``babble_0dB``     babble at 0 dB: 3 other utterances of the evaluated subset, looped and mixed
``reverb_0.6s``    synthetic room impulse response with RT60 = 0.6 s
``pitch_+3st``     PSOLA pitch shift by +3 semitones, formants and duration kept
``stretch_1.1``    WSOLA time stretch, rate 1.1 (10% faster), pitch kept
``speaker``        a random Spin/ContentVec speaker perturbation (F0, formants, pitch range, EQ)
=================  ===============================================================================

:data:`DEFAULT_DISTORTIONS` is the default set: white and babble noise at 10 and 0 dB,
reverberation 0.6 s, pitch +-3 semitones, stretch 0.9 and 1.1, speaker perturbation.

**Seeds**: utterance ``u`` under distortion ``d`` uses ``stable_seed(seed, d, u.id)`` (CRC32 of the
names through numpy's SeedSequence), so a distorted utterance does not depend on which other
utterances are evaluated or in which order (babble sources excepted: they are the subset).

Example:
    >>> import numpy as np
    >>> d = parse_distortion("pitch_+3st")
    >>> d.name, d.kind, d.params
    ('pitch_+3st', 'pitch_shift', {'semitones': 3.0})
    >>> fu = lambda w: (np.abs(w[: len(w) // 320 * 320]).reshape(-1, 320).mean(1) > 0.05).astype(int)
    >>> waves = [np.sin(np.arange(16000) / 5.0).astype("float32") * 0.1]
    >>> res = robustness(fu, waves, ["u1"], [parse_distortion("identity")], seed=0, progress=False)
    >>> res["identity"]["ued"]
    [0.0]
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from speechunits.audio import AudioError, AudioWarning
from speechunits.audio.perturb import build_perturbation, random_speaker_perturbation
from speechunits.metrics import corpus_ued

from ._result import skipped
from .dataset import SAMPLE_RATE, stable_seed
from .defaults import DEFAULT_DISTORTIONS  # noqa: F401  (re-exported)

BABBLE_TALKERS = 3
_NUM = r"([+-]?\d+(?:\.\d+)?)"
_GRAMMAR = [
    (re.compile(rf"(white|pink|babble)_{_NUM}dB"), "noise", lambda m: {"kind": m[1], "snr_db": float(m[2])}),
    (re.compile(rf"reverb_{_NUM}s"), "reverb", lambda m: {"rt60": float(m[1])}),
    (re.compile(rf"pitch_{_NUM}st"), "pitch_shift", lambda m: {"semitones": float(m[1])}),
    (re.compile(rf"stretch_{_NUM}"), "time_stretch", lambda m: {"rate": float(m[1])}),
    (re.compile(r"speaker"), "speaker", lambda m: {}),
    (re.compile(r"identity"), "identity", lambda m: {}),
]


@dataclass(frozen=True)
class Distortion:
    """A named distortion: ``kind`` is a ``build_perturbation`` name, ``"speaker"`` (a random Spin
    speaker perturbation per utterance) or ``"identity"``."""

    name: str
    kind: str
    params: dict = field(default_factory=dict, hash=False)

    def perturbation(self, seed: int):
        """The recorded perturbation for one utterance (None for identity)."""
        if self.kind == "identity":
            return None
        if self.kind == "speaker":
            return random_speaker_perturbation(seed)
        params = dict(self.params)
        if self.kind == "noise" and params["kind"] == "babble":
            params["n_talkers"] = BABBLE_TALKERS
        return build_perturbation(self.kind, seed=seed, **params)

    def apply(self, wave: np.ndarray, seed: int, sources: Sequence[np.ndarray] = ()) -> np.ndarray:
        p = self.perturbation(seed)
        if p is None:
            return wave
        is_babble = self.kind == "noise" and self.params["kind"] == "babble"
        with warnings.catch_warnings():
            # A distortion may push peaks above 1.0; it is not clipped, and the tokenizer takes
            # the float samples as they are, so the per-utterance warning is only noise here.
            warnings.simplefilter("ignore", AudioWarning)
            return p.apply(wave, SAMPLE_RATE, sources=list(sources) if is_babble else None)

    def describe(self) -> dict[str, Any]:
        """What the report records: the perturbation with its complete parameters (seed 0 shown;
        each utterance gets its own seed)."""
        if self.kind == "identity":
            return {"name": self.name, "kind": "identity"}
        if self.kind == "speaker":
            return {"name": self.name, "kind": "speaker",
                    "params": "random_speaker_perturbation(seed): Spin's F0/formant/pitch-range/EQ draw, "
                              "one per utterance"}
        rec = self.perturbation(0).to_dict()
        return {"name": self.name, "kind": self.kind, "params": rec["params"]}


def parse_distortion(name: str) -> Distortion:
    """A :class:`Distortion` from its name (see the module docstring); ValueError otherwise."""
    for rx, kind, params in _GRAMMAR:
        m = rx.fullmatch(name)
        if m:
            d = Distortion(name, kind, params(m))
            if kind not in ("identity", "speaker"):
                d.perturbation(0)  # validate the parameters now, not mid-run
            return d
    raise ValueError(f"unknown distortion {name!r}: use identity, white_XdB, pink_XdB, babble_XdB, "
                     "reverb_Xs, pitch_[+-]Xst, stretch_X or speaker")


Item = tuple  # (distortion index, utterance index): one work item of the robustness section


def is_babble(d: Distortion) -> bool:
    return d.kind == "noise" and d.params.get("kind") == "babble"


def distorted_units(frame_units: Callable[[np.ndarray], np.ndarray], d: Distortion, waves: Sequence[np.ndarray],
                    i: int, uid: str, seed: int) -> np.ndarray | dict[str, str]:
    """One work item: the units of utterance ``i`` under ``d`` (babble mixes the other ``waves``),
    or ``{"id", "reason"}`` where the perturbation fails on it. Every engine runs this."""
    sources = [x for j, x in enumerate(waves) if j != i] if is_babble(d) else ()
    try:
        y = d.apply(waves[i], stable_seed(seed, d.name, uid), sources)
    except (AudioError, ValueError) as e:
        return {"id": uid, "reason": str(e)}
    return np.asarray(frame_units(y))


def run_items_here(frame_units: Callable[[np.ndarray], np.ndarray]):
    """The default engine: the work items one after the other in this process."""
    def run(items: Sequence[Item], waves: Sequence[np.ndarray], utt_ids: Sequence[str],
            distortions: Sequence[Distortion], seed: int) -> Iterator[tuple[Item, Any]]:
        for d, i in items:
            yield (d, i), distorted_units(frame_units, distortions[d], waves, i, utt_ids[i], seed)
    return run


def robustness(
    frame_units: Callable[[np.ndarray], np.ndarray] | None,
    waves: Sequence[np.ndarray],
    utt_ids: Sequence[str],
    distortions: Sequence[Distortion],
    *,
    seed: int = 0,
    clean: Sequence[np.ndarray] | None = None,
    progress: bool = True,
    run_items: Callable[..., Iterable[tuple[Item, Any]]] | None = None,
) -> dict[str, Any]:
    """UED per distortion: ``{name: {"ued": [per layer], "distance": [...], ...}}``.

    ``frame_units(wave)`` gives ``[T]`` or ``[T, L]`` ids; ``clean`` are the clean units if
    already computed. A perturbation that fails on an utterance (e.g. noise on silence) leaves
    that utterance out of that distortion, named under ``failed``. ``run_items`` is the engine:
    ``run_items(items, waves, utt_ids, distortions, seed)`` yields ``(item, distorted_units(...))``
    for every ``(distortion index, utterance index)`` item, in any order (default:
    :func:`run_items_here`; ``distributed.ray_eval`` runs them on Ray actors). The scoring is here.
    """
    from tqdm import tqdm

    if len(utt_ids) != len(waves):
        raise ValueError(f"robustness: {len(waves)} waves but {len(utt_ids)} utterance ids")
    clean = [np.asarray(c) for c in clean] if clean is not None else [np.asarray(frame_units(w)) for w in waves]
    num_layers = 1 if clean[0].ndim == 1 else clean[0].shape[1]
    out: dict[str, Any] = {}
    bar = tqdm(total=len(distortions) * len(waves), unit="utt", desc="robustness", disable=not progress)
    items: list[Item] = []
    for k, d in enumerate(distortions):
        if is_babble(d) and len(waves) <= BABBLE_TALKERS:
            out[d.name] = skipped(f"babble needs more than {BABBLE_TALKERS} utterances to mix "
                                  f"(the subset has {len(waves)})")
            bar.update(len(waves))
        else:
            items += [(k, i) for i in range(len(waves))]
    results: dict[Item, Any] = {}
    if items:
        for item, r in (run_items or run_items_here(frame_units))(items, waves, utt_ids, distortions, seed):
            results[tuple(item)] = r
            bar.update(1)
    bar.close()
    for k, d in enumerate(distortions):
        if d.name in out:
            continue
        refs, hyps, failed = [], [], []
        for i in range(len(waves)):
            r = results[(k, i)]
            if isinstance(r, dict):
                failed.append(r)
                continue
            refs.append(clean[i])
            hyps.append(np.asarray(r))
        if not refs:
            out[d.name] = skipped(f"the distortion failed on every utterance, e.g. {failed[0]['reason']}")
            continue
        per_layer = [corpus_ued([r if r.ndim == 1 else r[:, j] for r in refs],
                                [h if h.ndim == 1 else h[:, j] for h in hyps]) for j in range(num_layers)]
        out[d.name] = {
            "ued": [r.ued for r in per_layer],
            "distance": [r.distance for r in per_layer],
            "reference_length": [r.reference_length for r in per_layer],
            "num_utterances": len(refs),
            "failed": failed,
            "perturbation": d.describe(),
        }
    return {d.name: out[d.name] for d in distortions}


def layer_view(results: dict[str, Any], j: int, subset: dict[str, Any]) -> dict[str, Any]:
    """The robustness section of layer ``j`` (index into the tokenizer's layers)."""
    dist: dict[str, Any] = {}
    for name, r in results.items():
        if r.get("skipped"):
            dist[name] = r
            continue
        dist[name] = {"ued": r["ued"][j], "distance": r["distance"][j],
                      "reference_length": r["reference_length"][j], "num_utterances": r["num_utterances"],
                      "failed": r["failed"], "perturbation": r["perturbation"]}
    scored = [v["ued"] for k, v in dist.items() if not v.get("skipped") and k != "identity"]
    return {
        "subset": subset,
        "seed_rule": "utterance u under distortion d: stable_seed(seed, d, u.id)",
        "distortions": dist,
        "mean_ued": float(np.mean(scored)) if scored else None,
    }

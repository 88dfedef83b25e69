"""The record of a perturbation: what was applied, with which parameters and seed.

A :class:`Perturbation` is a frozen, JSON-able description that also applies itself. Its
parameters are complete (library defaults are filled in when it is built), so a stored record
reproduces the same output bit for bit even if a default changes later.

Registered names (:func:`available_perturbations`):

============== ============================================ ======================
name           function                                     seeded
============== ============================================ ======================
noise          :func:`.noise.add_noise`                     yes
reverb         :func:`.reverb.reverberate`                  yes
pitch_shift    :func:`.pitch.pitch_shift`                   no (seed ignored)
time_stretch   :func:`.stretch.time_stretch`                no (seed ignored)
speaker        :func:`.speaker.speaker_perturb`             yes (Praat's PSOLA)
eq             :func:`.eq.parametric_eq`                    no (seed ignored)
chain          the steps in order, each with its own seed   per step
============== ============================================ ======================

Babble noise takes the other utterances at apply time (``apply(audio, sources=[...])``); they
are data, not parameters, so the caller records which utterances it passed.

Example:
    >>> import json
    >>> import numpy as np
    >>> from speechunits.audio.perturb.record import Perturbation, build_perturbation, chain
    >>> p = chain(build_perturbation("reverb", rt60=0.4, seed=3),
    ...           build_perturbation("noise", snr_db=10.0, kind="pink", seed=4))
    >>> q = Perturbation.from_json(p.to_json())
    >>> q == p
    True
    >>> x = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    >>> bool(np.array_equal(p.apply(x), q.apply(x)))
    True
    >>> json.loads(p.to_json())["params"]["steps"][1]["params"]
    {'kind': 'pink', 'n_talkers': None, 'snr_db': 10.0}
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from speechunits.audio.perturb import eq, noise, pitch, reverb, speaker, stretch
from speechunits.audio.perturb._util import check_seed

_RUNTIME_ARGS = ("audio", "sr", "seed", "sources")


class _Spec(NamedTuple):
    fn: Callable[..., np.ndarray]
    check: Callable[..., None]
    seeded: bool
    defaults: Mapping[str, Any]  # every recordable parameter; required ones map to _REQUIRED


_REQUIRED = object()
_SPECS: dict[str, _Spec] = {}


def _registry() -> dict[str, _Spec]:
    # Filled on first use: reading the signatures costs little, but only callers that build a
    # record should pay for it.
    if _SPECS:
        return _SPECS
    table = {
        "noise": (noise.add_noise, noise.check_noise_params, True),
        "reverb": (reverb.reverberate, reverb.check_reverb_params, True),
        "pitch_shift": (pitch.pitch_shift, pitch.check_pitch_params, False),
        "time_stretch": (stretch.time_stretch, stretch.check_stretch_params, False),
        "speaker": (speaker.speaker_perturb, speaker.check_speaker_params, True),
        "eq": (eq.parametric_eq, eq.check_eq_params, False),
    }
    for name, (fn, check, seeded) in table.items():
        defaults = {
            p.name: (_REQUIRED if p.default is inspect.Parameter.empty else p.default)
            for p in inspect.signature(fn).parameters.values()
            if p.name not in _RUNTIME_ARGS
        }
        _SPECS[name] = _Spec(fn, check, seeded, defaults)
    return _SPECS


def available_perturbations() -> tuple[str, ...]:
    """Names accepted by :func:`build_perturbation` (plus ``"chain"``)."""
    return (*sorted(_registry()), "chain")


@dataclass(frozen=True)
class Perturbation:
    """A recorded perturbation: ``name``, complete ``params`` and ``seed``.

    Construction validates the parameters (ValueError on an unknown name, unknown or missing
    parameter, or a value out of range) and fills in defaults. Records compare equal when
    name, params and seed are equal; the params mapping is read-only.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "seed", check_seed(self.seed, self.name))
        if self.name == "chain":
            steps = tuple(_as_step(s) for s in self.params.get("steps", ()))
            if set(self.params) - {"steps"}:
                raise ValueError(f"chain: only 'steps' is a parameter, got {sorted(self.params)}")
            object.__setattr__(self, "params", MappingProxyType({"steps": steps}))
            return
        spec = _spec(self.name)
        unknown = sorted(set(self.params) - set(spec.defaults))
        if unknown:
            raise ValueError(
                f"{self.name}: unknown parameter(s) {unknown}; known: {sorted(spec.defaults)}"
            )
        full = {k: self.params.get(k, d) for k, d in spec.defaults.items()}
        missing = sorted(k for k, v in full.items() if v is _REQUIRED)
        if missing:
            raise ValueError(f"{self.name}: missing required parameter(s) {missing}")
        full = {k: _freeze(v) for k, v in sorted(full.items())}
        spec.check(**full)
        object.__setattr__(self, "params", MappingProxyType(full))

    def apply(
        self,
        audio: np.ndarray,
        sr: int = 16000,
        *,
        sources: Sequence[np.ndarray] | None = None,
    ) -> np.ndarray:
        """Apply to ``audio``; float32 out. ``sources``: babble utterances for a noise step."""
        if self.name == "chain":
            y = audio
            for step in self.params["steps"]:
                y = step.apply(y, sr, sources=sources)
            return np.asarray(y, dtype=np.float32)
        spec = _spec(self.name)
        kwargs: dict[str, Any] = {k: _thaw(v) for k, v in self.params.items()}
        if spec.seeded:
            kwargs["seed"] = self.seed
        if self.name == "noise":
            kwargs["sources"] = sources
        return spec.fn(audio, sr=sr, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict ``{"name", "params", "seed"}``."""
        return {"name": self.name, "params": _thaw(dict(self.params)), "seed": self.seed}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Perturbation:
        """Inverse of :meth:`to_dict` (validates)."""
        if not isinstance(d, Mapping) or "name" not in d:
            raise ValueError(f"perturbation record must be a mapping with a 'name', got {d!r}")
        extra = sorted(set(d) - {"name", "params", "seed"})
        if extra:
            raise ValueError(f"perturbation record has unknown key(s) {extra}")
        return cls(str(d["name"]), dict(d.get("params") or {}), d.get("seed", 0))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Perturbation:
        return cls.from_dict(json.loads(text))


def build_perturbation(name: str, seed: int = 0, **params: Any) -> Perturbation:
    """Validated record for ``name`` (see :func:`available_perturbations`)."""
    if name == "chain":
        raise ValueError("use chain(*steps) to build a chain")
    return Perturbation(name, params, seed)


def chain(*steps: Perturbation | Mapping[str, Any]) -> Perturbation:
    """A record applying ``steps`` in order (records or their dicts)."""
    if not steps:
        raise ValueError("chain: needs at least one step")
    return Perturbation("chain", {"steps": steps}, 0)


def _spec(name: str) -> _Spec:
    specs = _registry()
    if name not in specs:
        raise ValueError(f"unknown perturbation {name!r}; known: {available_perturbations()}")
    return specs[name]


def _as_step(s: Perturbation | Mapping[str, Any]) -> Perturbation:
    return s if isinstance(s, Perturbation) else Perturbation.from_dict(s)


def _freeze(v: Any) -> Any:
    """JSON-normalise a parameter value and make it immutable (lists -> tuples)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(e) for e in v)
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise ValueError(f"parameter value {v!r} of type {type(v).__name__} is not JSON-able")


def _thaw(v: Any) -> Any:
    if isinstance(v, Perturbation):
        return v.to_dict()
    if isinstance(v, tuple):
        return [_thaw(e) for e in v]
    if isinstance(v, dict):
        return {k: _thaw(e) for k, e in v.items()}
    return v

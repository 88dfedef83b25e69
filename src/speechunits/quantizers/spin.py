"""Spin: speaker-invariant clustering by swapped prediction (Chang et al., Interspeech 2023), and
its quantizer. This file holds the whole objective; it needs only torch.

It follows the reference implementation (``vectominist/spin``, ``src/nn/swav_vq_dis.py``, itself
after SwAV's ``main_swav.py``), step by step:

1. Frame features ``h`` of the encoder's last layer go through a linear projection (Spin's
   ``pred_head``: one ``Linear(dim, 256)``) and are L2-normalised: ``z``.
2. The codebook is ``K`` L2-normalised codewords (a bias-free ``Linear(256, K)``, re-normalised
   after every optimiser step, and here at initialisation too); ``cos = z @ C.T``.
3. Targets: Sinkhorn-Knopp on the *batch's* cosines (``exp(cos / epsilon)``, epsilon 0.02,
   3 iterations; :func:`sinkhorn`): a soft assignment of every frame to codewords under the
   constraint that codewords are used equally across the batch -- what prevents collapse.
4. Swapped prediction: view A is an utterance, view B its speaker-perturbed copy (F0 and formant
   scaling, same duration, so frame ``t`` of A and of B say the same thing). Each view predicts
   the *other* view's Sinkhorn targets: ``loss = -0.5 * (q_B . log softmax(cos_A / 0.1) +
   q_A . log softmax(cos_B / 0.1))``, averaged over frames. Soft targets by default, hard
   (arg-max) targets optional.

DC-Spin adds a large auxiliary codebook on the same encoder features; each codebook has its own
projection and its own Spin loss, and the losses are summed (:class:`SpinHeads`).

At inference (:class:`SpinQuantizer`): last-layer features -> projection -> normalise -> arg-max
cosine against the *primary* codebook. It follows the quantizer contract of
:class:`~speechunits.quantizers.MultiLayerKMeans` (``layers``, ``ks``, ``assign``, ``config``
with ``"type": "spin"``, ``state_dict``, ``from_state``), so a ``Tokenizer`` can hold it.

Example:
    >>> torch.manual_seed(0) and None
    >>> head = SpinHead(dim=16, num_codes=8, proj_dim=8)
    >>> a, b = torch.randn(40, 16), torch.randn(40, 16)
    >>> out = head(a, a + 0.01 * b)
    >>> sorted(out)[:3], out["loss"].shape
    (['acc', 'code_perplexity', 'loss'], torch.Size([]))
    >>> q = head.quantizer(layer=6)
    >>> q.assign(a[:, None, :]).shape
    torch.Size([40, 1])
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from speechunits.distributed import ddp

QUANTIZER_TYPE = "spin"
FORMAT_VERSION = 1
_CONFIG_KEYS = ("type", "format_version", "speechunits_version", "layers", "ks", "dim", "proj_dim", "distance")
_EXACT_GAP = 1e-5  # float32 cosine ties closer than this are re-decided in float64


@torch.no_grad()
def sinkhorn(logits: torch.Tensor, epsilon: float = 0.02, iterations: int = 3, world: ddp.World | None = None
             ) -> torch.Tensor:
    """Sinkhorn-Knopp soft assignments ``Q [N, K]`` from cosines ``[N, K]`` (SwAV, Spin).

    ``Q`` starts as ``exp(logits / epsilon)``, is scaled to total 1, then alternately every
    codeword's column is scaled to total ``1/K`` and every frame's row to ``1/N``; finally rows
    are multiplied by ``N``. So each row (frame) sums to exactly 1 and, as the iterations
    converge, each column (codeword) sums to ``N / K``: every codeword gets an equal share of the
    batch. The maximum is subtracted before ``exp`` (a constant factor, which the normalisations
    cancel) so ``epsilon`` may be small without overflow. Deterministic; computed in float32.

    ``world``: under torchrun each rank holds its part of the batch's frames; the batch-wide sums
    and the maximum are all-reduced, so every rank gets its rows of the one-process ``Q``.
    """
    if logits.dim() != 2:
        raise ValueError(f"expected [frames, codes] logits, got shape {tuple(logits.shape)}")
    w = world or ddp.World()
    k = logits.shape[1]
    n = int(ddp.all_reduce(torch.tensor([logits.shape[0]], device=logits.device), w).item())
    top = ddp.all_reduce(logits.float().max().reshape(1), w, op="max")
    q = ((logits.float() - top) / epsilon).exp().t()  # [K, N], as in the paper
    q /= ddp.all_reduce(q.sum().reshape(1), w)
    for _ in range(iterations):
        q /= ddp.all_reduce(q.sum(dim=1, keepdim=True), w) * k  # codewords: 1/K each, over all frames
        q /= q.sum(dim=0, keepdim=True) * n  # frames: 1/N each
    q *= n
    return q.t()


class SpinHead(nn.Module):
    """One projection + one L2-normalised codebook + the swapped-prediction loss.

    Args:
        dim: encoder feature size. num_codes: K (50 ... 4096).
        proj_dim: projection size (Spin: 256). temperature: of the predictions (0.1).
        epsilon, sinkhorn_iters: of the targets (0.02, 3). hard_targets: arg-max targets.
    """

    def __init__(
        self,
        dim: int,
        num_codes: int,
        proj_dim: int = 256,
        *,
        temperature: float = 0.1,
        epsilon: float = 0.02,
        sinkhorn_iters: int = 3,
        hard_targets: bool = False,
        world: ddp.World | None = None,
    ) -> None:
        super().__init__()
        self.world = world or ddp.World()  # torchrun: Sinkhorn over every rank's frames
        if not 2 <= num_codes <= 65536:
            raise ValueError(f"num_codes must be in 2..65536, got {num_codes}")
        self.proj = nn.Linear(dim, proj_dim)
        self.codebook = nn.Linear(proj_dim, num_codes, bias=False)
        self.temperature, self.epsilon, self.sinkhorn_iters = float(temperature), float(epsilon), int(sinkhorn_iters)
        self.hard_targets = bool(hard_targets)
        self.normalize_codebook()

    @property
    def num_codes(self) -> int:
        return self.codebook.out_features

    @torch.no_grad()
    def normalize_codebook(self) -> None:
        """Put every codeword back on the unit sphere (after each optimiser step)."""
        self.codebook.weight.copy_(F.normalize(self.codebook.weight, dim=1))

    def cosines(self, h: torch.Tensor) -> torch.Tensor:
        """``[N, K]`` cosines between projected features ``[N, dim]`` and the codewords."""
        return self.codebook(F.normalize(self.proj(h), dim=-1))

    def forward(self, h_a: torch.Tensor, h_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """Swapped-prediction loss of two aligned views ``[N, dim]`` (frame i of A ~ frame i of B)."""
        if h_a.shape != h_b.shape:
            raise ValueError(f"the two views must have the same frames: {tuple(h_a.shape)} vs {tuple(h_b.shape)}")
        cos_a, cos_b = self.cosines(h_a), self.cosines(h_b)
        q_a = sinkhorn(cos_a.detach(), self.epsilon, self.sinkhorn_iters, self.world)
        q_b = sinkhorn(cos_b.detach(), self.epsilon, self.sinkhorn_iters, self.world)
        logits_a, logits_b = cos_a / self.temperature, cos_b / self.temperature
        if self.hard_targets:
            loss = 0.5 * (F.cross_entropy(logits_a, q_b.argmax(-1)) + F.cross_entropy(logits_b, q_a.argmax(-1)))
        else:
            loss = -0.5 * ((q_b * logits_a.log_softmax(-1)).sum(-1).mean() + (q_a * logits_b.log_softmax(-1)).sum(-1).mean())
        with torch.no_grad():
            codes = torch.cat([cos_a, cos_b]).argmax(-1)
            usage = torch.bincount(codes, minlength=self.num_codes).float() / len(codes)
            perplexity = torch.exp(-(usage * (usage + 1e-7).log()).sum())
            pred_a, pred_b = cos_a.argmax(-1), cos_b.argmax(-1)
            acc = 0.5 * ((pred_a == q_b.argmax(-1)).float().mean() + (pred_b == q_a.argmax(-1)).float().mean())
            agree = (pred_a == pred_b).float().mean()
        return {"loss": loss, "acc": acc, "code_perplexity": perplexity, "view_agreement": agree}

    def quantizer(self, layer: int, info: dict | None = None) -> "SpinQuantizer":
        """This head as an inference quantizer reading encoder layer ``layer``."""
        return SpinQuantizer(self.proj.weight, self.proj.bias, self.codebook.weight, layer=layer, info=info)


class SpinHeads(nn.Module):
    """Spin (one codebook) or DC-Spin (primary + auxiliary codebooks) on the same features."""

    def __init__(self, dim: int, codebooks: Sequence[int], proj_dim: int = 256, **kwargs) -> None:
        super().__init__()
        if not codebooks:
            raise ValueError("need at least one codebook size")
        self.heads = nn.ModuleList([SpinHead(dim, int(k), proj_dim, **kwargs) for k in codebooks])

    @property
    def primary(self) -> SpinHead:
        return self.heads[0]

    def forward(self, h_a: torch.Tensor, h_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """Summed loss; per codebook ``c``: ``loss_c``, ``acc_c``, ``code_perplexity_c``..."""
        out: dict[str, torch.Tensor] = {}
        total = h_a.new_zeros(())
        for c, head in enumerate(self.heads):
            res = head(h_a, h_b)
            total = total + res["loss"]
            out.update({f"{key}_{c}": (v if key == "loss" else v.detach()) for key, v in res.items()})
        out["loss"] = total
        return out

    def normalize_codebooks(self) -> None:
        for head in self.heads:
            head.normalize_codebook()


class SpinQuantizer:
    """Inference: ``argmax_k cos(normalise(W h + b), C_k)`` on the features of one encoder layer.

    The quantizer contract (as :class:`~speechunits.quantizers.MultiLayerKMeans`): ``layers``
    (one layer, the encoder's last), ``ks`` (``[K]``), ``assign([T, 1, D]) -> [T, 1]``, ``config()``
    (``"type": "spin"``), ``state_dict()``, ``from_state(config, tensors, source=...)``, ``to``,
    ``save_pretrained`` / ``from_pretrained`` (a folder with ``config.json`` + ``model.safetensors``).
    Near-ties (cosine gap below 1e-5) are re-decided in float64 so the units do not depend on
    float32 rounding; exact ties go to the lowest index.
    """

    def __init__(self, proj_weight: torch.Tensor, proj_bias: torch.Tensor, codebook: torch.Tensor, *, layer: int,
                 info: dict | None = None, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.proj_weight = proj_weight.detach().float().to(self.device).clone()
        self.proj_bias = proj_bias.detach().float().to(self.device).clone()
        self.codebook = F.normalize(codebook.detach().float(), dim=1).to(self.device)
        if self.proj_weight.shape[0] != self.codebook.shape[1] or self.proj_bias.shape != self.proj_weight.shape[:1]:
            raise ValueError(f"projection {tuple(self.proj_weight.shape)} does not fit "
                             f"codebook {tuple(self.codebook.shape)}")
        self.layer = int(layer)
        self.dim = int(self.proj_weight.shape[1])
        self.info = dict(info or {})

    @property
    def layers(self) -> list[int]:
        return [self.layer]

    @property
    def ks(self) -> list[int]:
        return [int(self.codebook.shape[0])]

    def to(self, device: str | torch.device) -> "SpinQuantizer":
        self.device = torch.device(device)
        self.proj_weight, self.proj_bias = self.proj_weight.to(self.device), self.proj_bias.to(self.device)
        self.codebook = self.codebook.to(self.device)
        return self

    def cosines(self, features: torch.Tensor) -> torch.Tensor:
        """``[T, K]`` cosines of ``[T, D]`` features (float32)."""
        z = F.normalize(F.linear(features.to(self.device, torch.float32), self.proj_weight, self.proj_bias), dim=-1)
        return z @ self.codebook.T

    @torch.no_grad()
    def assign(self, features, *, input_layers: Sequence[int] | None = None) -> torch.Tensor:
        """Unit ids ``[T, 1]`` (int64, CPU) of features ``[T, 1, D]`` (or ``[T, D]``).

        ``input_layers`` names the layer at each position of axis 1 when ``features`` is a whole
        stack ``[T, L, D]`` (as for ``MultiLayerKMeans``).
        """
        x = torch.as_tensor(features)
        if x.dim() == 3:
            pos = 0 if input_layers is None else list(input_layers).index(self.layer)
            if input_layers is None and x.shape[1] != 1:
                raise ValueError(f"features hold {x.shape[1]} layers; pass input_layers= to pick layer {self.layer}")
            x = x[:, pos]
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected features [T, 1, {self.dim}], got {tuple(features.shape)}")
        if len(x) == 0:
            return torch.zeros(0, 1, dtype=torch.long)
        cos = self.cosines(x)
        if cos.shape[1] == 1:
            return torch.zeros(len(x), 1, dtype=torch.long)
        top, idx = cos.topk(2, dim=1)
        ids = idx[:, 0].clone()
        unsure = (top[:, 0] - top[:, 1]) <= _EXACT_GAP
        if bool(unsure.any()):
            rows = unsure.nonzero().squeeze(1)
            xr = x.to(self.device)[rows].double()
            z = F.normalize(F.linear(xr, self.proj_weight.double(), self.proj_bias.double()), dim=-1)
            ids[rows] = (z @ F.normalize(self.codebook.double(), dim=1).T).argmax(1)  # first max on ties
        return ids[:, None].cpu()

    def config(self) -> dict:
        from speechunits import __version__

        return {"type": QUANTIZER_TYPE, "format_version": FORMAT_VERSION, "speechunits_version": __version__,
                "layers": self.layers, "ks": self.ks, "dim": self.dim, "proj_dim": int(self.proj_weight.shape[0]),
                "distance": "cosine", **self.info}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"proj.weight": self.proj_weight.cpu(), "proj.bias": self.proj_bias.cpu(), "codebook": self.codebook.cpu()}

    @classmethod
    def from_state(cls, config: dict, tensors: dict[str, torch.Tensor], *, device: str | torch.device = "cpu",
                   source: object = "<state>") -> "SpinQuantizer":
        """Rebuild from ``config()`` and ``state_dict()``; CheckpointError (a ValueError) if inconsistent."""
        from speechunits.quantizers.checkpoint import CheckpointError, check_centroids, config_int

        if config.get("type") != QUANTIZER_TYPE:
            raise CheckpointError(source, f"config type is {config.get('type')!r}, expected {QUANTIZER_TYPE!r}")
        ks, layers = config.get("ks"), config.get("layers")
        if not (isinstance(ks, list) and len(ks) == 1 and isinstance(layers, list) and len(layers) == 1):
            raise CheckpointError(source, f"config needs one-element 'ks' and 'layers', got {ks!r}, {layers!r}")
        dim, proj_dim = config_int(config, "dim", source), config_int(config, "proj_dim", source)
        w = check_centroids(tensors, "proj.weight", proj_dim, dim, source)
        c = check_centroids(tensors, "codebook", int(ks[0]), proj_dim, source)
        b = tensors.get("proj.bias")
        if b is None or tuple(b.shape) != (proj_dim,) or not bool(torch.isfinite(b).all()):
            raise CheckpointError(source, f"tensor 'proj.bias' missing or not [{proj_dim}] finite values")
        info = {k: v for k, v in config.items() if k not in _CONFIG_KEYS}
        return cls(w, b.float(), c, layer=int(layers[0]), info=info, device=device)

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """``config.json`` + ``model.safetensors`` in the folder ``path`` (atomically)."""
        from speechunits.quantizers.checkpoint import save_dir

        save_dir(path, self.config(), self.state_dict())

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu") -> "SpinQuantizer":
        from speechunits.quantizers.checkpoint import load_dir

        config, tensors = load_dir(path, expected_type=QUANTIZER_TYPE)
        return cls.from_state(config, tensors, device=device, source=os.path.join(path, "model.safetensors"))

    def __repr__(self) -> str:
        return f"SpinQuantizer(layer={self.layer}, k={self.ks[0]}, dim={self.dim})"

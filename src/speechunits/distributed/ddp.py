"""Data-parallel training under ``torchrun`` (torch.distributed: gloo on CPU, NCCL on CUDA).

The training loops (:class:`speechunits.encoders.pretrain.loop.Trainer` and the unit-LM loop
:func:`speechunits.lm.train.train`) call :func:`world` at start. Outside ``torchrun`` it returns
the one-process world and nothing changes. Under ``torchrun --nproc-per-node N`` (which sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``) it joins the process group
once, and the loops then do what DDP does, spelled out so that N processes compute *the same
step* as one process with the same global batch:

- every rank draws the step's whole batch from ``(seed, step)`` as one process would, and keeps
  its :func:`part` (contiguous, sizes differing by at most one);
- every rank's loss is its part's share of the global mean (weights all-reduced), gradients are
  summed over ranks (:func:`all_reduce_grads`), so clipping and AdamW see the one-process
  gradient and every rank takes the identical step (weights are broadcast from rank 0 once, at
  the start, so they stay identical);
- statistics over the whole batch (Spin's Sinkhorn) use :func:`all_reduce` sums and maxima;
- only rank 0 writes files; checkpoints hold the full (replicated) state, so a run resumes under
  any world size, one process included.

Every loop draws its randomness from :func:`step_seed` / :func:`step_rng` of ``(seed, step,
stream)``: the batch plan, masks and crops, the same on every rank (the unit-LM loop also seeds a
non-zero rank's dropout from the stream ``"dropout rank R"``). Randomness drawn per example from
the step seed is unchanged; randomness drawn over a tensor of the local part (dropout) differs
from the one-process run, so equality holds to float tolerance only when such randomness is off
(the tests do that); results are otherwise equal in distribution.

Example (one process: the identity):
    >>> w = world()
    >>> (w.rank, w.size, part(list(range(5)), w))
    (0, 1, [0, 1, 2, 3, 4])
"""

from __future__ import annotations

import contextlib
import datetime
import os
import zlib
from dataclasses import dataclass
from typing import Iterable, Sequence, TypeVar

import numpy as np
import torch

T = TypeVar("T")


def step_seed(seed: int, step: int, stream: str = "") -> int:
    """A 63-bit seed for step ``step`` of a run seeded ``seed`` (``stream`` separates uses: a batch
    draw, a rank's dropout, ...): every loop and every rank derives its randomness from it."""
    mix = np.random.SeedSequence([int(seed), int(step), zlib.crc32(stream.encode())])
    return int(mix.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def step_rng(seed: int, step: int, stream: str = "") -> np.random.Generator:
    """The numpy generator of step ``step`` for ``stream`` (batch choice, crops, masks...)."""
    return np.random.default_rng(step_seed(seed, step, stream))


@dataclass(frozen=True)
class World:
    """This process's place among ``size`` data-parallel processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world(device: str | torch.device = "cpu") -> World:
    """The data-parallel world of this process; joins torchrun's process group on first call
    (``gloo`` for CPU, ``nccl`` for CUDA, each rank on ``cuda:LOCAL_RANK``)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        cuda = torch.device(device).type == "cuda"
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=30))
    return World(rank, size, local)


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a process not started by torchrun (reads the environment;
    joins nothing): whoever writes reports and prints summaries."""
    return int(os.environ.get("RANK", "0")) == 0


def rank_device(device: str | torch.device, w: World) -> torch.device:
    """``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun (one GPU per process); CPU stays."""
    dev = torch.device(device)
    if dev.type == "cuda" and w.distributed and dev.index is None:
        return torch.device("cuda", w.local_rank)
    return dev


def part(items: Sequence[T], w: World) -> list[T]:
    """Rank ``w.rank``'s contiguous share of ``items`` (the step's global batch)."""
    n = len(items)
    lo, hi = (n * w.rank) // w.size, (n * (w.rank + 1)) // w.size
    return list(items[lo:hi])


def all_reduce(t: torch.Tensor, w: World, op: str = "sum") -> torch.Tensor:
    """``t`` summed (or ``op="max"``) over ranks, in place; the identity in one process.

    NCCL reduces CUDA tensors only: a CPU tensor (the loops' counts, logged losses, flags) goes
    through this rank's GPU and back, so callers need not know the backend."""
    if w.distributed:
        import torch.distributed as dist

        reduce_op = dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM
        if t.device.type != "cuda" and dist.get_backend() == "nccl":
            on_gpu = t.to(torch.device("cuda", torch.cuda.current_device()))
            dist.all_reduce(on_gpu, op=reduce_op)
            t.copy_(on_gpu)
        else:
            dist.all_reduce(t, op=reduce_op)
    return t


def all_reduce_grads(params: Iterable[torch.nn.Parameter], w: World) -> None:
    """Sum every gradient over ranks (a parameter no rank touched keeps ``None``); one flat
    buffer per device and dtype, so a step costs one collective, not one per tensor."""
    if not w.distributed:
        return
    import torch.distributed as dist

    params = [p for p in params]
    # Ranks must agree on which gradients exist: a part that did not use a parameter has None.
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32)
    all_reduce(has, w)
    groups: dict[tuple, list[torch.nn.Parameter]] = {}
    for p, h in zip(params, has.tolist()):
        if h > 0:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            groups.setdefault((p.grad.device, p.grad.dtype), []).append(p)
    for ps in groups.values():
        flat = torch.cat([p.grad.reshape(-1) for p in ps])
        dist.all_reduce(flat)
        offset = 0
        for p in ps:
            n = p.grad.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
            offset += n


def broadcast_params(params: Iterable[torch.Tensor], w: World) -> None:
    """Copy rank 0's values into every rank (the start of a run: identical weights everywhere)."""
    if not w.distributed:
        return
    import torch.distributed as dist

    with torch.no_grad():
        for p in params:
            dist.broadcast(p.data, src=0)


def barrier(w: World) -> None:
    """Wait for every rank (e.g. until rank 0 has written a checkpoint)."""
    if w.distributed:
        import torch.distributed as dist

        dist.barrier()


@contextlib.contextmanager
def main_first(w: World):
    """Rank 0 runs the block first (e.g. encodes and writes a data folder), the others after it
    (finding the work done, they only open it): no two processes write the same files."""
    if not w.is_main:
        barrier(w)
    try:
        yield
    finally:
        if w.is_main:
            barrier(w)


def refuse(what: str) -> None:
    """Fail clearly, before joining any process group, when ``what`` has not been made
    data-parallel but was started by torchrun (``WORLD_SIZE`` > 1)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1:
        raise RuntimeError(f"{what} does not run under torchrun yet (WORLD_SIZE={size}); run it as one process")

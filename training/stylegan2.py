"""Train (or fine-tune) a StyleGAN2 generator on a folder of aligned faces.

Objective and schedule (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN",
CVPR 2020, arXiv:1912.04958, sections 2-3 and appendix B; defaults of the "auto" configuration of
Karras et al., "Training Generative Adversarial Networks with Limited Data", NeurIPS 2020,
arXiv:2006.06676, appendix D.2; written for faceforge from the papers):

- **Non-saturating logistic loss** (Goodfellow et al. 2014): ``G`` minimises ``softplus(-D(G(z)))``,
  ``D`` minimises ``softplus(D(G(z))) + softplus(-D(x))``.
- **R1** on reals (Mescheder et al. 2018): ``gamma / 2 * |grad_x D(x)|^2``, **lazy**: computed every
  ``r1_interval`` (16) D steps (the iterations ``i`` with ``i % 16 == 0``, 0-based) and multiplied by
  the interval so its expected strength is unchanged; D's Adam then runs with ``lr * c`` and
  ``betas ** c``, ``c = interval / (interval + 1)`` (paper appendix B). ``r1_gamma=None`` picks the
  "auto" heuristic ``0.0002 * resolution^2 / batch_size``.
- **Path-length regularization** (optional, ``pl_weight`` > 0; 2 in the paper): every ``pl_interval``
  (4) G steps, on half a batch, ``(|J_w^T y| - a)^2`` with ``y`` Gaussian image noise scaled by
  ``1/sqrt(H W)`` and ``a`` an exponential moving average (decay 0.01) of the lengths; also lazy and
  multiplied by the interval, with G's Adam adjusted the same way.
- **Style-mixing regularization** (StyleGAN, Karras et al. 2019, section 3.1): with probability 0.9
  a batch uses two latents with one random crossover layer in ``[1, num_ws)``.
- **EMA of G** (``G_ema``, what is sampled and shipped): after every step
  ``G_ema <- beta * G_ema + (1 - beta) * G`` with ``beta = 0.5 ** (batch_size / (ema_kimg * 1000))``,
  i.e. a **half-life of ema_kimg thousand images**; with ``ema_rampup`` the half-life is capped at
  ``ema_rampup * images seen so far`` (so early on G_ema follows G closely); buffers (``w_avg``) are
  copied. ``ema_kimg=None`` picks "auto": ``batch_size * 10 / 32``.
- Adam ``lr = 0.0025``, ``betas = (0, 0.99)``, ``eps = 1e-8`` for both networks; ``g_lr`` gives G its own rate
  (the two time-scale update rule, Heusel et al., NeurIPS 2017, arXiv:1706.08500).
- **Augmentation**: x-flips only (the chips are aligned and symmetric enough). Adaptive discriminator
  augmentation (ADA) is out of scope here: with ~24k UTKFace faces D overfits slowly; for the few
  hundred cartoon faces of a fine-tune the run is short (a few kimg) instead.
- **Mixed precision** on CUDA (``amp="auto"``): the main G and D passes run under ``torch.autocast``
  in bfloat16 (same exponent range as float32, so no loss scaling and no ``conv_clamp``); the lazy
  regularizers run in float32.

Quality: the sliced Wasserstein distance on Laplacian-pyramid patches (:mod:`faceforge.metrics`) of
``swd_images`` images of ``G_ema`` (constant noise, fixed seeds) against the same number of real
training images, every ``swd_every`` steps and at the start and end of a call; columns ``swd_<res>``
and ``swd_avg`` (x 1e3, lower is better) of ``metrics.csv``. FID cannot be computed offline (its
Inception weights are not reachable); see :mod:`faceforge.metrics` for why SWD.

Data: every image of ``data`` (default ``<data root>/utkface``: 23,707 aligned 200x200 chips), centre-
cropped to a square, resized to the resolution (area averaging) and held in memory as uint8 once; the
array is cached under ``cache_dir`` (default: faceforge's user cache folder, ``$FACEFORGE_HOME/cache`` or
platformdirs', never the working tree) so a resume does not decode the folder again.

Fine-tuning (toonify, Pinkney & Adler 2020, arXiv:2010.05334): ``finetune_from`` = a run folder or
its ``last.pt`` (G, D and G_ema continue), or any StyleGAN2 generator checkpoint faceforge loads
(faceforge ``G_ema.pt``, rosinality ``.pt``, NVlabs ``.pkl``: G and G_ema start from it, D is fresh as
those files' discriminators are not converted). The architecture comes from the checkpoint; the data
(e.g. ``../shared/data/cartoon/anime_faces``) is resized to its resolution. The resulting ``G_ema.pt``
has the base's architecture, so ``faceforge.stylegan.toonify(base, finetuned, swap_resolution)`` works.

Growing (progressive growing, Karras et al. 2018): ``grow_from`` = the same kinds of source at a lower
resolution than ``resolution``; the mapping and every synthesis block it has are copied (:func:`grow_into`),
the new top blocks start fresh with their ToRGB at zero, so the first samples are the source's faces
upsampled and training adds the detail (a 64 px generator grown from the shipped 32 px one, instead of 64 px
from scratch). D takes a source run's blocks except ``fromrgb``; from a generator file it is fresh. With
``d_fade_kimg`` (one level up, from a run's trained D) D's new top block is faded in as PGGAN does: the
source D's fromRGB reads the 2x-downsampled image (``fromrgb_low``), blended with the new fromRGB + top
block by a weight ``alpha`` that goes 0 -> 1 over ``d_fade_kimg`` kimg after the warm-up
(:meth:`StyleGAN2Trainer.fade_alpha`, logged as ``D_alpha``), so D starts as the source's trained judge of
the downsampled faces instead of a fresh one at the new size.

Run folder (``runs/stylegan2/<NNN>/``, :mod:`training.runs`): ``config.json`` (resolved config, command,
network configs, data), ``metrics.csv`` (losses, EMA beta, seconds, SWD), ``samples/step_<N>.png``
(``G_ema`` on fixed z, constant noise), ``G_ema.pt`` (faceforge checkpoint:
``create_model("stylegan2", weights=run / "G_ema.pt")``) and ``last.pt`` (G, D, G_ema, both optimizers,
step, path-length mean, torch/CUDA/data RNG states) from which ``resume`` continues exactly.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceforge.checkpoints import load_checkpoint, save_checkpoint
from faceforge.models.stylegan2_convert import load_stylegan2
from faceforge.errors import CheckpointError
from faceforge.metrics import SWDReference
from faceforge.models.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from training.configs import STYLEGAN2_PRESETS, StyleGAN2TrainConfig
from training.loop import StepLoop, TrainingRun
from training.runs import resolve_device, set_requires_grad

FAMILY = "stylegan2"
STATE_ARCH = "stylegan2_training_state"
"""``arch`` of ``last.pt``: ``nn.ModuleDict({"G", "D", "G_ema"})`` (not a registered model)."""

RUNTIME_FIELDS = ("resume", "stop_after_steps", "time_limit_min", "threads", "device", "progress", "cache_dir")
"""Config fields that only steer this invocation; on resume every other field comes from the run."""

NETWORK_FIELDS = ("resolution", "z_dim", "w_dim", "channel_base", "channel_max", "mapping_layers")

PRESETS = STYLEGAN2_PRESETS
"""Named starting points (:data:`training.configs.STYLEGAN2_PRESETS`); explicit options override single fields."""


def config_from_preset(preset: str = "cpu", **overrides: Any) -> StyleGAN2TrainConfig:
    """A config from :data:`PRESETS` with ``overrides`` (``None`` values are ignored).

    Raises:
        ValueError: unknown preset or field.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    names = {f.name for f in fields(StyleGAN2TrainConfig)}
    unknown = set(overrides) - names
    if unknown:
        raise ValueError(f"unknown config fields: {sorted(unknown)}")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}, "preset": preset}
    return StyleGAN2TrainConfig(**values)


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------
def load_image_set(folder: str | Path, resolution: int, limit: int | None = None, seed: int = 0,
                   cache_dir: str | Path | None = None, progress: bool = False) -> np.ndarray:
    """Every image of ``folder`` as one uint8 array, centre-cropped square and resized.

    Args:
        folder: images (``.jpg .jpeg .png .bmp .webp``, any size; alpha composited over white).
        resolution: output side.
        limit: keep a seeded random subset of this many files.
        seed: seed of that subset.
        cache_dir: where to keep the array as ``.npy`` (keyed by folder, file names, resolution); ``None``
            = no cache.
        progress: tqdm bar while decoding.

    Returns:
        uint8 ``(N, resolution, resolution, 3)`` RGB, files in name order.

    Raises:
        FileNotFoundError: the folder does not exist or holds no images.
    """
    from faceforge.data.images import decode_squares, list_images

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder} (pass --data, or set FACEFORGE_DATA to a "
                                "folder holding utkface/)")
    files = list_images(folder)
    if not files:
        raise FileNotFoundError(f"no images in {folder}")
    if limit is not None and limit < len(files):
        idx = np.sort(np.random.default_rng(seed).choice(len(files), limit, replace=False))
        files = [files[i] for i in idx]
    key = hashlib.sha1("\n".join([str(folder.resolve()), str(resolution), *[f.name for f in files]]).encode())
    cache = Path(cache_dir) / f"{folder.name}_{resolution}px_{len(files)}_{key.hexdigest()[:12]}.npy" \
        if cache_dir else None
    return decode_squares(files, resolution, cache, desc=f"loading {folder.name}", disable_bar=not progress)


class ImageSampler:
    """Random minibatches of an in-memory uint8 image set, with optional x-flips.

    Args:
        images: uint8 ``(N, R, R, 3)``.
        device: where batches (and, on CUDA, the whole set) live.
        mirror: flip each sampled image left-right with probability 1/2.
        seed: seed of the sampler's own torch generator (saved and restored with a run).

    ``sample(n)`` returns float32 ``(n, 3, R, R)`` in [-1, 1] (``p / 127.5 - 1``), indices with replacement.
    """

    def __init__(self, images: np.ndarray, device: torch.device, mirror: bool = True, seed: int = 0) -> None:
        data = torch.from_numpy(np.ascontiguousarray(images))
        self.data = data.to(device) if device.type == "cuda" else data
        self.device, self.mirror = device, mirror
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.data.shape[0]

    def sample(self, n: int) -> torch.Tensor:
        idx = torch.randint(0, len(self), (n,), generator=self.generator)
        flip = torch.rand(n, generator=self.generator) < 0.5
        x = self.data[idx.to(self.data.device)].to(self.device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        if self.mirror:
            x = torch.where(flip.to(self.device)[:, None, None, None], x.flip(3), x)
        return x.contiguous()


# --------------------------------------------------------------------------------------------------
# The training step
# --------------------------------------------------------------------------------------------------
def lazy_adam(params, lr: float, betas: tuple[float, float], interval: int | None) -> torch.optim.Adam:
    """Adam for a network regularised every ``interval`` steps: ``lr * c``, ``betas ** c`` with
    ``c = interval / (interval + 1)`` (StyleGAN2 appendix B); plain Adam when ``interval`` is ``None``."""
    c = interval / (interval + 1) if interval else 1.0
    return torch.optim.Adam(params, lr=lr * c, betas=(betas[0] ** c, betas[1] ** c), eps=1e-8)


def freeze_generator(G: StyleGAN2Generator, below: int) -> list[str]:
    """Hold G's mapping network and its synthesis blocks ``synthesis.b<r>`` with ``r <= below`` fixed
    (``requires_grad`` off), so only the higher levels train: growing by fine-tuning only the new level, the
    cheap end of progressive growing (Karras et al., ICLR 2018, trains every level; on 2 CPU cores the grown
    generator's coarse levels drifted, 16 px SWD 29 -> 55 in 500 steps). ``below <= 0`` freezes nothing.

    Returns:
        The frozen parameter names.

    Raises:
        ValueError: ``below`` is not below G's resolution (nothing would train).
    """
    if below <= 0:
        return []
    if below >= G.resolution:
        raise ValueError(f"--freeze-below {below} freezes every synthesis block of a {G.resolution} px generator; "
                         f"give a resolution below {G.resolution} (e.g. the --grow-from source's)")
    held = {"mapping": G.mapping, **{f"synthesis.b{r}": getattr(G.synthesis, f"b{r}")
                                     for r in G.synthesis.block_resolutions if r <= below}}
    frozen = []
    for prefix, module in held.items():
        module.requires_grad_(False)
        frozen += [f"{prefix}.{name}" for name, _ in module.named_parameters()]
    return frozen


class StyleGAN2Trainer:
    """One StyleGAN2 training iteration at a time: G main, G path length (lazy), D main, D R1 (lazy),
    then the EMA update; see the module docstring for the losses.

    Args:
        G: generator (trained in place).
        D: discriminator (trained in place).
        cfg: the config (batch size, learning rates, regularization, EMA, mixing, amp).
        device: where the networks run.
        G_ema: starting EMA generator (default: a copy of ``G``).

    Attributes:
        step: iterations done (0-based index of the next one); ``nimg = step * batch_size``.
        pl_mean: running mean of path lengths (0-d float32 tensor).
    """

    def __init__(self, G: StyleGAN2Generator, D: StyleGAN2Discriminator, cfg: StyleGAN2TrainConfig,
                 device: torch.device, G_ema: StyleGAN2Generator | None = None) -> None:
        self.cfg, self.device = cfg, device
        self.G, self.D = G.to(device).train(), D.to(device).train()
        self.G_ema = (copy.deepcopy(G) if G_ema is None else G_ema).to(device).eval()
        self.G_ema.requires_grad_(False)
        self.r1_gamma = cfg.resolved_r1_gamma()
        betas = (cfg.beta1, cfg.beta2)
        g_lr = cfg.g_lr or cfg.lr
        self.frozen = freeze_generator(G, cfg.freeze_below)
        trainable = [p for p in G.parameters() if p.requires_grad]
        self.opt_G = lazy_adam(trainable, g_lr, betas, cfg.pl_interval if cfg.pl_weight > 0 else None)
        self.opt_D = lazy_adam(D.parameters(), cfg.lr, betas, cfg.r1_interval if self.r1_gamma > 0 else None)
        self.pl_mean = torch.zeros([], device=device)
        self.step = 0
        if cfg.amp not in ("auto", "off", "bf16"):
            raise ValueError(f"amp must be 'auto', 'off' or 'bf16', got {cfg.amp!r}")
        self.amp = device.type == "cuda" and cfg.amp != "off" or cfg.amp == "bf16"

    # -- helpers
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def sample_ws(self, n: int) -> torch.Tensor:
        """``(n, num_ws, w_dim)`` styles of fresh z, with style mixing at ``style_mixing_prob``."""
        G = self.G
        z = torch.randn(n, G.z_dim, device=self.device)
        ws = G.mapping(z)
        if self.cfg.style_mixing_prob > 0 and float(torch.rand(())) < self.cfg.style_mixing_prob:
            cutoff = int(torch.randint(1, G.num_ws, ()))
            ws2 = G.mapping(torch.randn(n, G.z_dim, device=self.device), update_w_avg=False)
            ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        return ws

    def _synth(self, ws: torch.Tensor) -> torch.Tensor:
        return self.G.synthesis(ws, noise_mode="random", fused=self.cfg.fused_modconv)

    def ema_beta(self, nimg: int | None = None) -> float:
        """EMA decay for the update after ``nimg`` images (default: now):
        ``0.5 ** (batch / min(ema_kimg * 1000, ema_rampup * nimg))``."""
        nimg = self.step * self.cfg.batch_size if nimg is None else nimg
        ema_nimg = self.cfg.resolved_ema_kimg() * 1000
        if self.cfg.ema_rampup:
            ema_nimg = min(ema_nimg, nimg * self.cfg.ema_rampup)
        return 0.5 ** (self.cfg.batch_size / max(ema_nimg, 1e-8))

    @torch.no_grad()
    def update_ema(self, beta: float | None = None) -> float:
        """``G_ema <- beta * G_ema + (1 - beta) * G`` for parameters; buffers copied. Returns beta."""
        beta = self.ema_beta() if beta is None else beta
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)
        return beta

    def r1_due(self, step: int | None = None) -> bool:
        """Whether lazy R1 runs at iteration ``step`` (0-based): ``gamma > 0`` and ``step % r1_interval == 0``."""
        step = self.step if step is None else step
        return self.r1_gamma > 0 and step % self.cfg.r1_interval == 0

    def pl_due(self, step: int | None = None) -> bool:
        """Whether lazy path-length regularization runs at iteration ``step``."""
        step = self.step if step is None else step
        return self.cfg.pl_weight > 0 and step % self.cfg.pl_interval == 0

    # -- one iteration
    def train_step(self, real: torch.Tensor) -> dict[str, float]:
        """One iteration on a batch of reals.

        Args:
            real: float32 ``(batch_size, 3, R, R)`` in [-1, 1] on ``device``.

        Returns:
            Scalars of this iteration: ``G_loss``, ``D_loss``, ``D_real`` / ``D_fake`` (mean logits),
            ``ema_beta``, plus ``R1`` (mean squared gradient norm) and ``PL`` / ``pl_mean`` on the
            iterations where the lazy regularizers ran.
        """
        cfg, D = self.cfg, self.D
        n = real.shape[0]
        out: dict[str, float] = {}
        if getattr(D, "fade_in", False):
            D.alpha = self.fade_alpha()
            out["D_alpha"] = D.alpha
        if self.step < cfg.d_warmup_steps:  # D alone: G and G_ema stay as they are
            self._train_d(real, out)
            out["ema_beta"] = 1.0
            self.step += 1
            return out

        # G main: non-saturating loss
        set_requires_grad([D], False)
        with self._autocast():
            logits = D(self._synth(self.sample_ws(n)))
        loss = F.softplus(-logits.float()).mean()
        self.opt_G.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_G.step()
        out["G_loss"] = float(loss.detach())

        # G reg: path length, lazy (float32)
        if self.pl_due():
            m = max(1, n // cfg.pl_batch_shrink)
            ws = self.sample_ws(m)
            if not ws.requires_grad:  # a frozen mapping network: the path length is still taken in W
                ws = ws.detach().requires_grad_(True)
            img = self._synth(ws)
            noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
            (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
            lengths = grad.square().sum(2).mean(1).sqrt()
            with torch.no_grad():
                self.pl_mean.copy_(self.pl_mean.lerp(lengths.mean(), cfg.pl_decay))
            penalty = (lengths - self.pl_mean).square().mean()
            self.opt_G.zero_grad(set_to_none=True)
            (penalty * cfg.pl_weight * cfg.pl_interval).backward()
            self.opt_G.step()
            out["PL"] = float(penalty.detach())
            out["pl_mean"] = float(self.pl_mean)

        self._train_d(real, out)
        out["ema_beta"] = self.update_ema()
        self.step += 1
        return out

    def fade_alpha(self, step: int | None = None) -> float:
        """D's fade-in weight of its new top block at ``step`` (default: now): 0 through the D-only warm-up,
        then linear to 1 over ``d_fade_kimg`` thousand images (1 when no fade is configured)."""
        step = self.step if step is None else step
        if self.cfg.d_fade_kimg <= 0:
            return 1.0
        images = max(0, step - self.cfg.d_warmup_steps) * self.cfg.batch_size
        return min(1.0, images / (self.cfg.d_fade_kimg * 1000))

    def _train_d(self, real: torch.Tensor, out: dict[str, float]) -> None:
        """D's half of an iteration: the logistic loss on reals and fresh fakes, then lazy R1; adds ``D_loss``,
        ``D_real``, ``D_fake`` (and ``R1``) to ``out``."""
        cfg, D, n = self.cfg, self.D, real.shape[0]
        # D main
        set_requires_grad([D], True)
        with torch.no_grad(), self._autocast():
            fake = self._synth(self.sample_ws(n))
        with self._autocast():
            logits_fake = D(fake).float()
            logits_real = D(real).float()
        loss = F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()
        self.opt_D.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_D.step()
        out.update(D_loss=float(loss.detach()), D_real=float(logits_real.detach().mean()),
                   D_fake=float(logits_fake.detach().mean()))

        # D reg: R1 on reals, lazy (float32)
        if self.r1_due():
            x = real.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
            r1 = grad.square().sum(dim=[1, 2, 3]).mean()
            self.opt_D.zero_grad(set_to_none=True)
            (r1 * (self.r1_gamma / 2) * cfg.r1_interval).backward()
            self.opt_D.step()
            out["R1"] = float(r1.detach())

    # -- state
    def state(self) -> tuple[nn.Module, dict[str, Any]]:
        """``(ModuleDict {G, D, G_ema}, meta)`` for ``last.pt``; meta holds optimizers, step, RNG."""
        meta = {"step": self.step, "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
                "pl_mean": self.pl_mean.detach().cpu().clone()}
        return nn.ModuleDict({"G": self.G, "D": self.D, "G_ema": self.G_ema}), meta

    def load_state(self, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Inverse of :meth:`state`.

        Raises:
            CheckpointError: the tensors do not fit the networks.
        """
        nets = nn.ModuleDict({"G": self.G, "D": self.D, "G_ema": self.G_ema})
        try:
            nets.load_state_dict(state_dict)
        except RuntimeError as exc:
            raise CheckpointError(f"training state does not fit the configured networks: {exc}") from None
        self.opt_G.load_state_dict(meta["opt_G"])
        self.opt_D.load_state_dict(meta["opt_D"])
        self.pl_mean.copy_(meta["pl_mean"])
        self.step = int(meta["step"])


# --------------------------------------------------------------------------------------------------
# Building networks, fine-tuning sources
# --------------------------------------------------------------------------------------------------
def network_configs(cfg: StyleGAN2TrainConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Constructor arguments of G and D for ``cfg``."""
    g = {k: getattr(cfg, k) for k in NETWORK_FIELDS}
    d = {"resolution": cfg.resolution, "channel_base": cfg.channel_base, "channel_max": cfg.channel_max,
         "mbstd_group_size": min(4, cfg.batch_size)}
    return g, d


def load_finetune_source(source: str | Path) -> dict[str, Any]:
    """Read the networks to fine-tune from.

    Args:
        source: a stylegan2 run folder (its ``last.pt``), a ``last.pt`` itself, or a StyleGAN2 generator
            checkpoint of any format :func:`faceforge.models.stylegan2_convert.load_stylegan2` reads.

    Returns:
        ``{"G_config", "G", "G_ema", "D_config" | None, "D" | None, "source"}`` with state dicts.

    Raises:
        FileNotFoundError: nothing at ``source``.
        CheckpointError: not a StyleGAN2 checkpoint.
    """
    path = Path(source)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise FileNotFoundError(f"fine-tuning source not found: {source} (a stylegan2 run folder, its last.pt, "
                                "or a StyleGAN2 generator checkpoint)")
    try:
        ckpt = load_checkpoint(path, arch=STATE_ARCH)
    except CheckpointError:
        ckpt = None
    if ckpt is not None:
        sd = ckpt["state_dict"]
        part = {name: {k[len(name) + 1:]: v for k, v in sd.items() if k.startswith(name + ".")}
                for name in ("G", "D", "G_ema")}
        return {"G_config": ckpt["config"]["G"], "D_config": ckpt["config"]["D"], "G": part["G"],
                "G_ema": part["G_ema"], "D": part["D"], "source": str(path)}
    g = load_stylegan2(path)
    return {"G_config": g["config"], "G": g["state_dict"], "G_ema": g["state_dict"], "D_config": None, "D": None,
            "source": str(path)}


def grow_into(net: nn.Module, state: dict[str, torch.Tensor], what: str, skip: tuple[str, ...] = ()) -> list[str]:
    """Copy a lower-resolution network's tensors into ``net`` (progressive growing, Karras et al., ICLR 2018,
    "Progressive Growing of GANs"): every tensor whose name ``net`` also has is copied (the names of
    :mod:`faceforge.models.stylegan2` are per resolution: ``synthesis.b32.*``, D's ``b32.*``), tensors of
    the new resolutions keep their fresh initialisation, names starting with one of ``skip`` are not copied
    (D's ``fromrgb``: it now reads a larger image).

    Returns:
        The names of ``net``'s tensors left fresh.

    Raises:
        CheckpointError: a shared tensor of another shape (other channel counts: keep the source's
            channel_base / channel_max, or widths that agree at the shared resolutions).
    """
    own = net.state_dict()
    bad = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
           if k in own and not k.startswith(skip) and v.shape != own[k].shape]
    if bad:
        raise CheckpointError(f"{what} cannot be grown into this configuration: shared layers differ in shape "
                              f"({'; '.join(bad[:3])}{'; ...' if len(bad) > 3 else ''}); keep its channel_base / "
                              "channel_max")
    copy_ = {k: v for k, v in state.items() if k in own and not k.startswith(skip)}
    if not copy_:
        raise CheckpointError(f"{what} shares no layer with this configuration")
    net.load_state_dict(copy_, strict=False)
    return [k for k in own if k not in copy_]


def _zero_new_torgb(G: StyleGAN2Generator, fresh: list[str]) -> None:
    """Zero the ToRGB weights of the grown blocks: with the skip architecture's sum of upsampled ToRGB
    outputs, the grown generator then starts as the source's images upsampled."""
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name in fresh and name.endswith("torgb.weight"):
                p.zero_()


def _load_into(net: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{what} does not fit: {exc}") from None


# --------------------------------------------------------------------------------------------------
# Samples and SWD
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def sample_grid(G: StyleGAN2Generator, z: torch.Tensor, cols: int = 8, batch: int = 64) -> np.ndarray:
    """uint8 grid of ``G(z)`` (constant noise, no truncation), ``cols`` images per row."""
    from faceforge.stylegan import image_grid, to_uint8

    imgs = np.concatenate([to_uint8(G.synthesis(G.mapping(z[i:i + batch], update_w_avg=False), noise_mode="const"))
                           for i in range(0, len(z), batch)])
    rows = len(imgs) // cols
    return image_grid(imgs[:rows * cols], rows, cols)


@torch.no_grad()
def generate_uint8(G: StyleGAN2Generator, n: int, seed: int, device: torch.device, batch: int = 64) -> np.ndarray:
    """``n`` images of ``G`` from z drawn with a private seeded generator (the global RNG is untouched)."""
    from faceforge.stylegan import to_uint8

    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, n, batch):
        z = torch.randn(min(batch, n - i), G.z_dim, generator=gen).to(device)
        out.append(to_uint8(G.synthesis(G.mapping(z, update_w_avg=False), noise_mode="const")))
    return np.concatenate(out)


def swd_columns(resolution: int) -> list[str]:
    """The SWD columns of ``metrics.csv`` for a resolution: ``swd_<res>`` per pyramid level, ``swd_avg``."""
    low = min(16, resolution)
    return [f"swd_{r}" for r in (resolution >> i for i in range(8)) if r >= low] + ["swd_avg"]


# --------------------------------------------------------------------------------------------------
# The training loop
# --------------------------------------------------------------------------------------------------
def train(cfg: StyleGAN2TrainConfig) -> Path:
    """Train (or, with ``cfg.resume``, continue; with ``cfg.finetune_from``, fine-tune) a StyleGAN2.

    Returns:
        The run folder.

    Raises:
        FileNotFoundError: missing data, resume folder or fine-tuning source.
        ValueError: bad configuration.
        CheckpointError: a checkpoint that does not fit.
    """
    session = TrainingRun(FAMILY, cfg, RUNTIME_FIELDS)
    cfg, resume_run = session.cfg, session.run
    source = None
    if not resume_run:
        from faceforge.data.paths import data_root

        data = Path(cfg.data) if cfg.data else data_root() / "utkface"
        updates: dict[str, Any] = {"data": str(data.resolve())}
        if cfg.finetune_from and cfg.grow_from:
            raise ValueError("give --finetune-from or --grow-from, not both")
        if cfg.finetune_from:
            source = load_finetune_source(cfg.finetune_from)
            updates.update({k: source["G_config"][k] for k in NETWORK_FIELDS if k in source["G_config"]})
            updates["finetune_from"] = str(Path(cfg.finetune_from).resolve())
        elif cfg.grow_from:
            grown = load_finetune_source(cfg.grow_from)
            if grown["G_config"]["resolution"] >= cfg.resolution:
                raise ValueError(f"--grow-from needs a source below --resolution {cfg.resolution}; "
                                 f"{cfg.grow_from} is {grown['G_config']['resolution']} px (use --finetune-from)")
            updates.update({k: grown["G_config"][k] for k in ("z_dim", "w_dim", "mapping_layers")})
            updates["grow_from"] = str(Path(cfg.grow_from).resolve())
        cfg = session.update_config(StyleGAN2TrainConfig(**{**asdict(cfg), **updates}))
    if cfg.batch_size < 1 or cfg.total_kimg <= 0 or cfg.r1_interval < 1 or cfg.pl_interval < 1:
        raise ValueError("need batch_size >= 1, total_kimg > 0 and intervals >= 1")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(cfg.seed)

    g_kwargs, d_kwargs = network_configs(cfg)
    if cfg.d_fade_kimg > 0 and not resume_run:
        if not cfg.grow_from:
            raise ValueError("--d-fade-kimg fades in a grown discriminator: give --grow-from too")
        if grown["D"] is None:
            raise ValueError(f"--d-fade-kimg needs a trained discriminator at the lower resolution: {cfg.grow_from} is a "
                             "generator file; give a stylegan2 run folder or its last.pt (e.g. a short "
                             "--finetune-from run with --d-warmup-steps)")
        if grown["G_config"]["resolution"] * 2 != cfg.resolution:
            raise ValueError(f"--d-fade-kimg grows by one level: the source is {grown['G_config']['resolution']} px, "
                             f"--resolution must be {grown['G_config']['resolution'] * 2}")
        d_kwargs["fade_in"] = True
    if source is not None:
        g_kwargs = dict(source["G_config"])
        d_kwargs = dict(source["D_config"] or d_kwargs)
    elif resume_run:
        state_ckpt = load_checkpoint(resume_run / "last.pt", arch=STATE_ARCH)
        g_kwargs, d_kwargs = state_ckpt["config"]["G"], state_ckpt["config"]["D"]
    G = StyleGAN2Generator(**g_kwargs)
    D = StyleGAN2Discriminator(**d_kwargs)
    G_ema = None
    grow_note = None
    if not resume_run and cfg.grow_from:
        where = grown["source"]
        fresh = grow_into(G, grown["G"], f"generator of {where}")
        _zero_new_torgb(G, fresh)
        G_ema = StyleGAN2Generator(**g_kwargs)
        _zero_new_torgb(G_ema, grow_into(G_ema, grown["G_ema"], f"G_ema of {where}"))
        d_fresh = grow_into(D, grown["D"], f"discriminator of {where}", skip=("fromrgb",)) if grown["D"] else None
        if d_kwargs.get("fade_in"):  # the source's fromRGB reads the downsampled image on the fade-in path
            low = {f"fromrgb_low.{k[len('fromrgb.'):]}": v for k, v in grown["D"].items() if k.startswith("fromrgb.")}
            grow_into(D, low, f"discriminator fromRGB of {where}")
            d_fresh = [k for k in d_fresh if not k.startswith("fromrgb_low.")]
        grow_note = (f"grown from {grown['G_config']['resolution']} px ({where}): G's new tensors "
                     f"{sorted({k.split('.')[1] for k in fresh})}, D "
                     + ("fresh" if d_fresh is None else f"fresh in {sorted({k.split('.')[0] for k in d_fresh})}"))
        session.info(grow_note)
        del grown
    if source is not None:
        _load_into(G, source["G"], f"generator of {source['source']}")
        G_ema = StyleGAN2Generator(**g_kwargs)
        _load_into(G_ema, source["G_ema"], f"G_ema of {source['source']}")
        if source["D"] is not None:
            _load_into(D, source["D"], f"discriminator of {source['source']}")
    trainer = StyleGAN2Trainer(G, D, cfg, device, G_ema)

    images = load_image_set(cfg.data, cfg.resolution, cfg.limit, cfg.seed, cfg.cache_dir, cfg.progress)
    if len(images) < 2:
        raise ValueError(f"{cfg.data} holds {len(images)} usable image(s); need at least 2")
    sampler = ImageSampler(images, device, cfg.mirror, seed=cfg.seed + 1)
    total_steps = math.ceil(cfg.total_kimg * 1000 / cfg.batch_size)
    command = session.command

    if resume_run:
        meta = state_ckpt["meta"]
        trainer.load_state(state_ckpt["state_dict"], meta)
        del state_ckpt
        torch.set_rng_state(meta["rng"])
        if device.type == "cuda" and meta.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(meta["cuda_rng"], device)
        sampler.generator.set_state(meta["data_rng"])
    run = session.create({
        "generator_config": g_kwargs, "discriminator_config": d_kwargs, "r1_gamma": trainer.r1_gamma,
        "ema_kimg": cfg.resolved_ema_kimg(), "images": len(images), "total_steps": total_steps,
        "finetune_from": source["source"] if source else None, "grown": grow_note,
        "G_params": sum(p.numel() for p in G.parameters()), "D_params": sum(p.numel() for p in D.parameters()),
    })
    log = session.metrics()
    loss_cols = ["G_loss", "D_loss", "D_real", "D_fake", "R1", "PL", "pl_mean"]
    swd_cols = swd_columns(cfg.resolution)
    if d_kwargs.get("fade_in"):
        loss_cols.append("D_alpha")
    columns = ["step", "kimg", *loss_cols, "ema_beta", "sec_per_step", "seconds", *swd_cols]
    sample_z = torch.randn(cfg.n_samples, G.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 7)).to(device)

    swd_ref = None
    if cfg.swd_every:
        n_swd = min(cfg.swd_images, len(images))
        pick = np.sort(np.random.default_rng(cfg.seed + 3).choice(len(images), n_swd, replace=False))
        swd_ref = SWDReference.from_images(images[pick], cfg.swd_descriptors, min(16, cfg.resolution), seed=0)

    def measure_swd() -> dict[str, float]:
        fake = generate_uint8(trainer.G_ema, swd_ref.num_images, seed=cfg.seed + 11, device=device)
        return swd_ref.distance(fake)

    last_metrics: dict[str, Any] = {}

    def save(final: bool) -> None:
        nets, meta = trainer.state()
        meta.update(kimg=round(trainer.step * cfg.batch_size / 1000, 3), rng=torch.get_rng_state(),
                    cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                    data_rng=sampler.generator.get_state(), finished=final)
        save_checkpoint(run / "last.pt", nets, STATE_ARCH, {"G": g_kwargs, "D": d_kwargs}, meta)
        prov = {"task": "generate", "data": cfg.data, "images": len(images), "step": trainer.step,
                "kimg": meta["kimg"], "total_kimg": cfg.total_kimg, "finished": final, "command": command,
                "finetune_from": cfg.finetune_from, "grow_from": cfg.grow_from,
                "config": {k: v for k, v in asdict(cfg).items() if k not in RUNTIME_FIELDS},
                "metrics": last_metrics or None,
                "version": f"{time.strftime('%Y.%m.%d')}-run{run.name}-kimg{meta['kimg']:g}"}
        save_checkpoint(run / "G_ema.pt", trainer.G_ema, "stylegan2", g_kwargs, prov)

    def write_row(window: dict[str, list[float]], step_seconds: list[float], seconds: float,
                  swd: dict[str, float] | None) -> None:
        """One metrics row: window means; sec_per_step = training steps only; seconds = wall since the last row."""
        row: dict[str, Any] = {c: "" for c in columns}
        row.update(step=trainer.step, kimg=round(trainer.step * cfg.batch_size / 1000, 3), seconds=round(seconds, 2),
                   sec_per_step=round(float(np.mean(step_seconds)), 4) if step_seconds else "")
        for k, v in window.items():
            row[k] = round(float(np.mean(v)), 5)
        if swd:
            row.update(swd)
        log.log(**row)

    with StepLoop(session, total_steps, trainer.step, cfg) as loop:  # holds train.lock (training.runs.run_lock)
        t_first = time.time()
        if trainer.step == 0:
            session.save_grid(0, sample_grid(trainer.G_ema, sample_z))
        if swd_ref is not None and trainer.step == 0:
            last_metrics.update(measure_swd())
            write_row({}, [], time.time() - t_first, last_metrics)
        while loop.running:
            t_step = time.time()
            losses = trainer.train_step(sampler.sample(cfg.batch_size))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            loop.record(losses, time.time() - t_step)
            swd = None
            if swd_ref is not None and loop.due(cfg.swd_every, at_stop=False):
                swd = measure_swd()
                last_metrics.update(swd)
            if loop.due(cfg.log_every) or swd is not None:
                window, step_seconds, seconds = loop.take_window()
                write_row(window, step_seconds, seconds, swd)
                loop.postfix(**{short: round(float(np.mean(window[key])), 3)
                                for short, key in (("G", "G_loss"), ("D", "D_loss")) if window.get(key)})
            if loop.due(cfg.sample_every):
                session.save_grid(loop.step, sample_grid(trainer.G_ema, sample_z))
            if loop.due(cfg.save_every):
                save(final=loop.last)
    return run

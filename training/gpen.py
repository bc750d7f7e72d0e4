"""Train GPEN (blind face restoration) on aligned faces degraded on the fly (default: UTKFace chips).

Model: :class:`faceforge.models.gpen.GPEN` (Yang, Ren, Xie, Zhang, CVPR 2021). Discriminator: faceforge's
StyleGAN2 residual discriminator (:class:`~faceforge.models.stylegan2.StyleGAN2Discriminator`; the GPEN
reference uses the same architecture). Inputs are made by :mod:`faceforge.degrade` (blur, downsampling
x1-x8, noise, JPEG 30-100, 10 % grayscale of input *and* target), drawn per sample from a seeded numpy
generator whose state is saved with the run.

Losses (reference ``train_simple.py`` of yangxy/GPEN, facts only; weights as in GFPGAN, Wang et al. 2021):

- **non-saturating adversarial**: G minimises ``lambda_adv * softplus(-D(G(y)))``; D minimises
  ``softplus(D(G(y))) + softplus(-D(x))`` (Goodfellow et al. 2014);
- **R1** on real faces, lazy (Mescheder et al. 2018; StyleGAN2 appendix B): ``gamma / 2 * |grad_x D(x)|^2``
  every ``r1_interval`` (16) steps, multiplied by the interval; D's Adam uses ``lr * c``, ``betas ** c``,
  ``c = 16 / 17`` (:func:`training.stylegan2.lazy_adam`); ``gamma = 10`` as the reference;
- **L1** ``lambda_l1 * |G(y) - x|_1`` on [-1, 1] images (the reference uses SmoothL1 with weight 1);
- **identity** ``lambda_id * |e(G(y)) - e(x)|^2`` and **face-feature** ``lambda_feat * mean_l |f_l(G(y)) -
  f_l(x)|_1`` with ``e`` / ``f_l`` the embedding and intermediate maps of the PyTorch port of dlib's face
  recognition ResNet (``faceforge.models.dlib_resnet``, written separately; the reference uses ArcFace
  IR-SE50, which is not available here). When that module (or its weights) is absent the two terms are
  skipped and the run's ``config.json`` and log say so (:func:`load_identity_network`);
- **EMA** of G (``G_ema``, what is saved and served): ``G_ema <- beta G_ema + (1 - beta) G`` with a half-life
  of ``ema_kimg`` thousand images (reference: ``0.5 ** (32 / 10000)`` per step), ramped up over the first
  images (half-life at most 5 % of the images seen).

Adam ``lr = 0.002``, ``betas = (0, 0.99)`` (reference) for both networks.

Data split: every UTKFace file whose name's CRC-32 is ``0 mod 20`` (5 %, 1,185 of 23,707 chips) is held
out (:func:`faceforge.data.utkface.crc_split`); training never sees them, and ``benchmarks/restore_quality.py`` measures on
them. Images are centre-cropped square, resized to ``size`` (area) and kept in memory as uint8
(:func:`faceforge.data.images.load_faces`; cached as ``.npy`` under ``cache_dir`` when given).

Run folder (``<runs_dir>/gpen/<NNN>/``, :mod:`training.runs`): ``config.json``, ``metrics.csv`` (losses, R1,
EMA beta, seconds per step, and every ``eval_every`` steps ``val_psnr`` / ``val_psnr_input`` of ``G_ema``
on 64 held-out faces at the ``moderate`` benchmark severity), ``samples/step_<N>.png`` (rows of held-out
faces: degraded | restored | clean, at mild / moderate / severe), ``G_ema.pt`` (faceforge checkpoint,
``arch="gpen"``: what ``faceforge restore --weights`` loads) and ``last.pt`` (G, D, G_ema, optimizers, step,
torch and degradation RNG states) from which ``resume`` continues.

On a CPU: 64 px (``size=64``, the default small configuration, ~1.9 M generator parameters) takes 0.36 s
per batch of 8 on 2 idle cores (0.6 s with the identity terms), ~1 s at 1 thread on a shared machine;
128 px is supported (``size=128``) and about 4x slower.
"""

from __future__ import annotations

import copy
import importlib
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceforge.checkpoints import load_checkpoint, save_checkpoint
# the data helpers live in the core data layer; these names stay importable from here
from faceforge.data.images import load_faces
from faceforge.data.tensors import batch_to_tensor as to_tensor, to_uint8
from faceforge.data.utkface import HOLDOUT_MODULUS, crc_split as utkface_split, is_held_out  # noqa: F401
from faceforge.degrade import SEVERITIES, TRAINING, degrade_fixed, degrade_pair
from faceforge.errors import CheckpointError
from faceforge.models.gpen import GPEN, GPEN_ARCH
from faceforge.models.stylegan2 import StyleGAN2Discriminator
from training.configs import GPENTrainConfig
from training.face_losses import IdentityLoss
from training.loop import StepLoop, TrainingRun
from training.runs import init_from_weights, kimg_row, resolve_device, set_requires_grad
from training.stylegan2 import lazy_adam

log = logging.getLogger(__name__)

FAMILY = "gpen"
STATE_ARCH = "gpen_training_state"
"""``arch`` of ``last.pt``: ``nn.ModuleDict {G, D, G_ema}`` (not a registered model)."""
RUNTIME_FIELDS = ("resume", "stop_after_steps", "time_limit_min", "threads", "device", "progress")
"""Config fields that only steer this invocation; on resume every other field comes from the run."""
FACE_TEMPLATE = "utkface"
"""Framing of the training faces (UTKFace chips): restore aligns photos on this template for our weights."""


class PairSampler:
    """Random (degraded, clean) minibatches of an in-memory uint8 face set.

    Each sample: a uniformly drawn face, flipped left-right with probability 1/2 (``mirror``), degraded by
    :func:`faceforge.degrade.degrade_pair` with the :data:`~faceforge.degrade.TRAINING` distribution.
    All randomness comes from one ``numpy.random.Generator`` (:attr:`rng`, state saved with the run).

    ``sample(n) -> (lq, hq)``, float32 ``(n, 3, S, S)`` in [-1, 1].
    """

    def __init__(self, images: np.ndarray, mirror: bool = True, seed: int = 0) -> None:
        self.images, self.mirror = images, mirror
        self.rng = np.random.default_rng(seed)

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        hq, lq = [], []
        for i in self.rng.integers(0, len(self.images), n):
            x = self.images[i]
            if self.mirror and self.rng.uniform() < 0.5:
                x = x[:, ::-1]
            target, degraded, _ = degrade_pair(np.ascontiguousarray(x), self.rng, TRAINING)
            hq.append(target)
            lq.append(degraded)
        return to_tensor(np.stack(lq)), to_tensor(np.stack(hq))


# --------------------------------------------------------------------------------------------------
# Identity / face-feature hooks (optional network)
# --------------------------------------------------------------------------------------------------
IDENTITY_MODULE = "faceforge.models.dlib_resnet"
_IDENTITY_LOADERS = ("load_pretrained", "load_dlib_resnet", "load", "create")


def load_identity_network(device: torch.device | str = "cpu") -> tuple[nn.Module | None, str]:
    """The frozen PyTorch face-identity network for the identity and face-feature losses, if available.

    Looks for :data:`IDENTITY_MODULE` (the PyTorch port of dlib's face recognition ResNet, another
    faceforge module) and calls the first of its loader functions :data:`_IDENTITY_LOADERS` that exists
    with no arguments. The network must map float ``(N, 3, H, W)`` RGB in [0, 255] (dlib's input) to
    ``(N, 128)`` embeddings; a ``features(x) -> list of maps`` method, if present, feeds the face-feature
    loss.

    Returns:
        ``(network or None, note)``: ``note`` says what was loaded or why the terms are skipped.
    """
    try:
        module = importlib.import_module(IDENTITY_MODULE)
    except ImportError as exc:
        return None, f"identity and face-feature losses skipped: {IDENTITY_MODULE} is not available ({exc})"
    for name in _IDENTITY_LOADERS:
        loader = getattr(module, name, None)
        if callable(loader):
            try:
                net = loader()
            except Exception as exc:  # noqa: BLE001 - missing weights etc.: skip the terms, say why
                return None, f"identity and face-feature losses skipped: {IDENTITY_MODULE}.{name}() failed: {exc}"
            if isinstance(net, nn.Module):
                net = net.to(device).eval()
                net.requires_grad_(False)
                return net, f"identity losses use {IDENTITY_MODULE}.{name}()"
    return None, (f"identity and face-feature losses skipped: {IDENTITY_MODULE} has none of "
                  f"{', '.join(_IDENTITY_LOADERS)} returning an nn.Module")


# --------------------------------------------------------------------------------------------------
# The training step
# --------------------------------------------------------------------------------------------------
class GPENTrainer:
    """One GPEN iteration at a time: D main, D R1 (lazy), G (adversarial + L1 [+ identity + feature]), EMA.

    Args:
        G: the restorer; D: the discriminator (trained in place).
        cfg: the config.
        device: where everything runs.
        identity: an :class:`IdentityLoss`, or ``None`` (terms skipped).

    Attributes:
        step: iterations done.
    """

    def __init__(self, G: GPEN, D: StyleGAN2Discriminator, cfg: GPENTrainConfig, device: torch.device,
                 identity: IdentityLoss | None = None) -> None:
        self.cfg, self.device = cfg, device
        self.G, self.D = G.to(device).train(), D.to(device).train()
        self.G_ema = copy.deepcopy(G).eval()
        self.G_ema.requires_grad_(False)
        self.identity = identity
        betas = (cfg.beta1, cfg.beta2)
        self.opt_G = lazy_adam(G.parameters(), cfg.lr, betas, None)
        self.opt_D = lazy_adam(D.parameters(), cfg.lr, betas, cfg.r1_interval if cfg.r1_gamma > 0 else None)
        self.step = 0

    def ema_beta(self) -> float:
        """``0.5 ** (batch / min(ema_kimg * 1000, ema_rampup * images seen))``."""
        nimg = (self.step + 1) * self.cfg.batch_size
        half = self.cfg.ema_kimg * 1000
        if self.cfg.ema_rampup:
            half = min(half, self.cfg.ema_rampup * nimg)
        return 0.5 ** (self.cfg.batch_size / max(half, 1e-8))

    @torch.no_grad()
    def update_ema(self) -> float:
        beta = self.ema_beta()
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)
        return beta

    def train_step(self, lq: torch.Tensor, hq: torch.Tensor) -> dict[str, float]:
        """One iteration on degraded ``lq`` and clean ``hq`` (float32 ``(N, 3, S, S)`` in [-1, 1] on ``device``).

        Returns:
            ``L1``, ``G_loss``, ``ema_beta``; ``D_loss``, ``D_real``, ``D_fake``, ``G_adv`` when ``lambda_adv > 0``
            (with ``lambda_adv = 0`` D is not run at all and keeps its weights); ``R1`` on the lazy steps; ``ID``
            and ``feat`` when the identity network is loaded.
        """
        cfg, G, D = self.cfg, self.G, self.D
        out: dict[str, float] = {}
        if cfg.lambda_adv > 0:
            out.update(self._d_step(lq, hq))
        # G
        fake = G(lq)
        l1 = F.l1_loss(fake, hq)
        loss_g = cfg.lambda_l1 * l1
        if cfg.lambda_adv > 0:  # without it, D is neither trained nor run (about half the step time)
            set_requires_grad([D], False)
            adv = F.softplus(-D(fake)).mean()
            loss_g = loss_g + cfg.lambda_adv * adv
            out["G_adv"] = float(adv.detach())
        if self.identity is not None and (cfg.lambda_id > 0 or cfg.lambda_feat > 0):
            ident, feat = self.identity(fake, hq)
            loss_g = loss_g + cfg.lambda_id * ident + cfg.lambda_feat * feat
            out.update(ID=float(ident.detach()), feat=float(feat.detach()))
        self.opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_G.step()
        out.update(L1=float(l1.detach()), G_loss=float(loss_g.detach()))
        out["ema_beta"] = self.update_ema()
        self.step += 1
        return out

    def _d_step(self, lq: torch.Tensor, hq: torch.Tensor) -> dict[str, float]:
        """D's main step and, every ``r1_interval`` steps, its lazy R1 step; returns their losses."""
        cfg, G, D = self.cfg, self.G, self.D
        out: dict[str, float] = {}
        set_requires_grad([D], True)
        with torch.no_grad():
            fake = G(lq)
        logits_fake, logits_real = D(fake), D(hq)
        loss_d = F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()
        self.opt_D.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_D.step()
        out.update(D_loss=float(loss_d.detach()), D_real=float(logits_real.detach().mean()),
                   D_fake=float(logits_fake.detach().mean()))
        # D R1, lazy
        if cfg.r1_gamma > 0 and self.step % cfg.r1_interval == 0:
            x = hq.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
            r1 = grad.square().sum(dim=[1, 2, 3]).mean()
            self.opt_D.zero_grad(set_to_none=True)
            (r1 * (cfg.r1_gamma / 2) * cfg.r1_interval).backward()
            self.opt_D.step()
            out["R1"] = float(r1.detach())
        return out

    def state(self) -> tuple[nn.Module, dict[str, Any]]:
        """``(ModuleDict {G, D, G_ema}, meta with step and both optimizers)`` for ``last.pt``."""
        return (nn.ModuleDict({"G": self.G, "D": self.D, "G_ema": self.G_ema}),
                {"step": self.step, "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict()})

    def load_state(self, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Inverse of :meth:`state`.

        Raises:
            CheckpointError: the tensors do not fit.
        """
        try:
            nn.ModuleDict({"G": self.G, "D": self.D, "G_ema": self.G_ema}).load_state_dict(state_dict)
        except RuntimeError as exc:
            raise CheckpointError(f"training state does not fit the configured networks: {exc}") from None
        self.opt_G.load_state_dict(meta["opt_G"])
        self.opt_D.load_state_dict(meta["opt_D"])
        self.step = int(meta["step"])


def init_weights(trainer: GPENTrainer, path: Path) -> str:
    """Start ``trainer`` from earlier weights (weights only: optimizers, step and RNGs stay fresh).

    ``path`` is a gpen run folder or its ``last.pt`` (G, G_ema and D are loaded), or a GPEN weights file
    that :func:`faceforge.models.gpen.load_gpen` reads (a faceforge ``G_ema.pt`` or a published GPEN-BFR
    state dict: G and G_ema start from it, D stays freshly initialised). Used to continue a run with
    changed loss weights, e.g. an L1-heavy, PSNR-oriented fine-tune of an adversarially trained restorer.

    Returns:
        A one-line note for the log and ``config.json``.

    Raises:
        FileNotFoundError: nothing there (a folder without ``last.pt``).
        CheckpointError: not a GPEN training state or weights file, or networks that do not fit the
            configured sizes.
    """
    from faceforge.models.gpen import load_gpen

    note = init_from_weights(path, "gpen", STATE_ARCH,
                             nn.ModuleDict({"G": trainer.G, "D": trainer.D, "G_ema": trainer.G_ema}), trainer.G,
                             lambda p: load_gpen(p)["state_dict"], "G, G_ema and D", "GPEN G and G_ema (D fresh)")
    if "D fresh" in note:  # weights only: G_ema starts where G does
        trainer.G_ema.load_state_dict(trainer.G.state_dict())
    return note


# --------------------------------------------------------------------------------------------------
# Evaluation and samples
# --------------------------------------------------------------------------------------------------
def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean PSNR (dB, data range 255) over a batch of uint8 images ``(N, H, W, 3)``."""
    err = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)
    return float(np.mean(10 * np.log10(255.0 ** 2 / np.maximum(err, 1e-10))))


@torch.no_grad()
def restore_batch(G: nn.Module, lq: np.ndarray, device: torch.device, batch: int = 32) -> np.ndarray:
    """Run ``G`` (eval mode, restored afterwards) on uint8 ``(N, S, S, 3)`` faces: uint8 ``(N, S, S, 3)``."""
    mode = G.training
    G.eval()
    outs = [to_uint8(G(to_tensor(lq[i:i + batch]).to(device))) for i in range(0, len(lq), batch)]
    G.train(mode)
    return np.concatenate(outs) if outs else np.zeros_like(lq)


def fixed_degradations(clean: np.ndarray, severity: str, seed: int = 0) -> np.ndarray:
    """The benchmark degradation of each face (:func:`faceforge.degrade.degrade_fixed`, index = position)."""
    return np.stack([degrade_fixed(x, severity, seed, i)[0] for i, x in enumerate(clean)])


def sample_grid(G: nn.Module, clean: np.ndarray, device: torch.device) -> np.ndarray:
    """Rows = faces; per severity (mild, moderate, severe): degraded | restored; then clean.
    uint8 ``(n S, 7 S, 3)``."""
    cols = []
    for sev in SEVERITIES:
        lq = fixed_degradations(clean, sev, seed=1)
        cols += [lq, restore_batch(G, lq, device)]
    cols.append(clean)
    return np.concatenate([np.concatenate([c[i] for c in cols], axis=1) for i in range(len(clean))], axis=0)


# --------------------------------------------------------------------------------------------------
# Training loop
# --------------------------------------------------------------------------------------------------
def train(cfg: GPENTrainConfig) -> Path:
    """Train (or, with ``cfg.resume``, continue) a GPEN restorer; see the module docstring.

    Runs in the trainer skeleton (:mod:`training.loop`): run folder, lock, resume, metrics, grids, stopping.

    Returns:
        The run folder.

    Raises:
        FileNotFoundError: missing data or resume folder.
        ValueError: bad configuration, or too few images.
        CheckpointError: a resume state that does not fit.
        RuntimeError: another live trainer holds the run (``train.lock``).
    """
    from faceforge.data.images import list_images
    from faceforge.data.paths import data_root

    session = TrainingRun(FAMILY, cfg, RUNTIME_FIELDS)
    cfg = session.cfg
    if not session.resumed:
        data = Path(cfg.data) if cfg.data else data_root() / "utkface"
        cfg = session.update_config(GPENTrainConfig(**{**asdict(cfg), "data": str(data.resolve())}))
    if cfg.batch_size < 1 or cfg.total_steps < 1 or cfg.r1_interval < 1:
        raise ValueError("need batch_size >= 1, total_steps >= 1 and r1_interval >= 1")
    torch.manual_seed(cfg.seed)
    G = GPEN(**cfg.generator_config())  # validates size / channels (ValueError)
    D = StyleGAN2Discriminator(**cfg.discriminator_config())
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)

    folder = Path(cfg.data)
    if not folder.is_dir():
        raise FileNotFoundError(f"face folder not found: {folder} (pass --data, or set FACEFORGE_DATA to a folder "
                                "holding utkface/)")
    train_files, held_out = utkface_split(list_images(folder))
    if cfg.limit is not None and cfg.limit < len(train_files):
        pick = np.sort(np.random.default_rng(cfg.seed).choice(len(train_files), cfg.limit, replace=False))
        train_files = [train_files[i] for i in pick]
    if len(train_files) < 2:
        raise ValueError(f"{folder} holds {len(train_files)} training image(s) outside the held-out split; need >= 2")
    images = load_faces(train_files, cfg.size, cfg.cache_dir, cfg.progress)
    val_files = held_out[: cfg.n_val] or train_files[: cfg.n_val]
    val_clean = load_faces(val_files, cfg.size)
    val_lq = fixed_degradations(val_clean, "moderate", seed=0)
    sampler = PairSampler(images, cfg.mirror, seed=cfg.seed + 1)

    if (cfg.lambda_id > 0 or cfg.lambda_feat > 0) and cfg.size < 32:
        ident_net, ident_note = None, f"identity and face-feature losses skipped: dlib's chip needs faces >= 32 px, not {cfg.size}"
    elif cfg.lambda_id > 0 or cfg.lambda_feat > 0:
        ident_net, ident_note = load_identity_network(device)
    else:
        ident_net, ident_note = None, "identity and face-feature losses off (lambda_id = lambda_feat = 0)"
    session.info(ident_note)
    identity = IdentityLoss(ident_net) if ident_net is not None else None
    trainer = GPENTrainer(G, D, cfg, device, identity)
    g_kwargs, d_kwargs = cfg.generator_config(), cfg.discriminator_config()
    command = session.command

    init_note = None
    if cfg.init_from and not session.resumed:
        init_note = init_weights(trainer, Path(cfg.init_from))
        session.info(init_note)
    if session.resumed:
        state = load_checkpoint(session.run / "last.pt", arch=STATE_ARCH)
        trainer.load_state(state["state_dict"], state["meta"])
        torch.set_rng_state(state["meta"]["rng"])
        sampler.rng.bit_generator.state = state["meta"]["data_rng"]
        del state
    run = session.create({
        "generator_config": g_kwargs, "discriminator_config": d_kwargs, "train_images": len(images),
        "held_out_images": len(held_out), "val_images": len(val_clean), "identity": ident_note, "init": init_note,
        "degradation": asdict(TRAINING), "G_params": sum(p.numel() for p in G.parameters()),
        "D_params": sum(p.numel() for p in D.parameters()),
    })
    metrics = session.metrics()
    columns = ["step", "kimg", "D_loss", "D_real", "D_fake", "R1", "G_adv", "L1", "ID", "feat", "G_loss", "ema_beta",
               "sec_per_step", "val_psnr", "val_psnr_input"]
    grid_faces = val_clean[:6]
    last_eval: dict[str, float] = {}

    def evaluate() -> dict[str, float]:
        restored = restore_batch(trainer.G_ema, val_lq, device)
        return {"val_psnr": round(psnr(restored, val_clean), 3), "val_psnr_input": round(psnr(val_lq, val_clean), 3)}

    def save(final: bool) -> None:
        nets, meta = trainer.state()
        meta.update(rng=torch.get_rng_state(), data_rng=sampler.rng.bit_generator.state, finished=final)
        save_checkpoint(run / "last.pt", nets, STATE_ARCH, {"G": g_kwargs, "D": d_kwargs}, meta)
        prov = {"task": "restore", "data": cfg.data, "train_images": len(images), "step": trainer.step,
                "kimg": round(trainer.step * cfg.batch_size / 1000, 3), "finished": final, "command": command,
                "face_template": FACE_TEMPLATE, "identity": ident_note, "metrics": last_eval or None,
                "config": {k: v for k, v in asdict(cfg).items() if k not in RUNTIME_FIELDS},
                "version": f"{time.strftime('%Y.%m.%d')}-run{run.name}-step{trainer.step}"}
        save_checkpoint(run / "G_ema.pt", trainer.G_ema, GPEN_ARCH, g_kwargs, prov)

    def write_row(window: dict[str, list[float]], seconds: list[float], ev: dict[str, float] | None) -> None:
        metrics.log(**kimg_row(columns, trainer.step, cfg.batch_size, window, seconds, ev))

    with StepLoop(session, cfg.total_steps, trainer.step, cfg) as loop:
        if trainer.step == 0:
            last_eval = evaluate()
            write_row({}, [], last_eval)
            session.save_grid(0, sample_grid(trainer.G_ema, grid_faces, device))
        while loop.running:
            t0 = time.time()
            lq, hq = sampler.sample(cfg.batch_size)
            loop.record(trainer.train_step(lq.to(device), hq.to(device)), time.time() - t0)
            ev = None
            if loop.due(cfg.eval_every):
                ev = last_eval = evaluate()
            if loop.due(cfg.log_every, at_stop=False, at_last=False) or ev is not None:
                window, seconds, _ = loop.take_window()
                write_row(window, seconds, ev)
                loop.postfix(L1=round(float(np.mean(window["L1"])), 4), **({"psnr": ev["val_psnr"]} if ev else {}))
            if loop.due(cfg.sample_every):
                session.save_grid(loop.step, sample_grid(trainer.G_ema, grid_faces, device))
            if loop.due(cfg.save_every):
                save(final=loop.last)
    return run

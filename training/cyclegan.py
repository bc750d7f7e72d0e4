"""Train CycleGAN translators between two unpaired face domains (default: young -> old on UTKFace).

Objective (Zhu, Park, Isola, Efros, ICCV 2017, sec. 3-4 and 7.1):

- two generators, ``G_A: A -> B`` and ``G_B: B -> A``; two PatchGAN discriminators, ``D_A`` judging
  images of domain B (real B vs ``G_A``'s output) and ``D_B`` judging domain A (the naming of Zhu et
  al.'s reference code: each discriminator is paired with the generator it trains);
- least-squares GAN losses (Mao et al., "Least Squares Generative Adversarial Networks", ICCV 2017):
  ``G`` minimises ``(D(G(x)) - 1)^2``, ``D`` minimises ``((D(y) - 1)^2 + D(G(x))^2) / 2``;
- cycle consistency ``lambda_cycle * |G_B(G_A(a)) - a|_1`` (and for ``b``), ``lambda_cycle = 10``;
- identity ``lambda_identity * lambda_cycle * |G_A(b) - b|_1`` (and for ``a``), ``lambda_identity = 0.5``;
- optional **face identity** ``lambda_face_id * |e(G_A(a)) - e(a)|^2`` (and for ``b``) and **face
  features** ``lambda_face_feat * mean_l |f_l(G_A(a)) - f_l(a)|_1`` through dlib's face-recognition ResNet
  (:mod:`training.face_losses`; faceforge's addition, off by default): the translation may change age but
  should keep the person, which CycleGAN's pixel terms do not ask for directly (issue 14; FaceShifter and
  GPEN train with the same terms);
- discriminators updated on a history of 50 generated images (Shrivastava et al., "Learning from
  Simulated and Unsupervised Images through Adversarial Training", CVPR 2017), :class:`ImagePool`;
- Adam, lr 2e-4, betas (0.5, 0.999); the lr stays constant for ``n_epochs`` epochs and then decays
  linearly to zero over ``n_epochs_decay`` epochs (100 + 100 in the paper); batch size 1, 286 -> 256
  random crops and flips; weights ~ N(0, 0.02).

Distillation (``teacher=<run folder>``, for :class:`~faceforge.models.cyclegan.MobileResnetGenerator`):
the student generators learn ``lambda_distill * |G(x) - T(x)|_1`` towards the frozen teacher's output
``T(x)`` plus the same LSGAN losses; cycle and identity terms are off (the teacher's output is the
paired target, as in GAN Compression, Li et al., CVPR 2020, without its perceptual terms). The
discriminators start from the teacher run's discriminators when their shapes fit.

Continued training (``init_from=<run folder>``): all four networks start from that run's ``last.pt``
(weights only; new optimizers, image pools and lr schedule), e.g. a second stage with a weaker
identity term once the first has learned to keep the face.

Run folder (``runs/cyclegan/<NNN>/``, :mod:`training.runs`): ``config.json`` (resolved config,
command, data sizes), ``metrics.csv`` (losses every ``log_every`` steps), ``samples/step_<N>.png``
(rows ``real A | G_A(A) | G_B(G_A(A)) | real B | G_B(B) | G_A(G_B(B))`` on fixed images, generators in
eval mode), ``G_A.pt``/``G_B.pt`` (faceforge checkpoints loadable with
``create_model(<generator>, weights=...)``: ``G_A`` is the A -> B translator) and ``last.pt`` (all four
networks, optimizers, image pools, RNG state) from which ``resume`` continues.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from faceforge.checkpoints import load_checkpoint, save_checkpoint
from faceforge.errors import CheckpointError
from faceforge.imaging import load_image
from faceforge.models import create_model, get_spec
from faceforge.models.cyclegan import NLayerDiscriminator
from training.configs import CycleGANConfig
from training.face_losses import load_face_identity_loss
from training.loop import StepLoop, TrainingRun
from training.runs import epoch_steps, resolve_device, restore_training_state, set_requires_grad, window_row
from faceforge.data.images import list_images, resize_square
from faceforge.data.tensors import to_tensor, to_uint8
from faceforge.data.unpaired import UnpairedImageFolder

STATE_ARCH = "cyclegan_training_state"
"""``arch`` of ``last.pt``: the four networks in an ``nn.ModuleDict`` (not a registered model)."""

RUNTIME_FIELDS = ("resume", "stop_after_steps", "time_limit_min", "threads", "num_workers", "device", "progress")
"""Config fields that only steer this invocation; on resume every other field comes from the run."""


class ImagePool:
    """History of generated images for the discriminator update (Shrivastava et al. 2017).

    :meth:`query` returns a batch of the same size: while the pool holds fewer than ``size`` images
    each incoming image is stored and returned; afterwards each incoming image is, with probability
    1/2, returned as is, or else swapped with a uniformly chosen stored image, which is returned
    instead. ``size=0`` returns the input unchanged. Randomness comes from torch's global generator.

    Args:
        size: capacity (50 in Zhu et al. 2017).
    """

    def __init__(self, size: int = 50) -> None:
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = int(size)
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` generated images (detached by the caller) -> ``(N, C, H, W)`` to judge."""
        if self.size == 0:
            return images
        out = []
        for img in images:
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif torch.rand(()) < 0.5:
                k = int(torch.randint(0, self.size, ()).item())
                out.append(self.images[k].clone())
                self.images[k] = img.clone()
            else:
                out.append(img)
        return torch.cat(out, 0)

    def state(self) -> torch.Tensor | None:
        """Stored images as one CPU tensor ``(k, C, H, W)`` (``None`` when empty)."""
        return torch.cat(self.images).cpu() if self.images else None

    def load(self, stored: torch.Tensor | None, device: torch.device | str = "cpu") -> None:
        """Restore :meth:`state`'s output."""
        self.images = [] if stored is None else [t.unsqueeze(0).to(device) for t in stored][: self.size]


def gan_loss(pred: torch.Tensor, target_real: bool, mode: str = "lsgan") -> torch.Tensor:
    """GAN loss on raw discriminator scores.

    Args:
        pred: discriminator output (any shape, e.g. ``(N, 1, 30, 30)`` patch scores).
        target_real: ``True`` for the "real" target (1), ``False`` for "fake" (0).
        mode: ``"lsgan"``: mean squared error to the target (Mao et al. 2017); ``"vanilla"``:
            binary cross-entropy with logits (Goodfellow et al. 2014).

    Returns:
        Scalar loss.

    Raises:
        ValueError: unknown ``mode``.
    """
    target = torch.ones_like(pred) if target_real else torch.zeros_like(pred)
    if mode == "lsgan":
        return F.mse_loss(pred, target)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(pred, target)
    raise ValueError(f"gan_mode must be 'lsgan' or 'vanilla', got {mode!r}")


def lr_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """Learning-rate multiplier of 0-based ``epoch``: 1 for the first ``n_epochs`` epochs, then a linear
    decay ``1 - (epoch - n_epochs + 1) / (n_epochs_decay + 1)`` (Zhu et al.'s schedule), never below 0."""
    if epoch < n_epochs:
        return 1.0
    return max(0.0, 1.0 - (epoch - n_epochs + 1) / (n_epochs_decay + 1))


def _fixed_samples(cfg: CycleGANConfig) -> dict[str, torch.Tensor]:
    """First ``n_samples`` images of testA/testB (trainA/trainB when absent), resized to crop_size."""
    out = {}
    for d in ("A", "B"):
        folder = Path(cfg.dataroot) / f"test{d}"
        files = list_images(folder) if folder.is_dir() else []
        files = (files or list_images(Path(cfg.dataroot) / f"train{d}"))[: cfg.n_samples]
        out[d] = torch.stack([to_tensor(resize_square(load_image(p), cfg.crop_size)) for p in files])
    return out


@torch.no_grad()
def sample_grid(G_A: nn.Module, G_B: nn.Module, samples: dict[str, torch.Tensor], device: torch.device) -> np.ndarray:
    """Grid uint8 ``(rows * S, 6 * S, 3)``: per row ``A, G_A(A), G_B(G_A(A)), B, G_B(B), G_A(G_B(B))``.

    The generators run in eval mode (as deployed) and are put back in their previous mode.
    """
    modes = G_A.training, G_B.training
    G_A.eval(), G_B.eval()
    a, b = samples["A"].to(device), samples["B"].to(device)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    fake_b, fake_a = G_A(a), G_B(b)
    cols = [a, fake_b, G_B(fake_b), b, fake_a, G_A(fake_a)]
    G_A.train(modes[0]), G_B.train(modes[1])
    tiles = [to_uint8(c) for c in cols]  # each (n, S, S, 3)
    return np.concatenate([np.concatenate([t[i] for t in tiles], axis=1) for i in range(n)], axis=0)


def _load_teacher(run: Path, device: torch.device) -> tuple[nn.Module, nn.Module, dict | None]:
    """Frozen teacher generators from a run folder, and its discriminators' state if saved."""
    gens = []
    for name in ("G_A", "G_B"):
        path = run / f"{name}.pt"
        arch = load_checkpoint(path)["arch"]
        g = create_model(arch, weights=path).to(device).eval()
        set_requires_grad([g], False)
        gens.append(g)
    d_state = None
    if (run / "last.pt").is_file():
        d_state = load_checkpoint(run / "last.pt", arch=STATE_ARCH)["state_dict"]
    return gens[0], gens[1], d_state


def train(cfg: CycleGANConfig) -> Path:
    """Train (or, with ``cfg.resume``, continue training) a CycleGAN; see the module docstring.

    Args:
        cfg: the configuration. With ``resume`` set, every non-runtime field is taken from the run's
            ``config.json`` (:data:`RUNTIME_FIELDS` come from ``cfg``).

    Returns:
        The run folder.

    Raises:
        FileNotFoundError: missing data folders, resume folder or teacher files.
        ValueError: bad configuration (unknown gan_mode, a generator of another task, ...).
        UnknownModelError: unknown generator name.
        CheckpointError: a resume/teacher checkpoint that does not fit.
    """
    session = TrainingRun("cyclegan", cfg, RUNTIME_FIELDS)
    cfg, resume_run = session.cfg, session.run
    if not resume_run:  # store absolute paths, so that a resume works from any working directory
        cfg = session.update_config(CycleGANConfig(**{
            **asdict(cfg), "dataroot": str(Path(cfg.dataroot).resolve()),
            "teacher": str(Path(cfg.teacher).resolve()) if cfg.teacher else None}))
    if cfg.gan_mode not in ("lsgan", "vanilla"):
        raise ValueError(f"gan_mode must be 'lsgan' or 'vanilla', got {cfg.gan_mode!r}")
    spec = get_spec(cfg.generator)
    if spec.task != "translate":
        raise ValueError(f"generator {cfg.generator!r} is a {spec.task!r} model, not a translator")
    if cfg.batch_size < 1 or cfg.n_epochs < 0 or cfg.n_epochs_decay < 0 or cfg.n_epochs + cfg.n_epochs_decay < 1:
        raise ValueError("need batch_size >= 1 and n_epochs + n_epochs_decay >= 1")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(cfg.seed)

    dataset = UnpairedImageFolder(cfg.dataroot, "train", cfg.load_size, cfg.crop_size, augment=True)
    steps_per_epoch = epoch_steps(len(dataset), cfg.batch_size, cfg.steps_per_epoch, "images")
    total_epochs = cfg.n_epochs + cfg.n_epochs_decay
    total_steps = total_epochs * steps_per_epoch

    gen_kwargs = {**spec.kwargs, **cfg.generator_kwargs}
    G_A = create_model(cfg.generator, **cfg.generator_kwargs).to(device).train()
    G_B = create_model(cfg.generator, **cfg.generator_kwargs).to(device).train()
    if gen_kwargs.get("norm") == "batch" and cfg.batch_size < 4:
        warnings.warn(f"{cfg.generator} uses BatchNorm but batch_size={cfg.batch_size}: running statistics "
                      "will be noisy; use batch_size >= 4", stacklevel=2)
    d_kwargs = {"input_nc": gen_kwargs.get("output_nc", 3), "ndf": cfg.ndf, "n_layers": cfg.n_layers_d,
                "norm": cfg.norm_d}
    D_A, D_B = NLayerDiscriminator(**d_kwargs).to(device), NLayerDiscriminator(**d_kwargs).to(device)
    nets = nn.ModuleDict({"G_A": G_A, "G_B": G_B, "D_A": D_A, "D_B": D_B})

    teacher = None
    if cfg.teacher:
        T_A, T_B, t_state = _load_teacher(Path(cfg.teacher), device)
        teacher = (T_A, T_B)
        if t_state is not None and not resume_run:
            for name in ("D_A", "D_B"):
                part = {k[len(name) + 1:]: v for k, v in t_state.items() if k.startswith(name + ".")}
                try:
                    nets[name].load_state_dict(part)
                except RuntimeError:
                    warnings.warn(f"teacher {name} does not fit the student's discriminator; starting it fresh",
                                  stacklevel=2)

    if cfg.init_from and not resume_run:  # weights only: fresh optimizers, pools and schedule
        state_path = Path(cfg.init_from)
        state_path = state_path / "last.pt" if state_path.is_dir() else state_path
        if not state_path.is_file():
            raise FileNotFoundError(f"--init-from: {state_path} not found (a cyclegan run folder or its last.pt)")
        state = load_checkpoint(state_path, arch=STATE_ARCH)
        try:
            nets.load_state_dict(state["state_dict"])
        except RuntimeError as exc:
            raise CheckpointError(f"--init-from {state_path}: its networks do not fit this configuration "
                                  f"({str(exc).splitlines()[0]})") from None

    face_loss, face_note = None, "face identity / feature terms off (lambda_face_id = lambda_face_feat = 0)"
    if cfg.lambda_face_id > 0 or cfg.lambda_face_feat > 0:
        if cfg.crop_size < 32:
            raise ValueError(f"the face identity / feature terms need crops >= 32 px (dlib's chip), not {cfg.crop_size}")
        face_loss = load_face_identity_loss(device)
        face_note = (f"face identity {cfg.lambda_face_id:g} / features {cfg.lambda_face_feat:g}: "
                     "faceforge.models.dlib_resnet.load_dlib_resnet() on dlib's 150 px chip of the utkface-aligned crop")
    session.info(face_note)

    opt_G = torch.optim.Adam(list(G_A.parameters()) + list(G_B.parameters()), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    opt_D = torch.optim.Adam(list(D_A.parameters()) + list(D_B.parameters()), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    pool_A, pool_B = ImagePool(cfg.pool_size), ImagePool(cfg.pool_size)  # generated A / generated B images

    command = session.command
    step = 0
    if resume_run:
        meta = restore_training_state(resume_run, nets, {"opt_G": opt_G, "opt_D": opt_D}, STATE_ARCH)
        pool_A.load(meta["pool_A"], device)
        pool_B.load(meta["pool_B"], device)
        step = int(meta["step"])
    run = session.create({
        "generator_config": gen_kwargs, "discriminator_config": d_kwargs,
        "train_sizes": {"A": len(dataset.files["A"]), "B": len(dataset.files["B"])},
        "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
        "mode": "distillation" if teacher else "cyclegan", "face_losses": face_note,
    })
    log = session.metrics()
    samples = _fixed_samples(cfg)

    def save(step: int, final: bool = False) -> None:
        epoch_now = step / steps_per_epoch
        meta = {"step": step, "epoch": round(epoch_now, 4), "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(),
                "pool_A": pool_A.state(), "pool_B": pool_B.state(), "rng": torch.get_rng_state()}
        save_checkpoint(run / "last.pt", nets, STATE_ARCH, {**d_kwargs, "generator": cfg.generator, **gen_kwargs}, meta)
        prov = {"task": "translate", "data": str(Path(cfg.dataroot).resolve()), "step": step,
                "epoch": round(epoch_now, 4), "total_epochs": total_epochs, "finished": final,
                "mode": "distillation" if teacher else "cyclegan", "teacher": cfg.teacher, "command": command,
                "config": {k: v for k, v in asdict(cfg).items() if k not in RUNTIME_FIELDS},
                "version": f"{time.strftime('%Y.%m.%d')}-run{run.name}-step{step}"}
        split = Path(cfg.dataroot) / "split.json"
        if split.is_file():
            info = json.loads(split.read_text())
            prov["split"] = {k: info.get(k) for k in ("source", "mode", "template", "young", "old", "counts")}
        for name, direction in (("G_A", "A->B"), ("G_B", "B->A")):
            g = nets[name]
            save_checkpoint(run / f"{name}.pt", g, cfg.generator, gen_kwargs, {**prov, "direction": direction})

    disc_nets = [D_A, D_B]
    lam_idt = cfg.lambda_identity * cfg.lambda_cycle
    with StepLoop(session, total_steps, step, cfg, steps_per_epoch=steps_per_epoch) as loop:  # holds train.lock
        while loop.running:
            epoch, offset = divmod(loop.step, steps_per_epoch)
            for group in opt_G.param_groups + opt_D.param_groups:
                group["lr"] = cfg.lr * lr_factor(epoch, cfg.n_epochs, cfg.n_epochs_decay)
            perm = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
            perm = perm[: steps_per_epoch * cfg.batch_size][offset * cfg.batch_size:]
            loader = DataLoader(Subset(dataset, perm.tolist()), batch_size=cfg.batch_size, shuffle=False, drop_last=True,
                                num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
                                persistent_workers=False)
            for batch in loader:
                real_A = batch["A"].to(device, non_blocking=True)
                real_B = batch["B"].to(device, non_blocking=True)
                losses: dict[str, torch.Tensor] = {}
                # --- generators
                set_requires_grad(disc_nets, False)
                fake_B, fake_A = G_A(real_A), G_B(real_B)
                losses["G_A_gan"] = gan_loss(D_A(fake_B), True, cfg.gan_mode)
                losses["G_B_gan"] = gan_loss(D_B(fake_A), True, cfg.gan_mode)
                if teacher is not None:
                    with torch.no_grad():
                        t_B, t_A = teacher[0](real_A), teacher[1](real_B)
                    losses["distill_A"] = F.l1_loss(fake_B, t_B) * cfg.lambda_distill
                    losses["distill_B"] = F.l1_loss(fake_A, t_A) * cfg.lambda_distill
                else:
                    losses["cycle_A"] = F.l1_loss(G_B(fake_B), real_A) * cfg.lambda_cycle
                    losses["cycle_B"] = F.l1_loss(G_A(fake_A), real_B) * cfg.lambda_cycle
                    if lam_idt > 0:
                        losses["idt_A"] = F.l1_loss(G_A(real_B), real_B) * lam_idt
                        losses["idt_B"] = F.l1_loss(G_B(real_A), real_A) * lam_idt
                if face_loss is not None:
                    id_A, feat_A = face_loss(fake_B, real_A)
                    id_B, feat_B = face_loss(fake_A, real_B)
                    if cfg.lambda_face_id > 0:
                        losses["face_id"] = (id_A + id_B) * cfg.lambda_face_id
                    if cfg.lambda_face_feat > 0:
                        losses["face_feat"] = (feat_A + feat_B) * cfg.lambda_face_feat
                loss_G = sum(losses.values())
                opt_G.zero_grad(set_to_none=True)
                loss_G.backward()
                opt_G.step()
                # --- discriminators, on the history of generated images
                set_requires_grad(disc_nets, True)
                fb, fa = pool_B.query(fake_B.detach()), pool_A.query(fake_A.detach())
                losses["D_A"] = 0.5 * (gan_loss(D_A(real_B), True, cfg.gan_mode) + gan_loss(D_A(fb), False, cfg.gan_mode))
                losses["D_B"] = 0.5 * (gan_loss(D_B(real_A), True, cfg.gan_mode) + gan_loss(D_B(fa), False, cfg.gan_mode))
                opt_D.zero_grad(set_to_none=True)
                (losses["D_A"] + losses["D_B"]).backward()
                opt_D.step()

                losses["G"] = loss_G.detach()
                loop.record({k: float(v.detach()) for k, v in losses.items()})
                if loop.due(cfg.log_every, at_stop=False):
                    window, _, seconds = loop.take_window()
                    row = window_row(window, loop.step, steps_per_epoch, opt_G.param_groups[0]["lr"], seconds, "G")
                    log.log(**row)
                    loop.postfix(G=row["G"], D_A=row["D_A"], D_B=row["D_B"])
                if loop.due(cfg.sample_every, at_stop=False, at_epoch_end=True):
                    session.save_grid(loop.step, sample_grid(G_A, G_B, samples, device))
                if loop.due(cfg.save_every, at_epoch_end=True):
                    save(loop.step, final=loop.last)
                if loop.stop:
                    break
    return run

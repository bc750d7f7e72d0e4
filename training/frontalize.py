"""Train a pix2pix frontalization generator on synthesized pose pairs (:mod:`training.pose_pairs`).

Objective (Isola, Zhu, Zhou, Efros, "Image-to-Image Translation with Conditional Adversarial
Networks", CVPR 2017, arXiv:1611.07004, sec. 3 and 4):

- a conditional PatchGAN discriminator :class:`~faceforge.models.cyclegan.NLayerDiscriminator` on the
  concatenation ``[input, image]`` (6 channels; 70x70 patches, BatchNorm as in pix2pix);
- ``G`` minimises ``gan(D([x, G(x)]), real) + lambda_l1 * |G(x) - y|_1`` with ``lambda_l1 = 100``;
  ``D`` minimises ``(gan(D([x, y]), real) + gan(D([x, G(x)]), fake)) / 2`` (the paper halves D's
  objective to slow it down);
- ``gan``: the vanilla (binary cross-entropy) loss of the paper, or LSGAN (Mao et al., ICCV 2017);
  :func:`training.cyclegan.gan_loss`;
- optional **face identity** ``lambda_face_id * |e(G(x)) - e(y)|^2`` and **face features**
  ``lambda_face_feat * mean_l |f_l(G(x)) - f_l(y)|_1`` to the true frontal ``y``, through the frozen PyTorch
  port of dlib's face-recognition ResNet (:class:`training.face_losses.IdentityLoss`; the issue's "identity
  loss from the face-identity network", in place of the VGGFace encoder the seed project used). With
  ``id_views = k > 0`` both are averaged over ``k`` random re-framed / blurred / re-sampled views of
  ``G(x)`` (:func:`training.face_losses.random_identity_view`), so the generator cannot satisfy the judge
  with pixel patterns only dlib reads;
- Adam, lr 2e-4, betas (0.5, 0.999); lr constant for ``n_epochs`` then linearly to 0 over
  ``n_epochs_decay`` (:func:`training.cyclegan.lr_factor`); random jitter (resize 286, crop 256) and
  mirroring applied identically to input and target; weights ~ N(0, 0.02).

Input (``input``): ``"rerender"`` (default; Rotate-and-Render, Zhou et al., CVPR 2020: the profile
warped back to frontal by the same renderer a real photo would go through, so the generator only
repairs warping artifacts and fills what the profile did not show) or ``"profile"`` (the rendered
profile itself; the generator has to do the rotation).

Metrics (every ``eval_every`` steps and at the end): PSNR and SSIM (``skimage.metrics``, uint8, SSIM
over the three channels with the default 7x7 window) of ``G(input)`` against the true frontal on the
held-out pairs, per yaw bucket (15-30, 30-45, 45-60, 60-75) and overall, beside the same figures for
the input itself (what a generator must beat); rows in ``eval.csv``, the latest in ``eval.json``.
When dlib is installed (``pip install -e '.[metrics]'``, :mod:`faceforge.identity`), also identity:
the mean dlib embedding distance of ``G(input)``, of the generator's input and of the rendered profile
to the true frontal (``id_output``, ``id_input``, ``id_profile``) and the share of pairs below dlib's
same-person threshold 0.6 (``id_same_output``, ``id_same_profile``) per bucket; the issue asks that
``id_output`` be clearly below ``id_profile``. All crops share the ``utkface`` framing, so each is
embedded from the same fixed face rectangle (:data:`faceforge.identity.UTKFACE_BOX`). Without dlib
these columns are absent.

Continued training (``init_from``): G and D start from a frontalize run's ``last.pt``, or G alone from any
weights file of the configured generator (the shipped ``pix2pix_frontalize.pt``, a run's ``G.pt``; D
fresh): weights only, fresh optimizers and schedule, step 0 (:func:`init_weights`).

Run folder (``runs/frontalize/<NNN>/``, :mod:`training.runs`): ``config.json``, ``metrics.csv``
(losses), ``eval.csv``/``eval.json``, ``samples/step_<N>.png`` (rows: profile | input | G(input) |
frontal, on fixed held-out pairs, G in eval mode), ``G.pt`` (faceforge checkpoint:
``create_model(<generator>, weights=run / "G.pt")``) and ``last.pt`` (G, D, optimizers, RNG, step)
from which ``resume`` continues.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from faceforge.checkpoints import save_checkpoint
from faceforge.imaging import load_image
from faceforge.models import create_model, get_spec
from faceforge.models.cyclegan import NLayerDiscriminator
# shared trainer helpers live in the CycleGAN trainer for now (one copy; to move to training/runs.py)
from training.configs import FrontalizeConfig
from training.face_losses import load_face_identity_loss, random_identity_view
from training.cyclegan import gan_loss, lr_factor
from faceforge.data.pose_pairs import YAW_BUCKETS, PosePairDataset, bucket_name, load_index
from training.loop import StepLoop, TrainingRun
from training.runs import (epoch_steps, init_from_weights, resolve_device, restore_training_state, set_requires_grad,
                           window_row, write_json)
from faceforge.data.images import resize_square
from faceforge.data.tensors import to_uint8

STATE_ARCH = "frontalize_training_state"
"""``arch`` of ``last.pt``: ``nn.ModuleDict({"G", "D"})`` (not a registered model)."""

RUNTIME_FIELDS = ("resume", "stop_after_steps", "time_limit_min", "threads", "num_workers", "device", "progress")
"""Config fields that only steer this invocation; on resume every other field comes from the run."""


def init_weights(G: nn.Module, D: nn.Module, generator: str, path: Path) -> str:
    """Load earlier weights into ``G`` (and ``D``) in place: weights only, for a fine-tune (``init_from``).

    ``path`` is a frontalize run folder or its ``last.pt`` (G and D are loaded), or a weights file of the
    ``generator`` architecture that :func:`faceforge.models.create_model` reads (a run's ``G.pt``, the shipped
    ``faceforge/weights/pix2pix_frontalize.pt``: G starts from it, D stays freshly initialised).

    Returns:
        A one-line note for the log.

    Raises:
        FileNotFoundError: nothing there (a folder without ``last.pt``).
        CheckpointError: neither a frontalize training state nor weights of ``generator``, or networks that
            do not fit the configured sizes.
    """
    return init_from_weights(path, "frontalize", STATE_ARCH, nn.ModuleDict({"G": G, "D": D}), G,
                             lambda p: create_model(generator, weights=p).state_dict(), "G and D", "G (D fresh)")


@torch.no_grad()
def evaluate(G: nn.Module, dataset: PosePairDataset, device: torch.device, batch_size: int = 8,
             buckets=YAW_BUCKETS, identity: bool | None = None, judge: str | None = None) -> dict[str, dict[str, float]]:
    """PSNR/SSIM of ``G(input)`` and of the input itself against the true frontal, per yaw bucket, and
    (with dlib) identity distances; optionally the same comparison by an independent judge.

    Args:
        G: generator (run in eval mode, its mode restored afterwards).
        dataset: held-out :class:`~faceforge.data.pose_pairs.PosePairDataset` without augmentation.
        device: where ``G`` lives.
        batch_size: evaluation batch.
        buckets: ``(lo, hi)`` absolute-yaw buckets in degrees.
        identity: compute the dlib identity columns; ``None``: when :func:`faceforge.identity.is_available`
            (skipped silently otherwise); ``True`` without dlib raises.
        judge: ``"faceres"`` adds Human's FaceRes descriptor (:func:`faceforge.models.tfjs_judges.faceres_network`,
            not the network a face-identity loss trains against), on crops re-aligned from the ``utkface``
            framing (:func:`faceforge.faces.align.template_keypoints`, no detector): per bucket the mean cosine
            of output and input to the true frontal and their ID retrieval top-1 (the nearest true frontal of
            the bucket, by cosine, is the pair's own; ``all``: the mean of those hits, since a face's true
            frontal is the same image in every bucket); ``None``: not.

    Returns:
        ``{bucket name or "all": {"n", "psnr", "ssim", "psnr_input", "ssim_input"[, "id_output",
        "id_input", "id_profile", "id_same_output", "id_same_profile"]}}`` with means over pairs (PSNR
        in dB on uint8 images, data range 255; SSIM from ``skimage.metrics`` over RGB; ``id_*``: dlib
        embedding distances to the true frontal, lower = more alike; ``id_same_*``: fraction below 0.6; with
        ``judge="faceres"`` also ``fr_cos_output``, ``fr_cos_input``, ``fr_top1_output``, ``fr_top1_input``).

    Raises:
        ModuleNotFoundError: scikit-image is not installed (``pip install -e '.[train]'``).
        MissingDependencyError: ``identity=True`` without dlib and its model files; ``judge="faceres"`` without
            FaceRes's model files.
        ValueError: an unknown judge.
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from faceforge import identity as ident

    if judge not in (None, "faceres"):
        raise ValueError(f"judge must be None or 'faceres', got {judge!r}")
    if judge:
        from faceforge.faces.align import template_keypoints
        from faceforge.models import tfjs_judges as mf

        mf.faceres_network()  # a missing model fails here, before the generator runs
    if identity is None:
        identity = ident.is_available()
    judge_crops: list[np.ndarray] = []  # per pair: true frontal, output, input (FaceRes crops)
    kps = None  # the utkface template's keypoints at the dataset's side (one side per dataset)
    mode = G.training
    G.eval()
    rows: list[tuple] = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    k = 0  # index into dataset.pairs (the loader keeps the dataset's order)
    for batch in loader:
        out = to_uint8(G(batch["input"].to(device)))
        inp, tgt = to_uint8(batch["input"]), to_uint8(batch["target"])
        for o, x, y, yaw in zip(out, inp, tgt, batch["yaw"].tolist()):
            row = (bucket_name(yaw, buckets),
                   peak_signal_noise_ratio(y, o, data_range=255), structural_similarity(y, o, channel_axis=-1),
                   peak_signal_noise_ratio(y, x, data_range=255), structural_similarity(y, x, channel_axis=-1))
            if identity:
                profile = resize_square(load_image(dataset.root / dataset.pairs[k]["profile"]), y.shape[0])
                e_y, e_o, e_x, e_p = ident.embed_many([y, o, x, profile])
                d_o, d_x, d_p = (ident.distance(e, e_y) for e in (e_o, e_x, e_p))
                row += (d_o, d_x, d_p, float(d_o < ident.SAME_PERSON_THRESHOLD),
                        float(d_p < ident.SAME_PERSON_THRESHOLD))
            rows.append(row)
            if judge:
                if kps is None:
                    kps = template_keypoints("utkface", y.shape[0])
                judge_crops += [mf.faceres_align(np.ascontiguousarray(im), kps) for im in (y, o, x)]
            k += 1
    G.train(mode)
    judged = (mf.faceres_embed_aligned(np.stack(judge_crops)).reshape(len(rows), 3, -1).astype(np.float64)
              if judge and rows else None)
    groups: dict[str, list[int]] = {f"{lo:g}-{hi:g}": [] for lo, hi in buckets}
    groups["all"] = list(range(len(rows)))
    for i, r in enumerate(rows):
        if r[0] is not None:
            groups[r[0]].append(i)
    if judged is not None:  # retrieval within a bucket: each face appears once per bucket, once in each gallery
        hits = np.zeros((len(rows), 2))
        for name, idx in groups.items():
            if name != "all" and idx:
                e = judged[idx]  # (n, 3, D): true frontal, output, input
                for j in (1, 2):
                    hits[idx, j - 1] = (e[:, j] @ e[:, 0].T).argmax(1) == np.arange(len(idx))
    out: dict[str, dict[str, float]] = {}
    for name, idx in groups.items():
        if not idx:
            continue
        rs = [rows[i] for i in idx]
        a = np.asarray([r[1:] for r in rs], np.float64)
        out[name] = {"n": len(rs), "psnr": round(float(a[:, 0].mean()), 3), "ssim": round(float(a[:, 1].mean()), 4),
                     "psnr_input": round(float(a[:, 2].mean()), 3), "ssim_input": round(float(a[:, 3].mean()), 4)}
        if identity:
            m = a[:, 4:].mean(0)
            out[name].update(id_output=round(float(m[0]), 4), id_input=round(float(m[1]), 4),
                             id_profile=round(float(m[2]), 4), id_same_output=round(float(m[3]), 4),
                             id_same_profile=round(float(m[4]), 4))
        if judged is not None:
            for j, col in ((1, "output"), (2, "input")):
                out[name][f"fr_cos_{col}"] = round(float((judged[idx, j] * judged[idx, 0]).sum(1).mean()), 4)
                out[name][f"fr_top1_{col}"] = round(float(hits[idx, j - 1].mean()), 4)
    return out


@torch.no_grad()
def sample_grid(G: nn.Module, dataset: PosePairDataset, n: int, device: torch.device) -> np.ndarray:
    """Grid uint8 ``(n * S, 4 * S, 3)``: per row the rendered profile, the generator's input, ``G(input)``
    and the true frontal, for the first ``n`` pairs of ``dataset`` (G in eval mode, mode restored)."""
    mode = G.training
    G.eval()
    rows = []
    for i in range(min(n, len(dataset))):
        item = dataset[i]
        pair = dataset.pairs[i]
        s = item["input"].shape[-1]
        profile = resize_square(load_image(dataset.root / pair["profile"]), s)
        out = to_uint8(G(item["input"][None].to(device))[0])
        rows.append(np.concatenate([profile, to_uint8(item["input"]), out, to_uint8(item["target"])], axis=1))
    G.train(mode)
    return np.concatenate(rows, axis=0)


def train(cfg: FrontalizeConfig) -> Path:
    """Train (or, with ``cfg.resume``, continue) a frontalization generator; see the module docstring.

    Returns:
        The run folder.

    Raises:
        FileNotFoundError: missing pose-pair cache or resume folder.
        ValueError: bad configuration (gan_mode, input, a generator of another task, sizes).
        UnknownModelError: unknown generator name.
        CheckpointError: a resume checkpoint that does not fit.
    """
    session = TrainingRun("frontalize", cfg, RUNTIME_FIELDS)
    cfg, resume_run = session.cfg, session.run
    if not resume_run:
        cfg = FrontalizeConfig(**{**asdict(cfg), "data": str(Path(cfg.data).resolve())})
    if cfg.gan_mode not in ("lsgan", "vanilla"):
        raise ValueError(f"gan_mode must be 'lsgan' or 'vanilla', got {cfg.gan_mode!r}")
    spec = get_spec(cfg.generator)
    if spec.task != "frontalize":
        raise ValueError(f"generator {cfg.generator!r} is a {spec.task!r} model, not a frontalizer")
    if cfg.batch_size < 1 or cfg.n_epochs < 0 or cfg.n_epochs_decay < 0 or cfg.n_epochs + cfg.n_epochs_decay < 1:
        raise ValueError("need batch_size >= 1 and n_epochs + n_epochs_decay >= 1")
    crop = int(cfg.crop_size or spec.input.shape[-1])
    load = int(cfg.load_size or round(crop * 286 / 256))
    levels = int({**spec.kwargs, **cfg.generator_kwargs}.get("num_downs", 1))
    if crop < 16 or crop % 2 ** levels or load < crop:
        raise ValueError(f"crop_size {crop} must be a multiple of 2^num_downs = {2 ** levels} (pass --num-downs "
                         f"{max(1, crop.bit_length() - 1)} or another crop size) and load_size {load} >= crop_size")
    # the checkpoints' provenance records the sizes actually used (export and the Frontalizer read crop_size)
    cfg = session.update_config(FrontalizeConfig(**{**asdict(cfg), "crop_size": crop, "load_size": load}))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)

    train_set = PosePairDataset(cfg.data, "train", cfg.input, load, crop, augment=True)
    test_set = PosePairDataset(cfg.data, "test", cfg.input, crop, crop, augment=False)
    steps_per_epoch = epoch_steps(len(train_set), cfg.batch_size, cfg.steps_per_epoch, "training pairs")
    total_epochs = cfg.n_epochs + cfg.n_epochs_decay
    total_steps = total_epochs * steps_per_epoch

    gen_kwargs = {**spec.kwargs, **cfg.generator_kwargs}
    G = create_model(cfg.generator, **cfg.generator_kwargs).to(device).train()
    if gen_kwargs.get("norm") == "batch" and cfg.batch_size < 4:
        warnings.warn(f"{cfg.generator} uses BatchNorm with batch_size={cfg.batch_size}: running statistics "
                      "will be noisy; use batch_size >= 4", stacklevel=2)
    d_kwargs = {"input_nc": gen_kwargs.get("input_nc", 3) + gen_kwargs.get("output_nc", 3), "ndf": cfg.ndf,
                "n_layers": cfg.n_layers_d, "norm": cfg.norm_d}
    D = NLayerDiscriminator(**d_kwargs).to(device).train()
    nets = nn.ModuleDict({"G": G, "D": D})
    init_note = init_weights(G, D, cfg.generator, Path(cfg.init_from)) if cfg.init_from and not resume_run else None
    if init_note:
        session.info(init_note)
    face_loss, face_note = None, "face identity / feature terms off (lambda_face_id = lambda_face_feat = 0)"
    if cfg.lambda_face_id > 0 or cfg.lambda_face_feat > 0:
        if crop < 32:
            raise ValueError(f"the face identity / feature terms need crops >= 32 px (dlib's chip), not {crop}")
        face_loss = load_face_identity_loss(device)
        face_note = (f"face identity {cfg.lambda_face_id:g} / features {cfg.lambda_face_feat:g} to the true frontal"
                     f"{f', averaged over {cfg.id_views} random views' if cfg.id_views else ''}: "
                     "faceforge.models.dlib_resnet.load_dlib_resnet() on dlib's 150 px chip of the utkface-aligned crop")
    session.info(face_note)
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))

    command = session.command
    index = load_index(cfg.data)
    step = 0
    if resume_run:
        meta = restore_training_state(resume_run, nets, {"opt_G": opt_G, "opt_D": opt_D}, STATE_ARCH)
        step = int(meta["step"])
    run = session.create({
        "generator_config": gen_kwargs, "discriminator_config": d_kwargs, "crop_size": crop, "load_size": load,
        "pairs": {"train": len(train_set), "test": len(test_set)}, "data_counts": index.get("counts"),
        "data_config": index.get("config"), "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
        "face_losses": face_note, **({"init": init_note} if init_note else {}),
    })
    # the cache's side and yaw buckets travel in G.pt: the Frontalizer renders at that side and flags yaws
    # beyond the buckets even for an installed copy without this run's config.json
    data_config = {k: (index.get("config") or {}).get(k) for k in ("size", "buckets", "template")}
    log = session.metrics()
    eval_log = session.metrics("eval.csv")

    def run_eval(step: int) -> dict[str, Any]:
        res = evaluate(G, test_set, device)
        for name, r in res.items():
            eval_log.log(step=step, bucket=name, **r)
        write_json(run / "eval.json", {"step": step, "input": cfg.input, "metrics": res})
        return res

    def save(step: int, final: bool, metrics: dict[str, Any] | None) -> None:
        epoch_now = round(step / steps_per_epoch, 4)
        meta = {"step": step, "epoch": epoch_now, "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(),
                "rng": torch.get_rng_state()}
        save_checkpoint(run / "last.pt", nets, STATE_ARCH, {**d_kwargs, "generator": cfg.generator, **gen_kwargs}, meta)
        prov = {"task": "frontalize", "input": cfg.input, "data": cfg.data, "step": step, "epoch": epoch_now,
                "total_epochs": total_epochs, "finished": final, "command": command,
                "config": {k: v for k, v in asdict(cfg).items() if k not in RUNTIME_FIELDS},
                "metrics": metrics, "data_config": data_config,
                "version": f"{time.strftime('%Y.%m.%d')}-run{run.name}-step{step}"}
        save_checkpoint(run / "G.pt", G, cfg.generator, gen_kwargs, prov)

    # a second trainer on this run (e.g. --resume while this one evaluates) is refused: StepLoop holds train.lock
    with StepLoop(session, total_steps, step, cfg, steps_per_epoch=steps_per_epoch) as loop:
        metrics = None
        while loop.running:
            epoch, offset = divmod(loop.step, steps_per_epoch)
            for group in opt_G.param_groups + opt_D.param_groups:
                group["lr"] = cfg.lr * lr_factor(epoch, cfg.n_epochs, cfg.n_epochs_decay)
            perm = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
            perm = perm[: steps_per_epoch * cfg.batch_size][offset * cfg.batch_size:]
            loader = DataLoader(Subset(train_set, perm.tolist()), batch_size=cfg.batch_size, shuffle=False,
                                drop_last=True, num_workers=cfg.num_workers, pin_memory=device.type == "cuda")
            for batch in loader:
                x = batch["input"].to(device, non_blocking=True)
                y = batch["target"].to(device, non_blocking=True)
                losses: dict[str, torch.Tensor] = {}
                # --- generator
                set_requires_grad([D], False)
                fake = G(x)
                losses["G_gan"] = gan_loss(D(torch.cat([x, fake], 1)), True, cfg.gan_mode)
                losses["G_l1"] = F.l1_loss(fake, y) * cfg.lambda_l1
                if face_loss is not None:
                    views = [random_identity_view(fake) for _ in range(cfg.id_views)] or [fake]
                    terms = [face_loss(v, y) for v in views]
                    if cfg.lambda_face_id > 0:
                        losses["G_face_id"] = torch.stack([t[0] for t in terms]).mean() * cfg.lambda_face_id
                    if cfg.lambda_face_feat > 0:
                        losses["G_face_feat"] = torch.stack([t[1] for t in terms]).mean() * cfg.lambda_face_feat
                loss_G = sum(losses.values())
                opt_G.zero_grad(set_to_none=True)
                loss_G.backward()
                opt_G.step()
                # --- discriminator
                set_requires_grad([D], True)
                losses["D_real"] = gan_loss(D(torch.cat([x, y], 1)), True, cfg.gan_mode)
                losses["D_fake"] = gan_loss(D(torch.cat([x, fake.detach()], 1)), False, cfg.gan_mode)
                loss_D = 0.5 * (losses["D_real"] + losses["D_fake"])
                opt_D.zero_grad(set_to_none=True)
                loss_D.backward()
                opt_D.step()

                loop.record({k: float(v.detach()) for k, v in losses.items()})
                if loop.due(cfg.log_every, at_stop=False):
                    window, _, seconds = loop.take_window()
                    row = window_row(window, loop.step, steps_per_epoch, opt_G.param_groups[0]["lr"], seconds, "G_l1")
                    log.log(**row)
                    loop.postfix(L1=row["G_l1"], D=round(row["D_real"] + row["D_fake"], 3))
                if loop.due(cfg.sample_every, at_epoch_end=True):
                    session.save_grid(loop.step, sample_grid(G, test_set, cfg.n_samples, device))
                if loop.due(cfg.eval_every, at_epoch_end=not cfg.eval_every):
                    metrics = run_eval(loop.step)
                if loop.due(cfg.save_every, at_epoch_end=True):
                    save(loop.step, final=loop.last, metrics=metrics)
                if loop.stop:
                    break
    return run

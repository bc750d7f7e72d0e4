"""Train mini-Xception on FER2013 (facial-emotion recognition, 7 classes).

Recipe (chosen for a CPU budget; the paper's Keras setup differs in details): 48x48 grayscale in
[-1, 1]; a stratified validation split taken from FER2013 train; batch-level GPU/CPU-friendly
augmentation (horizontal flip, random affine: rotation, scale, translation; brightness and
contrast jitter; random erasing); AdamW with a one-cycle learning-rate schedule; label smoothing;
the checkpoint with the best validation accuracy is kept and evaluated once on FER2013 test (single
pass, and test-time horizontal flip reported separately).

Optional, for the second generation of the shipped model:

- **Knowledge distillation** (Hinton, Vinyals, Dean 2015, arXiv:1503.02531): the loss mixes the
  hard-label cross-entropy with ``T^2 * KL(softmax(teacher / T) || softmax(student / T))``. The teacher
  is a faceforge mini-Xception checkpoint (``"default"``: the shipped one) whose logits are averaged
  over the augmented batch and its mirror image (a test-time-flip teacher, 1.6 points better than its
  single pass on FER2013 test); distilling a network into one of the same architecture is the
  "born-again networks" setting (Furlanello et al., ICML 2018).
- **Weight EMA** (Polyak averaging; the evaluation copy of e.g. timm's ``ModelEmaV2``): an exponential
  moving average of the weights, with BatchNorm statistics copied, is what is validated and kept.
- ``init_from``: start from a checkpoint instead of random weights (fine-tuning).
- **Stochastic weight averaging** (Izmailov, Podoprikhin, Garipov, Vetrov, Wilson, UAI 2018,
  arXiv:1803.05407, "Averaging Weights Leads to Wider Optima"): the last ``swa_epochs`` epochs run at a
  constant learning rate and the weights at each of their ends are averaged (``torch.optim.swa_utils``
  ``AveragedModel``); the average's BatchNorm statistics are recomputed on the (unaugmented) train images
  (``update_bn``) and it is validated after every SWA epoch, so the best-on-validation choice covers the
  number of averaged epochs too.
- **Quantization-aware fine-tune** (Jacob et al., CVPR 2018, arXiv:1712.05877; Krishnamoorthi 2018,
  arXiv:1806.08342): the last ``qat_epochs`` epochs, at a constant learning rate with BatchNorm statistics
  frozen, add ``qat_weight * CE(int8 simulation, float top-1)`` (:func:`agreement_loss`) to the loss, where the simulation
  (:class:`faceforge.models.mini_xception_qat.FakeQuantMiniXception`) runs the same weights through the
  full-integer int8 quantization of the LiteRT export with straight-through gradients. The float model
  is trained (and exported as usual) to agree with its own int8 version; the last QAT epoch is kept and
  the validation split's simulated int8 agreement is logged (``val_int8_agree``).
- Resumable: ``last.pt`` (a faceforge checkpoint, arch :data:`STATE_ARCH`) holds model, EMA, optimizer,
  schedule and RNG states after every epoch.

Model source: Arriaga, Ploeger, Valdenegro 2017, arXiv:1710.07557.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from faceforge.checkpoints import save_checkpoint
from faceforge.emotion import class_probabilities
from faceforge.models import create_model, get_spec
from faceforge.models.mini_xception import FER2013_LABELS
from faceforge.models.mini_xception_qat import FakeQuantMiniXception
from faceforge.data.fer2013 import load_fer2013
from training.configs import EmotionConfig
from training.loop import EpochLoop, TrainingRun, family_logger
from training.runs import restore_training_state, write_json

log = family_logger("emotion")


STATE_ARCH = "emotion_training_state"
"""``arch`` of ``last.pt``: ``nn.ModuleDict {model, ema}`` and, in ``meta``, the optimizer, schedule and
RNG states, the epoch and the best validation accuracy so far."""


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)`` with ``fraction`` of each class in ``val`` (at least one per class; none at all
    when ``fraction`` is 0)."""
    if fraction == 0:
        return np.arange(len(labels)), np.zeros(0, np.int64)
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        val.append(idx[: max(1, round(fraction * len(idx)))])
    val = np.sort(np.concatenate(val))
    train = np.setdiff1d(np.arange(len(labels)), val)
    return train, val


def to_input(images_u8: torch.Tensor) -> torch.Tensor:
    """(N, 48, 48) uint8 -> (N, 1, 48, 48) float32 in [-1, 1], channels-last memory."""
    x = images_u8.unsqueeze(1).float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last)


def augment(x: torch.Tensor, cfg: EmotionConfig, gen: torch.Generator) -> torch.Tensor:
    """Random flip + affine + photometric jitter + random erasing on a batch.

    Args:
        x: (N, 1, H, W) float32 in [-1, 1].

    Returns:
        Augmented batch, same shape, clamped to [-1, 1].
    """
    n = x.shape[0]
    u = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    angle = (u(n) * 2 - 1) * math.radians(cfg.rotate_deg)
    scale = 1 + (u(n) * 2 - 1) * cfg.scale
    flip = torch.where(u(n) < 0.5, -1.0, 1.0)
    shift = (u(n, 2) * 2 - 1) * cfg.translate * 2  # affine_grid coordinates span [-1, 1]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                         torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    contrast = 1 + (u(n, 1, 1, 1) * 2 - 1) * 0.3
    brightness = (u(n, 1, 1, 1) * 2 - 1) * 0.2
    x = x * contrast + brightness
    # Random erasing (Zhong et al. 2020): one box of 2-20 % of the area, filled with noise.
    h, w = x.shape[-2:]
    for i in torch.nonzero(u(n) < cfg.erase_prob).flatten().tolist():
        area = (0.02 + 0.18 * u(1).item()) * h * w
        aspect = math.exp((u(1).item() * 2 - 1) * math.log(3))
        eh, ew = min(h, int(round(math.sqrt(area * aspect)))), min(w, int(round(math.sqrt(area / aspect))))
        y0, x0 = int(u(1).item() * (h - eh + 1)), int(u(1).item() * (w - ew + 1))
        x[i, :, y0:y0 + eh, x0:x0 + ew] = torch.rand(1, eh, ew, generator=gen) * 2 - 1
    return x.clamp_(-1, 1).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images_u8: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Logits (N, num_classes) float32 of ``model`` on (N, 48, 48) uint8 images, no augmentation."""
    model.eval()
    out = [model(to_input(torch.from_numpy(images_u8[i:i + batch_size]))).float()
           for i in range(0, len(images_u8), batch_size)]
    return torch.cat(out).numpy()


def classification_report(labels: np.ndarray, pred: np.ndarray, names=FER2013_LABELS) -> dict:
    """Overall and per-class accuracy (recall) plus the confusion matrix (rows: true, cols: predicted)."""
    k = len(names)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (labels, pred), 1)
    per_class = {n: float(cm[i, i] / max(cm[i].sum(), 1)) for i, n in enumerate(names)}
    return {"accuracy": float((labels == pred).mean()), "n": int(len(labels)), "per_class": per_class,
            "confusion": cm.tolist(), "labels": list(names)}


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, cfg: EmotionConfig) -> torch.Tensor:
    """Hinton et al. 2015 (arXiv:1503.02531, section 2) distillation loss.

    Args:
        student, teacher: (N, C) float32 logits.
        labels: (N,) int64 class ids.

    Returns:
        Scalar ``(1 - a) * CE(student, labels) + a * T^2 * KL(p_T(teacher) || p_T(student))`` with
        ``a = cfg.kd_alpha``, ``T = cfg.kd_temperature`` and label smoothing on the hard term.
    """
    t = cfg.kd_temperature
    hard = F.cross_entropy(student, labels, label_smoothing=cfg.label_smoothing)
    soft = F.kl_div(F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1), reduction="batchmean",
                    log_target=True) * t * t
    return (1 - cfg.kd_alpha) * hard + cfg.kd_alpha * soft


class WeightEMA:
    """Exponential moving average of a model's floating-point weights (Polyak averaging).

    ``update`` after each optimizer step: ``ema = d * ema + (1 - d) * w`` for parameters; buffers
    (BatchNorm running statistics, counters) are copied. ``module`` is the averaged copy, in eval use.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        import copy

        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for e, w in zip(self.module.parameters(), model.parameters()):
            e.lerp_(w, 1 - self.decay)
        for e, b in zip(self.module.buffers(), model.buffers()):
            e.copy_(b)


def agreement_loss(simulated: torch.Tensor, float_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the int8 simulation's logits against the float model's own top-1 class.

    A differentiable stand-in for top-1 agreement: near-ties, the faces whose class int8 rounding flips,
    get the largest gradients (a KL term between the two distributions is nearly zero there, and was
    measured not to raise agreement). Gradients flow through ``simulated`` only.

    Args:
        simulated: (N, C) float32 logits of :class:`FakeQuantMiniXception`.
        float_logits: (N, C) float32 logits of the float model (detached here).

    Returns:
        Scalar mean cross-entropy.
    """
    return F.cross_entropy(simulated, float_logits.detach().argmax(1))


@torch.no_grad()
def update_bn_statistics(swa: torch.optim.swa_utils.AveragedModel, images_u8: torch.Tensor,
                         batch_size: int = 512) -> None:
    """Recompute the BatchNorm running statistics of an SWA average (``torch.optim.swa_utils.update_bn``:
    statistics reset, then a cumulative average over one pass) on unaugmented images, as the model sees
    them at inference.

    Args:
        swa: the averaged model (its ``module`` is updated in place and left in eval mode).
        images_u8: (N, 48, 48) uint8 training images.
    """
    batches = (to_input(images_u8[i:i + batch_size]) for i in range(0, len(images_u8), batch_size))
    torch.optim.swa_utils.update_bn(batches, swa)
    swa.eval()


def evaluate_test(model: torch.nn.Module, root: Path | None) -> dict:
    """FER2013 test report of ``model``: single pass, plus ``flip_tta_accuracy`` (faceforge's one flip
    test-time augmentation, :func:`faceforge.emotion.class_probabilities`: probabilities of the image and
    its mirror averaged), reported separately because it doubles the on-device cost."""
    test_images, test_labels = load_fer2013("test", root)
    logits = predict_logits(model, test_images)
    report = classification_report(test_labels, logits.argmax(1))
    probs = class_probabilities(lambda faces: predict_logits(model, np.ascontiguousarray(faces)), test_images,
                                flip_tta=True)
    report["flip_tta_accuracy"] = float((probs.argmax(1).numpy() == test_labels).mean())
    return report


def train(cfg: EmotionConfig, resume: str | Path | None = None) -> Path:
    """Train, keep the best-on-validation checkpoint, evaluate it on FER2013 test.

    Args:
        cfg: the configuration (ignored but for ``threads`` and ``time_limit_min`` when resuming: the run's own
            is used). With ``time_limit_min`` the run stops after the first epoch that ends past the limit, without
            the test evaluation; resume it to finish.
        resume: a run folder with ``last.pt`` to continue.

    Returns:
        The run folder (``config.json``, ``metrics.csv``, ``last.pt``, ``best.pt``, ``test_report.json``).

    Raises:
        FileNotFoundError: FER2013 is not under the data root, or ``resume`` has no ``last.pt``.
    """
    session = TrainingRun("emotion", cfg, ["threads", "time_limit_min"], resume=resume)  # the trainer skeleton (training.loop)
    cfg = session.cfg
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    root = Path(cfg.data_root) if cfg.data_root else None
    command = session.command
    run = session.create()

    images, labels = load_fer2013("train", root, limit=cfg.limit, seed=cfg.seed)
    tr, va = stratified_split(labels, cfg.val_fraction, cfg.seed)
    x_tr, y_tr = torch.from_numpy(images[tr]), torch.from_numpy(labels[tr])
    log.info("run %s: %d train / %d val images", run, len(tr), len(va))
    with session.lock():
        return _fit(session, cfg, run, command, root, images, labels, tr, va, x_tr, y_tr)


def _fit(session: TrainingRun, cfg: EmotionConfig, run: Path, command: str, root: Path | None, images: np.ndarray,
         labels: np.ndarray, tr: np.ndarray, va: np.ndarray, x_tr: torch.Tensor, y_tr: torch.Tensor) -> Path:
    """The epochs, the best checkpoint's test evaluation and its provenance (under the run's lock)."""

    spec = get_spec("mini_xception")
    model = create_model("mini_xception", weights=cfg.init_from)  # None: random initialisation
    model = model.to(memory_format=torch.channels_last)
    teacher = create_model("mini_xception", weights=cfg.teacher).eval().to(memory_format=torch.channels_last) if cfg.teacher else None
    ema = WeightEMA(model, cfg.ema_decay) if cfg.ema_decay else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if not 0 <= cfg.swa_epochs + cfg.qat_epochs <= cfg.epochs:
        raise ValueError(f"swa_epochs + qat_epochs must be in [0, epochs={cfg.epochs}], got "
                         f"{cfg.swa_epochs} + {cfg.qat_epochs}")
    if cfg.qat_epochs and (cfg.swa_epochs or cfg.ema_decay):
        raise ValueError("qat_epochs cannot be combined with swa_epochs or ema_decay (QAT keeps its last epoch; "
                         "average first, then fine-tune from the average with --init-from)")
    main_epochs = cfg.epochs - cfg.swa_epochs - cfg.qat_epochs
    fq = FakeQuantMiniXception(model) if cfg.qat_epochs else None
    swa = torch.optim.swa_utils.AveragedModel(model) if cfg.swa_epochs else None
    # Full batches only (the remainder is reshuffled into the next epoch): besides keeping BatchNorm
    # statistics stable, torch 2.13's oneDNN channels-last backward was seen to crash
    # ("double free or corruption") on some odd batch sizes such as 109.
    steps_per_epoch = len(tr) // cfg.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=main_epochs * steps_per_epoch,
                                                pct_start=0.15) if main_epochs else None
    gen = torch.Generator().manual_seed(cfg.seed)
    start, best_acc, best_epoch = 0, -1.0, -1
    nets = torch.nn.ModuleDict({"model": model, **({"ema": ema.module} if ema is not None else {}),
                                **({"swa": swa} if swa is not None else {}),
                                **({"qat_ranges": fq.ranges} if fq is not None else {})})
    if (run / "last.pt").is_file():
        state = restore_training_state(run, nets, {"opt": opt}, STATE_ARCH)
        if sched is not None:
            sched.load_state_dict(state["sched"])
        gen.set_state(state["gen"])
        start, best_acc, best_epoch = state["epoch"], state["best_acc"], state["best_epoch"]
        log.info("resumed after epoch %d (best val %.4f at epoch %d)", start, best_acc, best_epoch)
    loop = EpochLoop(session, cfg.epochs, start, cfg.time_limit_min, metrics=session.metrics(append=start > 0))
    for epoch in loop:
        model.train()
        in_swa = main_epochs <= epoch < main_epochs + cfg.swa_epochs
        in_qat = epoch >= cfg.epochs - cfg.qat_epochs if cfg.qat_epochs else False
        if in_swa:  # constant learning rate (Izmailov et al. 2018, section 3.2)
            for group in opt.param_groups:
                group["lr"] = cfg.swa_lr if cfg.swa_lr is not None else cfg.lr / 4
        if in_qat:
            for group in opt.param_groups:
                group["lr"] = cfg.qat_lr if cfg.qat_lr is not None else cfg.lr / 10
            fq.train()  # observes activation ranges ...
            model.eval()  # ... while BatchNorm statistics stay frozen (float and simulated pass alike)
        perm = torch.randperm(len(tr), generator=gen)
        t0, loss_sum, correct = time.time(), 0.0, 0
        for s in loop.steps(steps_per_epoch, epoch):
            idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            x, y = augment(to_input(x_tr[idx]), cfg, gen), y_tr[idx]
            logits = model(x)
            if teacher is not None:
                with torch.no_grad():
                    t_logits = 0.5 * (teacher(x) + teacher(torch.flip(x, dims=[3])))
                loss = distillation_loss(logits, t_logits, y, cfg)
            else:
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            if in_qat:
                loss = loss + cfg.qat_weight * agreement_loss(fq(x), logits)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if not (in_swa or in_qat):
                sched.step()
            if ema is not None:
                ema.update(model)
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
        kept = ema.module if ema is not None else model
        if in_swa:
            swa.update_parameters(model)
            update_bn_statistics(swa, x_tr)
            kept = swa.module
        if len(va):
            val_pred = predict_logits(kept, images[va]).argmax(1)
            val_acc = float((val_pred == labels[va]).mean())
        else:  # no validation split: every epoch replaces the kept one
            val_pred, val_acc = None, float("nan")
        extra = {}
        if fq is not None:
            extra["val_int8_agree"] = round(float((predict_logits(fq, images[va]).argmax(1) == val_pred).mean()), 4) \
                if in_qat and len(va) else ""
        row = dict(epoch=epoch + 1, train_loss=round(loss_sum / (steps_per_epoch * cfg.batch_size), 4),
                   train_acc=round(correct / (steps_per_epoch * cfg.batch_size), 4),
                   val_acc=round(val_acc, 4) if len(va) else "",
                   lr=f"{opt.param_groups[0]['lr']:.2e}", seconds=round(time.time() - t0, 1), **extra)
        loop.log_row(**row)
        if val_acc > best_acc or in_qat or not len(va):  # QAT or no validation split: the last epoch is kept
            best_acc, best_epoch = val_acc, epoch + 1
            save_checkpoint(run / "best.pt", kept.to(memory_format=torch.contiguous_format), "mini_xception",
                            spec.kwargs, {"epoch": epoch + 1, "val_acc": val_acc})
            kept.to(memory_format=torch.channels_last)
        save_checkpoint(run / "last.pt", nets, STATE_ARCH, spec.kwargs,
                        {"opt": opt.state_dict(), "sched": sched.state_dict() if sched is not None else None, "gen": gen.get_state(),
                         "rng": torch.get_rng_state(), "epoch": epoch + 1, "best_acc": best_acc,
                         "best_epoch": best_epoch})
    if loop.stopped:  # the time limit passed with epochs left: --resume to finish (and evaluate)
        return run

    # Evaluate the best checkpoint once on the held-out test split.
    best = create_model("mini_xception", weights=run / "best.pt").to(memory_format=torch.channels_last)
    report = evaluate_test(best, root)
    val_figure = round(best_acc, 4) if len(va) else None  # None: trained without a validation split
    report.update(best_epoch=best_epoch, val_acc=val_figure)
    if fq is not None:  # the kept model is the last QAT epoch's, i.e. the simulation's weights
        test_images, _ = load_fer2013("test", root)
        report["int8_sim_agreement"] = float((predict_logits(fq, test_images).argmax(1)
                                              == predict_logits(best, test_images).argmax(1)).mean())
    write_json(run / "test_report.json", report)
    recipe = []
    if cfg.init_from:
        recipe.append(f"fine-tuned from {cfg.init_from}")
    if cfg.teacher:
        recipe.append(f"distilled from {cfg.teacher} (flip-averaged logits, alpha {cfg.kd_alpha}, T {cfg.kd_temperature})")
    if cfg.ema_decay:
        recipe.append(f"weight EMA {cfg.ema_decay}")
    if cfg.swa_epochs:
        recipe.append(f"SWA over the last {cfg.swa_epochs} epochs at lr "
                      f"{cfg.swa_lr if cfg.swa_lr is not None else cfg.lr / 4:g} (BatchNorm recomputed)")
    if cfg.qat_epochs:
        recipe.append(f"quantization-aware fine-tune, last {cfg.qat_epochs} epochs at lr "
                      f"{cfg.qat_lr if cfg.qat_lr is not None else cfg.lr / 10:g}, agreement weight {cfg.qat_weight:g} "
                      "(simulated full-integer int8, frozen BatchNorm)")
    meta = {
        "task": "emotion", "data": "FER2013 train (Kaggle image-folder release), " + (
            f"{len(tr)} train / {len(va)} val (stratified, seed {cfg.seed})" if len(va) else
            f"all {len(tr)} train images, no validation split (last epoch kept)") + "; test = FER2013 test",
        "command": command, "recipe": "; ".join(recipe) or "from scratch", "epochs": cfg.epochs,
        "best_epoch": best_epoch, "seed": cfg.seed, "config": asdict(cfg),
        "metrics": {"val_acc": val_figure, "test_acc": round(report["accuracy"], 4),
                    "test_acc_flip_tta": round(report["flip_tta_accuracy"], 4),
                    "test_per_class": {k: round(v, 4) for k, v in report["per_class"].items()}},
        "params": sum(p.numel() for p in best.parameters()),
        "version": f"{time.strftime('%Y.%m.%d')}-run{run.name}",
    }
    save_checkpoint(run / "best.pt", best.to(memory_format=torch.contiguous_format), "mini_xception",
                    spec.kwargs, meta)
    log.info(json.dumps({"run": str(run), "val_acc": val_figure, "test_acc": report["accuracy"],
                         "test_acc_flip_tta": report["flip_tta_accuracy"], "per_class": report["per_class"]},
                        indent=1))
    return run

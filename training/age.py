"""Train the age estimator (:class:`~faceforge.models.agenet.AgeNet`) on UTKFace.

Data: UTKFace (Zhang, Song, Qi, CVPR 2017), ages from the file names (:func:`faceforge.data.utkface.scan_utkface`;
malformed names are skipped and counted), ages above 100 clipped to 100. Faces:

- ``faces="chip"`` (default): the 200x200 "aligned & cropped" chips resized to ``size`` (area
  averaging). The ``utkface`` face template is the median framing of these very chips
  (:mod:`faceforge.faces.align`), so a chip is, up to its own small jitter (inter-quartile range
  0.03-0.04 of the side per keypoint), the crop :func:`~faceforge.faces.align.align_face` makes on that
  template; the jitter acts as a mild augmentation.
- ``faces="align"``: every chip re-detected with BlazeFace (short range) and aligned on the ``utkface``
  template at ``size``, exactly as the translator and the benchmark crop faces; chips without a
  detection are dropped and counted. Slower to prepare (one detection per image).

Split: a fixed seeded split of the (optionally ``limit``-ed) records into train / val / test
(``val_fraction``, ``test_fraction``, numpy ``default_rng(seed)``); the file names of each part are
written to ``split.json`` in the run folder. ``holdout`` folders (e.g. ``testA``/``testB`` of the
CycleGAN age split made by ``python -m training.unpaired utkface-age``) force the UTKFace files they
contain (matched by file name) into the test part, so the faces the translation benchmark measures were
never seen by the estimator.

Loss (``loss``):

- ``"dldl"`` (default): KL divergence from a Gaussian label distribution (sigma ``label_sigma`` years,
  discretized on the bins and renormalized) to the softmax, plus ``l1_weight`` x L1 between the
  expected age and the label (Gao et al., "Age Estimation Using Expectation of Label Distribution
  Learning", IJCAI 2018);
- ``"dex"``: cross-entropy on the one-year bin (Rothe, Timofte, Van Gool, "DEX", ICCVW 2015);
- ``"l1"``: L1 on the expected age only.

The prediction is always the expected value of the softmax (DEX). Recipe: AdamW, one-cycle learning
rate, batch-level augmentation (flip, small affine, brightness/contrast), the checkpoint with the lowest
validation MAE is kept and evaluated once on the test part.

Run folder ``runs/age/<NNN>/`` (:mod:`training.runs`): ``config.json``, ``split.json``, ``metrics.csv``
(per epoch: losses, train/val MAE, lr, seconds), ``last.pt`` (training state after the latest epoch),
``best.pt`` (faceforge checkpoint of ``age_resnet`` with provenance and metrics in ``meta``) and
``test_report.json`` (MAE, CS(5), per age group, mean prediction of young and old faces).

Resumable: ``time_limit`` (minutes) ends a run after the epoch that passes it, leaving ``last.pt``;
``resume=<run folder>`` continues it with the stored configuration (same split, same schedule) until
``epochs`` are done, then evaluates. :func:`ship` writes the float16 copy that ships in the package
(``faceforge/weights/age_resnet_utkface.pt``) and its provenance JSON.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from faceforge.checkpoints import save_checkpoint
from faceforge.models import create_model, get_spec
from faceforge.models.agenet import expected_age
from training.configs import AgeConfig
from training.loop import EpochLoop, TrainingRun, family_logger
from training.runs import write_json

MODEL_NAME = "age_resnet"
AGE_GROUPS = ((0, 17), (18, 29), (30, 44), (45, 59), (60, None))
"""Inclusive age groups of the per-group MAE in ``test_report.json`` (18-29 and 60+ are the CycleGAN
domains)."""


log = family_logger("age")

RUNTIME_FIELDS = ("threads", "progress", "resume", "time_limit")
"""Fields a resumed run takes from the new invocation; all others come from the run's ``config.json``."""

STATE_ARCH = "age_training_state"
"""``arch`` of ``last.pt``: the network, AdamW's state, the epoch, the best validation MAE so far and the
RNG states, saved after every epoch so that a stopped run continues where it was."""


# --------------------------------------------------------------------------------------------------
# data


def split_records(names: Sequence[str], val_fraction: float, test_fraction: float, seed: int,
                  holdout: set[str] | frozenset[str] = frozenset()) -> dict[str, list[int]]:
    """Seeded train/val/test indices into ``names``; names in ``holdout`` always go to test.

    The remaining records are permuted by ``numpy.random.default_rng(seed)``; ``test`` is topped up to
    ``round(test_fraction * n)`` records (holdout included), ``val`` gets ``round(val_fraction * n)``.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, sorted index lists, disjoint, covering all.

    Raises:
        ValueError: fractions outside [0, 1) or summing to >= 1.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"need 0 <= val, test fractions and val + test < 1, got {val_fraction}, {test_fraction}")
    n = len(names)
    forced = [i for i, name in enumerate(names) if name in holdout]
    rest = np.setdiff1d(np.arange(n), forced)
    rest = rest[np.random.default_rng(seed).permutation(len(rest))]
    n_test = max(0, int(round(test_fraction * n)) - len(forced))
    n_val = int(round(val_fraction * n))
    test = np.concatenate([np.asarray(forced, np.int64), rest[:n_test]])
    val = rest[n_test:n_test + n_val]
    train = rest[n_test + n_val:]
    return {"train": sorted(map(int, train)), "val": sorted(map(int, val)), "test": sorted(map(int, test))}


def load_faces(paths: Sequence[Path], size: int, faces: str = "chip", detector: Any = None,
               progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read face images as model-sized uint8 RGB crops.

    Args:
        paths: UTKFace chips.
        size: output side.
        faces: ``"chip"`` (resize) or ``"align"`` (BlazeFace + ``utkface`` template).
        detector: detector for ``"align"``; default short-range BlazeFace, 1 thread.
        progress: tqdm bar.

    Returns:
        ``(images, kept)``: uint8 ``(M, size, size, 3)`` and the int64 indices into ``paths`` they come
        from (``M < len(paths)`` only with ``"align"``, for chips without a detected face).

    Raises:
        ValueError: unknown ``faces`` mode.
    """
    from faceforge.imaging import load_image
    from faceforge.data.images import resize_square

    if faces not in ("chip", "align"):
        raise ValueError(f"faces must be 'chip' or 'align', got {faces!r}")
    if faces == "align":
        from faceforge.faces.align import align_face
        from faceforge.faces.detect import FaceDetector
        detector = detector or FaceDetector("short", num_threads=1)
    out = np.empty((len(paths), size, size, 3), np.uint8)
    kept: list[int] = []
    for i, path in enumerate(tqdm(paths, disable=not progress, desc="faces", mininterval=5)):
        rgb = load_image(path)
        if faces == "chip":
            crop = resize_square(rgb, size)
        else:
            found = detector.detect(rgb)
            if not found:
                continue
            crop = align_face(rgb, found[0], size, "utkface").image
        out[len(kept)] = crop
        kept.append(i)
    return out[:len(kept)], np.asarray(kept, np.int64)


def to_input(images_u8: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 ``(N, S, S, 3)`` RGB -> float32 ``(N, 3, S, S)`` in [-1, 1] (``p / 127.5 - 1``)."""
    x = torch.as_tensor(np.asarray(images_u8)) if not isinstance(images_u8, torch.Tensor) else images_u8
    return x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0).contiguous()


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Batch augmentation: flip, rotation +-8 deg, scale +-6 %, shift +-4 %, brightness/contrast +-15 %.

    Args:
        x: ``(N, 3, S, S)`` float32 in [-1, 1].

    Returns:
        Same shape, clamped to [-1, 1].
    """
    n = x.shape[0]
    u = lambda *s: torch.rand(*s, generator=gen) * 2 - 1  # noqa: E731  uniform in [-1, 1)
    angle, scale = u(n) * math.radians(8), 1 + u(n) * 0.06
    flip = torch.where(u(n) < 0, -1.0, 1.0)
    shift = u(n, 2) * 0.04 * 2  # affine_grid coordinates span [-1, 1]
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                         torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    x = x * (1 + u(n, 1, 1, 1) * 0.15) + u(n, 1, 1, 1) * 0.15
    return x.clamp_(-1, 1)


def age_loss(logits: torch.Tensor, ages: torch.Tensor, kind: str = "dldl", sigma: float = 2.0,
             l1_weight: float = 1.0) -> torch.Tensor:
    """Training loss of the DEX head (see the module docstring).

    Args:
        logits: ``(N, K)`` bin logits.
        ages: ``(N,)`` float ages in years, within ``[0, K - 1]``.
        kind: ``"dldl"``, ``"dex"`` or ``"l1"``.
        sigma: Gaussian label-distribution sigma (``dldl``).
        l1_weight: weight of the L1 term (``dldl``).

    Returns:
        Scalar loss.

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind == "l1":
        return F.l1_loss(expected_age(logits), ages)
    if kind == "dex":
        return F.cross_entropy(logits, ages.round().long().clamp(0, logits.shape[1] - 1))
    if kind == "dldl":
        bins = torch.arange(logits.shape[1], dtype=torch.float32, device=logits.device)
        target = torch.exp(-0.5 * ((bins[None, :] - ages[:, None]) / sigma) ** 2)
        target = target / target.sum(1, keepdim=True)
        kl = F.kl_div(F.log_softmax(logits.float(), 1), target, reduction="batchmean")
        return kl + l1_weight * F.l1_loss(expected_age(logits), ages)
    raise ValueError(f"loss must be 'dldl', 'dex' or 'l1', got {kind!r}")


@torch.no_grad()
def predict_ages(model: torch.nn.Module, images_u8: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Expected ages (N,) float32 of ``model`` (eval mode) on uint8 ``(N, S, S, 3)`` crops."""
    model.eval()
    out = [expected_age(model(to_input(images_u8[i:i + batch_size]))) for i in range(0, len(images_u8), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def _group_name(lo: int, hi: int | None) -> str:
    return f"{lo}+" if hi is None else f"{lo}-{hi}"


def age_report(ages: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """MAE, CS(5) (fraction within 5 years), mean signed error, and the same per :data:`AGE_GROUPS`
    with each group's mean prediction."""
    ages, pred = np.asarray(ages, np.float64), np.asarray(pred, np.float64)
    err = pred - ages

    def stats(mask: np.ndarray) -> dict[str, Any]:
        if not mask.any():
            return {"n": 0}
        e = err[mask]
        return {"n": int(mask.sum()), "mae": round(float(np.abs(e).mean()), 3),
                "cs5": round(float((np.abs(e) <= 5).mean()), 4), "bias": round(float(e.mean()), 3),
                "mean_age": round(float(ages[mask].mean()), 2), "mean_pred": round(float(pred[mask].mean()), 2)}

    groups = {}
    for lo, hi in AGE_GROUPS:
        mask = (ages >= lo) & (ages <= (hi if hi is not None else np.inf))
        groups[_group_name(lo, hi)] = stats(mask)
    return {**stats(np.ones(len(ages), bool)), "groups": groups}


# --------------------------------------------------------------------------------------------------
# training


def _holdout_names(folders: Sequence[str]) -> set[str]:
    names: set[str] = set()
    for folder in folders:
        path = Path(folder)
        if not path.is_dir():
            raise FileNotFoundError(f"holdout folder not found: {path}")
        names.update(p.name for p in path.iterdir() if p.is_file())
    return names


def _model_kwargs(cfg: AgeConfig) -> dict[str, Any]:
    kwargs = dict(get_spec(MODEL_NAME).kwargs)
    if cfg.widths:
        if len(cfg.widths) != len(kwargs["blocks"]) or min(cfg.widths) < 1:
            raise ValueError(f"widths must be {len(kwargs['blocks'])} positive integers, got {cfg.widths}")
        kwargs["widths"] = tuple(int(w) for w in cfg.widths)
    return kwargs


def _save_state(path: Path, model: torch.nn.Module, kwargs: dict[str, Any], opt: torch.optim.Optimizer,
                gen: torch.Generator, epoch: int, best_mae: float, best_epoch: int) -> None:
    """``last.pt``: a faceforge checkpoint (arch :data:`STATE_ARCH`) holding what a resume needs."""
    save_checkpoint(path, model, STATE_ARCH, kwargs,
                    {"epoch": epoch, "best_mae": best_mae, "best_epoch": best_epoch, "opt": opt.state_dict(),
                     "rng": torch.get_rng_state(), "gen": gen.get_state()})


def train(cfg: AgeConfig) -> Path:
    """Train, keep the lowest-validation-MAE checkpoint, evaluate it on the test part.

    With ``cfg.resume`` (a run folder holding ``last.pt``), continue that run with its stored
    configuration (only :data:`RUNTIME_FIELDS` come from ``cfg``). With ``cfg.time_limit`` the run stops
    after the first epoch that ends past the limit, without evaluating; resume it to finish.

    Returns:
        The run folder (``config.json``, ``split.json``, ``metrics.csv``, ``last.pt``, ``best.pt`` and, once
        all epochs are done, ``test_report.json``).

    Raises:
        FileNotFoundError: the UTKFace folder (or a holdout folder, or the resume folder's state) is absent.
        ValueError: bad configuration, or too few images for one batch.
        CheckpointError: a ``last.pt`` that is not an age training state.
        RuntimeError: another live process is training the resume folder.
    """
    from faceforge.data.utkface import scan_utkface, utkface_dir

    session = TrainingRun("age", cfg, RUNTIME_FIELDS)  # the trainer skeleton: resume, run folder, lock, log
    cfg, resume_run = session.cfg, session.run
    if cfg.loss not in ("dldl", "dex", "l1"):
        raise ValueError(f"loss must be 'dldl', 'dex' or 'l1', got {cfg.loss!r}")
    if cfg.size < 32 or cfg.size % 4:
        raise ValueError(f"size must be a multiple of 4 >= 32 (64 or 96), got {cfg.size}")
    kwargs = _model_kwargs(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t_start = time.time()
    src = Path(cfg.data) if cfg.data else utkface_dir()
    records, malformed = scan_utkface(src)
    records = [r for r in records if r.age >= cfg.min_age]
    holdout = _holdout_names(cfg.holdout)
    if cfg.limit is not None and cfg.limit < len(records):
        pick = np.sort(np.random.default_rng(cfg.seed).choice(len(records), cfg.limit, replace=False))
        records = [records[i] for i in pick]
    num_bins = kwargs["num_bins"]

    images, kept = load_faces([r.path for r in records], cfg.size, cfg.faces, progress=cfg.progress)
    no_face = [records[i].path.name for i in sorted(set(range(len(records))) - set(kept.tolist()))]
    records = [records[i] for i in kept]
    names = [r.path.name for r in records]
    ages = np.asarray([min(r.age, num_bins - 1) for r in records], np.float32)
    parts = split_records(names, cfg.val_fraction, cfg.test_fraction, cfg.seed, holdout)
    tr, va, te = (np.asarray(parts[k], np.int64) for k in ("train", "val", "test"))
    if len(tr) < cfg.batch_size or len(va) == 0 or len(te) == 0:
        raise ValueError(f"{len(tr)} train / {len(va)} val / {len(te)} test images: need at least one batch "
                         f"({cfg.batch_size}) to train and one image each to validate and test")
    prep_s = time.time() - t_start

    command = session.command
    if resume_run is None:
        run = session.create({**asdict(cfg), "data_resolved": str(src.resolve()), "records": len(records),
                              "malformed": len(malformed), "no_face": len(no_face), "ages_clipped_to": num_bins - 1,
                              "prepare_seconds": round(prep_s, 1)})
        write_json(run / "split.json", {
            "source": str(src.resolve()), "seed": cfg.seed, "val_fraction": cfg.val_fraction,
            "test_fraction": cfg.test_fraction, "limit": cfg.limit, "faces": cfg.faces,
            "holdout_folders": [str(Path(h).resolve()) for h in cfg.holdout],
            "holdout_in_test": sum(n in holdout for n in names),
            "counts": {k: len(v) for k, v in parts.items()}, "no_face": no_face,
            **{k: [names[i] for i in v] for k, v in parts.items()}})
    else:
        run = resume_run
        stored = json.loads((run / "split.json").read_text())
        if any(stored.get(k) != [names[i] for i in v] for k, v in parts.items()):
            raise ValueError(f"{run}: the data no longer gives the stored split (split.json); cannot resume")
    log.info("run %s: %d train / %d val / %d test faces (%s, %dpx; prepared in %.1f s)", run, len(tr), len(va),
             len(te), cfg.faces, cfg.size, prep_s)

    with session.lock():
        return _fit(session, cfg, run, kwargs, images, ages, tr, va, te, src, command, resume_run is not None, t_start)


def _fit(session: TrainingRun, cfg: AgeConfig, run: Path, kwargs: dict[str, Any], images: np.ndarray, ages: np.ndarray,
         tr: np.ndarray, va: np.ndarray, te: np.ndarray, src: Path, command: str, resumed: bool, t_start: float) -> Path:
    import warnings

    from faceforge.checkpoints import load_checkpoint
    from faceforge.errors import CheckpointError

    model = create_model(MODEL_NAME, **kwargs)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(tr) // cfg.batch_size  # full batches only (stable BatchNorm statistics)
    total_steps = cfg.epochs * steps_per_epoch
    if total_steps >= 4:  # one-cycle needs >= 1 step in each phase; 20 % warm-up
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total_steps,
                                                    pct_start=max(0.2, 2.0 / total_steps))
    else:  # a handful of smoke-run steps: constant learning rate
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    best_mae, best_epoch, start_epoch = math.inf, -1, 0
    if resumed:
        state = load_checkpoint(run / "last.pt", arch=STATE_ARCH)
        try:
            model.load_state_dict(state["state_dict"])
        except RuntimeError as exc:
            raise CheckpointError(f"{run / 'last.pt'} does not fit the configured network: {exc}") from None
        meta = state["meta"]
        opt.load_state_dict(meta["opt"])
        torch.set_rng_state(meta["rng"])
        gen.set_state(meta["gen"])
        start_epoch, best_mae, best_epoch = int(meta["epoch"]), float(meta["best_mae"]), int(meta["best_epoch"])
        with warnings.catch_warnings():  # fast-forward the schedule (its state is not a plain tensor dict)
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(start_epoch * steps_per_epoch):
                sched.step()
        log.info("resumed %s after epoch %d (best val MAE %.3f at epoch %d)", run, start_epoch, best_mae, best_epoch)
    x_tr, y_tr = torch.from_numpy(images[tr]), torch.from_numpy(ages[tr])
    loop = EpochLoop(session, cfg.epochs, start_epoch, cfg.time_limit, cfg.progress,
                     session.metrics(append=resumed))
    for epoch in loop:
        model.train()
        perm = torch.randperm(len(tr), generator=gen)
        t0, loss_sum, abs_sum = time.time(), 0.0, 0.0
        for s in loop.steps(steps_per_epoch, epoch):
            idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            x, y = augment(to_input(x_tr[idx]), gen), y_tr[idx]
            logits = model(x)
            loss = age_loss(logits, y, cfg.loss, cfg.label_sigma, cfg.l1_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            abs_sum += (expected_age(logits.detach()) - y).abs().sum().item()
        val_mae = float(np.abs(predict_ages(model, images[va]) - ages[va]).mean())
        seen = steps_per_epoch * cfg.batch_size
        row = dict(epoch=epoch + 1, train_loss=round(loss_sum / seen, 4), train_mae=round(abs_sum / seen, 3),
                   val_mae=round(val_mae, 3), lr=f"{sched.get_last_lr()[0]:.2e}", seconds=round(time.time() - t0, 1))
        loop.log_row(**row)
        if val_mae < best_mae:
            best_mae, best_epoch = val_mae, epoch + 1
            save_checkpoint(run / "best.pt", model, MODEL_NAME, kwargs, {"epoch": epoch + 1, "val_mae": val_mae})
        _save_state(run / "last.pt", model, kwargs, opt, gen, epoch + 1, best_mae, best_epoch)
    if loop.stopped:  # the time limit passed with epochs left: resume to finish (and evaluate)
        return run

    best = create_model(MODEL_NAME, weights=run / "best.pt")
    report = age_report(ages[te], predict_ages(best, images[te]))
    report.update(best_epoch=best_epoch, val_mae=round(best_mae, 3), split="test", size=cfg.size, faces=cfg.faces)
    write_json(run / "test_report.json", report)
    meta = {
        "task": "age", "data": f"UTKFace ({src.resolve()}), {len(tr)} train / {len(va)} val / {len(te)} test "
        f"faces (seeded split {cfg.seed}, split.json in the run folder), faces={cfg.faces}, ages clipped to "
        f"{kwargs['num_bins'] - 1}", "command": command, "epochs": cfg.epochs, "best_epoch": best_epoch,
        "seed": cfg.seed, "input_size": cfg.size, "config": asdict(cfg),
        "metrics": {"val_mae": round(best_mae, 3), "test_mae": report["mae"], "test_cs5": report["cs5"],
                    "test_groups": report["groups"]},
        "params": sum(p.numel() for p in best.parameters()),
        "version": f"{time.strftime('%Y.%m.%d')}-run{run.name}",
    }
    save_checkpoint(run / "best.pt", best, MODEL_NAME, kwargs, meta)
    total_s = time.time() - t_start
    log.info(json.dumps({"run": str(run), "val_mae": round(best_mae, 3), "test_mae": report["mae"],
                         "test_cs5": report["cs5"], "seconds": round(total_s, 1)}))
    return run


def ship(run: str | Path, dest_dir: str | Path, note: str = "") -> Path:
    """Write a finished run's ``best.pt`` as the float16 file that ships (card ``age_resnet.utkface``)
    and its provenance JSON beside it.

    The JSON holds the command(s), data, epochs, metrics, ``training_minutes`` (sum of ``metrics.csv``
    seconds), the machine, the run folder's name (no absolute path) and the largest change float16
    rounding made to a weight (``storage.max_abs_weight_change``; the test MAE of the float16 file is
    measured by the caller, e.g. ``tests/test_age.py``).

    Args:
        run: a finished run folder (``best.pt``, ``test_report.json``, ``metrics.csv``).
        dest_dir: folder to write ``age_resnet_utkface.pt`` / ``.json`` to (e.g. ``faceforge/weights``).
        note: free text for the JSON (e.g. how the run was scheduled).

    Returns:
        The ``.pt`` written.

    Raises:
        FileNotFoundError: the run is not finished (no ``test_report.json``).
    """
    import csv
    import platform

    from faceforge.checkpoints import load_checkpoint, to_fp16_storage
    from faceforge.models import cards

    run = Path(run)
    if not (run / "test_report.json").is_file():
        raise FileNotFoundError(f"{run} is not a finished age run (no test_report.json); resume it first")
    card = cards.get_card("age_resnet.utkface")
    dest = Path(dest_dir) / card.file
    dest.parent.mkdir(parents=True, exist_ok=True)
    to_fp16_storage(run / "best.pt", dest)
    ckpt32, ckpt16 = load_checkpoint(run / "best.pt"), load_checkpoint(dest)
    change = max(float((a.float() - ckpt16["state_dict"][k].float()).abs().max())
                 for k, a in ckpt32["state_dict"].items() if torch.is_tensor(a) and a.is_floating_point())
    meta = dict(ckpt32["meta"])
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    record = {"file": card.file, "card": card.name, "arch": ckpt32["arch"], "model_config": ckpt32["config"],
              "run": f"{run.parent.name}/{run.name}", **{k: v for k, v in meta.items() if k != "config"},
              "training_config": meta.get("config"),
              "training_minutes": round(sum(float(r["seconds"]) for r in rows) / 60, 1),
              "val_mae_by_epoch": [float(r["val_mae"]) for r in rows],
              "test_report": json.loads((run / "test_report.json").read_text()),
              "machine": f"{platform.machine()} CPU, torch {torch.__version__}, "
                         f"{(meta.get('config') or {}).get('threads') or 'default'} threads",
              "storage": {"dtype": "float16", "bytes": dest.stat().st_size, "max_abs_weight_change": change},
              "note": note}
    if isinstance(record["training_config"], dict):  # no machine-specific paths in a shipped file
        record["training_config"] = {**record["training_config"], "runs_dir": "runs", "resume": None,
                                     "data": None if record["training_config"].get("data") is None else "utkface",
                                     "holdout": [f"{Path(h).parent.name}/{Path(h).name}"
                                                 for h in record["training_config"].get("holdout", [])]}
    src = src_dir_of(meta)
    if src:
        record["data"] = str(record["data"]).replace(src, Path(src).name)
    runs_root = str(run.resolve().parent.parent)  # <runs_dir>: a machine path, written as "runs"
    first = json.loads((run / "config.json").read_text()).get("command", "") if (run / "config.json").is_file() else ""
    def tidy(cmd: str) -> str:  # "age.py ..." is how `python -m training.age ...` names itself in sys.argv
        cmd = cmd.replace(runs_root, "runs")
        return "python -m training.age" + cmd[len("age.py"):] if cmd.startswith("age.py ") else cmd

    record["command"] = tidy(first or str(meta.get("command", "")))
    if first and meta.get("command") and meta["command"] != first:
        record["finished_by"] = tidy(str(meta["command"]))
    dest.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    return dest


def src_dir_of(meta: dict[str, Any]) -> str | None:
    """The UTKFace folder named in a checkpoint meta's ``data`` text (``"UTKFace (<folder>), ..."``), or None."""
    text = str(meta.get("data", ""))
    if text.startswith("UTKFace (") and ")" in text:
        return text[len("UTKFace ("):text.index(")")]
    return None


def _main() -> None:  # pragma: no cover - thin CLI
    import click

    @click.group()
    def cli() -> None:
        """Train (resumably) and ship the age estimator; `faceforge train age` is the plain entry point."""

    from training.options import config_from_options, config_options

    @cli.command("train")
    @config_options(AgeConfig)  # the options of faceforge train age (each default once, in AgeConfig)
    def train_cmd(**values) -> None:
        """Train age_resnet on UTKFace chips; resumable."""
        try:
            click.echo(f"run folder: {train(config_from_options(AgeConfig, values))}")
        except (FileNotFoundError, ValueError, RuntimeError) as exc:
            raise click.ClickException(str(exc)) from None

    @cli.command("ship")
    @click.argument("run", type=click.Path(file_okay=False, exists=True))
    @click.option("--dest", type=click.Path(file_okay=False), default="faceforge/weights", show_default=True)
    @click.option("--note", default="")
    def ship_cmd(run, dest, note) -> None:
        """Write RUN's best.pt as float16 + provenance JSON into DEST."""
        click.echo(str(ship(run, dest, note)))

    cli()


if __name__ == "__main__":
    _main()

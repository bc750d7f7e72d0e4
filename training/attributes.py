"""Train :class:`faceforge.editing.AttributeNet`: age and gender of UTKFace faces at the generator's size.

Labels come from UTKFace's file names (``age_gender_race_datetime.jpg.chip.jpg``, Zhang, Song, Qi,
CVPR 2017; :func:`faceforge.data.utkface.scan_utkface`); images are the same centre-square, area-resized
chips the StyleGAN2 generator was trained on (:func:`training.stylegan2.load_image_set`'s recipe), so
the classifier sees faces framed like the generator's. A seeded 10 % of the files is held out for
the reported figures (age MAE in years, gender accuracy).

Loss: smooth L1 on ``log(1 + age)`` + binary cross-entropy on the gender logit; Adam, cosine learning
rate, x-flips and +-2 px shifts. The classifier only has to rank generated faces for the InterFaceGAN
boundaries (:mod:`faceforge.editing`), so a small network trained for a few CPU minutes will do.

Run: ``faceforge train attributes --size 32 --epochs 6 -o faceforge/weights/attributes_utkface32.pt`` (or
``python -m training.attributes`` with the same options; ``--data`` defaults to ``<data root>/utkface``;
``FACEFORGE_DATA`` sets the data root). The run folder (``--runs-dir``) keeps ``config.json`` and the
per-epoch ``metrics.csv``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from faceforge.editing import ATTRIBUTE_ARCH, AttributeNet
from training.configs import AttributesConfig
from training.loop import EpochLoop, TrainingRun, family_logger

log = family_logger("attributes")


def load_utkface(folder: Path, size: int, cache_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(images uint8 (N, size, size, 3), ages int (N,), genders int (N,))`` of every well-named file."""
    from faceforge.imaging import load_image
    from faceforge.data.images import resize_square
    from faceforge.data.utkface import scan_utkface

    records, _ = scan_utkface(folder)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"utkface_attr_{size}px_{len(records)}.npy"
    if cache is not None and cache.is_file():
        images = np.load(cache)
    else:
        images = np.empty((len(records), size, size, 3), np.uint8)
        for i, rec in enumerate(records):
            rgb = load_image(rec.path)
            h, w = rgb.shape[:2]
            s = min(h, w)
            images[i] = resize_square(rgb[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s], size)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, images)
    return images, np.array([r.age for r in records]), np.array([r.gender for r in records])


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = torch.rand(len(x), generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad = F.pad(x, (2, 2, 2, 2), mode="replicate")
    dx, dy = (int(v) for v in torch.randint(0, 5, (2,), generator=gen))
    return pad[:, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]


def _to_input(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


@torch.no_grad()
def evaluate(net: AttributeNet, images: np.ndarray, ages: np.ndarray, genders: np.ndarray) -> dict[str, float]:
    """Held-out age MAE (years) and gender accuracy."""
    net.eval()
    outs = torch.cat([net(_to_input(images[i:i + 512])) for i in range(0, len(images), 512)])
    pred_age = AttributeNet.age(outs).numpy()
    pred_gender = (outs[:, 1] > 0).numpy().astype(int)
    return {"age_mae_years": round(float(np.abs(pred_age - ages).mean()), 3),
            "gender_accuracy": round(float((pred_gender == genders).mean()), 4),
            "age_pearson_r": round(float(np.corrcoef(pred_age, ages)[0, 1]), 4)}


def train(cfg: AttributesConfig, command: str | None = None) -> dict[str, Any]:
    """Train and write the checkpoint (faceforge format, ``arch = "attribute_net"``) plus a JSON card beside it.

    Runs in the trainer skeleton (:class:`training.loop.TrainingRun`): a run folder
    ``<runs_dir>/attributes/<NNN>/`` with ``config.json`` and ``metrics.csv`` (one row per epoch: loss and the
    held-out figures), held under ``train.lock``; messages go to the ``faceforge.training.attributes`` logger.

    Args:
        cfg: the configuration (``output`` is required).
        command: the command line recorded in the card (default: the invoking one).

    Returns:
        The card dict (also written as ``<output>.json``).

    Raises:
        ValueError: no ``output``.
        FileNotFoundError: no UTKFace folder (:class:`~faceforge.errors.DatasetNotFoundError`).
    """
    from faceforge.checkpoints import save_checkpoint, to_fp16_storage
    from faceforge.data.paths import data_root

    if not cfg.output:
        raise ValueError("give the checkpoint to write (-o/--output)")
    session = TrainingRun("attributes", cfg, ())
    data = Path(cfg.data) if cfg.data else data_root() / "utkface"
    output = Path(cfg.output)
    size, epochs, batch_size, lr, seed, threads = cfg.size, cfg.epochs, cfg.batch_size, cfg.lr, cfg.seed, cfg.threads
    command = command or session.command
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    t0 = time.time()
    images, ages, genders = load_utkface(data, size, Path(cfg.cache_dir) if cfg.cache_dir else None)
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = len(images) // 10
    test, tr = order[:n_test], order[n_test:]
    run = session.create({"images": int(len(images)), "train_images": int(len(tr)), "heldout_images": int(len(test))})
    log.info("%d faces (%d train, %d held out), loaded in %.0f s", len(images), len(tr), len(test), time.time() - t0)
    net = AttributeNet(size)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(tr) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                pct_start=0.15)
    gen = torch.Generator().manual_seed(seed)
    x_all = _to_input(images)
    target_age = torch.log1p(torch.from_numpy(ages).float())
    target_gender = torch.from_numpy(genders).float()
    history = []
    t_train = time.time()
    loop = EpochLoop(session, epochs, metrics=session.metrics())
    with session.lock():
        for epoch in loop:
            net.train()
            perm = torch.from_numpy(tr)[torch.randperm(len(tr), generator=gen)]
            total = 0.0
            for i in loop.steps(steps_per_epoch, epoch):
                idx = perm[i * batch_size:(i + 1) * batch_size]
                out = net(_augment(x_all[idx], gen))
                loss = F.smooth_l1_loss(out[:, 0], target_age[idx], beta=0.1) \
                    + F.binary_cross_entropy_with_logits(out[:, 1], target_gender[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
            metrics = evaluate(net, images[test], ages[test], genders[test])
            history.append({"epoch": epoch + 1, "loss": round(total / len(tr), 4), **metrics})
            loop.log_row(json.dumps(history[-1]), **history[-1])
    minutes = (time.time() - t_train) / 60
    meta = {"task": "age (log(1+years), smooth L1) and gender (female logit, BCE)", "size": size,
            "template": "utkface (UTKFace chips, centre square, area-resized as the StyleGAN2 training data)",
            "data": "../shared/data/utkface (UTKFace aligned & cropped, labels from file names)",
            "images": int(len(images)), "train_images": int(len(tr)), "heldout_images": int(len(test)),
            "split": f"seeded permutation (seed {seed}), first 10 % held out", "epochs": epochs,
            "batch_size": batch_size, "lr": lr, "metrics": history[-1], "history": history,
            "training_minutes": round(minutes, 2), "machine": f"CPU, torch {torch.__version__}, {threads} thread(s)",
            "command": command}
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(".f32.pt")
    save_checkpoint(tmp, net.eval(), ATTRIBUTE_ARCH, {"size": size}, meta)
    to_fp16_storage(tmp, output)
    tmp.unlink()
    card = {"file": output.name, "arch": ATTRIBUTE_ARCH, "model_config": {"size": size},
            **{k: v for k, v in meta.items() if k != "history"},
            "storage": {"dtype": "float16", "loaded_as": "float32"}}
    output.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    log.info("run %s: finished; wrote %s", run, output)
    return card


def run_command(cfg: AttributesConfig, prog: str, given: list[str]) -> dict[str, Any]:
    """What ``faceforge train attributes`` and ``python -m training.attributes`` do: train ``cfg``, recording
    the command ``prog`` + ``given`` arguments (absolute paths cut to their last part: no machine paths).

    Raises:
        click.UsageError: no ``output``; click.ClickException: missing data or a held run (one line).
    """
    import click

    if not cfg.output:
        raise click.UsageError("give the checkpoint to write: -o/--output PATH")
    command = " ".join([prog, *(Path(a).name if a.startswith("/") else a for a in given)])
    try:
        card = train(cfg, command=command)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(card["metrics"]))
    return card


def main(argv: list[str] | None = None) -> None:
    """``python -m training.attributes ...``: the options of ``faceforge train attributes`` (generated from
    :class:`~training.configs.AttributesConfig`)."""
    import sys

    import click

    from training.loop import configure_cli_logging
    from training.options import config_from_options, config_options

    @click.command(help="Train the age/gender classifier of the InterFaceGAN edits on UTKFace.")
    @config_options(AttributesConfig)
    def command(**values) -> None:
        configure_cli_logging()
        run_command(config_from_options(AttributesConfig, values), "python -m training.attributes",
                    list(sys.argv[1:] if argv is None else argv))

    command.main(args=argv, prog_name="python -m training.attributes")


if __name__ == "__main__":
    main()

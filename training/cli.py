"""``faceforge train``: one subcommand per model family."""

from __future__ import annotations

from pathlib import Path

import click

from training.configs import (AgeConfig, AttributesConfig, CycleGANConfig, EmotionConfig, FaceShifterTrainConfig,
                              FrontalizeConfig, GPENTrainConfig, PosePairConfig, StyleGAN2TrainConfig)
from training.configs import STYLEGAN2_PRESETS
from training.options import config_from_options, config_options

FINETUNE_LR = 0.002
"""Adam lr of ``faceforge train stylegan2 --finetune-from`` unless ``--lr`` is given."""
FINETUNE_KIMG = 10.0
"""Length (kimg) of a fine-tune unless ``--kimg`` is given."""


@click.group()
def train() -> None:
    """Train faceforge's models (run folders under --runs-dir hold config, metrics, checkpoints)."""
    from training.loop import configure_cli_logging

    configure_cli_logging()  # the trainers log (faceforge.training.*); show their INFO lines on stderr


@train.command("emotion")
@config_options(EmotionConfig)
@click.option("--resume", type=click.Path(file_okay=False, exists=True), default=None,
              help="Continue the run in this folder (its last.pt and config.json).")
@click.option("--install", is_flag=True,
              help="Install the best checkpoint as the default weights (card mini_xception.fer2013) in the "
                   "user weights folder ($FACEFORGE_HOME/weights or the platform's user data folder).")
def emotion(resume: str | None, install: bool, **values) -> None:
    """Train mini-Xception on FER2013 (7 emotions, 48x48 grayscale).

    \b
    Example:
      faceforge train emotion --epochs 60 --install
    """
    from training.emotion import train as run_training

    try:
        run = run_training(config_from_options(EmotionConfig, values), resume=resume)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"run folder: {run}")
    if install:
        dest = install_weights(run / "best.pt", "mini_xception.fer2013")
        click.echo(f"installed default weights: {dest} (provenance: {dest.with_suffix('.json')})")


def install_weights(checkpoint: Path, card: str, run: Path | None = None) -> Path:
    """Install a run's checkpoint as model card ``card``'s default, with its provenance beside it.

    The file goes to the user weights folder (:func:`faceforge.models.cards.user_weights_dir`:
    ``$FACEFORGE_HOME/weights`` or platformdirs' user data folder), never into the package; from then
    on ``"default"`` loads it. To ship it, copy the file and its JSON into ``faceforge/weights/``.
    The JSON repeats the checkpoint's ``meta`` (command, data, epochs, seed, metrics, git commit) so
    that how the weights were made is readable without loading them. ``run``: the run folder
    (default: the checkpoint's folder), whose ``metrics.csv`` gives the training time.

    Returns:
        The installed file.

    Raises:
        FileNotFoundError, CheckpointError: ``checkpoint`` is missing or not a faceforge checkpoint.
        UnknownModelError: ``card`` is not a model card.
    """
    from faceforge.checkpoints import load_checkpoint
    from faceforge.models import cards

    import csv
    import platform

    import torch

    ckpt = load_checkpoint(checkpoint)
    meta = dict(ckpt["meta"])
    card = cards.get_card(card)
    record = {"file": card.file, "card": card.name, "arch": ckpt["arch"], "model_config": ckpt["config"],
              "run": (run or checkpoint.parent).as_posix(), **{k: v for k, v in meta.items() if k != "config"},
              "training_config": meta.get("config")}
    metrics_csv = (run or checkpoint.parent) / "metrics.csv"
    if metrics_csv.is_file():
        with metrics_csv.open() as f:
            rows = list(csv.DictReader(f))
        if rows and "seconds" in rows[0]:
            record["training_minutes"] = round(sum(float(r["seconds"]) for r in rows) / 60, 1)
        elif rows and "sec_per_step" in rows[0]:  # step-logged trainers: seconds per step over each window
            steps = [0] + [int(r["step"]) for r in rows]
            record["training_minutes"] = round(sum(float(r["sec_per_step"]) * (b - a) for r, a, b in
                                                   zip(rows, steps, steps[1:])) / 60, 1)
        for column in ("val_acc", "val_mae"):
            if rows and column in rows[0]:
                record[f"{column}_by_epoch"] = [float(r[column]) for r in rows]
    record["machine"] = f"{platform.machine()} CPU, torch {torch.__version__}, {torch.get_num_threads()} threads"
    return cards.install(checkpoint, card, provenance=record)


@train.command("cyclegan")
@config_options(CycleGANConfig)
@click.option("--ngf", type=click.IntRange(1), default=None, help="Generator width [default: the spec's].")
@click.option("--n-blocks", type=click.IntRange(0), default=None, help="Residual blocks [default: the spec's].")
@click.option("--install", is_flag=True,
              help="Install the run's G_A.pt as the default aging weights in the user weights folder (ResNet: "
                   "card cyclegan_resnet9.age, served by /v1/translate; mobile: cyclegan_mobile.age, exported to "
                   "phones), with a provenance JSON.")
def cyclegan(ngf: int | None, n_blocks: int | None, install: bool, **values) -> None:
    """Train a CycleGAN translator A -> B (G_A.pt) and B -> A (G_B.pt) on unpaired image folders.

    \b
    Examples:
      python -m training.unpaired utkface-age --dest data/utkface_age
      faceforge train cyclegan --data data/utkface_age --time-limit 9
      faceforge train cyclegan --resume runs/cyclegan/000 --time-limit 9
      faceforge train cyclegan --data data/utkface_age --generator cyclegan_mobile --batch-size 4 \\
          --teacher runs/cyclegan/000
    """
    from faceforge.errors import FaceforgeError
    from training.cyclegan import train as run_training

    if not values["dataroot"] and values["resume"] is None:
        raise click.UsageError("give --data (or --resume)")
    overrides = {k: v for k, v in (("ngf", ngf), ("n_blocks", n_blocks)) if v is not None}
    cfg = config_from_options(CycleGANConfig, values, generator_kwargs=overrides)
    try:
        run = run_training(cfg)
    except (FileNotFoundError, ValueError, RuntimeError, FaceforgeError) as exc:  # RuntimeError: run_lock
        raise click.ClickException(str(exc)) from None
    click.echo(f"run folder: {run}")
    if install:
        dest = install_translator(Path(run))
        click.echo(f"installed default weights: {dest} (provenance: {dest.with_suffix('.json')})")


def install_translator(run: Path) -> Path:
    """Install a finished aging run's ``G_A.pt`` (young -> old) as faceforge's default weights.

    ResNet generators become card ``cyclegan_resnet9.age`` (what ``FaceTranslator("age")`` and
    ``/v1/translate`` load by default); mobile generators ``cyclegan_mobile.age`` (what ``faceforge
    export cyclegan_mobile`` exports by default). Both go to the user weights folder.

    Raises:
        FileNotFoundError: the run has no ``G_A.pt``.
        ValueError: the generator is neither kind.
    """
    from faceforge.checkpoints import load_checkpoint
    from faceforge.translate import TASKS

    source = run / "G_A.pt"
    if not source.is_file():
        raise FileNotFoundError(f"{source} not found: train first")
    arch = load_checkpoint(source)["arch"]
    if arch == "cyclegan_resnet9":
        card = TASKS["age"].card
    elif arch == "cyclegan_mobile":
        card = "cyclegan_mobile.age"
    else:
        raise ValueError(f"{source} holds a {arch!r}, not a CycleGAN aging generator")
    return install_weights(source, card)


@train.command("age")
@config_options(AgeConfig)
@click.option("--install", is_flag=True, help="Install best.pt as the default age weights (card age_resnet.utkface, user weights folder).")
def age(install: bool, **values) -> None:
    """Train the age estimator (age_resnet, DEX head) on UTKFace; reports MAE on a held-out split.

    \b
    Examples:
      faceforge train age --epochs 1 --limit 500          # smoke run
      faceforge train age --holdout data/utkface_age/testA --holdout data/utkface_age/testB --install
    """
    from training.age import train as run_training

    try:
        run = run_training(config_from_options(AgeConfig, values))
    except (FileNotFoundError, ValueError, RuntimeError) as exc:  # RuntimeError: run_lock
        raise click.ClickException(str(exc)) from None
    click.echo(f"run folder: {run}")
    if install:
        dest = install_weights(run / "best.pt", "age_resnet.utkface")
        click.echo(f"installed default weights: {dest} (provenance: {dest.with_suffix('.json')})")


@train.command("frontalize-pairs")
@config_options(PosePairConfig)
def frontalize_pairs(**values) -> None:
    """Synthesize frontalization pairs from near-frontal UTKFace faces (Rotate-and-Render style).

    Each face is turned to one yaw per bucket (15-30, 30-45, 45-60, 60-75 degrees, random side),
    rendered (profile) and rendered back to frontal (rerender); the aligned face is the target.

    \b
    Examples:
      faceforge train frontalize-pairs --faces 100            # smoke set, ~0.3 CPU-s per face
      faceforge train frontalize-pairs --faces 8000 --dest cache/pose_pairs_8k
    """
    from faceforge.errors import FaceforgeError
    from training.pose_pairs import build_pose_pairs

    cfg = config_from_options(PosePairConfig, values)
    try:
        out = build_pose_pairs(cfg)
    except (FileNotFoundError, ValueError, FaceforgeError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"pose pairs: {out} (index: {out / 'index.json'}, grid: {out / 'grid.png'})")


@train.command("frontalize")
@config_options(FrontalizeConfig)
@click.option("--ngf", type=click.IntRange(1), default=None, help="Generator width [default: the spec's].")
@click.option("--num-downs", type=click.IntRange(2), default=None,
              help="U-Net levels [default: the spec's; the crop side must be a multiple of 2^levels, "
                   "so 7 at 128 px].")
@click.option("--install", is_flag=True,
              help="When the run has finished, install its mobile generator as faceforge's default "
                   "(card pix2pix_mobile.frontalize, user weights folder). With --resume of a finished run: install only.")
def frontalize(ngf: int | None, num_downs: int | None, install: bool, **values) -> None:
    """Train a pix2pix frontalization generator (L1 x 100 + PatchGAN) on synthesized pose pairs.

    \b
    Examples:
      faceforge train frontalize --stop-after 5 --workers 0      # smoke run
      faceforge train frontalize --generator pix2pix_unet256 --time-limit 9
      faceforge train frontalize --data cache/pose_pairs_128 --crop-size 128 --num-downs 7   # CPU config
      faceforge train frontalize --resume runs/frontalize/000 --time-limit 9
      faceforge train frontalize --resume runs/frontalize/000 --install     # a finished run: install it
      faceforge train frontalize --init-from faceforge/weights/pix2pix_frontalize.pt --lambda-face-id 30 \\
          --id-views 1 --epochs 0 --epochs-decay 1 --steps-per-epoch 1500 ...  # identity fine-tune
    """
    from faceforge.errors import FaceforgeError
    from training.frontalize import train as run_training

    cfg = config_from_options(FrontalizeConfig, values, generator_kwargs={
        k: v for k, v in (("ngf", ngf), ("num_downs", num_downs)) if v is not None})
    try:
        run = run_training(cfg)
    except (FileNotFoundError, ValueError, RuntimeError, FaceforgeError) as exc:  # RuntimeError: run_lock
        raise click.ClickException(str(exc)) from None
    click.echo(f"run folder: {run}")
    if install:
        try:
            dest = install_frontalizer(Path(run))
        except (FileNotFoundError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"installed default weights: {dest} (provenance: {dest.with_suffix('.json')})")


def install_frontalizer(run: Path) -> Path:
    """Install a finished frontalization run's ``G.pt`` as faceforge's default weights
    (``pix2pix_mobile``'s registry default, ``faceforge/weights/pix2pix_frontalize.pt``: what
    ``Frontalizer("default")``, ``/v1/frontalize`` and ``faceforge export pix2pix_mobile`` load).

    The run's pose-pair cache config (side, yaw buckets, template) is added to the checkpoint's meta
    when absent, so the installed copy renders at the trained side without the run folder.

    Raises:
        FileNotFoundError: the run has no ``G.pt``.
        ValueError: the run has not finished, or its generator is not ``pix2pix_mobile`` (the server
            U-Nets are served from their run folder: ``FACEFORGE_FRONTALIZE_WEIGHTS``).
    """
    import json
    import tempfile

    from faceforge.checkpoints import load_checkpoint, save_checkpoint
    from faceforge.models.registry import build_from_state

    source = run / "G.pt"
    if not source.is_file():
        raise FileNotFoundError(f"{source} not found: train first")
    ckpt = load_checkpoint(source)
    meta = dict(ckpt.get("meta") or {})
    if ckpt["arch"] != "pix2pix_mobile":
        raise ValueError(f"{source} holds a {ckpt['arch']!r}; only pix2pix_mobile is installed as the default "
                         "(serve others with FACEFORGE_FRONTALIZE_WEIGHTS=<run folder>)")
    if not meta.get("finished"):
        raise ValueError(f"{run} has not finished (step {meta.get('step')}): resume it first")
    run_config = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else {}
    if not meta.get("data_config"):
        data = run_config.get("data_config") or {}
        meta["data_config"] = {k: data.get(k) for k in ("size", "buckets", "template")}
    G = build_from_state(ckpt["arch"], ckpt["config"], ckpt["state_dict"], str(source), task="frontalize")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "G.pt"
        save_checkpoint(staged, G, ckpt["arch"], ckpt["config"], meta)
        dest = install_weights(staged, "pix2pix_mobile.frontalize", run=run)
    if run_config:  # what the pairs were: counts and synthesis settings of the cache
        record = json.loads(dest.with_suffix(".json").read_text())
        record.update(pose_pairs={"counts": run_config.get("data_counts"), "config": run_config.get("data_config")},
                      pairs_used=run_config.get("pairs"))
        dest.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    return dest


@train.command("stylegan2")
@config_options(StyleGAN2TrainConfig, defaults={
    # None: the preset's value (training.configs.STYLEGAN2_PRESETS), or the fine-tuning default
    **{k: (None, "the preset's") for k in sorted({k for p in STYLEGAN2_PRESETS.values() for k in p})},
    "lr": (None, f"{StyleGAN2TrainConfig.lr}; {FINETUNE_LR} fine-tuning"),
    "total_kimg": (None, f"the preset's; {FINETUNE_KIMG:g} fine-tuning")})
@click.option("--install", is_flag=True,
              help="Install the run's G_ema.pt as the default stylegan2 weights (user weights folder), or with "
                   "--finetune-from as the default cartoon weights for toonify (+ provenance JSON).")
def stylegan2(preset: str, finetune_from: str | None, install: bool, **fields) -> None:
    """Train a StyleGAN2 on aligned faces (UTKFace by default), or fine-tune one (toonify).

    Run folder runs/stylegan2/<NNN>/: config.json, metrics.csv (losses, SWD x1e3), samples/*.png, G_ema.pt
    (load with create_model("stylegan2", weights=...)), last.pt (resume).

    \b
    Examples:
      faceforge train stylegan2 --preset cpu --threads 2 --time-limit 60          # faces at 32 px on a CPU
      faceforge train stylegan2 --resume runs/stylegan2/000 --time-limit 60
      faceforge train stylegan2 --preset gpu --time-limit 25                    # 64 px on a GPU
      faceforge train stylegan2 --grow-from default --resolution 64 --threads 2   # 64 px from the shipped 32
      faceforge train stylegan2 --finetune-from runs/stylegan2/000 \\
          --data ../shared/data/cartoon/anime_faces --kimg 10
      faceforge stylegan toonify --weights runs/stylegan2/000/G_ema.pt --toon runs/stylegan2/001/G_ema.pt \
          --swap-resolution 8 -o toon.png
    """
    from faceforge.errors import FaceforgeError
    from faceforge.models import get_spec
    from training.stylegan2 import config_from_preset, train as run_training

    if finetune_from is not None:
        from faceforge.models import cards

        finetune_from = (cards.resolve("default", get_spec("stylegan2").default_card) if finetune_from == "default"
                         else Path(finetune_from))
        if not finetune_from.exists():
            raise click.BadParameter(f"{finetune_from} does not exist", param_hint="--finetune-from")
    if fields.get("grow_from") is not None:
        from faceforge.models import cards

        grow = fields["grow_from"]
        grow = cards.resolve("default", get_spec("stylegan2").default_card) if grow == "default" else Path(grow)
        if not grow.exists():
            raise click.BadParameter(f"{grow} does not exist", param_hint="--grow-from")
        fields["grow_from"] = str(grow)
    if finetune_from is not None:  # a short fine-tune: small lr, few kimg unless told otherwise
        fields["total_kimg"] = fields["total_kimg"] or FINETUNE_KIMG
        fields["lr"] = fields["lr"] or FINETUNE_LR
    try:
        cfg = config_from_preset(preset, finetune_from=str(finetune_from) if finetune_from else None, **fields)
        run = run_training(cfg)
    except (FileNotFoundError, ValueError, RuntimeError, FaceforgeError) as exc:  # RuntimeError: run_lock
        raise click.ClickException(str(exc)) from None
    click.echo(f"run folder: {run}")
    if install:
        from faceforge.models.stylegan2 import TOON_CARD

        dest = install_weights(run / "G_ema.pt", TOON_CARD if finetune_from is not None
                               else get_spec("stylegan2").default_card.name)
        click.echo(f"installed: {dest} (provenance: {dest.with_suffix('.json')}); '--weights default' "
                   f"{'--toon default ' if finetune_from is not None else ''}now loads it")


@train.command("gpen")
@config_options(GPENTrainConfig)
def gpen(**values) -> None:
    """Train GPEN blind face restoration on faces degraded on the fly (faceforge.degrade).

    Run folder <runs-dir>/gpen/<NNN>/: config.json, metrics.csv (losses, held-out PSNR), samples/*.png,
    G_ema.pt (faceforge restore --weights ...), last.pt (--resume).

    \b
    Examples:
      faceforge train gpen --size 64 --threads 2 --time-limit 60 --runs-dir /tmp/runs
      faceforge train gpen --resume /tmp/runs/gpen/000 --time-limit 60
      faceforge restore photo.jpg -o restored.jpg --weights /tmp/runs/gpen/000/G_ema.pt
    """
    from faceforge.errors import FaceforgeError
    from training.gpen import train as run_training

    try:
        run = run_training(config_from_options(GPENTrainConfig, values))
    except (FileNotFoundError, ValueError, RuntimeError, FaceforgeError) as exc:  # RuntimeError: run_lock
        raise click.ClickException(str(exc)) from None
    click.echo(f"run folder: {run}  (restore with: faceforge restore PHOTO --weights {run / 'G_ema.pt'})")


@train.command("faceshifter")
@config_options(FaceShifterTrainConfig)
def faceshifter(**values) -> None:
    """Train FaceShifter's AEI-Net face swap with dlib's 128-D face embedding as the identity.

    Loss: hinge multiscale adversarial + 10 attribute + 5 identity (1 - cos) + 10 reconstruction (pairs
    whose source is the target). Run folder <runs-dir>/faceshifter/<NNN>/: config.json, metrics.csv,
    samples/*.png, G.pt (create_model("faceshifter", weights=...)), last.pt (--resume).

    \b
    Examples:
      faceforge train faceshifter --size 64 --threads 2 --time-limit 60 --runs-dir /tmp/ff_runs
      faceforge train faceshifter --resume /tmp/ff_runs/faceshifter/000 --time-limit 60
    """
    from faceforge.errors import FaceforgeError
    from training.faceshifter import train as run_training

    try:
        run = run_training(config_from_options(FaceShifterTrainConfig, values))
    except (FileNotFoundError, ValueError, RuntimeError, FaceforgeError) as exc:  # RuntimeError: run_lock
        raise click.ClickException(str(exc)) from None
    click.echo(f"run folder: {run}  (generator: {run / 'G.pt'})")


@train.command("attributes")
@config_options(AttributesConfig)
def attributes(**values) -> None:
    """Train the age/gender classifier of the InterFaceGAN edits (faceforge stylegan edit) on UTKFace.

    Writes the checkpoint (float16 storage) and a JSON card beside it; the run folder keeps config.json and
    the per-epoch metrics.csv.

    \b
    Example:
      faceforge train attributes --size 32 --epochs 6 -o attributes_utkface32.pt
    """
    import sys

    from training.attributes import run_command

    run_command(config_from_options(AttributesConfig, values), "faceforge train attributes", sys.argv[3:])

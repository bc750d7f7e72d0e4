"""``faceforge train``: one subcommand per model family."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def train() -> None:
    """Train faceforge's models (run folders under --runs-dir hold config, metrics, checkpoints)."""
    from training.loop import configure_cli_logging

    configure_cli_logging()  # the trainers log (faceforge.training.*); show their INFO lines on stderr


def _stack(*options):
    """Apply several click options as one decorator (top to bottom as written)."""
    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f
    return decorate


run_control_options = _stack(
    click.option("--runs-dir", type=click.Path(file_okay=False), default="runs", show_default=True),
    click.option("--resume", type=click.Path(file_okay=False, exists=True), default=None,
                 help="Continue the run in this folder from its last.pt (its stored config is used)."),
    click.option("--time-limit", type=click.FloatRange(0, min_open=True), default=None,
                 help="Stop and save after this many minutes (resume later)."),
    click.option("--stop-after", type=click.IntRange(1), default=None, help="Stop and save after N steps."),
    click.option("--log-every", type=click.IntRange(1), default=100, show_default=True),
    click.option("--sample-every", type=click.IntRange(1), default=1000, show_default=True),
)
"""Run folder, resume and stopping options shared by the step-based GAN trainers."""

device_options = _stack(
    click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
    click.option("--workers", type=click.IntRange(0), default=2, show_default=True, help="DataLoader workers."),
    click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads."),
)
"""Where the GAN trainers compute."""


@train.command("emotion")
@click.option("--epochs", type=click.IntRange(1), default=60, show_default=True, help="Passes over FER2013 train.")
@click.option("--batch-size", type=click.IntRange(8), default=128, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=4e-3, show_default=True,
              help="Peak one-cycle learning rate (AdamW).")
@click.option("--weight-decay", type=click.FloatRange(0), default=5e-4, show_default=True, help="AdamW weight decay.")
@click.option("--label-smoothing", type=click.FloatRange(0, 0.5), default=0.1, show_default=True)
@click.option("--erase-prob", type=click.FloatRange(0, 1), default=0.4, show_default=True,
              help="Probability of one random-erasing box per image.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--limit", type=click.IntRange(100), default=None, help="Use only N training images (smoke runs).")
@click.option("--data", "data_root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data root holding fer2013/{train,test} [default: $FACEFORGE_DATA or ../shared/data].")
@click.option("--runs-dir", type=click.Path(file_okay=False), default="runs", show_default=True)
@click.option("--teacher", default=None,
              help="Knowledge-distillation teacher: a mini-Xception checkpoint, or 'default' (the shipped one).")
@click.option("--kd-alpha", type=click.FloatRange(0, 1), default=0.7, show_default=True,
              help="Weight of the distillation term (with --teacher).")
@click.option("--kd-temperature", type=click.FloatRange(0, min_open=True), default=3.0, show_default=True)
@click.option("--ema", "ema_decay", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Keep and validate an exponential moving average of the weights with this decay per step.")
@click.option("--init-from", default=None, help="Start from this checkpoint ('default': the shipped one).")
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads [default: torch's].")
@click.option("--resume", type=click.Path(file_okay=False, exists=True), default=None,
              help="Continue the run in this folder (its last.pt and config.json).")
@click.option("--install", is_flag=True,
              help="Install the best checkpoint as the default weights (card mini_xception.fer2013) in the "
                   "user weights folder ($FACEFORGE_HOME/weights or the platform's user data folder).")
def emotion(epochs: int, batch_size: int, lr: float, weight_decay: float, label_smoothing: float,
            erase_prob: float, seed: int, limit: int | None, data_root: Path | None,
            runs_dir: str, teacher: str | None, kd_alpha: float, kd_temperature: float, ema_decay: float | None,
            init_from: str | None, threads: int | None, resume: str | None, install: bool) -> None:
    """Train mini-Xception on FER2013 (7 emotions, 48x48 grayscale).

    \b
    Example:
      faceforge train emotion --epochs 60 --install
    """
    from training.emotion import EmotionConfig, train as run_training

    try:
        run = run_training(EmotionConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                                         label_smoothing=label_smoothing, erase_prob=erase_prob, seed=seed, limit=limit,
                                         data_root=str(data_root) if data_root else None, runs_dir=runs_dir,
                                         teacher=teacher, kd_alpha=kd_alpha, kd_temperature=kd_temperature,
                                         ema_decay=ema_decay, init_from=init_from, threads=threads),
                           resume=resume)
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
@click.option("--data", "dataroot", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder with trainA/ trainB/ (testA/ testB/ for sample grids), e.g. made by "
                   "`python -m training.unpaired utkface-age --dest data/utkface_age`. Required unless --resume.")
@click.option("--generator", type=click.Choice(["cyclegan_resnet9", "cyclegan_mobile"]), default="cyclegan_resnet9",
              show_default=True)
@click.option("--ngf", type=click.IntRange(1), default=None, help="Generator width [default: the spec's].")
@click.option("--n-blocks", type=click.IntRange(0), default=None, help="Residual blocks [default: the spec's].")
@click.option("--epochs", type=click.IntRange(0), default=100, show_default=True, help="Epochs at the initial lr.")
@click.option("--epochs-decay", type=click.IntRange(0), default=100, show_default=True,
              help="Epochs of linear lr decay to 0.")
@click.option("--steps-per-epoch", type=click.IntRange(1), default=None, help="Cap on steps per epoch.")
@click.option("--batch-size", type=click.IntRange(1), default=1, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=2e-4, show_default=True)
@click.option("--lambda-cycle", type=click.FloatRange(0), default=10.0, show_default=True)
@click.option("--lambda-identity", type=click.FloatRange(0), default=0.5, show_default=True,
              help="Identity weight as a fraction of --lambda-cycle.")
@click.option("--pool-size", type=click.IntRange(0), default=50, show_default=True)
@click.option("--load-size", type=click.IntRange(4), default=286, show_default=True)
@click.option("--crop-size", type=click.IntRange(4), default=256, show_default=True)
@click.option("--teacher", type=click.Path(file_okay=False, exists=True), default=None,
              help="Run folder of a trained teacher: distil into --generator (L1 to the teacher + GAN).")
@click.option("--lambda-distill", type=click.FloatRange(0), default=10.0, show_default=True)
@click.option("--init-from", type=click.Path(exists=True), default=None,
              help="Start all four networks from this cyclegan run folder / last.pt (weights only: new "
                   "optimizers and schedule), e.g. a second stage with other loss weights.")
@click.option("--seed", type=int, default=0, show_default=True)
@run_control_options
@click.option("--save-every", type=click.IntRange(0), default=0, show_default=True,
              help="Steps between mid-epoch checkpoints (0: at epoch ends only).")
@device_options
@click.option("--install", is_flag=True,
              help="Install the run's G_A.pt as the default aging weights in the user weights folder (ResNet: "
                   "card cyclegan_resnet9.age, served by /v1/translate; mobile: cyclegan_mobile.age, exported to "
                   "phones), with a provenance JSON.")
def cyclegan(dataroot: Path | None, generator: str, ngf: int | None, n_blocks: int | None, epochs: int,
             epochs_decay: int, steps_per_epoch: int | None, batch_size: int, lr: float, lambda_cycle: float,
             lambda_identity: float, pool_size: int, load_size: int, crop_size: int, teacher: str | None,
             lambda_distill: float, init_from: str | None, seed: int, runs_dir: str, resume: str | None,
             time_limit: float | None, stop_after: int | None, log_every: int, sample_every: int, save_every: int,
             device: str, workers: int, threads: int | None, install: bool) -> None:
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
    from training.cyclegan import CycleGANConfig, train as run_training

    if dataroot is None and resume is None:
        raise click.UsageError("give --data (or --resume)")
    overrides = {k: v for k, v in (("ngf", ngf), ("n_blocks", n_blocks)) if v is not None}
    cfg = CycleGANConfig(
        dataroot=str(dataroot or ""), generator=generator, generator_kwargs=overrides, n_epochs=epochs,
        n_epochs_decay=epochs_decay, steps_per_epoch=steps_per_epoch, batch_size=batch_size, lr=lr,
        lambda_cycle=lambda_cycle, lambda_identity=lambda_identity, pool_size=pool_size, load_size=load_size,
        crop_size=crop_size, teacher=teacher, lambda_distill=lambda_distill, init_from=init_from, seed=seed,
        runs_dir=runs_dir, resume=resume, time_limit_min=time_limit, stop_after_steps=stop_after, log_every=log_every,
        sample_every=sample_every, save_every=save_every, device=device, num_workers=workers, threads=threads)
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
@click.option("--epochs", type=click.IntRange(1), default=30, show_default=True)
@click.option("--batch-size", type=click.IntRange(8), default=128, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=3e-3, show_default=True,
              help="Peak one-cycle learning rate (AdamW).")
@click.option("--size", type=click.Choice(["64", "96"]), default="64", show_default=True, help="Input side.")
@click.option("--loss", type=click.Choice(["dldl", "dex", "l1"]), default="dldl", show_default=True,
              help="dldl: Gaussian label distribution KL + L1 on the expected age (Gao et al. 2018); dex: "
                   "cross-entropy on the age bin (Rothe et al. 2015); l1: L1 on the expected age.")
@click.option("--faces", type=click.Choice(["chip", "align"]), default="chip", show_default=True,
              help="chip: UTKFace chips resized; align: BlazeFace + utkface template (as the translator).")
@click.option("--holdout", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="Folder whose UTKFace files always go to the test split (repeatable), e.g. the testA/ "
                   "and testB/ of the CycleGAN age split.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split, subset and training.")
@click.option("--limit", type=click.IntRange(100), default=None, help="Use only N UTKFace images (smoke runs).")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="UTKFace folder [default: $FACEFORGE_DATA/utkface or ../shared/data/utkface].")
@click.option("--runs-dir", type=click.Path(file_okay=False), default="runs", show_default=True)
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads.")
@click.option("--install", is_flag=True, help="Install best.pt as the default age weights (card age_resnet.utkface, user weights folder).")
def age(epochs: int, batch_size: int, lr: float, size: str, loss: str, faces: str, holdout: tuple[str, ...],
        seed: int, limit: int | None, data: Path | None, runs_dir: str, threads: int | None, install: bool) -> None:
    """Train the age estimator (age_resnet, DEX head) on UTKFace; reports MAE on a held-out split.

    \b
    Examples:
      faceforge train age --epochs 1 --limit 500          # smoke run
      faceforge train age --holdout data/utkface_age/testA --holdout data/utkface_age/testB --install
    """
    from training.age import AgeConfig, train as run_training

    try:
        run = run_training(AgeConfig(epochs=epochs, batch_size=batch_size, lr=lr, size=int(size), loss=loss,
                                     faces=faces, holdout=list(holdout), seed=seed, limit=limit,
                                     data=str(data) if data else None, runs_dir=runs_dir, threads=threads))
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"run folder: {run}")
    if install:
        dest = install_weights(run / "best.pt", "age_resnet.utkface")
        click.echo(f"installed default weights: {dest} (provenance: {dest.with_suffix('.json')})")


@train.command("frontalize-pairs")
@click.option("--faces", type=click.IntRange(1), default=100, show_default=True,
              help="Near-frontal faces to use; each gives one pair per yaw bucket.")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=Path("cache/pose_pairs"),
              show_default=True, help="Cache folder (git-ignored); its index.json is replaced.")
@click.option("--source", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="UTKFace folder [default: $FACEFORGE_DATA/utkface or ../shared/data/utkface].")
@click.option("--size", type=click.IntRange(32), default=256, show_default=True, help="Crop side.")
@click.option("--max-source-yaw", type=click.FloatRange(0, 45, min_open=True), default=8.0, show_default=True,
              help="Keep faces whose Face Mesh yaw is below this (degrees).")
@click.option("--test-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="Faces held out for metrics.")
@click.option("--margin", type=click.FloatRange(0), default=0.25, show_default=True,
              help="Head ring outside the landmarks' hull (fraction of the hull's radius).")
@click.option("--pivot-depth", type=float, default=0.1, show_default=True,
              help="Rotation axis behind the cheek contour, in face widths.")
@click.option("--no-measure-yaw", is_flag=True, help="Skip Face Mesh on each profile (yaw_mesh = null).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="LiteRT threads.")
def frontalize_pairs(faces: int, dest: Path, source: Path | None, size: int, max_source_yaw: float,
                     test_fraction: float, margin: float, pivot_depth: float, no_measure_yaw: bool, seed: int,
                     threads: int) -> None:
    """Synthesize frontalization pairs from near-frontal UTKFace faces (Rotate-and-Render style).

    Each face is turned to one yaw per bucket (15-30, 30-45, 45-60, 60-75 degrees, random side),
    rendered (profile) and rendered back to frontal (rerender); the aligned face is the target.

    \b
    Examples:
      faceforge train frontalize-pairs --faces 100            # smoke set, ~0.3 CPU-s per face
      faceforge train frontalize-pairs --faces 8000 --dest cache/pose_pairs_8k
    """
    from faceforge.errors import FaceforgeError
    from training.pose_pairs import PosePairConfig, build_pose_pairs

    cfg = PosePairConfig(source=str(source or ""), dest=str(dest), faces=faces, size=size,
                         max_source_yaw=max_source_yaw, test_fraction=test_fraction, margin=margin,
                         pivot_depth=pivot_depth, measure_yaw=not no_measure_yaw, seed=seed, threads=threads)
    try:
        out = build_pose_pairs(cfg)
    except (FileNotFoundError, ValueError, FaceforgeError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"pose pairs: {out} (index: {out / 'index.json'}, grid: {out / 'grid.png'})")


@train.command("frontalize")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=Path("cache/pose_pairs"),
              show_default=True, help="Pose-pair cache made by `faceforge train frontalize-pairs`.")
@click.option("--input", "input_kind", type=click.Choice(["rerender", "profile"]), default="rerender",
              show_default=True, help="rerender: the profile rendered back to frontal (Rotate-and-Render); "
                                      "profile: the rendered profile itself (pix2pix turns the head).")
@click.option("--generator", type=click.Choice(["pix2pix_mobile", "pix2pix_unet256", "pix2pix_unet128"]),
              default="pix2pix_mobile", show_default=True)
@click.option("--ngf", type=click.IntRange(1), default=None, help="Generator width [default: the spec's].")
@click.option("--num-downs", type=click.IntRange(2), default=None,
              help="U-Net levels [default: the spec's; the crop side must be a multiple of 2^levels, "
                   "so 7 at 128 px].")
@click.option("--crop-size", type=click.IntRange(16), default=None,
              help="Training crop side [default: the generator's input side, 256 (128 for U-Net-128)].")
@click.option("--ndf", type=click.IntRange(1), default=64, show_default=True,
              help="PatchGAN width (the discriminator dominates a step's cost: 32 is ~4x cheaper).")
@click.option("--epochs", type=click.IntRange(0), default=100, show_default=True, help="Epochs at the initial lr.")
@click.option("--epochs-decay", type=click.IntRange(0), default=100, show_default=True,
              help="Epochs of linear lr decay to 0.")
@click.option("--steps-per-epoch", type=click.IntRange(1), default=None, help="Cap on steps per epoch.")
@click.option("--batch-size", type=click.IntRange(1), default=4, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=2e-4, show_default=True)
@click.option("--lambda-l1", type=click.FloatRange(0), default=100.0, show_default=True)
@click.option("--gan-mode", type=click.Choice(["vanilla", "lsgan"]), default="vanilla", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@run_control_options
@click.option("--eval-every", type=click.IntRange(0), default=0, show_default=True,
              help="Steps between held-out PSNR/SSIM (0: at epoch ends).")
@click.option("--install", is_flag=True,
              help="When the run has finished, install its mobile generator as faceforge's default "
                   "(card pix2pix_mobile.frontalize, user weights folder). With --resume of a finished run: install only.")
@device_options
def frontalize(data: Path, input_kind: str, generator: str, ngf: int | None, num_downs: int | None,
               crop_size: int | None, ndf: int, epochs: int, epochs_decay: int,
               steps_per_epoch: int | None, batch_size: int, lr: float, lambda_l1: float, gan_mode: str, seed: int,
               runs_dir: str, resume: str | None, time_limit: float | None, stop_after: int | None, log_every: int,
               sample_every: int, eval_every: int, install: bool, device: str, workers: int,
               threads: int | None) -> None:
    """Train a pix2pix frontalization generator (L1 x 100 + PatchGAN) on synthesized pose pairs.

    \b
    Examples:
      faceforge train frontalize --stop-after 5 --workers 0      # smoke run
      faceforge train frontalize --generator pix2pix_unet256 --time-limit 9
      faceforge train frontalize --data cache/pose_pairs_128 --crop-size 128 --num-downs 7   # CPU config
      faceforge train frontalize --resume runs/frontalize/000 --time-limit 9
      faceforge train frontalize --resume runs/frontalize/000 --install     # a finished run: install it
    """
    from faceforge.errors import FaceforgeError
    from training.frontalize import FrontalizeConfig, train as run_training

    cfg = FrontalizeConfig(
        data=str(data), input=input_kind, generator=generator,
        generator_kwargs={k: v for k, v in (("ngf", ngf), ("num_downs", num_downs)) if v is not None},
        crop_size=crop_size, ndf=ndf, n_epochs=epochs, n_epochs_decay=epochs_decay,
        steps_per_epoch=steps_per_epoch, batch_size=batch_size, lr=lr, lambda_l1=lambda_l1, gan_mode=gan_mode,
        seed=seed, runs_dir=runs_dir, resume=resume, time_limit_min=time_limit, stop_after_steps=stop_after,
        log_every=log_every, sample_every=sample_every, eval_every=eval_every, device=device, num_workers=workers,
        threads=threads)
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
@click.option("--preset", type=click.Choice(["cpu", "gpu", "gpu128", "tiny"]), default="cpu", show_default=True,
              help="cpu: 32 px, ~0.4 s/step on 2 cores; gpu: 64 px / gpu128: 128 px (StyleGAN2-ADA 'auto' "
                   "networks, batch 32, bf16); tiny: smoke runs. Options below override single fields.")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of aligned faces [default: $FACEFORGE_DATA/utkface or ../shared/data/utkface].")
@click.option("--finetune-from", default=None, metavar="default|PATH",
              help="Start from a stylegan2 run folder / last.pt (G, D, G_ema), a StyleGAN2 generator checkpoint "
                   "(faceforge, rosinality .pt, NVlabs .pkl: fresh D) or 'default' (the shipped generator); the "
                   "architecture comes from it. For toonify and your own faces (faceforge prepare).")
@click.option("--resolution", type=click.IntRange(8), default=None, help="Output side (power of two).")
@click.option("--z-dim", type=click.IntRange(1), default=None)
@click.option("--w-dim", type=click.IntRange(1), default=None)
@click.option("--channel-base", type=click.IntRange(1), default=None,
              help="Feature maps at r: min(channel_base // r, channel_max).")
@click.option("--channel-max", type=click.IntRange(1), default=None)
@click.option("--mapping-layers", type=click.IntRange(1), default=None)
@click.option("--batch-size", type=click.IntRange(1), default=None)
@click.option("--kimg", "total_kimg", type=click.FloatRange(0, min_open=True), default=None,
              help="Training length in thousands of real images [preset; 10 when fine-tuning].")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=None,
              help="Adam lr [0.0025; 0.002 fine-tuning].")
@click.option("--r1-gamma", type=click.FloatRange(0), default=None,
              help="R1 weight [auto: 0.0002 * resolution^2 / batch].")
@click.option("--pl-weight", type=click.FloatRange(0), default=None,
              help="Path-length regularization weight (paper: 2) [0: off].")
@click.option("--ema-kimg", type=click.FloatRange(0, min_open=True), default=None,
              help="G_ema half-life in kimg [auto: batch * 10 / 32].")
@click.option("--no-mirror", is_flag=True, help="No x-flip augmentation.")
@click.option("--amp", type=click.Choice(["auto", "off", "bf16"]), default="auto", show_default=True,
              help="auto: bf16 autocast on CUDA only.")
@click.option("--limit", type=click.IntRange(2), default=None, help="Use only N images (seeded subset).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--swd-every", type=click.IntRange(0), default=None, help="Steps between SWD evaluations (0: off).")
@click.option("--swd-images", type=click.IntRange(2), default=None, help="Images per set for SWD [2048].")
@click.option("--sample-every", type=click.IntRange(1), default=None)
@click.option("--save-every", type=click.IntRange(0), default=None, help="Steps between last.pt saves [500].")
@click.option("--log-every", type=click.IntRange(1), default=None)
@click.option("--runs-dir", type=click.Path(file_okay=False), default="runs", show_default=True)
@click.option("--resume", type=click.Path(file_okay=False, exists=True), default=None,
              help="Continue the run in this folder from its last.pt (its stored config is used).")
@click.option("--time-limit", type=click.FloatRange(0, min_open=True), default=None,
              help="Stop and save after this many minutes (resume later).")
@click.option("--stop-after", type=click.IntRange(1), default=None, help="Stop and save after N steps.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads.")
@click.option("--install", is_flag=True,
              help="Install the run's G_ema.pt as the default stylegan2 weights (user weights folder), or with "
                   "--finetune-from as the default cartoon weights for toonify (+ provenance JSON).")
def stylegan2(preset: str, data: Path | None, finetune_from: Path | None, install: bool, no_mirror: bool,
              time_limit: float | None, stop_after: int | None, **fields) -> None:
    """Train a StyleGAN2 on aligned faces (UTKFace by default), or fine-tune one (toonify).

    Run folder runs/stylegan2/<NNN>/: config.json, metrics.csv (losses, SWD x1e3), samples/*.png, G_ema.pt
    (load with create_model("stylegan2", weights=...)), last.pt (resume).

    \b
    Examples:
      faceforge train stylegan2 --preset cpu --threads 2 --time-limit 60          # faces at 32 px on a CPU
      faceforge train stylegan2 --resume runs/stylegan2/000 --time-limit 60
      faceforge train stylegan2 --preset gpu --time-limit 25                    # 64 px on a GPU
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
    if finetune_from is not None:  # a short fine-tune: small lr, few kimg unless told otherwise
        fields["total_kimg"] = fields["total_kimg"] or 10.0
        fields["lr"] = fields["lr"] or 0.002
    try:
        cfg = config_from_preset(preset, data=str(data) if data else "", mirror=not no_mirror,
                                 finetune_from=str(finetune_from) if finetune_from else None,
                                 stop_after_steps=stop_after, time_limit_min=time_limit, **fields)
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
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of aligned faces [default: $FACEFORGE_DATA/utkface or ../shared/data/utkface]; files whose "
                   "name's CRC-32 is 0 mod 20 are held out for benchmarks.")
@click.option("--size", type=click.Choice(["16", "32", "64", "128", "256", "512"]), default="64", show_default=True,
              help="Face side in pixels (64 or 128 on a CPU).")
@click.option("--style-dim", type=click.IntRange(1), default=256, show_default=True)
@click.option("--channel-multiplier", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True)
@click.option("--narrow", type=click.FloatRange(0, min_open=True), default=0.125, show_default=True,
              help="Width factor (published GPEN-BFR-256: 0.5; 512: 1).")
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True)
@click.option("--steps", "total_steps", type=click.IntRange(1), default=20000, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=0.002, show_default=True)
@click.option("--lambda-adv", type=click.FloatRange(0), default=0.1, show_default=True)
@click.option("--lambda-l1", type=click.FloatRange(0), default=1.0, show_default=True)
@click.option("--lambda-id", type=click.FloatRange(0), default=0.1, show_default=True,
              help="Identity loss (needs faceforge.models.dlib_resnet; skipped with a note otherwise).")
@click.option("--lambda-feat", type=click.FloatRange(0), default=0.1, show_default=True)
@click.option("--r1-gamma", type=click.FloatRange(0), default=10.0, show_default=True)
@click.option("--limit", type=click.IntRange(2), default=None, help="Use only N training images (seeded subset).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--eval-every", type=click.IntRange(1), default=500, show_default=True,
              help="Steps between held-out PSNR evaluations (moderate severity, 64 faces).")
@click.option("--save-every", type=click.IntRange(0), default=250, show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Cache of the decoded faces (.npy).")
@run_control_options
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads.")
def gpen(data: Path | None, size: str, time_limit: float | None, stop_after: int | None, **fields) -> None:
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
    from training.gpen import GPENTrainConfig, train as run_training

    try:
        run = run_training(GPENTrainConfig(data=str(data) if data else "", size=int(size), stop_after_steps=stop_after,
                                           time_limit_min=time_limit, **fields))
    except (FileNotFoundError, ValueError, RuntimeError, FaceforgeError) as exc:  # RuntimeError: run_lock
        raise click.ClickException(str(exc)) from None
    click.echo(f"run folder: {run}  (restore with: faceforge restore PHOTO --weights {run / 'G_ema.pt'})")


@train.command("faceshifter")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of utkface-aligned faces [default: $FACEFORGE_DATA/utkface or ../shared/data/utkface]; files "
                   "whose name's CRC-32 is 0 mod 20 are held out for evaluation.")
@click.option("--size", type=click.Choice(["64", "128", "256"]), default="64", show_default=True,
              help="Face side in pixels (64 or 128 on a CPU; 256 as published).")
@click.option("--width", type=click.FloatRange(0, min_open=True), default=0.25, show_default=True,
              help="AEI-Net width factor (1 = published widths).")
@click.option("--ndf", type=click.IntRange(1), default=16, show_default=True, help="Discriminator width (published: 64).")
@click.option("--batch-size", type=click.IntRange(2), default=8, show_default=True)
@click.option("--steps", "total_steps", type=click.IntRange(1), default=20000, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=4e-4, show_default=True)
@click.option("--lambda-att", type=click.FloatRange(0), default=10.0, show_default=True)
@click.option("--lambda-id", type=click.FloatRange(0), default=5.0, show_default=True)
@click.option("--lambda-rec", type=click.FloatRange(0), default=10.0, show_default=True)
@click.option("--same-fraction", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              help="Share of pairs whose source is the target itself (reconstruction term).")
@click.option("--id-center", is_flag=True,
              help="Identity cosine about the training faces' mean dlib embedding (dlib's embeddings of different "
                   "people have cosine ~0.85, so plain 1 - cos is a weak signal).")
@click.option("--init-from", type=click.Path(exists=True), default=None,
              help="Start G and D from this faceshifter run folder's last.pt (weights only, fresh optimizers).")
@click.option("--limit", type=click.IntRange(2), default=None, help="Use only N training images (seeded subset).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--eval-every", type=click.IntRange(1), default=500, show_default=True,
              help="Steps between held-out swap evaluations (identity cosines, reconstruction PSNR).")
@click.option("--save-every", type=click.IntRange(0), default=250, show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Cache of the decoded faces (.npy).")
@run_control_options
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads.")
def faceshifter(data: Path | None, size: str, time_limit: float | None, stop_after: int | None, **fields) -> None:
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
    from training.faceshifter import FaceShifterTrainConfig, train as run_training

    try:
        run = run_training(FaceShifterTrainConfig(data=str(data) if data else "", size=int(size),
                                                  stop_after_steps=stop_after, time_limit_min=time_limit, **fields))
    except (FileNotFoundError, ValueError, RuntimeError, FaceforgeError) as exc:  # RuntimeError: run_lock
        raise click.ClickException(str(exc)) from None
    click.echo(f"run folder: {run}  (generator: {run / 'G.pt'})")

"""``faceforge train``: one subcommand per model family."""

from __future__ import annotations

import shutil
from pathlib import Path

import click


@click.group()
def train() -> None:
    """Train faceforge's models (run folders under --runs-dir hold config, metrics, checkpoints)."""


@train.command("emotion")
@click.option("--epochs", type=click.IntRange(1), default=60, show_default=True, help="Passes over FER2013 train.")
@click.option("--batch-size", type=click.IntRange(8), default=128, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=4e-3, show_default=True,
              help="Peak one-cycle learning rate (AdamW).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--limit", type=click.IntRange(100), default=None, help="Use only N training images (smoke runs).")
@click.option("--data", "data_root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data root holding fer2013/{train,test} [default: $FACEFORGE_DATA or ../shared/data].")
@click.option("--runs-dir", type=click.Path(file_okay=False), default="runs", show_default=True)
@click.option("--install", is_flag=True,
              help="Copy the best checkpoint to faceforge/weights/ as the new default weights.")
def emotion(epochs: int, batch_size: int, lr: float, seed: int, limit: int | None, data_root: Path | None,
            runs_dir: str, install: bool) -> None:
    """Train mini-Xception on FER2013 (7 emotions, 48x48 grayscale).

    \b
    Example:
      faceforge train emotion --epochs 60 --install
    """
    from faceforge.models import get_spec
    from training.emotion import EmotionConfig, train as run_training

    try:
        run = run_training(EmotionConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, limit=limit,
                                         data_root=str(data_root) if data_root else None, runs_dir=runs_dir))
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"run folder: {run}")
    if install:
        dest = get_spec("mini_xception").default_weights_path
        shutil.copyfile(run / "best.pt", dest)
        click.echo(f"installed default weights: {dest}")

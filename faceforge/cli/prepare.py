"""``faceforge prepare``: a folder of photos -> a folder of aligned faces for training, with a report."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("prepare")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "dest", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Dataset folder to create (must be new or empty).")
@click.option("--size", type=click.IntRange(16, 2048), default=256, show_default=True,
              help="Crop side in px: the generator's resolution.")
@click.option("--template", default="utkface", show_default=True,
              help="Alignment template (utkface = the framing of faceforge's StyleGAN2 training data).")
@click.option("--faces", type=click.Choice(["all", "largest"]), default="all", show_default=True,
              help="Faces to take from each photo.")
@click.option("--max-upscale", type=click.FloatRange(0, min_open=True), default=2.0, show_default=True,
              help="Reject faces the crop would upsample by more than this.")
@click.option("--max-yaw", type=click.FloatRange(0, 90, min_open=True), default=25.0, show_default=True,
              help="Reject heads turned more than this (degrees, as Face Mesh measures; it under-reads turns).")
@click.option("--max-hash-distance", type=click.IntRange(0, 64), default=6, show_default=True,
              help="Crops within this many dHash bits of a kept crop are duplicates.")
def prepare(folder: Path, dest: Path, size: int, template: str, faces: str, max_upscale: float, max_yaw: float,
            max_hash_distance: int) -> None:
    """Detect, align and crop every face of FOLDER's photos into a training set.

    Drops unreadable files, photos without a face, faces too small for SIZE, heads turned beyond
    --max-yaw and duplicates, and writes OUTPUT/NNNNN.png plus OUTPUT/report.json (every kept face and
    every rejection with its reason). Exit code 1 when no face was kept.

    \b
    Examples:
      faceforge prepare my_photos/ -o data/my_faces --size 64
      faceforge train stylegan2 --finetune-from default --data data/my_faces --install
    """
    from tqdm import tqdm

    from faceforge.prepare import REASONS, prepare_folder

    try:
        report = prepare_folder(folder, dest, size=size, template=template, faces=faces, max_upscale=max_upscale,
                                max_yaw=max_yaw, max_hash_distance=max_hash_distance,
                                progress=lambda items: tqdm(items, desc="photos", unit="photo"))
    except (FileExistsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{report.photos} photo(s): kept {len(report.kept)} face(s) in {dest}, "
               f"rejected {len(report.rejected)}")
    for reason, count in report.counts().items():
        if count:
            click.echo(f"  {reason:17s} {count:5d}  {REASONS[reason]}")
    click.echo(f"report: {dest / 'report.json'}")
    if not report.kept:
        raise click.ClickException("no face was kept: see the report for why")

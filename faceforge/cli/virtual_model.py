"""``faceforge virtual-model``: one identity on the model of every product photo (swap, restore, mark)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("virtual-model")
@click.argument("photos", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--source", required=True, metavar="seed:N|PHOTO",
              help="The identity: a face photo (its largest face), or seed:N for a generated person.")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="New folder for the results (swapped photos as marked PNGs, the rest copied as is) and report.json.")
@click.option("--faces", type=click.Choice(["all", "largest"]), default="all", show_default=True)
@click.option("--restore", type=click.Choice(["auto", "gpen", "classical", "none"]), default="auto", show_default=True,
              help="Restoration of the swapped faces: auto = GPEN when its weights are configured, else classical.")
@click.option("--restore-weights", default=None, help="GPEN weights [default: $FACEFORGE_GPEN_WEIGHTS].")
@click.option("--allow-pose-gap", is_flag=True, help="Swap faces turned further than the swap's limit (warned).")
@click.option("--stylegan-weights", default="default", show_default=True, help="Generator for seed:N sources.")
def virtual_model(photos: tuple[Path, ...], source: str, out_dir: Path, faces: str, restore: str,
                  restore_weights: str | None, allow_pose_gap: bool, stylegan_weights: str) -> None:
    """Put one person's face on the models of product PHOTOS (files or folders).

    Each photo is screened for faces; photos without one are copied untouched; the chosen faces are
    swapped (classical swap), restored and the result marked as AI-made (XMP + watermark). Consent:
    only use faces of people who agreed to it, or generated ones.

    \b
    Examples:
      faceforge virtual-model shop/*.jpg --source seed:42 -o shop_virtual/
      faceforge virtual-model shop/ --source model_consented.jpg -o out/ --restore classical
    """
    from tqdm import tqdm

    from faceforge.imaging import load_image
    from faceforge.prepare import IMAGE_SUFFIXES
    from faceforge.virtual_model import VirtualModel

    files: list[Path] = []
    for p in photos:
        files += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES) if p.is_dir() else [p]
    if not files:
        raise click.UsageError("no image files among PHOTOS")
    try:
        src = source if source.startswith("seed:") else load_image(Path(source))
        vm = VirtualModel(src, faces=faces, restore=restore, restore_weights=restore_weights,
                          allow_pose_gap=allow_pose_gap, stylegan_weights=stylegan_weights)
        reports = vm.run(files, out_dir, progress=lambda items: tqdm(items, desc="photos", unit="photo"))
    except (ValueError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from None
    (out_dir / "report.json").write_text(json.dumps({"pipeline": vm.describe(),
                                                     "photos": [r.to_dict() for r in reports]}, indent=1) + "\n")
    counts = {s: sum(r.status == s for r in reports) for s in ("swapped", "no-face", "unchanged", "error")}
    click.echo(f"{len(reports)} photo(s): " + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
               + f"; {sum(r.swapped for r in reports)} face(s) swapped, restore: {vm.restore_method} -> {out_dir}")
    for r in reports:
        for d in r.detail:
            click.echo(f"  {r.photo}: {d}")

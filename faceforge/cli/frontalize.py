"""``faceforge frontalize``: predict the frontal face of the (turned) faces in a photo and save the crops."""

from __future__ import annotations

import json
from pathlib import Path

import click

from faceforge.errors import FaceforgeError


@click.command("frontalize")
@click.argument("photo", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Frontal crop to write (.png/.jpg/.webp); with several faces, <stem>_<index><suffix> per face "
                   "[default: <photo>_frontal.png beside the photo].")
@click.option("--weights", default=None,
              help="Run folder of `faceforge train frontalize` (G.pt), a generator checkpoint, or 'default' "
                   "[default: $FACEFORGE_FRONTALIZE_WEIGHTS, else the shipped weights].")
@click.option("--faces", "selection", default="all", show_default=True,
              help="Which faces: all, largest, or 0-based indices such as 0,2 (highest detector score first).")
@click.option("--save-input/--no-save-input", default=False, show_default=True,
              help="Also write the generator's input (pose-tolerant crop or rerender) as <stem>_<index>_input<suffix>.")
@click.option("--restore", "restore_method", type=click.Choice(["none", "auto", "gpen", "classical"]), default="none",
              show_default=True, help="Restore the frontal crops last (auto: GPEN when configured, else classical).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the faces (box, yaw, roll, range flag) and timings as JSON.")
def frontalize(photo: Path, output: Path | None, weights: str | None, selection: str, save_input: bool,
               restore_method: str, as_json: bool) -> None:
    """Frontalize the faces in PHOTO with a pix2pix generator and save the frontal crops.

    Yaw is Face Mesh's estimate, calibrated, in degrees, positive when the nose points to the image's right.
    Faces turned beyond the trained range are not frontalized; with none left the command fails with one line.

    \b
    Examples:
      faceforge frontalize profile.jpg -o frontal.png --weights runs/frontalize/001
      FACEFORGE_FRONTALIZE_WEIGHTS=runs/frontalize/001 faceforge frontalize group.jpg --faces all --json
      faceforge frontalize profile.jpg --restore auto    # GPEN with $FACEFORGE_GPEN_WEIGHTS, else classical
    """
    import warnings

    from faceforge.frontalize import Frontalizer, resolve_weights
    from faceforge.imaging import load_image, save_image
    from faceforge.faces.select import parse_face_selection

    try:
        faces = parse_face_selection(selection)
        frontalizer = Frontalizer(weights=resolve_weights(weights))
        rgb = load_image(photo)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # reported per face below
            result = frontalizer.frontalize(rgb, faces=faces, restore=restore_method)
    except (FaceforgeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    done = result.frontalized
    base = output or photo.with_name(f"{photo.stem}_frontal.png")
    written: dict[int, str] = {}
    try:
        for f in done:
            path = base if len(done) == 1 else base.with_name(f"{base.stem}_{f.index}{base.suffix}")
            save_image(path, f.output)
            written[f.index] = str(path)
            if save_input:
                image = f.rerender if f.rerender is not None else f.crop
                save_image(path.with_name(f"{path.stem}_input{path.suffix}"), image)
    except ValueError as exc:
        raise click.ClickException(f"cannot write {base}: {exc}") from None
    if as_json:
        click.echo(json.dumps({"image": str(photo), "model": frontalizer.describe(), "restored": result.restored,
                               "faces": [{**f.to_dict(), "output": written.get(f.index)} for f in result.faces],
                               "timings_ms": {k: round(v, 1) for k, v in result.timings_ms.items()}}, indent=1))
        return
    for f in result.faces:
        if not f.selected:
            continue
        yaw = "?" if f.yaw is None else f"{f.yaw:+.1f} deg"
        click.echo(f"face {f.index}: yaw {yaw} -> {written.get(f.index, 'not frontalized')}"
                   + (f" (warning: {f.warning})" if f.warning else ""))
    if not done:
        raise click.ClickException("no selected face could be frontalized")

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
              show_default=True, help="Restore the frontal crops last, at their output size (auto: GPEN when "
                                      "configured, else classical).")
@click.option("--output-size", "output_size", default="face", show_default=True,
              help="Side of the frontal crops: face (the face's own side in the photo, at least the generator's, at "
                   "most 1024 px; the camera's pixels kept where it saw the face), generator (the generator's own "
                   "output, e.g. 128 px: the earlier behaviour and the phone's) or an integer side in [32, 1024].")
@click.option("--json", "as_json", is_flag=True,
              help="Print the faces (box, yaw, roll, range flag) and timings as JSON.")
def frontalize(photo: Path, output: Path | None, weights: str | None, selection: str, save_input: bool,
               restore_method: str, output_size: str, as_json: bool) -> None:
    """Frontalize the faces in PHOTO with a pix2pix generator and save the frontal crops.

    Yaw is Face Mesh's estimate, calibrated, in degrees, positive when the nose points to the image's right.
    Faces turned beyond the trained range are not frontalized; with none left the command fails with one line.
    The crops have the face's own side by default (--output-size face): the generator runs at its size and its
    change is carried onto the rerendered face where the camera saw it (faceforge.frontalize.compose_frontal).

    \b
    Examples:
      faceforge frontalize profile.jpg -o frontal.png --weights runs/frontalize/001
      FACEFORGE_FRONTALIZE_WEIGHTS=runs/frontalize/001 faceforge frontalize group.jpg --faces all --json
      faceforge frontalize profile.jpg --restore auto    # GPEN with $FACEFORGE_GPEN_WEIGHTS, else classical
      faceforge frontalize profile.jpg --output-size generator   # the generator's 128 px crop as it is
    """
    import warnings

    from faceforge.frontalize import Frontalizer, parse_output_size, resolve_weights
    from faceforge.imaging import load_image, save_image
    from faceforge.faces.select import parse_face_selection

    try:
        size = parse_output_size(output_size, name="--output-size")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        faces = parse_face_selection(selection)
        frontalizer = Frontalizer(weights=resolve_weights(weights))
        rgb = load_image(photo)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # reported per face below
            result = frontalizer.frontalize(rgb, faces=faces, restore=restore_method, output_size=size)
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
                               "output_size": size,
                               "faces": [{**f.to_dict(), "output": written.get(f.index)} for f in result.faces],
                               "timings_ms": {k: round(v, 1) for k, v in result.timings_ms.items()}}, indent=1))
        return
    for f in result.faces:
        if not f.selected:
            continue
        yaw = "?" if f.yaw is None else f"{f.yaw:+.1f} deg"
        side = (f" ({f.output_px} px{', upscaled' if f.upscaled else ''}; the face is {f.face_px:.0f} px)"
                if f.frontalized else "")
        click.echo(f"face {f.index}: yaw {yaw} -> {written.get(f.index, 'not frontalized')}{side}"
                   + (f" (warning: {f.warning})" if f.warning else ""))
    if not done:
        raise click.ClickException("no selected face could be frontalized")

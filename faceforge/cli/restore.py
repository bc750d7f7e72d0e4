"""``faceforge restore``: blind face restoration of the faces of a photo (GPEN, or a classical filter chain)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from faceforge.errors import FaceforgeError


@click.command("restore")
@click.argument("photo", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Image to write (.jpg/.png/.webp) [default: <photo>_restored.png beside the photo].")
@click.option("--method", type=click.Choice(["gpen", "classical"]), default="gpen", show_default=True,
              help="gpen: the GPEN network (needs weights); classical: OpenCV non-local means + unsharp mask "
                   "(+ Lanczos upscale), no weights.")
@click.option("--weights", default=None,
              help="GPEN weights: G_ema.pt or run folder of `faceforge train gpen`, a published GPEN-BFR-256/-512 "
                   ".pth, or 'default' [default: $FACEFORGE_GPEN_WEIGHTS, else faceforge/weights/gpen_restore.pt, "
                   "which is not shipped].")
@click.option("--faces", "selection", default="all", show_default=True,
              help="Which faces: all, largest, or 0-based indices such as 0,2 (highest detector score first).")
@click.option("--upscale", type=click.IntRange(1, 8), default=1, show_default=True,
              help="Upscale the whole photo (Lanczos) by this factor and paste the faces at that scale; 1 leaves "
                   "the background untouched.")
@click.option("--no-colour-match", "no_colour_match", is_flag=True,
              help="Paste restored faces without matching their mean colour to the input's.")
@click.option("--quality", type=click.IntRange(1, 100), default=92, show_default=True, help="JPEG/WebP quality.")
@click.option("--json", "as_json", is_flag=True, help="Print the faces, seams and timings as JSON.")
def restore(photo: Path, output: Path | None, method: str, weights: str | None, selection: str, upscale: int,
            no_colour_match: bool, quality: int, as_json: bool) -> None:
    """Restore the faces in PHOTO (blur, noise, JPEG, low resolution) and save the photo.

    Without restoration weights `--method gpen` stops with one line saying how to provide them
    (--weights PATH or FACEFORGE_GPEN_WEIGHTS); `--method classical` always works.

    \b
    Examples:
      faceforge restore old.jpg -o restored.png --weights runs/gpen/000/G_ema.pt
      FACEFORGE_GPEN_WEIGHTS=GPEN-BFR-512.pth faceforge restore group.jpg --faces largest --upscale 2
      faceforge restore small.jpg --method classical --upscale 2
    """
    from faceforge.cli import save_or_fail
    from faceforge.imaging import load_image
    from faceforge.restore import FaceRestorer
    from faceforge.translate import parse_face_selection

    try:
        faces = parse_face_selection(selection)
        restorer = FaceRestorer(method=method, weights=weights, upscale=upscale, colour_match=not no_colour_match)
        rgb = load_image(photo)
        result = restorer.restore(rgb, faces=faces)
    except (FaceforgeError, ValueError) as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None
    written = output or photo.with_name(f"{photo.stem}_restored.png")
    save_or_fail(written, result.image, quality=quality)
    if as_json:
        from faceforge.faces.detect import KEYPOINT_NAMES

        click.echo(json.dumps({"image": str(photo), "output": str(written), "model": restorer.describe(),
                               "grayscale": result.grayscale, "seam": round(result.seam, 3),
                               "faces": [f.to_dict(KEYPOINT_NAMES) for f in result.faces],
                               "timings_ms": {k: round(v, 1) for k, v in result.timings_ms.items()}}, indent=1))
        return
    done = [f.index for f in result.restored]
    small = [f.index for f in result.restored if method == "gpen" and f.face_side * upscale > 1.5 * restorer.size]
    click.echo(f"{len(result.faces)} face(s) found, restored {done} ({restorer.method} {restorer.version}"
               f"{f', {restorer.size}px' if restorer.size else ''}; seam {result.seam:.2f} grey levels) -> {written}")
    if small:
        click.echo(f"note: faces {small} are larger in the photo than the restorer's {restorer.size}px crops; their "
                   f"restored versions carry less detail than the originals", err=True)

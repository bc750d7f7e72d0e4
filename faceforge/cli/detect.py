"""``faceforge detect``: find faces in a photo, print them, save an annotated copy."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from faceforge.errors import FaceforgeError


@click.command("detect")
@click.argument("photo", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Annotated image to write (.jpg/.png); default: <photo>_faces.jpg beside the photo.")
@click.option("--no-output", is_flag=True, help="Do not write an annotated image.")
@click.option("--model", type=click.Choice(["auto", "short", "full"]), default="auto", show_default=True,
              help="BlazeFace model: auto = full range + tiles on large photos + short range for close-ups.")
@click.option("--min-score", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Minimum detection score.")
@click.option("--threads", type=click.IntRange(1), default=None, help="LiteRT CPU threads (default: LiteRT's choice).")
@click.option("--json", "as_json", is_flag=True, help="Print the faces as JSON instead of a table.")
def detect(photo: Path, output: Path | None, no_output: bool, model: str, min_score: float,
           threads: int | None, as_json: bool) -> None:
    """Detect faces in PHOTO: boxes, 6 keypoints, scores.

    \b
    Examples:
        faceforge detect group.jpg                 # table + group_faces.jpg
        faceforge detect selfie.png -o out.png --model short
        faceforge detect photo.jpg --json --no-output

    Exit code 1 when no face is found (the table or JSON is still printed), as for every command's
    runtime errors; 2 for usage errors.
    """
    from faceforge.faces.detect import KEYPOINT_NAMES, FaceDetector
    from faceforge.faces.draw import annotate
    from faceforge.cli import save_or_fail
    from faceforge.imaging import load_image

    try:
        rgb = load_image(photo)
        detector = FaceDetector(model, min_score=min_score, num_threads=threads)
        t0 = time.perf_counter()
        faces = detector.detect(rgb)
        elapsed_ms = (time.perf_counter() - t0) * 1e3
    except FaceforgeError as exc:
        raise click.ClickException(str(exc)) from None
    written = None
    if not no_output:
        written = output or photo.with_name(f"{photo.stem}_faces.jpg")
        save_or_fail(written, annotate(rgb, faces))
    height, width = rgb.shape[:2]
    if as_json:
        click.echo(json.dumps({
            "image": str(photo), "width": width, "height": height, "model": model,
            "detect_ms": round(elapsed_ms, 1), "annotated": str(written) if written else None,
            "faces": [f.to_dict() for f in faces]}, indent=1))
        if not faces:
            raise click.ClickException(f"no face found in {photo} (min score {min_score})")
        return
    click.echo(f"{photo} ({width}x{height}): {len(faces)} face(s) in {elapsed_ms:.0f} ms [{model}]")
    for i, face in enumerate(faces):
        x0, y0, x1, y1 = face.box
        eyes = ", ".join(f"{KEYPOINT_NAMES[j]} ({face.keypoints[j, 0]:.0f}, {face.keypoints[j, 1]:.0f})" for j in (0, 1))
        click.echo(f"  #{i + 1} score {face.score:.2f}  box ({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f})  {eyes}")
    if written:
        click.echo(f"annotated image: {written}")
    if not faces:  # the table / JSON above still reports the empty result; the exit code says "nothing found"
        raise click.ClickException(f"no face found in {photo} (min score {min_score})")

"""``faceforge translate``: translate the faces of a photo (default task: aging) and save the result."""

from __future__ import annotations

import json
from pathlib import Path

import click

from faceforge.errors import FaceforgeError


@click.command("translate")
@click.argument("photo", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--task", default="age", show_default=True, help="Translation task (known: age).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Image to write (.jpg/.png/.webp); default: <photo>_<task>.jpg beside the photo.")
@click.option("--weights", default=None,
              help="Run folder of `faceforge train cyclegan` (G_A.pt/G_B.pt), a generator checkpoint, or "
                   "'default' [default: $FACEFORGE_TRANSLATE_<TASK>_WEIGHTS, else the installed weights].")
@click.option("--faces", "selection", default="all", show_default=True,
              help="Which faces: all, largest, or 0-based indices such as 0,2 (highest detector score first).")
@click.option("--direction", type=click.Choice(["A->B", "B->A"]), default="A->B", show_default=True,
              help="A->B: young -> old for the age task; B->A needs G_B (give the run folder).")
@click.option("--postfilter/--no-postfilter", default=False, show_default=True,
              help="Gaussian blur + unsharp mask on the translated faces (the seed project's smoothing).")
@click.option("--size", type=click.Choice(["128", "256"]), default=None,
              help="Aligned crop side [default: the size the generator was trained at, else 256].")
@click.option("--feather", type=click.FloatRange(0, 0.5), default=0.1, show_default=True,
              help="Paste-back blending ramp, fraction of the crop side.")
@click.option("--detail", type=click.Choice(["transfer", "off"]), default="transfer", show_default=True,
              help="transfer: carry the generator's change onto the face at its own resolution (keeps the "
                   "photo's detail); off: paste the generator's output as it is.")
@click.option("--detail-sigma", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Low-pass sigma of the carried change, in generator pixels (larger: only broad changes).")
@click.option("--strength", type=click.FloatRange(0), default=1.0, show_default=True,
              help="How much of the generator's change to add (transfer mode): 1 as trained, 0.5 half; above 1 "
                   "exaggerates it, at most 2 (older-looking, with stronger colour casts and blotches).")
@click.option("--colour", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="How much of the change's colour part to keep on top of --strength: 1 all, 0 brightness only "
                   "(drops the generator's colour cast).")
@click.option("--quality", type=click.IntRange(1, 100), default=92, show_default=True, help="JPEG/WebP quality.")
@click.option("--restore", "restore_method", type=click.Choice(["none", "auto", "gpen", "classical"]), default="none",
              show_default=True, help="Restore the translated faces last (auto: GPEN when configured, else classical).")
@click.option("--json", "as_json", is_flag=True, help="Print the faces and timings as JSON.")
def translate(photo: Path, task: str, output: Path | None, weights: str | None, selection: str, direction: str,
              postfilter: bool, size: str | None, feather: float, detail: str, detail_sigma: float, strength: float,
              colour: float, quality: int, restore_method: str, as_json: bool) -> None:
    """Translate the faces in PHOTO with a CycleGAN generator and save the edited photo.

    \b
    Examples:
      faceforge translate group.jpg --task age -o older.jpg --weights runs/cyclegan/000
      faceforge translate selfie.png --faces largest --postfilter
      faceforge translate selfie.png --strength 0.5
      FACEFORGE_TRANSLATE_AGE_WEIGHTS=runs/cyclegan/000 faceforge translate me.jpg --direction B->A
    """
    from faceforge.cli import save_or_fail
    from faceforge.imaging import load_image
    from faceforge.translate import FaceTranslator, get_task, parse_face_selection, resolve_weights

    try:
        task_obj = get_task(task)
        faces = parse_face_selection(selection)
        translator = FaceTranslator(task_obj.name, weights=resolve_weights(task_obj, weights),
                                    size=int(size) if size else None, feather=feather, detail=detail,
                                    detail_sigma=detail_sigma)
        rgb = load_image(photo)
        result = translator.translate(rgb, faces=faces, direction=direction, apply_postfilter=postfilter,
                                      strength=strength, colour=colour)
        if restore_method != "none":
            from faceforge.restore import restore_last

            restored, _ = restore_last(result.image, result.translated, restore_method, detector=translator.detector)
            result.image = restored
    except (FaceforgeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    written = output or photo.with_name(f"{photo.stem}_{task_obj.name}.jpg")
    save_or_fail(written, result.image, quality=quality)
    if as_json:
        from faceforge.faces.detect import KEYPOINT_NAMES

        click.echo(json.dumps({"image": str(photo), "output": str(written), "model": translator.describe(),
                               "direction": direction, "postfilter": postfilter,
                               "faces": [f.to_dict(KEYPOINT_NAMES) for f in result.faces],
                               "timings_ms": {k: round(v, 1) for k, v in result.timings_ms.items()}}, indent=1))
        return
    done = [f.index for f in result.translated]
    click.echo(f"{len(result.faces)} face(s) found, translated {done} ({direction}, {translator.arch} "
               f"{translator.version}, {translator.size}px) -> {written}")

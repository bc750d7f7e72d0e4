"""``faceforge swap``: put the face of one photo onto the faces of another: the classical swap (no training,
default) or FaceShifter's AEI-Net (``--method aeinet``, the shipped ``faceshifter.utkface64`` weights by default)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import click

from faceforge.errors import FaceforgeError
from faceforge.swap import BLENDS, DEFAULT_BLEND, DEFAULT_MAX_YAW_GAP, MIN_SOURCE_FACE

OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def _alpha_of(path: Path, shape: tuple[int, int]):
    """The upright alpha channel of an image file (uint8 ``(H, W)``), or ``None`` when it has none."""
    import numpy as np
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            if not (im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info):
                return None
            im = ImageOps.exif_transpose(im) or im
            alpha = np.asarray(im.convert("RGBA"))[..., 3]
    except Exception:  # noqa: BLE001 - the image already decoded; an odd alpha is simply not kept
        return None
    return alpha if alpha.shape == shape and alpha.min() < 255 else None


@click.command("swap")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("target", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Image to write (.png/.jpg/.webp, with provenance marks) [default: <target>_swap.png beside TARGET].")
@click.option("--faces", "selection", default="all", show_default=True,
              help="Target faces: all, largest, or 0-based indices such as 0,2 (highest detector score first). "
                   "With 'all', faces that cannot be swapped are skipped and listed.")
@click.option("--source-face", type=click.IntRange(0), default=None,
              help="Which face of SOURCE to use (0-based, detector order) [default: the largest].")
@click.option("--blend", type=click.Choice(BLENDS), default=DEFAULT_BLEND, show_default=True,
              help="laplacian: multi-band pyramid; poisson: seamlessClone (can pull hair or shadow on the face's "
                   "border into it); feather: alpha ramp.")
@click.option("--max-yaw-gap", type=click.FloatRange(0, 90, min_open=True), default=DEFAULT_MAX_YAW_GAP,
              show_default=True, help="Largest yaw difference (degrees, Face Mesh estimate) between source and target.")
@click.option("--allow-pose-gap", is_flag=True, help="Swap beyond --max-yaw-gap with a warning instead of refusing.")
@click.option("--min-source-face", type=click.IntRange(16), default=MIN_SOURCE_FACE, show_default=True,
              help="Smallest source face, detector box width in pixels.")
@click.option("--colour/--no-colour", default=None,
              help="Match the source's skin tone to the target (Reinhard, Lab) [default: on]; aeinet: the rendered "
                   "face's colours to the target face's [default: off; it measured 0.8 points lower ID top-1].")
@click.option("--quality", type=click.IntRange(1, 100), default=92, show_default=True, help="JPEG/WebP quality.")
@click.option("--restore", "restore_method", type=click.Choice(["none", "auto", "gpen", "classical"]), default="none",
              show_default=True, help="Restore the swapped faces last (auto: GPEN when configured, else classical).")
@click.option("--method", type=click.Choice(["classical", "aeinet"]), default="classical", show_default=True,
              help="classical: landmarks, warp, colour transfer, blend (no weights; the better identity on the "
                   "benchmark); aeinet: FaceShifter's AEI-Net (learned; the shipped weights are 64 px, trained on a "
                   "CPU: blurrier, weaker identity; --blend and the yaw and size limits do not apply; --colour matches "
                   "the rendered face's Lab statistics to the target face's).")
@click.option("--weights", default="default", show_default=True,
              help="AEI-Net weights for --method aeinet: default (the shipped faceshifter.utkface64, or "
                   "$FACEFORGE_FACESHIFTER_WEIGHTS), a card name or a G.pt of faceforge train faceshifter.")
@click.option("--json", "as_json", is_flag=True, help="Print the source, the target faces and timings as JSON.")
def swap(source: Path, target: Path, output: Path | None, selection: str, source_face: int | None, blend: str,
         max_yaw_gap: float, allow_pose_gap: bool, min_source_face: int, colour: bool | None, quality: int,
         restore_method: str, method: str, weights: str, as_json: bool) -> None:
    """Put the face of SOURCE onto the faces of TARGET and save the result.

    Classical swap: Face Mesh landmarks, Delaunay triangles, per-triangle affine warp, Reinhard colour
    transfer, Poisson / Laplacian / feathered blending. It refuses (exit 1) when no face is found,
    the source face is too small, a target face is the source face, or the yaw gap exceeds
    --max-yaw-gap; options out of range and SOURCE = TARGET are usage errors (exit 2). A PNG/WebP
    output keeps TARGET's transparency. The output says it is AI-edited: IPTC DigitalSourceType
    compositeSynthetic in its XMP metadata and an invisible watermark (`faceforge provenance check`).
    Use it only on faces whose owners agreed.

    --method aeinet: FaceShifter's AEI-Net (Li et al. 2019) with the identity of SOURCE's face (dlib's
    embedding) renders each chosen target face at 64 px and pastes it back; nothing is refused for pose.

    \b
    Examples:
      faceforge swap me.jpg group.jpg -o group_me.png
      faceforge swap me.jpg portrait.png --faces largest --blend laplacian --json
      faceforge swap me.jpg turned.jpg --max-yaw-gap 20 --allow-pose-gap
      faceforge swap me.jpg portrait.png --method aeinet -o aeinet.png
    """
    from faceforge.cli import one_line
    from faceforge.imaging import load_image
    from faceforge.swap import FaceSwapper
    from faceforge.translate import parse_face_selection

    try:
        same = source.resolve() == target.resolve() or source.read_bytes() == target.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read the images: {exc}") from None
    if same:
        raise click.UsageError("SOURCE and TARGET are the same image; give a photo of another face as SOURCE")
    if output is not None and output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise click.BadParameter(f"the output must be one of {', '.join(OUTPUT_SUFFIXES)} (they carry the provenance "
                                 f"metadata), got {output.name!r}", param_hint="'-o' / '--output'")
    try:
        faces = parse_face_selection(selection)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--faces'") from None
    if method == "aeinet":
        return _swap_aeinet(source, target, output, faces, source_face, quality, restore_method, weights,
                            bool(colour), as_json)
    colour = True if colour is None else colour
    try:
        swapper = FaceSwapper(blend=blend, max_yaw_gap=max_yaw_gap, allow_pose_gap=allow_pose_gap,
                              min_source_face=min_source_face, colour=colour)
        src = load_image(source)
        tgt = load_image(target)
        found = swapper.detector.detect(tgt)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # reported per face below
            result = swapper.swap(src, tgt, faces=faces, source_face=source_face, detected=found)
        image = result.image
        if restore_method != "none":
            from faceforge.restore import restore_last

            image, _ = restore_last(image, [found[f.index] for f in result.swapped], restore_method,
                                    detector=swapper.detector)
    except (FaceforgeError, ValueError, OSError) as exc:
        raise click.ClickException(one_line(exc)) from None
    written, provenance_note = _write(image, target, output, quality)
    if as_json:
        click.echo(json.dumps({"source": str(source), "target": str(target), "output": str(written),
                               "method": swapper.describe(), "source_face": result.source.to_dict(),
                               "faces": [f.to_dict() for f in result.faces], "provenance_warning": provenance_note,
                               "timings_ms": {k: round(v, 1) for k, v in result.timings_ms.items()}}, indent=1))
        return
    done = [f.index for f in result.swapped]
    click.echo(f"{len(result.faces)} face(s) found in {target.name}, swapped {done} with the source face "
               f"(yaw {result.source.yaw:+.0f} deg, {blend}) -> {written}")
    if provenance_note:
        click.echo(f"  provenance: {provenance_note}")
    for f in result.faces:
        if f.skipped:
            click.echo(f"  face {f.index} skipped: {f.skipped}")
        elif f.warning:
            click.echo(f"  face {f.index} warning: {f.warning}")


def _write(image, target: Path, output: Path | None, quality: int) -> tuple[Path, str | None]:
    """Save ``image`` with the provenance marks (keeping TARGET's transparency in PNG/WebP); returns the path
    and the provenance warning, if any. Raises ``click.ClickException`` when it cannot be written."""
    from faceforge.provenance import SWAP_SOURCE_TYPE, save_marked

    written = output or target.with_name(f"{target.stem}_swap.png")
    if written.suffix.lower() in (".png", ".webp"):
        alpha = _alpha_of(target, image.shape[:2])
        if alpha is not None:
            import numpy as np
            image = np.dstack([image, alpha])
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            save_marked(written, image, quality=quality, source_type=SWAP_SOURCE_TYPE)
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"cannot write {written}: {exc}") from None
    return written, "; ".join(str(w.message) for w in caught) or None


def _swap_aeinet(source: Path, target: Path, output: Path | None, faces, source_face: int | None, quality: int,
                 restore_method: str, weights: str, colour: bool, as_json: bool) -> None:
    """``--method aeinet``: :class:`faceforge.faceshifter.FaceShifterSwapper` with ``weights`` (and ``colour``)."""
    from faceforge.cli import one_line
    from faceforge.faceshifter import FaceShifterSwapper
    from faceforge.imaging import load_image

    try:
        swapper = FaceShifterSwapper(weights, colour=colour)
        src = load_image(source)
        tgt = load_image(target)
        run = swapper.swap(src, tgt, faces=faces, source_face="largest" if source_face is None else source_face)
        done = [j.index for j in run.jobs if j.output is not None]
        skipped = {j.index: j.extra["skipped"] for j in run.jobs if "skipped" in j.extra}
        image = run.image
        if restore_method != "none":
            from faceforge.restore import restore_last

            image, _ = restore_last(image, [run.found[i] for i in done], restore_method, detector=swapper.detector)
    except (FaceforgeError, ValueError, OSError) as exc:
        raise click.ClickException(one_line(exc)) from None
    written, provenance_note = _write(image, target, output, quality)
    meta = swapper.meta or {}
    name = weights if weights != "default" else "faceshifter.utkface64"
    if as_json:
        click.echo(json.dumps({"source": str(source), "target": str(target), "output": str(written),
                               "method": {"name": "aeinet", "weights": Path(name).name, "size": swapper.crop_size,
                                          "colour": colour,
                                          "step": meta.get("step")},
                               "faces": [{"index": i, **f.to_dict(), "swapped": i in done,
                                          "skipped": skipped.get(i)} for i, f in enumerate(run.found)],
                               "provenance_warning": provenance_note,
                               "timings_ms": {k: round(v, 1) for k, v in run.timings_ms.items()}}, indent=1))
        return
    click.echo(f"{len(run.found)} face(s) found in {target.name}, swapped {done} with the source face "
               f"(AEI-Net {Path(name).name}, {swapper.crop_size} px) -> {written}")
    for i, why in sorted(skipped.items()):
        click.echo(f"  face {i} skipped: {why}")
    if provenance_note:
        click.echo(f"  provenance: {provenance_note}")

"""``faceforge makeup``: a reference face's lip, eye-shadow and skin colours onto the faces of a photo."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("makeup")
@click.argument("target", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("reference", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Image to write; default: <target>_makeup.jpg beside the target.")
@click.option("--faces", "selection", default="all", show_default=True,
              help="Target faces: all, largest, or 0-based indices such as 0,2 (highest detector score first).")
@click.option("--strength", type=click.FloatRange(0, 1), default=0.8, show_default=True,
              help="Blend of the transferred colours (0: unchanged).")
@click.option("--regions", default="lips,eyes,skin", show_default=True,
              help="Which regions to transfer, comma-separated: lips, eyes (eye shadow), skin (foundation tint).")
@click.option("--json", "as_json", is_flag=True, help="Print the faces and timings as JSON.")
def makeup(target: Path, reference: Path, output: Path | None, selection: str, strength: float, regions: str,
           as_json: bool) -> None:
    """Move REFERENCE's makeup onto the faces of TARGET (Face Mesh regions, Lab colour transfer).

    \b
    Examples:
      faceforge makeup me.jpg made_up.jpg -o me_made_up.jpg
      faceforge makeup group.jpg reference.png --regions lips --strength 0.6
    """
    from faceforge.faces.select import parse_face_selection
    from faceforge.cli import save_or_fail
    from faceforge.imaging import load_image
    from faceforge.makeup import MakeupTransfer

    try:
        faces = parse_face_selection(selection)
        transfer = MakeupTransfer(strength=strength, regions=[r.strip() for r in regions.split(",") if r.strip()])
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    result = transfer.apply(load_image(target), load_image(reference), faces=faces)
    written = output or target.with_name(f"{target.stem}_makeup.jpg")
    save_or_fail(written, result.image)
    if as_json:
        click.echo(json.dumps({"output": str(written), "regions": list(result.regions), "faces": result.faces,
                               "timings_ms": {k: round(v, 1) for k, v in result.timings_ms.items()}}, indent=1))
        return
    done = sum(f["made_up"] for f in result.faces)
    click.echo(f"{target}: makeup on {done} of {len(result.faces)} face(s) ({', '.join(result.regions)}) -> {written}")
    for f in result.faces:
        if f["warning"]:
            click.echo(f"  face {f['index']}: {f['warning']}")

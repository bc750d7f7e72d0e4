"""Quality of a frontalization generator, measured rather than eyeballed (issue 4, deliverable 3).

On the **held-out synthesized pairs** of a pose-pair cache (:mod:`training.pose_pairs`: faces of the
cache's ``test`` split, never seen in training), per yaw bucket (15-30, 30-45, 45-60, 60-75 degrees):

- PSNR (dB, uint8, data range 255) and SSIM (RGB, 7x7 window) of the output against the true frontal,
  beside the same figures for the generator's input (the rerendered profile): what a generator must beat;
  ``skimage.metrics``, via :func:`training.frontalize.evaluate`;
- identity: the mean distance between dlib's 128-d ResNet face embeddings (:mod:`faceforge.identity`)
  of the true frontal and of the output, of the input and of the rendered profile, and the share of
  pairs under dlib's same-person threshold 0.6. The issue asks that output-to-frontal be clearly below
  profile-to-frontal.

On **real photos** (``--photos``, e.g. ``../shared/data/photos/portraits``): every face is run through
:class:`faceforge.frontalize.Frontalizer` (full-range BlazeFace, Face Mesh yaw, pose-tolerant crop,
rerender, generator); the faces whose estimated ``|yaw|`` is at least ``--min-yaw`` are listed with
their yaw, and the most turned ones make a grid (crop | rerender | output). No true frontal exists
there, so these are shown, not scored.

Writes ``<out>/<name>.json`` and ``<name>.md``; the grids go to ``<figures>/<name>_pairs.png`` and
``<name>_photos.png`` (default ``benchmarks/results/figures/``, git-ignored: they show UTKFace faces and
the shared photos, which are for test use only and are not committed). Example::

    python -m benchmarks.frontalize_quality --pairs cache/pose_pairs_128_7k \\
        --photos ../shared/data/photos/portraits --photos ../shared/data/photos/groups
    faceforge bench frontalize-quality ...   (same options)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import click
import numpy as np

from benchmarks import RESULTS_DIR, write_results

DEFAULT_NAME = "frontalize_quality"
FIGURES_DIR = RESULTS_DIR / "figures"


def pair_grid(frontalizer: Any, dataset: Any, n_faces: int) -> np.ndarray:
    """Rows: held-out faces; per yaw bucket the rendered profile, the generator's input and its output,
    then the true frontal. uint8 ``(n * S, (3 * buckets + 1) * S, 3)``."""
    from faceforge.imaging import load_image
    from training.pose_pairs import label_tile
    from training.unpaired import resize_square

    s = frontalizer.size
    by_face: dict[str, list[dict]] = {}
    for i, p in enumerate(dataset.pairs):
        by_face.setdefault(p["face"], []).append({**p, "i": i})
    rows = []
    for face in sorted(by_face)[:n_faces]:
        pairs = sorted(by_face[face], key=lambda p: abs(p["yaw"]))
        inputs = [resize_square(load_image(dataset.root / p[dataset.input]), s) for p in pairs]
        outputs = frontalizer.frontalize_crops(inputs)
        tiles = []
        for p, x, o in zip(pairs, inputs, outputs):
            profile = resize_square(load_image(dataset.root / p["profile"]), s)
            tiles += [label_tile(profile, f"{p['yaw']:+.0f}"), label_tile(x, "input"), label_tile(o, "output")]
        tiles.append(label_tile(resize_square(load_image(dataset.root / pairs[0]["frontal"]), s), "frontal"))
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def photo_faces(frontalizer: Any, folders: Sequence[Path], min_yaw: float) -> tuple[list[dict], list[tuple], int]:
    """Frontalize every face of every image in ``folders``.

    Returns:
        ``(rows, tiles, total)``: per frontalized face with ``|yaw| >= min_yaw`` a JSON row (file, face
        index, yaw, roll, in_range, score) and ``(|yaw|, crop, rerender, output, label)`` for the grid;
        ``total`` the number of faces frontalized.
    """
    import warnings

    from faceforge.errors import NoFaceError
    from faceforge.imaging import load_image
    from training.unpaired import list_images, resize_square

    rows, tiles, total = [], [], 0
    s = frontalizer.size
    for folder in folders:
        for path in list_images(Path(folder)):
            try:
                rgb = load_image(path)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # out-of-range yaws are listed, not warned
                    result = frontalizer.frontalize(rgb)
            except (NoFaceError, ValueError):
                continue
            total += len(result.frontalized)
            for f in result.frontalized:
                if abs(f.yaw) < min_yaw:
                    continue
                rows.append({"file": f"{Path(folder).name}/{path.name}", "face": f.index, "yaw": round(f.yaw, 1),
                             "roll": round(f.roll, 1), "in_range": f.in_range, "score": round(f.score, 3)})
                label = f"{path.stem[:12]} #{f.index} {f.yaw:+.0f}"
                back = f.rerender if f.rerender is not None else f.crop
                tiles.append((abs(f.yaw), resize_square(f.crop, s), resize_square(back, s), f.output, label))
    return rows, tiles, total


def photo_grid(tiles: list[tuple], n: int, per_row: int = 2) -> np.ndarray | None:
    """The ``n`` most turned faces, ``per_row`` (crop | rerender | output) triples per row."""
    from training.pose_pairs import label_tile

    if not tiles:
        return None
    chosen = sorted(tiles, key=lambda t: -t[0])[:n]
    triples = [np.concatenate([label_tile(c, label), label_tile(r, "rerender"), label_tile(o, "output")], axis=1)
               for _, c, r, o, label in chosen]
    while len(triples) % per_row:
        triples.append(np.zeros_like(triples[0]))
    return np.concatenate([np.concatenate(triples[i:i + per_row], axis=1)
                           for i in range(0, len(triples), per_row)], axis=0)


def markdown(doc: dict[str, Any]) -> str:
    """The results as Markdown tables."""
    g = doc["generator"]
    lines = [f"# Frontalization quality: {g['name']} ({g['weights']}, {g['input']} input, {g['size']} px)", "",
             f"Held-out synthesized pairs: {doc['pairs']['test_pairs']} pairs of {doc['pairs']['test_faces']} "
             f"UTKFace faces never seen in training ({doc['pairs']['cache']}). PSNR (dB) / SSIM against the true "
             "frontal; identity = mean dlib embedding distance to the true frontal (lower = more alike; "
             "same-person threshold 0.6) and the share of pairs under 0.6.", "",
             "| yaw bucket | pairs | PSNR input | PSNR output | SSIM input | SSIM output | id profile | id input "
             "| id output | same-person profile | same-person output |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in doc["metrics"].items():
        idc = (f"{r['id_profile']:.3f} | {r['id_input']:.3f} | **{r['id_output']:.3f}** | "
               f"{100 * r['id_same_profile']:.0f} % | {100 * r['id_same_output']:.0f} %"
               if "id_output" in r else "- | - | - | - | -")
        lines.append(f"| {name} | {r['n']} | {r['psnr_input']:.2f} | **{r['psnr']:.2f}** | {r['ssim_input']:.3f} | "
                     f"**{r['ssim']:.3f}** | {idc} |")
    lines += ["", f"Evaluation took {doc['seconds']:.0f} s on this machine ({doc['machine']}).", ""]
    photos = doc.get("photos")
    if photos is not None:
        lines += [f"## Real photos ({', '.join(photos['folders'])})", "",
                  f"{photos['faces_total']} faces frontalized; {len(photos['turned'])} with |yaw| >= "
                  f"{photos['min_yaw']:g} degrees (Face Mesh estimate, which reads turned heads low):", "",
                  "| photo | face | yaw (deg) | roll (deg) | in trained range |", "|---|---|---|---|---|"]
        for r in sorted(photos["turned"], key=lambda r: -abs(r["yaw"])):
            lines.append(f"| {r['file']} | {r['face']} | {r['yaw']:+.1f} | {r['roll']:+.1f} | "
                         f"{'yes' if r['in_range'] else 'no'} |")
        lines.append("")
    return "\n".join(lines)


def run(weights: str = "default", pairs: Path = Path("cache/pose_pairs"), limit: int | None = None,
        photos: Sequence[Path] = (), min_yaw: float = 15.0, grid_faces: int = 6, photo_faces_n: int = 8,
        out_dir: Path = RESULTS_DIR, figures: Path = FIGURES_DIR, name: str = DEFAULT_NAME,
        identity: bool | None = None) -> dict[str, Any]:
    """Measure, write the results and figures, return the results document.

    Raises:
        WeightsNotFoundError: no such weights.
        FileNotFoundError: no pose-pair cache at ``pairs``, or a photo folder is missing.
    """
    import platform

    import torch

    from faceforge.frontalize import Frontalizer
    from faceforge.imaging import save_image
    from training.frontalize import evaluate
    from training.pose_pairs import PosePairDataset

    for folder in photos:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"photo folder not found: {folder}")
    fz = Frontalizer(weights)
    dataset = PosePairDataset(pairs, "test", fz.input_mode, fz.size, fz.size, augment=False)
    t0 = time.perf_counter()
    subset = dataset if limit is None else _Limited(dataset, limit)
    metrics = evaluate(fz.generator, subset, torch.device("cpu"), identity=identity)
    seconds = time.perf_counter() - t0
    doc: dict[str, Any] = {
        "generator": {**{k: v for k, v in fz.describe().items() if k in ("name", "version", "input", "size",
                                                                          "render_size")},
                      "weights": fz.weights_source},
        "pairs": {"cache": str(pairs), "test_pairs": len(subset),
                  "test_faces": len({p["face"] for p in subset.pairs})},
        "metrics": metrics, "seconds": round(seconds, 1),
        "machine": f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads",
    }
    figures = Path(figures)
    figures.mkdir(parents=True, exist_ok=True)
    save_image(figures / f"{name}_pairs.png", pair_grid(fz, subset, grid_faces))
    if photos:
        rows, tiles, total = photo_faces(fz, photos, min_yaw)
        doc["photos"] = {"folders": [str(Path(p)) for p in photos], "min_yaw": min_yaw, "turned": rows,
                         "faces_total": total}
        grid = photo_grid(tiles, photo_faces_n)
        if grid is not None:
            save_image(figures / f"{name}_photos.png", grid)
    write_results(doc, out_dir, name, markdown)
    return doc


class _Limited:
    """The first ``limit`` faces (all their pairs) of a :class:`PosePairDataset`, same interface."""

    def __init__(self, dataset: Any, limit: int) -> None:
        faces = sorted({p["face"] for p in dataset.pairs})[:limit]
        keep = set(faces)
        self._dataset = dataset
        self._index = [i for i, p in enumerate(dataset.pairs) if p["face"] in keep]
        self.pairs = [dataset.pairs[i] for i in self._index]
        self.root, self.input = dataset.root, dataset.input

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self._dataset[self._index[i]]


@click.command(DEFAULT_NAME.replace("_", "-"))
@click.option("--weights", default="default", show_default=True,
              help="Generator: 'default' (the shipped one), a run folder or a G.pt.")
@click.option("--pairs", type=click.Path(file_okay=False, path_type=Path), default=Path("cache/pose_pairs"),
              show_default=True, help="Pose-pair cache (`faceforge train frontalize-pairs`); its test split is used.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Use only the first N held-out faces.")
@click.option("--photos", multiple=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder of real photos to frontalize (repeatable), e.g. ../shared/data/photos/portraits.")
@click.option("--min-yaw", type=click.FloatRange(0, 90), default=15.0, show_default=True,
              help="Real-photo faces with a smaller |yaw| (degrees) are not listed or shown.")
@click.option("--grid-faces", type=click.IntRange(1), default=6, show_default=True, help="Rows of the pair grid.")
@click.option("--photo-faces", type=click.IntRange(1), default=8, show_default=True,
              help="Most-turned real faces in the photo grid.")
@click.option("--no-identity", is_flag=True, help="Skip the dlib identity columns.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR,
              show_default=True)
@click.option("--figures", type=click.Path(file_okay=False, path_type=Path), default=FIGURES_DIR, show_default=True,
              help="Where the grids go (git-ignored by default: they show data for test use only).")
@click.option("--name", default=DEFAULT_NAME, show_default=True)
def main(weights: str, pairs: Path, limit: int | None, photos: tuple[Path, ...], min_yaw: float, grid_faces: int,
         photo_faces: int, no_identity: bool, out_dir: Path, figures: Path, name: str) -> None:
    """PSNR/SSIM and dlib identity per yaw bucket on held-out pose pairs, and a real-photo grid."""
    from faceforge.errors import FaceforgeError

    try:
        doc = run(weights, pairs, limit, photos, min_yaw, grid_faces, photo_faces, out_dir, figures, name,
                  identity=False if no_identity else None)
    except (FileNotFoundError, ValueError, FaceforgeError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(markdown(doc))
    click.echo(f"results: {out_dir / name}.json|md; figures: {figures}/{name}_pairs.png"
               + (f", {name}_photos.png" if photos else ""))


if __name__ == "__main__":
    main()

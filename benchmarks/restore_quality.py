"""Quality of blind face restoration against classical baselines, measured on held-out UTKFace faces
(issue 13, deliverable 3).

Faces: the held-out split of ``training/gpen.py`` (UTKFace chips whose name's CRC-32 is 0 mod 20; never
trained on), the first ``--faces`` of them by name, centre-cropped and resized to ``--size`` (area
averaging): the clean references. Each is degraded at the three fixed severities of
:mod:`faceforge.degrade` (``mild``, ``moderate``, ``severe``; per-image parameters seeded by ``(severity,
--seed, index)``, so every run sees the same inputs).

Methods (all produce a ``size x size`` face):

- ``input``: the degraded face as the restorer receives it (bilinear upsampling of the small image);
- ``bicubic`` / ``lanczos``: the small degraded image upsampled with ``cv2.INTER_CUBIC`` /
  ``cv2.INTER_LANCZOS4`` (for ``downsample < 1.5`` the small image is the full-size one);
- ``nlmeans+usm``: OpenCV non-local means (``fastNlMeansDenoisingColored``, h = 5) + unsharp mask on the
  Lanczos upsampling: :func:`faceforge.restore.classical_restore`, the ``--method classical`` chain
  (the seed project's "Gaussian + sharpen" generalised);
- ``gpen``: :class:`faceforge.models.gpen.GPEN` with ``--weights`` (any faceforge or converted published
  checkpoint whose size equals ``--size``), on the ``input`` image.

Metrics per method and severity (means over faces): PSNR (dB, data range 255) and SSIM (RGB, 7x7 window,
``skimage.metrics``) against the clean face; sharpness = variance of the Laplacian of the gray image
(``cv2.Laplacian``, 64-bit), and its ratio to the clean face's (1 = as sharp as the original, > 1 means
over-sharpened or noisy); identity distance = Euclidean distance between the dlib ResNet embeddings
(:mod:`faceforge.identity`) of the output and of the clean face, and the share below dlib's same-person
threshold 0.6. The goals of the issue are checked in the Markdown: >= 2 dB PSNR over the best baseline at
``moderate``; identity closer to the clean face than the degraded input on every severity.

With ``--photos``: every face of every photo in those folders is restored whole (detect, align, restore,
paste back at ``--photo-upscale``) by ``classical`` and, with weights, ``gpen``; the seam of each paste
(:func:`faceforge.restore.boundary_difference`) is tabulated per photo and method, and the smallest faces
make ``<figures>/<name>_photos.png`` (Lanczos | classical | gpen).

Writes ``<out>/<name>.json|md`` and ``<figures>/<name>.png`` (rows of faces: clean | per severity input,
best baseline, gpen; git-ignored: it shows UTKFace faces). Example::

    faceforge bench restore-quality --weights /tmp/runs/gpen/000/G_ema.pt --faces 500
    faceforge bench restore-quality --size 128 --faces 500          # baselines only
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any, Callable

import click
import cv2
import numpy as np

from benchmarks import RESULTS_DIR, write_results

DEFAULT_NAME = "restore_quality"
FIGURES_DIR = RESULTS_DIR / "figures"
BASELINES = ("bicubic", "lanczos", "nlmeans+usm")


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the gray image (Pech-Pacheco et al., ICPR 2000): higher = sharper."""
    return float(cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def upsample(small: np.ndarray, size: int, interpolation: int) -> np.ndarray:
    """``small`` resized to ``size x size`` (returned as is when already that size)."""
    if small.shape[:2] == (size, size):
        return small
    return cv2.resize(small, (size, size), interpolation=interpolation)


def held_out_faces(data: Path, n: int, size: int) -> tuple[np.ndarray, list[str]]:
    """The first ``n`` held-out faces (by name) of ``data``: uint8 ``(n, size, size, 3)`` and their names.

    Raises:
        FileNotFoundError: no such folder, or no held-out face in it.
    """
    from faceforge.data.images import load_faces
    from faceforge.data.utkface import crc_split as utkface_split
    from faceforge.data.images import list_images

    if not Path(data).is_dir():
        raise FileNotFoundError(f"face folder not found: {data} (pass --data or set FACEFORGE_DATA)")
    _, test = utkface_split(list_images(Path(data)))
    if not test:
        raise FileNotFoundError(f"{data} has no held-out faces (crc32(name) % 20 == 0)")
    test = test[:n]
    return load_faces(test, size), [p.name for p in test]


def evaluate(clean: np.ndarray, methods: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]],
             severities: tuple[str, ...], seed: int = 0, identity: bool = True) -> tuple[dict[str, Any], dict]:
    """Run every method on every face at every severity and average the metrics.

    Args:
        clean: uint8 ``(N, S, S, 3)`` references.
        methods: ``name -> f(input (N, S, S, 3), smalls list of (s, s, 3)) -> (N, S, S, 3)``.
        severities: names in :data:`faceforge.degrade.SEVERITIES`.
        seed: degradation seed.
        identity: compute the dlib identity columns.

    Returns:
        ``(metrics {severity: {method: {psnr, ssim, sharpness, sharpness_ratio, id_distance, id_same}}},
        outputs {severity: {method: (N, S, S, 3)}})``.
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from faceforge.degrade import degrade_fixed_lowres

    size = clean.shape[1]
    clean_sharp = np.array([sharpness(c) for c in clean])
    emb_clean = None
    if identity:
        from faceforge import identity as ident

        emb_clean = ident.embed_many(list(clean))
    metrics: dict[str, Any] = {}
    outputs: dict[str, dict[str, np.ndarray]] = {}
    for sev in severities:
        smalls = [degrade_fixed_lowres(c, sev, seed, i)[0] for i, c in enumerate(clean)]
        inputs = np.stack([upsample(s, size, cv2.INTER_LINEAR) for s in smalls])
        outputs[sev] = {"input": inputs}
        for name, fn in methods.items():
            outputs[sev][name] = fn(inputs, smalls)
        metrics[sev] = {}
        for name, out in outputs[sev].items():
            sharp = np.array([sharpness(o) for o in out])
            row = {
                "psnr": float(np.mean([peak_signal_noise_ratio(c, o, data_range=255) for c, o in zip(clean, out)])),
                "ssim": float(np.mean([structural_similarity(c, o, channel_axis=2, data_range=255)
                                       for c, o in zip(clean, out)])),
                "sharpness": float(sharp.mean()), "sharpness_ratio": float(np.median(sharp / np.maximum(clean_sharp, 1e-6))),
            }
            if emb_clean is not None:
                from faceforge import identity as ident

                d = ident.distance(ident.embed_many(list(out)), emb_clean)
                row.update(id_distance=float(np.mean(d)), id_same=float(np.mean(d < ident.SAME_PERSON_THRESHOLD)))
            metrics[sev][name] = {k: round(v, 4) for k, v in row.items()}
    return metrics, outputs


def baseline_methods(size: int) -> dict[str, Callable]:
    """The classical baselines (see the module docstring)."""
    from faceforge.restore import classical_restore

    return {
        "bicubic": lambda inputs, smalls: np.stack([upsample(s, size, cv2.INTER_CUBIC) for s in smalls]),
        "lanczos": lambda inputs, smalls: np.stack([upsample(s, size, cv2.INTER_LANCZOS4) for s in smalls]),
        "nlmeans+usm": lambda inputs, smalls: np.stack([classical_restore(upsample(s, size, cv2.INTER_LANCZOS4))
                                                        for s in smalls]),
    }


def grid(clean: np.ndarray, outputs: dict[str, dict[str, np.ndarray]], rows: int, methods: list[str]) -> np.ndarray:
    """uint8 grid: per face, clean then for each severity the given methods."""
    tiles = []
    for i in range(min(rows, len(clean))):
        row = [clean[i]] + [outputs[sev][m][i] for sev in outputs for m in methods if m in outputs[sev]]
        tiles.append(np.concatenate(row, axis=1))
    return np.concatenate(tiles, axis=0)


def photo_faces(restorers: dict[str, Any], folders: list[Path], upscale: int = 2, tile: int = 96,
                max_faces: int = 12) -> tuple[list[dict[str, Any]], np.ndarray | None]:
    """Restore every face of every photo in ``folders`` with each restorer (at ``upscale``) and measure the
    paste-back seam (:func:`faceforge.restore.boundary_difference`, per face).

    Returns:
        ``(rows, grid)``: per photo and method the faces restored, their face side in the photo and the
        mean seam (grey levels); the grid shows up to ``max_faces`` faces, smallest first, as tiles of
        ``tile`` px: the photo's face upscaled with Lanczos | each method's result (None without faces).
    """
    from faceforge.errors import NoFaceError
    from faceforge.faces.detect import FaceDetector
    from faceforge.imaging import load_image
    from faceforge.data.images import list_images

    detector = FaceDetector()
    rows, tiles = [], []
    for folder in folders:
        for path in list_images(Path(folder)):
            rgb = load_image(path)
            try:
                found = detector.detect(rgb)
            except NoFaceError:
                found = []
            if not found:
                continue
            results = {}
            for name, r in restorers.items():
                res = r.restore(rgb, detected=found)
                results[name] = res
                seams = [f.seam for f in res.restored if not np.isnan(f.seam)]
                rows.append({"photo": f"{Path(folder).name}/{path.name}", "method": name, "faces": len(res.restored),
                             "face_side_median": round(float(np.median([f.face_side for f in res.restored])), 1),
                             "seam_mean": round(float(np.mean(seams)), 3) if seams else None,
                             "seam_max": round(float(np.max(seams)), 3) if seams else None})
            lanczos = cv2.resize(rgb, (rgb.shape[1] * upscale, rgb.shape[0] * upscale), interpolation=cv2.INTER_LANCZOS4)
            for f in found:
                x0, y0, x1, y1 = (np.asarray(f.box) * upscale).astype(int)
                c = ((x0 + x1) // 2, (y0 + y1) // 2)
                half = max(8, int(0.75 * max(x1 - x0, y1 - y0)))
                box = (max(0, c[0] - half), max(0, c[1] - half), c[0] + half, c[1] + half)

                def cut(img: np.ndarray) -> np.ndarray:
                    part = img[box[1]:box[3], box[0]:box[2]]
                    return cv2.resize(part, (tile, tile), interpolation=cv2.INTER_CUBIC if part.shape[0] < tile
                                      else cv2.INTER_AREA)

                side = float(max(f.box[2] - f.box[0], f.box[3] - f.box[1]))
                tiles.append((side, np.concatenate([cut(lanczos)] + [cut(res.image) for res in results.values()], axis=1)))
    if not tiles:
        return rows, None
    chosen = [t for _, t in sorted(tiles, key=lambda t: t[0])[:max_faces]]
    per_row = 2
    while len(chosen) % per_row:
        chosen.append(np.zeros_like(chosen[0]))
    return rows, np.concatenate([np.concatenate(chosen[i:i + per_row], axis=1) for i in range(0, len(chosen), per_row)])


def _restorer_line(r: dict[str, Any] | None) -> str:
    if not r:
        return "none (baselines only)"
    return f"GPEN {r['size']} px, weights {Path(r['weights']).name} (version {r['version']})"


def markdown(doc: dict[str, Any]) -> str:
    """The results as Markdown tables, with the issue's goals checked."""
    lines = [f"# Face restoration quality ({doc['faces']} held-out UTKFace faces, {doc['size']} px)", "",
             f"Restorer: {_restorer_line(doc['restorer'])}. Degradations: faceforge.degrade severities "
             f"(seed {doc['seed']}). PSNR (dB) / SSIM against the clean face; sharpness = variance of the Laplacian "
             "(median ratio to the clean face's in brackets); identity = mean dlib-embedding distance to the clean "
             "face (same-person share: distance < 0.6).", ""]
    for sev, rows in doc["metrics"].items():
        lines += [f"## {sev}", "", "| method | PSNR | SSIM | sharpness (ratio) | identity distance | same person |",
                  "|---|---|---|---|---|---|"]
        for name, r in rows.items():
            idc = f"{r['id_distance']:.3f} | {100 * r['id_same']:.0f} %" if "id_distance" in r else "- | -"
            lines.append(f"| {name} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['sharpness']:.0f} "
                         f"({r['sharpness_ratio']:.2f}) | {idc} |")
        lines.append("")
    goals = doc.get("goals")
    if goals:
        lines += ["## Goals (issue 13)", "",
                  f"- PSNR at moderate: gpen {goals['psnr_gpen']:.2f} dB vs best baseline {goals['best_baseline']} "
                  f"{goals['psnr_best_baseline']:.2f} dB: {goals['psnr_margin']:+.2f} dB (goal >= +2 dB): "
                  f"**{'met' if goals['psnr_met'] else 'not met'}**"]
        if goals.get("identity") is not None:
            for sev, g in goals["identity"].items():
                lines.append(f"- identity at {sev}: gpen {g['gpen']:.3f} vs input {g['input']:.3f}: "
                             f"**{'closer' if g['met'] else 'not closer'}**")
        lines.append("")
    photos = doc.get("photos")
    if photos:
        lines += [f"## Real photos (x{photos['upscale']} upscale; seam = mean absolute difference, restored vs "
                  "Lanczos canvas, within 3 px of the paste mask's boundary, grey levels)", "",
                  "| photo | method | faces | median face side (px) | seam mean | seam max |", "|---|---|---|---|---|---|"]
        for r in photos["rows"]:
            lines.append(f"| {r['photo']} | {r['method']} | {r['faces']} | {r['face_side_median']} | "
                         f"{r['seam_mean']} | {r['seam_max']} |")
        lines.append("")
    lines += [f"Took {doc['seconds']:.0f} s on {doc['machine']}.", ""]
    return "\n".join(lines)


def run(weights: str | None = None, data: Path | None = None, faces: int = 500, size: int | None = None,
        seed: int = 0, identity: bool | None = None, grid_rows: int = 8, out_dir: Path = RESULTS_DIR,
        figures: Path = FIGURES_DIR, name: str = DEFAULT_NAME, photos: tuple[Path, ...] = (),
        photo_upscale: int = 2) -> dict[str, Any]:
    """Measure, write ``<out_dir>/<name>.json|md`` and the grid, return the results document.

    Raises:
        FileNotFoundError: no data; WeightsNotFoundError / CheckpointError: bad weights;
        ValueError: ``size`` differs from the restorer's.
    """
    import torch

    from faceforge.degrade import SEVERITIES
    from faceforge.imaging import save_image
    from faceforge.data.paths import data_root

    restorer = None
    if weights:
        from faceforge.restore import FaceRestorer

        restorer = FaceRestorer(method="gpen", weights=weights, detector=object())
        if size is not None and size != restorer.size:
            raise ValueError(f"--size {size} differs from the restorer's {restorer.size} px")
        size = restorer.size
    size = size or 64
    if identity is None:
        from faceforge import identity as ident

        identity = ident.is_available() and size >= 32  # dlib's embedding needs >= 32 px faces
    data = Path(data) if data else data_root() / "utkface"
    t0 = time.perf_counter()
    clean, names = held_out_faces(data, faces, size)
    methods = baseline_methods(size)
    if restorer is not None:
        methods["gpen"] = lambda inputs, smalls: restorer.restore_crops(inputs, batch_size=32)
    metrics, outputs = evaluate(clean, methods, tuple(SEVERITIES), seed, identity)
    doc: dict[str, Any] = {
        "faces": len(clean), "size": size, "seed": seed, "data": data.name, "first_face": names[0],
        "restorer": ({**restorer.describe(), "weights": Path(restorer.weights_path).name} if restorer else None),
        "metrics": metrics,
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": f"{platform.machine()} CPU, torch {torch.__version__}, {torch.get_num_threads()} threads",
    }
    if restorer is not None:
        mod = metrics["moderate"]
        best = max(BASELINES, key=lambda m: mod[m]["psnr"])
        goals: dict[str, Any] = {"best_baseline": best, "psnr_best_baseline": mod[best]["psnr"],
                                 "psnr_gpen": mod["gpen"]["psnr"],
                                 "psnr_margin": round(mod["gpen"]["psnr"] - mod[best]["psnr"], 3)}
        goals["psnr_met"] = goals["psnr_margin"] >= 2.0
        goals["identity"] = ({sev: {"gpen": m["gpen"]["id_distance"], "input": m["input"]["id_distance"],
                                    "met": m["gpen"]["id_distance"] < m["input"]["id_distance"]}
                              for sev, m in metrics.items()} if identity else None)
        doc["goals"] = goals
    figures = Path(figures)
    figures.mkdir(parents=True, exist_ok=True)
    shown = ["input", "lanczos", "nlmeans+usm"] + (["gpen"] if restorer else [])
    save_image(figures / f"{name}.png", grid(clean, outputs, grid_rows, shown))
    if photos:
        from faceforge.restore import FaceRestorer

        restorers = {"classical": FaceRestorer(method="classical", upscale=photo_upscale)}
        if weights:
            restorers["gpen"] = FaceRestorer(method="gpen", weights=weights, upscale=photo_upscale)
        rows, photo_grid = photo_faces(restorers, list(photos), photo_upscale)
        doc["photos"] = {"folders": [Path(p).name for p in photos], "upscale": photo_upscale, "rows": rows,
                         "grid_columns": ["lanczos", *restorers]}
        if photo_grid is not None:
            save_image(figures / f"{name}_photos.png", photo_grid)
        doc["seconds"] = round(time.perf_counter() - t0, 1)
    write_results(doc, out_dir, name, markdown)
    return doc


@click.command(DEFAULT_NAME.replace("_", "-"))
@click.option("--weights", default=None,
              help="GPEN weights (G_ema.pt / run folder of `faceforge train gpen`, or a converted published .pth); "
                   "without: baselines only.")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="UTKFace folder [default: $FACEFORGE_DATA/utkface or ../shared/data/utkface].")
@click.option("--faces", type=click.IntRange(1), default=500, show_default=True, help="Held-out faces measured.")
@click.option("--size", type=click.IntRange(16), default=None, help="Face side [default: the restorer's, else 64].")
@click.option("--seed", type=int, default=0, show_default=True, help="Degradation seed.")
@click.option("--no-identity", is_flag=True, help="Skip the dlib identity columns.")
@click.option("--grid-rows", type=click.IntRange(1), default=8, show_default=True)
@click.option("--photos", multiple=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder of real photos to restore whole (repeatable), e.g. ../shared/data/photos/portraits: "
                   "seam per face and a grid of the smallest faces (Lanczos | classical | gpen).")
@click.option("--photo-upscale", type=click.IntRange(1, 8), default=2, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR,
              show_default=True)
@click.option("--figures", type=click.Path(file_okay=False, path_type=Path), default=FIGURES_DIR, show_default=True,
              help="Where the grid goes (git-ignored by default: it shows UTKFace faces).")
@click.option("--name", default=DEFAULT_NAME, show_default=True)
def main(weights: str | None, data: Path | None, faces: int, size: int | None, seed: int, no_identity: bool,
         grid_rows: int, photos: tuple[Path, ...], photo_upscale: int, out_dir: Path, figures: Path, name: str) -> None:
    """PSNR/SSIM/sharpness/identity of GPEN vs bicubic, Lanczos and NL-means + unsharp at three severities."""
    from faceforge.errors import FaceforgeError

    try:
        doc = run(weights, data, faces, size, seed, False if no_identity else None, grid_rows, out_dir, figures, name,
                  photos, photo_upscale)
    except (FileNotFoundError, ValueError, FaceforgeError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(markdown(doc))
    click.echo(f"results: {out_dir / name}.json|md; grid: {figures / name}.png")


if __name__ == "__main__":
    main()

"""How close generated faces are to real ones (issue 17, item 1): sliced Wasserstein distance per pyramid
level beside the real-vs-real figure and two controls that a generator could match without being good.

For each generator (``--weights LABEL=PATH``, or ``default`` for the shipped one), ``n`` faces are drawn from
seeded z (truncation ``psi``, constant noise) and compared with ``n`` real faces (reference set A, a seeded
random subset of ``--data``) by :class:`faceforge.metrics.SWDReference` (Karras et al. 2018, "Progressive
Growing of GANs", appendix D: 7x7 patches of a Laplacian pyramid, per level; x1e3, lower is better) at the
largest generator's resolution; a generator of lower resolution is upsampled (bicubic) to it. Two
normalisations (:meth:`~faceforge.metrics.SWDReference.distance`): ``each`` (the paper's, and what ``faceforge
train stylegan2`` logs: blind to much of what blur does) and ``reference`` (both sets by A's statistics, which
sees weak fine detail).

Beside them, on sets of the same size:

- **real vs real**: another ``n`` real faces (set B, disjoint from A) against A: the floor a perfect
  generator reaches with this many images (issue 17's target: every level within 1.3x of it);
- **real at half size, upsampled**: set B downsampled 2x and back (area, then bicubic): what blur alone
  gets, and what a perfect generator of half the resolution would get, the figure a generator grown from
  half the size must beat to have learned anything at its new top level.

Writes ``<out>/<name>.json|md`` and one 8x8 sample grid per generator under ``<out>/figures/`` (JPEG)::

    python -m benchmarks.stylegan_quality --weights 32px=default \\
        --weights 64px=/tmp/runs/stylegan2/000/G_ema.pt --run /tmp/runs/stylegan2/000
"""

from __future__ import annotations

import csv
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks import RESULTS_DIR, display_path, write_results

DEFAULT_NAME = "stylegan_quality"
TARGET_RATIO = 1.3
"""Issue 17's bar: SWD within 1.3x of real-vs-real at every pyramid level."""


def _resize_all(images: np.ndarray, side: int, interpolation: int) -> np.ndarray:
    import cv2

    return np.stack([cv2.resize(x, (side, side), interpolation=interpolation) for x in images])


def blurred(images: np.ndarray, factor: int = 2) -> np.ndarray:
    """uint8 ``(N, R, R, 3)`` faces downsampled ``factor`` x (area) and back up (bicubic): the blur control."""
    import cv2

    side = images.shape[1]
    return _resize_all(_resize_all(images, side // factor, cv2.INTER_AREA), side, cv2.INTER_CUBIC)


def swd_both(ref: Any, images: np.ndarray) -> dict[str, dict[str, float]]:
    """``{"each": {...}, "reference": {...}}``: :meth:`SWDReference.distance` in both normalisations."""
    return {mode: {k: round(float(v), 3) for k, v in ref.distance(images, normalize=mode).items()}
            for mode in ("each", "reference")}


def read_run_swd(run: Path) -> list[dict[str, float]]:
    """The rows of a stylegan2 run folder's ``metrics.csv`` that carry SWD: step, kimg and the SWD columns.

    Raises:
        FileNotFoundError: no ``metrics.csv`` there.
    """
    path = Path(run) / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (give a stylegan2 run folder)")
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            swd = {k: float(v) for k, v in row.items() if k.startswith("swd_") and v not in ("", None)}
            if swd:
                rows.append({"step": int(row["step"]), "kimg": float(row["kimg"]), **swd})
    return rows


def run(weights: Sequence[tuple[str, str]], data: str | Path | None = None, n: int = 1024, psi: float = 1.0,
        runs: Sequence[Path] = (), out_dir: Path = RESULTS_DIR, name: str = DEFAULT_NAME,
        cache_dir: str | Path | None = None, seed: int = 0, threads: int | None = None) -> dict[str, Any]:
    """Measure (see the module docstring) and write the results.

    Args:
        weights: ``(label, path or "default")`` per generator.
        data: real faces [default: the data root's ``utkface``]; needs ``2 n`` images.
        n: images per set (the trainer's SWD uses ``--swd-images``; compare like with like).
        psi: truncation of the generated faces (1 = none, what the trainer measures).
        runs: stylegan2 run folders whose SWD-over-training rows are tabulated.
        cache_dir: cache of the decoded real faces.

    Raises:
        FileNotFoundError: missing data, weights or run folder.
        ValueError: fewer than ``2 n`` real faces, or no generator.
    """
    import cv2
    import torch

    from faceforge.data.paths import data_root
    from faceforge.metrics import SWDReference
    from faceforge.models import cards, create_model, get_spec
    from faceforge.stylegan import generate, image_grid
    from training.stylegan2 import load_image_set

    if not weights:
        raise ValueError("give at least one generator (--weights LABEL=PATH)")
    if threads:
        torch.set_num_threads(threads)
    folder = Path(data) if data else data_root() / "utkface"
    if not folder.is_dir():
        raise FileNotFoundError(f"real faces not found: {folder} (pass --data)")
    gens = []
    for label, path in weights:
        resolved = cards.resolve("default", get_spec("stylegan2").default_card) if path == "default" else Path(path)
        if not resolved.is_file():
            raise FileNotFoundError(f"generator weights not found: {resolved}")
        gens.append((label, resolved, create_model("stylegan2", weights=resolved).eval()))
    side = max(int(G.resolution) for _, _, G in gens)
    reals = load_image_set(folder, side, cache_dir=cache_dir)
    if len(reals) < 2 * n:
        raise ValueError(f"{folder} holds {len(reals)} faces; need {2 * n} (two disjoint sets of --images {n})")
    pick = np.random.default_rng(seed).permutation(len(reals))
    set_a, set_b = reals[np.sort(pick[:n])], reals[np.sort(pick[n:2 * n])]
    ref = SWDReference.from_images(set_a, 64, min(16, side), seed=0)

    t0 = time.time()
    controls = {"real vs real": swd_both(ref, set_b),
                f"real at {side // 2} px, upsampled (blur)": swd_both(ref, blurred(set_b))}
    floor = controls["real vs real"]
    rows, grids = [], {}
    for label, path, G in gens:
        t1 = time.time()
        faces = generate(G, list(range(seed, seed + n)), psi=psi, batch_size=64)
        seconds = time.time() - t1
        res = int(G.resolution)
        if res != side:
            faces = _resize_all(faces, side, cv2.INTER_CUBIC)
        swd = swd_both(ref, faces)
        ratio = {k: round(v / floor["each"][k], 2) for k, v in swd["each"].items() if floor["each"].get(k)}
        levels = [k for k in ratio if k != "swd_avg"]
        rows.append({"label": label, "weights": display_path(path), "resolution": res, "upsampled": res != side,
                     "meta": {k: G.faceforge_meta.get(k) for k in ("step", "kimg", "version")}
                     if getattr(G, "faceforge_meta", None) else None,
                     "swd": swd, "ratio_to_real_each": ratio,
                     "meets_target": all(ratio[k] <= TARGET_RATIO for k in levels),
                     "generate_seconds": round(seconds, 1)})
        grid_dir = Path(out_dir) / "figures"
        grid_dir.mkdir(parents=True, exist_ok=True)
        grid = grid_dir / f"{name}_{label}.jpg"
        cols = 8 if len(faces) >= 64 else 4
        shown = faces[:min(64, len(faces) // cols * cols)]
        cv2.imwrite(str(grid), cv2.cvtColor(image_grid(shown, len(shown) // cols, cols), cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 92])
        grids[label] = display_path(grid)
    doc = {"data": display_path(folder), "images_per_set": n, "resolution": side, "psi": psi, "seed": seed,
           "controls": controls, "generators": rows, "grids": grids,
           "runs": {display_path(r): read_run_swd(r) for r in runs},
           "seconds": round(time.time() - t0, 1), "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
           "torch": torch.__version__}
    write_results(doc, out_dir, name, markdown)
    return doc


def markdown(doc: dict[str, Any]) -> str:
    """The results as a Markdown report."""
    levels = [k for k in doc["controls"]["real vs real"]["each"] if k != "swd_avg"] + ["swd_avg"]
    head = " | ".join(k.replace("swd_", "") + (" px" if k != "swd_avg" else "") for k in levels)
    lines = [f"# StyleGAN2 sample quality: sliced Wasserstein distance to real faces ({doc['resolution']} px)", "",
             f"Real faces: {doc['data']}; {doc['images_per_set']} images per set; generated with psi "
             f"{doc['psi']}, constant noise, seeds {doc['seed']}.. SWD x1e3 per Laplacian-pyramid level "
             "(lower is better). `each`: each set normalised by its own statistics (Karras et al. 2018; what "
             "training logs); `reference`: both by the real set's (sees missing fine detail). A generator of "
             "lower resolution is upsampled (bicubic). Target (issue 17): every level within "
             f"{TARGET_RATIO}x of real vs real (`each`).", "",
             f"| set | norm. | {head} | ratio to real vs real (each) |",
             "|---|---|" + "---|" * len(levels) + "---|"]
    floor = doc["controls"]["real vs real"]["each"]
    for label, swd in doc["controls"].items():
        for mode in ("each", "reference"):
            ratio = " / ".join(f"{swd['each'][k] / floor[k]:.2f}" for k in levels if k != "swd_avg") \
                if mode == "each" else ""
            lines.append(f"| {label} (control) | {mode} | " + " | ".join(f"{swd[mode][k]:.2f}" for k in levels)
                         + f" | {ratio} |")
    for r in doc["generators"]:
        name = f"{r['label']} ({r['resolution']} px{', upsampled' if r['upsampled'] else ''})"
        for mode in ("each", "reference"):
            ratio = (" / ".join(f"{r['ratio_to_real_each'][k]:.2f}" for k in levels if k != "swd_avg")
                     + (" (meets)" if r["meets_target"] else " (not met)")) if mode == "each" else ""
            lines.append(f"| **{name}** | {mode} | " + " | ".join(f"{r['swd'][mode][k]:.2f}" for k in levels)
                         + f" | {ratio} |")
    lines += ["", "Generators:", ""]
    for r in doc["generators"]:
        lines.append(f"- {r['label']}: `{r['weights']}` {r['meta'] or ''}; {doc['images_per_set']} faces in "
                     f"{r['generate_seconds']} s; grid `{doc['grids'][r['label']]}`")
    for run_name, rows in doc["runs"].items():
        if not rows:
            continue
        cols = [k for k in rows[0] if k.startswith("swd_")]
        lines += ["", f"## SWD over training: `{run_name}` (the trainer's own reference set, `each`)", "",
                  "| step | kimg | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
        lines += [f"| {r['step']} | {r['kimg']:g} | " + " | ".join(f"{r.get(c, float('nan')):.2f}" for c in cols)
                  + " |" for r in rows]
    lines += ["", f"{doc['machine']}, torch {doc['torch']}; {doc['seconds']} s."]
    return "\n".join(lines) + "\n"


def _command():
    import click

    @click.command("stylegan-quality")
    @click.option("--weights", "weights", multiple=True, default=("shipped=default",), show_default=True,
                  help="LABEL=PATH of a StyleGAN2 generator (PATH 'default': the shipped one); repeatable.")
    @click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
                  help="Real faces [default: the data root's utkface].")
    @click.option("--images", "n", type=click.IntRange(16), default=1024, show_default=True,
                  help="Images per set (match the run's --swd-images to compare with its log).")
    @click.option("--psi", type=click.FloatRange(0, 1), default=1.0, show_default=True)
    @click.option("--run", "runs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
                  help="A stylegan2 run folder whose SWD over training is tabulated; repeatable.")
    @click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
    @click.option("--threads", type=click.IntRange(1), default=None)
    @click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR,
                  show_default=True)
    @click.option("--name", default=DEFAULT_NAME, show_default=True)
    def main(weights, data, n, psi, runs, cache_dir, threads, out_dir, name) -> None:
        """SWD of generated faces per pyramid level beside real-vs-real and blur controls, with sample grids."""
        from faceforge.errors import FaceforgeError

        pairs = []
        for item in weights:
            label, sep, path = item.partition("=")
            if not sep or not label.strip() or not path.strip():
                raise click.BadParameter(f"expected LABEL=PATH, got {item!r}", param_hint="--weights")
            pairs.append((label.strip(), path.strip()))
        try:
            doc = run(pairs, data, n, psi, runs, out_dir, name, cache_dir, threads=threads)
        except (FaceforgeError, FileNotFoundError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(markdown(doc))

    return main


main = _command()

if __name__ == "__main__":
    main()

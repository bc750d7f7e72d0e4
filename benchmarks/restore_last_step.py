"""Blind face restoration as the last step of translate, frontalize and swap (issue 13, item 5): does it
raise their outputs' sharpness, and does it keep identity?

Photos: every image of ``--portraits`` (default ``$FACEFORGE_DATA/photos/portraits``) plus the ``--groups``
files of ``photos/groups`` (default ``two_people.jpg``, ``obama_and_biden.jpg``); every face the task changes
is a row. Tasks, each with the library's defaults:

- ``translate``: :class:`faceforge.translate.FaceTranslator` ``age`` (installed weights, ``detail="transfer"``),
  A->B, all faces; restored with :func:`faceforge.restore.restore_last` (what ``faceforge translate
  --restore`` runs).
- ``frontalize``: :class:`faceforge.frontalize.Frontalizer` (installed weights); each frontal crop restored
  with :func:`faceforge.frontalize.restore_frontal` (``faceforge frontalize --restore``).
- ``swap``: classical :class:`faceforge.swap.FaceSwapper` (Laplacian blend) with the largest face of
  ``--source`` (default the first ``photos/portraits_256`` image, a person absent from the targets) on
  every face; restored with :func:`~faceforge.restore.restore_last` (``faceforge swap --restore``).
  Refused faces (yaw gap, too small, same face) are skipped and counted.

Restore methods: ``off``, ``classical`` (non-local means + unsharp mask) and, with ``--gpen-weights`` (or
``$FACEFORGE_GPEN_WEIGHTS``), ``gpen``.

Measurement crops: translate and swap: the input and the output photo aligned identically (the input's
detection, ``utkface`` template) at the face's own resolution (its template square in photo pixels,
rounded to a multiple of 4, clipped to 64-512 px), so no resampling decides the figure; frontalize: the
frontal crop (the generator's side ``S``) against the input face aligned at ``S``. In each crop:

- **sharpness ratio** = :func:`faceforge.metrics.sharpness_ratio` in
  :func:`~faceforge.metrics.face_region_mask` (variance of the Laplacian, output / input; 1 = as sharp as
  the input); pixel noise and JPEG grain count as sharpness in it, so a denoiser can lower it while edges
  get crisper: the **half-scale ratio** measures the same on both crops shrunk 2x (area averaging), where
  single-pixel noise is averaged away and edges remain;
- **identity distance** (:mod:`faceforge.identity`, dlib ResNet in PyTorch) of the output to the input
  face; for swap also to the source face (what a swap should come near), and, for the restored rows, to the
  same task's unrestored output (what restoration alone moves);
- **blur control** (:func:`faceforge.metrics.blur_control`): the input crop blurred to the output's
  sharpness, and its identity distance to the input: the distance blur alone costs.

Medians (and quartiles) over faces per task and method. Writes ``<out>/<name>.json|md``; with
``--grid``, a PNG of input | off | classical | gpen crops per face (kept out of the repository: it shows
the photos' people). Example::

    nice -n 10 faceforge bench restore-last-step --threads 1 --gpen-weights runs/gpen/000/G_ema.pt \\
        --grid /tmp/restore_last_step.png
"""

from __future__ import annotations

import os
import platform
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import click
import numpy as np

from benchmarks import RESULTS_DIR, display_path, median_iqr, write_results

DEFAULT_NAME = "restore_last_step"
DEFAULT_GROUPS = ("two_people.jpg", "obama_and_biden.jpg", "12_angry_men.jpg")
SMALL_FACE = 96
"""Faces whose own side (:func:`measurement_side`) is at most this many px are tabulated apart too (near the
side of small restorers such as the 64 px GPEN run; large faces are downsampled by such a restorer)."""
TASKS = ("translate", "frontalize", "swap")
TILE = 112


def measurement_side(face: Any) -> int:
    """Side (px) of the ``utkface`` crop at the face's own resolution: its template square in photo pixels,
    a multiple of 4 in 64-512."""
    from faceforge.faces.align import alignment_scale

    side = 256 / alignment_scale(face, 256, "utkface")
    return int(np.clip(round(side / 4) * 4, 64, 512))


def _half(crop: np.ndarray) -> np.ndarray:
    import cv2

    side = crop.shape[0] // 2
    return cv2.resize(np.ascontiguousarray(crop), (side, side), interpolation=cv2.INTER_AREA)


def face_metrics(inp: np.ndarray, outputs: dict[str, np.ndarray], extra_refs: dict[str, np.ndarray] | None = None,
                 identity: bool = True) -> dict[str, dict[str, float]]:
    """Per restore method: sharpness ratio, identity distances and the blur control's, for one face.

    Args:
        inp: uint8 ``(S, S, 3)`` the input face (``utkface`` crop).
        outputs: method -> uint8 ``(S, S, 3)`` output crop, aligned like ``inp``; ``"off"`` first.
        extra_refs: name -> uint8 crop to also measure the identity distance to (e.g. ``source``).
        identity: compute the dlib distances.

    Returns:
        method -> ``{"sharpness_ratio", "sharpness_ratio_half", "id_input", "id_blur_control", "id_off", "id_<ref>"}`` (identity keys
        only with ``identity``; ``id_off`` only for restored methods).
    """
    from faceforge.metrics import blur_control, face_region_mask, laplacian_variance

    mask = face_region_mask(inp.shape[0])
    rows: dict[str, dict[str, float]] = {}
    names = list(outputs)
    crops = [outputs[n] for n in names]
    sharp_in = float(laplacian_variance(inp, mask)[0])
    sharp_out = laplacian_variance(crops, mask)
    half = [_half(c) for c in [inp, *crops]]
    half_mask = face_region_mask(half[0].shape[0])
    half_in, half_out = float(laplacian_variance(half[0], half_mask)[0]), laplacian_variance(half[1:], half_mask)
    blurred, _ = blur_control([inp] * len(crops), crops, mask) if identity else (None, None)
    emb = {}
    if identity:
        from faceforge import identity as ident

        refs = dict(extra_refs or {})
        stack = [inp, *crops, *blurred, *refs.values()]
        vecs = ident.embed_many(np.stack(stack))
        emb["input"] = vecs[0]
        out_vecs = vecs[1:1 + len(crops)]
        blur_vecs = vecs[1 + len(crops):1 + 2 * len(crops)]
        ref_vecs = dict(zip(refs, vecs[1 + 2 * len(crops):]))
    for k, name in enumerate(names):
        row = {"sharpness_ratio": float(sharp_out[k] / sharp_in) if sharp_in > 0 else float("nan"),
               "sharpness_ratio_half": float(half_out[k] / half_in) if half_in > 0 else float("nan")}
        if identity:
            from faceforge.identity import distance

            row["id_input"] = distance(out_vecs[k], emb["input"])
            row["id_blur_control"] = distance(blur_vecs[k], emb["input"])
            if name != "off":
                row["id_off"] = distance(out_vecs[k], out_vecs[0])
            for ref, v in ref_vecs.items():
                row[f"id_{ref}"] = distance(out_vecs[k], v)
        rows[name] = {key: round(float(v), 4) for key, v in row.items()}
    return rows


def _tile(crop: np.ndarray) -> np.ndarray:
    import cv2

    interp = cv2.INTER_AREA if crop.shape[0] > TILE else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(crop), (TILE, TILE), interpolation=interp)


def _label(text: str, width: int, height: int = 18) -> np.ndarray:
    import cv2

    strip = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(strip, text, (4, height - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def grid_image(tiles: dict[str, list[np.ndarray]], methods: Sequence[str]) -> np.ndarray:
    """Rows of ``input | <method>...`` tiles grouped by task, each group under a label strip naming the columns."""
    parts = []
    for task, rows in tiles.items():
        if rows:
            parts.append(_label(f"{task}: " + " | ".join(["input", *methods]), rows[0].shape[1]))
            parts.extend(rows)
    return np.concatenate(parts, axis=0)


def run(portraits: Path | None = None, groups_dir: Path | None = None, groups: Sequence[str] = DEFAULT_GROUPS,
        source: Path | None = None, gpen_weights: str | None = None, tasks: Sequence[str] = TASKS,
        identity: bool = True, threads: int | None = 1, out_dir: Path = RESULTS_DIR, name: str = DEFAULT_NAME,
        grid: Path | None = None, grid_faces: int = 6, note: str = "") -> dict[str, Any]:
    """Run the benchmark (see the module docstring); returns the result document and writes it."""
    import torch

    from faceforge.data.images import list_images
    from faceforge.data.paths import data_root, require_dir
    from faceforge.errors import FaceforgeError
    from faceforge.faces.align import align_face
    from faceforge.imaging import load_image, save_image
    from faceforge.restore import ENV_VAR, resolve_weights, restore_last

    if threads:
        torch.set_num_threads(threads)
    root = data_root()
    portraits = require_dir(portraits or root / "photos" / "portraits", "portraits", "photos/portraits/*.jpg")
    groups_dir = require_dir(groups_dir or root / "photos" / "groups", "group photos", "photos/groups/*.jpg")
    photos = list_images(portraits) + [groups_dir / g for g in groups]
    methods = ["off", "classical"]
    old_env = os.environ.get(ENV_VAR)
    gpen_path = gpen_info = None
    if gpen_weights or old_env:
        from faceforge.restore import FaceRestorer

        gpen_path = resolve_weights(gpen_weights or old_env)
        probe = FaceRestorer(method="gpen", weights=gpen_path, detector=object())  # type: ignore[arg-type]
        gpen_info = {**probe.describe(), "weights": display_path(gpen_path),
                     **{k: probe.meta[k] for k in ("step", "kimg", "finished", "identity") if k in probe.meta}}
        os.environ[ENV_VAR] = str(gpen_path)
        methods.append("gpen")
    rows: list[dict[str, Any]] = []
    tiles: dict[str, list[np.ndarray]] = {t: [] for t in tasks}
    skipped: dict[str, list[str]] = {t: [] for t in tasks}
    t_start = time.perf_counter()
    try:
        from faceforge.faces.detect import FaceDetector

        detector = FaceDetector("auto", num_threads=threads)  # one detection per photo, shared by the tasks
        translator = frontalizer = swapper = src = src_face = None
        if "translate" in tasks:
            from faceforge.translate import FaceTranslator, get_task, resolve_weights as tr_weights

            translator = FaceTranslator("age", weights=tr_weights(get_task("age"), None), detector=detector)
        if "frontalize" in tasks:
            from faceforge.frontalize import Frontalizer, resolve_weights as fr_weights, restore_frontal

            frontalizer = Frontalizer(weights=fr_weights(None), detector=detector, num_threads=threads)
        if "swap" in tasks:
            from faceforge.swap import FaceSwapper

            swapper = FaceSwapper(detector=detector)
            source = source or list_images(require_dir(root / "photos" / "portraits_256", "portraits_256",
                                                       "photos/portraits_256/*.png"))[0]
            src_rgb = load_image(source)
            src_found = detector.detect(src_rgb)
            src = swapper.prepare_source(src_rgb, detected=src_found)
            src_face = src_found[src.index]
        for path in photos:
            rgb = load_image(path)
            label = f"{path.parent.name}/{path.name}"
            try:
                found = detector.detect(rgb)
            except FaceforgeError:
                found = []
            if not found:
                for t in tasks:
                    skipped[t].append(f"{label}: no face")
                continue
            for task in tasks:
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    try:
                        if task == "translate":
                            res = translator.translate(rgb, faces="all", detected=found)
                            changed = [found[f.index] for f in res.translated]
                            images = {"off": res.image}
                            for m in methods[1:]:
                                images[m], _ = restore_last(res.image, changed, m, detector=detector)
                            per_face = [(f.index, found[f.index], None) for f in res.translated]
                        elif task == "swap":
                            res = swapper.swap(src, rgb, faces="all", detected=found)
                            changed = [found[f.index] for f in res.swapped]
                            images = {"off": res.image}
                            for m in methods[1:]:
                                images[m], _ = restore_last(res.image, changed, m, detector=detector)
                            per_face = [(f.index, found[f.index], None) for f in res.swapped]
                            skipped[task] += [f"{label} face {f.index}: {f.skipped}" for f in res.faces
                                              if f.selected and not f.swapped]
                        else:
                            res = frontalizer.frontalize(rgb, faces="all", detected=found)
                            done = res.frontalized
                            outs = {"off": [f.output for f in done]}
                            for m in methods[1:]:
                                outs[m], _ = restore_frontal(outs["off"], m, detector=detector)
                            per_face = [(f.index, found[f.index], {m: outs[m][k] for m in methods})
                                        for k, f in enumerate(done)]
                            skipped[task] += [f"{label} face {f.index}: {f.warning}" for f in res.faces
                                              if f.selected and not f.frontalized]
                    except FaceforgeError as exc:
                        skipped[task].append(f"{label}: {type(exc).__name__}: {exc}")
                        continue
                elapsed = (time.perf_counter() - t0) * 1e3
                for index, face, crops in per_face:
                    if crops is None:
                        side = measurement_side(face)
                        inp = align_face(rgb, face, side, template="utkface").image
                        crops = {m: align_face(images[m], face, side, template="utkface").image for m in methods}
                    else:
                        side = crops["off"].shape[0]
                        inp = align_face(rgb, face, side, template="utkface").image
                    refs = None
                    if task == "swap" and identity:
                        refs = {"source": align_face(src.image, src_face, side, template="utkface").image}
                    metrics = face_metrics(inp, crops, refs, identity)
                    rows.append({"task": task, "file": label, "face": int(index), "side": side,
                                 "face_side": measurement_side(face),
                                 "ms_photo": round(elapsed, 1), "methods": metrics})
                    if grid is not None and len(tiles[task]) < grid_faces:
                        tiles[task].append(np.concatenate([_tile(inp)] + [_tile(crops[m]) for m in methods], axis=1))
    finally:
        if old_env is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = old_env
    summary = summarise(rows, methods, tasks)
    doc = {"benchmark": DEFAULT_NAME, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": {"platform": platform.platform(), "python": platform.python_version(),
                       "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
           "photos": [display_path(p) for p in photos], "source": display_path(source) if source else None,
           "gpen": gpen_info, "note": note, "methods": methods, "tasks": list(tasks),
           "identity": identity, "seconds": round(time.perf_counter() - t_start, 1),
           "summary": summary, "skipped": skipped, "rows": rows}
    write_results(doc, out_dir, name, markdown)
    if grid is not None and any(tiles.values()):
        grid.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, grid_image(tiles, methods))
        doc["grid"] = str(grid)
    return doc


def summarise(rows: list[dict[str, Any]], methods: Sequence[str], tasks: Sequence[str]) -> dict[str, Any]:
    """task -> method -> metric -> :func:`faceforge.metrics.summarize` (median, quartiles, n)."""
    from faceforge.metrics import summarize

    out: dict[str, Any] = {}
    for task in tasks:
        these = [r for r in rows if r["task"] == task]
        out[task] = {}
        for m in methods:
            out[task].setdefault("by_face_side", {})[m] = {
                f"<= {SMALL_FACE}": summarize([r["methods"][m]["sharpness_ratio"] for r in these
                                               if r["face_side"] <= SMALL_FACE]),
                f"> {SMALL_FACE}": summarize([r["methods"][m]["sharpness_ratio"] for r in these
                                              if r["face_side"] > SMALL_FACE])}
            keys = sorted({k for r in these for k in r["methods"][m]})
            out[task][m] = {k: summarize([r["methods"][m][k] for r in these if k in r["methods"][m]]) for k in keys}
            if these:
                out[task][m]["sharper_than_off"] = None if m == "off" else round(float(np.mean(
                    [r["methods"][m]["sharpness_ratio"] > r["methods"]["off"]["sharpness_ratio"] for r in these])), 3)
    return out


def _gpen_line(info: dict[str, Any] | None) -> str:
    if not info:
        return "no weights (gpen rows absent)"
    return (f"{info['weights']}, {info['size']} px, version {info['version']}"
            + (f", step {info['step']}" if "step" in info else "")
            + (", unfinished run" if info.get("finished") is False else "")
            + (f" ({info['identity']})" if info.get("identity") else ""))


def markdown(doc: dict[str, Any]) -> str:
    """The result tables (median [quartiles] over faces)."""
    lines = [f"# Restoration as the last step of translate, frontalize and swap ({doc['created']})", "",
             f"{len(doc['photos'])} photos ({', '.join(Path(p).name for p in doc['photos'])}); swap source "
             f"{Path(doc['source']).name if doc['source'] else 'n/a'}; GPEN: {_gpen_line(doc.get('gpen'))}; torch threads {doc['machine']['torch_threads']}, "
             f"{doc['seconds']} s.", "",
             "Sharpness ratio = variance of the Laplacian in the face-region ellipse, output / input (1 = as sharp as "
             "the input); at half scale = the same on both crops shrunk 2x (pixel noise averaged away); identity = dlib ResNet distance (< 0.6 = same person) of the output to the input face; "
             "blur control = the input blurred to the output's sharpness, its distance to the input; vs off = "
             "distance of the restored output to the unrestored one; sharper = share of faces whose ratio rose "
             "over off. Median [quartiles] over faces.", "", *([doc["note"], ""] if doc.get("note") else []),
             "| task | restore | faces | sharpness ratio | at half scale | sharper | identity to input | blur control | "
             "vs off | to source |", "| --- | --- | ---: | --- | --- | ---: | --- | --- | --- | --- |"]
    for task, per in doc["summary"].items():
        for m, s in per.items():
            if m == "by_face_side":
                continue
            n = s.get("sharpness_ratio", {}).get("n", 0)
            sharper = s.get("sharper_than_off")
            lines.append(f"| {task} | {m} | {n} | {median_iqr(s.get('sharpness_ratio'))} | "
                         f"{median_iqr(s.get('sharpness_ratio_half'))} | "
                         f"{'' if sharper is None else f'{100 * sharper:.0f} %'} | {median_iqr(s.get('id_input'))} | "
                         f"{median_iqr(s.get('id_blur_control'))} | "
                         f"{median_iqr(s.get('id_off')) if m != 'off' else ''} | "
                         f"{median_iqr(s.get('id_source')) if task == 'swap' else ''} |")
    lines += ["", f"## Sharpness ratio by the face's own side in the photo (<= {SMALL_FACE} px or larger)", "",
              "| task | restore | small faces | sharpness ratio | large faces | sharpness ratio |",
              "| --- | --- | ---: | --- | ---: | --- |"]
    for task, per in doc["summary"].items():
        for m, buckets in per.get("by_face_side", {}).items():
            small, large = buckets[f"<= {SMALL_FACE}"], buckets[f"> {SMALL_FACE}"]
            lines.append(f"| {task} | {m} | {small.get('n', 0)} | {median_iqr(small)} | {large.get('n', 0)} | "
                         f"{median_iqr(large)} |")
    lines += ["", "## Skipped", ""]
    for task, items in doc["skipped"].items():
        lines.append(f"- {task}: {len(items)}" + ("" if not items else " (" + "; ".join(items[:8])
                                                   + ("; ..." if len(items) > 8 else "") + ")"))
    return "\n".join(lines) + "\n"


@click.command("restore-last-step")
@click.option("--portraits", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Folder of portraits [default: $FACEFORGE_DATA/photos/portraits].")
@click.option("--groups-dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Folder of the group photos [default: $FACEFORGE_DATA/photos/groups].")
@click.option("--group", "groups", multiple=True, default=DEFAULT_GROUPS, show_default=True,
              help="Group photo file in --groups-dir (repeatable).")
@click.option("--source", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Swap source photo [default: the first photos/portraits_256 image].")
@click.option("--gpen-weights", default=None,
              help="GPEN checkpoint or run folder for the gpen rows [default: $FACEFORGE_GPEN_WEIGHTS; none: no gpen rows].")
@click.option("--task", "tasks", multiple=True, type=click.Choice(TASKS), default=TASKS, show_default=True)
@click.option("--no-identity", is_flag=True, help="Skip the dlib identity distances.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="torch CPU threads.")
@click.option("--grid", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a PNG of input | off | classical | gpen per face (first --grid-faces per task).")
@click.option("--grid-faces", type=click.IntRange(1), default=6, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR,
              show_default=True)
@click.option("--name", default=DEFAULT_NAME, show_default=True, help="Stem of the result files.")
@click.option("--note", default="", help="Free text printed under the table's legend.")
def main(portraits, groups_dir, groups, source, gpen_weights, tasks, no_identity, threads, grid, grid_faces,
         out_dir, name, note) -> None:
    """Restoration as the last step of translate, frontalize and swap: sharpness and identity (issue 13)."""
    from faceforge.errors import FaceforgeError

    try:
        doc = run(portraits, groups_dir, groups, source, gpen_weights, tasks, not no_identity, threads, out_dir,
                  name, grid, grid_faces, note)
    except FaceforgeError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(markdown(doc))
    click.echo(f"wrote {out_dir / name}.json|md" + (f" and {grid}" if doc.get("grid") else ""))

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
:class:`faceforge.frontalize.Frontalizer` (BlazeFace, Face Mesh yaw, pose-tolerant crop, rerender,
generator) twice in the same run, before and after: ``output_size="generator"`` (the generator's crop) and
``--output-size`` (default ``face``: composed at the face's own side, :func:`faceforge.frontalize.compose_frontal`),
plus the after output restored (``--restore``, default classical) and, as the control, the rerender alone
(:func:`variant_names`). The faces whose estimated ``|yaw|`` is at least ``--min-yaw`` are listed with
their yaw; a grid shows (input face | generator's crop enlarged | new output) for the most turned and the
largest faces. No true frontal exists there, so these are shown, and scored only by figures that need
none (issue 14), on every frontalized face, every variant brought to the new output's side ``P``:

- **sharpness ratio** (variance of the Laplacian in a central face ellipse, :mod:`faceforge.metrics`) of each
  variant against the input face crop at ``P`` (the generator's crop enlarged bicubically to ``P``);
- **identity**: dlib ResNet distance of each variant to that input crop, and the same-person share (< 0.6);
- **output yaw** of turned faces: Face Mesh's calibrated yaw on each variant (:func:`output_yaw`);
- **grayscale in -> grayscale out**: the chroma of the outputs of gray photos (:func:`faceforge.metrics.max_chroma`);
- **realism** (``--real-frontal``, e.g. ``data/utkface_age/testA`` or ``../shared/data/utkface``): the
  reference-normalised SWD from the generator's own crops to real near-frontal faces cut the same way (the frontalizer's
  own pose-tolerant crop of faces with Face Mesh ``|yaw| < 10``), beside the same distance between two
  disjoint sets of such real faces (real-vs-real) and from the generator's inputs (the rerenders);
- the **seam**: the frontalizer pastes nothing back into the photo; inside a composed output, the
  boundary between the camera's pixels and the generator's is measured by :func:`visibility_seam`.

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

from benchmarks import RESULTS_DIR, display_path, median_iqr, write_results

DEFAULT_NAME = "frontalize_quality"
FIGURES_DIR = RESULTS_DIR / "figures"


def pair_grid(frontalizer: Any, dataset: Any, n_faces: int) -> np.ndarray:
    """Rows: held-out faces; per yaw bucket the rendered profile, the generator's input and its output,
    then the true frontal. uint8 ``(n * S, (3 * buckets + 1) * S, 3)``."""
    from faceforge.imaging import load_image
    from faceforge.data.images import label_tile
    from faceforge.data.images import resize_square

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


PHOTO_FACE_ELLIPSE = ((0.5, 0.5), (0.38, 0.45))
"""Face-region ellipse on the frontalizer's pose-tolerant crops (centre, semi-axes; fractions of the side)."""

BEFORE = "generator"
"""The variant every photo face is also measured in: ``output_size="generator"`` (the generator's own crop,
enlarged to the face's side for the figures), the output before ``output_size`` existed."""

CONTROL = "rerender"
"""The control variant: the rerender alone at the face's side (what the camera saw, warped to frontal, no
generator), the ceiling of what keeping the camera's pixels can give."""


def variant_names(output_size: str | int = "face", restore: Sequence[str] = ("classical",)) -> list[str]:
    """Names of the measured variants, table order: the generator's crop enlarged, the rerender alone, the
    ``output_size`` output, and that output restored by each of ``restore``."""
    after = f"output_size={output_size}"
    return [f"{BEFORE} (enlarged)", CONTROL, after] + [f"{after} + {m} restore" for m in restore]


def output_yaw(frontalizer: Any, image: np.ndarray) -> float | None:
    """The calibrated yaw (degrees) Face Mesh reads on a frontal output (the frontalizer's own detector and
    Face Mesh, :func:`faceforge.frontalize.calibrate_yaw`), or ``None`` when no face is found in it."""
    from faceforge.errors import NoFaceError
    from faceforge.faces.rotate import estimate_yaw
    from faceforge.frontalize import calibrate_yaw

    faces = frontalizer.detector.detect(image)
    if not faces:
        return None
    try:
        pts = frontalizer.mesh.landmarks_3d(image, faces[0]).astype(np.float64)
    except NoFaceError:
        return None
    return calibrate_yaw(estimate_yaw(pts))


def visibility_seam(output: np.ndarray, rerender: np.ndarray, visibility: np.ndarray,
                    face: np.ndarray) -> float | None:
    """Seam figure at the visibility boundary of a composed output (:func:`faceforge.frontalize.compose_frontal`).

    With ``band`` the pixels where the visibility mask ramps (:func:`faceforge.metrics.paste_band`) inside the
    face region and ``rest`` the other face pixels: ``seam_ratio(output, rerender, band) /
    seam_ratio(output, rerender, rest)`` (:func:`faceforge.metrics.seam_ratio`, Sobel gradients). 1: the
    boundary between the camera's pixels and the generator's adds no more edges than the composition changes
    elsewhere; above 1: a step or ghost contour along it; below 1: the generator's blur dominates there.
    ``None`` when the band or the rest is empty (nothing hidden in the face).
    """
    from faceforge.metrics import paste_band, seam_ratio

    band = paste_band(visibility) & face
    rest = face & ~band
    if band.sum() < 16 or rest.sum() < 16:
        return None
    return round(seam_ratio(output, rerender, band) / seam_ratio(output, rerender, rest), 4)


def photo_faces(frontalizer: Any, folders: Sequence[Path], min_yaw: float,
                quality: list[dict] | None = None, sets: dict[str, list] | None = None,
                output_size: str | int = "face", restore: Sequence[str] = ("classical",),
                identity: bool = False, tile: int = 256) -> tuple[list[dict], list[tuple], int]:
    """Frontalize every face of every image in ``folders``, before and after, in one run.

    Each photo is detected once and frontalized twice: ``output_size="generator"`` (before: the generator's
    crop) and ``output_size`` (after, default ``"face"``: composed at the face's side). Every variant of
    :func:`variant_names` is brought to the after-output's side ``P`` (the generator's crop enlarged,
    bicubic) and measured against the input face crop at ``P`` (the pose-tolerant crop of the photo).

    Args:
        quality: when a list, one row per frontalized face is appended: file, face, yaw, the face's side in
            the photo, ``P``, gray photo, and per variant the sharpness ratio against the crop, the identity
            distance to it (``identity``), the chroma p99 (gray photos) and, for faces with ``|yaw| >=
            min_yaw``, the calibrated yaw Face Mesh reads on the output (:func:`output_yaw`).
        sets: when a dict, ``"outputs"`` and ``"inputs"`` get the generator's crop and its input at the
            generator's side, ``"new_outputs"`` the after output shrunk to it (for the realism distances).
        output_size: the after variant (:func:`faceforge.frontalize.parse_output_size`).
        restore: restoration methods run on the after output (``faceforge.frontalize.restore_frontal``).
        identity: compute dlib identity distances (:mod:`faceforge.identity`).
        tile: side of the grid tiles in px.

    Returns:
        ``(rows, tiles, total)``: per frontalized face with ``|yaw| >= min_yaw`` a JSON row (file, face
        index, yaw, roll, in_range, score); per face ``(|yaw|, face_px, input, before enlarged, after,
        label)`` at ``tile`` px for the grid; ``total`` the number of faces frontalized.
    """
    from faceforge.metrics import face_region_mask, laplacian_variance, max_chroma
    import warnings

    from faceforge.errors import NoFaceError, PoseOutOfRangeError
    from faceforge.frontalize import restore_frontal
    from faceforge.imaging import load_image
    from faceforge.data.images import list_images, resize_square

    names = variant_names(output_size, restore)
    rows, tiles, total = [], [], 0
    s = frontalizer.size
    for folder in folders:
        for path in list_images(Path(folder)):
            try:
                rgb = load_image(path)
                found = frontalizer.detector.detect(rgb)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # out-of-range yaws are listed, not warned
                    before = frontalizer.frontalize(rgb, detected=found, output_size="generator")
                    after = frontalizer.frontalize(rgb, detected=found, output_size=output_size)
            except (NoFaceError, PoseOutOfRangeError, ValueError):  # no face, or every face beyond the range
                continue
            total += len(after.frontalized)
            gray = max_chroma(rgb, percentile=99.9) <= 3
            done_before = {f.index: f for f in before.frontalized}
            for f in after.frontalized:
                b = done_before[f.index]
                side = f.output.shape[0]
                crop = resize_square(f.crop, side)
                back = f.rerender if f.rerender is not None else f.crop
                variants = {names[0]: resize_square(b.output, side), names[1]: resize_square(back, side),
                            names[2]: f.output}
                for m, name in zip(restore, names[3:]):
                    variants[name] = restore_frontal([f.output], m, detector=frontalizer.detector)[0][0]
                turned = abs(f.yaw) >= min_yaw
                if quality is not None:
                    mask = face_region_mask(side, PHOTO_FACE_ELLIPSE)
                    v = laplacian_variance([crop] + list(variants.values()), mask)
                    dist = {}
                    if identity:
                        from faceforge import identity as ident
                        vecs = ident.embed_many([crop] + list(variants.values()))
                        dist = {name: float(ident.distance(vecs[0], vec)) for name, vec in zip(variants, vecs[1:])}
                    x0, y0, x1, y1 = (float(c) for c in f.box)
                    row = {"file": f"{Path(folder).name}/{path.name}", "face": f.index, "yaw": round(f.yaw, 1),
                           "face_px": round(float(f.face_px), 1), "box_px": round(max(x1 - x0, y1 - y0), 1),
                           "output_px": int(side), "upscaled": bool(f.upscaled), "gray_photo": bool(gray),
                           "variants": {}}
                    for k, (name, img) in enumerate(variants.items()):
                        r = {"sharpness_vs_crop": round(float(v[k + 1] / v[0]), 4) if v[0] > 0 else None}
                        if identity:
                            r["id_to_input"] = round(dist[name], 4)
                        if gray:
                            r["chroma_p99"] = max_chroma(img, percentile=99)
                        if turned and name != CONTROL:
                            y = output_yaw(frontalizer, img)
                            r["output_yaw"] = None if y is None else round(float(y), 1)
                        row["variants"][name] = r
                    if f.visibility is not None and f.visibility.shape[0] == side:
                        row["seam"] = visibility_seam(f.output, back, f.visibility, mask)
                    quality.append(row)
                if sets is not None:
                    sets.setdefault("outputs", []).append(b.output)
                    sets.setdefault("new_outputs", []).append(resize_square(f.output, s))
                    sets.setdefault("inputs", []).append(resize_square(b.rerender if b.rerender is not None
                                                                       else b.crop, s))
                label = f"{path.stem[:8]} {f.yaw:+.0f}"
                tiles.append((abs(f.yaw), float(f.face_px), resize_square(crop, tile),
                              resize_square(variants[names[0]], tile), resize_square(f.output, tile), label))
                if not turned:
                    continue
                rows.append({"file": f"{Path(folder).name}/{path.name}", "face": f.index, "yaw": round(f.yaw, 1),
                             "roll": round(f.roll, 1), "in_range": f.in_range, "score": round(f.score, 3)})
    return rows, tiles, total


def summarize_photo_quality(quality: list[dict], names: Sequence[str]) -> dict[str, Any]:
    """Per variant over every row of :func:`photo_faces`: the sharpness ratio, identity distance and
    same-person share (< 0.6), gray photos' chroma, and on turned faces the output's ``|yaw|`` and the share
    under 10 degrees (faces where Face Mesh finds no face in the output count as not under)."""
    from faceforge.metrics import summarize

    out = {}
    for name in names:
        rs = [q["variants"][name] for q in quality if name in q["variants"]]
        ids = [r["id_to_input"] for r in rs if r.get("id_to_input") is not None]
        yaws = [r for r in rs if "output_yaw" in r]
        found = [abs(r["output_yaw"]) for r in yaws if r["output_yaw"] is not None]
        chroma = [r["chroma_p99"] for r in rs if "chroma_p99" in r]
        out[name] = {
            "faces": len(rs),
            "sharpness_vs_crop": summarize([r["sharpness_vs_crop"] for r in rs if r["sharpness_vs_crop"] is not None]),
            "id_to_input": summarize(ids) if ids else None,
            "same_person": round(float(np.mean(np.asarray(ids) < 0.6)), 4) if ids else None,
            "turned": len(yaws), "turned_output_yaw_abs": summarize(found) if found else None,
            "turned_yaw_under_10": (round(sum(y < 10 for y in found) / len(yaws), 4) if yaws else None),
            "turned_no_face_in_output": len(yaws) - len(found),
            "gray_faces": len(chroma), "gray_chroma_p99_max": max(chroma) if chroma else None}
    return out


def pipeline_pairs(frontalizer: Any, dataset: Any, limit: int | None, output_size: str | int = "face",
                   identity: bool = True) -> dict[str, Any]:
    """The whole pipeline on held-out profiles, before and after: each pair's rendered profile is frontalized
    as a photo (detection, Face Mesh, crop, rerender, generator; ``faces="largest"``) with
    ``output_size="generator"`` and with ``output_size``, and both outputs, the pipeline's own rerender and
    the profile are compared with the true frontal at its side (resized): dlib identity distance (and the
    share under 0.6) and the sharpness ratio in the face ellipse against the true frontal.

    Unlike the pair table (:func:`training.frontalize.evaluate`, the generator on the cache's own rerenders),
    this measures what a user gets, Face Mesh's yaw estimate included; the output's framing (the
    pose-tolerant crop of the profile) is the training targets' only up to the landmark box's spread.

    Args:
        dataset: :class:`~faceforge.data.pose_pairs.PosePairDataset` (``test`` split).
        limit: at most this many faces (all their pairs), first by name; ``None``: all.

    Returns:
        ``{"buckets": {bucket: {...}}, "pairs", "frontalized", "refused", "no_face", "variants"}``.
    """
    import warnings

    from faceforge.data.images import resize_square
    from faceforge.errors import NoFaceError, PoseOutOfRangeError
    from faceforge.imaging import load_image
    from faceforge.metrics import face_region_mask, laplacian_variance, summarize

    names = ["profile", "rerender (pipeline)", "generator", f"output_size={output_size}"]
    faces = sorted({p["face"] for p in dataset.pairs})
    keep = set(faces if limit is None else faces[:limit])
    pairs = [p for p in dataset.pairs if p["face"] in keep]
    per_bucket: dict[str, dict[str, list]] = {}
    refused = no_face = 0
    for p in pairs:
        profile = load_image(dataset.root / p["profile"])
        frontal = load_image(dataset.root / p["frontal"])
        side = frontal.shape[0]
        found = frontalizer.detector.detect(profile)
        if not found:
            no_face += 1
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                before = frontalizer.frontalize(profile, "largest", detected=found, output_size="generator")
                after = frontalizer.frontalize(profile, "largest", detected=found, output_size=output_size)
        except PoseOutOfRangeError:
            refused += 1
            continue
        except NoFaceError:
            no_face += 1
            continue
        if not before.frontalized or not after.frontalized:  # Face Mesh rejected the face
            no_face += 1
            continue
        b, a = before.frontalized[0], after.frontalized[0]
        images = [resize_square(x, side) for x in (profile, a.rerender, b.output, a.output)]
        mask = face_region_mask(side, PHOTO_FACE_ELLIPSE)
        v = laplacian_variance([frontal] + images, mask)
        row = per_bucket.setdefault(p["bucket"], {"sharp": [], "id": []})
        row["sharp"].append([float(x / v[0]) if v[0] > 0 else np.nan for x in v[1:]])
        if identity:
            from faceforge import identity as ident
            vecs = ident.embed_many([frontal] + images)
            row["id"].append([float(ident.distance(vecs[0], x)) for x in vecs[1:]])
    buckets = {}
    for bucket in sorted(per_bucket):
        r = per_bucket[bucket]
        sharp, ids = np.asarray(r["sharp"]), np.asarray(r["id"]) if r["id"] else None
        buckets[bucket] = {"n": len(sharp), **{name: {
            "sharpness_vs_frontal": summarize(sharp[:, k]),
            **({"id_to_frontal": round(float(ids[:, k].mean()), 4),
                "same_person": round(float((ids[:, k] < 0.6).mean()), 4)} if ids is not None else {})}
            for k, name in enumerate(names)}}
    return {"pairs": len(pairs), "faces": len(keep), "frontalized": sum(b["n"] for b in buckets.values()),
            "refused": refused, "no_face": no_face, "variants": names, "buckets": buckets}


def _pipeline_pair_lines(doc: dict[str, Any]) -> list[str]:
    pp = doc.get("pipeline_pairs")
    if not pp:
        return []
    names = pp["variants"]
    lines = [f"### The whole pipeline on held-out profiles, before and after ({pp['faces']} faces, {pp['pairs']} pairs)", "",
             f"Each rendered profile frontalized as a photo ({pp['frontalized']} frontalized, {pp['refused']} refused "
             f"as beyond the range, {pp['no_face']} without a face found or read by Face Mesh); identity = mean dlib distance to the "
             "true frontal (same person: share < 0.6); sharpness = median ratio to the true frontal in the face "
             "ellipse, all at the frontal's side.", "",
             "| yaw bucket | pairs | " + " | ".join(f"id {n}" for n in names) + " | "
             + " | ".join(f"sharpness {n}" for n in names) + " |",
             "|---|---:|" + "---:|" * (2 * len(names))]
    for bucket, r in pp["buckets"].items():
        ids = [f"{r[n]['id_to_frontal']:.3f} ({100 * r[n]['same_person']:.0f} %)" if "id_to_frontal" in r[n] else "-"
               for n in names]
        sharp = [f"{r[n]['sharpness_vs_frontal']['median']:.2f}" for n in names]
        lines.append(f"| {bucket} | {r['n']} | " + " | ".join(ids) + " | " + " | ".join(sharp) + " |")
    lines.append("")
    return lines


def frontal_reference(frontalizer: Any, folder: Path, n: int, max_yaw: float = 10.0) -> np.ndarray:
    """Up to ``n`` real near-frontal faces (Face Mesh ``|yaw| < max_yaw``) of the images in ``folder``
    (sorted by name; the largest face of each), cut by the frontalizer's own pose-tolerant crop and
    resized to its output side: uint8 ``(M, S, S, 3)``, ``M <= n``.

    Raises:
        FileNotFoundError: the folder does not exist.
    """
    from faceforge.imaging import load_image
    from faceforge.data.images import list_images, resize_square

    if not Path(folder).is_dir():
        raise FileNotFoundError(f"real frontal face folder not found: {folder}")
    out = []
    for path in list_images(Path(folder)):
        if len(out) >= n:
            break
        rgb = load_image(path)
        faces = frontalizer.detector.detect(rgb)
        if not faces:
            continue
        f = frontalizer.prepare(rgb, faces[0])
        if f.crop is not None and f.yaw is not None and abs(f.yaw) < max_yaw:
            out.append(resize_square(f.crop, frontalizer.size))
    return np.stack(out) if out else np.zeros((0, frontalizer.size, frontalizer.size, 3), np.uint8)


def photo_realism(frontalizer: Any, sets: dict[str, list], folder: Path, n: int) -> dict[str, Any]:
    """Reference-normalised SWD (x 1e3) from the photo outputs and inputs to real near-frontal faces
    (:func:`frontal_reference`), beside two disjoint real sets (real-vs-real), on ``min(faces, n)`` images."""
    from faceforge.metrics import swd

    outputs = np.stack(sets.get("outputs", [])) if sets.get("outputs") else None
    if outputs is None or len(outputs) < 2:
        return {"skipped": "fewer than 2 frontalized photo faces"}
    m = min(len(outputs), n)
    real = frontal_reference(frontalizer, folder, 2 * m)
    if len(real) < 2 * m:
        m = len(real) // 2
    if m < 2:
        return {"skipped": f"fewer than 4 near-frontal faces found in {folder}"}
    a, b = real[:m], real[m:2 * m]
    return {"reference": f"{display_path(folder)} (near-frontal, |yaw| < 10, frontalizer crops)", "n": m,
            "swd_normalize": "reference",
            "sets": {"real frontal (real-vs-real)": swd(a, b, normalize="reference"),
                     "inputs (rerender)": swd(a, np.stack(sets["inputs"][:m]), normalize="reference"),
                     "outputs": swd(a, outputs[:m], normalize="reference"),
                     **({"new outputs (shrunk to the generator's side)":
                         swd(a, np.stack(sets["new_outputs"][:m]), normalize="reference")}
                        if sets.get("new_outputs") else {})}}


def photo_grid(tiles: list[tuple], n: int, per_row: int = 2) -> np.ndarray | None:
    """Up to ``n`` faces, ``per_row`` (input face | generator's crop enlarged | new output) triples per row:
    the most turned half and the largest half (by their side in the photo), each face once."""
    from faceforge.data.images import label_tile

    if not tiles:
        return None
    turned = sorted(range(len(tiles)), key=lambda i: -tiles[i][0])[:max(1, n - n // 2)]
    largest = [i for i in sorted(range(len(tiles)), key=lambda i: -tiles[i][1]) if i not in turned][:n // 2]
    triples = [np.concatenate([label_tile(c, label), label_tile(b, "generator, enlarged"),
                               label_tile(o, f"new, {px:.0f} px face")], axis=1)
               for _, px, c, b, o, label in (tiles[i] for i in turned + largest)]
    while len(triples) % per_row:
        triples.append(np.zeros_like(triples[0]))
    return np.concatenate([np.concatenate(triples[i:i + per_row], axis=1)
                           for i in range(0, len(triples), per_row)], axis=0)


def markdown(doc: dict[str, Any]) -> str:
    """The results as Markdown tables."""
    g = doc["generator"]
    lines = [f"# Frontalization quality: {g['name']} ({g['weights']}, {g['input']} input, {g['size']} px)", ""]
    if doc.get("pairs") is None:
        lines += ["Held-out synthesized pairs: not measured in this run (no pose-pair cache given).", ""]
    else:
        lines += _pair_lines(doc)
    lines += _pipeline_pair_lines(doc)
    lines += _photo_lines(doc)
    return "\n".join(lines)


def _photo_quality_lines(doc: dict[str, Any]) -> list[str]:
    pq = (doc.get("photos") or {}).get("quality")
    if not pq:
        return []
    lines = ["### Figures blur cannot pass (every frontalized photo face, before and after in one run)", "",
             f"{pq['faces']} faces, {median_iqr(pq['face_px'])} px (median [q1, q3]) in their photos; every variant "
             f"is compared at the new output's side ({median_iqr(pq['output_px'])} px; {pq['upscaled']} faces smaller "
             f"than the generator's {doc['generator']['size']} px are upscaled to it). Sharpness ratio = variance of "
             "the Laplacian in a central face ellipse, variant / the input face crop at that side (the photo's "
             "pose-tolerant crop). Identity = dlib ResNet distance to that input crop (< 0.6 = same person). "
             f"Output yaw: Face Mesh (calibrated) on the variant, for the {pq['turned']} faces with |yaw| >= "
             f"{doc['photos']['min_yaw']:g} degrees. Seam: nothing is pasted back into the photo; at the "
             "boundary between the camera's pixels and the generator's inside the new output, the seam figure "
             "(gradients there over elsewhere in the face, output vs rerender; 1 = no added edge) is "
             f"{median_iqr(pq.get('visibility_seam'))} over {(pq.get('visibility_seam') or {}).get('n', 0)} faces.",
             "",
             "| variant | sharpness vs the input crop | identity to input | same person | turned: output \\|yaw\\| "
             "| turned: \\|yaw\\| < 10 | gray faces: chroma p99 max |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, v in pq["variants"].items():
        same = "-" if v["same_person"] is None else f"{100 * v['same_person']:.0f} %"
        yaw = median_iqr(v["turned_output_yaw_abs"]) if v["turned_output_yaw_abs"] else "-"
        if v["turned_no_face_in_output"]:
            yaw += f" ({v['turned_no_face_in_output']} no face)"
        under = "-" if v["turned_yaw_under_10"] is None else f"{100 * v['turned_yaw_under_10']:.0f} %"
        chroma = "-" if v["gray_chroma_p99_max"] is None else f"{v['gray_chroma_p99_max']:.1f}"
        lines.append(f"| {name} | {median_iqr(v['sharpness_vs_crop'])} | "
                     f"{median_iqr(v['id_to_input']) if v['id_to_input'] else '-'} | {same} | {yaw} | {under} | "
                     f"{chroma} |")
    lines.append("")
    big = pq.get("large_faces")
    if big and big.get("faces"):
        lines += [f"Faces at least {big['min_px']} px in their photo ({big['faces']}), where the new output is made at "
                  "the face's side (not upscaled):", "",
                  "| variant | sharpness vs the input crop | identity to input |", "|---|---:|---:|"]
        for name, v in big["variants"].items():
            lines.append(f"| {name} | {median_iqr(v['sharpness_vs_crop'])} | "
                         f"{median_iqr(v['id_to_input']) if v['id_to_input'] else '-'} |")
        lines.append("")
    real = doc["photos"].get("realism")
    if real and "sets" in real:
        lines += [f"Realism at the generator's {doc['generator']['size']} px: SWD x 1e3 (reference-normalised) "
                  f"to {real['n']} real near-frontal faces ({real['reference']}); lower is better, real-vs-real is the "
                  "floor.", "",
                  "| set | SWD avg | per level (finest first) |", "|---|---:|---|"]
        for label, d in real["sets"].items():
            lines.append(f"| {label} | {d['swd_avg']:.1f} | "
                         + ", ".join(f"{v:.0f}" for k, v in d.items() if k != "swd_avg") + " |")
        lines.append("")
    elif real:
        lines += [f"Realism: {real.get('skipped')}.", ""]
    return lines


def _pair_lines(doc: dict[str, Any]) -> list[str]:
    lines = [f"Held-out synthesized pairs: {doc['pairs']['test_pairs']} pairs of {doc['pairs']['test_faces']} "
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
    judged = {name: r for name, r in doc["metrics"].items() if "fr_cos_output" in r}
    if judged:
        lines += ["", "Independent judge, FaceRes (Human's face descriptor; not the network a face-identity loss trains "
                  "against), on crops re-aligned from the utkface framing: mean cosine to the true frontal (higher = "
                  "more alike) and ID retrieval top-1 (the nearest true frontal of the bucket is the pair's own).", "",
                  "| yaw bucket | cosine input | cosine output | top-1 input | top-1 output |", "|---|---|---|---|---|"]
        for name, r in judged.items():
            lines.append(f"| {name} | {r['fr_cos_input']:.3f} | **{r['fr_cos_output']:.3f}** | "
                         f"{100 * r['fr_top1_input']:.1f} % | **{100 * r['fr_top1_output']:.1f} %** |")
    lines += ["", f"Evaluation took {doc['seconds']:.0f} s on this machine ({doc['machine']}).", ""]
    return lines


def _photo_lines(doc: dict[str, Any]) -> list[str]:
    lines: list[str] = []
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
        lines += _photo_quality_lines(doc)
    return lines


def run(weights: str = "default", pairs: Path | None = Path("cache/pose_pairs"), limit: int | None = None,
        photos: Sequence[Path] = (), min_yaw: float = 15.0, grid_faces: int = 6, photo_faces_n: int = 8,
        out_dir: Path = RESULTS_DIR, figures: Path = FIGURES_DIR, name: str = DEFAULT_NAME,
        identity: bool | None = None, real_frontal: Path | None = None, real_limit: int = 250,
        output_size: str | int = "face", restore: Sequence[str] = ("classical",), tile: int = 256,
        large_px: int = 200, pipeline_faces: int = 0, judge: str | None = None) -> dict[str, Any]:
    """Measure, write the results and figures, return the results document.

    Args:
        identity: dlib identity columns (``None``: when :mod:`faceforge.identity`'s files are installed).
        output_size: the photo faces' after variant (before: ``"generator"``), see :func:`photo_faces`.
        restore: restorers run on the after variant (``"none"`` entries are dropped).
        tile: grid tile side, px.
        large_px: the faces at least this large in their photo get their own summary.
        pipeline_faces: with ``pairs``, run :func:`pipeline_pairs` on this many held-out faces (0: not).
        judge: ``"faceres"``: the pair table gains an independent judge's columns (see
            :func:`training.frontalize.evaluate`), a control for a generator trained against dlib's network.
        pairs: pose-pair cache (``None``: skip the held-out pair tables).
        real_frontal: folder of real face photos whose near-frontal faces are the realism reference for
            the photo outputs (``None``: no realism figure).
        real_limit: at most this many photo outputs (and twice as many real faces) in the realism figure.

    Raises:
        WeightsNotFoundError: no such weights.
        FileNotFoundError: no pose-pair cache at ``pairs``, or a photo folder is missing.
    """
    import platform

    import torch

    from faceforge.frontalize import Frontalizer
    from faceforge.imaging import save_image
    from training.frontalize import evaluate
    from faceforge.data.pose_pairs import PosePairDataset

    for folder in photos:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"photo folder not found: {folder}")
    from faceforge.metrics import summarize

    fz = Frontalizer(weights)
    restore = [m for m in restore if m != "none"]
    if identity is None:
        from faceforge import identity as ident
        photo_identity = ident.is_available()
    else:
        photo_identity = bool(identity)
    t0 = time.perf_counter()
    doc: dict[str, Any] = {
        "generator": {**{k: v for k, v in fz.describe().items() if k in ("name", "version", "input", "size",
                                                                          "render_size")},
                      "weights": fz.weights_source},
        "pairs": None, "metrics": None,
        "machine": f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads",
    }
    figures = Path(figures)
    figures.mkdir(parents=True, exist_ok=True)
    if pairs is not None:
        dataset = PosePairDataset(pairs, "test", fz.input_mode, fz.size, fz.size, augment=False)
        subset = dataset if limit is None else _Limited(dataset, limit)
        doc["metrics"] = evaluate(fz.generator, subset, torch.device("cpu"), identity=identity, judge=judge)
        doc["pairs"] = {"cache": display_path(pairs), "test_pairs": len(subset),
                        "test_faces": len({p["face"] for p in subset.pairs})}
        save_image(figures / f"{name}_pairs.png", pair_grid(fz, subset, grid_faces))
        if pipeline_faces:
            doc["pipeline_pairs"] = {"cache": display_path(pairs), **pipeline_pairs(
                fz, dataset, pipeline_faces, output_size, photo_identity)}
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    if photos:
        quality: list[dict] = []
        sets: dict[str, list] = {}
        t1 = time.perf_counter()
        rows, tiles, total = photo_faces(fz, photos, min_yaw, quality, sets, output_size, restore, photo_identity,
                                         tile)
        doc["photos"] = {"folders": [display_path(p) for p in photos], "min_yaw": min_yaw, "turned": rows,
                         "faces_total": total, "output_size": output_size, "restore": list(restore),
                         "seconds": round(time.perf_counter() - t1, 1)}
        names = variant_names(output_size, restore)
        large = [q for q in quality if q["face_px"] >= large_px]
        doc["photos"]["quality"] = {
            "faces": len(quality), "face_px": summarize([q["face_px"] for q in quality]),
            "output_px": summarize([q["output_px"] for q in quality]),
            "upscaled": sum(q["upscaled"] for q in quality),
            "turned": sum(abs(q["yaw"]) >= min_yaw for q in quality),
            "identity": photo_identity,
            "variants": summarize_photo_quality(quality, names),
            "visibility_seam": summarize([q["seam"] for q in quality if q.get("seam") is not None]),
            "large_faces": {"min_px": large_px, "faces": len(large),
                            "variants": summarize_photo_quality(large, names)},
            "seam": "not applicable: the frontalizer returns crops, it pastes nothing back",
            "rows": quality}
        if real_frontal is not None:
            doc["photos"]["realism"] = photo_realism(fz, sets, Path(real_frontal), real_limit)
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
@click.option("--no-pairs", is_flag=True, help="Skip the held-out pose-pair tables (real photos only).")
@click.option("--real-frontal", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Folder of real face photos (e.g. data/utkface_age/testA): their near-frontal faces are the "
                   "realism reference for the photo outputs.")
@click.option("--real-limit", type=click.IntRange(2), default=250, show_default=True,
              help="At most this many photo outputs in the realism figure (twice as many real faces).")
@click.option("--output-size", default="face", show_default=True,
              help="The photo faces' new variant (face, generator or a side), measured beside the generator's crop.")
@click.option("--restore", "restore", multiple=True, type=click.Choice(["none", "classical", "gpen", "auto"]),
              default=("classical",), show_default=True,
              help="Restorers run on the new variant, each its own row (repeatable; none: no such row).")
@click.option("--tile", type=click.IntRange(32, 1024), default=256, show_default=True,
              help="Side of the photo grid's tiles, px.")
@click.option("--pipeline-faces", type=click.IntRange(0), default=0, show_default=True,
              help="Also run the whole pipeline (before and after) on the rendered profiles of this many held-out "
                   "faces of --pairs and compare with the true frontals (0: not).")
@click.option("--judge", type=click.Choice(["dlib", "faceres"]), default="dlib", show_default=True,
              help="faceres: the pair table also gets Human's FaceRes descriptor as an independent judge (needs its "
                   "model files, $FACEFORGE_FACERES).")
def main(weights: str, pairs: Path, limit: int | None, photos: tuple[Path, ...], min_yaw: float, grid_faces: int,
         photo_faces: int, no_identity: bool, out_dir: Path, figures: Path, name: str, no_pairs: bool,
         real_frontal: Path | None, real_limit: int, output_size: str, restore: tuple[str, ...], tile: int,
         pipeline_faces: int, judge: str) -> None:
    """PSNR/SSIM and dlib identity per yaw bucket on held-out pose pairs; on real photos the yaw list, a
    grid, sharpness ratios, grayscale chroma and a realism distance beside real-vs-real."""
    from faceforge.errors import FaceforgeError
    from faceforge.frontalize import parse_output_size

    try:
        doc = run(weights, None if no_pairs else pairs, limit, photos, min_yaw, grid_faces, photo_faces, out_dir,
                  figures, name, identity=False if no_identity else None, real_frontal=real_frontal,
                  real_limit=real_limit, output_size=parse_output_size(output_size, "--output-size"),
                  restore=restore, tile=tile, pipeline_faces=pipeline_faces,
                  judge=None if judge == "dlib" else judge)
    except (FileNotFoundError, ValueError, FaceforgeError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(markdown(doc))
    click.echo(f"results: {out_dir / name}.json|md; figures: {figures}/"
               + ", ".join(([f"{name}_pairs.png"] if not no_pairs else []) + ([f"{name}_photos.png"] if photos else [])))


if __name__ == "__main__":
    main()

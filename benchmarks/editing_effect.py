"""Measured effect of the attribute edits (issue 17, item 5): does an edit change its attribute, leave
the others, and keep the person?

For ``n`` generated faces (seeds ``seed0 ...``, truncation ``psi``) and every edit (an attribute, optionally
conditioned on others), the faces are rendered at each strength (in sigmas of the population along the
direction, :mod:`faceforge.editing`) and scored by the same classifiers the directions were found with:
age in years and gender as the logit of "female" (:class:`faceforge.editing.AttributeClassifier`), smile
as the logit of the emotion model's "happy" (:func:`faceforge.editing.smile_logits`). Reported per edit:

- **change per unit of strength** of every attribute (and, when its weights are installed, of the age
  read by faceforge's separate age estimator, ``age_resnet``, an independent judge): the least-squares slope of score against
  strength, per face, then the mean over faces (with the share of faces whose slope has the edit's sign);
- **identity**: dlib's embedding distance (:mod:`faceforge.identity`) of each edited face to the same
  face at strength 0, median / 90th percentile / share below 0.6 (dlib's same-person threshold), per
  strength. For scale, the median distance between two *different* generated faces is reported too:
  at the generator's 32 px an embedding separates people less than on photos.

The classifiers that judge the edit are those that found the directions, so the slope shows the edit
moves *their* score; :func:`run` can swap in others. Writes ``<out>/<name>.json|md``::

    python -m benchmarks.editing_effect --faces 200 --strengths -2,-1,0,1,2

**Projection** (``--projection-only``, :func:`run_projection`; the photos an edit of a photo starts from):
each photo of the folders, aligned on ``utkface``, projected into W per configuration ``id_weight[/feature_weight]``
of :func:`faceforge.stylegan.project` (``0`` = the pixel objective of before). Reported: the identity distance
of the projection to the photo's 128 px crop (median, 90th percentile, share < 0.6); because the identity term
optimises against the very network that measures it, the same distance after a horizontal flip, JPEG 80, half
size and back, and a 1 px Gaussian blur of the projection (``benchmarks.swap_quality``'s
:data:`~benchmarks.swap_quality.ROBUST_TRANSFORMS`: adversarial texture tuned to one network does not survive
them), with the photo's own crop at the generator's size as the ceiling of each; the likeness to the aligned
photo (pyramid MSE and SSIM of :func:`faceforge.stylegan.projection_loss`) so identity is not bought with a worse
reconstruction; and the seconds per projection. Writes ``<out>/<name>.json|md`` and, with ``grid``, one PNG per
folder (photo | first configuration | last) and the images (npz)::

    python -m benchmarks.editing_effect --projection-only --photos ../shared/data/photos/portraits_256 \
        --photos ../shared/data/photos/portraits --id-weights 0,0.5,1,2
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks import RESULTS_DIR, parse_names, write_results

DEFAULT_NAME = "editing_effect"
DEFAULT_EDITS = ("age", "gender", "smile", "age|gender", "smile|gender,age")


def _parse_edit(text: str) -> tuple[str, list[str], int | None]:
    """``"age|gender@8"`` -> ``("age", ["gender"], 8)``: attribute, conditions, max resolution (or ``None``)."""
    text, _, res = text.partition("@")
    attr, _, cond = text.partition("|")
    return attr.strip(), parse_names(cond), int(res) if res.strip() else None


def aligned_photos(G, folder: Path, limit: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The first ``limit`` photos of ``folder`` (name order) that have a face, detected and aligned on the
    ``utkface`` template: ``(names, targets (n, R, R, 3) at the generator's side, 128 px crops (n, 128, 128, 3))``.

    Raises:
        ValueError: no face in any photo of ``folder``.
    """
    from faceforge import stylegan as S
    from faceforge.faces.align import align_face
    from faceforge.faces.detect import FaceDetector
    from faceforge.imaging import load_image

    detector = FaceDetector()
    names, targets, crops = [], [], []
    for path in sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        if len(names) >= limit:
            break
        rgb = load_image(path)
        found = detector.detect(rgb)
        if not found:
            continue
        names.append(path.name)
        targets.append(align_face(rgb, found[0], G.resolution, template="utkface").image)
        crops.append(align_face(rgb, found[0], S.IDENTITY_TARGET_SIDE, template="utkface").image)
    if not names:
        raise ValueError(f"no face found in the photos of {folder}")
    return names, np.stack(targets), np.stack(crops)


def projected_photos(G, folder: Path, limit: int, steps: int, id_weight: float = 0.0, feature_weight: float = 0.0):
    """Detect, align (``utkface`` template) and project into W the first ``limit`` photos of ``folder`` (name
    order) that have a face (:func:`aligned_photos`; the 128 px crop is the identity term's target):
    ``(names, ws (n, num_ws, w_dim) tensor, 128 px photo crops, projections)``."""
    import torch

    from faceforge import stylegan as S

    names, targets, crops = aligned_photos(G, folder, limit)
    ws, recon = [], []
    for target, crop in zip(targets, crops):
        result = S.project(G, target, steps=steps, id_weight=id_weight, feature_weight=feature_weight,
                           identity_target=crop)
        ws.append(result.ws)
        recon.append(result.image)
    return names, torch.cat(ws), crops, np.stack(recon)


def run(faces: int = 200, strengths: Sequence[float] = (-2, -1, 0, 1, 2), edits: Sequence[str] = DEFAULT_EDITS,
        psi: float = 1.0, seed0: int = 100_000, threads: int | None = 1, out_dir: Path = RESULTS_DIR,
        name: str = DEFAULT_NAME, photos: Path | None = None, photo_limit: int = 10,
        steps: int = 150) -> dict[str, Any]:
    """Measure every edit on ``faces`` generated faces and, with ``photos``, on the W projections of up to
    ``photo_limit`` photos of that folder (``steps`` optimisation steps each); write json/md; return the
    document.

    Raises:
        ValueError: ``strengths`` without 0, or no face in ``photos``.
        WeightsNotFoundError, CheckpointError: the shipped generator, directions or classifiers are absent.
    """
    import torch

    from faceforge import editing as E
    from faceforge import identity
    from faceforge import stylegan as S
    from faceforge.emotion import EmotionRecognizer
    from faceforge.errors import FaceforgeError
    from faceforge.models import create_model, get_spec

    if threads:
        torch.set_num_threads(threads)
    strengths = [float(s) for s in strengths]
    if 0.0 not in strengths:
        raise ValueError("strengths must include 0 (the unedited face identity is measured against)")
    weights = get_spec("stylegan2").default_weights_path
    G = create_model("stylegan2", weights=weights).eval()
    dirs = E.Directions.load()
    dirs.check(G, weights)
    clf, rec = E.AttributeClassifier(), EmotionRecognizer()
    judge = None
    try:  # an independent age judge: faceforge's shipped age estimator (another network, 64 px, DEX bins)
        from faceforge.age import AgeEstimator

        judge = AgeEstimator()
    except FaceforgeError:
        pass
    seeds = list(range(seed0, seed0 + faces))
    t0 = time.time()
    sets = [("generated", S.seed_ws(G, seeds, psi))]
    photo_info = None
    if photos is not None:
        from benchmarks import display_path

        names, pws, crops, recon = projected_photos(G, Path(photos), photo_limit, steps)
        sets.append(("projected", pws))
        to_photo = identity.distance(identity.embed_many(recon), identity.embed_many(crops))
        photo_info = {"folder": display_path(photos), "photos": names, "steps": steps,
                      "projection_to_photo_identity": {"median": round(float(np.median(to_photo)), 4),
                                                       "share_below_0.6": round(float((to_photo < 0.6).mean()), 3)}}
    base_emb = identity.embed_many(S.synthesize(G, sets[0][1]))
    different = identity.distance(base_emb, np.roll(base_emb, 1, axis=0))  # each face vs the next seed's
    k0 = strengths.index(0.0)
    s = np.asarray(strengths)
    rows = []
    for kind, ws in sets:
        n = len(ws)
        for spec in edits:
            attr, cond, max_res = _parse_edit(spec)
            layers = None if max_res is None else slice(0, S.layers_up_to(G, max_res))
            imgs = E.edit(G, ws, dirs, attr, strengths, condition=cond, layers=layers)  # (n, K, R, R, 3)
            flat = imgs.reshape(-1, *imgs.shape[2:])
            scores = E.attribute_scores(flat, E.ATTRIBUTES, clf, rec)
            if judge is not None:
                scores["age_resnet"] = judge.predict_crops(flat).astype(np.float64)
            effect = {}
            for a, v in scores.items():
                v = v.reshape(n, len(strengths))
                slope = ((v - v.mean(1, keepdims=True)) * (s - s.mean())).sum(1) / ((s - s.mean()) ** 2).sum()
                effect[a] = {"slope_mean": round(float(slope.mean()), 4), "slope_std": round(float(slope.std()), 4),
                             "share_positive": round(float((slope > 0).mean()), 3),
                             "mean_by_strength": [round(float(x), 3) for x in v.mean(0)]}
            emb = identity.embed_many(flat).reshape(n, len(strengths), -1)
            dist = identity.distance(emb, emb[:, k0:k0 + 1])
            ident = [{"strength": st, "median": round(float(np.median(dist[:, j])), 4),
                      "p90": round(float(np.percentile(dist[:, j], 90)), 4),
                      "share_below_0.6": round(float((dist[:, j] < identity.SAME_PERSON_THRESHOLD).mean()), 3)}
                     for j, st in enumerate(strengths)]
            rows.append({"faces": kind, "n": n, "edit": spec, "attribute": attr, "condition": cond,
                         "max_resolution": max_res,
                         "sigma": round(dirs[attr].sigma, 4), "effect": effect, "identity": ident})
            own = effect[attr]
            at1 = ident[strengths.index(1.0)]["median"] if 1.0 in strengths else "-"
            print(f"{kind:<9} {spec:<18} {attr} per unit strength {own['slope_mean']:+.3f} "
                  f"({own['share_positive']:.0%} of faces up); identity median at +1: {at1}", flush=True)
    doc = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.machine(),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "generator": weights.name,
           "directions": E.default_directions_path().name, "faces": faces, "seeds": [seeds[0], seeds[-1]],
           "psi": psi, "photos": photo_info, "strengths": strengths,
           "strength_unit": "standard deviations of generated faces along the direction",
           "scores": {**E.SCORE_UNITS, **({"age_resnet": "years, faceforge's age estimator (age_resnet.utkface, "
                                                         "an independent judge: not used to find the directions)"}
                                          if judge is not None else {})},
           "identity_backend": identity.embedding_backend(),
           "different_faces_identity": {"median": round(float(np.median(different)), 4),
                                        "p10": round(float(np.percentile(different, 10)), 4),
                                        "share_below_0.6": round(float((different < 0.6).mean()), 3)},
           "seconds": round(time.time() - t0, 1), "rows": rows}
    write_results(doc, out_dir, name, markdown)
    return doc


def markdown(doc: dict[str, Any]) -> str:
    """Two tables: change of each score per unit strength, and identity distance by strength."""
    d = doc["different_faces_identity"]
    lines = [f"# Attribute edits: measured effect ({doc['date']})", "",
             f"{doc['faces']} generated faces of `{doc['generator']}` (seeds {doc['seeds'][0]}-{doc['seeds'][1]}, "
             f"psi {doc['psi']}), directions `{doc['directions']}`; strengths {doc['strengths']} "
             f"({doc['strength_unit']}). Scores: age in years, gender = logit of female, smile = logit of the "
             "emotion model's happy. Slope = least-squares change of the score per unit strength, per face, "
             "mean over faces (share of faces going up in brackets). `a|b` = edit of a with b's direction "
             "projected out; `a@8` = only the styles of blocks up to 8 px move.", "",
             "`age_resnet` = faceforge's separate age estimator (64 px DEX network), a judge the directions "
             "were not found with.", "",
             "| faces (n) | edit | age (years) | age_resnet (years) | gender (logit) | smile (logit) |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in doc["rows"]:
        cells = [f"{r['effect'][a]['slope_mean']:+.2f} ({r['effect'][a]['share_positive']:.0%})"
                 if a in r["effect"] else "-" for a in ("age", "age_resnet", "gender", "smile")]
        lines.append(f"| {r['faces']} ({r['n']}) | {r['edit']} | " + " | ".join(cells) + " |")
    lines += ["", f"Identity: dlib distance ({doc['identity_backend']} backend) of each edited face to the same face "
                  f"at strength 0, median / 90th percentile / share < 0.6. For scale: two *different* generated faces "
                  f"are {d['median']} apart at the median ({d['share_below_0.6']:.0%} of such pairs below 0.6) at "
                  "this resolution.", "",
              "| faces | edit | " + " | ".join(f"s = {v:g}" for v in doc["strengths"]) + " |",
              "| --- | --- | " + " | ".join("---:" for _ in doc["strengths"]) + " |"]
    for r in doc["rows"]:
        lines.append(f"| {r['faces']} | {r['edit']} | " + " | ".join(
            f"{i['median']:.3f} / {i['p90']:.3f} / {i['share_below_0.6']:.0%}" for i in r["identity"]) + " |")
    if doc.get("photos"):
        p = doc["photos"]
        q = p["projection_to_photo_identity"]
        lines += ["", f"Projected: {len(p['photos'])} photos of `{p['folder']}` aligned on the `utkface` template and "
                      f"projected into W ({p['steps']} steps); the projection vs the photo's 128 px crop: identity "
                      f"distance median {q['median']} ({q['share_below_0.6']:.0%} below 0.6)."]
    return "\n".join(lines) + "\n"


PROJECTION_NAME = "projection_identity"
DEFAULT_CONFIGS = ("0", "0.5", "1", "2")


def parse_config(text: str) -> tuple[float, float]:
    """``"1"`` -> ``(1.0, 0.0)``, ``"1/0.5"`` -> ``(1.0, 0.5)``: (id_weight, feature_weight) of a projection."""
    a, _, b = text.strip().partition("/")
    try:
        return float(a), float(b) if b.strip() else 0.0
    except ValueError:
        raise ValueError(f"a projection configuration is ID_WEIGHT or ID_WEIGHT/FEATURE_WEIGHT, got {text!r}") from None


def _identity_stats(d: np.ndarray) -> dict[str, Any]:
    return {"median": round(float(np.median(d)), 4), "p90": round(float(np.percentile(d, 90)), 4),
            "share_below_0.6": round(float((d < 0.6).mean()), 3)}


def _robust(images: np.ndarray, emb_photo: np.ndarray) -> dict[str, dict[str, Any]]:
    """Identity distance to the photos after each of swap_quality's transforms (aligned crops are symmetric
    about the template's vertical axis, so a flipped crop is still aligned: no detection to mirror)."""
    from benchmarks.swap_quality import ROBUST_TRANSFORMS, transform_image
    from faceforge import identity

    return {t: _identity_stats(identity.distance(identity.embed_many([transform_image(x, t) for x in images]),
                                                 emb_photo)) for t in ROBUST_TRANSFORMS}


def projection_grid(crops: np.ndarray, first: np.ndarray, last: np.ndarray, tile: int = 128) -> np.ndarray:
    """Rows ``photo (128 px crop) | first configuration | last configuration``, projections enlarged (bicubic)
    to ``tile`` px: uint8 ``(n * tile, 3 * tile, 3)``."""
    import cv2

    def big(x: np.ndarray) -> np.ndarray:
        return cv2.resize(x, (tile, tile), interpolation=cv2.INTER_AREA if x.shape[0] > tile else cv2.INTER_CUBIC)

    return np.concatenate([np.concatenate([big(a), big(b), big(c)], axis=1) for a, b, c in zip(crops, first, last)])


def run_projection(folders: Sequence[Path], configs: Sequence[str] = DEFAULT_CONFIGS, limit: int = 50,
                   steps: int = 150, threads: int | None = 1, out_dir: Path = RESULTS_DIR, name: str = PROJECTION_NAME,
                   grid_dir: Path | None = None) -> dict[str, Any]:
    """Projection of real photos per configuration (see the module docstring); writes json/md (and grids);
    returns the document.

    Raises:
        ValueError: a bad configuration, or no face in a folder.
        WeightsNotFoundError, CheckpointError, MissingDependencyError: the generator or dlib's network is absent.
    """
    import torch

    from benchmarks import display_path
    from benchmarks.swap_quality import ROBUST_TRANSFORMS
    from faceforge import identity
    from faceforge import stylegan as S
    from faceforge.models import create_model, get_spec

    if threads:
        torch.set_num_threads(threads)
    parsed = [parse_config(c) for c in configs]
    weights = get_spec("stylegan2").default_weights_path
    G = create_model("stylegan2", weights=weights).eval()
    t_start = time.time()
    rows, sets = [], []
    for folder in folders:
        names, targets, crops = aligned_photos(G, Path(folder), limit)
        emb_photo = identity.embed_many(crops)
        ceiling = identity.distance(identity.embed_many(targets), emb_photo)
        sets.append({"folder": display_path(folder), "photos": names,
                     "photo_at_generator_side": {"identity": _identity_stats(ceiling), "robust": _robust(targets, emb_photo)}})
        recon_by_config = []
        for cfg, (idw, fw) in zip(configs, parsed):
            recon, seconds, mse, ssim, loss_id = [], [], [], [], []
            for k, (target, crop) in enumerate(zip(targets, crops)):
                t0 = time.perf_counter()
                result = S.project(G, target, steps=steps, id_weight=idw, feature_weight=fw, identity_target=crop)
                seconds.append(time.perf_counter() - t0)
                recon.append(result.image)
                x, y = S._to_tensor(result.image), S._to_tensor(target)
                mse.append(float(S.projection_loss(x, y, ssim_weight=0.0)))
                ssim.append(float(S.ssim(x, y)))
                if result.id_distances:
                    loss_id.append(result.id_distances[-1])
            recon = np.stack(recon)
            recon_by_config.append(recon)
            d = identity.distance(identity.embed_many(recon), emb_photo)
            row = {"folder": display_path(folder), "n": len(names), "config": cfg, "id_weight": idw,
                   "feature_weight": fw, "identity": _identity_stats(d), "robust": _robust(recon, emb_photo),
                   "per_photo": [round(float(v), 4) for v in d],
                   "pyramid_mse": {"mean": round(float(np.mean(mse)), 5), "median": round(float(np.median(mse)), 5)},
                   "ssim": {"mean": round(float(np.mean(ssim)), 4), "median": round(float(np.median(ssim)), 4)},
                   "loss_chip_identity_median": round(float(np.median(loss_id)), 4) if loss_id else None,
                   "seconds_per_projection": round(float(np.median(seconds)), 2)}
            rows.append(row)
            rob = " ".join(f"{t} {row['robust'][t]['median']:.3f}" for t in ROBUST_TRANSFORMS)
            print(f"{Path(folder).name} {cfg}: identity median {row['identity']['median']:.3f} "
                  f"({row['identity']['share_below_0.6']:.0%} < 0.6); {rob}; pyramid MSE {row['pyramid_mse']['mean']:.4f} "
                  f"SSIM {row['ssim']['mean']:.3f}; {row['seconds_per_projection']} s", flush=True)
        if grid_dir is not None:
            from faceforge.imaging import save_image

            Path(grid_dir).mkdir(parents=True, exist_ok=True)
            save_image(Path(grid_dir) / f"{name}_{Path(folder).name}.png",
                       projection_grid(crops, recon_by_config[0], recon_by_config[-1]))
            np.savez_compressed(Path(grid_dir) / f"{name}_{Path(folder).name}.npz", crops=crops, targets=targets,
                                configs=np.array(list(configs)), projections=np.stack(recon_by_config))
    doc = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.machine(),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "generator": weights.name,
           "resolution": G.resolution, "steps": steps, "latent": "W", "identity_backend": identity.embedding_backend(),
           "identity_reference": f"the photo aligned on utkface at {S.IDENTITY_TARGET_SIDE} px",
           "transforms": list(ROBUST_TRANSFORMS), "sets": sets, "seconds": round(time.time() - t_start, 1),
           "rows": rows}
    write_results(doc, out_dir, name, projection_markdown)
    return doc


def projection_markdown(doc: dict[str, Any]) -> str:
    """Per folder and configuration: identity (plain and after each transform), likeness, time."""
    ts = doc["transforms"]
    lines = [f"# Projection of real photos: identity and likeness ({doc['date']})", "",
             f"`{doc['generator']}` ({doc['resolution']} px), {doc['steps']} steps into {doc['latent']}; configuration "
             "= id_weight[/feature_weight] of `faceforge.stylegan.project` (0 = pixel objective only). Identity: dlib "
             f"distance ({doc['identity_backend']} backend) of the projection to {doc['identity_reference']}, median / "
             "share < 0.6; then the median after each transform of the projection (flip, JPEG 80, half size and back, "
             "1 px Gaussian blur: texture tuned against the network does not survive them). `photo` = the photo's own "
             "crop at the generator's side (the ceiling). Likeness to that crop: pyramid MSE (lower is better) and "
             "SSIM (higher is better), means.", "",
             "| photos (n) | config | identity median / < 0.6 | " + " | ".join(ts) + " | pyramid MSE | SSIM | s / projection |",
             "| --- | --- | ---: | " + " | ".join("---:" for _ in ts) + " | ---: | ---: | ---: |"]
    for st in doc["sets"]:
        c = st["photo_at_generator_side"]
        lines.append(f"| {Path(st['folder']).name} ({len(st['photos'])}) | photo | {c['identity']['median']:.3f} / "
                     f"{c['identity']['share_below_0.6']:.0%} | " + " | ".join(
                         f"{c['robust'][t]['median']:.3f} / {c['robust'][t]['share_below_0.6']:.0%}" for t in ts)
                     + " | 0 | 1 | - |")
        for r in doc["rows"]:
            if r["folder"] != st["folder"]:
                continue
            lines.append(f"| {Path(r['folder']).name} ({r['n']}) | {r['config']} | {r['identity']['median']:.3f} / "
                         f"{r['identity']['share_below_0.6']:.0%} | " + " | ".join(
                             f"{r['robust'][t]['median']:.3f} / {r['robust'][t]['share_below_0.6']:.0%}" for t in ts)
                         + f" | {r['pyramid_mse']['mean']:.4f} | {r['ssim']['mean']:.3f} | {r['seconds_per_projection']} |")
    return "\n".join(lines) + "\n"


def _command():
    import click

    @click.command("editing-effect")
    @click.option("--faces", type=click.IntRange(4), default=200, show_default=True)
    @click.option("--strengths", default="-2,-1,0,1,2", show_default=True)
    @click.option("--edits", default=",".join(e.replace(",", "+") for e in DEFAULT_EDITS), show_default=True,
                  help="Edits separated by commas; 'a|b+c' = attribute a conditioned on b and c; 'a@8' = only the "
                       "styles of blocks up to 8 px.")
    @click.option("--psi", type=float, default=1.0, show_default=True)
    @click.option("--threads", type=click.IntRange(1), default=1, show_default=True)
    @click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR,
                  show_default=True)
    @click.option("--name", default=DEFAULT_NAME, show_default=True)
    @click.option("--photos", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
                  help="Also edit W projections of this folder's photos (e.g. ../shared/data/photos/portraits_256).")
    @click.option("--photo-limit", type=click.IntRange(1), default=10, show_default=True)
    @click.option("--steps", type=click.IntRange(1), default=150, show_default=True, help="Projection steps.")
    @click.option("--projection-only", is_flag=True,
                  help="Only the projection of the --photos folders (repeatable) per --id-weights configuration: "
                       "identity to the photo (plain and after flip / JPEG 80 / half size / 1 px blur), likeness, "
                       "time; default name projection_identity.")
    @click.option("--extra-photos", "extra_photos", multiple=True,
                  type=click.Path(exists=True, file_okay=False, path_type=Path),
                  help="More photo folders for --projection-only.")
    @click.option("--id-weights", default=",".join(DEFAULT_CONFIGS), show_default=True,
                  help="--projection-only configurations, comma-separated: ID_WEIGHT or ID_WEIGHT/FEATURE_WEIGHT.")
    @click.option("--grids", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="--projection-only: write photo | first | last configuration grids here.")
    def main(faces, strengths, edits, psi, threads, out_dir, name, photos, photo_limit, steps, projection_only,
             extra_photos, id_weights, grids) -> None:
        """Attribute edits: score change per unit strength and identity kept (shipped generator)."""
        from faceforge.errors import FaceforgeError

        try:
            if projection_only:
                if photos is None:
                    raise click.UsageError("--projection-only needs --photos")
                run_projection([photos, *extra_photos], id_weights.split(","), photo_limit, steps, threads, out_dir,
                               PROJECTION_NAME if name == DEFAULT_NAME else name, grids)
                name = PROJECTION_NAME if name == DEFAULT_NAME else name
            else:
                run(faces, [float(s) for s in strengths.split(",")], [e.replace("+", ",") for e in edits.split(",")],
                    psi, 100_000, threads, out_dir, name, photos, photo_limit, steps)
        except (ValueError, FaceforgeError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"wrote {Path(out_dir) / name}.json|md")

    return main


main = _command()

if __name__ == "__main__":  # pragma: no cover
    main()

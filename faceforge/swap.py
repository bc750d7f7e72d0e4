"""Classical face swap: Face Mesh landmarks, Delaunay triangles, per-triangle affine warp, colour
transfer and seamless blending. Always available, no training, no weights.

Pipeline (one call of :meth:`FaceSwapper.swap`)::

    source RGB uint8 (Hs, Ws, 3)                      target RGB uint8 (H, W, 3)
      --detect, largest face, Face Mesh-->              --detect, select (all | largest | i,j)-->
    468 (x, y, z) landmarks, yaw                      per chosen face: Face Mesh 468 (x, y, z), yaw
      --Delaunay (cv2.Subdiv2D) on the source's 468 (x, y)--> triangles (T, 3), T ~ 880
    per target face (in a region around it, so any image size costs only the face's pixels):
      --checks: yaw gap, same face, size-->            refuse / skip / warn (see below)
      --per-triangle affine warp source -> target geometry (back to front by target depth)-->
      --colour transfer (Reinhard, Lab mean/std inside the face)-->
      --blend (poisson | laplacian | feather) inside the target's landmark hull, eroded + feathered-->
    RGB uint8 (H, W, 3): only the swapped faces' regions change

This is the landmark-based swap of the tutorials (e.g. S. Mallick, "Face Swap using OpenCV", LearnOpenCV
2016) with the pieces named in the literature:

- **Landmarks**: MediaPipe Face Mesh, 468 points with relative depth
  (:meth:`faceforge.faces.landmarks.FaceMesh.landmarks_3d`; Kartynnik et al., arXiv:1907.06724).
- **Triangulation**: Delaunay (B. Delaunay 1934) of the *source* landmarks with ``cv2.Subdiv2D``
  (Lischinski's incremental algorithm, "Incremental Delaunay triangulation", Graphics Gems IV, 1994);
  Face Mesh's topology is the same for every face, so the same index triangles are used on the
  target's landmarks (:func:`delaunay_triangles`).
- **Warp**: each triangle's affine map from its target vertices to its source vertices, one
  ``cv2.remap`` over the face region (:func:`faceforge.faces.rotate.warp_triangles`). Where a pose
  difference folds the mesh, triangles are drawn farthest first by the target's Face Mesh depth, so
  the nearer surface wins.
- **Colour**: E. Reinhard, M. Ashikhmin, B. Gooch, P. Shirley, "Color Transfer between Images",
  IEEE CG&A 21(5), 2001: per-channel mean and standard deviation matched in CIE L*a*b* (OpenCV's
  ``COLOR_RGB2Lab``; Reinhard used l-alpha-beta, Lab is the common substitute), statistics over the
  interior of the face only (:func:`reinhard_transfer`).
- **Blend**: ``poisson``: P. Perez, M. Gangnet, A. Blake, "Poisson Image Editing", SIGGRAPH 2003, via
  ``cv2.seamlessClone`` (``NORMAL_CLONE``); ``laplacian``: P. J. Burt, E. H. Adelson, "A Multiresolution
  Spline with Application to Image Mosaics", ACM ToG 2(4), 1983, written here
  (:func:`laplacian_blend`); ``feather``: alpha blending with the feathered mask (:func:`feather_blend`).
  The mask is the convex hull of the target's landmarks (what the warp covers) with all but the lowest
  30 % of the forehead left out (:func:`face_mask_points`: hair there is common on both faces) and the
  target's mouth opening left out (:data:`MOUTH_INNER`: the target's teeth stay, the source's lips are
  not stretched over an open mouth), eroded by :data:`MASK_ERODE` of the face size and feathered by
  :data:`MASK_FEATHER`.

**Pose limit.** A 2D piecewise-affine warp cannot turn a head: the source's visible side is stretched
over the target's, and self-occlusion (the far cheek, the nose's side) is wrong. The design notes
(``REFERENCE_NOTES.md``, "Classical swap") put the breaking point near 30 degrees of pose difference.
Yaw here is Face Mesh's estimate (:func:`faceforge.faces.rotate.estimate_yaw`, positive when the nose
points to the image's right), which reads turned heads low (a median 0.57-0.75 of the true yaw on the
synthesized pose pairs of :mod:`training.pose_pairs`), so a measured gap of :data:`DEFAULT_MAX_YAW_GAP`
= 30 degrees is already about 40-50 true degrees: the limit is not loose. Measured
(``benchmarks/results/swap_quality.md``, Laplacian blend): on 500 UTKFace pairs the swap's ID retrieval
(top-1 among 500 sources) falls from 91 % for gaps under 10 degrees to 82 % (10-20), 67 % (20-30) and
57 % above 30 (14 pairs); on targets re-rendered at known yaws, from 91 % at 0 to 71 % at 30 true degrees
(median measured gap 21), 62 % at 45 (31) and 50 % at 60 (35), and the grids show the far cheek folded
and the profile smeared beyond about 30 measured degrees. A gap above the limit raises :class:`PoseGapError`
naming both yaws and the limit; ``allow_pose_gap=True`` swaps anyway with a :class:`UserWarning`.

**Which faces, and when it refuses.** The source face is the largest detected face of the source image
(or ``source_face=i``). Target faces are chosen as in :func:`faceforge.translate.select_faces`. A
chosen target face that cannot be swapped (yaw gap, it *is* the source face, too small, Face Mesh
rejects it) is, with ``faces="all"``, skipped and reported in :attr:`SwappedFace.skipped`; a face the
caller named (indices or ``"largest"``) raises that face's error; and when no face at all was swapped,
the first face's error is raised. Errors:

=====================  ======================================================================
error                  when
=====================  ======================================================================
NoFaceError            no face in the source or in the target image (the message says which)
FaceTooSmallError      the source face's box is narrower than ``min_source_face`` px
                       (:data:`MIN_SOURCE_FACE` = 64) or a target face narrower than
                       :data:`MIN_TARGET_FACE` (= 24) px
SameFaceError          a target face is the source face (same pixels, e.g. the same photo or
                       a copy of it: :func:`same_face`)
PoseGapError           ``|yaw(source) - yaw(target)| > max_yaw_gap``
FaceSelectionError     a selected index is not among the target's faces
ValueError             bad arrays, unknown blend, out-of-range options
=====================  ======================================================================

The swap's own refusals (:class:`~faceforge.errors.PoseGapError`, :class:`~faceforge.errors.FaceTooSmallError`,
:class:`~faceforge.errors.SameFaceError`; base :class:`~faceforge.errors.SwapError`, status 422) live in
:mod:`faceforge.errors` with the project's other errors (re-exported here), so the CLI ends them in one
line with exit code 1 and the server answers them as problem documents (listed in its OpenAPI document)
like every other error.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import cv2
import numpy as np

from faceforge.errors import (FaceSelectionError, FaceTooSmallError, NoFaceError, PoseGapError,
                              SameFaceError, SwapError)
from faceforge.faces.select import parse_face_selection
from faceforge.imaging import check_rgb
from faceforge.pipelines.base import FaceJob, FacePipeline, PipelineRun

if TYPE_CHECKING:  # imported lazily: the detector loads LiteRT
    from faceforge.faces.detect import Face, FaceDetector
    from faceforge.faces.landmarks import FaceMesh

__all__ = ["BLENDS", "DEFAULT_BLEND", "DEFAULT_MAX_YAW_GAP", "MIN_SOURCE_FACE", "MIN_TARGET_FACE",
           "PoseGapError", "FaceTooSmallError", "SameFaceError", "SwapError", "delaunay_triangles", "warp_face",
           "hull_mask", "face_mask_points", "reinhard_transfer", "laplacian_blend", "feather_blend", "poisson_blend",
           "estimate_pitch", "face_pose", "same_face", "swap_face", "SourceFace", "SwappedFace", "SwapResult",
           "FaceSwapper"]

BLENDS = ("poisson", "laplacian", "feather")
"""Blending modes: Poisson (``cv2.seamlessClone``), Laplacian pyramid, feathered alpha."""
DEFAULT_BLEND = "laplacian"
"""The default blend. Poisson is the classic choice, but on the shared portraits it pulls the target's
border into the face: hair or shadow on the mask's border darkens the eyes (dark "raccoon" patches), and
an occluder's edge in the source (bangs) brightens the skin below it; the Laplacian blend shows neither
and scored at least as well on identity (``benchmarks/results/swap_quality.md``)."""

DEFAULT_MAX_YAW_GAP = 30.0
"""Largest accepted ``|yaw(source) - yaw(target)|`` in degrees of Face Mesh's estimate (see the module
docstring for the basis)."""
MAX_YAW_GAP_RANGE = (0.0, 90.0)
"""Accepted values of ``max_yaw_gap`` (degrees)."""

MIN_SOURCE_FACE = 64
"""Smallest accepted source face, detector box width in pixels: below it the swap upsamples a
thumbnail onto the target (UTKFace chips, the smallest faces the benchmark uses, are ~110 px)."""
MIN_TARGET_FACE = 24
"""Target faces narrower than this (box width, pixels) are not swapped: too few pixels to warp."""

MASK_ERODE = 0.04
"""Erosion of the target's landmark hull, fraction of the face size (sqrt of the hull area), so the
seam lies inside the face rather than on its outline."""
MASK_FEATHER = 0.06
"""Gaussian feathering of the mask (sigma), fraction of the face size."""
FOREHEAD_KEEP = 0.3
"""Share of the landmark hull's forehead (above the eyebrows) the mask keeps (:func:`face_mask_points`)."""
MOUTH_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
"""Face Mesh inner-lip contour (MediaPipe ``FACEMESH_LIPS``, inner ring), in polygon order: the mouth
opening, which keeps the target's pixels (teeth, tongue) so an open target mouth is not filled with
the source's stretched lips."""
_BROWS, _CHIN, _FOREHEAD = (105, 334), 152, 10
SAME_FACE_MAD = 8.0
"""Mean absolute difference (uint8 levels) below which two landmark-aligned faces are the same face
(:func:`same_face`: 1.0-3.4 for copies of one photo, >= 11.7 for different photos on the shared photos)."""
SAME_FACE_SIDE = 64
"""Side in pixels of the frame :func:`same_face` compares in."""
STD_RATIO_RANGE = (0.5, 2.0)
"""Clamp of the lightness (L*) std ratio of :func:`reinhard_transfer`: an extreme ratio amplifies noise."""
CHROMA_RATIO_MAX = 2.0
"""Upper clamp of the a*, b* std ratios; no lower one, so a grey target (a black-and-white photo) turns
the source's face grey instead of keeping half its colour."""


# --------------------------------------------------------------------------------------------------
# Geometry


def _check_points(points: Any, name: str = "points", dims: int = 2) -> np.ndarray:
    pts = np.asarray(points, np.float64)
    if pts.ndim != 2 or pts.shape[1] < dims or len(pts) < 3:
        raise ValueError(f"{name} must be (K >= 3, {dims}+) landmarks, got {pts.shape}")
    if not np.isfinite(pts[:, :dims]).all():
        raise ValueError(f"{name} must be finite")
    return pts


def delaunay_triangles(points: np.ndarray) -> np.ndarray:
    """Delaunay triangulation of 2D points with ``cv2.Subdiv2D``, as index triples.

    Args:
        points: float ``(K, 2+)`` pixel ``(x, y)`` (extra columns ignored), K >= 3, not all collinear.

    Returns:
        int64 ``(T, 3)`` indices into ``points``; triangles touching Subdiv2D's virtual outer vertices
        are dropped; coincident points keep the first index.

    Raises:
        ValueError: bad shape, non-finite values, or no triangle (collinear points).
    """
    pts = _check_points(points)[:, :2].astype(np.float32)
    lo, hi = pts.min(0), pts.max(0)
    pad = float(max(hi - lo)) * 0.1 + 2.0
    x0, y0 = np.floor(lo - pad)
    subdiv = cv2.Subdiv2D((int(x0), int(y0), int(np.ceil(hi[0] - x0 + pad)), int(np.ceil(hi[1] - y0 + pad))))
    index: dict[tuple[float, float], int] = {}
    for i, (x, y) in enumerate(pts):
        key = (float(x), float(y))
        if key not in index:
            index[key] = i
            subdiv.insert(key)
    tris = []
    for t in np.asarray(subdiv.getTriangleList(), np.float32).reshape(-1, 3, 2):
        ids = [index.get((float(x), float(y))) for x, y in t]
        if None not in ids:
            tris.append(ids)
    if not tris:
        raise ValueError("the points have no Delaunay triangle (all collinear?)")
    return np.asarray(tris, np.int64)


def hull_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Filled convex hull of ``points`` (pixel ``(x, y)``, continuous coordinates) as a uint8 mask.

    Returns:
        uint8 ``(h, w)`` (``shape = (h, w)``), 255 inside, 0 outside.
    """
    pts = _check_points(points)[:, :2]
    hull = cv2.convexHull(np.round((pts - 0.5) * 16).astype(np.int32))
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_8, shift=4)
    return mask


def face_mask_points(points: np.ndarray, forehead: float = FOREHEAD_KEEP) -> np.ndarray:
    """Face Mesh landmarks with the forehead lowered, whose convex hull is the swap's mask.

    Face Mesh's hull reaches half-way up the forehead, where hair (bangs, a hairline) often lies: on
    the source it would be pasted onto the target's forehead, on the target it puts the mask's border
    (and Poisson's boundary values) on hair. Every landmark above the eyebrows (landmarks 105, 334;
    "up" is the chin-to-forehead direction 152 -> 10, so roll does not matter) is moved down to
    ``forehead`` of its height above them.

    Args:
        points: float ``(468, 2+)`` landmarks; fewer than 468 rows are returned unchanged.
        forehead: 1 keeps the hull as is, 0 cuts it at the eyebrows.

    Returns:
        float64 ``(K, 2)``.
    """
    pts = _check_points(points)[:, :2].copy()
    if len(pts) < 468 or forehead >= 1.0:
        return pts
    up = pts[_FOREHEAD] - pts[_CHIN]
    up /= max(float(np.linalg.norm(up)), 1e-6)
    brow = pts[list(_BROWS)].mean(0)
    height = (pts - brow) @ up
    above = height > 0
    pts[above] -= (1.0 - forehead) * height[above, None] * up
    return pts


def warp_face(source: np.ndarray, source_xy: np.ndarray, target_xy: np.ndarray, triangles: np.ndarray,
              out_size: tuple[int, int], depth: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-triangle affine warp of the source face onto the target geometry.

    Every triangle ``t`` fills the output pixels inside ``target_xy[triangles[t]]`` with the source
    sampled (bilinear) through the affine map taking those vertices to ``source_xy[triangles[t]]``
    (:func:`faceforge.faces.rotate.warp_triangles`). With ``depth`` (the target's Face Mesh ``z``,
    larger = farther), triangles are drawn farthest first so that where a pose difference folds the
    mesh the nearer surface is seen.

    Args:
        source: uint8 ``(Hs, Ws, 3)`` source image.
        source_xy: float ``(K, 2)`` landmarks in ``source`` pixels.
        target_xy: float ``(K, 2)`` landmarks in output pixels.
        triangles: int ``(T, 3)`` from :func:`delaunay_triangles`.
        out_size: ``(width, height)`` of the output.
        depth: optional float ``(K,)`` target depth per landmark.

    Returns:
        ``(warped, covered)``: uint8 ``(h, w, 3)`` (0 where no triangle falls) and bool ``(h, w)``.

    Raises:
        ValueError: bad shapes.
    """
    from faceforge.faces.rotate import warp_triangles

    triangles = np.asarray(triangles, np.int64)
    order = np.arange(len(triangles))
    if depth is not None:
        d = np.asarray(depth, np.float64)[triangles].mean(1)
        order = np.argsort(-d, kind="stable")
    return warp_triangles(source, np.asarray(source_xy, np.float64)[:, :2], np.asarray(target_xy, np.float64)[:, :2],
                          triangles, order, out_size)


# --------------------------------------------------------------------------------------------------
# Colour and blending


def reinhard_transfer(image: np.ndarray, reference: np.ndarray, mask: np.ndarray,
                      ratio_range: tuple[float, float] = STD_RATIO_RANGE,
                      chroma_max: float = CHROMA_RATIO_MAX, robust: bool = True) -> np.ndarray:
    """Match the colour statistics of ``image`` to ``reference`` inside ``mask`` (Reinhard et al. 2001).

    In CIE L*a*b* (``cv2.COLOR_RGB2Lab`` of float RGB in [0, 1]: L in [0, 100]) each channel becomes
    ``(x - mean_img) * r + mean_ref`` with ``r = std_ref / std_img`` clipped to ``ratio_range`` for L* and
    to ``[0, chroma_max]`` for a*, b* (a grey reference makes a grey result), the means and standard
    deviations taken over the mask's pixels of each image; applied to every pixel of ``image``.

    Args:
        image: uint8 ``(h, w, 3)`` RGB, e.g. the warped source face.
        reference: uint8 ``(h, w, 3)`` RGB, e.g. the target face region (same size).
        mask: bool or uint8 ``(h, w)``: pixels whose statistics count (non-zero).
        ratio_range: clamp of the L* std ratio.
        chroma_max: upper clamp of the a*, b* std ratios.
        robust: use the median for the mean and half the 15.9-84.1 percentile range for the standard
            deviation (equal for a normal distribution), so that a few outlying pixels in the mask (a
            drawn line, a strand of hair, a glasses frame) do not set the colour.

    Returns:
        uint8 ``(h, w, 3)`` RGB (``image`` unchanged when the mask has fewer than 16 pixels).

    Raises:
        ValueError: shapes differ or bad dtypes.
    """
    check_rgb(image, "image")
    check_rgb(reference, "reference")
    m = np.asarray(mask) > 0
    if image.shape != reference.shape or m.shape != image.shape[:2]:
        raise ValueError(f"image {image.shape}, reference {reference.shape} and mask {m.shape} must match")
    if m.sum() < 16:
        return image.copy()
    lab_i = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    lab_r = cv2.cvtColor(reference.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    def stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not robust:
            return values.mean(0), values.std(0)
        p16, p50, p84 = np.percentile(values, (15.87, 50.0, 84.13), axis=0)
        return p50, (p84 - p16) / 2.0

    mi, si = stats(lab_i[m])
    mr, sr = stats(lab_r[m])
    ratio = sr / np.maximum(si, 1e-3)
    ratio[0] = np.clip(ratio[0], *ratio_range)
    ratio[1:] = np.clip(ratio[1:], 0.0, chroma_max)
    lab = (lab_i - mi) * ratio + mr
    lab[..., 0] = np.clip(lab[..., 0], 0, 100)
    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def feather_blend(foreground: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``alpha * foreground + (1 - alpha) * background``, rounded to uint8.

    Args:
        foreground, background: uint8 ``(h, w, 3)``.
        alpha: float ``(h, w)`` in [0, 1].
    """
    a = np.clip(np.asarray(alpha, np.float32), 0, 1)[..., None]
    bg = background.astype(np.float32)
    return np.clip(np.rint(bg + a * (foreground.astype(np.float32) - bg)), 0, 255).astype(np.uint8)


def laplacian_blend(foreground: np.ndarray, background: np.ndarray, alpha: np.ndarray, levels: int = 5) -> np.ndarray:
    """Multiresolution spline of Burt & Adelson (1983): blend two images band by band.

    The Laplacian pyramids of both images (``cv2.pyrDown`` / ``cv2.pyrUp``, 5-tap binomial kernel, any
    size: each level's size is kept for the way up) are mixed at each level with the Gaussian pyramid
    of ``alpha``, and the mixed pyramid is collapsed. Low frequencies (skin tone, shading) thus blend
    over a wide zone and fine detail over a narrow one. Where ``alpha`` and its blurred levels are 0
    the result equals ``background`` (up to rounding).

    Args:
        foreground, background: uint8 ``(h, w, 3)``.
        alpha: float ``(h, w)`` in [0, 1], 1 = foreground.
        levels: pyramid levels below the full resolution (>= 0; capped so the coarsest side is >= 2).

    Returns:
        uint8 ``(h, w, 3)``.

    Raises:
        ValueError: shapes differ or ``levels < 0``.
    """
    check_rgb(foreground, "foreground")
    check_rgb(background, "background")
    a = np.clip(np.asarray(alpha, np.float32), 0, 1)
    if foreground.shape != background.shape or a.shape != foreground.shape[:2]:
        raise ValueError(f"foreground {foreground.shape}, background {background.shape}, alpha {a.shape} must match")
    if levels < 0:
        raise ValueError(f"levels must be >= 0, got {levels}")
    levels = int(min(levels, max(0, int(np.floor(np.log2(max(2, min(a.shape))))) - 1)))
    gf, gb, ga = [foreground.astype(np.float32)], [background.astype(np.float32)], [a]
    for _ in range(levels):
        gf.append(cv2.pyrDown(gf[-1]))
        gb.append(cv2.pyrDown(gb[-1]))
        ga.append(cv2.pyrDown(ga[-1]))

    def up(x: np.ndarray, like: np.ndarray) -> np.ndarray:
        return cv2.pyrUp(x, dstsize=(like.shape[1], like.shape[0]))

    out = gb[-1] + ga[-1][..., None] * (gf[-1] - gb[-1])
    for i in range(levels - 1, -1, -1):
        lf = gf[i] - up(gf[i + 1], gf[i])
        lb = gb[i] - up(gb[i + 1], gb[i])
        out = up(out, gf[i]) + lb + ga[i][..., None] * (lf - lb)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def poisson_blend(foreground: np.ndarray, background: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Poisson image editing (Perez et al. 2003) with ``cv2.seamlessClone`` (``NORMAL_CLONE``), in place.

    The foreground's gradients are kept inside ``mask`` and its values are fixed to the background's on
    the mask's border. The images are padded by reflection first (OpenCV needs the mask's box strictly
    inside the image), and the clone is placed so that it does not move. Pixels outside the mask are
    the background's, exactly.

    Args:
        foreground, background: uint8 ``(h, w, 3)`` RGB (same size, already aligned).
        mask: bool or uint8 ``(h, w)``, non-zero = foreground region.

    Returns:
        uint8 ``(h, w, 3)``; ``background`` copy when the mask is empty.
    """
    m = (np.asarray(mask) > 0).astype(np.uint8) * 255
    if foreground.shape != background.shape or m.shape != foreground.shape[:2]:
        raise ValueError("foreground, background and mask must have the same height and width")
    if not m.any():
        return background.copy()
    p = 4
    fg = cv2.copyMakeBorder(foreground, p, p, p, p, cv2.BORDER_REFLECT_101)
    bg = cv2.copyMakeBorder(background, p, p, p, p, cv2.BORDER_REFLECT_101)
    mk = cv2.copyMakeBorder(m, p, p, p, p, cv2.BORDER_CONSTANT, value=0)
    x, y, w, h = cv2.boundingRect(mk)
    centre = (x + w // 2, y + h // 2)  # seamlessClone puts the mask box's top-left at centre - size // 2
    out = cv2.seamlessClone(fg, bg, mk, centre, cv2.NORMAL_CLONE)[p:-p, p:-p]
    keep = m == 0
    out[keep] = background[keep]
    return out


# --------------------------------------------------------------------------------------------------
# Pose and identity checks


_VERTICAL_PAIRS = ((10, 152), (151, 175), (9, 200), (168, 199))
"""Face Mesh midline landmark pairs, upper point first (forehead/nose bridge -> chin)."""


def estimate_pitch(points: np.ndarray) -> float:
    """Head pitch from Face Mesh 3D landmarks, degrees (the vertical analogue of
    :func:`faceforge.faces.rotate.estimate_yaw`).

    Sums the top-to-bottom vectors of midline landmark pairs (forehead/nose bridge to chin); on a head
    tilted by ``t`` such a vector ``(0, h, 0)`` becomes ``(0, h cos t, h sin t)``, so
    ``pitch = atan2(sum dz, sum dy)``: positive when the chin is farther from the camera than the
    forehead (the face tilted up). The face's own relief gives a constant offset (a frontal face is not
    0), so use it for differences between faces (the benchmark's pose error), not as an absolute angle.

    Args:
        points: ``(468, 3)`` Face Mesh ``(x, y, z)``, ``z`` in the unit of ``x`` (larger = farther).

    Raises:
        ValueError: bad shape.
    """
    pts = _check_points(points, dims=3)
    if len(pts) < 468:
        raise ValueError(f"points must be (468, 3) Face Mesh landmarks, got {pts.shape}")
    v = sum(pts[b] - pts[a] for a, b in _VERTICAL_PAIRS)
    return float(np.degrees(np.arctan2(v[2], v[1])))


def face_pose(points: np.ndarray) -> tuple[float, float, float]:
    """``(yaw, pitch, roll)`` in degrees from Face Mesh 3D landmarks: :func:`~faceforge.faces.rotate.estimate_yaw`,
    :func:`estimate_pitch`, :func:`faceforge.frontalize.face_roll` (sign conventions there)."""
    from faceforge.faces.rotate import estimate_yaw
    from faceforge.frontalize import face_roll

    return estimate_yaw(points), estimate_pitch(points), face_roll(points)


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    from faceforge.faces.align import umeyama

    return umeyama(np.asarray(src, np.float64)[:, :2], np.asarray(dst, np.float64)[:, :2])


def _warp_small(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cv2.warpAffine`` that shrinks with area averaging first when ``matrix`` scales below 1/2."""
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:
        small = cv2.resize(image, None, fx=2 * scale, fy=2 * scale, interpolation=cv2.INTER_AREA)
        sx, sy = small.shape[1] / image.shape[1], small.shape[0] / image.shape[0]
        matrix = matrix @ np.array([[1 / sx, 0, 0], [0, 1 / sy, 0], [0, 0, 1.0]])
        image = small
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def same_face(source: np.ndarray, source_xy: np.ndarray, target: np.ndarray, target_xy: np.ndarray,
              tolerance: float = SAME_FACE_MAD, side: int = SAME_FACE_SIDE) -> tuple[bool, float]:
    """Whether a target face shows the very pixels of the source face (the same photo, a crop, a
    re-encoded or resized copy), as opposed to another photo (of anyone, the same person included).

    Both faces are warped to a ``side``-pixel frame by the least-squares similarity of their landmarks
    (:func:`faceforge.faces.align.umeyama`; area averaging when shrinking), blurred (Gaussian sigma 1 px,
    against landmark jitter and resampling), and compared by the mean absolute difference over the
    landmark hull (eroded by 2 px). Measured on the shared photos (64 px): the same photo re-encoded
    (JPEG 80), cropped, or at 240p vs 1080p 1.1-3.4 levels; ``biden.jpg`` vs its face in
    ``two_people.jpg`` (it is a crop of it) 1.0; different photos (another person, a mirror image, two
    photos of one person) 11.7-80. Hence :data:`SAME_FACE_MAD` = 8.

    Args:
        source, target: uint8 ``(H, W, 3)`` images.
        source_xy, target_xy: float ``(K, 2+)`` landmarks of one face in each (same K).
        tolerance: MAD (uint8 levels) below which the faces are the same.
        side: comparison frame size in pixels (the source landmark box's longer side).

    Returns:
        ``(same, mad)``.
    """
    s_xy = _check_points(source_xy)[:, :2]
    t_xy = _check_points(target_xy)[:, :2]
    lo, hi = s_xy.min(0), s_xy.max(0)
    k = side / max(1.0, float(max(hi - lo)))
    to_frame = np.array([[k, 0, -k * lo[0] + 2], [0, k, -k * lo[1] + 2]])
    size = (int(np.ceil((hi[0] - lo[0]) * k)) + 4, int(np.ceil((hi[1] - lo[1]) * k)) + 4)
    frame_xy = s_xy * k + to_frame[:, 2]
    a = cv2.GaussianBlur(_warp_small(source, to_frame, size).astype(np.float32), (0, 0), 1.0)
    b = cv2.GaussianBlur(_warp_small(target, _similarity(t_xy, frame_xy), size).astype(np.float32), (0, 0), 1.0)
    mask = cv2.erode(hull_mask(frame_xy, (size[1], size[0])), np.ones((5, 5), np.uint8)) > 0
    mad = float(np.abs(a - b)[mask].mean()) if mask.any() else 255.0
    return mad < tolerance, mad


# --------------------------------------------------------------------------------------------------
# One face


def _face_size(points: np.ndarray) -> float:
    hull = cv2.convexHull(np.ascontiguousarray(np.asarray(points, np.float32)[:, :2]))
    return float(np.sqrt(max(cv2.contourArea(hull), 1.0)))


def swap_face(source: np.ndarray, source_points: np.ndarray, target: np.ndarray, target_points: np.ndarray,
              blend: str = DEFAULT_BLEND, triangles: np.ndarray | None = None, colour: bool = True,
              forehead: float = FOREHEAD_KEEP, keep_mouth: bool = True,
              return_mask: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Put the source face onto one target face (no detection, no checks): warp, colour, blend.

    Works in a region around the target face (its landmark box plus a margin), so the cost does not
    grow with the photo; pixels outside that region, and in it outside the blend's reach, are the
    target's exactly. When the target face is less than half the source face's size, the source region
    is first shrunk with area averaging so the bilinear warp does not alias.

    Args:
        source: uint8 ``(Hs, Ws, 3)`` RGB source photo.
        source_points: float ``(468, 2+)`` Face Mesh landmarks of the source face, source pixels.
        target: uint8 ``(H, W, 3)`` RGB target photo (not modified).
        target_points: float ``(468, 2+)`` landmarks of the target face; a third column (Face Mesh
            depth) orders the triangles back to front.
        blend: ``"poisson"``, ``"laplacian"`` or ``"feather"``.
        triangles: int ``(T, 3)`` over the landmarks; default :func:`delaunay_triangles` of the source's.
        colour: apply :func:`reinhard_transfer` (skin tone of the target).
        forehead: share of the forehead the mask keeps (:func:`face_mask_points`), in [0, 1].
        keep_mouth: keep the target's mouth opening (:data:`MOUTH_INNER`; 468-point landmarks only).
        return_mask: also return the float32 ``(H, W)`` blend weight in [0, 1] (where the face went).

    Returns:
        uint8 ``(H, W, 3)`` RGB, or ``(image, weight)`` with ``return_mask``.

    Raises:
        ValueError: bad arrays, mismatched landmark counts, unknown ``blend``.
    """
    check_rgb(source, "source")
    check_rgb(target, "target")
    s_pts = _check_points(source_points, "source_points")
    t_pts = _check_points(target_points, "target_points")
    if len(s_pts) != len(t_pts):
        raise ValueError(f"source and target have {len(s_pts)} and {len(t_pts)} landmarks")
    if blend not in BLENDS:
        raise ValueError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    if not 0.0 <= forehead <= 1.0:
        raise ValueError(f"forehead must be in [0, 1], got {forehead}")
    tris = delaunay_triangles(s_pts) if triangles is None else np.asarray(triangles, np.int64)
    h, w = target.shape[:2]
    size = _face_size(t_pts)
    # region of the target face: landmark box + margin wide enough for the pyramid / feathering
    lo, hi = t_pts[:, :2].min(0), t_pts[:, :2].max(0)
    margin = 0.15 * size + 8
    x0, y0 = (int(max(0, np.floor(v - margin))) for v in lo)
    x1, y1 = int(min(w, np.ceil(hi[0] + margin))), int(min(h, np.ceil(hi[1] + margin)))
    out = target.copy()
    weight_full = np.zeros((h, w), np.float32)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return (out, weight_full) if return_mask else out
    region = np.ascontiguousarray(target[y0:y1, x0:x1])
    t_xy = t_pts[:, :2] - (x0, y0)

    # source: crop its face region, shrink when much larger than the target face
    s_size = _face_size(s_pts)
    s_lo, s_hi = s_pts[:, :2].min(0), s_pts[:, :2].max(0)
    s_margin = 0.1 * s_size + 4
    sx0, sy0 = (int(max(0, np.floor(v - s_margin))) for v in s_lo)
    sx1 = int(min(source.shape[1], np.ceil(s_hi[0] + s_margin)))
    sy1 = int(min(source.shape[0], np.ceil(s_hi[1] + s_margin)))
    src = np.ascontiguousarray(source[sy0:sy1, sx0:sx1])
    s_xy = s_pts[:, :2] - (sx0, sy0)
    factor = min(1.0, 2.0 * size / max(s_size, 1e-6))
    if factor < 1.0:
        nw, nh = max(2, int(round(src.shape[1] * factor))), max(2, int(round(src.shape[0] * factor)))
        s_xy = s_xy * (nw / src.shape[1], nh / src.shape[0])
        src = cv2.resize(src, (nw, nh), interpolation=cv2.INTER_AREA)

    depth = t_pts[:, 2] if t_pts.shape[1] >= 3 else None
    warped, covered = warp_face(src, s_xy, t_xy, tris, (region.shape[1], region.shape[0]), depth)

    hull = hull_mask(face_mask_points(t_xy, forehead), region.shape[:2]) > 0
    inside = hull & covered
    erode = max(1, int(round(MASK_ERODE * size)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode + 1, 2 * erode + 1))
    outer = cv2.erode(inside.astype(np.uint8), kernel) > 0
    core, hole = outer, None
    if keep_mouth and len(t_xy) >= 468:
        mouth = np.zeros(region.shape[:2], np.uint8)
        cv2.fillPoly(mouth, [np.round((t_xy[list(MOUTH_INNER)] - 0.5) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
        k = max(1, erode // 2)
        opened = cv2.dilate(mouth, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))) > 0
        if opened.any():
            core = outer & ~opened
            hole = cv2.GaussianBlur(opened.astype(np.float32), (0, 0), max(0.5, k / 2))
    if not core.any():
        return (out, weight_full) if return_mask else out
    if colour:
        stats = cv2.erode(core.astype(np.uint8), kernel) > 0
        warped = reinhard_transfer(warped, region, stats if stats.sum() >= 16 else core)
    # fill what the warp did not cover with the target, so blurred bands do not pull in black
    warped = np.where(covered[..., None], warped, region)
    sigma = max(0.5, MASK_FEATHER * size)
    # the Poisson solve makes the border seamless; its light feather only hides the mask's staircase
    alpha = cv2.GaussianBlur(outer.astype(np.float32), (0, 0), max(0.5, 0.3 * sigma) if blend == "poisson" else sigma)
    alpha *= inside
    if hole is not None:
        alpha *= 1.0 - hole
    if blend == "poisson":
        blended = feather_blend(poisson_blend(warped, region, core), region, alpha)
    elif blend == "laplacian":
        levels = int(np.clip(np.floor(np.log2(max(size, 2) / 8.0)), 1, 6))
        blended = laplacian_blend(warped, region, alpha, levels)
        # the coarse bands reach a little past the mask; keep the target exact beyond the hull
        reach = cv2.dilate(inside.astype(np.uint8), kernel) > 0
        blended[~reach] = region[~reach]
    else:
        blended = feather_blend(warped, region, alpha)
    out[y0:y1, x0:x1] = blended
    if return_mask:
        weight_full[y0:y1, x0:x1] = alpha
        return out, weight_full
    return out


# --------------------------------------------------------------------------------------------------
# Whole photos


@dataclass
class SourceFace:
    """The source identity, prepared once and reusable for many targets.

    Attributes:
        image: uint8 ``(Hs, Ws, 3)`` RGB source photo.
        points: float64 ``(468, 3)`` Face Mesh ``(x, y, z)`` of the source face, source pixels.
        triangles: int64 ``(T, 3)`` Delaunay triangles of its landmarks (:func:`delaunay_triangles`).
        yaw: Face Mesh yaw in degrees (positive: nose to the image's right).
        box: float32 ``(4,)`` detector box ``xmin, ymin, xmax, ymax``.
        index: the face's index among the source's detected faces.
        faces_found: how many faces the source image holds.
    """

    image: np.ndarray
    points: np.ndarray
    triangles: np.ndarray
    yaw: float
    box: np.ndarray
    index: int = 0
    faces_found: int = 1

    @property
    def width(self) -> float:
        """Detector box width in pixels."""
        return float(self.box[2] - self.box[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: index, faces_found, box, yaw, width."""
        return {"index": self.index, "faces_found": self.faces_found, "box": [round(float(v), 2) for v in self.box],
                "yaw": round(self.yaw, 2), "width": round(self.width, 1)}


@dataclass
class SwappedFace:
    """One detected face of the target photo.

    Attributes:
        index: position in the detector's list (highest score first); what ``faces=`` selects by.
        box: float32 ``(4,)`` in target pixels.
        score: detector confidence.
        selected: chosen by ``faces=``.
        swapped: the source face was put here.
        yaw: Face Mesh yaw (degrees) when measured, else ``None``.
        yaw_gap: ``|yaw - source yaw|`` when measured.
        skipped: why a selected face was not swapped (the error's message), else ``None``.
        warning: set when swapped beyond the yaw limit (``allow_pose_gap``).
        points: float64 ``(468, 3)`` landmarks when measured.
    """

    index: int
    box: np.ndarray
    score: float
    selected: bool
    swapped: bool = False
    yaw: float | None = None
    yaw_gap: float | None = None
    skipped: str | None = None
    warning: str | None = None
    points: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (no arrays besides the box)."""
        r = (lambda v: None if v is None else round(float(v), 2))
        return {"index": self.index, "box": [round(float(v), 2) for v in self.box], "score": round(self.score, 4),
                "selected": self.selected, "swapped": self.swapped, "yaw": r(self.yaw), "yaw_gap": r(self.yaw_gap),
                "skipped": self.skipped, "warning": self.warning}


@dataclass
class SwapResult:
    """Result of :meth:`FaceSwapper.swap`.

    Attributes:
        image: uint8 ``(H, W, 3)`` RGB target with the swapped faces.
        faces: every detected target face, detector order.
        source: the :class:`SourceFace` used.
        blend: the blending mode.
        timings_ms: ``source`` (detection + Face Mesh of the source, 0 when prepared), ``detect``,
            ``landmarks`` (target Face Mesh), ``swap`` (warp, colour, blend), milliseconds.
    """

    image: np.ndarray
    faces: list[SwappedFace]
    source: SourceFace
    blend: str
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def swapped(self) -> list[SwappedFace]:
        """The faces that were changed."""
        return [f for f in self.faces if f.swapped]


class FaceSwapper(FacePipeline):
    """Classical face swap on whole photos (see the module docstring).

    A :class:`~faceforge.pipelines.FacePipeline`: detect and select the target faces; preparation
    (step ``landmarks``) runs Face Mesh on each and refuses or skips it (size, same face, yaw gap); there
    is no model (the model step passes the landmarks on); the paste warps, colour-matches and blends the
    source face into the photo in place (:func:`swap_face`). :attr:`SwapResult.timings_ms` reports the
    model step and the paste together as ``swap``. Each photo runs on a shallow copy of the swapper that
    holds its source face (detector and Face Mesh are shared).

    Args:
        blend: ``"laplacian"`` (default, :data:`DEFAULT_BLEND`), ``"poisson"`` or ``"feather"``.
        max_yaw_gap: largest ``|yaw(source) - yaw(target)|`` in degrees, in ``(0, 90]``.
        allow_pose_gap: swap beyond ``max_yaw_gap`` with a warning instead of refusing.
        min_source_face: smallest source face box width in pixels (>= 16).
        colour: Reinhard colour transfer to the target's skin tone.
        detector: a :class:`~faceforge.faces.detect.FaceDetector` to reuse (default: built on first use).
        mesh: a :class:`~faceforge.faces.landmarks.FaceMesh` to reuse (default: built on first use).

    Raises:
        ValueError: an option out of range or an unknown blend.

    Example:
        >>> from faceforge.imaging import load_image, save_image
        >>> swapper = FaceSwapper(blend="laplacian")                        # doctest: +SKIP
        >>> result = swapper.swap(load_image("me.jpg"), load_image("group.jpg"))  # doctest: +SKIP
        >>> save_image("swapped.png", result.image)                          # doctest: +SKIP
    """

    def __init__(self, blend: str = DEFAULT_BLEND, max_yaw_gap: float = DEFAULT_MAX_YAW_GAP,
                 allow_pose_gap: bool = False, min_source_face: int = MIN_SOURCE_FACE, colour: bool = True,
                 detector: FaceDetector | None = None, mesh: FaceMesh | None = None) -> None:
        if blend not in BLENDS:
            raise ValueError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
        lo, hi = MAX_YAW_GAP_RANGE
        if not (lo < float(max_yaw_gap) <= hi):
            raise ValueError(f"max_yaw_gap must be in ({lo:g}, {hi:g}] degrees, got {max_yaw_gap}")
        if int(min_source_face) < 16:
            raise ValueError(f"min_source_face must be >= 16 px, got {min_source_face}")
        self.blend = blend
        self.max_yaw_gap = float(max_yaw_gap)
        self.allow_pose_gap = bool(allow_pose_gap)
        self.min_source_face = int(min_source_face)
        self.colour = bool(colour)
        self._detector = detector
        self._mesh = mesh
        self._source: SourceFace | None = None  # per photo, set on the copy that runs it
        self._selection: str | tuple[int, ...] = "all"

    @property
    def mesh(self) -> FaceMesh:
        """Face Mesh (built on first use when none was given)."""
        if self._mesh is None:
            from faceforge.faces.landmarks import FaceMesh
            self._mesh = FaceMesh(self.detector)
        return self._mesh

    def prepare_source(self, rgb: np.ndarray, face: int | None = None, detected: Sequence[Face] | None = None) -> SourceFace:
        """Detect the source face (the largest, or index ``face``), its landmarks, yaw and triangles.

        Raises:
            ValueError: bad image or a negative index.
            NoFaceError: no face in the source image, or Face Mesh rejects it.
            FaceSelectionError: ``face`` is not among the detected faces.
            FaceTooSmallError: the face is narrower than ``min_source_face``.
        """
        from faceforge.faces.rotate import estimate_yaw

        check_rgb(rgb, "source")
        found = list(self.detector.detect(rgb)) if detected is None else list(detected)
        if not found:
            raise NoFaceError(f"no face was found in the source image ({rgb.shape[1]}x{rgb.shape[0]})", role="source")
        if face is None:
            index = int(np.argmax([(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in found]))
        else:
            if int(face) < 0:
                raise ValueError(f"source face index must be >= 0, got {face}")
            if int(face) >= len(found):
                raise FaceSelectionError(f"source face {face} is out of range: the source image has {len(found)} "
                                         f"face(s)", faces=len(found), requested=[int(face)])
            index = int(face)
        chosen = found[index]
        width = float(chosen.box[2] - chosen.box[0])
        if width < self.min_source_face:
            raise FaceTooSmallError(f"the source face is {width:.0f} px wide; the swap needs at least "
                                    f"{self.min_source_face} px", role="source", width=round(width, 1),
                                    minimum=self.min_source_face)
        try:
            pts = self.mesh.landmarks_3d(rgb, chosen).astype(np.float64)
        except NoFaceError:
            raise NoFaceError("Face Mesh found no usable face in the source image", role="source") from None
        return SourceFace(image=rgb, points=pts, triangles=delaunay_triangles(pts), yaw=estimate_yaw(pts),
                          box=np.asarray(chosen.box, np.float32), index=index, faces_found=len(found))

    def _check_face(self, source: SourceFace, target: np.ndarray, job: FaceJob) -> Exception | None:
        """Measure one target face (``job.extra``: ``points``, ``yaw``, ``yaw_gap``; ``job.warning`` when
        swapped beyond the yaw limit); return the reason it must not be swapped, or ``None``."""
        from faceforge.faces.rotate import estimate_yaw

        face, index = job.face, job.index
        width = float(face.box[2] - face.box[0])
        if width < MIN_TARGET_FACE:
            return FaceTooSmallError(f"target face {index} is {width:.0f} px wide; the swap needs at least "
                                     f"{MIN_TARGET_FACE} px", role="target", width=round(width, 1),
                                     minimum=MIN_TARGET_FACE, face=index)
        try:
            pts = self.mesh.landmarks_3d(target, face).astype(np.float64)
        except NoFaceError:
            return NoFaceError(f"Face Mesh found no usable face at target face {index}", role="target",
                               face=index)
        yaw = estimate_yaw(pts)
        gap = abs(yaw - source.yaw)
        job.extra.update(points=pts, yaw=yaw, yaw_gap=gap)
        same, mad = same_face(source.image, source.points, target, pts)
        if same:
            return SameFaceError(f"target face {index} is the source face itself (mean difference {mad:.1f} "
                                 f"levels); give a different photo as the source", face=index)
        if gap > self.max_yaw_gap:
            text = (f"the source face has yaw {source.yaw:+.0f} deg and target face {index} yaw "
                    f"{yaw:+.0f} deg: a gap of {gap:.0f} deg, above the classical swap's limit of "
                    f"{self.max_yaw_gap:g} deg")
            if not self.allow_pose_gap:
                return PoseGapError(text + " (allow it with --allow-pose-gap / allow_pose_gap=True, expect "
                                    "a distorted face)", source_yaw=round(source.yaw, 1),
                                    target_yaw=round(yaw, 1), gap=round(gap, 1),
                                    limit=self.max_yaw_gap, face=index)
            job.warning = text + "; swapped anyway (allow_pose_gap): expect a distorted face"
        return None

    # ------------------------------------------------------------------ the pipeline's steps
    align_step = "landmarks"
    model_step = "swap"
    pastes = True

    def prepare_faces(self, rgb: np.ndarray, found: Sequence[Face], chosen: Sequence[int],
                      timings: dict[str, float]) -> list[FaceJob]:
        """Face Mesh and the checks of :meth:`_check_face` for every chosen target face (step ``landmarks``).

        A face that passes gets its landmarks as ``job.input``; one that fails is skipped (``input``
        ``None``, ``job.extra["skipped"]`` = the error's message) when all faces were asked for and another
        face passes; otherwise the first failure is raised.

        Raises:
            ValueError: no face is selected.
            NoFaceError, FaceTooSmallError, SameFaceError, PoseGapError: see above.
        """
        if not chosen:
            raise ValueError("no target face is selected (faces= is empty)")
        t0 = time.perf_counter()
        jobs, problems = [], []
        for i in chosen:
            job = FaceJob(index=i, face=found[i])
            problem = self._check_face(self._source, rgb, job)
            if problem is None:
                job.input = job.extra["points"]
            else:
                job.extra["skipped"] = job.warning = str(problem)
                problems.append(problem)
            jobs.append(job)
        timings[self.align_step] = (time.perf_counter() - t0) * 1e3
        if problems and (self._selection != "all" or not any(j.input is not None for j in jobs)):
            raise problems[0]
        return jobs

    def run_model(self, inputs: list[np.ndarray], **_: Any) -> list[np.ndarray]:
        """No model: the target landmarks go on to :meth:`paste`."""
        return list(inputs)

    def paste(self, image: np.ndarray, job: FaceJob) -> np.ndarray:
        """:func:`swap_face` of the source face onto this target face of ``image`` (in place of the
        previous faces' result, so overlapping faces blend over each other in order)."""
        src = self._source
        return swap_face(src.image, src.points, image, job.output, blend=self.blend, triangles=src.triangles,
                         colour=self.colour)

    def run(self, rgb: np.ndarray, faces: str | Sequence[int] = "all", *, detected: Sequence[Face] | None = None,
            max_faces: int | None = None, source: np.ndarray | SourceFace | None = None,
            source_face: int | None = None, **options: Any) -> PipelineRun:
        """The pipeline behind :meth:`swap`: :meth:`FacePipeline.run <faceforge.pipelines.FacePipeline.run>` on
        a shallow copy of the swapper that holds the source face. ``rgb`` is the target photo; ``source`` (a
        photo or a :class:`SourceFace`, required) and ``source_face`` as in :meth:`swap`.

        Returns:
            The :class:`~faceforge.pipelines.PipelineRun` (``timings_ms``: ``source``, ``detect``,
            ``landmarks``, ``swap`` (0: no model), ``paste``).

        Raises:
            As :meth:`swap`.
        """
        if source is None:
            raise ValueError("run needs source= (a photo, or a SourceFace from prepare_source); or call swap()")
        check_rgb(rgb, "target")
        selection = parse_face_selection(faces) if isinstance(faces, str) else tuple(faces)
        t0 = time.perf_counter()
        if not isinstance(source, SourceFace):
            source = self.prepare_source(source, source_face)
        t_source = (time.perf_counter() - t0) * 1e3
        worker = copy.copy(self)
        worker._source, worker._selection = source, selection
        try:
            run = FacePipeline.run(worker, rgb, selection, detected=detected, max_faces=max_faces, **options)
        except NoFaceError as exc:
            if exc.extra.get("role"):  # Face Mesh refused a target face (prepare_faces)
                raise
            raise NoFaceError(f"no face was found in the target image ({rgb.shape[1]}x{rgb.shape[0]})",
                              role="target") from None
        run.timings_ms = {"source": t_source, **run.timings_ms}
        return run

    def swap(self, source: np.ndarray | SourceFace, target: np.ndarray, faces: str | Sequence[int] = "all",
             source_face: int | None = None, detected: Sequence[Face] | None = None,
             max_faces: int | None = None) -> SwapResult:
        """Put the source face onto the chosen faces of the target photo.

        Args:
            source: uint8 ``(Hs, Ws, 3)`` RGB source photo, or a :class:`SourceFace` from
                :meth:`prepare_source` (reuse it for many targets).
            target: uint8 ``(H, W, 3)`` RGB target photo (any size; only the face regions are processed).
            faces: ``"all"`` (default), ``"largest"``, or 0-based indices into the target's detected
                faces (highest score first), as a sequence or a string such as ``"0,2"``.
            source_face: index of the source photo's face to use (default: the largest).
            detected: faces already detected in ``target`` (skips the detector).
            max_faces: swap at most this many of the chosen faces.

        Returns:
            :class:`SwapResult`.

        Raises:
            ValueError: bad images, selection string or ``max_faces``.
            NoFaceError: no face in the source or the target.
            FaceTooSmallError, SameFaceError, PoseGapError: see the module docstring (which faces raise
                and which are skipped).
            FaceSelectionError: a selected index is not among the target's faces.
        """
        check_rgb(target, "target")
        selection = parse_face_selection(faces) if isinstance(faces, str) else tuple(faces)
        if not isinstance(source, SourceFace):
            t0 = time.perf_counter()
            source = self.prepare_source(source, source_face)
            t_source = (time.perf_counter() - t0) * 1e3
        else:
            t_source = 0.0
        run = self.run(target, selection, detected=detected, max_faces=max_faces, source=source)
        results = []
        for i, f in enumerate(run.found):
            job = run.job(i)
            extra = {} if job is None else job.extra
            swapped = job is not None and job.input is not None
            results.append(SwappedFace(
                index=i, box=np.asarray(f.box, np.float32), score=float(f.score), selected=job is not None,
                swapped=swapped, yaw=extra.get("yaw"), yaw_gap=extra.get("yaw_gap"), skipped=extra.get("skipped"),
                warning=job.warning if swapped else None, points=extra.get("points")))
            if swapped and job.warning:
                warnings.warn(f"face {i}: {job.warning}", UserWarning, stacklevel=2)
        t = run.timings_ms
        timings = {"source": t_source, "detect": t["detect"], "landmarks": t["landmarks"],
                   "swap": t["swap"] + t["paste"]}
        return SwapResult(image=run.image, faces=results, source=source, blend=self.blend, timings_ms=timings)

    def describe(self) -> dict[str, Any]:
        """JSON-ready settings: method, blend, max_yaw_gap, allow_pose_gap, min_source_face, colour."""
        return {"method": "classical", "blend": self.blend, "max_yaw_gap": self.max_yaw_gap,
                "allow_pose_gap": self.allow_pose_gap, "min_source_face": self.min_source_face,
                "colour": "reinhard-lab" if self.colour else None}

"""Rotate a face in yaw from its 3D landmarks and re-render it by piecewise-affine warping.

The face-rotation half of Rotate-and-Render (H. Zhou, J. Liu, Z. Liu, Y. Liu, X. Wang, "Rotate-and-
Render: Unsupervised Photorealistic Face Rotation from Single-View Images", CVPR 2020,
arXiv:2003.08124), with MediaPipe Face Mesh's 468 landmarks (:meth:`FaceMesh.landmarks_3d
<faceforge.faces.landmarks.FaceMesh.landmarks_3d>`) instead of a fitted 3DMM and a piecewise-affine
warp instead of a mesh renderer:

1. **Scene** (:func:`build_scene`): the landmarks, a *ring* of points around their convex hull (hair,
   ears, neck: the hull pushed out by ``margin`` of its size, depth halfway between the hull's
   depth and the rotation axis) and a fixed *frame* of points just outside the image; Delaunay
   triangulation (``scipy.spatial.Delaunay``) of all of them in the image plane. Triangles with a
   frame vertex are *background*: they never rotate and stretch to fill what the head uncovers.
2. **Rotation** (:func:`rotate_yaw`) of landmarks and ring about a vertical axis through the head:
   ``x' = px + dx cos t - dz sin t``, ``z' = pz + dx sin t + dz cos t`` with ``(dx, dz)`` relative
   to the pivot ``(px, pz)``: the mid-point of the two cheek-contour landmarks, moved back by
   ``pivot_depth`` face widths (:func:`head_pivot`). Orthographic projection (drop ``z'``).
3. **Visibility**: the triangulation is a height field seen from the camera, so every triangle
   faces the camera in the source; a triangle whose projected orientation flips (signed area changes
   sign, i.e. its normal now points away) or whose projected area vanishes is *back-facing* and
   dropped. The rest are drawn back to front by mean depth ``z'`` (a painter's z-buffer per triangle),
   background first, into a triangle-id map (``cv2.fillConvexPoly``); each pixel then samples the
   source through its triangle's affine map (one ``cv2.remap``, bilinear). Pixels no triangle
   covers are filled by ``cv2.inpaint`` (Telea).
4. **Back to frontal** (:func:`rotate_and_render`): as Rotate-and-Render does, the rotated image is
   warped back to the original pose, each triangle sampling the rotated image where that triangle
   was projected, *without* a visibility test: triangles hidden at the rotated pose pick up the
   colours of whatever covered them (the nose, the near cheek), the artifacts a generator must learn
   to remove when it is later fed real profiles rotated to frontal.

Conventions: points are ``(x, y, z)`` in continuous pixel coordinates of the image (pixel ``i`` covers
``[i, i + 1)``), ``z`` in the unit of ``x``, larger = farther from the camera. Yaw in degrees,
positive when the nose moves towards the image's right (the subject turns to their own left).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["SYMMETRIC_PAIRS", "estimate_yaw", "head_pivot", "rotate_yaw", "Scene", "build_scene",
           "warp_triangles", "Render", "render_yaw", "rotate_and_render", "signed_areas"]

SYMMETRIC_PAIRS: tuple[tuple[int, int], ...] = (
    (33, 263),   # eye outer corners (subject's right, subject's left)
    (133, 362),  # eye inner corners
    (234, 454),  # cheek contour at the ears
    (61, 291),   # mouth corners
    (127, 356),  # upper contour
    (93, 323),   # mid contour
    (58, 288),   # lower contour
    (70, 300),   # eyebrow outer ends
    (105, 334),  # eyebrow middles
)
"""Face Mesh landmark pairs mirrored about the face's midline (MediaPipe canonical face model
topology), first the subject's right (image left on a frontal face)."""

RIGHT_CONTOUR, LEFT_CONTOUR = 234, 454
NUM_FACE_POINTS = 468
_MIN_AREA = 1e-3  # px^2: smaller projected triangles are degenerate


def _check_points(points: np.ndarray, min_count: int = NUM_FACE_POINTS) -> np.ndarray:
    pts = np.asarray(points, np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < min_count:
        raise ValueError(f"points must be ({min_count}+, 3) Face Mesh (x, y, z), got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("points must be finite")
    return pts


def estimate_yaw(points: np.ndarray) -> float:
    """Head yaw from Face Mesh 3D landmarks, in degrees.

    Sums the vectors from the subject's right to left landmark of the :data:`SYMMETRIC_PAIRS`; on a
    face turned by ``t`` each such vector ``(w, 0, 0)`` becomes ``(w cos t, ., w sin t)``, so
    ``yaw = atan2(sum dz, sum dx)``. Sign: positive when the nose points to the image's right.

    Args:
        points: ``(468, 3)`` (or more rows; the first 468 are the mesh) ``(x, y, z)``.

    Returns:
        Yaw in degrees, in (-180, 180]; about +-3 deg of noise on frontal UTKFace chips.

    Raises:
        ValueError: bad shape or non-finite values.
    """
    pts = _check_points(points)
    right = pts[[a for a, _ in SYMMETRIC_PAIRS]]
    left = pts[[b for _, b in SYMMETRIC_PAIRS]]
    v = (left - right).sum(0)
    return float(np.degrees(np.arctan2(v[2], v[0])))


def head_pivot(points: np.ndarray, pivot_depth: float = 0.1) -> tuple[float, float, float]:
    """The vertical rotation axis of the head: ``(px, pz, face_width)``.

    ``px, pz``: mid-point of the two cheek-contour landmarks (234, 454, near the ears), moved
    ``pivot_depth * face_width`` farther from the camera; ``face_width``: their distance in the image
    plane (pixels).

    Raises:
        ValueError: bad points, or the two contour points coincide.
    """
    pts = _check_points(points)
    a, b = pts[RIGHT_CONTOUR], pts[LEFT_CONTOUR]
    width = float(np.hypot(*(b[:2] - a[:2])))
    if width < 1e-6:
        raise ValueError("degenerate landmarks: the cheek contour points coincide")
    return float((a[0] + b[0]) / 2), float((a[2] + b[2]) / 2 + pivot_depth * width), width


def rotate_yaw(points: np.ndarray, yaw: float, pivot: tuple[float, float]) -> np.ndarray:
    """Rotate ``(N, 3)`` points by ``yaw`` degrees about the vertical axis through ``(px, ., pz)``.

    Returns:
        float64 ``(N, 3)``; ``y`` unchanged. Positive ``yaw`` moves points in front of the axis
        (smaller ``z``) towards larger ``x``.
    """
    pts = np.asarray(points, np.float64)
    t = np.radians(float(yaw))
    c, s = np.cos(t), np.sin(t)
    px, pz = pivot
    dx, dz = pts[:, 0] - px, pts[:, 2] - pz
    out = pts.copy()
    out[:, 0] = px + dx * c - dz * s
    out[:, 2] = pz + dx * s + dz * c
    return out


def signed_areas(xy: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Signed areas (pixels^2, float64 ``(T,)``) of triangles ``(T, 3)`` over 2D points ``(N, 2)``;
    positive when the vertices turn from +x towards +y (clockwise on screen, y down)."""
    p = np.asarray(xy, np.float64)[np.asarray(triangles)]
    a, b, c = p[:, 0], p[:, 1], p[:, 2]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


@dataclass(frozen=True)
class Scene:
    """A triangulated face scene (see the module docstring).

    Attributes:
        points: float64 ``(P, 3)``: the 468 landmarks, then ``n_ring`` ring points, then the frame
            points (whose ``z`` is ``inf``).
        triangles: int64 ``(T, 3)`` Delaunay triangles over ``points[:, :2]``, all with positive
            signed area.
        kind: int8 ``(T,)``: 0 face (landmarks only), 1 head (touches the ring), 2 background
            (touches the frame).
        n_ring: number of ring points.
        pivot: ``(px, pz)`` of the rotation axis.
        face_width: cheek-to-cheek distance in pixels.
        size: ``(width, height)`` of the image the scene lives in.
    """

    points: np.ndarray
    triangles: np.ndarray
    kind: np.ndarray
    n_ring: int
    pivot: tuple[float, float]
    face_width: float
    size: tuple[int, int]

    @property
    def n_moving(self) -> int:
        """Landmarks + ring: the points that rotate."""
        return NUM_FACE_POINTS + self.n_ring


def _resample_closed(poly: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced by arc length along a closed polygon ``(k, 2)``."""
    closed = np.vstack([poly, poly[:1]])
    seg = np.hypot(*np.diff(closed, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    at = np.linspace(0.0, cum[-1], n, endpoint=False)
    return np.column_stack([np.interp(at, cum, closed[:, 0]), np.interp(at, cum, closed[:, 1])])


def build_scene(points: np.ndarray, size: tuple[int, int], margin: float = 0.25, n_ring: int = 32,
                frame_pad: float = 0.1, frame_per_side: int = 8, pivot_depth: float = 0.1) -> Scene:
    """Triangulate a face's landmarks with a head ring and a fixed image frame.

    Args:
        points: float ``(468, 3)`` Face Mesh ``(x, y, z)`` in pixels of the image (see the module
            docstring's conventions).
        size: ``(width, height)`` of the image.
        margin: how far the ring lies outside the landmarks' convex hull, as a fraction of the hull's
            distance from its centroid (0.25: 25 % farther out).
        n_ring: ring points (evenly spaced along the pushed-out hull).
        frame_pad: the frame lies ``frame_pad * max(width, height)`` outside the image; ring points
            are clipped to half that distance.
        frame_per_side: frame points per side (corners included).
        pivot_depth: see :func:`head_pivot`.

    Returns:
        The :class:`Scene`.

    Raises:
        ValueError: bad points, size or parameters.
    """
    pts = _check_points(points)[:NUM_FACE_POINTS]
    w, h = int(size[0]), int(size[1])
    if w < 2 or h < 2 or margin < 0 or n_ring < 3 or frame_pad <= 0 or frame_per_side < 2:
        raise ValueError("need size >= 2, margin >= 0, n_ring >= 3, frame_pad > 0, frame_per_side >= 2")
    from scipy.spatial import Delaunay  # local: scipy is a training/server dependency, not a core one

    px, pz, width = head_pivot(pts, pivot_depth)
    hull_idx = cv2.convexHull(pts[:, :2].astype(np.float32), returnPoints=False).reshape(-1)
    hull = pts[hull_idx]
    centre = hull[:, :2].mean(0)
    ring_xy = _resample_closed(centre + (1.0 + margin) * (hull[:, :2] - centre), n_ring)
    pad = frame_pad * max(w, h)
    ring_xy[:, 0] = np.clip(ring_xy[:, 0], -pad / 2, w + pad / 2)
    ring_xy[:, 1] = np.clip(ring_xy[:, 1], -pad / 2, h + pad / 2)
    # depth of each ring point: that of the nearest hull landmark, halfway towards the rotation axis
    nearest = np.argmin(((ring_xy[:, None] - hull[None, :, :2]) ** 2).sum(-1), axis=1)
    ring_z = 0.5 * (hull[nearest, 2] + pz)
    ring = np.column_stack([ring_xy, ring_z])

    t = np.linspace(0.0, 1.0, frame_per_side)
    x0, x1, y0, y1 = -pad, w + pad, -pad, h + pad
    edges = [np.column_stack([x0 + t * (x1 - x0), np.full_like(t, y0)]),
             np.column_stack([np.full_like(t, x1), y0 + t * (y1 - y0)]),
             np.column_stack([x1 - t * (x1 - x0), np.full_like(t, y1)]),
             np.column_stack([np.full_like(t, x0), y1 - t * (y1 - y0)])]
    frame_xy = np.unique(np.round(np.vstack(edges), 6), axis=0)
    frame = np.column_stack([frame_xy, np.full(len(frame_xy), np.inf)])

    allp = np.vstack([pts, ring, frame])
    tri = Delaunay(allp[:, :2]).simplices.astype(np.int64)
    area = signed_areas(allp[:, :2], tri)
    tri[area < 0] = tri[area < 0][:, [0, 2, 1]]  # make every triangle counter-clockwise
    tri = tri[np.abs(area) > _MIN_AREA]
    n_move = NUM_FACE_POINTS + n_ring
    kind = np.where((tri >= n_move).any(1), 2, np.where((tri >= NUM_FACE_POINTS).any(1), 1, 0)).astype(np.int8)
    return Scene(points=allp, triangles=tri, kind=kind, n_ring=n_ring, pivot=(px, pz), face_width=width,
                 size=(w, h))


def _affines(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Per-triangle affine maps ``(T, 3, 2)`` with ``[x, y, 1] @ M = [u, v]`` from dst to src triangles."""
    ones = np.ones(dst.shape[:2] + (1,))
    return np.linalg.inv(np.concatenate([dst, ones], axis=2)) @ src


def warp_triangles(src: np.ndarray, src_xy: np.ndarray, dst_xy: np.ndarray, triangles: np.ndarray,
                   order: np.ndarray, out_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-affine warp: draw triangles in ``order`` (later ones cover earlier ones).

    Each drawn triangle ``t`` fills the pixels whose centres fall inside ``dst_xy[triangles[t]]``; each
    such pixel samples ``src`` (bilinear, edges replicated) through the affine map that takes the
    triangle's ``dst_xy`` vertices to its ``src_xy`` vertices.

    Args:
        src: uint8 ``(H, W, C)`` or ``(H, W)`` image.
        src_xy: float ``(N, 2)`` vertex positions in ``src`` (continuous pixel coordinates).
        dst_xy: float ``(N, 2)`` vertex positions in the output.
        triangles: int ``(T, 3)`` vertex indices.
        order: int indices into ``triangles``: which to draw, back to front. Triangles with a
            degenerate (area < 1e-3 px^2) or non-finite destination are skipped.
        out_size: ``(width, height)`` of the output.

    Returns:
        ``(image, covered)``: the warped image (dtype and channels of ``src``) and a bool ``(h, w)``
        mask of the pixels some triangle covered (the others are 0).

    Raises:
        ValueError: bad shapes.
    """
    src_xy = np.asarray(src_xy, np.float64)
    dst_xy = np.asarray(dst_xy, np.float64)
    triangles = np.asarray(triangles, np.int64)
    if src_xy.shape != dst_xy.shape or src_xy.ndim != 2 or src_xy.shape[1] != 2:
        raise ValueError(f"src_xy and dst_xy must both be (N, 2), got {src_xy.shape} and {dst_xy.shape}")
    if triangles.ndim != 2 or triangles.shape[1] != 3:
        raise ValueError(f"triangles must be (T, 3), got {triangles.shape}")
    w, h = int(out_size[0]), int(out_size[1])
    order = np.asarray(order, np.int64)
    d = dst_xy[triangles[order]]
    ok = np.isfinite(d).all((1, 2)) & (np.abs(signed_areas(dst_xy, triangles[order])) > _MIN_AREA)
    order = order[ok]
    ids = np.full((h, w), -1, np.int32)
    shift = 4  # sub-pixel vertices (1/16 px); OpenCV pixel centres are integers, ours are at +0.5
    polys = np.round((dst_xy[triangles[order]] - 0.5) * (1 << shift)).astype(np.int32)
    lim = 1 << 28  # keep far-away frame vertices inside int32 arithmetic
    polys = np.clip(polys, -lim, lim)
    for t, poly in zip(order, polys):
        cv2.fillConvexPoly(ids, poly, int(t), lineType=cv2.LINE_8, shift=shift)
    covered = ids >= 0
    maps = np.full((h, w, 2), -1e4, np.float32)
    if covered.any():
        m = np.zeros((len(triangles), 3, 2))
        m[order] = _affines(dst_xy[triangles[order]], src_xy[triangles[order]])
        ys, xs = np.nonzero(covered)
        tid = ids[ys, xs]
        xy1 = np.column_stack([xs + 0.5, ys + 0.5, np.ones(len(xs))])
        uv = np.einsum("nk,nkj->nj", xy1, m[tid]) - 0.5
        maps[ys, xs] = uv.astype(np.float32)
    out = cv2.remap(np.ascontiguousarray(src), maps[..., 0], maps[..., 1], cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    out[~covered] = 0
    return out, covered


@dataclass
class Render:
    """A face re-rendered at another yaw.

    Attributes:
        image: uint8 ``(H, W, 3)``; holes (no triangle) inpainted.
        covered: bool ``(H, W)``: pixels drawn from a triangle (the rest were inpainted).
        xy: float64 ``(P, 2)`` where the scene's points landed.
        visible: bool ``(T,)``: triangles drawn (not back-facing).
        yaw: the rotation applied, degrees.
        shift: horizontal shift (pixels) applied after the rotation to re-centre the face.
    """

    image: np.ndarray
    covered: np.ndarray
    xy: np.ndarray
    visible: np.ndarray
    yaw: float
    shift: float = 0.0


def _fill_holes(image: np.ndarray, covered: np.ndarray) -> np.ndarray:
    if covered.all():
        return image
    return cv2.inpaint(image, (~covered).astype(np.uint8), 3, cv2.INPAINT_TELEA)


def render_yaw(image: np.ndarray, scene: Scene, yaw: float, recentre: bool = True) -> Render:
    """Render ``image`` with its face turned by ``yaw`` degrees (see the module docstring).

    Args:
        image: uint8 ``(H, W, 3)`` RGB in which ``scene`` was built (``scene.size == (W, H)``).
        scene: from :func:`build_scene`.
        yaw: degrees; 0 reproduces ``image`` exactly.
        recentre: shift the rotated head horizontally so that the bounding box of its 468 projected
            landmarks is centred where the original's was. The head turns about an axis behind the
            face, so without it the face slides sideways (by ~0.7 face widths at 60 degrees, out of a
            tight crop); with it the framing is that of a pose-tolerant aligner that centres the
            landmarks' box (yaw leaves the box's height, hence the scale, unchanged).

    Returns:
        :class:`Render` of the same size.

    Raises:
        ValueError: ``image`` is not uint8 ``(H, W, 3)`` of the scene's size.
    """
    if (not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3
            or (image.shape[1], image.shape[0]) != scene.size):
        raise ValueError(f"image must be uint8 (H, W, 3) with (W, H) = {scene.size}")
    pts = scene.points.copy()
    n = scene.n_moving
    pts[:n] = rotate_yaw(pts[:n], yaw, scene.pivot)
    shift = 0.0
    if recentre:
        def centre(x: np.ndarray) -> float:
            return float((x.min() + x.max()) / 2)
        shift = centre(scene.points[:NUM_FACE_POINTS, 0]) - centre(pts[:NUM_FACE_POINTS, 0])
        pts[:n, 0] += shift
    xy = pts[:, :2]
    area = signed_areas(xy, scene.triangles)
    background = scene.kind == 2
    visible = background | (area > _MIN_AREA)  # source areas are all positive: a flip = back-facing
    depth = np.where(background, np.inf, pts[scene.triangles, 2].mean(1))
    cand = np.nonzero(visible)[0]
    order = cand[np.argsort(-depth[cand], kind="stable")]  # farthest first, background before all
    out, covered = warp_triangles(image, scene.points[:, :2], xy, scene.triangles, order, scene.size)
    return Render(image=_fill_holes(out, covered), covered=covered, xy=xy, visible=visible, yaw=float(yaw),
                  shift=shift)


def rotate_and_render(image: np.ndarray, scene: Scene, yaw: float, recentre: bool = True) -> tuple[Render, Render]:
    """Rotate by ``yaw`` and render; then render that image back at the original pose.

    The way back (Rotate-and-Render, Zhou et al. 2020) samples the rotated image at every triangle's
    rotated position with no visibility test, drawing the triangles back to front by their original
    depth; triangles that were hidden or back-facing at ``yaw`` thus take the colours of what covered
    them. The background (frame) triangles come back too.

    Args:
        image: uint8 ``(H, W, 3)`` RGB in which ``scene`` was built.
        scene: from :func:`build_scene`.
        yaw: degrees.
        recentre: see :func:`render_yaw` (the way back undoes the shift).

    Returns:
        ``(rotated, back)``: :class:`Render` at ``yaw`` and at the original pose (``back.yaw = 0``;
        ``back.visible`` marks the triangles that were visible at ``yaw``).
    """
    rotated = render_yaw(image, scene, yaw, recentre)
    frontal_xy = scene.points[:, :2]
    depth = np.where(scene.kind == 2, np.inf, scene.points[scene.triangles, 2].mean(1))
    order = np.argsort(-depth, kind="stable")
    out, covered = warp_triangles(rotated.image, rotated.xy, frontal_xy, scene.triangles, order, scene.size)
    back = Render(image=_fill_holes(out, covered), covered=covered, xy=frontal_xy.copy(),
                  visible=rotated.visible.copy(), yaw=0.0)
    return rotated, back

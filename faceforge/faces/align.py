"""Face alignment: a least-squares similarity transform from detector keypoints to a template.

A :class:`FaceTemplate` says where chosen keypoints should land in a square crop, normalized to
[0, 1] of the crop side. :func:`align_face` fits the similarity transform (uniform scale, rotation,
translation; no shear, so the face is never distorted) that maps the face's keypoints onto the
template in the least-squares sense (:func:`umeyama`), warps the crop, and returns the inverse
transform so that :func:`paste_back` can put an edited crop back into the photo.

Keypoints used by the built-in templates: right eye, left eye, nose tip and mouth centre (BlazeFace
indices 0-3). The two ear tragions are left out: on a turned head the far ear is hidden and
BlazeFace extrapolates it (and the near one slides to the cheek's silhouette), so they would pull
the fit towards the profile's outline rather than the face's features. Four points over-determine
the four similarity parameters, so one noisy point (the nose tip moves most with head pose) is
averaged out rather than followed.

Templates (:data:`TEMPLATES`):

``fer2013``
    The framing of FER2013's 48x48 crops (Goodfellow et al. 2013), measured with faceforge's own
    detector by ``training/fer_template.py``: 2000 FER2013 train images (random, seed 0, all classes)
    upsampled to 96x96 (bicubic), edge-padded to 192x192, full-range BlazeFace, min score 0.5:
    1598 detected. Per-coordinate medians (normalized to the 48 px crop): right eye (0.3123, 0.3987),
    left eye (0.6749, 0.3936), nose tip (0.4957, 0.6153), mouth centre (0.4985, 0.7706);
    inter-quartile ranges 0.05-0.09. Symmetrized left/right (eyes mirrored about x = 0.5 and given
    a common y; nose and mouth on x = 0.5) to the constants below. The short-range model on the
    same images (upsampled to 128, 1878 detected) gives medians within 0.03.
``arcface_112``
    The 5-point template of ArcFace/InsightFace 112x112 face recognition crops (Deng et al.,
    "ArcFace", CVPR 2019; InsightFace ``face_align``): eyes (38.2946, 51.6963), (73.5318, 51.5014),
    nose (56.0252, 71.7366), mouth corners (41.5493, 92.3655), (70.7299, 92.2041) px; BlazeFace
    has a mouth centre, matched here to the mid-point of the two corners (56.1396, 92.2848).
    Divided by 112.
``utkface``
    The framing of UTKFace's 200x200 "aligned & cropped" chips (Zhang et al., CVPR 2017), used by the
    CycleGAN translators, measured by ``python -m training.unpaired template``: 2000 chips aged 18-29
    or 60+ (random, seed 0), short-range BlazeFace at the chip's own size, 1981 detected.
    Per-coordinate medians: right eye (0.2857, 0.2974), left eye (0.6926, 0.2849), nose tip
    (0.4864, 0.5182), mouth centre (0.4942, 0.7210); inter-quartile ranges 0.03-0.044. Symmetrized
    like ``fer2013``. Tighter than ``fer2013`` (eyes 0.41 of the side apart instead of 0.36, little
    forehead): a crop with more forehead would need pixels the chips do not have.
``ffhq``
    The framing of FFHQ (Karras et al., "A Style-Based Generator Architecture for GANs", CVPR 2019; NVlabs
    ``ffhq-dataset``: the crop square from eye and mouth landmarks, side ``2 max(2 |eye-to-eye|,
    1.8 |eye-to-mouth|)``, centred 0.1 eye-to-mouth below the eyes), which the published StyleGAN2 FFHQ
    generators were trained on. The 5-point template at 512 px that facexlib's ``FaceRestoreHelper``
    uses for FFHQ-framed models (GFPGAN, CodeFormer): eyes (192.98138, 239.94708), (318.90277, 240.19360),
    nose (256.63416, 314.01935), mouth corners (201.26117, 371.41043), (313.08905, 371.15118) px; mouth
    corners averaged to BlazeFace's mouth centre, symmetrized like ``fer2013``, divided by 512. The
    FFHQ recipe applied to these points gives a square of side 0.984 centred at (0.5, 0.494), within 2 %
    of the template's own crop (a test checks it). Looser than ``utkface`` (eyes 0.25 of the side apart,
    hair and background around the face).

To add a template: build a :class:`FaceTemplate` with normalized points and the matching
:data:`~faceforge.faces.detect.KEYPOINT_NAMES` indices, and add it to :data:`TEMPLATES` with its
source documented here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from faceforge.errors import UnknownModelError
from faceforge.faces.detect import KEYPOINT_NAMES
from faceforge.imaging import check_rgb

__all__ = ["FaceTemplate", "TEMPLATES", "AlignedFace", "umeyama", "to_opencv", "get_template", "align_face",
           "feather_mask", "paste_back", "paste_change", "alignment_scale", "template_keypoints"]


@dataclass(frozen=True)
class FaceTemplate:
    """Where keypoints land in an aligned square crop.

    Attributes:
        name: template name.
        keypoints: float64 ``(k, 2)`` ``(x, y)`` normalized to [0, 1] of the crop side; in a crop of
            side ``S`` the point is at ``x * S`` in continuous pixel coordinates (pixel ``i`` covers
            ``[i, i + 1)``, the convention of the detector's boxes and keypoints).
        indices: for each template point, the index into the detector's keypoints
            (:data:`~faceforge.faces.detect.KEYPOINT_NAMES`).
        source: where the numbers come from.
    """

    name: str
    keypoints: np.ndarray
    indices: tuple[int, ...]
    source: str

    def __post_init__(self) -> None:
        pts = np.asarray(self.keypoints, np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) != len(self.indices) or len(pts) < 2:
            raise ValueError("keypoints must be (k, 2) with k >= 2 and one index per point")
        object.__setattr__(self, "keypoints", pts)

    @property
    def keypoint_names(self) -> tuple[str, ...]:
        """Detector keypoint names the template points match."""
        return tuple(KEYPOINT_NAMES[i] for i in self.indices)

    def points(self, size: int) -> np.ndarray:
        """Template points in pixels of a ``size x size`` crop, float64 ``(k, 2)``."""
        return self.keypoints * float(size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (for the export manifest)."""
        return {"name": self.name, "keypoints": np.round(self.keypoints, 6).tolist(),
                "keypoint_names": list(self.keypoint_names), "units": "fraction of the crop side",
                "transform": "least-squares similarity (Umeyama 1991) from detector keypoints to "
                             "keypoints * crop_side, continuous pixel coordinates (pixel i covers "
                             "[i, i+1)); crop pixel centre (i + 0.5, j + 0.5) samples the image at "
                             "inverse @ (i + 0.5, j + 0.5, 1)",
                "source": self.source}


EYES_NOSE_MOUTH = (0, 1, 2, 3)

FER2013_KEYPOINTS = np.array([
    [0.3187, 0.3962],  # right eye (subject's right, viewer's left)
    [0.6813, 0.3962],  # left eye
    [0.5000, 0.6153],  # nose tip
    [0.5000, 0.7706],  # mouth centre
])
"""The "fer2013" template (see the module docstring for its derivation)."""

ARCFACE_112_KEYPOINTS = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [(41.5493 + 70.7299) / 2, (92.3655 + 92.2041) / 2],
]) / 112.0
"""The "arcface_112" template (mouth centre = mid-point of ArcFace's mouth corners)."""

UTKFACE_KEYPOINTS = np.array([
    [0.2965, 0.2911],
    [0.7035, 0.2911],
    [0.5000, 0.5182],
    [0.5000, 0.7210],
])
"""The "utkface" template (see the module docstring for its derivation)."""

FFHQ_KEYPOINTS = np.array([
    [0.5 - (318.90277 - 192.98138) / 2 / 512, (239.94708 + 240.19360) / 2 / 512],
    [0.5 + (318.90277 - 192.98138) / 2 / 512, (239.94708 + 240.19360) / 2 / 512],
    [0.5, 314.01935 / 512],
    [0.5, (371.41043 + 371.15118) / 2 / 512],
])
"""The "ffhq" template (see the module docstring for its source)."""

TEMPLATES: dict[str, FaceTemplate] = {
    "fer2013": FaceTemplate(
        "fer2013", FER2013_KEYPOINTS, EYES_NOSE_MOUTH,
        "median BlazeFace full-range keypoints of 1598 detected faces among 2000 FER2013 train "
        "images (training/fer_template.py), symmetrized"),
    "arcface_112": FaceTemplate(
        "arcface_112", ARCFACE_112_KEYPOINTS, EYES_NOSE_MOUTH,
        "ArcFace/InsightFace 112x112 5-point template (Deng et al., CVPR 2019), mouth corners averaged"),
    "utkface": FaceTemplate(
        "utkface", UTKFACE_KEYPOINTS, EYES_NOSE_MOUTH,
        "median short-range BlazeFace keypoints of 1981 detected faces among 2000 UTKFace chips aged "
        "18-29 or 60+ (python -m training.unpaired template), symmetrized"),
    "ffhq": FaceTemplate(
        "ffhq", FFHQ_KEYPOINTS, EYES_NOSE_MOUTH,
        "FFHQ framing (Karras et al., CVPR 2019) as facexlib's 512 px 5-point template, mouth corners "
        "averaged, symmetrized: for published StyleGAN2 FFHQ generators"),
}
"""Built-in templates by name."""


@dataclass
class AlignedFace:
    """An aligned face crop and the transforms between it and the source image.

    Attributes:
        image: uint8 ``(S, S, 3)`` RGB crop.
        matrix: float64 ``(2, 3)`` similarity transform image -> crop (``[x', y'] = matrix @ [x, y, 1]``),
            in continuous pixel coordinates (pixel ``i`` covers ``[i, i + 1)``, as the detector's
            keypoints): ``matrix`` maps the face's keypoints to the template's.
        inverse: float64 ``(2, 3)`` crop -> image, same convention. (For OpenCV, whose pixel centres
            are integers, use :func:`to_opencv`.)
        template: name of the template used.
        size: crop side ``S`` in pixels.
    """

    image: np.ndarray
    matrix: np.ndarray
    inverse: np.ndarray
    template: str
    size: int

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))


def umeyama(src: np.ndarray, dst: np.ndarray, allow_scale: bool = True) -> np.ndarray:
    """Least-squares similarity transform mapping ``src`` points onto ``dst`` points.

    Minimizes ``sum ||dst_i - (c R src_i + t)||^2`` over rotations ``R`` (no reflection), scale
    ``c > 0`` and translation ``t``, in closed form via the SVD of the cross-covariance.

    Reference: S. Umeyama, "Least-squares estimation of transformation parameters between two
    point patterns", IEEE TPAMI 13(4), 1991.

    Args:
        src: ``(n, 2)`` points, n >= 2, not all equal.
        dst: ``(n, 2)`` target points.
        allow_scale: if False, ``c = 1`` (rigid transform).

    Returns:
        float64 ``(2, 3)`` matrix ``[c R | t]``.

    Raises:
        ValueError: shapes differ, fewer than 2 points, non-finite values, or degenerate ``src``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"src and dst must both be (n >= 2, 2), got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("points must be finite")
    n = len(src)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c ** 2).sum() / n
    if var_s <= 1e-12:
        raise ValueError("source points are degenerate (all equal)")
    cov = d_c.T @ s_c / n
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    scale = float((d * sign).sum() / var_s) if allow_scale else 1.0
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def to_opencv(matrix: np.ndarray) -> np.ndarray:
    """Convert a ``(2, 3)`` affine map in continuous pixel coordinates (pixel ``i`` covers
    ``[i, i + 1)``) to OpenCV's convention (pixel ``i`` centred at ``i``), for ``cv2.warpAffine``.

    ``M_cv = T(-0.5) @ M @ T(+0.5)``: ``t' = t + A @ (0.5, 0.5) - (0.5, 0.5)``.
    """
    m = np.asarray(matrix, np.float64).copy()
    m[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return m


def get_template(template: str | FaceTemplate) -> FaceTemplate:
    """A template by name (or the template itself).

    Raises:
        UnknownModelError: unknown name (lists the valid ones).
    """
    if isinstance(template, FaceTemplate):
        return template
    if template not in TEMPLATES:
        raise UnknownModelError(f"unknown face template {template!r}; choose one of {', '.join(TEMPLATES)}",
                                template=template)
    return TEMPLATES[template]


def template_keypoints(template: str | FaceTemplate, size: int) -> np.ndarray:
    """Detector-style keypoints of a face that is already aligned on ``template`` in a ``size`` px crop.

    Lets a crop made on one template (e.g. a ``utkface`` training chip, or a generator's output on it) be
    re-aligned onto another (e.g. a judge's) without running the detector: ``align_face(crop,
    template_keypoints("utkface", side), ...)``.

    Returns:
        float64 ``(len(KEYPOINT_NAMES), 2)`` ``(x, y)`` pixels, in the detector's order; the points the
        template does not define (the ears for the built-in templates) are the mean of those it does, so no
        alignment uses them.

    Raises:
        ValueError: ``size`` < 2. UnknownModelError: unknown template name.
    """
    if int(size) != size or size < 2:
        raise ValueError(f"size must be an integer >= 2, got {size}")
    tpl = get_template(template)
    pts = tpl.points(int(size))
    kps = np.repeat(pts.mean(0, keepdims=True), len(KEYPOINT_NAMES), axis=0)
    kps[list(tpl.indices)] = pts
    return kps


def _face_keypoints(face: Any) -> np.ndarray:
    kps = np.asarray(face.keypoints if hasattr(face, "keypoints") else face, np.float64)
    if kps.ndim != 2 or kps.shape[1] != 2 or len(kps) < len(KEYPOINT_NAMES):
        raise ValueError(f"face keypoints must be ({len(KEYPOINT_NAMES)}, 2), got {kps.shape}")
    return kps


_BORDERS = {"replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT_101}


def alignment_scale(face: Any, size: int, template: str | FaceTemplate = "fer2013") -> float:
    """Crop pixels per image pixel of :func:`align_face` at ``size`` (the similarity's scale), without
    warping: < 1 when the face has more pixels in the image than in the crop.

    Raises:
        ValueError: bad keypoints. UnknownModelError: unknown template name.
    """
    tpl = get_template(template)
    matrix = umeyama(_face_keypoints(face)[list(tpl.indices)], tpl.points(int(size)))
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def align_face(rgb: np.ndarray, face: Any, size: int, template: str | FaceTemplate = "fer2013",
               border: str = "replicate") -> AlignedFace:
    """Crop a face so its keypoints land on a template (similarity warp).

    Pixel convention: continuous coordinates (pixel ``i`` covers ``[i, i + 1)``), as the
    detector's; template points are ``keypoints * size``. When the crop is more than 2x smaller than the face in
    the image, the face's neighbourhood is first shrunk with area averaging (``cv2.INTER_AREA``) so
    the bilinear warp does not alias; the returned matrices always refer to the original image.

    Args:
        rgb: uint8 ``(H, W, 3)`` RGB image.
        face: a :class:`~faceforge.faces.detect.Face` (or anything with ``keypoints`` ``(6, 2)``,
            or the ``(6, 2)`` keypoints array itself), in pixels of ``rgb``.
        size: crop side in pixels (>= 2), e.g. 48 for the emotion model.
        template: template name (see :data:`TEMPLATES`) or a :class:`FaceTemplate`.
        border: how pixels outside the image are filled: ``"replicate"`` (default: edge pixels,
            as FER2013-style models never see black borders), ``"constant"`` (black) or ``"reflect"``.

    Returns:
        :class:`AlignedFace` with the ``(size, size, 3)`` uint8 crop, ``matrix`` (image -> crop) and
        ``inverse`` (crop -> image).

    Raises:
        ValueError: bad image, keypoints, size or border.
        UnknownModelError: unknown template name.
    """
    check_rgb(rgb)
    if int(size) != size or size < 2:
        raise ValueError(f"size must be an integer >= 2, got {size}")
    if border not in _BORDERS:
        raise ValueError(f"border must be one of {sorted(_BORDERS)}, got {border!r}")
    size = int(size)
    tpl = get_template(template)
    kps = _face_keypoints(face)[list(tpl.indices)]
    matrix = umeyama(kps, tpl.points(size))
    inverse = cv2.invertAffineTransform(matrix)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))

    src, warp = rgb, matrix
    if scale < 0.5:
        # Shrink the face's neighbourhood with area averaging first, then warp with the remainder.
        h, w = rgb.shape[:2]
        corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) @ inverse.T
        pad = 2.0 / scale
        x0 = int(np.clip(np.floor(corners[:, 0].min() - pad), 0, w - 1))
        y0 = int(np.clip(np.floor(corners[:, 1].min() - pad), 0, h - 1))
        x1 = int(np.clip(np.ceil(corners[:, 0].max() + pad), x0 + 1, w))
        y1 = int(np.clip(np.ceil(corners[:, 1].max() + pad), y0 + 1, h))
        roi = rgb[y0:y1, x0:x1]
        factor = min(1.0, 2.0 * scale)  # leave a 2x margin for the bilinear warp
        new_w = max(1, int(round((x1 - x0) * factor)))
        new_h = max(1, int(round((y1 - y0) * factor)))
        src = cv2.resize(np.ascontiguousarray(roi), (new_w, new_h), interpolation=cv2.INTER_AREA)
        fx, fy = new_w / (x1 - x0), new_h / (y1 - y0)
        to_small = np.array([[fx, 0, -fx * x0], [0, fy, -fy * y0], [0, 0, 1]])  # continuous coords
        warp = matrix @ np.linalg.inv(to_small)
    crop = cv2.warpAffine(np.ascontiguousarray(src), to_opencv(warp), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=_BORDERS[border], borderValue=(0, 0, 0))
    return AlignedFace(image=crop, matrix=matrix, inverse=inverse, template=tpl.name, size=size)


def feather_mask(size: int, feather: float) -> np.ndarray:
    """Square blending mask: 1 inside, ramping linearly to 0 over ``feather * size`` px at the edges.

    Returns:
        float32 ``(size, size)`` in [0, 1].
    """
    if not 0.0 <= feather <= 0.5:
        raise ValueError(f"feather must be in [0, 0.5], got {feather}")
    idx = np.arange(size, dtype=np.float32) + 0.5
    edge = np.minimum(idx, size - idx)  # distance of a pixel centre to the nearest edge
    ramp = np.ones(size, np.float32) if feather == 0 else np.clip(edge / (feather * size), 0.0, 1.0)
    return np.minimum(ramp[:, None], ramp[None, :])


def warp_box(inverse: np.ndarray, side: int, shape: tuple[int, ...]) -> tuple[tuple[int, int, int, int],
                                                                               np.ndarray] | None:
    """Where a ``side`` x ``side`` crop warped by ``inverse`` lands in an image of ``shape``, for pasting
    it back with ``cv2.warpAffine`` into that part of the image only.

    Args:
        inverse: float ``(2, 3)`` crop -> image map in continuous pixel coordinates.
        side: the crop's side in pixels.
        shape: the image's shape, ``(H, W, ...)``.

    Returns:
        ``((x0, y0, x1, y1), matrix)``: the box around the warped crop's corners (1 px margin before, 2
        after, for the interpolation's support), clipped to the image, and the OpenCV matrix
        (:func:`to_opencv`) from crop pixels to box pixels; ``None`` when the crop misses the image.
    """
    h, w = shape[:2]
    corners = np.array([[0, 0, 1], [side, 0, 1], [0, side, 1], [side, side, 1]], np.float64) @ inverse.T
    x0 = int(np.clip(np.floor(corners[:, 0].min()) - 1, 0, w))
    y0 = int(np.clip(np.floor(corners[:, 1].min()) - 1, 0, h))
    x1 = int(np.clip(np.ceil(corners[:, 0].max()) + 2, 0, w))
    y1 = int(np.clip(np.ceil(corners[:, 1].max()) + 2, 0, h))
    if x1 <= x0 or y1 <= y0:
        return None
    shift = inverse.copy()
    shift[:, 2] -= (x0, y0)
    return (x0, y0, x1, y1), to_opencv(shift)


def _paste_region(rgb: np.ndarray, side: int, aligned: AlignedFace) -> tuple[tuple[slice, slice], np.ndarray,
                                                                              tuple[int, int]] | None:
    """Where a warped ``side`` x ``side`` crop lands in ``rgb``: the region's ``(rows, cols)`` slices, the
    OpenCV matrix crop -> region and the region's ``(width, height)``; ``None`` when it misses the image."""
    k = aligned.size / side  # continuous coordinates scale by k between the two crop sizes
    inverse = aligned.inverse @ np.array([[k, 0, 0], [0, k, 0], [0, 0, 1.0]])  # crop' pixels -> image pixels
    placed = warp_box(inverse, side, rgb.shape)
    if placed is None:
        return None
    (x0, y0, x1, y1), matrix = placed
    return (slice(y0, y1), slice(x0, x1)), matrix, (x1 - x0, y1 - y0)


def paste_change(rgb: np.ndarray, change: np.ndarray, aligned: AlignedFace, feather: float = 0.1) -> np.ndarray:
    """Add a (smooth) change computed on an aligned crop to the photo, without resampling the photo.

    ``out = rgb + alpha * warp(change)``: the change is warped with ``aligned.inverse`` (bilinear) and
    weighted by the feathered mask of :func:`paste_back`; the photo's own pixels are never warped, so
    its detail survives exactly where the change is zero and is not blurred where it is not (contrast:
    :func:`paste_back` resamples the crop twice, align then paste, which halves the variance of the
    Laplacian of a sharp face).

    Args:
        rgb: uint8 ``(H, W, 3)`` image the face was aligned from (not modified).
        change: float32 ``(S', S', 3)`` change in uint8 levels (e.g. ``edited - crop``), any ``S'``.
        aligned: the :class:`AlignedFace` returned by :func:`align_face`.
        feather: width of the blending ramp as a fraction of the crop side, in [0, 0.5].

    Returns:
        A new uint8 ``(H, W, 3)`` image; pixels outside the warped crop are unchanged.

    Raises:
        ValueError: bad shapes/dtypes or ``feather`` outside [0, 0.5].
    """
    check_rgb(rgb)
    if (not isinstance(change, np.ndarray) or change.ndim != 3 or change.shape[2] != 3
            or change.shape[0] != change.shape[1]):
        raise ValueError("change must be a square (S, S, 3) array")
    mask = feather_mask(change.shape[0], feather)
    out = rgb.copy()
    placed = _paste_region(rgb, change.shape[0], aligned)
    if placed is None:
        return out
    region, shift, roi = placed
    weighted = np.ascontiguousarray(change.astype(np.float32) * mask[..., None])
    warped = cv2.warpAffine(weighted, shift, roi, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=(0, 0, 0))
    out[region] = np.clip(np.rint(out[region].astype(np.float32) + warped), 0, 255).astype(np.uint8)
    return out


def paste_back(rgb: np.ndarray, crop: np.ndarray, aligned: AlignedFace, feather: float = 0.1) -> np.ndarray:
    """Paste an (edited) crop back into the image it was aligned from, with a feathered edge.

    The crop is warped with ``aligned.inverse`` (``cv2.warpAffine``) and blended with a mask that is
    1 in the crop's interior and falls linearly to 0 over ``feather * side`` at its edges, warped the
    same way. Only the pixels under the warped crop can change; all others are returned unchanged.

    Args:
        rgb: uint8 ``(H, W, 3)`` image the face was aligned from (not modified).
        crop: uint8 ``(S', S', 3)`` crop; ``S'`` may differ from ``aligned.size`` (e.g. a model
            that upsamples), the transform is scaled accordingly.
        aligned: the :class:`AlignedFace` returned by :func:`align_face`.
        feather: width of the blending ramp as a fraction of the crop side, in [0, 0.5].

    Returns:
        A new uint8 ``(H, W, 3)`` image.

    Raises:
        ValueError: bad shapes/dtypes or ``feather`` outside [0, 0.5].
    """
    check_rgb(rgb)
    if (not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3
            or crop.shape[0] != crop.shape[1]):
        raise ValueError("crop must be a square uint8 (S, S, 3) array")
    mask = feather_mask(crop.shape[0], feather)
    out = rgb.copy()
    placed = _paste_region(rgb, crop.shape[0], aligned)
    if placed is None:
        return out
    region, shift, roi = placed
    warped = cv2.warpAffine(np.ascontiguousarray(crop), shift, roi, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask, shift, roi, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0)[..., None]
    under = out[region].astype(np.float32)
    out[region] = np.clip(np.rint(under + alpha * (warped.astype(np.float32) - under)), 0, 255).astype(np.uint8)
    return out

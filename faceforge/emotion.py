"""The emotion feature end to end: photo -> faces -> aligned 48x48 crops -> 7 FER2013 probabilities.

Pipeline (one call of :meth:`EmotionRecognizer.predict`)::

    RGB uint8 (H, W, 3)
      --detect (BlazeFace, :class:`faceforge.faces.detect.FaceDetector`)-->  faces, sorted by score
      --align  (similarity transform to the "fer2013" template, 48x48)-->   RGB crops (N, 48, 48, 3)
      --preprocess_faces (ITU-R BT.601 luma, p / 127.5 - 1)-->              float32 (N, 1, 48, 48)
      --mini_xception (one batch) + softmax-->                              probabilities (N, 7)

:func:`preprocess_faces` is the single definition of the model's input numbers; the server, the
benchmarks and the exporter (calibration data, parity inputs) all call it, so the phone, the server
and the tests feed the network identical tensors.

Model: mini-Xception (Arriaga, Ploeger, Valdenegro 2017, arXiv:1710.07557), see
:mod:`faceforge.models.mini_xception`. Labels in FER2013 id order: angry, disgust, fear, happy, sad,
surprise, neutral.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import cv2
import numpy as np
import torch

from faceforge.checkpoints import weights_version
from faceforge.errors import WeightsNotFoundError
from faceforge.models import create_model, get_spec
from faceforge.models.registry import InputSpec, ModelSpec
from faceforge.pipelines.base import FacePipeline, face_fields

if TYPE_CHECKING:  # imported lazily at run time: the detector loads LiteRT
    from faceforge.faces.detect import Face, FaceDetector

MODEL_NAME = "mini_xception"
"""Registry name of the emotion classifier."""


def _emotion_input() -> InputSpec:
    return get_spec(MODEL_NAME).input


def preprocess_faces(crops: np.ndarray | Sequence[np.ndarray], input_spec: InputSpec | None = None) -> np.ndarray:
    """Turn aligned face crops into the emotion model's input batch.

    Steps: RGB -> gray with ITU-R BT.601 luma (``0.299 R + 0.587 G + 0.114 B``, OpenCV
    ``COLOR_RGB2GRAY``, the same conversion FER2013's gray faces are compared with), then
    ``p * scale + offset`` from the model's :class:`~faceforge.models.registry.InputSpec`
    (for mini_xception ``p / 127.5 - 1``, mapping [0, 255] to [-1, 1]).

    Args:
        crops: uint8 faces already aligned at the model's size (48x48 for mini_xception), either
            RGB ``(N, S, S, 3)`` / gray ``(N, S, S)`` arrays, or a sequence of ``(S, S, 3)`` /
            ``(S, S)`` arrays. ``N`` may be 0.
        input_spec: the model's input spec; default: the registered mini_xception spec.

    Returns:
        float32 ``(N, 1, S, S)`` (NCHW) in ``input_spec.value_range`` (``[-1, 1]``).

    Raises:
        ValueError: wrong dtype (not uint8), wrong number of dimensions or channels, or a side other
            than the model's (crops are never resized silently: align to the right size instead).
    """
    spec = input_spec or _emotion_input()
    channels, height, width = spec.shape
    if channels != 1 or spec.colour != "gray":
        raise ValueError(f"preprocess_faces builds gray inputs; the spec asks for {spec.colour} x{channels}")
    if isinstance(crops, np.ndarray):
        batch = crops
    else:
        items = list(crops)
        if not items:
            return np.zeros((0, 1, height, width), np.float32)
        if len({np.asarray(c).shape for c in items}) != 1:
            raise ValueError("all crops must have the same shape")
        batch = np.stack([np.asarray(c) for c in items])
    if batch.dtype != np.uint8:
        raise ValueError(f"crops must be uint8 in [0, 255], got {batch.dtype}")
    if batch.ndim == 4 and batch.shape[-1] == 3:
        if batch.shape[0] == 0:
            gray = np.zeros(batch.shape[:3], np.uint8)
        else:
            flat = np.ascontiguousarray(batch.reshape(-1, batch.shape[2], 3))
            gray = cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY).reshape(batch.shape[:3])
    elif batch.ndim == 3:
        gray = batch
    else:
        raise ValueError(f"crops must be (N, S, S, 3) RGB or (N, S, S) gray, got shape {batch.shape}")
    if gray.shape[1:] != (height, width):
        raise ValueError(f"crops must be {height}x{width} (align them at that size), got "
                         f"{gray.shape[1]}x{gray.shape[2]}")
    out = gray.astype(np.float32) * np.float32(spec.scale) + np.float32(spec.offset)
    return out[:, None, :, :]


def class_probabilities(logits_of: Callable[[np.ndarray], torch.Tensor | np.ndarray], faces: np.ndarray,
                        flip_tta: bool = False) -> torch.Tensor:
    """Softmax class probabilities of a batch of faces, optionally with test-time horizontal flip.

    The one definition of faceforge's flip test-time augmentation for the emotion classifier (used by
    :meth:`EmotionRecognizer.classify_batch` and ``faceforge bench emotion-accuracy``): the
    probabilities of each face and of its mirror image are averaged,
    ``0.5 * (softmax(logits_of(faces)) + softmax(logits_of(faces[..., ::-1])))`` (probabilities, not
    logits, are averaged). Horizontal-flip TTA as in Krizhevsky et al. 2012 (section 4.1, averaging
    the predictions of a patch and its reflection).

    Args:
        logits_of: the classifier: faces -> ``(N, C)`` logits (a torch tensor on any device, or a
            NumPy array), e.g. ``lambda b: model(torch.from_numpy(b))``.
        faces: a batch whose last axis is the image width: the model's float32 ``(N, 1, H, W)`` input
            (:func:`preprocess_faces`) or uint8 ``(N, H, W)`` faces, whatever ``logits_of`` takes.
        flip_tta: also run the mirror image (two passes) and average.

    Returns:
        float32 ``(N, C)`` probabilities, rows summing to 1, on the device of ``logits_of``'s output.

    Raises:
        ValueError: ``faces`` has fewer than 3 axes, or ``logits_of`` does not return ``(N, C)``.
    """
    if np.ndim(faces) < 3:
        raise ValueError(f"faces must be a batch (N, ..., H, W), got shape {np.shape(faces)}")

    def probabilities(batch: np.ndarray) -> torch.Tensor:
        logits = torch.as_tensor(logits_of(batch)).float()
        if logits.ndim != 2 or logits.shape[0] != len(batch):
            raise ValueError(f"logits_of must return (N={len(batch)}, C) logits, got {tuple(logits.shape)}")
        return torch.softmax(logits, dim=1)

    probs = probabilities(faces)
    if flip_tta:
        probs = 0.5 * (probs + probabilities(np.ascontiguousarray(faces[..., ::-1])))
    return probs


@dataclass
class FaceEmotion:
    """One detected face and its emotion.

    Attributes:
        box: float32 ``(4,)`` ``xmin, ymin, xmax, ymax`` in pixels of the input image.
        keypoints: float32 ``(6, 2)`` ``(x, y)`` pixels, order of
            :data:`faceforge.faces.detect.KEYPOINT_NAMES` (right_eye, left_eye, nose_tip,
            mouth_center, right_ear_tragion, left_ear_tragion; subject's right/left).
        score: detector confidence in [0, 1].
        probabilities: label -> probability in [0, 1], FER2013 order, summing to 1.
        label: the most probable label.
    """

    box: np.ndarray
    keypoints: np.ndarray
    score: float
    probabilities: dict[str, float]
    label: str

    def to_dict(self, keypoint_names: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-ready dict: box list, keypoints ``{name: [x, y]}`` (or a list of pairs), floats."""
        return {
            **face_fields(self.box, self.keypoints, self.score, keypoint_names),
            "probabilities": {k: float(v) for k, v in self.probabilities.items()},
            "label": self.label,
        }


@dataclass
class EmotionResult:
    """Result of :meth:`EmotionRecognizer.predict`.

    Attributes:
        faces: one entry per face, highest detector score first.
        image_size: ``(width, height)`` of the input image in pixels.
        timings_ms: wall-clock milliseconds per step: ``detect``, ``align``, ``classify``
            (classify = preprocessing + batched forward pass + softmax). Decoding is timed by the
            caller.
    """

    faces: list[FaceEmotion]
    image_size: tuple[int, int]
    timings_ms: dict[str, float] = field(default_factory=dict)


class EmotionRecognizer(FacePipeline):
    """Facial-emotion recognition over whole photos: detect, align, classify (7 FER2013 classes).

    A :class:`~faceforge.pipelines.FacePipeline`: template alignment on ``fer2013`` at 48 px, model
    step ``classify``, no paste back.

    Loads the classifier (and, unless given, a :class:`~faceforge.faces.detect.FaceDetector`) once
    at construction; :meth:`predict` and :meth:`classify_crops` may then be called from several
    threads (the detector serializes its own calls with a lock; the PyTorch forward pass is
    thread-safe in inference mode).

    Args:
        weights: ``"default"`` for faceforge's trained weights
            (``faceforge/weights/mini_xception_fer2013.pt``), a path to a faceforge checkpoint,
            or ``None`` for random initialisation (tests and benchmarks only: outputs are meaningless).
        detector: a face detector to reuse; default: ``FaceDetector()`` built here.
        device: torch device of the classifier, e.g. ``"cpu"``.
        flip_tta: test-time flip: average the probabilities of each face and its mirror image (two
            forward passes). On FER2013 test with the shipped weights: 67.04 % instead of 65.37 %
            single-pass (``faceforge bench emotion-accuracy``); off by default so the server answers
            what the phone files answer.

    Raises:
        WeightsNotFoundError: (a :class:`~faceforge.errors.CheckpointError`) the weights file is
            absent, e.g. the default weights have not been trained/installed yet.
        CheckpointError: the file is not a mini_xception faceforge checkpoint.
        MissingDependencyError: the detector's model files or runtime are not installed.

    Example:
        >>> from faceforge.imaging import load_image
        >>> rec = EmotionRecognizer()                                    # doctest: +SKIP
        >>> result = rec.predict(load_image("photo.jpg"))                # doctest: +SKIP
        >>> result.faces[0].label, result.faces[0].probabilities["happy"]  # doctest: +SKIP
    """

    def __init__(self, weights: str | Path | None = "default", detector: FaceDetector | None = None,
                 device: str | torch.device = "cpu", flip_tta: bool = False) -> None:
        self.flip_tta = bool(flip_tta)
        self.spec: ModelSpec = get_spec(MODEL_NAME)
        self.labels: tuple[str, ...] = tuple(self.spec.labels or ())
        self.device = torch.device(device)
        self.weights_path: Path | None = self._resolve_weights(weights)
        self.model = create_model(MODEL_NAME, weights=self.weights_path).to(self.device)
        self.meta: dict[str, Any] = dict(getattr(self.model, "faceforge_meta", {}))
        self.version: str = self._version()
        if detector is None:
            from faceforge.faces.detect import FaceDetector
            detector = FaceDetector()
        self._detector = detector

    model_step = "classify"

    def run_model(self, inputs: list[np.ndarray], **_: Any) -> np.ndarray:
        """The model step of :meth:`run`: :meth:`classify_crops`, float32 ``(N, 7)`` probabilities."""
        return self.classify_crops(inputs)

    # ------------------------------------------------------------------ loading
    def _resolve_weights(self, weights: str | Path | None) -> Path | None:
        if weights is None:
            return None
        if isinstance(weights, str) and weights == "default":
            path = self.spec.default_weights_path
            if path is None or not path.is_file():
                raise WeightsNotFoundError(
                    f"default weights of {MODEL_NAME!r} not found at {path}; train them with "
                    f"`faceforge train emotion` (or install a release that ships them), or pass a "
                    f"checkpoint path", path=str(path))
            return path
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"weights file for {MODEL_NAME!r} not found: {path}", path=str(path))
        return path

    def _version(self) -> str:
        """``meta["version"]`` if the checkpoint states one, else ``sha256:<12 hex>`` of the file."""
        if self.weights_path is None:
            return "random-init"
        return weights_version(self.meta, self.weights_path)

    @property
    def weights_source(self) -> str:
        """``"default"``, ``"random-init"`` or the checkpoint path."""
        if self.weights_path is None:
            return "random-init"
        if self.weights_path == self.spec.default_weights_path:
            return "default"
        return str(self.weights_path)

    @property
    def crop_size(self) -> int:
        """Side in pixels of the aligned crop the model takes (48)."""
        return int(self.spec.input.shape[1])

    @property
    def face_template(self) -> str:
        """Name of the alignment template (``"fer2013"``)."""
        return self.spec.input.face_template or "fer2013"

    # ------------------------------------------------------------------ inference
    @torch.inference_mode()
    def classify_batch(self, batch: np.ndarray) -> np.ndarray:
        """Run the network on a preprocessed batch.

        Args:
            batch: float32 ``(N, 1, 48, 48)`` from :func:`preprocess_faces`.

        Returns:
            float32 ``(N, 7)`` softmax probabilities, rows summing to 1, FER2013 label order (with
            ``flip_tta``: the mean of the face's and its mirror image's).
        """
        if len(batch) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        batch = np.ascontiguousarray(batch, np.float32)
        probs = class_probabilities(lambda b: self.model(torch.from_numpy(b).to(self.device)), batch,
                                    flip_tta=self.flip_tta)
        return probs.cpu().numpy()

    def classify_crops(self, crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Classify already aligned faces (no detection).

        Args:
            crops: uint8 gray ``(N, 48, 48)`` or RGB ``(N, 48, 48, 3)`` (see :func:`preprocess_faces`).

        Returns:
            float32 ``(N, 7)`` probabilities in FER2013 label order.

        Raises:
            ValueError: wrong dtype or shape.
        """
        return self.classify_batch(preprocess_faces(crops, self.spec.input))

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Faces in ``rgb`` found by the shared detector, highest score first."""
        return list(self.detector.detect(rgb))

    def predict(self, rgb: np.ndarray, max_faces: int | None = None) -> EmotionResult:
        """Detect every face in a photo and classify its emotion.

        Args:
            rgb: uint8 ``(H, W, 3)`` RGB image (e.g. from :func:`faceforge.imaging.decode_image`).
            max_faces: keep only the ``max_faces`` highest-scoring faces (``None``: all).

        Returns:
            :class:`EmotionResult` with faces highest score first and per-step timings (ms).

        Raises:
            ValueError: ``rgb`` is not a uint8 ``(H, W, 3)`` array, or ``max_faces < 1``.
            NoFaceError: the detector found no face.
        """
        if max_faces is not None and max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        run = self.run(rgb, "all", max_faces=max_faces)  # the detector's order: highest score first
        results = [
            FaceEmotion(box=np.asarray(j.face.box, np.float32), keypoints=np.asarray(j.face.keypoints, np.float32),
                        score=float(j.face.score), probabilities=dict(zip(self.labels, map(float, j.output))),
                        label=self.labels[int(np.argmax(j.output))])
            for j in run.jobs
        ]
        return EmotionResult(faces=results, image_size=(int(rgb.shape[1]), int(rgb.shape[0])),
                             timings_ms=run.timings_ms)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description of the loaded model: name, version, weights, labels, input spec."""
        provenance = {k: self.meta[k] for k in ("data", "epochs", "metrics", "git_commit", "command", "seed")
                      if k in self.meta}
        return {"name": MODEL_NAME, "task": self.spec.task, "version": self.version,
                "weights": self.weights_source, "labels": list(self.labels),
                "input": self.spec.input.to_dict(), "provenance": provenance}

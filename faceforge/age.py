"""Age estimation for faces: aligned crops (or whole photos) -> expected age in years.

Model: ``age_resnet`` (:mod:`faceforge.models.agenet`): a small ResNet with a DEX head over 101 one-year
bins (Rothe, Timofte, Van Gool, ICCVW 2015), trained on UTKFace by ``faceforge train age``
(:mod:`training.age`). The shipped weights (card ``age_resnet.utkface``) are a half-width AgeNet (0.32 M
parameters, 16 M MACs at 64 px, float16 file of 0.67 MB) trained 8 epochs on 2 CPU cores (19 min);
held-out test MAE 5.85 years (per age group in the provenance JSON; it reads the old young: 60+ faces
are predicted 7.3 years too young on average), with the aging benchmark's faces held out of training. Its main use is measuring the CycleGAN aging translator
(``benchmarks/translate_quality.py``): the mean predicted age of faces before and after translation.

Input numbers (one definition, :func:`preprocess_crops`): a face aligned on the ``utkface`` template
(the framing of the translator's crops) at any side, resized to the model's side (64 by default, or the
``input_size`` the checkpoint was trained at) with area averaging when shrinking and bilinear
interpolation when enlarging, RGB, ``p / 127.5 - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import cv2
import numpy as np
import torch

from faceforge.checkpoints import weights_version
from faceforge.errors import WeightsNotFoundError
from faceforge.models import create_model, get_spec
from faceforge.models.agenet import expected_age
from faceforge.pipelines.base import FacePipeline

if TYPE_CHECKING:
    from faceforge.faces.detect import FaceDetector

MODEL_NAME = "age_resnet"
FACE_TEMPLATE = "utkface"


def preprocess_crops(crops: np.ndarray | Sequence[np.ndarray], size: int) -> np.ndarray:
    """Aligned uint8 RGB crops -> the age model's float32 ``(N, 3, size, size)`` batch in [-1, 1].

    Args:
        crops: uint8 ``(N, S, S, 3)`` or a sequence of ``(S, S, 3)`` (sides may differ between items of
            a sequence), aligned on the ``utkface`` template.
        size: model side.

    Returns:
        float32 ``(N, 3, size, size)``.

    Raises:
        ValueError: wrong dtype or shape.
    """
    items = list(crops) if not isinstance(crops, np.ndarray) else list(crops)
    out = np.empty((len(items), 3, size, size), np.float32)
    for i, crop in enumerate(items):
        crop = np.asarray(crop)
        if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] != crop.shape[1]:
            raise ValueError(f"crops must be square uint8 (S, S, 3) RGB, got {crop.dtype} {crop.shape}")
        if crop.shape[0] != size:
            interp = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
            crop = cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=interp)
        out[i] = crop.transpose(2, 0, 1).astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    return out


@dataclass
class FaceAge:
    """One detected face and its estimated age.

    Attributes:
        box: float32 ``(4,)`` ``xmin, ymin, xmax, ymax`` pixels.
        score: detector confidence.
        age: expected age in years, in [0, 100].
    """

    box: np.ndarray
    score: float
    age: float


class AgeEstimator(FacePipeline):
    """Estimate ages of aligned faces (:meth:`predict_crops`) or of every face in a photo (:meth:`predict`).

    A :class:`~faceforge.pipelines.FacePipeline`: template alignment on ``utkface``, model step
    ``estimate``, no paste back.

    Args:
        weights: ``"default"`` (card ``age_resnet.utkface``: a copy installed by ``faceforge train age
            --install``, else the shipped ``faceforge/weights/age_resnet_utkface.pt``, a 0.32 M-parameter
            AgeNet at 64 px, test MAE 5.85 years, provenance in the ``.json`` beside it), a checkpoint
            path, or ``None`` (random weights: tests only).
        detector: face detector for :meth:`predict`; default ``FaceDetector()`` built on first use.
        device: torch device.

    Raises:
        WeightsNotFoundError: the weights file is absent (no default is installed yet).
        CheckpointError: not an ``age_resnet`` checkpoint.

    Example:
        >>> est = AgeEstimator("runs/age/000/best.pt")                     # doctest: +SKIP
        >>> est.predict_crops(aligned_crops)                               # doctest: +SKIP
        array([24.3, 67.9], dtype=float32)
    """

    def __init__(self, weights: str | Path | None = "default", detector: FaceDetector | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.spec = get_spec(MODEL_NAME)
        self.device = torch.device(device)
        self.weights_path = self._resolve(weights)
        self.model = create_model(MODEL_NAME, weights=self.weights_path).to(self.device).eval()
        self.meta: dict[str, Any] = dict(getattr(self.model, "faceforge_meta", {}))
        self.size = int(self.meta.get("input_size") or self.spec.input.shape[1])
        self.crop_size = self.size
        self._detector = detector

    face_template = FACE_TEMPLATE
    model_step = "estimate"

    def run_model(self, inputs: list[np.ndarray], **_: Any) -> np.ndarray:
        """The model step of :meth:`run`: :meth:`predict_crops`, float32 ``(N,)`` ages in years."""
        return self.predict_crops(inputs)

    def _resolve(self, weights: str | Path | None) -> Path | None:
        if weights is None:
            return None
        if str(weights) == "default":
            path = self.spec.default_weights_path
            if path is None or not path.is_file():
                raise WeightsNotFoundError(f"default weights of {MODEL_NAME!r} not found at {path}; train them with "
                                           "`faceforge train age --install` or pass a checkpoint path", path=str(path))
            return path
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"weights file for {MODEL_NAME!r} not found: {path}", path=str(path))
        return path

    @property
    def version(self) -> str:
        """``meta["version"]``, else ``sha256:<12 hex>`` of the file, else ``"random-init"``."""
        if self.weights_path is None:
            return "random-init"
        return weights_version(self.meta, self.weights_path)

    @torch.inference_mode()
    def predict_distribution(self, crops: np.ndarray | Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """Softmax over the age bins, float32 ``(N, 101)`` (bin ``k`` = ``k`` years)."""
        batch = preprocess_crops(crops, self.size)
        outs = [torch.softmax(self.model(torch.from_numpy(batch[i:i + batch_size]).to(self.device)).float(), 1).cpu()
                for i in range(0, len(batch), batch_size)]
        return torch.cat(outs).numpy() if outs else np.zeros((0, self.model.num_bins), np.float32)

    @torch.inference_mode()
    def predict_crops(self, crops: np.ndarray | Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """Expected ages of aligned faces.

        Args:
            crops: uint8 RGB ``(N, S, S, 3)`` (any ``S``) aligned on the ``utkface`` template, e.g. the
                translator's input and output crops or UTKFace chips.
            batch_size: faces per forward pass.

        Returns:
            float32 ``(N,)`` ages in years, in [0, 100].

        Raises:
            ValueError: wrong dtype or shape.
        """
        batch = preprocess_crops(crops, self.size)
        outs = [expected_age(self.model(torch.from_numpy(batch[i:i + batch_size]).to(self.device))).cpu()
                for i in range(0, len(batch), batch_size)]
        return torch.cat(outs).numpy() if outs else np.zeros(0, np.float32)

    def predict(self, rgb: np.ndarray, max_faces: int | None = None) -> list[FaceAge]:
        """Detect the faces of a photo, align them on the ``utkface`` template, estimate their ages.

        Args:
            rgb: uint8 ``(H, W, 3)`` RGB photo.
            max_faces: keep only this many faces, highest detector score first.

        Returns:
            One :class:`FaceAge` per face, highest detector score first.

        Raises:
            ValueError: bad image.
            NoFaceError: no face found.
        """
        run = self.run(rgb, "all", max_faces=max_faces)
        return [FaceAge(box=np.asarray(j.face.box, np.float32), score=float(j.face.score), age=float(j.output))
                for j in run.jobs]

    def describe(self) -> dict[str, Any]:
        """Name, version, input size, template and the checkpoint's metrics."""
        return {"name": MODEL_NAME, "version": self.version, "input_size": self.size, "face_template": FACE_TEMPLATE,
                "weights": str(self.weights_path) if self.weights_path else "random-init",
                "metrics": self.meta.get("metrics")}

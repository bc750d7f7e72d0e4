"""Exported classifiers run the way a phone app runs them: driven by ``mobile_assets/manifest.json``.

The app looks up ``(model, format)`` in the manifest and takes everything from that entry: the file,
the input layout, dtype and quantization, the labels, the alignment template. So does
:class:`OnDeviceClassifier`, which the demo and the benchmarks use for their on-device path; the
runners underneath (:mod:`faceforge.ondevice.runners`) check that the file's own tensors agree with the manifest,
so a manifest that lies fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from faceforge.errors import ManifestError


def load_manifest(assets: str | Path) -> dict[str, Any]:
    """Read ``<assets>/manifest.json``.

    Raises:
        ManifestError: the file is missing or not JSON; the message says how to generate it.
    """
    path = Path(assets) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{path} not found: generate it with `faceforge export`") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path} is not valid JSON: {exc}") from None


def find_entry(manifest: dict[str, Any], model: str, fmt: str) -> dict[str, Any]:
    """The manifest entry of ``model`` in format ``fmt``.

    Raises:
        ManifestError: no such entry; the message lists what the manifest has.
    """
    for entry in manifest.get("models", []):
        if entry.get("name") == model and entry.get("format") == fmt:
            return entry
    have = sorted(f"{e.get('name')}:{e.get('format')}" for e in manifest.get("models", []))
    raise ManifestError(f"manifest has no {model}:{fmt} file; it has: {', '.join(have) or 'none'}")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class OnDeviceClassifier:
    """A classifier file from ``mobile_assets`` (``.tflite`` on LiteRT or ``.onnx`` on ONNX Runtime).

    Args:
        assets: the ``mobile_assets`` folder.
        entry: its manifest entry (see :func:`find_entry`).
        num_threads: interpreter threads.

    Raises:
        ManifestError: the entry's format cannot run on this machine (Core ML).
        FileNotFoundError: the file is missing.
        ExportError: the file's tensors disagree with the manifest.
    """

    def __init__(self, assets: str | Path, entry: dict[str, Any], num_threads: int = 1) -> None:
        from faceforge.ondevice.runners import onnx_runner, tflite_runner
        from faceforge.ondevice.specs import TensorInfo

        self.entry = entry
        self.path = Path(assets) / entry["file"]
        fields = ("name", "shape", "layout", "dtype", "quantization")

        def info(record: dict) -> TensorInfo:
            q = record.get("quantization")
            return TensorInfo(**{k: record.get(k) for k in fields[:4]},
                              quantization={"scale": q["scale"], "zero_point": q["zero_point"]} if q else None)

        suffix = self.path.suffix
        if suffix == ".tflite":
            self._run = tflite_runner(self.path, info(entry["input"]), info(entry["output"]), num_threads)
        elif suffix == ".onnx":
            self._run = onnx_runner(self.path, info(entry["input"]), info(entry["output"]), num_threads)
        else:
            raise ManifestError(f"{entry['format']} files cannot run on this machine ({self.path.name})")
        self.labels: tuple[str, ...] = tuple(entry["output"]["labels"])
        self.face_template: str = entry["face_alignment"]["template"]
        self.input_size: int = int(entry["face_alignment"]["size"])
        self.version: str = str(entry.get("version"))
        self._template = self._template_from_manifest(entry["face_alignment"])
        self._logits = entry["output"].get("values") == "logits"

    @staticmethod
    def _template_from_manifest(record: dict[str, Any]):
        """The alignment template as the manifest states it (its keypoints, not faceforge's table)."""
        from faceforge.faces.align import FaceTemplate
        from faceforge.faces.detect import KEYPOINT_NAMES

        try:
            indices = tuple(KEYPOINT_NAMES.index(n) for n in record["detector_keypoints"])
            return FaceTemplate(name=record["template"], keypoints=np.asarray(record["keypoints"], np.float64),
                                indices=indices, source="mobile_assets/manifest.json")
        except (KeyError, ValueError) as exc:
            raise ManifestError(f"face_alignment record unusable: {exc}") from None

    def align(self, rgb: np.ndarray, faces: Sequence[Any]) -> list[np.ndarray]:
        """Crop each detected face as the entry's ``face_alignment`` says (template keypoints and size
        from the manifest): uint8 ``(S, S, 3)`` crops.

        Raises:
            ValueError: bad image or keypoints.
        """
        from faceforge.faces.align import align_face

        return [align_face(rgb, f, self.input_size, template=self._template).image for f in faces]

    def preprocess(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 RGB (or gray) crops -> float32 ``(N, C, S, S)`` normalized as the entry's ``input`` says
        (colour conversion to gray with BT.601 luma when ``colour == "gray"``, then ``scale``/``offset``);
        :meth:`__call__` quantizes with the file's own parameters.

        Raises:
            ValueError: crops of another size than the entry's.
        """
        inp = self.entry["input"]
        norm = inp["normalization"]
        out = []
        for crop in crops:
            crop = np.asarray(crop)
            if crop.shape[:2] != (self.input_size, self.input_size):
                raise ValueError(f"crop is {crop.shape[:2]}, the entry takes {self.input_size}x{self.input_size}")
            if crop.ndim == 2:
                crop = crop[..., None]
            if inp["colour"] == "gray" and crop.shape[-1] == 3:
                crop = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)[..., None]
            out.append(crop.astype(np.float32) * np.float32(norm["scale"]) + np.float32(norm["offset"]))
        if not out:
            channels = 1 if inp["colour"] == "gray" else 3
            return np.zeros((0, channels, self.input_size, self.input_size), np.float32)
        return np.ascontiguousarray(np.stack(out).transpose(0, 3, 1, 2))

    @classmethod
    def from_manifest(cls, assets: str | Path, model: str, fmt: str, num_threads: int = 1) -> "OnDeviceClassifier":
        """Build from ``<assets>/manifest.json``'s ``(model, fmt)`` entry (see the class)."""
        return cls(assets, find_entry(load_manifest(assets), model, fmt), num_threads)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Classify a batch.

        Args:
            x: ``(N, C, H, W)`` float32, normalized as the manifest's ``input.normalization`` says
                (e.g. from :func:`faceforge.emotion.preprocess_faces`).

        Returns:
            ``(N, K)`` float32 probabilities in label order.
        """
        y = self._run(np.asarray(x, np.float32))
        return (_softmax(y) if self._logits else y).astype(np.float32)

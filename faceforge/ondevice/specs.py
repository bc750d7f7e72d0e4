"""Tensor records of on-device model files: what the manifest states and what a runner checks.

Lives in the core (not in ``export/``) because the app contract needs it on both sides: the exporter
writes these records into ``mobile_assets/manifest.json``, and the on-device runners
(:mod:`faceforge.ondevice.runners`) check each file's own tensors against them before running it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TensorInfo"]


@dataclass
class TensorInfo:
    """One input or output tensor of an exported file, as read back from the file itself.

    Attributes:
        name: tensor (or feature) name in the file.
        shape: shape in the file's own layout, e.g. ``[1, 48, 48, 1]``.
        layout: ``"NHWC"``, ``"NCHW"`` or ``"NC"`` (class scores).
        dtype: ``"float32"``, ``"float16"``, ``"int8"`` or ``"uint8"``.
        quantization: ``{"scale": float, "zero_point": int}`` for integer tensors
            (``real = scale * (q - zero_point)``), else ``None``.
        kind: ``"tensor"`` (a plain array), ``"image"`` (a Core ML image feature: uint8 pixels, the
            normalization inside the model) or ``"classifier"`` (a Core ML classifier's probabilities:
            label -> probability, with a predicted-label feature beside it).
    """

    name: str
    shape: list[int]
    layout: str
    dtype: str
    quantization: dict[str, float | int] | None = None
    kind: str = "tensor"

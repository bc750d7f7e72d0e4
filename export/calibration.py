"""Representative (calibration) data and parity data for export, preprocessed as each model expects.

Static int8 quantization needs inputs like the ones the phone will feed: for ``mini_xception`` that is
real FER2013 training faces (48x48 grayscale) mapped with the model's input spec
(``x = gray * scale + offset``, i.e. ``gray / 127.5 - 1``). Parity uses the FER2013 test split.

The data root is ``$FACEFORGE_DATA`` (default ``<repo>/../shared/data``, see :mod:`training.data`).
When the data is absent, :func:`representative_dataset` raises :class:`~faceforge.errors.ExportError`
instead of quietly calibrating on noise; ``source="random"`` (CLI ``--calibration random``) is an
explicit opt-in meant for tests.

To add a model: write a loader ``(split, limit, seed) -> (images uint8 (N, H, W) or (N, H, W, 3),
labels (N,) int64 or None)`` and register it in :data:`DATA_SOURCES` under the model's registry name.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from faceforge.errors import ExportError
from faceforge.models.registry import ModelSpec

log = logging.getLogger("faceforge.export")

Loader = Callable[[str, "int | None", int], "tuple[np.ndarray, np.ndarray | None]"]


def _fer2013(split: str, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        from training.data import load_fer2013
    except ImportError as exc:  # the training package ships with faceforge; guard anyway
        raise ExportError(f"FER2013 loader unavailable (training.data): {exc}") from None
    return load_fer2013(split, limit=limit, seed=seed)


DATA_SOURCES: dict[str, tuple[str, Loader]] = {
    "mini_xception": ("FER2013 (Goodfellow et al. 2013), folders fer2013/{train,test}/<class>/*.jpg", _fer2013),
}
"""Model name -> (description, loader) of its real data."""


def preprocess(images: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Map uint8 pixels to the model's float input, exactly as :class:`InputSpec` defines it.

    Args:
        images: ``(N, H, W)`` gray or ``(N, H, W, 3)`` RGB, uint8 in [0, 255], already the model's size.
        spec: the model spec (``input.shape``, ``colour``, ``scale``, ``offset``).

    Returns:
        ``(N, C, H, W)`` float32, ``images * scale + offset`` (gray: ``/127.5 - 1`` for mini_xception).

    Raises:
        ValueError: dtype is not uint8, or the shape does not match ``spec.input.shape``.
    """
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {images.dtype}")
    x = images[..., None] if images.ndim == 3 else images
    if x.ndim != 4:
        raise ValueError(f"expected (N, H, W) or (N, H, W, C) images, got shape {images.shape}")
    x = x.transpose(0, 3, 1, 2)
    if tuple(x.shape[1:]) != tuple(spec.input.shape):
        raise ValueError(f"images are {tuple(x.shape[1:])} (C, H, W); {spec.name} expects {spec.input.shape}")
    return (x.astype(np.float32) * np.float32(spec.input.scale) + np.float32(spec.input.offset)).astype(np.float32)


def random_images(spec: ModelSpec, n: int, seed: int = 0) -> np.ndarray:
    """``n`` seeded random uint8 images of the model's input size: ``(N, H, W)`` gray or ``(N, H, W, 3)``.

    Smooth (random low-resolution noise upsampled) rather than white noise, so activations cover a
    range closer to real images. For tests and ``--calibration random`` only.
    """
    import cv2

    c, h, w = spec.input.shape
    rng = np.random.default_rng(seed)
    out = np.empty((n, h, w, c), np.uint8)
    for i in range(n):
        small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), c)).astype(np.float32)
        big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, c)
        out[i] = np.clip(big + rng.normal(0, 12, big.shape), 0, 255).astype(np.uint8)
    return out[..., 0] if c == 1 else out


def _load_real(spec: ModelSpec, split: str, limit: int | None, seed: int, purpose: str):
    if spec.name not in DATA_SOURCES:
        raise ExportError(f"no real-data source registered for {spec.name!r} ({purpose}); add a loader to "
                          "export.calibration.DATA_SOURCES")
    what, loader = DATA_SOURCES[spec.name]
    try:
        return loader(split, limit, seed)
    except FileNotFoundError as exc:
        raise ExportError(f"{purpose} needs {what} and it is not available: {exc}. Set FACEFORGE_DATA "
                          "to the data folder.", model=spec.name) from None


def representative_dataset(spec: ModelSpec, size: int = 500, seed: int = 0,
                           source: str = "data") -> np.ndarray:
    """Calibration inputs for static quantization, preprocessed for the model.

    Args:
        spec: the model spec.
        size: number of images (a seeded random subset of the training split).
        seed: subset seed (the same seed gives the same images).
        source: ``"data"`` (real training images) or ``"random"`` (seeded synthetic images; for tests).

    Returns:
        ``(size, C, H, W)`` float32 in the model's input range.

    Raises:
        ValueError: ``size < 1`` or an unknown ``source``.
        ExportError: ``source="data"`` and the data is absent (the message says how to fix it).
    """
    if size < 1:
        raise ValueError(f"calibration size must be >= 1, got {size}")
    if source == "random":
        log.warning("calibrating %s on %d RANDOM images (tests only; not for shipped files)", spec.name, size)
        return preprocess(random_images(spec, size, seed), spec)
    if source != "data":
        raise ValueError(f"calibration source must be 'data' or 'random', not {source!r}")
    images, _ = _load_real(spec, "train", size, seed, "int8 calibration")
    return preprocess(images, spec)


def parity_dataset(spec: ModelSpec, limit: int | None = None, seed: int = 0,
                   source: str = "data") -> tuple[np.ndarray, np.ndarray | None]:
    """Inputs (and labels) the exported files are compared on: the model's real test split.

    Args:
        spec: the model spec.
        limit: ``None`` for the whole test split, else a seeded random subset of that many images.
        seed: subset seed.
        source: ``"data"`` or ``"random"`` (synthetic images, no labels; for tests).

    Returns:
        ``x`` ``(N, C, H, W)`` float32 in the model's input range and ``labels`` ``(N,)`` int64 (or
        ``None`` when the source has none).

    Raises:
        ExportError: ``source="data"`` and the data is absent.
    """
    if source == "random":
        return preprocess(random_images(spec, limit or 256, seed + 1), spec), None
    if source != "data":
        raise ValueError(f"parity source must be 'data' or 'random', not {source!r}")
    images, labels = _load_real(spec, "test", limit, seed, "parity")
    return preprocess(images, spec), labels

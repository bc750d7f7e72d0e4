"""Representative (calibration) data and parity data for export, preprocessed as each model expects.

Static int8 quantization needs inputs like the ones the phone will feed: for ``mini_xception`` that is
real FER2013 training faces (48x48 grayscale) mapped with the model's input spec
(``x = gray * scale + offset``, i.e. ``gray / 127.5 - 1``). Parity uses the FER2013 test split. For the
CycleGAN generators (``cyclegan_*``, task ``translate``) it is young (18-29) UTKFace faces: the
"aligned & cropped" 200x200 chips, whose median framing *is* faceforge's ``"utkface"`` template
(:func:`training.unpaired.measure_utkface_template`), resized to the generator's input size and mapped
with ``x = pixel / 127.5 - 1``; the test split is the held-out young faces of the UTKFace age split
(:func:`faceforge.data.utkface.age_split`, seed 0), read from its named split file
``faceforge/data/splits/utkface_age.json`` by :func:`faceforge.data.utkface.young_faces` (the ``testA``
that ``training.unpaired.build_age_split`` writes from the full folder). For the frontalizers
(``pix2pix_*``) it is the generator's real input: UTKFace faces of a pose-pair cache
(:mod:`faceforge.data.pose_pairs`) turned and rendered back to frontal, train split for calibration and
the held-out faces for parity (:func:`_pose_pairs`).

Every dataset is read through the core data layer (:mod:`faceforge.data`), as the trainers read it;
nothing of ``training`` is imported. The data root is ``$FACEFORGE_DATA`` (default
``<repo>/../shared/data``, :func:`faceforge.data.paths.data_root`).
When the data is absent, :func:`representative_dataset` raises :class:`~faceforge.errors.ExportError`
instead of quietly calibrating on noise; ``source="random"`` (CLI ``--calibration random``) is an
explicit opt-in meant for tests.

To add a model: write a loader ``(split, limit, seed) -> (images uint8 (N, H, W) or (N, H, W, 3),
labels (N,) int64 or None)`` and register it in :data:`DATA_SOURCES` under the model's registry name
or a shell-style pattern of names (``"cyclegan_*"``; exact names win). Images of another size than
the model's input are resized (area averaging when shrinking, bicubic when enlarging).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from faceforge.errors import ExportError
from faceforge.models.registry import ModelSpec

log = logging.getLogger("faceforge.export")

Loader = Callable[[str, "int | None", int], "tuple[np.ndarray, np.ndarray | None]"]


def _fer2013(split: str, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from faceforge.data.fer2013 import load_fer2013

    return load_fer2013(split, limit=limit, seed=seed)



def _utkface_young(split: str, limit: int | None, seed: int) -> tuple[np.ndarray, None]:
    """Young (18-29) UTKFace chips, RGB uint8 ``(N, 200, 200, 3)``, no labels.

    ``split="test"``: the held-out young faces of the UTKFace age split's named split file
    (:func:`faceforge.data.utkface.young_faces`: ``testA`` of ``build_age_split`` on the full folder, seed 0;
    faces a translator trained on that split never saw); ``"train"``: the other young faces.
    ``limit``: a ``seed``-ed random subset of that many.

    Raises:
        FileNotFoundError: no ``utkface`` folder under the data root, or it holds no young faces
            (:class:`~faceforge.errors.DatasetNotFoundError`).
    """
    from faceforge.data.utkface import young_faces
    from faceforge.imaging import load_image

    chosen = young_faces(split)
    if limit is not None and limit < len(chosen):
        pick = np.sort(np.random.default_rng(seed).choice(len(chosen), limit, replace=False))
        chosen = [chosen[i] for i in pick]
    return np.stack([load_image(r.path) for r in chosen]), None


POSE_PAIRS_ENV = "FACEFORGE_POSE_PAIRS"
"""Environment variable naming the pose-pair cache the frontalizers are calibrated and checked on."""


def pose_pairs_dir() -> Path:
    """The pose-pair cache: ``$FACEFORGE_POSE_PAIRS`` or ``<repo>/cache/pose_pairs`` (may not exist)."""
    from faceforge.data.paths import REPO_ROOT

    env = os.environ.get(POSE_PAIRS_ENV)
    return Path(env) if env else REPO_ROOT / "cache" / "pose_pairs"


def _pose_pairs(split: str, limit: int | None, seed: int) -> tuple[np.ndarray, None]:
    """Frontalizer inputs: the **rerendered** UTKFace faces of a pose-pair cache
    (:mod:`faceforge.data.pose_pairs`; real faces turned 15-75 degrees and warped back to frontal, which is
    what :class:`faceforge.frontalize.Frontalizer` feeds the generator), RGB uint8 ``(N, S, S, 3)``.

    ``split``: the cache's face-level ``"train"``/``"test"`` split (faces a generator trained on that
    cache never saw are in ``"test"``); ``limit``: a ``seed``-ed random subset, drawn across all yaw
    buckets.

    Raises:
        FileNotFoundError: no cache (the message says how to build one or point at one).
    """
    from faceforge.data.pose_pairs import load_index
    from faceforge.imaging import load_image

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    root = pose_pairs_dir()
    try:
        index = load_index(root)
    except FileNotFoundError:
        raise FileNotFoundError(f"no pose-pair cache at {root}: build one with `faceforge train frontalize-pairs "
                                f"--dest {root}` or set {POSE_PAIRS_ENV}") from None
    pairs = [p for p in index["pairs"] if p["split"] == split]
    if not pairs:
        raise FileNotFoundError(f"the pose-pair cache at {root} has no {split!r} pairs")
    if limit is not None and limit < len(pairs):
        pick = np.sort(np.random.default_rng(seed).choice(len(pairs), limit, replace=False))
        pairs = [pairs[i] for i in pick]
    return np.stack([load_image(root / p["rerender"]) for p in pairs]), None


DATA_SOURCES: dict[str, tuple[str, Loader]] = {
    "mini_xception": ("FER2013 (Goodfellow et al. 2013), folders fer2013/{train,test}/<class>/*.jpg", _fer2013),
    "cyclegan_*": ("UTKFace young faces (ages 18-29; Zhang et al. 2017), aligned & cropped 200x200 chips "
                   "(the 'utkface' template is their median framing) resized to the generator's input, "
                   "held-out 10 % = build_age_split testA (seed 0), utkface/*.jpg.chip.jpg", _utkface_young),
    "pix2pix_*": ("UTKFace pose pairs (rerendered inputs of near-frontal faces turned 15-75 degrees), "
                  "held-out faces = the cache's test split, $FACEFORGE_POSE_PAIRS or cache/pose_pairs", _pose_pairs),
}
"""Model name (or ``fnmatch`` pattern of names) -> (description, loader) of its real data."""


def data_source(name: str) -> tuple[str, Loader] | None:
    """The ``(description, loader)`` registered for model ``name``: its exact entry, else the first
    pattern (in insertion order) that matches, else ``None``."""
    import fnmatch

    if name in DATA_SOURCES:
        return DATA_SOURCES[name]
    for key, value in DATA_SOURCES.items():
        if any(c in key for c in "*?[") and fnmatch.fnmatchcase(name, key):
            return value
    return None


def data_description(name: str) -> str:
    """Short name of ``name``'s real data (the description up to its first comma), or ``"real data"``."""
    source = data_source(name)
    return source[0].split(",")[0] if source else "real data"


def resize_images(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 ``(N, H, W)`` or ``(N, H, W, C)`` images to ``size = (H', W')`` (area averaging when
    shrinking, bicubic when enlarging, as :func:`faceforge.data.images.resize_square`); unchanged if equal."""
    import cv2

    h, w = size
    if images.shape[1:3] == (h, w):
        return images
    shrink = h < images.shape[1] and w < images.shape[2]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    out = np.stack([cv2.resize(im, (w, h), interpolation=interp) for im in images])
    return out.reshape(len(images), h, w, *images.shape[3:])


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
    source = data_source(spec.name)
    if source is None:
        raise ExportError(f"no real-data source registered for {spec.name!r} ({purpose}); add a loader to "
                          "export.calibration.DATA_SOURCES")
    what, loader = source
    try:
        images, labels = loader(split, limit, seed)
    except FileNotFoundError as exc:
        raise ExportError(f"{purpose} needs {what} and it is not available: {exc}. Set FACEFORGE_DATA "
                          "to the data folder.", model=spec.name) from None
    return resize_images(images, tuple(spec.input.shape[1:])), labels


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

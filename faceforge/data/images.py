"""Image helpers shared by the trainers, the export's calibration and the benchmarks: listing a folder's
images, square crops and resizes, labelled tiles for grids, and a cached decode of a face set.

Conventions: images are uint8 ``(H, W, 3)`` RGB as :func:`faceforge.imaging.load_image` returns them.
Resampling: area averaging when shrinking, bicubic when enlarging (OpenCV ``INTER_AREA`` /
``INTER_CUBIC``), one interpolation per resize.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from faceforge.errors import DatasetNotFoundError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
"""File suffixes (case-insensitive) counted as images."""


def list_images(folder: str | Path) -> list[Path]:
    """Image files (by suffix, case-insensitive, :data:`IMAGE_SUFFIXES`) directly inside ``folder``,
    sorted by name.

    Raises:
        DatasetNotFoundError: ``folder`` is not a folder (also a ``FileNotFoundError``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"image folder not found: {folder}", path=str(folder))
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def center_square(rgb: np.ndarray) -> np.ndarray:
    """The centred ``s x s`` crop (``s = min(H, W)``; a view) of an ``(H, W, ...)`` array."""
    h, w = rgb.shape[:2]
    s = min(h, w)
    return rgb[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]


def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 ``(H, W, 3)`` to ``(size, size, 3)``: area averaging when shrinking (``size`` below
    the shorter side), bicubic otherwise; returned as is when already that size."""
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    shrink = size < min(rgb.shape[:2])
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def label_tile(tile: np.ndarray, text: str) -> np.ndarray:
    """A copy of uint8 ``(H, W, 3)`` ``tile`` with ``text`` written top left in white on a black outline
    (OpenCV Hershey simplex, scale ``max(0.35, H / 320)``), for labelled sample grids."""
    out = tile.copy()
    scale = max(0.35, tile.shape[0] / 320)
    cv2.putText(out, text, (4, int(16 * scale) + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (4, int(16 * scale) + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def load_faces(files: Sequence[Path], size: int, cache_dir: str | Path | None = None,
               progress: bool = False) -> np.ndarray:
    """Decode ``files``, centre-crop square, resize to ``size`` (:func:`resize_square`).

    Args:
        files: image files.
        size: output side in pixels.
        cache_dir: where to keep the array as ``<cache_dir>/gpen_<size>px_<N>_<hash>.npy`` (the hash
            covers ``size`` and the resolved paths); ``None``: no cache. Callers pass a user cache folder
            (:func:`faceforge.models.cards.user_cache_dir`) or a run folder, never the source tree.
        progress: tqdm bar while decoding.

    Returns:
        uint8 ``(N, size, size, 3)`` RGB, in the order of ``files``.

    Raises:
        The errors of :func:`faceforge.imaging.load_image` for a missing or unreadable file.
    """
    key = hashlib.sha1("\n".join([str(size), *[str(Path(f).resolve()) for f in files]]).encode()).hexdigest()[:12]
    cache = Path(cache_dir) / f"gpen_{size}px_{len(files)}_{key}.npy" if cache_dir else None
    return decode_squares(files, size, cache, desc="loading faces", disable_bar=not progress or None)


def decode_squares(files: Sequence[Path], size: int, cache: Path | None = None, desc: str = "loading images",
                   disable_bar: bool | None = True) -> np.ndarray:
    """Decode ``files``, centre-crop square, resize to ``size``; read from / write to the ``.npy`` ``cache``.

    The one decode loop behind :func:`load_faces` and the StyleGAN2 trainer's image loader (each names its
    own cache file). The cache is written through a temporary file and renamed, so a crash never leaves a
    truncated array behind.

    Args:
        files: image files.
        size: output side in pixels.
        cache: ``.npy`` file to load if it exists, else to write after decoding; ``None``: no cache.
        desc: tqdm label.
        disable_bar: tqdm's ``disable`` (``None``: show only on a terminal).

    Returns:
        uint8 ``(N, size, size, 3)`` RGB, in the order of ``files``.

    Raises:
        The errors of :func:`faceforge.imaging.load_image` for a missing or unreadable file.
    """
    from tqdm import tqdm

    from faceforge.imaging import load_image

    if cache is not None and cache.is_file():
        return np.load(cache)
    out = np.empty((len(files), size, size, 3), np.uint8)
    for i, f in enumerate(tqdm(files, desc=desc, disable=disable_bar, mininterval=5)):
        out[i] = resize_square(center_square(load_image(f)), size)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, out)
        tmp.replace(cache)
    return out

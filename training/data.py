"""Where the training data lives, and the FER2013 image-folder dataset.

Data root: the ``FACEFORGE_DATA`` environment variable, else ``<repo>/../shared/data``. FER2013 is
expected as ``<root>/fer2013/{train,test}/<class>/*.jpg`` (48x48 grayscale, the Kaggle image-folder
release; Goodfellow et al., "Challenges in Representation Learning", ICML 2013 workshop).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from faceforge.models.mini_xception import FER2013_LABELS

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path:
    """The data folder: ``$FACEFORGE_DATA`` or ``<repo>/../shared/data`` (may not exist)."""
    env = os.environ.get("FACEFORGE_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def fer2013_dir(split: str, root: Path | None = None) -> Path:
    """Folder of one FER2013 split.

    Raises:
        ValueError: ``split`` is not ``"train"`` or ``"test"``.
        FileNotFoundError: the folder is absent; the message says how to point faceforge at a copy.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    path = (root or data_root()) / "fer2013" / split
    if not path.is_dir():
        raise FileNotFoundError(f"FER2013 {split} folder not found at {path}; set FACEFORGE_DATA to a folder "
                                "holding fer2013/{train,test}/<class>/*.jpg")
    return path


def load_fer2013(split: str, root: Path | None = None, limit: int | None = None,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Load a FER2013 split into memory.

    Args:
        split: ``"train"`` or ``"test"``.
        root: data root; defaults to :func:`data_root`.
        limit: keep a random (seeded) subset of this many images, stratified by nothing.
        seed: seed of that subset.

    Returns:
        ``images`` (N, 48, 48) uint8 grayscale and ``labels`` (N,) int64 in FER2013 id order
        (:data:`~faceforge.models.mini_xception.FER2013_LABELS`), files sorted by path.

    Raises:
        FileNotFoundError: the split folder is absent.
        ValueError: a class folder name is not a FER2013 label, or an image is not 48x48.
    """
    base = fer2013_dir(split, root)
    files: list[Path] = []
    labels: list[int] = []
    for cls_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        if cls_dir.name not in FER2013_LABELS:
            raise ValueError(f"unexpected class folder {cls_dir} (expected one of {FER2013_LABELS})")
        for f in sorted(cls_dir.iterdir()):
            if f.suffix.lower() in (".jpg", ".jpeg", ".png"):
                files.append(f)
                labels.append(FER2013_LABELS.index(cls_dir.name))
    idx = np.arange(len(files))
    if limit is not None and limit < len(files):
        idx = np.sort(np.random.default_rng(seed).choice(len(files), limit, replace=False))
    images = np.empty((len(idx), 48, 48), np.uint8)
    for j, i in enumerate(idx):
        with Image.open(files[i]) as im:
            arr = np.asarray(im.convert("L"))
        if arr.shape != (48, 48):
            raise ValueError(f"{files[i]} is {arr.shape}, expected 48x48")
        images[j] = arr
    return images, np.asarray(labels, np.int64)[idx]

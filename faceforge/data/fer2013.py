"""FER2013 (Goodfellow et al., "Challenges in Representation Learning", ICML 2013 workshop) as in-memory
arrays, from the Kaggle image-folder release: ``<data root>/fer2013/{train,test}/<class>/*.jpg``,
48x48 grayscale, class folders named as :data:`~faceforge.models.mini_xception.FER2013_LABELS`.

Used by the emotion trainer (``training.emotion``), the export's int8 calibration and parity
(``export.calibration``) and the emotion benchmarks: one loader, so all three read the same images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from faceforge.data.paths import data_root, require_dir

FER2013_SPLITS = ("train", "test")


def fer2013_dir(split: str, root: str | Path | None = None) -> Path:
    """Folder of one FER2013 split, ``<root>/fer2013/<split>``.

    Args:
        split: ``"train"`` or ``"test"``.
        root: data root; default :func:`~faceforge.data.paths.data_root`.

    Raises:
        ValueError: ``split`` is not ``"train"`` or ``"test"``.
        DatasetNotFoundError: the folder is absent (also a ``FileNotFoundError``); the message says how to
            point faceforge at a copy.
    """
    if split not in FER2013_SPLITS:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    return require_dir(Path(root or data_root()) / "fer2013" / split, f"FER2013 {split}",
                       "fer2013/{train,test}/<class>/*.jpg")


def load_fer2013(split: str, root: str | Path | None = None, limit: int | None = None,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Load a FER2013 split into memory.

    Args:
        split: ``"train"`` or ``"test"``.
        root: data root; defaults to :func:`~faceforge.data.paths.data_root`.
        limit: keep a random subset of this many images (``numpy.random.default_rng(seed).choice``
            without replacement over the sorted file list, kept in file order; not stratified).
        seed: seed of that subset.

    Returns:
        ``images`` (N, 48, 48) uint8 grayscale and ``labels`` (N,) int64 in FER2013 id order
        (:data:`~faceforge.models.mini_xception.FER2013_LABELS`), files sorted by class folder, then name.

    Raises:
        DatasetNotFoundError: the split folder is absent.
        ValueError: a class folder name is not a FER2013 label, or an image is not 48x48.
    """
    from faceforge.models.mini_xception import FER2013_LABELS  # the labels' one definition (imports torch)

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

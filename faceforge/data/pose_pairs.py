"""Pose-pair caches for face frontalization: the index reader and the paired dataset.

A cache (written by ``faceforge train frontalize-pairs``, ``training.pose_pairs.build_pose_pairs``;
Rotate-and-Render-style synthesis, Zhou et al., CVPR 2020, arXiv:2003.08124) is a folder with
``index.json`` (``{"version", "config", "counts", "skipped", "pairs": [...]}``; per pair: ``id``,
``face``, ``source``, ``split`` (face-level ``"train"``/``"test"``), ``yaw`` (applied, degrees),
``bucket``, and the relative PNG paths ``frontal``, ``profile``, ``rerender``) and the PNGs. The
frontalization trainer, the export's calibration/parity and the frontalization benchmark read it here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from faceforge.data.images import resize_square
from faceforge.data.tensors import to_tensor
from faceforge.errors import DatasetNotFoundError
from faceforge.imaging import load_image

YAW_BUCKETS: tuple[tuple[float, float], ...] = ((15.0, 30.0), (30.0, 45.0), (45.0, 60.0), (60.0, 75.0))
"""Yaw buckets (absolute degrees) for sampling and for per-bucket metrics."""

INDEX_VERSION = 1


def bucket_name(yaw: float, buckets: Sequence[Sequence[float]] = YAW_BUCKETS) -> str | None:
    """``"15-30"``-style name of the bucket holding ``|yaw|`` (upper bound inclusive), ``None`` outside."""
    a = abs(float(yaw))
    for lo, hi in buckets:
        if lo <= a <= hi:
            return f"{lo:g}-{hi:g}"
    return None


def load_index(root: str | Path) -> dict[str, Any]:
    """Read ``<root>/index.json``.

    Raises:
        DatasetNotFoundError: no index there (also a ``FileNotFoundError``; the message says how to build one).
        ValueError: an index of another version.
    """
    path = Path(root) / "index.json"
    if not path.is_file():
        raise DatasetNotFoundError(f"no pose-pair index at {path}; build one with `faceforge train frontalize-pairs "
                                f"--dest {root}`")
    index = json.loads(path.read_text())
    if index.get("version") != INDEX_VERSION:
        raise ValueError(f"{path} is version {index.get('version')}, expected {INDEX_VERSION}; rebuild it")
    return index


INPUTS = ("rerender", "profile")


class PosePairDataset(Dataset):
    """Paired (input, frontal) faces from a pose-pair cache.

    Args:
        root: cache folder (with ``index.json``).
        split: ``"train"``, ``"test"`` or ``"all"``.
        input: ``"rerender"`` (Rotate-and-Render: the profile rendered back to frontal, artifacts and
            all; the generator cleans it up) or ``"profile"`` (pix2pix-style: the generator turns the
            rendered profile itself).
        load_size: side images are resized to before cropping (>= ``crop_size``).
        crop_size: side of the returned images.
        augment: the same random crop and left-right flip for input and target (the flip negates
            ``yaw``); without it images are only resized to ``crop_size``.

    Items:
        ``{"input": (3, c, c) float32 in [-1, 1], "target": same, "yaw": float32 degrees, "id": str}``.

    Raises:
        DatasetNotFoundError / ValueError: see :func:`load_index`; unknown ``split`` or ``input``; an empty split.
    """

    def __init__(self, root: str | Path, split: str = "train", input: str = "rerender", load_size: int = 256,
                 crop_size: int = 256, augment: bool = False) -> None:
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        if input not in INPUTS:
            raise ValueError(f"input must be one of {INPUTS}, got {input!r}")
        if crop_size < 4 or load_size < crop_size:
            raise ValueError(f"need 4 <= crop_size <= load_size, got crop {crop_size}, load {load_size}")
        self.root = Path(root)
        index = load_index(self.root)
        self.pairs = [p for p in index["pairs"] if split == "all" or p["split"] == split]
        if not self.pairs:
            raise ValueError(f"no {split} pairs in {self.root / 'index.json'}")
        self.input, self.load_size, self.crop_size, self.augment = input, int(load_size), int(crop_size), augment

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        p = self.pairs[i]
        x, y = load_image(self.root / p[self.input]), load_image(self.root / p["frontal"])
        yaw = float(p["yaw"])
        if self.augment:
            x, y = resize_square(x, self.load_size), resize_square(y, self.load_size)
            off = self.load_size - self.crop_size
            r, c = (torch.randint(0, off + 1, (2,)).tolist() if off else (0, 0))
            x, y = x[r:r + self.crop_size, c:c + self.crop_size], y[r:r + self.crop_size, c:c + self.crop_size]
            if torch.rand(()) < 0.5:
                x, y, yaw = x[:, ::-1], y[:, ::-1], -yaw
        else:
            x, y = resize_square(x, self.crop_size), resize_square(y, self.crop_size)
        return {"input": to_tensor(np.array(x)), "target": to_tensor(np.array(y)),  # np.array: writable copies
                "yaw": torch.tensor(yaw, dtype=torch.float32), "id": p["id"]}

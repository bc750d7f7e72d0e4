"""Unpaired two-domain image folders (CycleGAN's data).

Layout (that of Zhu et al.'s CycleGAN datasets, ICCV 2017)::

    <root>/trainA/*.jpg|png   domain A (e.g. young faces)
    <root>/trainB/*.jpg|png   domain B (e.g. old faces)
    <root>/testA/ <root>/testB/   held-out images of each domain (optional for training)

:class:`UnpairedImageFolder` reads it: sample ``i`` pairs the ``i``-th image of A with a random image
of B (unpaired), each resized, randomly cropped and flipped, as float32 ``[-1, 1]`` tensors.
``training.unpaired.build_age_split`` writes this layout from UTKFace (:func:`faceforge.data.utkface.age_split`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from faceforge.data.images import IMAGE_SUFFIXES, list_images, resize_square
from faceforge.data.tensors import to_tensor
from faceforge.errors import DatasetNotFoundError
from faceforge.imaging import load_image

DOMAIN_FOLDERS = ("trainA", "trainB", "testA", "testB")


class UnpairedImageFolder(Dataset):
    """Two unpaired image domains from ``<root>/<phase>A`` and ``<root>/<phase>B``.

    Item ``i`` is the ``i % len(A)``-th image of A with a uniformly random image of B (drawn from
    torch's global generator, which the :class:`~torch.utils.data.DataLoader` seeds per worker), as in
    Zhu et al.'s unaligned dataset; the length is ``max(len(A), len(B))``, so one epoch visits every
    image of the larger domain once. With ``augment=True`` each image is resized to ``load_size``,
    randomly cropped to ``crop_size`` and flipped left-right with probability 1/2 (Zhu et al. 2017:
    286 -> 256); with ``augment=False`` it is only resized to ``crop_size``.

    Args:
        root: folder holding ``<phase>A`` and ``<phase>B``.
        phase: ``"train"`` or ``"test"`` (any folder prefix works).
        load_size: side the images are resized to before cropping (>= ``crop_size``).
        crop_size: side of the returned images.
        augment: random crop and flip (training) or plain resize (evaluation).

    Items:
        ``{"A": (3, crop, crop) float32 in [-1, 1], "B": same, "A_path": str, "B_path": str}``.

    Raises:
        DatasetNotFoundError: a domain folder is missing (also a ``FileNotFoundError``).
        ValueError: a domain folder holds no images, or bad sizes.
        The errors of :func:`faceforge.imaging.load_image` for an unreadable image (at access time).
    """

    def __init__(self, root: str | Path, phase: str = "train", load_size: int = 286, crop_size: int = 256,
                 augment: bool = True) -> None:
        if crop_size < 4 or load_size < crop_size:
            raise ValueError(f"need 4 <= crop_size <= load_size, got crop {crop_size}, load {load_size}")
        self.root = Path(root)
        self.files: dict[str, list[Path]] = {}
        for domain in ("A", "B"):
            folder = self.root / f"{phase}{domain}"
            if not folder.is_dir():
                raise DatasetNotFoundError(f"domain folder not found: {folder} (expected {self.root}/{phase}A and "
                                        f"{self.root}/{phase}B holding images)")
            files = list_images(folder)
            if not files:
                raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
            self.files[domain] = files
        self.load_size, self.crop_size, self.augment = int(load_size), int(crop_size), bool(augment)

    def __len__(self) -> int:
        return max(len(self.files["A"]), len(self.files["B"]))

    def _load(self, path: Path) -> torch.Tensor:
        rgb = load_image(path)
        if not self.augment:
            return to_tensor(resize_square(rgb, self.crop_size))
        rgb = resize_square(rgb, self.load_size)
        off = self.load_size - self.crop_size
        y, x = (torch.randint(0, off + 1, (2,)).tolist() if off else (0, 0))
        rgb = rgb[y:y + self.crop_size, x:x + self.crop_size]
        if torch.rand(()) < 0.5:
            rgb = rgb[:, ::-1]
        return to_tensor(rgb)

    def __getitem__(self, index: int) -> dict[str, Any]:
        a = self.files["A"][index % len(self.files["A"])]
        b = self.files["B"][int(torch.randint(0, len(self.files["B"]), ()).item())]
        return {"A": self._load(a), "B": self._load(b), "A_path": str(a), "B_path": str(b)}

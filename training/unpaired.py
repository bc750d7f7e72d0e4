"""Unpaired two-domain image data for CycleGAN, and the UTKFace young/old split.

Layout (the seed project's, also that of Zhu et al.'s CycleGAN datasets)::

    <root>/trainA/*.jpg|png   domain A (e.g. young faces)
    <root>/trainB/*.jpg|png   domain B (e.g. old faces)
    <root>/testA/ <root>/testB/   held-out images of each domain (optional for training)

:class:`UnpairedImageFolder` reads it: sample ``i`` pairs the ``i``-th image of A with a random image
of B (unpaired), each resized, randomly cropped and flipped, as float32 ``[-1, 1]`` tensors.

UTKFace (Zhang, Song, Qi, "Age Progression/Regression by Conditional Adversarial Autoencoder",
CVPR 2017) names its files ``age_gender_race_datetime.jpg.chip.jpg``. :func:`build_age_split` turns
it into the layout above: young (18-29) -> A, old (60+) -> B, a seeded held-out fraction of each into
``testA``/``testB``; names that do not follow the pattern (a few in the release, e.g. a missing race
field, a space before the suffix, an 18-digit date) are skipped and counted.

Re-alignment (``mode="align"``, the default). UTKFace is distributed "aligned & cropped" (200x200),
but by another aligner than faceforge's. The translator will run on faces from photos cropped by
faceforge's detector and template (``detect -> align -> translate -> paste back``), so training crops
are made by the same code: BlazeFace keypoints -> least-squares similarity onto the ``"utkface"``
template (:mod:`faceforge.faces.align`) -> 256x256 crop. This removes the train/serve framing shift
(roll, scale and position jitter of the chips: inter-quartile range about 0.03-0.04 of the side per
keypoint), drops the chips our detector cannot find (those faces would fail in the app too), and
upsamples 200 -> 256 in the same single interpolation as the warp. The ``"utkface"`` template is the
median framing of the UTKFace chips themselves (:func:`measure_utkface_template`), so re-aligned crops
stay inside the chip (templates with more forehead, such as ``"fer2013"``, would need pixels the
200x200 chip does not have). ``mode="link"`` / ``"copy"`` index the chips as they are instead.

Command line::

    python -m training.unpaired utkface-age --dest data/utkface_age [--mode align]
    python -m training.unpaired template          # re-measure the "utkface" template
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from faceforge.imaging import load_image, save_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DOMAIN_FOLDERS = ("trainA", "trainB", "testA", "testB")


def list_images(folder: str | Path) -> list[Path]:
    """Image files (by suffix, case-insensitive) directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` RGB -> float32 ``(3, H, W)`` in [-1, 1] (``p / 127.5 - 1``)."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float ``(3, H, W)`` or ``(N, 3, H, W)`` in [-1, 1] -> uint8 ``(H, W, 3)`` / ``(N, H, W, 3)`` RGB
    (rounded, clamped)."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).numpy()


def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 ``(H, W, 3)`` to ``(size, size, 3)``: area averaging when shrinking, bicubic when
    enlarging; returned as is when already that size."""
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    shrink = size < min(rgb.shape[:2])
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


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
        FileNotFoundError: a domain folder is missing.
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
                raise FileNotFoundError(f"domain folder not found: {folder} (expected {self.root}/{phase}A and "
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


# --------------------------------------------------------------------------------------------------
# UTKFace

UTKFACE_PATTERN = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d{17})\.jpg\.chip\.jpg$")
"""``age_gender_race_datetime.jpg.chip.jpg``; datetime ``yyyymmddHHMMSSfff`` (17 digits)."""

UTKFACE_GENDERS = ("male", "female")
UTKFACE_RACES = ("White", "Black", "Asian", "Indian", "Others")


@dataclass(frozen=True)
class UTKFaceRecord:
    """One UTKFace file's labels, parsed from its name.

    Attributes:
        path: the image file.
        age: years (0-116 in the release).
        gender: 0 male, 1 female (:data:`UTKFACE_GENDERS`).
        race: 0 White, 1 Black, 2 Asian, 3 Indian, 4 Others (:data:`UTKFACE_RACES`).
        datetime: the 17-digit collection timestamp string.
    """

    path: Path
    age: int
    gender: int
    race: int
    datetime: str


def parse_utkface_name(path: str | Path) -> UTKFaceRecord | None:
    """Parse a UTKFace file name; ``None`` when it does not follow the pattern exactly."""
    path = Path(path)
    m = UTKFACE_PATTERN.match(path.name)
    if m is None:
        return None
    return UTKFaceRecord(path, int(m[1]), int(m[2]), int(m[3]), m[4])


def scan_utkface(folder: str | Path) -> tuple[list[UTKFaceRecord], list[str]]:
    """Parse every ``*.jpg`` in ``folder``.

    Returns:
        ``(records, malformed)``: parsed records sorted by file name, and the names that did not parse.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"UTKFace folder not found: {folder} (set FACEFORGE_DATA to a folder holding "
                                "utkface/*.jpg.chip.jpg, or pass the folder explicitly)")
    records, malformed = [], []
    with os.scandir(folder) as entries:  # scandir: file types without one stat() per file
        names = sorted(e.name for e in entries if e.name.lower().endswith(".jpg") and e.is_file())
    for name in names:
        rec = parse_utkface_name(folder / name)
        if rec is None:
            malformed.append(name)
        else:
            records.append(rec)
    return records, malformed


def in_age_range(age: int, bounds: tuple[int, int | None]) -> bool:
    """``lo <= age <= hi`` (inclusive; ``hi=None`` means no upper bound)."""
    lo, hi = bounds
    return age >= lo and (hi is None or age <= hi)


def utkface_dir(root: str | Path | None = None) -> Path:
    """``<data root>/utkface`` (data root: ``$FACEFORGE_DATA`` or ``<repo>/../shared/data``)."""
    from training.data import data_root

    return Path(root or data_root()) / "utkface"


def measure_utkface_template(files: Sequence[Path], detector: Any = None,
                             progress: bool = False) -> dict[str, Any]:
    """Median BlazeFace keypoints of UTKFace chips, normalized to the chip side, symmetrized.

    Procedure: run the short-range detector (the chips are close-ups: on a 200-image sample it found
    196 faces, the full-range model 22) on each chip at its own size, keep the best face, divide the
    eyes/nose/mouth keypoints by the chip side, take per-coordinate medians, and symmetrize them
    left/right as the ``"fer2013"`` template was (``training.fer_template.symmetrize``).

    Args:
        files: UTKFace chips (square images).
        detector: a :class:`~faceforge.faces.detect.FaceDetector`; default short-range, 1 thread.
        progress: show a tqdm bar.

    Returns:
        JSON-ready dict: ``sample``, ``detected``, ``median``, ``iqr``, ``template`` ((4, 2) lists).

    Raises:
        ValueError: no face was detected in any file.
    """
    from faceforge.faces.detect import FaceDetector
    from training.fer_template import symmetrize

    det = detector or FaceDetector("short", num_threads=1)
    kept = []
    for path in tqdm(files, disable=not progress, desc="template", mininterval=5):
        rgb = load_image(path)
        faces = det.detect(rgb)
        if faces:
            kept.append(faces[0].keypoints[:4] / float(rgb.shape[1]))
    if not kept:
        raise ValueError("no face detected in any of the files")
    kps = np.asarray(kept, np.float64)
    q1, q3 = np.percentile(kps, [25, 75], axis=0)
    median = np.median(kps, axis=0)
    return {"sample": len(files), "detected": len(kept), "median": np.round(median, 4).tolist(),
            "iqr": np.round(q3 - q1, 4).tolist(), "template": np.round(symmetrize(median), 4).tolist()}


def _split_indices(n: int, test_fraction: float, rng: random.Random) -> tuple[list[int], list[int]]:
    idx = list(range(n))
    rng.shuffle(idx)
    n_test = int(math.floor(test_fraction * n + 0.5))  # round half up
    return sorted(idx[n_test:]), sorted(idx[:n_test])


def build_age_split(src: str | Path, dest: str | Path, young: tuple[int, int | None] = (18, 29),
                    old: tuple[int, int | None] = (60, None), mode: str = "align", size: int = 256,
                    template: str = "utkface", test_fraction: float = 0.1, seed: int = 0,
                    limit: int | None = None, detector: Any = None, quality: int = 95,
                    progress: bool = True) -> dict[str, Any]:
    """Write the unpaired ``trainA/trainB/testA/testB`` layout from UTKFace's age labels.

    Young faces (``young`` age range, inclusive) form domain A, old ones (``old``) domain B; a seeded
    random ``test_fraction`` of each domain goes to ``testA``/``testB``. Malformed names and ages
    outside both ranges are skipped and counted; so are (``mode="align"``) chips without a detected
    face. The report is also written to ``<dest>/split.json``.

    Args:
        src: the UTKFace folder (``*.jpg.chip.jpg``).
        dest: output folder; must not already hold a ``split.json``.
        young, old: ``(lo, hi)`` inclusive age bounds; ``hi=None`` = no bound. Must not overlap.
        mode: ``"align"`` (detect + align to ``template`` at ``size``, saved as JPEG ``quality``;
            see the module docstring for why), ``"link"`` (symbolic links to the chips) or ``"copy"``.
        size: crop side for ``mode="align"``.
        template: face template name in :data:`faceforge.faces.align.TEMPLATES`.
        test_fraction: held-out fraction per domain, in [0, 1).
        seed: seed of the held-out draw and of ``limit``'s subset.
        limit: keep at most this many images per domain (a seeded random subset; smoke runs).
        detector: face detector for ``mode="align"``; default ``FaceDetector("short", num_threads=1)``.
        quality: JPEG quality of aligned crops.
        progress: show a tqdm bar.

    Returns:
        The report dict: counts per folder, ``malformed`` (+ names), ``outside_ranges``, ``no_face``
        (+ names), settings.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        FileExistsError: ``dest`` already holds a split.
        ValueError: bad mode, ranges, fraction or size.
    """
    if mode not in ("align", "link", "copy"):
        raise ValueError(f"mode must be 'align', 'link' or 'copy', got {mode!r}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    for lo, hi in (young, old):
        if lo < 0 or (hi is not None and hi < lo):
            raise ValueError(f"bad age range {(lo, hi)}")
    if young[1] is None or young[1] >= old[0]:
        raise ValueError(f"young {young} must end below old {old}")
    dest = Path(dest)
    if (dest / "split.json").exists():
        raise FileExistsError(f"{dest} already holds a split (split.json); choose another --dest or delete it")
    records, malformed = scan_utkface(src)
    domains = {"A": [r for r in records if in_age_range(r.age, young)],
               "B": [r for r in records if in_age_range(r.age, old)]}
    outside = len(records) - len(domains["A"]) - len(domains["B"])
    rng = random.Random(seed)
    if limit is not None:
        domains = {k: sorted(rng.sample(v, min(limit, len(v))), key=lambda r: r.path.name)
                   for k, v in domains.items()}

    aligner = None
    if mode == "align":
        from faceforge.faces.align import align_face, get_template
        from faceforge.faces.detect import FaceDetector

        tpl = get_template(template)
        det = detector or FaceDetector("short", num_threads=1)
        aligner = (det, tpl, align_face)

    counts = dict.fromkeys(DOMAIN_FOLDERS, 0)
    no_face: list[str] = []
    jobs = []
    for domain, recs in domains.items():
        train_idx, test_idx = _split_indices(len(recs), test_fraction, rng)
        jobs += [(f"train{domain}", recs[i]) for i in train_idx] + [(f"test{domain}", recs[i]) for i in test_idx]
    for folder in DOMAIN_FOLDERS:
        (dest / folder).mkdir(parents=True, exist_ok=True)
    for folder, rec in tqdm(jobs, disable=not progress, desc="utkface", mininterval=5):
        out = dest / folder / rec.path.name
        if mode == "link":
            if out.is_symlink() or out.exists():
                out.unlink()
            os.symlink(rec.path.resolve(), out)
        elif mode == "copy":
            shutil.copyfile(rec.path, out)
        else:
            det, tpl, align_face = aligner
            rgb = load_image(rec.path)
            faces = det.detect(rgb)
            if not faces:
                no_face.append(rec.path.name)
                continue
            save_image(out, align_face(rgb, faces[0], size, tpl).image, quality=quality)
        counts[folder] += 1
    report = {
        "source": str(Path(src).resolve()), "dest": str(dest.resolve()), "mode": mode,
        "template": template if mode == "align" else None, "size": size if mode == "align" else None,
        "young": list(young), "old": list(old), "test_fraction": test_fraction, "seed": seed, "limit": limit,
        "counts": counts, "scanned": len(records) + len(malformed), "malformed": len(malformed),
        "malformed_names": malformed, "outside_ranges": outside, "no_face": len(no_face), "no_face_names": no_face,
    }
    (dest / "split.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _main() -> None:  # pragma: no cover - thin CLI
    import click

    @click.group()
    def cli() -> None:
        """Prepare unpaired CycleGAN data."""

    @cli.command("utkface-age")
    @click.option("--src", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="UTKFace folder [default: $FACEFORGE_DATA/utkface or ../shared/data/utkface].")
    @click.option("--dest", type=click.Path(file_okay=False, path_type=Path), required=True)
    @click.option("--mode", type=click.Choice(["align", "link", "copy"]), default="align", show_default=True)
    @click.option("--size", type=click.IntRange(16), default=256, show_default=True)
    @click.option("--test-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True)
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--limit", type=click.IntRange(1), default=None, help="At most N images per domain.")
    def utkface_age(src: Path | None, dest: Path, mode: str, size: int, test_fraction: float, seed: int,
                    limit: int | None) -> None:
        """Young (18-29) -> trainA/testA, old (60+) -> trainB/testB."""
        try:
            report = build_age_split(src or utkface_dir(), dest, mode=mode, size=size, test_fraction=test_fraction,
                                     seed=seed, limit=limit)
        except (FileNotFoundError, FileExistsError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        report = {k: v for k, v in report.items() if not k.endswith("_names")}
        click.echo(json.dumps(report, indent=1))

    @cli.command("template")
    @click.option("--src", type=click.Path(file_okay=False, path_type=Path), default=None)
    @click.option("--sample", type=click.IntRange(1), default=2000, show_default=True)
    @click.option("--seed", type=int, default=0, show_default=True)
    def template(src: Path | None, sample: int, seed: int) -> None:
        """Measure the "utkface" template on a random sample of 18-29 and 60+ chips."""
        records, _ = scan_utkface(src or utkface_dir())
        files = [r.path for r in records if in_age_range(r.age, (18, 29)) or in_age_range(r.age, (60, None))]
        random.Random(seed).shuffle(files)
        click.echo(json.dumps(measure_utkface_template(files[:sample], progress=True), indent=1))

    cli()


if __name__ == "__main__":
    _main()

"""UTKFace (Zhang, Song, Qi, "Age Progression/Regression by Conditional Adversarial Autoencoder", CVPR
2017): file-name labels, scanning, and the splits every stage shares.

UTKFace names its files ``age_gender_race_datetime.jpg.chip.jpg`` (200x200 "aligned & cropped" chips).
Names that do not follow the pattern exactly (a few in the release: a missing race field, a space
before the suffix, an 18-digit date) are reported as malformed, never guessed.

Two splits, each defined once here and used by training, export and benchmarks alike:

- **The age split** (:func:`age_split`): young (18-29) -> domain A, old (60+) -> domain B, a seeded
  ``test_fraction`` of each domain held out (``testA``/``testB``). It is what
  ``training.unpaired.build_age_split`` writes as folders, and the held-out young faces
  (``testA``) are the translators' export parity set. Its default draw on the full UTKFace release is
  shipped as the named split file ``faceforge/data/splits/utkface_age.json`` (:data:`AGE_SPLIT_FILE`,
  the held-out names of each domain), which :func:`young_faces` reads: the export calibration does not
  redo the draw.
- **The CRC hold-out** (:func:`is_held_out`, :func:`crc_split`): a file is held out when
  ``crc32(name) % 20 == 0`` (5 %), independent of the folder's other files; GPEN, FaceShifter and the
  restoration/swap benchmarks use it.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from faceforge.data.paths import data_root, require_dir
from faceforge.errors import DatasetNotFoundError

UTKFACE_PATTERN = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d{17})\.jpg\.chip\.jpg$")
"""``age_gender_race_datetime.jpg.chip.jpg``; datetime ``yyyymmddHHMMSSfff`` (17 digits)."""

UTKFACE_GENDERS = ("male", "female")
UTKFACE_RACES = ("White", "Black", "Asian", "Indian", "Others")

AGE_YOUNG: tuple[int, int | None] = (18, 29)
"""Inclusive age range of domain A of the age split (the translators' inputs)."""
AGE_OLD: tuple[int, int | None] = (60, None)
"""Inclusive age range of domain B (``None``: no upper bound)."""
AGE_TEST_FRACTION = 0.1
AGE_SEED = 0
AGE_SPLIT_FOLDERS = ("trainA", "trainB", "testA", "testB")

AGE_SPLIT_FILE = Path(__file__).resolve().parent / "splits" / "utkface_age.json"
"""The age split's default draw on the full release (:func:`write_split_file` format; held-out names
only: ``testA``, ``testB``; the training names are the rest of each age range)."""

HOLDOUT_MODULUS = 20
"""A file is held out by the CRC split when ``crc32(name) % HOLDOUT_MODULUS == 0`` (5 %)."""


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
    """Parse a UTKFace file name; ``None`` when it does not follow :data:`UTKFACE_PATTERN` exactly."""
    path = Path(path)
    m = UTKFACE_PATTERN.match(path.name)
    if m is None:
        return None
    return UTKFaceRecord(path, int(m[1]), int(m[2]), int(m[3]), m[4])


def utkface_dir(root: str | Path | None = None) -> Path:
    """``<data root>/utkface`` (data root: :func:`~faceforge.data.paths.data_root`); may not exist."""
    return Path(root or data_root()) / "utkface"


def scan_utkface(folder: str | Path) -> tuple[list[UTKFaceRecord], list[str]]:
    """Parse every ``*.jpg`` directly in ``folder``.

    Returns:
        ``(records, malformed)``: parsed records sorted by file name, and the names that did not parse.

    Raises:
        DatasetNotFoundError: ``folder`` does not exist (also a ``FileNotFoundError``).
    """
    folder = require_dir(folder, "UTKFace", "utkface/*.jpg.chip.jpg")
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


# --------------------------------------------------------------------------------------------------
# the age split

def shuffled_split(n: int, test_fraction: float, rng: random.Random) -> tuple[list[int], list[int]]:
    """``(train, test)`` sorted indices into ``range(n)``: ``rng.shuffle`` of the indices, the first
    ``floor(test_fraction * n + 0.5)`` (round half up) are test. Advances ``rng`` by one shuffle."""
    idx = list(range(n))
    rng.shuffle(idx)
    n_test = int(math.floor(test_fraction * n + 0.5))
    return sorted(idx[n_test:]), sorted(idx[:n_test])


def age_split(records: Sequence[UTKFaceRecord], young: tuple[int, int | None] = AGE_YOUNG,
              old: tuple[int, int | None] = AGE_OLD, test_fraction: float = AGE_TEST_FRACTION,
              seed: int = AGE_SEED, limit: int | None = None) -> dict[str, list[UTKFaceRecord]]:
    """The unpaired age split of UTKFace records into ``trainA/trainB/testA/testB``.

    Definition (one ``random.Random(seed)`` drives every draw, in this order): domain A = records with
    ``young`` ages, B = ``old`` ages (inclusive, records in the given order); with ``limit``, each domain
    (A, then B) is replaced by ``rng.sample(domain, min(limit, len))`` sorted by file name; then A and then
    B are split by :func:`shuffled_split`. Records in neither range are dropped.

    Args:
        records: parsed records, e.g. :func:`scan_utkface`'s (sorted by name).
        young, old: ``(lo, hi)`` inclusive age bounds of A and B; ``hi=None``: no bound.
        test_fraction: held-out fraction per domain, in [0, 1).
        seed: the seed of the draw.
        limit: at most this many records per domain (a seeded subset; smoke runs).

    Returns:
        ``{"trainA": [...], "trainB": [...], "testA": [...], "testB": [...]}``, each sorted like ``records``.

    Raises:
        ValueError: ``test_fraction`` outside [0, 1), or bad / overlapping ranges.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    for lo, hi in (young, old):
        if lo < 0 or (hi is not None and hi < lo):
            raise ValueError(f"bad age range {(lo, hi)}")
    if young[1] is None or young[1] >= old[0]:
        raise ValueError(f"young {young} must end below old {old}")
    domains = {"A": [r for r in records if in_age_range(r.age, young)],
               "B": [r for r in records if in_age_range(r.age, old)]}
    rng = random.Random(seed)
    if limit is not None:
        domains = {k: sorted(rng.sample(v, min(limit, len(v))), key=lambda r: r.path.name)
                   for k, v in domains.items()}
    out: dict[str, list[UTKFaceRecord]] = {}
    for domain, recs in domains.items():
        train_idx, test_idx = shuffled_split(len(recs), test_fraction, rng)
        out[f"train{domain}"] = [recs[i] for i in train_idx]
        out[f"test{domain}"] = [recs[i] for i in test_idx]
    return {k: out[k] for k in AGE_SPLIT_FOLDERS}


def write_split_file(path: str | Path, name: str, splits: dict[str, Iterable[str]], **about: Any) -> Path:
    """Write a named split file: JSON ``{"name", "about", "splits": {split: [file names, sorted]}}``.

    Args:
        path: the ``.json`` file (its folder is created).
        name: the split's name (e.g. ``"utkface_age"``).
        splits: split name -> file names (base names, not paths).
        about: how the split was made (seed, fractions, source), stored as ``about``.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"name": name, "about": about, "splits": {k: sorted(Path(n).name for n in v) for k, v in splits.items()}}
    path.write_text(json.dumps(body, indent=0) + "\n")
    return path


def read_split_file(path: str | Path) -> dict[str, Any]:
    """Read :func:`write_split_file`'s JSON.

    Raises:
        DatasetNotFoundError: no such file.
        ValueError: not a split file.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"split file not found: {path}", path=str(path))
    body = json.loads(path.read_text())
    if not isinstance(body, dict) or not isinstance(body.get("splits"), dict):
        raise ValueError(f"{path} is not a split file (expected {{'name', 'about', 'splits'}})")
    return body


def young_faces(split: str, folder: str | Path | None = None,
                split_file: str | Path = AGE_SPLIT_FILE) -> list[UTKFaceRecord]:
    """Domain A (ages :data:`AGE_YOUNG`) of the age split, by the named split file.

    ``"test"``: the records named in the file's ``testA`` (faces a translator trained on the default
    split never saw); ``"train"``: every other young record of ``folder``. Sorted by file name.

    Args:
        split: ``"train"`` or ``"test"``.
        folder: the UTKFace folder; default :func:`utkface_dir`.
        split_file: a :func:`write_split_file` file holding ``testA``; default :data:`AGE_SPLIT_FILE`.

    Raises:
        ValueError: unknown ``split``.
        DatasetNotFoundError: no UTKFace folder, no young faces in it, or a held-out name of the split file
            missing from the folder (another copy of the data: the split would not be the documented one).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    folder = Path(folder) if folder else utkface_dir()
    records, _ = scan_utkface(folder)
    young = [r for r in records if in_age_range(r.age, AGE_YOUNG)]
    if not young:
        raise DatasetNotFoundError(f"no UTKFace faces aged {AGE_YOUNG[0]}-{AGE_YOUNG[1]} in {folder}")
    held_out = set(read_split_file(split_file)["splits"]["testA"])
    missing = held_out - {r.path.name for r in young}
    if missing:
        raise DatasetNotFoundError(f"{len(missing)} held-out faces of {split_file} (e.g. {sorted(missing)[0]}) are "
                                   f"not young UTKFace faces in {folder}: another copy of the data")
    return [r for r in young if (r.path.name in held_out) == (split == "test")]


# --------------------------------------------------------------------------------------------------
# the CRC hold-out

def is_held_out(name: str | Path) -> bool:
    """Whether a file (by base name) belongs to the CRC hold-out: ``crc32(name) % 20 == 0``."""
    return zlib.crc32(Path(name).name.encode()) % HOLDOUT_MODULUS == 0


def crc_split(files: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """``(train, held_out)`` of ``files`` by :func:`is_held_out` on their names, order kept."""
    return [f for f in files if not is_held_out(f.name)], [f for f in files if is_held_out(f.name)]

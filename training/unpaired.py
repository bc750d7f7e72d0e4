"""The UTKFace young/old split written as CycleGAN's unpaired folders, and the ``"utkface"`` template.

The dataset code lives in the core data layer (:mod:`faceforge.data`): :class:`UnpairedImageFolder`
(:mod:`faceforge.data.unpaired`), UTKFace names and the age split (:mod:`faceforge.data.utkface`), image
helpers (:mod:`faceforge.data.images`); they are re-exported here for existing callers.

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
import os
import random
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from faceforge.data.images import IMAGE_SUFFIXES, list_images, resize_square
from faceforge.data.tensors import to_tensor, to_uint8
from faceforge.data.unpaired import DOMAIN_FOLDERS, UnpairedImageFolder
from faceforge.data.utkface import (AGE_OLD, AGE_SEED, AGE_TEST_FRACTION, AGE_YOUNG, UTKFACE_GENDERS, UTKFACE_PATTERN,
                                    UTKFACE_RACES, UTKFaceRecord, age_split, in_age_range, parse_utkface_name,
                                    scan_utkface, utkface_dir, write_split_file)
from faceforge.imaging import load_image, save_image

__all__ = ["DOMAIN_FOLDERS", "IMAGE_SUFFIXES", "UTKFACE_GENDERS", "UTKFACE_PATTERN", "UTKFACE_RACES",
           "UTKFaceRecord", "UnpairedImageFolder", "build_age_split", "in_age_range", "list_images",
           "measure_utkface_template", "parse_utkface_name", "resize_square", "scan_utkface", "to_tensor", "to_uint8",
           "utkface_dir"]


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


SPLIT_FILE_NAME = "utkface_age_split.json"
"""Named split file :func:`build_age_split` writes beside ``split.json``
(:func:`faceforge.data.utkface.write_split_file`: every drawn file name per folder)."""


def build_age_split(src: str | Path, dest: str | Path, young: tuple[int, int | None] = AGE_YOUNG,
                    old: tuple[int, int | None] = AGE_OLD, mode: str = "align", size: int = 256,
                    template: str = "utkface", test_fraction: float = AGE_TEST_FRACTION, seed: int = AGE_SEED,
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
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    age_split([], young, old, test_fraction, seed)  # validates ranges and fraction before anything is read
    dest = Path(dest)
    if (dest / "split.json").exists():
        raise FileExistsError(f"{dest} already holds a split (split.json); choose another --dest or delete it")
    records, malformed = scan_utkface(src)
    split = age_split(records, young, old, test_fraction, seed, limit)  # the one definition of the draw
    outside = len(records) - sum(1 for r in records if in_age_range(r.age, young) or in_age_range(r.age, old))

    aligner = None
    if mode == "align":
        from faceforge.faces.align import align_face, get_template
        from faceforge.faces.detect import FaceDetector

        tpl = get_template(template)
        det = detector or FaceDetector("short", num_threads=1)
        aligner = (det, tpl, align_face)

    counts = dict.fromkeys(DOMAIN_FOLDERS, 0)
    no_face: list[str] = []
    jobs = [(folder, rec) for domain in "AB" for folder in (f"train{domain}", f"test{domain}")
            for rec in split[folder]]  # the order the folders were always written in
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
    write_split_file(dest / SPLIT_FILE_NAME, "utkface_age", {k: [r.path.name for r in v] for k, v in split.items()},
                     definition="faceforge.data.utkface.age_split", young=list(young), old=list(old),
                     test_fraction=test_fraction, seed=seed, limit=limit,
                     note="the drawn assignment, before faces without a detection (mode align) were dropped")
    return report


def _main() -> None:  # pragma: no cover - thin CLI
    import inspect

    import click

    default = {k: p.default for k, p in inspect.signature(build_age_split).parameters.items()}  # defaults once

    @click.group()
    def cli() -> None:
        """Prepare unpaired CycleGAN data."""

    @cli.command("utkface-age")
    @click.option("--src", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="UTKFace folder [default: $FACEFORGE_DATA/utkface or ../shared/data/utkface].")
    @click.option("--dest", type=click.Path(file_okay=False, path_type=Path), required=True)
    @click.option("--mode", type=click.Choice(["align", "link", "copy"]), default=default["mode"], show_default=True)
    @click.option("--size", type=click.IntRange(16), default=default["size"], show_default=True)
    @click.option("--test-fraction", type=click.FloatRange(0, 1, max_open=True), default=default["test_fraction"],
                  show_default=True)
    @click.option("--seed", type=int, default=default["seed"], show_default=True)
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

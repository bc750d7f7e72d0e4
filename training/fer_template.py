"""Derive the "fer2013" face template: where BlazeFace puts the keypoints of FER2013's 48x48 faces.

The emotion model is trained on FER2013 crops, so faces from photos must be aligned to frame the face
the way those crops do. This script measures that framing with faceforge's own detector:

1. Sample ``--sample`` (2000) FER2013 train images uniformly at random (seed 0, all classes).
2. Convert gray to RGB, upsample the 48x48 face to 96x96 (bicubic) and pad it with replicated edge
   pixels to 192x192 (the full-range model's input: the face then fills half the frame, inside the
   model's scale range; the full-range model is the one ``FaceDetector("auto")`` uses on photos).
3. Run the full-range model; keep images whose best detection scores >= ``--min-score`` (0.5).
4. Normalize the keypoints to the 48x48 crop: ``(k - 48) / 96`` in [0, 1] of the crop side.
5. Per keypoint coordinate, the median over kept images; then symmetrize left/right (mirror the
   eyes about x = 0.5 and average, give both eyes the same y, put nose and mouth on x = 0.5), so the
   template has no handedness (horizontal flips are a standard augmentation).

For comparison it also reports the same medians from the short-range model on the image upsampled to
128x128 (no padding), which agree within about 0.02 of the crop side.

Usage::

    python -m training.fer_template [--data ../shared/data] [--sample 2000]

Prints the numbers (committed as constants in :mod:`faceforge.faces.align`) and a JSON summary.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import click
import cv2
import numpy as np

from faceforge.faces.detect import KEYPOINT_NAMES, FaceDetector

USED = (0, 1, 2, 3)  # right_eye, left_eye, nose_tip, mouth_center


def default_data_dir() -> Path:
    env = os.environ.get("FACEFORGE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def symmetrize(points: np.ndarray) -> np.ndarray:
    """Left/right symmetric version of ``(4, 2)`` eyes-nose-mouth points normalized to [0, 1]."""
    out = points.astype(np.float64).copy()
    eye_dx = ((1.0 - points[0, 0]) + points[1, 0]) / 2  # left eye x (viewer's right)
    eye_y = (points[0, 1] + points[1, 1]) / 2
    out[0] = (1.0 - eye_dx, eye_y)
    out[1] = (eye_dx, eye_y)
    out[2, 0] = 0.5
    out[3, 0] = 0.5
    return out


@click.command()
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="shared data folder (default: $FACEFORGE_DATA or <repo>/../shared/data)")
@click.option("--sample", type=click.IntRange(1), default=2000, show_default=True)
@click.option("--min-score", type=click.FloatRange(0, 1), default=0.5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def main(data_dir: Path | None, sample: int, min_score: float, seed: int) -> None:
    """Measure FER2013 keypoint positions and print the "fer2013" template."""
    root = (data_dir or default_data_dir()) / "fer2013" / "train"
    files = sorted(root.glob("*/*.jpg"))
    if not files:
        raise click.ClickException(f"no FER2013 train images under {root}")
    random.Random(seed).shuffle(files)
    files = files[:sample]
    full = FaceDetector("full", min_score=min_score, num_threads=1)
    short = FaceDetector("short", min_score=min_score, num_threads=1)
    kept_full, kept_short = [], []
    for path in files:
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if gray is None or gray.shape != (48, 48):
            continue
        rgb = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
        face96 = cv2.resize(rgb, (96, 96), interpolation=cv2.INTER_CUBIC)
        canvas = cv2.copyMakeBorder(face96, 48, 48, 48, 48, cv2.BORDER_REPLICATE)
        faces = full.detect(canvas)
        if faces:
            kept_full.append((faces[0].keypoints - 48.0) / 96.0)
        faces = short.detect(cv2.resize(rgb, (128, 128), interpolation=cv2.INTER_CUBIC))
        if faces:
            kept_short.append(faces[0].keypoints / 128.0)
    full_kp = np.asarray(kept_full)[:, USED]
    short_kp = np.asarray(kept_short)[:, USED]
    median = np.median(full_kp, axis=0)
    q1, q3 = np.percentile(full_kp, [25, 75], axis=0)
    template = symmetrize(median)
    summary = {
        "sample": len(files), "min_score": min_score, "seed": seed,
        "detected_full": len(kept_full), "detected_short": len(kept_short),
        "keypoints": [KEYPOINT_NAMES[i] for i in USED],
        "median_full": np.round(median.astype(float), 4).tolist(),
        "iqr_full": np.round((q3 - q1).astype(float), 4).tolist(),
        "median_short": np.round(np.median(short_kp, axis=0).astype(float), 4).tolist(),
        "template_symmetric": np.round(template, 4).tolist(),
    }
    click.echo(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

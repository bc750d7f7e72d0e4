"""Face screening of the virtual-model pipeline: precision and recall of "has a face" on real images.

The pipeline (:mod:`faceforge.virtual_model`) passes product photos without a face through untouched,
so the screen's errors matter both ways: a missed face keeps the real model's face (recall), a false
face gets a swapped face painted onto a handbag (precision). The labelled set, built from the shared
data (``$FACEFORGE_DATA``, default ``../shared/data``):

- **face** (positive): the 12 single and group portraits of ``photos/portraits``, the 50
  ``photos/portraits_256`` and ``--utkface`` (default 200) UTKFace chips drawn with a fixed seed.
- **no face** (negative): crops of the ``photos/portraits`` photos that show one person, taken away
  from that person's face: square crops of 96-320 px (seeded), kept only when they do not touch the
  face box grown 2x (so they show suits, hands, flags, curtains, chandeliers; never a face, by
  construction of single-person photos; ``kit_with_rose.jpg`` (two people) and ``obama_partial_face.jpg``
  (a face cut by the frame) are excluded).
- **drawn faces** (reported apart): the anime faces of ``cartoon/anime_faces`` (a shop's "model" is a
  person, so how often the screen fires on drawings is shown, not scored).

Writes ``<out>/face_screening.{json,md}``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import RESULTS_DIR, write_results

NAME = "face_screening"
NOT_FOR_BACKGROUND = {"kit_with_rose.jpg", "obama_partial_face.jpg"}
"""Portraits whose background crops could show a face: two people; a face cut by the frame (its box
does not bound the face: a first run drew a "background" crop with part of the face in it)."""
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def background_crops(rgb: np.ndarray, box: np.ndarray, n: int, rng: random.Random) -> list[np.ndarray]:
    """Up to ``n`` square crops (96-320 px) of ``rgb`` that stay clear of ``box`` grown 2x."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    cx, cy, bw, bh = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    gx0, gy0, gx1, gy1 = cx - bw, cy - bh, cx + bw, cy + bh
    crops = []
    for _ in range(n * 40):
        side = rng.randint(96, 320)
        if side >= min(h, w):
            continue
        ox, oy = rng.randint(0, w - side), rng.randint(0, h - side)
        if ox < gx1 and ox + side > gx0 and oy < gy1 and oy + side > gy0:
            continue
        crops.append(np.ascontiguousarray(rgb[oy:oy + side, ox:ox + side]))
        if len(crops) == n:
            break
    return crops


def run(utkface: int = 200, crops_per_photo: int = 12, seed: int = 0, out_dir: Path = RESULTS_DIR) -> dict[str, Any]:
    """Build the labelled set, screen it, write the results.

    Raises:
        FileNotFoundError: the shared data are absent.
    """
    from faceforge.faces.detect import FaceDetector
    from faceforge.imaging import load_image
    from faceforge.virtual_model import screen, screening_scores

    from faceforge.data.paths import data_root

    root = data_root()
    portraits = sorted(p for p in (root / "photos" / "portraits").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not portraits:
        raise FileNotFoundError(f"no shared photos under {root} (set FACEFORGE_DATA)")
    rng = random.Random(seed)
    detector = FaceDetector()
    items: list[tuple[str, str, np.ndarray, bool]] = []  # (group, name, image, has face)
    for p in portraits + sorted((root / "photos" / "portraits_256").glob("*")):
        items.append(("portraits", p.name, load_image(p), True))
    chips = sorted((root / "utkface").glob("*.jpg"))
    for p in rng.sample(chips, min(utkface, len(chips))):
        items.append(("utkface", p.name, load_image(p), True))
    for p in portraits:
        if p.name in NOT_FOR_BACKGROUND:
            continue
        rgb = load_image(p)
        faces = detector.detect(rgb)
        if len(faces) != 1:
            continue
        for i, crop in enumerate(background_crops(rgb, faces[0].box, crops_per_photo, rng)):
            items.append(("background", f"{p.stem}_crop{i}", crop, False))
    labels, preds, misses = [], [], []
    for group, name, rgb, label in items:
        found = bool(screen(detector, rgb))
        labels.append(label)
        preds.append(found)
        if found != label:
            misses.append({"group": group, "image": name, "label": "face" if label else "no face",
                           "screen": "face" if found else "no face"})
    per_group = {}
    for g in ("portraits", "utkface", "background"):
        idx = [i for i, it in enumerate(items) if it[0] == g]
        per_group[g] = {"images": len(idx), "flagged_face": int(sum(preds[i] for i in idx))}
    drawn = sorted((root / "cartoon" / "anime_faces").glob("*.jpg"))[:100]
    drawn_hits = sum(bool(screen(detector, load_image(p))) for p in drawn)
    doc = {"scores": screening_scores(labels, preds), "per_group": per_group, "misses": misses,
           "drawn_faces": {"images": len(drawn), "flagged_face": drawn_hits}, "seed": seed,
           "detector": "BlazeFace auto, min score 0.5"}
    write_results(doc, out_dir, NAME, markdown)
    return doc


def markdown(doc: dict[str, Any]) -> str:
    s = doc["scores"]
    lines = ["# Face screening (virtual-model pipeline)", "",
             f"Screen: {doc['detector']}. Labelled set: see benchmarks/face_screening.py.", "",
             "| precision | recall | TP | FP | FN | TN |", "|---:|---:|---:|---:|---:|---:|",
             f"| {s['precision']:.3f} | {s['recall']:.3f} | {s['tp']} | {s['fp']} | {s['fn']} | {s['tn']} |", "",
             "| set | images | flagged as face |", "|---|---:|---:|"]
    for g, v in doc["per_group"].items():
        lines.append(f"| {g} | {v['images']} | {v['flagged_face']} |")
    d = doc["drawn_faces"]
    lines.append(f"| anime faces (drawn; not scored) | {d['images']} | {d['flagged_face']} |")
    if doc["misses"]:
        lines += ["", "Misclassified:", ""] + [f"- {m['group']} `{m['image']}`: {m['label']}, screen said {m['screen']}"
                                              for m in doc["misses"]]
    return "\n".join(lines) + "\n"


def _main():
    import click

    @click.command("face-screening")
    @click.option("--utkface", type=click.IntRange(0), default=200, show_default=True, help="UTKFace chips as positives.")
    @click.option("--crops-per-photo", type=click.IntRange(1), default=12, show_default=True,
                  help="Background crops per single-person portrait (negatives).")
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR,
                  show_default=True)
    def main(utkface: int, crops_per_photo: int, seed: int, out_dir: Path) -> None:
        """Precision / recall of the virtual-model pipeline's "has a face" screen on real images."""
        try:
            doc = run(utkface, crops_per_photo, seed, out_dir)
        except FileNotFoundError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(json.dumps(doc["scores"]))

    return main


main = _main()

"""BlazeFace detections on the shared real photos: faces found and time per photo, annotated images.

Runs :class:`faceforge.faces.detect.FaceDetector` on every photo under ``<data>/photos``
(``portraits``, ``portraits_256``, ``groups``), writes

* ``benchmarks/results/detections.md``: one row per photo and model (resolution, faces, ms),
* ``benchmarks/results/detections/<folder>/<photo>.jpg``: the photo annotated by the ``auto`` model
  (git-ignored: derived from the shared data, never committed).

Times are single-threaded wall-clock milliseconds of ``detect`` (letterbox + inference + decoding
+ NMS; decoding the file excluded), the median of ``--repeat`` runs after one warm-up. This script
measures; it never asserts speed.

Usage::

    python -m benchmarks.detections [--data ../shared/data] [--models auto,short,full] [--repeat 3]
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import click

from benchmarks import RESULTS_DIR, parse_names
from faceforge.data.paths import data_root
from faceforge.faces.detect import FaceDetector
from faceforge.faces.draw import annotate
from faceforge.imaging import load_image, save_image

FOLDERS = ("portraits", "portraits_256", "groups")


@click.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="shared data folder (default: $FACEFORGE_DATA or <repo>/../shared/data)")
@click.option("--models", default="auto,short,full", show_default=True, help="comma-separated detector models")
@click.option("--repeat", type=click.IntRange(1), default=3, show_default=True, help="timed runs per photo")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="LiteRT threads")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR,
              show_default=True)
def main(data_dir: Path | None, models: str, repeat: int, threads: int, out_dir: Path) -> None:
    """Detect faces in every shared photo and write the table and annotated images."""
    root = (data_dir or data_root()) / "photos"
    if not root.is_dir():
        raise click.ClickException(f"no photos folder at {root} (set FACEFORGE_DATA or --data)")
    names = parse_names(models)
    detectors = {m: FaceDetector(m, num_threads=threads) for m in names}
    image_dir = out_dir / "detections"
    rows = []
    totals: dict[tuple[str, str], list[int]] = {}
    for folder in FOLDERS:
        for path in sorted(p for p in (root / folder).glob("*") if p.is_file()):
            rgb = load_image(path)
            h, w = rgb.shape[:2]
            for name, det in detectors.items():
                faces = det.detect(rgb)  # warm-up, and the result reported
                times = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    det.detect(rgb)
                    times.append((time.perf_counter() - t0) * 1e3)
                scores = ", ".join(f"{f.score:.2f}" for f in faces)
                rows.append((f"{folder}/{path.name}", f"{w}x{h}", name, len(faces), statistics.median(times), scores))
                totals.setdefault((folder, name), []).append(len(faces))
                if name == "auto" or (name == names[0] and "auto" not in detectors):
                    save_image(image_dir / folder / f"{path.stem}.jpg", annotate(rgb, faces), quality=85)
            click.echo(f"{folder}/{path.name}: " + ", ".join(
                f"{r[2]} {r[3]}" for r in rows if r[0] == f"{folder}/{path.name}"))

    lines = [
        "# Face detections on the shared photos",
        "",
        f"`python -m benchmarks.detections --models {','.join(names)} --repeat {repeat} --threads {threads}`; "
        f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, LiteRT {threads} thread(s). "
        "ms = median wall-clock of `FaceDetector.detect` over the runs (file decoding excluded). "
        "Annotated images (auto model) go to `benchmarks/results/detections/` (git-ignored).",
        "",
        "## Summary (faces found per folder)",
        "",
        "| folder | photos | " + " | ".join(f"{m}: total (photos with 0)" for m in names) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    for folder in FOLDERS:
        counts = {m: totals.get((folder, m), []) for m in names}
        n = len(next(iter(counts.values()), []))
        lines.append(f"| {folder} | {n} | " + " | ".join(
            f"{sum(c)} ({sum(1 for v in c if v == 0)})" for c in counts.values()) + " |")
    lines += ["", "## Per photo", "", "| photo | resolution | model | faces | ms | scores |",
              "| --- | --- | --- | ---: | ---: | --- |"]
    lines += [f"| {p} | {r} | {m} | {n} | {ms:.1f} | {s} |" for p, r, m, n, ms, s in rows]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "detections.md").write_text("\n".join(lines) + "\n")
    click.echo(f"wrote {out_dir / 'detections.md'} and {image_dir}/")


if __name__ == "__main__":
    main()

"""Benchmarks: scripts that measure and write ``benchmarks/results/*.md|json|png``; they never assert speed.

- :mod:`benchmarks.emotion_accuracy`  our mini-Xception vs the published peer on FER2013 test.
- :mod:`benchmarks.emotion_latency`   on-device style (LiteRT, ONNX Runtime) vs server round trip.
- :mod:`benchmarks.detections`        BlazeFace detections on the shared real photos.
- :mod:`benchmarks.translate_quality` age shift and identity of the CycleGAN translators.
- :mod:`benchmarks.frontalize_quality` PSNR/SSIM/identity per yaw bucket of a frontalizer; real-photo grid.
- :mod:`benchmarks.stylegan_latency`  StyleGAN2 generation latency/throughput by resolution and batch.
- :mod:`benchmarks.generator_latency` CycleGAN / pix2pix generators: on-device files vs server, 256 and 128.
- :mod:`benchmarks.jobs_roundtrip`    heavy-job API over HTTP: round trip per endpoint, concurrent clients.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = RESULTS_DIR.parents[1]


def display_path(path: str | Path) -> str:
    """``path`` as results files record it: relative to the repository (``data/...``) or to its parent
    (``../shared/data/...``), never an absolute path of the measuring machine; other paths: the name."""
    resolved = Path(path).resolve()
    as_given = Path(os.path.normpath(Path(path).absolute()))  # symlinks kept (e.g. ../shared a link)
    for candidate in (as_given, resolved):
        for base, prefix in ((REPO_ROOT, ""), (REPO_ROOT.parent, "../")):
            try:
                return prefix + candidate.relative_to(base).as_posix()
            except ValueError:
                continue
    return resolved.name


def parse_ints(text: str) -> list[int]:
    """``"1,4,16"`` -> ``[1, 4, 16]`` (empty items ignored).

    Raises:
        ValueError: an item is not an integer.
    """
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from None


def write_results(doc: dict[str, Any], out_dir: str | Path, name: str, markdown: Callable[[dict], str],
                  plot: Callable[[dict, Path], Any] | None = None) -> Path:
    """Write ``<out_dir>/<name>.json`` (``doc``), ``<name>.md`` (``markdown(doc)``) and, with ``plot``,
    ``<name>.png`` (``plot(doc, path)``); create ``out_dir``. Returns ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out_dir / f"{name}.md").write_text(markdown(doc))
    if plot is not None:
        plot(doc, out_dir / f"{name}.png")
    return out_dir

"""GPEN restoration latency per face on the CPU: PyTorch vs ONNX Runtime, and the ONNX parity (issue 13,
item 6).

Models (no trained weights ship, so most rows are random initialisations built here; latency does not
depend on the weights' values, parity barely does):

- ``faceforge-<S>``: faceforge's own configuration (:data:`faceforge.models.gpen.DEFAULT_CONFIG`: style 256,
  ``narrow`` 0.125, ``channel_multiplier`` 1) at S = 64, 128, 256, random weights (seed 0,
  ``noise_strength`` 0.5 so the encoder features are used);
- ``trained``: a ``faceforge train gpen`` run's ``G_ema.pt`` (``--trained PATH``; 64 px, 4,000 steps on
  CPU, the run measured in ``restore_quality``), when given;
- ``bfr256-<S>``: the published GPEN-BFR-256 configuration (style 512, ``narrow`` 0.5, multiplier 1, ~19 M
  parameters at 256) at S = 256 (and any other ``--published-sizes``), random weights: what a server
  with the official weights would run.

Each model is exported with :func:`export.gpen_onnx.export_gpen_onnx` (opset 18, dynamic batch,
batch-independent modulation), checked with :func:`export.gpen_onnx.gpen_parity` on ``--faces`` real
degraded faces (:func:`export.gpen_onnx.real_faces`: held-out UTKFace faces, mild/moderate/severe), then
timed: one face per call (batch 1, float32 NCHW already prepared: model time only, no alignment or
paste), ``--warmup`` untimed calls, then ``--repeats`` rounds that alternate PyTorch and ONNX Runtime
(so both see the same machine load), per thread count (``torch.set_num_threads`` / ORT
``intra_op_num_threads``). Reported: median and p90 milliseconds, and the 1-minute load average before
and after each row (the machine is shared: figures under load are pessimistic).

Threads on a shared machine: with libgomp's default wait policy, PyTorch's idle OpenMP threads spin after
every parallel region; when the cores are busy with other work, 2-thread PyTorch calls then take 10-40x
longer (measured here: 390 ms instead of 19 ms at 64 px, load average 4.3) and the spinning threads slow
ONNX Runtime in the same process too (48 vs 12 ms). ``OMP_WAIT_POLICY=PASSIVE`` (set before Python starts;
recorded in the results) avoids that; the committed figures say which policy they ran under.

Writes ``<out>/<name>.json|md``. Example::

    OMP_WAIT_POLICY=PASSIVE faceforge bench restore-latency --trained /tmp/runs/gpen/000/G_ema.pt
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from benchmarks import RESULTS_DIR, display_path, parse_ints, write_results

DEFAULT_NAME = "restore_latency"
BFR256_CONFIG = {"style_dim": 512, "n_mlp": 8, "channel_multiplier": 1, "narrow": 0.5}
"""The published GPEN-BFR-256 generator's configuration (yangxy/GPEN), any size."""


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"median_ms": round(float(np.median(a)), 3), "p90_ms": round(float(np.percentile(a, 90)), 3),
            "min_ms": round(float(a.min()), 3), "n": int(a.size)}


def time_model(model: torch.nn.Module, onnx_path: Path, face: np.ndarray, threads: int, repeats: int,
               warmup: int) -> dict[str, Any]:
    """Per-face latency of ``model`` (PyTorch) and ``onnx_path`` (ONNX Runtime) at ``threads`` threads.

    Args:
        face: float32 ``(1, 3, S, S)`` in [-1, 1].

    Returns:
        ``{"pytorch": stats, "onnxruntime": stats, "load_before", "load_after"}`` (stats: median, p90,
        min ms and n).
    """
    from faceforge.restore import OnnxGPEN

    torch.set_num_threads(threads)
    runner = OnnxGPEN(onnx_path, threads=threads)
    x = torch.from_numpy(face)
    before = _load()
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
            runner.run(face)
        pt, ox = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            pt.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            runner.run(face)
            ox.append((time.perf_counter() - t0) * 1e3)
    return {"pytorch": _stats(pt), "onnxruntime": _stats(ox), "load_before": before, "load_after": _load()}


def run(sizes: list[int], published_sizes: list[int], trained: Path | None, threads: list[int], repeats: int,
        warmup: int, faces: int, out_dir: Path, name: str = DEFAULT_NAME) -> dict[str, Any]:
    """Build, export, check and time every model (see the module docstring); write the results."""
    import onnxruntime

    from export.gpen_onnx import export_gpen_onnx, gpen_parity, random_gpen, real_faces
    from faceforge.restore import load_restorer

    models: list[tuple[str, str, Any]] = [(f"faceforge-{s}", "random (seed 0)", ("faceforge", s)) for s in sizes]
    if trained is not None:
        models.insert(1 if sizes else 0, ("trained", "trained", ("trained", 0)))
    models += [(f"bfr256-{s}", "random (seed 0)", ("bfr256", s)) for s in published_sizes]
    rows = []
    face_cache: dict[int, tuple[np.ndarray, str]] = {}
    with tempfile.TemporaryDirectory(prefix="ff_restore_latency_") as tmp:
        for label, weights, (kind, s) in models:
            if kind == "trained":
                model, _, meta = load_restorer(trained)
                s = int(model.size)
                weights = f"trained {Path(trained).name}" + (f", {meta['version']}" if meta.get("version") else "")
            else:
                model, _ = random_gpen(s, seed=0, config=BFR256_CONFIG if kind == "bfr256" else None)
            model.eval()
            params = sum(p.numel() for p in model.parameters())
            if s not in face_cache:
                face_cache[s] = real_faces(s, faces, seed=0)
            batch, described = face_cache[s]
            path = Path(tmp) / f"{label}.onnx"
            torch.set_num_threads(max(threads))
            info = export_gpen_onnx(model, path)
            parity = gpen_parity(model, path, batch, threads=max(threads), source=described)
            face = (batch[:1].transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0).copy()
            timings = {str(t): time_model(model, path, face, t, repeats, warmup) for t in threads}
            row = {"model": label, "size": s, "weights": weights, "params": params,
                   "onnx_mb": round(info["bytes"] / 1e6, 2),
                   "export_s": info["export_s"], "parity": {k: v for k, v in parity.__dict__.items() if k != "source"},
                   "latency": timings}
            rows.append(row)
            click.echo(_row_text(row))
    doc = {"benchmark": name, "date": time.strftime("%Y-%m-%d %H:%M"), "machine": platform.machine(),
           "cpus": os.cpu_count(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "repeats": repeats, "warmup": warmup,
           "parity_faces": faces,
           "parity_source": _generic(face_cache),
           "trained": display_path(trained) if trained else None, "rows": rows}
    write_results(doc, out_dir, name, markdown)
    return doc


def _generic(face_cache: dict[int, tuple[np.ndarray, str]]) -> str | None:
    """The parity faces' description with the side left general (each row uses its own)."""
    if not face_cache:
        return None
    side, (_, text) = next(iter(face_cache.items()))
    return text.replace(f"-> {side} px", "-> the row's side")


def _row_text(row: dict[str, Any]) -> str:
    p = row["parity"]
    parts = [f"{row['model']:>14} {row['params'] / 1e6:6.2f} M  parity {p['psnr_db']:.1f} dB "
             f"max {p['max_abs_diff']:.1e}"]
    for t, lat in row["latency"].items():
        parts.append(f"{t} thr: torch {lat['pytorch']['median_ms']:.1f} / ort {lat['onnxruntime']['median_ms']:.1f} ms "
                     f"(load {lat['load_before']}-{lat['load_after']})")
    return "  ".join(parts)


def markdown(doc: dict[str, Any]) -> str:
    """The Markdown table of :func:`run`'s document."""
    threads = list(doc["rows"][0]["latency"]) if doc["rows"] else []
    head = ["model", "side", "weights", "params (M)", "ONNX MB", "parity PSNR (dB)", "worst face (dB)",
            "max abs diff", "uint8 max diff"]
    for t in threads:
        head += [f"PyTorch {t} thr (ms)", f"ORT {t} thr (ms)", f"load avg {t} thr"]
    lines = [f"# GPEN restoration latency per face: PyTorch vs ONNX Runtime ({doc['date']})", "",
             f"CPU: {doc['machine']}, {doc['cpus']} cores **shared with other jobs** (1-min load average before-after "
             f"each row shown; figures under load are pessimistic); torch {doc['torch']}, onnxruntime "
             f"{doc['onnxruntime']}. Batch 1, model time only (no detection, alignment or paste), median of "
             f"{doc['repeats']} alternating rounds after {doc['warmup']} warm-up calls (p90 in the JSON). "
             f"OMP_WAIT_POLICY={doc.get('omp_wait_policy') or 'unset (libgomp default: threads spin after each '}"
             f"{'' if doc.get('omp_wait_policy') else 'parallel region)'}.", "",
             f"Parity: ONNX Runtime vs PyTorch (the restorer's fused modulation) on {doc['parity_faces']} faces: "
             f"{doc['parity_source']}; PSNR of the outputs clamped to [-1, 1] (data range 2), max abs diff of the "
             f"clamped outputs, max difference of the uint8 pixels pasted.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in doc["rows"]:
        p = r["parity"]
        cells = [r["model"], str(r["size"]), r["weights"], f"{r['params'] / 1e6:.2f}", f"{r['onnx_mb']:.1f}",
                 f"{p['psnr_db']:.1f}", f"{p['min_psnr_db_face']:.1f}", f"{p['max_abs_diff']:.1e}",
                 str(p["max_pixel_diff"])]
        for t in threads:
            lat = r["latency"][t]
            cells += [f"{lat['pytorch']['median_ms']:.1f}", f"{lat['onnxruntime']['median_ms']:.1f}",
                      f"{lat['load_before']}-{lat['load_after']}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Random weights are seeded initialisations built by the benchmark (faceforge ships no GPEN "
              "weights); `trained` is a CPU run's G_ema.pt (outside the tree). `bfr256-*` has the published "
              "GPEN-BFR-256 configuration, not its weights.", ""]
    return "\n".join(lines)


@click.command("restore-latency")
@click.option("--sizes", default="64,128,256", show_default=True, help="Sides of faceforge-configuration models.")
@click.option("--published-sizes", default="256", show_default=True,
              help="Sides of GPEN-BFR-256-configuration models ('' = none).")
@click.option("--trained", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="A trained GPEN checkpoint (G_ema.pt) to measure too.")
@click.option("--threads", default="1,2", show_default=True, help="Comma-separated thread counts.")
@click.option("--repeats", type=click.IntRange(1), default=10, show_default=True)
@click.option("--warmup", type=click.IntRange(0), default=2, show_default=True)
@click.option("--faces", type=click.IntRange(1), default=32, show_default=True, help="Real faces for the parity.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=RESULTS_DIR,
              show_default=True)
@click.option("--name", default=DEFAULT_NAME, show_default=True, help="Stem of the result files.")
def main(sizes: str, published_sizes: str, trained: Path | None, threads: str, repeats: int, warmup: int,
         faces: int, out_dir: Path, name: str) -> None:
    """GPEN per-face latency, PyTorch vs ONNX Runtime, with ONNX parity on real faces (needs UTKFace)."""
    from faceforge.errors import FaceforgeError

    try:
        run(parse_ints(sizes), parse_ints(published_sizes), trained, parse_ints(threads), repeats, warmup, faces,
            out_dir, name)
    except (FaceforgeError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None

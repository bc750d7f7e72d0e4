"""GPEN to ONNX for server runtimes, with parity against PyTorch on real faces (issue 13, item 6).

GPEN (Yang, Ren, Xie, Zhang, CVPR 2021; :mod:`faceforge.models.gpen`) is a server model: it is not a
phone file and never goes into ``mobile_assets/`` or its manifest. ``faceforge export gpen --formats onnx
--weights PATH --out DIR`` writes ``DIR/gpen_<S>.onnx`` and ``DIR/gpen_<S>.json`` (the parity report);
``faceforge restore --weights DIR/gpen_<S>.onnx`` (or ``FACEFORGE_GPEN_WEIGHTS``, which the server
reads) then runs it through ONNX Runtime (:class:`faceforge.restore.OnnxGPEN`).

What the export does:

- ``torch.onnx.export`` with the dynamo exporter, opset :data:`ONNX_OPSET` (18, as the phone exports;
  onnxruntime 1.32 runs up to opset 23), a dynamic batch dimension, one self-contained file.
- The modulated convolutions are exported in their batch-independent form (``fused_modconv=False``:
  activations scaled by the styles, one ordinary convolution, outputs scaled by the demodulation
  coefficients; StyleGAN2 paper section 2.2): the fused form is a grouped convolution with
  ``groups = N``, which ONNX's static ``group`` attribute cannot express for a dynamic batch. Both forms
  compute the same function up to float rounding; parity is measured against the PyTorch model as the
  restorer runs it (fused), so that rounding is part of the figures.
- GPEN has no random noise: its "noise inputs" are the encoder's own feature maps (concatenated, times
  the learned ``noise_strength``), so the graph is deterministic and has one input.
- ``metadata_props``: ``faceforge.model`` = ``gpen``, ``faceforge.size``, ``faceforge.config``
  (JSON), ``faceforge.meta`` (JSON: face template, version, weights provenance), input and output
  descriptions.

Parity (:func:`gpen_parity`): on ``N`` real faces: held-out UTKFace faces (the split of
:mod:`training.gpen`, never trained on) at the model's size, degraded with the fixed seeded severities
of :mod:`faceforge.degrade` (``mild``, ``moderate``, ``severe`` in turn), which is what the restorer is
fed. Figures: max and mean absolute difference of the raw float outputs, PSNR of ONNX Runtime's output
vs PyTorch's after clamping to [-1, 1] (data range 2; the same as pixel PSNR with range 255), and the
largest difference of the uint8 pixels the restorer would paste. The file is written to ``DIR`` only
when the bounds hold (:data:`DEFAULT_MIN_PSNR_DB`, :data:`DEFAULT_MAX_ABS_DIFF`); otherwise
:class:`~faceforge.errors.ParityError` and ``DIR`` is left as it was.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.base import require
from faceforge.errors import ParityError
from faceforge.models.gpen import DEFAULT_CONFIG, GPEN, GPENStyledConv
from faceforge.restore import ONNX_META_PREFIX, OnnxGPEN

log = logging.getLogger("faceforge.export")

ONNX_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "image", "restored"
DEFAULT_MIN_PSNR_DB = 60.0
"""Lowest allowed mean PSNR (dB) of ONNX Runtime's clamped output vs PyTorch's (data range 2)."""
DEFAULT_MAX_ABS_DIFF = 1e-3
"""Largest allowed absolute difference of the clamped outputs (in units of the [-1, 1] range)."""
SEVERITY_CYCLE = ("mild", "moderate", "severe")


def random_gpen(size: int, seed: int = 0, config: dict[str, Any] | None = None,
                noise_strength: float = 0.5) -> tuple[GPEN, dict[str, Any]]:
    """A seeded random GPEN for tests and benchmarks (no trained weights ship).

    ``noise_strength`` of every styled convolution is set to ``noise_strength`` (a fresh GPEN has 0 there,
    which switches the encoder features off and would leave the concatenated-noise path unexercised).

    Args:
        size: side, a power of two >= 16.
        seed: ``torch.manual_seed`` before construction.
        config: GPEN constructor arguments (default: faceforge's :data:`~faceforge.models.gpen.DEFAULT_CONFIG`
            with ``size`` replaced).

    Returns:
        ``(model in eval mode, config)``.
    """
    config = {**DEFAULT_CONFIG, **(config or {}), "size": int(size)}
    torch.manual_seed(seed)
    model = GPEN(**config).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, GPENStyledConv):
                m.noise_strength.fill_(noise_strength)
    return model, config


def export_gpen_onnx(model: GPEN, path: str | Path, metadata: dict[str, Any] | None = None,
                     opset: int = ONNX_OPSET) -> dict[str, Any]:
    """Write ``model`` as one self-contained ONNX file with a dynamic batch (see the module docstring).

    Args:
        model: a :class:`~faceforge.models.gpen.GPEN` (not modified: a copy is exported).
        path: the ``.onnx`` file to write.
        metadata: JSON-ready facts stored as ``faceforge.meta`` (face template, version, provenance).
        opset: ONNX opset (>= 17).

    Returns:
        Inspection facts: ``opset``, ``ir_version``, ``ops`` (op type -> count), ``bytes``, ``export_s``,
        ``input``/``output`` shapes (``-1`` = dynamic).

    Raises:
        MissingDependencyError: onnx / onnxscript not installed (``pip install -e '.[export]'``).
        ValueError: ``model`` is not a GPEN, or ``opset < 17``.
    """
    onnx = require("onnx")
    require("onnxscript")
    if not isinstance(model, GPEN):
        raise ValueError(f"export_gpen_onnx exports a GPEN, not a {type(model).__name__}")
    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = copy.deepcopy(model).cpu().eval()
    net.fused_modconv = False  # batch-independent modulation (see the module docstring)
    size = int(net.size)
    t0 = time.perf_counter()
    with torch.no_grad():
        program = torch.onnx.export(net, (torch.zeros(1, 3, size, size),), dynamo=True, opset_version=opset,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    proto = program.model_proto
    for node in proto.graph.node:  # exporter debug info (stack traces, FX names)
        del node.metadata_props[:]
        node.doc_string = ""
    proto.producer_name = "faceforge"
    proto.doc_string = "GPEN blind face restoration (Yang et al., CVPR 2021), exported by faceforge"
    proto.model_version = 1
    del proto.metadata_props[:]
    config = {"size": size, "style_dim": net.style_dim, "n_mlp": net.n_mlp,
              "channels": {str(k): v for k, v in net.channels.items()}}
    props = {"model": "gpen", "size": str(size), "config": json.dumps(config, sort_keys=True),
             "meta": json.dumps(metadata or {}, sort_keys=True),
             "input": f"{INPUT_NAME}: float32 (N, 3, {size}, {size}) NCHW RGB in [-1, 1] (p / 127.5 - 1), an "
                      f"aligned face",
             "output": f"{OUTPUT_NAME}: float32 (N, 3, {size}, {size}) NCHW RGB, ~[-1, 1], not clamped"}
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = ONNX_META_PREFIX + key, value
    onnx.checker.check_model(proto, full_check=True)
    onnx.save_model(proto, str(path), save_as_external_data=False)
    export_s = time.perf_counter() - t0
    loaded = onnx.load(str(path))
    used = max(o.version for o in loaded.opset_import if o.domain in ("", "ai.onnx"))

    def dims(value_info) -> list[int]:
        return [d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim]

    return {"opset": used, "ir_version": loaded.ir_version, "bytes": path.stat().st_size,
            "export_s": round(export_s, 2), "input": dims(loaded.graph.input[0]),
            "output": dims(loaded.graph.output[0]),
            "ops": dict(sorted(Counter(n.op_type for n in loaded.graph.node).items()))}


@dataclass
class GPENParity:
    """ONNX Runtime vs PyTorch on the same inputs (see the module docstring).

    Attributes:
        faces: number of faces compared.
        max_abs_diff_raw: largest absolute difference of the raw (unclamped) float outputs.
        mean_abs_diff_raw: mean absolute difference of the raw outputs.
        max_abs_diff: largest absolute difference after clamping to [-1, 1].
        psnr_db: mean over faces of the PSNR (dB, data range 2) of the clamped outputs; ``inf`` if equal.
        min_psnr_db_face: the worst face's PSNR.
        max_pixel_diff: largest difference of the uint8 pixels (``round((y + 1) 127.5)``), grey levels.
        pixels_differing: fraction of uint8 values that differ at all.
        source: where the faces came from.
        bounds: ``{"min_psnr_db", "max_abs_diff"}`` checked.
        passed: both bounds hold.
    """

    faces: int
    max_abs_diff_raw: float
    mean_abs_diff_raw: float
    max_abs_diff: float
    psnr_db: float
    min_psnr_db_face: float
    max_pixel_diff: int
    pixels_differing: float
    source: str = ""
    bounds: dict[str, float] = field(default_factory=dict)
    passed: bool = False


def _psnr(a: np.ndarray, b: np.ndarray, data_range: float = 2.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range ** 2 / mse)


@torch.inference_mode()
def gpen_parity(model: GPEN, onnx_path: str | Path, faces: np.ndarray, threads: int = 1, batch_size: int = 8,
                source: str = "", min_psnr_db: float = DEFAULT_MIN_PSNR_DB,
                max_abs_diff: float = DEFAULT_MAX_ABS_DIFF) -> GPENParity:
    """Compare the ONNX file run by ONNX Runtime with ``model`` run by PyTorch on ``faces``.

    Args:
        model: the PyTorch GPEN (run as the restorer runs it, with its own ``fused_modconv``).
        onnx_path: the exported file.
        faces: uint8 ``(N, S, S, 3)`` RGB aligned faces (S = the model's side), N >= 1.
        threads: ONNX Runtime intra-op threads.
        batch_size: faces per call (both runtimes).
        source: description of the faces, for the report.
        min_psnr_db, max_abs_diff: bounds (see :data:`DEFAULT_MIN_PSNR_DB`, :data:`DEFAULT_MAX_ABS_DIFF`).

    Returns:
        :class:`GPENParity`.

    Raises:
        ValueError: ``faces`` is not uint8 ``(N, S, S, 3)`` with S = the model's size.
    """
    faces = np.asarray(faces)
    s = int(model.size)
    if faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[1:] != (s, s, 3) or len(faces) == 0:
        raise ValueError(f"faces must be uint8 (N >= 1, {s}, {s}, 3), got {faces.dtype} {faces.shape}")
    runner = OnnxGPEN(onnx_path, threads=threads)
    model = model.eval()
    raw_max = raw_sum = clamp_max = 0.0
    psnrs, pix_max, pix_diff, count = [], 0, 0, 0
    for i in range(0, len(faces), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(faces[i:i + batch_size])).permute(0, 3, 1, 2).float() / 127.5 - 1
        ref = model(x).numpy()
        out = runner.run(x.numpy())
        d = np.abs(ref.astype(np.float64) - out)
        raw_max, raw_sum = max(raw_max, float(d.max())), raw_sum + float(d.sum())
        rc, oc = np.clip(ref, -1, 1), np.clip(out, -1, 1)
        clamp_max = max(clamp_max, float(np.abs(rc - oc).max()))
        psnrs += [_psnr(a, b) for a, b in zip(rc, oc)]
        pr = np.rint((rc + 1) * 127.5).astype(np.int16)
        po = np.rint((oc + 1) * 127.5).astype(np.int16)
        pix_max = max(pix_max, int(np.abs(pr - po).max()))
        pix_diff += int((pr != po).sum())
        count += pr.size
    finite = [p for p in psnrs if np.isfinite(p)]  # a face with identical outputs (inf) is left out of the mean
    mean_psnr = float(np.mean(finite)) if finite else float("inf")
    result = GPENParity(faces=len(faces), max_abs_diff_raw=raw_max, mean_abs_diff_raw=raw_sum / faces.size,
                        max_abs_diff=clamp_max, psnr_db=mean_psnr, min_psnr_db_face=float(min(psnrs)),
                        max_pixel_diff=pix_max, pixels_differing=pix_diff / count, source=source,
                        bounds={"min_psnr_db": min_psnr_db, "max_abs_diff": max_abs_diff})
    result.passed = result.psnr_db >= min_psnr_db and result.max_abs_diff <= max_abs_diff
    return result


def real_faces(size: int, n: int, seed: int = 0, data_root: str | Path | None = None) -> tuple[np.ndarray, str]:
    """``n`` degraded real faces at ``size``: the first held-out UTKFace faces by name (the split of
    :func:`faceforge.data.utkface.crc_split`, GPEN's), centre-cropped and resized
    (:func:`faceforge.data.images.load_faces`),
    degraded by :func:`faceforge.degrade.degrade_fixed` at ``mild``, ``moderate``, ``severe`` in turn
    (seed ``seed``, index i).

    Returns:
        ``(uint8 (n, size, size, 3), description)``.

    Raises:
        FileNotFoundError: no UTKFace folder (``$FACEFORGE_DATA/utkface``) or no held-out face in it.
    """
    from faceforge.data.images import list_images, load_faces
    from faceforge.data.paths import data_root as default_root
    from faceforge.data.utkface import crc_split as utkface_split
    from faceforge.degrade import degrade_fixed

    folder = Path(data_root or default_root()) / "utkface"
    if not folder.is_dir():
        raise FileNotFoundError(f"UTKFace faces not found: {folder} (set FACEFORGE_DATA, or --parity-source random)")
    _, test = utkface_split(list_images(folder))
    if not test:
        raise FileNotFoundError(f"{folder} has no held-out faces")
    test = test[:n]
    clean = load_faces(test, size)
    degraded = np.stack([degrade_fixed(c, SEVERITY_CYCLE[i % 3], seed, i)[0] for i, c in enumerate(clean)])
    return degraded, (f"{len(test)} held-out UTKFace faces (crc32(name) % 20 == 0, first by name), centre "
                      f"square -> {size} px, degraded mild/moderate/severe in turn (faceforge.degrade, seed {seed})")


def random_faces(size: int, n: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """Smooth seeded random images (tests only): uint8 ``(n, size, size, 3)`` and a description."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, max(2, size // 4), max(2, size // 4), 3), dtype=np.uint8)
    out = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_CUBIC) for im in small])
    return out, f"{n} smooth random images (seed {seed}; not faces: tests only)"


def load_for_export(weights: str, size: int | None = None, seed: int = 0) -> tuple[GPEN, dict[str, Any]]:
    """The GPEN to export and its provenance: ``"random"`` (seeded, :func:`random_gpen` at ``size``,
    default 64; tests and benchmarks), ``"default"`` (the configured weights: ``$FACEFORGE_GPEN_WEIGHTS``
    or the ``gpen.utkface64`` card) or a checkpoint path / run folder (faceforge or published layout).

    Raises:
        WeightsNotFoundError: no such weights (the message says how to provide them).
        CheckpointError: not a GPEN checkpoint.
        ValueError: ``size`` differs from the checkpoint's.
    """
    from faceforge.restore import load_restorer, resolve_weights

    if weights == "random":
        model, config = random_gpen(size or 64, seed)
        return model, {"weights": f"random initialisation (torch seed {seed}, noise_strength 0.5); NOT trained",
                       "config": config, "face_template": "utkface", "version": f"random{seed}"}
    path = resolve_weights(None if weights == "default" else weights)
    if path.suffix.lower() == ".onnx":
        raise ValueError(f"{path} is already an ONNX file; pass the PyTorch checkpoint it came from")
    model, template, meta = load_restorer(path)
    if size is not None and size != model.size:
        raise ValueError(f"--size {size} differs from the checkpoint's size {model.size} ({path})")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return model, {"weights": path.name, "weights_sha256": digest, "face_template": template.name,
                   "version": str(meta.get("version") or f"sha256:{digest[:12]}"),
                   "checkpoint_meta": {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))}}


def run_gpen_export(weights: str, out: str | Path, size: int | None = None, parity_source: str = "data",
                    parity_faces: int = 64, seed: int = 0, threads: int = 1,
                    min_psnr_db: float = DEFAULT_MIN_PSNR_DB, max_abs_diff: float = DEFAULT_MAX_ABS_DIFF,
                    command: str = "") -> dict[str, Any]:
    """Export GPEN to ``out/gpen_<S>.onnx``, check parity, write ``out/gpen_<S>.json``; all or nothing.

    Args:
        weights: see :func:`load_for_export`.
        out: output folder (created).
        size: side for ``"random"`` weights (a checkpoint's own size otherwise).
        parity_source: ``"data"`` (:func:`real_faces`) or ``"random"`` (:func:`random_faces`, tests only).
        parity_faces: faces compared.
        seed: seed of the random weights / degradations / random images.
        threads: ONNX Runtime threads during parity.
        min_psnr_db, max_abs_diff: parity bounds.
        command: the command line, recorded in the report.

    Returns:
        The report (also written as JSON): ``file``, ``bytes``, ``sha256``, ``inspection``, ``parity``
        (:class:`GPENParity` as a dict), ``provenance``, ``runtime`` versions, ``command``.

    Raises:
        ParityError: a bound missed (``out`` unchanged; the report is in ``extra["report"]``).
        FileNotFoundError: ``parity_source="data"`` without UTKFace.
        WeightsNotFoundError, CheckpointError, ValueError: see :func:`load_for_export`.
    """
    import onnxruntime

    if parity_source not in ("data", "random"):
        raise ValueError(f"parity_source must be 'data' or 'random', got {parity_source!r}")
    if parity_faces < 1:
        raise ValueError(f"parity_faces must be >= 1, got {parity_faces}")
    model, provenance = load_for_export(weights, size, seed)
    s = int(model.size)
    faces, described = (real_faces(s, parity_faces, seed) if parity_source == "data"
                        else random_faces(s, parity_faces, seed))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"gpen_{s}"
    with tempfile.TemporaryDirectory(dir=out, prefix=".gpen_export_") as tmp:
        staged = Path(tmp) / f"{name}.onnx"
        inspection = export_gpen_onnx(model, staged, metadata=provenance)
        parity = gpen_parity(model, staged, faces, threads=threads, source=described, min_psnr_db=min_psnr_db,
                             max_abs_diff=max_abs_diff)
        report = {"model": "gpen", "size": s, "file": f"{name}.onnx", "bytes": inspection["bytes"],
                  "sha256": hashlib.sha256(staged.read_bytes()).hexdigest(), "inspection": inspection,
                  "parity": asdict(parity), "provenance": provenance, "command": command,
                  "runtime": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                              "onnx_opset": inspection["opset"]}}
        if not parity.passed:
            raise ParityError(f"GPEN-{s} ONNX parity failed: PSNR {parity.psnr_db:.1f} dB (bound {min_psnr_db}), "
                              f"max |diff| {parity.max_abs_diff:.2e} (bound {max_abs_diff:g}); nothing written to "
                              f"{out}", report=report)
        shutil.move(str(staged), out / f"{name}.onnx")
    (out / f"{name}.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    log.info("gpen: wrote %s (%.1f MB), parity %.1f dB", out / f"{name}.onnx", report["bytes"] / 1e6, parity.psnr_db)
    return report


def summary(report: dict[str, Any]) -> str:
    """One-paragraph plain-text summary of :func:`run_gpen_export`'s report (for the CLI)."""
    p = report["parity"]
    return (f"gpen_{report['size']}.onnx  {report['bytes'] / 1e6:.1f} MB  opset {report['inspection']['opset']}  "
            f"parity on {p['faces']} faces: PSNR {p['psnr_db']:.1f} dB (worst face {p['min_psnr_db_face']:.1f}), "
            f"max |diff| {p['max_abs_diff']:.2e} (raw {p['max_abs_diff_raw']:.2e}), uint8 max diff "
            f"{p['max_pixel_diff']} ({100 * p['pixels_differing']:.3f} % differ)  "
            f"{'ok' if p['passed'] else 'FAILED'}")


def export_command(formats_text: str, weights: str, out: Path, out_is_default: bool, parity_faces: int | None,
                   parity_source: str, seed: int, threads: int, size: int | None,
                   bound_overrides: tuple[str, ...], command: str = "") -> None:
    """``faceforge export gpen ...``: the options of ``faceforge export`` read for GPEN (a server model).

    ``--formats`` must be ``onnx`` (or ``all``, which means onnx here); ``--out`` must be given (GPEN never
    goes into ``mobile_assets/``); ``parity_faces`` = faces compared (``--parity-set N``; ``None`` = 64);
    ``--bound`` takes
    ``onnx.min_psnr_db=V``; ``--size`` sizes ``--weights random``.

    Raises:
        click.UsageError: any other format, the default output folder, another bound.
        click.ClickException: missing weights or data, a parity failure (one line, figures included).
    """
    import click

    from faceforge.errors import FaceforgeError

    wanted = {f.strip() for f in formats_text.split(",") if f.strip()}
    if not wanted <= {"onnx", "all"}:
        raise click.UsageError(f"gpen is a server model: only --formats onnx is written, not {formats_text!r}")
    if out_is_default:
        raise click.UsageError("gpen is a server model and does not go into mobile_assets/: pass --out DIR "
                               "(e.g. --out exports/gpen)")
    min_psnr = DEFAULT_MIN_PSNR_DB
    for item in bound_overrides:
        key, _, value = item.partition("=")
        if key.strip() != "onnx.min_psnr_db":
            raise click.UsageError(f"{item!r}: for gpen only onnx.min_psnr_db=VALUE is a bound")
        try:
            min_psnr = float(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a number", param_hint="--bound") from None
    n = 64 if parity_faces is None else int(parity_faces)
    try:
        report = run_gpen_export(weights, out, size=size, parity_source=parity_source, parity_faces=n, seed=seed,
                                 threads=threads, min_psnr_db=min_psnr, command=command)
    except ParityError as exc:
        partial = exc.extra.get("report")
        if partial:
            click.echo(summary(partial), err=True)
        raise click.ClickException(exc.detail) from None
    except (FaceforgeError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(summary(report))
    click.echo(f"wrote {Path(out) / report['file']} and {Path(out) / (Path(report['file']).stem + '.json')}; run it "
               f"with faceforge restore --weights {Path(out) / report['file']} (or FACEFORGE_GPEN_WEIGHTS=that file)")

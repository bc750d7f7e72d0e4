"""Parity of exported files vs the PyTorch model, on real inputs, with per-format bounds.

Classifiers: top-1 agreement with PyTorch, accuracy of each against the labels, and the max/mean
absolute error of the softmax probabilities. Image-to-image models: PSNR of the file's output vs
PyTorch's (both mapped from the model's value range to [0, 255]; mean and worst image).

Files this machine can run are run through :mod:`faceforge.ondevice.runners` with the input/output records read back
from the file (so the layout and quantization the manifest states are exercised too). Core ML files
cannot run on Linux: their row's PyTorch proxy (the same fp16 cast / per-channel int8 weight rounding)
is measured instead, and the result says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from export.base import TensorInfo
from export.formats import ExportFormat, ParityBounds
from faceforge.errors import ParityError


NEAR_TIE_MARGIN = 0.1
"""Top-2 logit margin (PyTorch) below which an input counts as a near tie in the parity figures: about
one int8 output step of a classifier whose logits span ~[-13, 13] (26 / 255 = 0.10; the shipped
mini_xception's int8 output scale is 0.100)."""


@dataclass
class ParityResult:
    """Fidelity figures of one exported file (fractions in [0, 1]; accuracy drop in points).

    Attributes:
        format: format name.
        validation: ``"run"`` (the file itself ran) or ``"inspected (...)"`` (a PyTorch proxy ran).
        compared: what produced the figures, e.g. ``"LiteRT interpreter"`` or the proxy's description.
        images: number of inputs compared.
        top1_agreement: fraction of inputs with the same top-1 class as PyTorch (classifiers).
        accuracy: top-1 accuracy of the file (or proxy) vs the labels; ``None`` without labels.
        accuracy_pytorch: the same for the PyTorch model.
        accuracy_drop_points: ``100 * (accuracy_pytorch - accuracy)``.
        prob_max_abs_error: max absolute difference of softmax probabilities.
        prob_mean_abs_error: mean absolute difference of softmax probabilities.
        near_tie_fraction: fraction of inputs whose PyTorch top-2 logit margin is below
            :data:`NEAR_TIE_MARGIN` (about one int8 output step), where any rounding may flip top-1.
        top1_agreement_clear: top-1 agreement on the other inputs (margin >= :data:`NEAR_TIE_MARGIN`).
        psnr_db: image models: mean PSNR (dB) vs PyTorch; ``psnr_min_db`` the worst image.
        bounds: the bounds applied.
        passed: whether every bound holds.
        failures: one line per violated bound.
    """

    format: str
    validation: str
    compared: str
    images: int
    top1_agreement: float | None = None
    accuracy: float | None = None
    accuracy_pytorch: float | None = None
    accuracy_drop_points: float | None = None
    prob_max_abs_error: float | None = None
    prob_mean_abs_error: float | None = None
    near_tie_fraction: float | None = None
    top1_agreement_clear: float | None = None
    psnr_db: float | None = None
    psnr_min_db: float | None = None
    bounds: dict | None = None
    passed: bool = True
    failures: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready dict (``None`` fields dropped, floats rounded to 6 significant digits)."""
        out = {}
        for k, v in asdict(self).items():
            if v is None:
                continue
            if isinstance(v, float):
                v = float(f"{v:.6g}")
            if isinstance(v, tuple):
                v = list(v)
            out[k] = v
        return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(N, K)`` logits (float64 internally, float32 result)."""
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def torch_outputs(model: nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Run ``model`` on ``x`` ``(N, C, H, W)`` float32 in batches; returns float32 numpy outputs."""
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            outs.append(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size]))).float().numpy())
    return np.concatenate(outs)


def psnr(a: np.ndarray, b: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Per-image PSNR (dB) of ``(N, ...)`` arrays after mapping ``value_range`` to [0, 255].

    ``PSNR = 10 log10(255^2 / MSE)``; identical images give ``inf``.
    """
    lo, hi = value_range
    scale = 255.0 / (hi - lo)
    diff = (a.astype(np.float64) - b.astype(np.float64)) * scale
    mse = (diff ** 2).reshape(len(a), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(255.0 ** 2 / mse)


def compare(fmt: ExportFormat, reference: np.ndarray, outputs: np.ndarray, labels: np.ndarray | None,
            *, classifier: bool, value_range: tuple[float, float] = (-1.0, 1.0),
            bounds: ParityBounds | None = None, validation: str = "run", compared: str = "",
            output_values: str = "logits") -> ParityResult:
    """Compute the figures of ``outputs`` vs ``reference`` and check them against ``bounds``.

    Args:
        fmt: the format row (for its name and default bounds).
        reference: PyTorch outputs, ``(N, K)`` logits or ``(N, C, H, W)`` images.
        outputs: the file's (or proxy's) outputs, same shape.
        labels: ``(N,)`` int class ids, or ``None``.
        classifier: whether outputs are class logits.
        value_range: image models: output value range mapped to [0, 255] for PSNR.
        bounds: overrides ``fmt.bounds``.
        validation: ``"run"`` or ``fmt.validation``.
        compared: what ran.
        output_values: ``"logits"`` or ``"probabilities"`` (``outputs`` already softmax-ed).

    Returns:
        A :class:`ParityResult`; ``passed`` is False (with ``failures``) when a bound is violated.
    """
    if reference.shape != outputs.shape:
        raise ParityError(f"{fmt.name}: output shape {outputs.shape} differs from PyTorch {reference.shape}",
                          format=fmt.name)
    bounds = bounds or fmt.bounds
    res = ParityResult(fmt.name, validation, compared, len(reference), bounds=asdict(bounds))
    failures = []
    if not np.all(np.isfinite(outputs)):
        failures.append("non-finite outputs")
    if classifier:
        p_ref = softmax(reference)
        p_out = outputs.astype(np.float32) if output_values == "probabilities" else softmax(outputs)
        top_ref, top_out = reference.argmax(1), outputs.argmax(1)
        same = top_ref == top_out
        res.top1_agreement = float(same.mean())
        if reference.shape[1] > 1:
            top2 = np.sort(reference, axis=1)[:, -2:]
            clear = (top2[:, 1] - top2[:, 0]) >= NEAR_TIE_MARGIN
            res.near_tie_fraction = float(1 - clear.mean())
            res.top1_agreement_clear = float(same[clear].mean()) if clear.any() else None
        err = np.abs(p_ref - p_out)
        res.prob_max_abs_error, res.prob_mean_abs_error = float(err.max()), float(err.mean())
        if res.top1_agreement < bounds.min_top1_agreement:
            failures.append(f"top-1 agreement {100 * res.top1_agreement:.2f}% < "
                            f"{100 * bounds.min_top1_agreement:.2f}%")
        if labels is not None:
            res.accuracy = float((top_out == labels).mean())
            res.accuracy_pytorch = float((top_ref == labels).mean())
            res.accuracy_drop_points = 100 * (res.accuracy_pytorch - res.accuracy)
            if res.accuracy_drop_points > bounds.max_accuracy_drop:
                failures.append(f"accuracy {100 * res.accuracy:.2f}% is {res.accuracy_drop_points:.2f} points "
                                f"below PyTorch {100 * res.accuracy_pytorch:.2f}% (bound "
                                f"{bounds.max_accuracy_drop} points)")
    else:
        values = psnr(reference, outputs, value_range)
        finite = np.where(np.isinf(values), 200.0, values)  # identical images: cap for averaging
        res.psnr_db, res.psnr_min_db = float(finite.mean()), float(finite.min())
        if res.psnr_db < bounds.min_psnr_db:
            failures.append(f"PSNR {res.psnr_db:.1f} dB < {bounds.min_psnr_db} dB")
    res.failures, res.passed = tuple(failures), not failures
    return res


def measure(fmt: ExportFormat, path: Path | None, inp: TensorInfo | None, out: TensorInfo | None,
            model: nn.Module, x: np.ndarray, labels: np.ndarray | None, *,
            reference: np.ndarray | None = None, classifier: bool = True,
            value_range: tuple[float, float] = (-1.0, 1.0), threads: int = 1,
            bounds: ParityBounds | None = None, output_values: str = "logits") -> ParityResult:
    """Run one exported file (or its row's proxy) on ``x`` and compare it with PyTorch.

    Args:
        fmt: format row.
        path, inp, out: the file and its input/output records (unused for proxy formats).
        model: the PyTorch model (float32, eval).
        x: ``(N, C, H, W)`` float32 inputs in the model's range.
        labels: class ids or ``None``.
        reference: precomputed ``torch_outputs(model, x)`` (computed if ``None``).
        classifier, value_range, bounds, output_values: see :func:`compare`.
        threads: interpreter/runtime threads.

    Returns:
        The :class:`ParityResult` (not raised on failure; see :func:`enforce`).
    """
    if reference is None:
        reference = torch_outputs(model, x)
    if fmt.runs_on_linux:
        runner = fmt.runner(path, inp, out, threads)
        outputs = runner(x)
        what = {"onnx": "ONNX Runtime (CPU)", "onnx_fp16": "ONNX Runtime (CPU)"}.get(fmt.name, "LiteRT interpreter (CPU, XNNPACK)")
        return compare(fmt, reference, outputs, labels, classifier=classifier, value_range=value_range,
                       bounds=bounds, validation="run", compared=what, output_values=output_values)
    proxy = fmt.proxy(model)
    outputs = torch_outputs(proxy, x)
    doc = (fmt.proxy.__doc__ or "").strip().splitlines()
    return compare(fmt, reference, outputs, labels, classifier=classifier, value_range=value_range,
                   bounds=bounds, validation=fmt.validation,
                   compared=f"PyTorch proxy ({doc[0]})" if doc else "PyTorch proxy")


def enforce(results: list[ParityResult]) -> None:
    """Raise :class:`ParityError` listing every result outside its bounds (figures included)."""
    bad = [r for r in results if not r.passed]
    if bad:
        lines = "; ".join(f"{r.format}: {', '.join(r.failures)}" for r in bad)
        raise ParityError(f"parity check failed for {len(bad)} file(s): {lines}",
                          formats=[r.format for r in bad], figures=[r.to_dict() for r in bad])

"""Shared pieces of the exporter: what a backend receives, what it returns, and the one decorator.

Every backend is a function ``backend(job: ExportJob, path: Path) -> Artifact`` wrapped by
:func:`try_export`, which logs the time taken, the path and the size of the file written, and turns any
failure into an :class:`~faceforge.errors.ExportError` naming the model, the format and the cause
(the pattern of ultralytics' ``@try_export``, written anew here).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from torch import nn

from faceforge.errors import ExportError
from faceforge.models.registry import ModelSpec
from faceforge.ondevice.specs import TensorInfo  # noqa: F401  (re-exported: part of the exporter API)

log = logging.getLogger("faceforge.export")


@dataclass
class ExportJob:
    """Everything a backend needs to write one file.

    Attributes:
        model: the PyTorch model in eval mode on the CPU (NCHW float32 input, as registered).
        spec: its registry spec (input shape, colour, value range, labels).
        version: version string written into every file's metadata, e.g. ``"0.1.0+1a2b3c4d"``.
        metadata: key -> text pairs embedded in every file (labels, normalization, version...).
        calibration: representative inputs for static quantization, ``(N, C, H, W)`` float32 in the
            model's input range (NCHW, like ``model``), or ``None`` if not loaded (then a backend that
            needs it raises :class:`ExportError`).
        calibration_description: where the calibration data came from (for the manifest notes).
    """

    model: nn.Module
    spec: ModelSpec
    version: str
    metadata: dict[str, str]
    calibration: np.ndarray | None = None
    calibration_description: str = ""

    @property
    def sample_shape(self) -> tuple[int, int, int, int]:
        """Export-time input shape ``(1, C, H, W)`` (batch 1: one aligned face per call on the phone)."""
        return (1, *self.spec.input.shape)


@dataclass
class Artifact:
    """What a backend wrote.

    Attributes:
        format: format name (row of :data:`export.formats.FORMATS`).
        path: the file written.
        input: the model input as stored in the file.
        output: the model output as stored in the file.
        embedded_metadata: where and how the metadata sits in the file (``{"where": ..., "keys": [...]}``).
        inspection: facts checked by reading the converted program back (ops, dtypes), if any.
        notes: remarks the manifest should carry (e.g. why a library route was not used).
        output_values: what the output holds: ``"logits"``, ``"probabilities"`` (softmax inside the
            file) or ``"image"``.
    """

    format: str
    path: Path
    input: TensorInfo
    output: TensorInfo
    embedded_metadata: dict[str, Any] = field(default_factory=dict)
    inspection: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    output_values: str = "logits"


Backend = Callable[[ExportJob, Path], Artifact]


def try_export(fmt: str) -> Callable[[Backend], Backend]:
    """Decorate a backend: log time, path and size; re-raise failures as :class:`ExportError`.

    Args:
        fmt: the format name the backend writes, used in log lines and error messages.

    Returns:
        A decorator. The wrapped backend raises :class:`ExportError` (with ``format``, ``model`` and
        ``path`` in ``extra``) on any exception, including a missing output file; an ``ExportError``
        raised inside passes through unchanged.
    """

    def decorate(fn: Backend) -> Backend:
        @functools.wraps(fn)
        def wrapper(job: ExportJob, path: Path) -> Artifact:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            log.info("%s: exporting %s to %s", fmt, job.spec.name, path)
            t0 = time.perf_counter()
            try:
                artifact = fn(job, path)
                if not path.is_file():
                    raise ExportError(f"{fmt} backend returned without writing {path}")
            except ExportError as exc:
                exc.extra.setdefault("format", fmt)
                exc.extra.setdefault("model", job.spec.name)
                raise
            except Exception as exc:  # any toolchain failure: name it, keep the cause chained
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                raise ExportError(f"{fmt} export of {job.spec.name} failed after "
                                  f"{time.perf_counter() - t0:.1f} s: {type(exc).__name__}: {first}",
                                  format=fmt, model=job.spec.name, path=str(path)) from exc
            log.info("%s: wrote %s (%.1f KB) in %.1f s", fmt, path, path.stat().st_size / 1024,
                     time.perf_counter() - t0)
            return artifact

        wrapper.format_name = fmt  # type: ignore[attr-defined]
        return wrapper

    return decorate


def require(module: str, extra: str = "export"):
    """Import an optional dependency or raise :class:`~faceforge.errors.MissingDependencyError`.

    Args:
        module: dotted module name, e.g. ``"onnxruntime"``.
        extra: the ``pip install faceforge[extra]`` group that provides it.
    """
    import importlib

    from faceforge.errors import MissingDependencyError

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"{module} is needed for this export step ({exc}); install it with "
                                     f"pip install -e '.[{extra}]'") from None

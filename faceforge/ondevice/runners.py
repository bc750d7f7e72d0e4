"""On-device runners: PyTorch's input convention in, the file's runtime (LiteRT, ONNX Runtime) underneath.

A runner takes the PyTorch model's input — ``(N, C, H, W)`` float32 in the model's value range — and
returns the PyTorch output convention (``(N, K)`` scores or ``(N, C, H, W)`` images), float32. In
between, :class:`faceforge.runtime.LiteRTModel` / :class:`~faceforge.runtime.OnnxModel` (the code the
demo and the benchmarks use) quantize and dequantize with the file's own parameters; this module
transposes to the file's layout and first checks that the file matches the input/output record
(:class:`~faceforge.ondevice.specs.TensorInfo`, what the manifest states): shape, dtype, quantization.
Export parity (``export/parity.py``), the demo's on-device path and the benchmarks all run files
through these two functions.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from faceforge.errors import ExportError
from faceforge.ondevice.specs import TensorInfo

Runner = Callable[[np.ndarray], np.ndarray]


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """NCHW -> ``layout`` (``"NCHW"`` unchanged, ``"NHWC"`` transposed); arrays that are not 4-D unchanged."""
    if x.ndim == 4 and layout == "NHWC":
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x


def from_layout(y: np.ndarray, layout: str) -> np.ndarray:
    """``layout`` -> NCHW (inverse of :func:`to_layout`)."""
    if y.ndim == 4 and layout == "NHWC":
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2))
    return y


def _check(path: Path, what: str, record: TensorInfo, shape: list[int], dtype: str,
           quant: tuple[float, int] | None) -> None:
    rec_quant = (record.quantization["scale"], record.quantization["zero_point"]) if record.quantization else None
    same_quant = (rec_quant is None and quant is None) or (
        rec_quant is not None and quant is not None and math.isclose(rec_quant[0], quant[0], rel_tol=1e-6)
        and rec_quant[1] == quant[1])
    if list(shape) != list(record.shape) or dtype != record.dtype or not same_quant:
        raise ExportError(f"{path.name}: {what} is {dtype} {list(shape)} quantization={quant}; the record says "
                          f"{record.dtype} {record.shape} quantization={rec_quant}")


def tflite_runner(path: Path, inp: TensorInfo, out: TensorInfo, threads: int = 1) -> Runner:
    """LiteRT interpreter runner (one sample per invoke for batch-1 files).

    Raises:
        ExportError: the file's input/output tensors disagree with ``inp``/``out``.
    """
    from faceforge.runtime import LiteRTModel

    model = LiteRTModel(path, num_threads=threads)
    _check(path, "input", inp, list(model.input_shape), np.dtype(model.input["dtype"]).name,
           model.input_quantization)
    o = model.outputs[0]
    o_quant = (float(o["quantization"][0]), int(o["quantization"][1])) \
        if np.issubdtype(o["dtype"], np.integer) else None
    _check(path, "output", out, [int(d) for d in o["shape"]], np.dtype(o["dtype"]).name, o_quant)

    def run(x: np.ndarray) -> np.ndarray:
        return from_layout(model(to_layout(np.asarray(x, np.float32), inp.layout)), out.layout)

    return run


def onnx_runner(path: Path, inp: TensorInfo, out: TensorInfo, threads: int = 1,
                batch_size: int = 256) -> Runner:
    """ONNX Runtime (CPU) runner, batched by ``batch_size``."""
    from faceforge.runtime import OnnxModel

    model = OnnxModel(path, num_threads=threads)

    def run(x: np.ndarray) -> np.ndarray:
        x = to_layout(np.asarray(x, np.float32), inp.layout)
        return from_layout(np.concatenate([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]),
                           out.layout)

    return run

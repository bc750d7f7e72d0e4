"""Run exported model files the way an app does: LiteRT (``.tflite``) and ONNX Runtime (``.onnx``).

Used by the demo, the benchmarks and the export parity checks, so the three measure the same code.
Quantization parameters are read from the file itself (never assumed), so a full-integer int8 file
takes float input and returns float output here exactly as the manifest tells an app to do it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faceforge.errors import MissingDependencyError


class LiteRTModel:
    """A ``.tflite`` model on the LiteRT interpreter (``ai-edge-litert``, XNNPACK on CPU).

    ``ai-edge-litert`` is the maintained LiteRT interpreter package; ``tflite-runtime`` 2.14 is its
    unmaintained predecessor and fails to load with NumPy 2.

    Args:
        path: the ``.tflite`` file.
        num_threads: CPU threads of the interpreter (1 and 2 model a phone's big cores).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the interpreter rejects the file.
    """

    def __init__(self, path: str | Path, num_threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        self.path = path
        self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.outputs = self.interpreter.get_output_details()
        self._batch = int(self.input["shape"][0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Input shape of the file, batch included, in the file's layout (e.g. ``(1, 48, 48, 1)``)."""
        return tuple(int(d) for d in self.input["shape"])

    @property
    def input_quantization(self) -> tuple[float, int] | None:
        """``(scale, zero_point)`` of an integer input tensor, ``None`` for a float input."""
        scale, zero = self.input["quantization"]
        return (float(scale), int(zero)) if np.issubdtype(self.input["dtype"], np.integer) else None

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        q = self.input_quantization
        if q is None:
            return x.astype(self.input["dtype"], copy=False)
        info = np.iinfo(self.input["dtype"])
        return np.clip(np.round(x / q[0] + q[1]), info.min, info.max).astype(self.input["dtype"])

    def _dequantize(self, y: np.ndarray, detail: dict) -> np.ndarray:
        if np.issubdtype(y.dtype, np.integer):
            scale, zero = detail["quantization"]
            return (y.astype(np.float32) - zero) * np.float32(scale)
        return y.astype(np.float32, copy=False)

    def run_quantized(self, x: np.ndarray) -> list[np.ndarray]:
        """One invocation on a tensor already in the file's dtype and shape; raw outputs."""
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(o["index"]) for o in self.outputs]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run on float input ``x`` of shape ``(N, *input_shape[1:])`` float32, in the file's layout.

        The input is quantized with the file's own scale/zero point when it is integer, and the
        first output is dequantized. Batches larger than the file's batch size are run in a loop.

        Returns:
            First output, float32, batch dimension ``N``.
        """
        x = np.asarray(x, np.float32)
        if x.shape[1:] != self.input_shape[1:]:
            raise ValueError(f"input shape {x.shape} does not match the model's {self.input_shape}")
        outs = []
        for i in range(0, len(x), self._batch):
            chunk = x[i:i + self._batch]
            if len(chunk) < self._batch:  # pad the last chunk to the file's fixed batch size
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self._batch - len(chunk), 0)])
            y = self.run_quantized(self._quantize(chunk))[0]
            outs.append(self._dequantize(y, self.outputs[0])[: len(x) - i])
        return np.concatenate(outs)


class OnnxModel:
    """An ``.onnx`` model on ONNX Runtime's CPU provider.

    Args:
        path: the ``.onnx`` file.
        num_threads: intra-op threads.

    Raises:
        MissingDependencyError: ``onnxruntime`` is not installed.
        FileNotFoundError: ``path`` does not exist.
    """

    def __init__(self, path: str | Path, num_threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("onnxruntime is not installed: pip install -e '.[export]'") from None
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
        self.path = path
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    @property
    def input_shape(self) -> tuple:
        """Declared input shape (symbolic batch dimensions appear as strings)."""
        return tuple(self.session.get_inputs()[0].shape)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run on float32 ``x`` in the file's layout; returns the first output as float32."""
        return self.session.run(None, {self.input_name: np.asarray(x, np.float32)})[0].astype(np.float32)

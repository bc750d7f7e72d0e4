"""Reader (and a small writer) for dlib's binary serialization of DNN networks (``.dat`` files).

Only what the face-recognition ResNet needs is implemented: the primitive encodings of
``dlib/serialize.h``, dlib's tensors, and the layer records of the layers that network uses. The
facts below were read from dlib's source (github.com/davisking/dlib, ``dlib/serialize.h``,
``dlib/float_details.h``, ``dlib/cuda/tensor.h``, ``dlib/dnn/core.h``, ``dlib/dnn/layers.h``,
``dlib/dnn/input.h``, ``dlib/dnn/loss.h``) and checked against
``dlib_face_recognition_resnet_model_v1.dat``.

Primitive encodings (``dlib/serialize.h``):

- **integers** (``pack_int``): one control byte, then ``n`` little-endian magnitude bytes, where
  ``n = control & 0x0F`` (1..8) and ``control & 0x80`` is the sign (signed types only; the
  magnitude is stored, not two's complement). Bits ``0x70`` are always zero.
- **floating point** (``float_details``): two integers, the signed 64-bit **mantissa first**, then the
  16-bit exponent; value = ``mantissa * 2**exponent`` (exponents 32000 / 32001 / 32002 mean +inf /
  -inf / NaN). dlib's prose says "first the exponent", its code writes the mantissa first; the
  code (and the file) win.
- **bool**: one ASCII byte ``'1'`` or ``'0'``.
- **string**: an unsigned integer length, then the raw bytes.
- **tensor** (``tensor.h``): int version (2), four ``long long`` sizes ``(num_samples, k, nr,
  nc)``, then the values as raw little-endian IEEE float32 (not ``float_details``), row-major NCHW.
  An ``alias_tensor`` (a shape only) is int version (1) and the four sizes.

Network layout (``core.h``): ``serialize(add_loss_layer)`` writes its version, the loss record, then
its sub-network. Every ``add_layer`` writes its version, **then its sub-network, then its own layer
record** and a trailer of three bools and two (version 2: three) tensors; tag and skip layers write
a version and their sub-network only. So a file holds all wrapper versions first, outermost (next
to the loss) to innermost, then the input layer, then the layer records in *forward* order (input
side first); tags and skips leave no record, so the graph (which output an ``add_prev`` adds) is not
in the file and comes from the network definition (:func:`read_network` takes it as ``ops``).

Sources: D. E. King, "Dlib-ml: A Machine Learning Toolkit", JMLR 10, 2009; the dlib source files
named above (Boost Software License); only the format is reproduced here, no code.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceforge.errors import CheckpointError

__all__ = ["DlibReader", "DlibWriter", "Op", "DlibNetwork", "read_network", "write_network"]

_INF, _NINF, _NAN = 32000, 32001, 32002


class DlibReader:
    """Sequential reader of dlib's primitive encodings over an in-memory byte string.

    Every read names what it expects (``what``), so a short or malformed file raises
    :class:`~faceforge.errors.CheckpointError` saying what was expected, at which byte offset.

    Args:
        data: the file's bytes.
        source: a name for messages (usually the file path).
    """

    def __init__(self, data: bytes, source: str = "<bytes>") -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.source = source

    def error(self, message: str) -> CheckpointError:
        """A :class:`CheckpointError` naming the file and the current offset."""
        return CheckpointError(f"{self.source}: {message} (at byte {self.pos} of {len(self.data)}); "
                               "not a dlib DNN file of the expected network, or truncated",
                               path=self.source)

    def _take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.data):
            raise self.error(f"file ends while reading {what} ({n} bytes needed, "
                             f"{len(self.data) - self.pos} left): truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    @property
    def remaining(self) -> int:
        """Bytes not read yet."""
        return len(self.data) - self.pos

    def int(self, what: str, signed: bool = True) -> int:
        """One integer in dlib's variable-length encoding (``pack_int``)."""
        control = self._take(1, what)[0]
        size = control & 0x0F
        if control & 0x70 or not 1 <= size <= 8 or (control & 0x80 and not signed):
            self.pos -= 1
            raise self.error(f"bad integer control byte 0x{control:02x} for {what}")
        value = int.from_bytes(self._take(size, what), "little")
        return -value if control & 0x80 else value

    def uint(self, what: str) -> int:
        """An unsigned integer (``unsigned long``, ``size_t``)."""
        return self.int(what, signed=False)

    def float(self, what: str) -> float:
        """A ``float``/``double`` as dlib's ``float_details`` (mantissa, then exponent)."""
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise self.error(f"{what} is in dlib's old ASCII float format, which is not supported")
        mantissa = self.int(what + " (mantissa)")
        exponent = self.int(what + " (exponent)")
        if exponent == _INF:
            return math.inf
        if exponent == _NINF:
            return -math.inf
        if exponent == _NAN:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def bool(self, what: str) -> bool:
        """A bool (ASCII ``'1'`` / ``'0'``)."""
        byte = self._take(1, what)[0]
        if byte not in (0x30, 0x31):
            self.pos -= 1
            raise self.error(f"expected a bool ('0' or '1') for {what}, found byte 0x{byte:02x}")
        return byte == 0x31

    def string(self, what: str, max_len: int = 4096) -> str:
        """A string (length, then bytes); longer than ``max_len`` is treated as corruption."""
        start = self.pos
        n = self.uint(what + " (length)")
        if n > max_len:
            self.pos = start
            raise self.error(f"implausible length {n} for string {what}")
        raw = bytes(self._take(n, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            self.pos = start
            raise self.error(f"{what} is not an ASCII string") from None

    def expect_string(self, choices: tuple[str, ...], what: str) -> str:
        """A string that must be one of ``choices`` (dlib's layer version tags)."""
        start = self.pos
        try:
            got = self.string(what, max_len=64)
        except CheckpointError:
            self.pos = start
            raise self.error(f"expected {what} record {' or '.join(map(repr, choices))}") from None
        if got not in choices:
            self.pos = start
            raise self.error(f"expected {what} record {' or '.join(map(repr, choices))}, found {got!r}")
        return got

    def version(self, allowed: tuple[int, ...], what: str) -> int:
        """An int version that must be in ``allowed``."""
        start = self.pos
        v = self.int(what + " version")
        if v not in allowed:
            self.pos = start
            raise self.error(f"expected {what} version {' or '.join(map(str, allowed))}, found {v}")
        return v

    def shape(self, what: str) -> tuple[int, int, int, int]:
        """The four ``long long`` sizes of a tensor."""
        dims = tuple(self.int(f"{what} size") for _ in range(4))
        if any(d < 0 for d in dims):
            raise self.error(f"negative size {dims} for {what}")
        return dims  # type: ignore[return-value]

    def tensor(self, what: str) -> np.ndarray:
        """A tensor (version 2): float32 array of shape ``(num_samples, k, nr, nc)`` (a copy)."""
        self.version((2,), what + " tensor")
        dims = self.shape(what)
        count = int(np.prod(dims, dtype=np.int64))
        if count * 4 > self.remaining:
            raise self.error(f"file ends inside tensor {what} of shape {dims} ({count * 4} bytes needed, "
                             f"{self.remaining} left): truncated")
        values = np.frombuffer(self._take(count * 4, what), dtype="<f4").astype(np.float32)
        return values.reshape(dims)

    def alias_tensor(self, what: str) -> tuple[int, int, int, int]:
        """An ``alias_tensor`` (version 1): its shape ``(num_samples, k, nr, nc)``."""
        self.version((1,), what + " alias_tensor")
        return self.shape(what)


class DlibWriter:
    """Writes dlib's primitive encodings (the inverse of :class:`DlibReader`).

    Used by the tests to build small ``.dat`` files and by :func:`write_network`. Floats are
    encoded as dlib encodes a C++ ``float`` (24-bit mantissa, ``float_details::convert_from_T``).
    """

    def __init__(self) -> None:
        self.out = io.BytesIO()

    def getvalue(self) -> bytes:
        """The bytes written so far."""
        return self.out.getvalue()

    def int(self, value: int) -> None:
        value = int(value)
        magnitude = abs(value)
        raw = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
        if len(raw) > 8:
            raise ValueError(f"{value} does not fit dlib's 64-bit integer encoding")
        self.out.write(bytes([len(raw) | (0x80 if value < 0 else 0)]) + raw)

    def float(self, value: float, digits: int = 24) -> None:
        if math.isnan(value):
            mantissa, exponent = 0, _NAN
        elif math.isinf(value):
            mantissa, exponent = 0, _INF if value > 0 else _NINF
        else:
            frac, exp = math.frexp(float(np.float32(value)) if digits == 24 else float(value))
            mantissa, exponent = int(frac * (1 << digits)), exp - digits
            for _ in range(8):  # dlib shifts off zero low-order bytes
                if mantissa & 0xFF:
                    break
                mantissa >>= 8
                exponent += 8
        self.int(mantissa)
        self.int(exponent)

    def bool(self, value: bool) -> None:
        self.out.write(b"1" if value else b"0")

    def string(self, value: str) -> None:
        raw = value.encode("ascii")
        self.int(len(raw))
        self.out.write(raw)

    def tensor(self, array: np.ndarray | None) -> None:
        a = np.zeros((0, 0, 0, 0), np.float32) if array is None else np.asarray(array, np.float32)
        if a.ndim > 4:
            raise ValueError("a dlib tensor has at most 4 dimensions")
        dims = a.shape + (1,) * (4 - a.ndim) if a.ndim else (1, 1, 1, 1)
        self.int(2)
        for d in dims:
            self.int(d)
        self.out.write(a.astype("<f4").tobytes())

    def alias_tensor(self, dims: tuple[int, int, int, int]) -> None:
        self.int(1)
        for d in dims:
            self.int(d)


@dataclass(frozen=True)
class Op:
    """One layer of a dlib network definition, in forward order.

    ``kind`` is one of ``con``, ``affine``, ``relu``, ``max_pool``, ``avg_pool``, ``add_prev``,
    ``tag``, ``skip``, ``fc_no_bias``; ``args`` holds its template arguments:
    ``con``: ``(num_filters, size, stride)``; ``max_pool`` / ``avg_pool``: ``(size, stride)``
    (size 0 = the whole map, dlib's ``*_pool_everything``); ``add_prev`` / ``tag`` / ``skip``:
    ``(tag_id,)``; ``fc_no_bias``: ``(num_outputs,)``.
    """

    kind: str
    args: tuple[int, ...] = ()

    @property
    def is_wrapper_only(self) -> bool:
        """Tags and skips: a version in the file, no layer record."""
        return self.kind in ("tag", "skip")

    def default_padding(self) -> int:
        """dlib's default padding of con/pool layers: ``size // 2`` when the stride is 1, else 0."""
        size, stride = (self.args[1], self.args[2]) if self.kind == "con" else self.args
        return size // 2 if stride == 1 else 0


@dataclass
class DlibNetwork:
    """A parsed dlib network file.

    Attributes:
        loss: ``{"name", "margin", "distance_threshold"}`` of the ``loss_metric`` layer.
        input: ``{"name", "mean" (R, G, B floats), "size" (nr, nc)}``.
        layers: one record per non-tag/skip op, in forward order: ``{"op": Op, "name": version tag,
            ...}``; ``con`` records hold ``weight`` float32 ``(out, in, k, k)`` and ``bias``
            ``(out,)`` (or None) and ``padding``; ``affine``: ``gamma`` and ``beta`` ``(channels,)``;
            ``fc_no_bias``: ``weight`` float32 ``(num_inputs, num_outputs)`` (dlib's layout:
            ``y = x @ weight``); pools: ``padding``.
        wrapper_versions: the versions of the ``add_layer``/tag/skip wrappers, outermost first.
    """

    loss: dict[str, Any]
    input: dict[str, Any]
    layers: list[dict[str, Any]] = field(default_factory=list)
    wrapper_versions: list[int] = field(default_factory=list)


def _read_layer(r: DlibReader, op: Op, index: int, in_channels: int | None) -> dict[str, Any]:
    what = f"layer {index} ({op.kind}{list(op.args) if op.args else ''})"
    if op.kind == "con":
        name = r.expect_string(("con_4", "con_5", "con_6"), what)
        params = r.tensor(what + " params")
        num_filters = r.int(what + " num_filters")
        nr, nc, sy, sx = (r.int(what + " " + k) for k in ("nr", "nc", "stride_y", "stride_x"))
        py, px = r.int(what + " padding_y"), r.int(what + " padding_x")
        filters = r.alias_tensor(what + " filters")
        biases = r.alias_tensor(what + " biases")
        for k in ("learning_rate_multiplier", "weight_decay_multiplier", "bias_learning_rate_multiplier",
                  "bias_weight_decay_multiplier"):
            r.float(f"{what} {k}")
        use_bias = r.bool(what + " use_bias") if name in ("con_5", "con_6") else True
        use_relu = r.bool(what + " use_relu") if name == "con_6" else False
        n, size, stride = op.args
        expect_in = filters[1] if in_channels is None else in_channels
        if (num_filters, nr, nc, sy, sx) != (n, size, size, stride, stride) or \
                filters != (n, expect_in, size, size) or (py, px) != (op.default_padding(),) * 2:
            raise r.error(f"{what}: the file has con {num_filters} filters {nr}x{nc} stride {sy}x{sx} "
                          f"padding {py}x{px} on {filters[1]} channels, the network expects {n} filters "
                          f"{size}x{size} stride {stride} padding {op.default_padding()} on {expect_in}")
        if use_relu:
            raise r.error(f"{what}: con with a fused relu is not supported")
        n_w = int(np.prod(filters))
        n_b = n if use_bias else 0
        if params.size != n_w + n_b or (use_bias and biases[:2] != (1, n)):
            raise r.error(f"{what}: {params.size} parameters, expected {n_w} weights + {n_b} biases")
        flat = params.reshape(-1)
        return {"op": op, "name": name, "weight": flat[:n_w].reshape(filters), "padding": py,
                "bias": flat[n_w:].copy() if use_bias else None}
    if op.kind == "affine":
        name = r.expect_string(("affine_", "affine_2"), what)
        params = r.tensor(what + " params")
        gamma, beta = r.alias_tensor(what + " gamma"), r.alias_tensor(what + " beta")
        mode = r.int(what + " mode")
        disabled = r.bool(what + " disabled") if name == "affine_2" else False
        c = in_channels
        if mode != 0 or gamma != (1, c, 1, 1) or beta != gamma or params.size != 2 * c or disabled:
            raise r.error(f"{what}: expected a per-channel (CONV_MODE) affine over {c} channels, found mode "
                          f"{mode}, gamma {gamma}, {params.size} parameters, disabled={disabled}")
        flat = params.reshape(-1)
        return {"op": op, "name": name, "gamma": flat[:c].copy(), "beta": flat[c:].copy()}
    if op.kind == "relu":
        name = r.expect_string(("relu_", "relu_2"), what)
        if name == "relu_2" and r.bool(what + " disabled"):
            raise r.error(f"{what}: disabled relu layers are not supported")
        return {"op": op, "name": name}
    if op.kind in ("max_pool", "avg_pool"):
        name = r.expect_string((op.kind + "_2",), what)
        nr, nc, sy, sx, py, px = (r.int(f"{what} {k}") for k in
                                  ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"))
        size, stride = op.args
        if (nr, nc, sy, sx, py, px) != (size, size, stride, stride) + (op.default_padding(),) * 2:
            raise r.error(f"{what}: the file has {op.kind} {nr}x{nc} stride {sy}x{sx} padding {py}x{px}, "
                          f"the network expects {size}x{size} stride {stride} padding {op.default_padding()}")
        return {"op": op, "name": name, "padding": py}
    if op.kind == "add_prev":
        return {"op": op, "name": r.expect_string(("add_prev_",), what)}
    if op.kind == "fc_no_bias":
        name = r.expect_string(("fc_2", "fc_3"), what)
        num_outputs, num_inputs = r.uint(what + " num_outputs"), r.uint(what + " num_inputs")
        params = r.tensor(what + " params")
        weights = r.alias_tensor(what + " weights")
        r.alias_tensor(what + " biases")
        bias_mode = r.int(what + " bias_mode")
        for k in ("learning_rate_multiplier", "weight_decay_multiplier", "bias_learning_rate_multiplier",
                  "bias_weight_decay_multiplier"):
            r.float(f"{what} {k}")
        if name == "fc_3":
            r.bool(what + " use_bias")
        expect = (in_channels, op.args[0])
        if bias_mode != 1 or (num_inputs, num_outputs) != expect or weights[:2] != expect or \
                params.size != expect[0] * expect[1]:
            raise r.error(f"{what}: the file has fc {num_inputs}->{num_outputs} (bias_mode {bias_mode}, "
                          f"{params.size} parameters), the network expects fc_no_bias {expect[0]}->{expect[1]}")
        return {"op": op, "name": name, "weight": params.reshape(expect).copy()}
    raise ValueError(f"unsupported op kind {op.kind!r}")


def _channels_after(op: Op, channels: int, stack: dict[int, int]) -> int:
    """Channel count after ``op`` (tracks tags for add_prev / skip)."""
    if op.kind == "con":
        return op.args[0]
    if op.kind == "tag":
        stack[op.args[0]] = channels
    if op.kind == "skip":
        return stack[op.args[0]]
    if op.kind == "add_prev":
        return max(channels, stack[op.args[0]])
    if op.kind == "fc_no_bias":
        return op.args[0]
    return channels


def read_network(source: str | Path | bytes, ops: list[Op]) -> DlibNetwork:
    """Parse a dlib ``loss_metric`` network file whose definition (forward order, after the input
    layer ``input_rgb_image_sized``) is ``ops``.

    Args:
        source: a path, or the file's bytes.
        ops: the layers from the input side to the fc layer (see :class:`Op`); the first must be a
            ``con`` (dlib puts the input layer inside the first layer's ``add_layer``).

    Returns:
        The parsed :class:`DlibNetwork` (weights as float32 numpy arrays).

    Raises:
        CheckpointError: the file is truncated, has trailing bytes, or does not hold this network
            (the message names the record expected and the byte offset).
        FileNotFoundError: the path does not exist.
    """
    if isinstance(source, (str, Path)):
        data, name = Path(source).read_bytes(), str(source)
    else:
        data, name = bytes(source), "<bytes>"
    if not ops or ops[0].kind != "con":
        raise ValueError("ops must start with the con layer that sits on the input layer")
    r = DlibReader(data, name)
    r.version((1,), "add_loss_layer")
    loss_name = r.expect_string(("loss_metric_", "loss_metric_2"), "loss")
    loss = {"name": loss_name, "margin": 0.1, "distance_threshold": 0.75}  # loss_metric_ defaults (loss.h)
    if loss_name == "loss_metric_2":
        loss.update(margin=r.float("loss margin"), distance_threshold=r.float("loss distance threshold"))
    versions = []
    for depth, op in enumerate(reversed(ops)):
        innermost = depth == len(ops) - 1
        allowed = (1,) if op.is_wrapper_only else ((2, 3) if innermost else (1, 2))
        versions.append(r.version(allowed, f"wrapper {depth} ({op.kind}) add_layer"))
    input_name = r.expect_string(("input_rgb_image_sized",), "input layer")
    mean = tuple(r.float(f"input mean {c}") for c in "RGB")
    size = (r.uint("input nr"), r.uint("input nc"))
    net = DlibNetwork(loss=loss, input={"name": input_name, "mean": mean, "size": size},
                      wrapper_versions=versions)
    channels, tags = 3, {}
    for i, op in enumerate(ops):
        version = versions[len(ops) - 1 - i]
        if not op.is_wrapper_only:
            net.layers.append(_read_layer(r, op, i, channels))  # (the global pool keeps the channels)
            what = f"layer {i} ({op.kind}) add_layer"
            for flag in ("this_layer_setup_called", "gradient_input_is_stale",
                         "get_output_and_gradient_input_disabled"):
                r.bool(f"{what} {flag}")
            r.tensor(what + " x_grad")
            r.tensor(what + " cached_output")
            if i == 0:
                r.tensor(what + " grad_final")
                if version >= 3:
                    r.uint(what + " sample_expansion_factor")
            elif version == 2:
                r.tensor(what + " params_grad")
        channels = _channels_after(op, channels, tags)
    if r.remaining:
        raise r.error(f"{r.remaining} unexpected bytes after the last layer")
    return net


def write_network(net: DlibNetwork, ops: list[Op]) -> bytes:
    """Serialize ``net`` (as :func:`read_network` returns it) in dlib's format, as current dlib writes
    a ``loss_metric`` network: the inverse of :func:`read_network` for the same ``ops``.

    Used by the tests to build ``.dat`` files without dlib. Layer records use the newest versions
    dlib writes (``con_6``, ``affine_2``, ``relu_2``, ``fc_3``; ``add_layer`` version 2 / 3).
    """
    w = DlibWriter()
    w.int(1)
    w.string("loss_metric_2")
    w.float(net.loss["margin"])
    w.float(net.loss["distance_threshold"])
    for depth, op in enumerate(reversed(ops)):
        w.int(1 if op.is_wrapper_only else (3 if depth == len(ops) - 1 else 2))
    w.string("input_rgb_image_sized")
    for m in net.input["mean"]:
        w.float(m)
    for s in net.input["size"]:
        w.int(s)
    records = iter(net.layers)
    for i, op in enumerate(ops):
        if op.is_wrapper_only:
            continue
        rec = next(records)
        if op.kind == "con":
            weight, bias = rec["weight"], rec["bias"]
            w.string("con_6")
            w.tensor(np.concatenate([weight.reshape(-1), bias if bias is not None else []])[:, None, None, None])
            n, size, stride = op.args
            for v in (n, size, size, stride, stride, op.default_padding(), op.default_padding()):
                w.int(v)
            w.alias_tensor(weight.shape)
            w.alias_tensor((1, n, 1, 1) if bias is not None else (0, 0, 0, 0))
            for v in (1.0, 1.0, 1.0, 0.0):
                w.float(v)
            w.bool(bias is not None)
            w.bool(False)
        elif op.kind == "affine":
            c = rec["gamma"].size
            w.string("affine_2")
            w.tensor(np.concatenate([rec["gamma"], rec["beta"]])[:, None, None, None])
            w.alias_tensor((1, c, 1, 1))
            w.alias_tensor((1, c, 1, 1))
            w.int(0)
            w.bool(False)
        elif op.kind == "relu":
            w.string("relu_2")
            w.bool(False)
        elif op.kind in ("max_pool", "avg_pool"):
            w.string(op.kind + "_2")
            size, stride = op.args
            for v in (size, size, stride, stride, op.default_padding(), op.default_padding()):
                w.int(v)
        elif op.kind == "add_prev":
            w.string("add_prev_")
        elif op.kind == "fc_no_bias":
            weight = rec["weight"]
            w.string("fc_3")
            w.int(weight.shape[1])
            w.int(weight.shape[0])
            w.tensor(weight.reshape(-1)[:, None, None, None])
            w.alias_tensor((weight.shape[0], weight.shape[1], 1, 1))
            w.alias_tensor((0, 0, 0, 0))
            w.int(1)
            for v in (1.0, 1.0, 1.0, 0.0):
                w.float(v)
            w.bool(False)
        else:
            raise ValueError(f"unsupported op kind {op.kind!r}")
        w.bool(True)
        w.bool(True)
        w.bool(False)
        w.tensor(None)
        w.tensor(None)
        w.tensor(None)  # params_grad (version 2) or grad_final (the input-side layer)
        if i == 0:
            w.int(1)  # sample_expansion_factor (version 3)
    return w.getvalue()


"""Per-layer int8 error: which layers cost the most when a model is quantized.

When a full-integer int8 file misses its PSNR bound, the question is *where* the error comes from.
:func:`layer_errors` answers it on the PyTorch side, one layer at a time, with simulated ("fake")
quantization:

1. Copy the model and fold BatchNorm into the convolutions (as the converters do).
2. Run the calibration inputs once and record each candidate tensor's min and max.
3. For each layer alone, quantize (a) its weights to int8 per output channel (symmetric, as
   litert-torch's PT2E quantizer and Core ML's ``linear_symmetric`` do), (b) its output tensor to int8
   per tensor (affine, ``scale = (max - min) / 255`` from step 2, the range always including 0), and
   (c) both; run the parity inputs and measure the model output's PSNR against the float model, plus
   the layer's own output SQNR.
4. Also quantize everything at once: a rough stand-in for the whole int8 file.

Candidate tensors are the outputs of leaf modules that compute something (convolutions, linear
layers, activations, normalizations left unfolded, bilinear resizing) and of custom modules whose
``forward`` does arithmetic of its own (e.g. a residual block's add). A convolution whose output goes
straight into a ReLU (siblings in an ``nn.Sequential``, folded BatchNorm in between) is not quantized
separately: converters fuse the pair and only the ReLU output is an int8 tensor. Padding, nearest
resizing, identity and dropout are skipped (exact in int8: they reuse their input's parameters).

It is a diagnosis, not a replica of the file: observers here are min/max (PT2E uses histograms),
ops a converter splits or merges differently are not modelled, and the errors of separate layers do
not add up exactly. It is the approach of PyTorch's Numeric Suite (comparing float and quantized
intermediate outputs) and of TFLite's QuantizationDebugger (per-layer error statistics), written anew
for faceforge's models. Use it to rank layers, then fix the worst (keep it in float, change its
activation or normalization, clip its range) and re-export to confirm.

Example::

    from export.diagnose import layer_errors, format_report
    report = layer_errors(model, calib_x, parity_x)
    print(format_report(report, top=8))
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from torch import nn

from export.parity import psnr

WEIGHTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
EXACT = (nn.Identity, nn.Dropout, nn.ReflectionPad2d, nn.ReplicationPad2d, nn.ZeroPad2d, nn.ConstantPad2d,
         nn.Flatten)
"""Modules whose int8 version is exact (no new quantization parameters): never quantized here."""
FIXED_RANGES = {nn.Tanh: (-1.0, 1.0), nn.Sigmoid: (0.0, 1.0)}
"""Output ranges TFLite's int8 kernels fix regardless of the data (TANH: scale 1/128, zero point 0;
LOGISTIC: scale 1/256, zero point -128); used instead of the observed range."""


@dataclass
class LayerError:
    """Quantization error of one layer, quantized alone (the rest of the model in float).

    Attributes:
        name: qualified module name (``model.named_modules()``).
        kind: module class name.
        out_min, out_max: the output range observed on the calibration inputs.
        act_scale: int8 step of the output, ``(max - min) / 255``.
        psnr_weights_db: model-output PSNR (dB) with only this layer's weights int8 (``None``: no weights).
        psnr_activation_db: the same with only this layer's output int8 (``None``: fused into a ReLU).
        psnr_both_db: weights and output int8.
        sqnr_db: the layer's own output: signal power over quantization-error power (dB), both
            quantized, on float inputs.
    """

    name: str
    kind: str
    out_min: float
    out_max: float
    act_scale: float
    psnr_weights_db: float | None
    psnr_activation_db: float | None
    psnr_both_db: float
    sqnr_db: float

    @property
    def worst_db(self) -> float:
        """The lowest of this layer's PSNR figures."""
        return min(v for v in (self.psnr_weights_db, self.psnr_activation_db, self.psnr_both_db) if v is not None)


@dataclass
class DiagnoseReport:
    """What :func:`layer_errors` found.

    Attributes:
        all_int8_psnr_db: model-output PSNR with every candidate quantized at once.
        weights_only_psnr_db: every weight int8, activations float.
        layers: one entry per candidate, worst first (lowest ``worst_db``).
        images: number of parity inputs.
        value_range: output range mapped to [0, 255] for PSNR.
    """

    all_int8_psnr_db: float
    weights_only_psnr_db: float
    layers: list[LayerError] = field(default_factory=list)
    images: int = 0
    value_range: tuple[float, float] = (-1.0, 1.0)


def _fake_quant(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Per-tensor affine int8 round trip of ``x`` with range ``[min(lo, 0), max(hi, 0)]``."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-12) / 255.0
    zero_point = round(-lo / scale) - 128
    q = torch.clamp(torch.round(x / scale) + zero_point, -128, 127)
    return (q - zero_point) * scale


def _quantize_weights(module: nn.Module) -> None:
    """Int8 per-output-channel symmetric weights, in place (``backends.quantize_weights_per_channel``)."""
    from export.backends import quantize_weights_per_channel

    quantize_weights_per_channel(module, bits=8)


def _fold(model: nn.Module) -> nn.Module:
    from faceforge.models.cyclegan import fold_batchnorm

    return fold_batchnorm(copy.deepcopy(model).eval())


def _fused_into_relu(model: nn.Module) -> set[str]:
    """Names of leaf modules whose output feeds a ReLU directly (siblings in an ``nn.Sequential``)."""
    fused: set[str] = set()
    for seq_name, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        children = [(n, m) for n, m in seq.named_children() if not isinstance(m, (nn.Identity, nn.BatchNorm2d))]
        for (name, child), (_, nxt) in zip(children, children[1:]):
            if not isinstance(nxt, nn.ReLU):
                continue
            path = f"{seq_name}.{name}" if seq_name else name
            while isinstance(child, nn.Sequential) and len(child):  # e.g. SeparableConv: its last conv
                name = str(len(child) - 1)
                path, child = f"{path}.{name}", child[-1]
            fused.add(path)
    return fused


def _candidates(model: nn.Module) -> list[tuple[str, nn.Module]]:
    out = []
    for name, m in model.named_modules():
        if not name or isinstance(m, EXACT):
            continue
        if isinstance(m, nn.Upsample) and m.mode == "nearest":
            continue
        leaf = not any(True for _ in m.children())
        custom = not leaf and type(m).forward is not nn.Sequential.forward and not isinstance(m, nn.Sequential)
        if leaf or custom:
            out.append((name, m))
    return out


@contextmanager
def _hooks(modules: dict[str, nn.Module], fn) -> Iterator[None]:
    handles = [m.register_forward_hook(lambda mod, inp, out, name=name: fn(name, out))
               for name, m in modules.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _run(model: nn.Module, x: np.ndarray, batch_size: int) -> np.ndarray:
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            outs.append(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size]))).float().numpy())
    return np.concatenate(outs)


def _mean_psnr(ref: np.ndarray, out: np.ndarray, value_range: tuple[float, float]) -> float:
    values = psnr(ref, out, value_range)
    return float(np.where(np.isinf(values), 200.0, values).mean())


def layer_errors(model: nn.Module, calibration: np.ndarray, x: np.ndarray, *,
                 value_range: tuple[float, float] = (-1.0, 1.0), batch_size: int = 16) -> DiagnoseReport:
    """Rank the layers of ``model`` by the output error their int8 quantization causes.

    Args:
        model: the float PyTorch model (not modified; a BatchNorm-folded copy is analysed).
        calibration: ``(N, C, H, W)`` float32 inputs that set the activation ranges (the
            representative dataset of the int8 export).
        x: ``(M, C, H, W)`` float32 inputs the output PSNR is measured on (parity inputs).
        value_range: model output range mapped to [0, 255] for PSNR (tanh images: ``(-1, 1)``).
        batch_size: inputs per forward pass.

    Returns:
        A :class:`DiagnoseReport`, layers sorted worst first.

    Raises:
        ValueError: empty ``calibration`` or ``x``.
    """
    if len(calibration) == 0 or len(x) == 0:
        raise ValueError("layer_errors needs calibration inputs and parity inputs")
    float_model = _fold(model)
    candidates = dict(_candidates(float_model))
    fused = _fused_into_relu(float_model)

    ranges: dict[str, list[float]] = {}

    fixed = {n: FIXED_RANGES[type(m)] for n, m in candidates.items() if type(m) in FIXED_RANGES}

    def observe(name: str, out: torch.Tensor) -> None:
        lo, hi = fixed.get(name) or (float(out.min()), float(out.max()))
        r = ranges.setdefault(name, [lo, hi])
        r[0], r[1] = min(r[0], lo), max(r[1], hi)

    with _hooks(candidates, observe):
        _run(float_model, calibration, batch_size)
    ref = _run(float_model, x, batch_size)

    def quantized_run(names_w: set[str], names_a: set[str], local: str | None = None):
        """Run a copy with weights of ``names_w`` and outputs of ``names_a`` int8; local SQNR of ``local``."""
        qmodel = copy.deepcopy(float_model)
        mods = dict(qmodel.named_modules())
        for n in names_w:
            _quantize_weights(mods[n])
        signal, noise = [0.0], [0.0]
        float_mods = dict(float_model.named_modules())

        def quantize(name: str, out: torch.Tensor) -> torch.Tensor | None:
            if name not in names_a:
                return None
            return _fake_quant(out, *ranges[name])

        hooks = [mods[n].register_forward_hook(lambda m, i, o, n=n: quantize(n, o)) for n in names_a]
        if local is not None:  # local SQNR: float layer vs quantized layer on the same (float) input
            def compare(m, inputs, out, name=local):
                with torch.no_grad():
                    f = float_mods[name](*inputs)
                signal[0] += float((f.double() ** 2).sum())
                noise[0] += float(((out.double() - f.double()) ** 2).sum())
            hooks.append(mods[local].register_forward_hook(compare))
        try:
            y = _run(qmodel, x, batch_size)
        finally:
            for h in hooks:
                h.remove()
        sqnr = 10 * np.log10(signal[0] / noise[0]) if noise[0] > 0 else 200.0
        return _mean_psnr(ref, y, value_range), float(sqnr)

    layers = []
    for name, module in candidates.items():
        lo, hi = ranges.get(name, (0.0, 0.0))
        weighted = isinstance(module, WEIGHTED)
        act = name not in fused
        if not weighted and not act:
            continue
        w_db = quantized_run({name}, set())[0] if weighted else None
        a_db = quantized_run(set(), {name})[0] if act else None
        both_db, sqnr = quantized_run({name} if weighted else set(), {name} if act else set(), local=name)
        layers.append(LayerError(name, type(module).__name__, lo, hi, (max(hi, 0) - min(lo, 0)) / 255.0,
                                 w_db, a_db, both_db, sqnr))
    layers.sort(key=lambda e: e.worst_db)
    weighted_names = {n for n, m in candidates.items() if isinstance(m, WEIGHTED)}
    act_names = {n for n in candidates if n not in fused}
    all_db = quantized_run(weighted_names, act_names)[0]
    w_only = quantized_run(weighted_names, set())[0]
    return DiagnoseReport(all_db, w_only, layers, len(x), tuple(value_range))


def format_report(report: DiagnoseReport, top: int = 10) -> str:
    """Plain-text table of the ``top`` worst layers, with the whole-model figures first."""
    lines = [f"all int8 (fake-quantized, {report.images} inputs): {report.all_int8_psnr_db:.1f} dB; "
             f"int8 weights only: {report.weights_only_psnr_db:.1f} dB",
             f"{'layer':<28} {'kind':<18} {'range':>17} {'weights dB':>10} {'output dB':>10} {'both dB':>8} "
             f"{'SQNR dB':>8}"]

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    for e in report.layers[:top]:
        rng = f"[{e.out_min:.2f}, {e.out_max:.2f}]"
        lines.append(f"{e.name:<28} {e.kind:<18} {rng:>17} {fmt(e.psnr_weights_db):>10} "
                     f"{fmt(e.psnr_activation_db):>10} {e.psnr_both_db:>8.1f} {e.sqnr_db:>8.1f}")
    return "\n".join(lines)


@dataclass
class AgreementReport:
    """What :func:`layer_agreement` found (classifiers: top-1 agreement instead of PSNR).

    Attributes:
        all_int8: top-1 agreement with the float model, every candidate quantized at once.
        weights_only: every weight int8, activations float.
        activations_only: every activation int8, weights float.
        weights: ``{layer: agreement}`` with only that layer's weights int8.
        activations: ``{layer: agreement}`` with only that tensor int8 (layers fused into a ReLU have none).
        images: number of inputs.
    """

    all_int8: float
    weights_only: float
    activations_only: float
    weights: dict[str, float] = field(default_factory=dict)
    activations: dict[str, float] = field(default_factory=dict)
    images: int = 0

    def worst(self, top: int = 5) -> list[tuple[str, str, float]]:
        """The ``top`` single-tensor quantizations that lose the most agreement: ``(layer, "weights" |
        "output", agreement)``, worst first."""
        rows = [(n, "weights", a) for n, a in self.weights.items()] + \
               [(n, "output", a) for n, a in self.activations.items()]
        return sorted(rows, key=lambda r: r[2])[:top]


def layer_agreement(model: nn.Module, calibration: np.ndarray, x: np.ndarray, *,
                    batch_size: int = 256) -> AgreementReport:
    """For a classifier: top-1 agreement with the float model when one layer at a time is int8.

    The same simulation as :func:`layer_errors` (BatchNorm folded, int8 per-channel symmetric weights,
    int8 per-tensor activations with min/max ranges from ``calibration``, ReLU-fused outputs not
    quantized separately), scored by the fraction of inputs whose argmax is unchanged, which is what a
    classifier's int8 parity bound asks. Measured on the shipped mini_xception (weights
    2026.11.23-run000, 7,178 FER2013 test faces): 97.13 % all int8 (the LiteRT file: 97.35 %), every
    single tensor 99.1-99.9 %.

    Args:
        model: the float classifier, ``(N, C, H, W) -> (N, K)`` logits (not modified).
        calibration: ``(N, C, H, W)`` float32 inputs that set the activation ranges.
        x: ``(M, C, H, W)`` float32 inputs agreement is measured on.
        batch_size: inputs per forward pass.

    Returns:
        An :class:`AgreementReport`.

    Raises:
        ValueError: empty ``calibration`` or ``x``, or the model's output is not ``(M, K)``.
    """
    if len(calibration) == 0 or len(x) == 0:
        raise ValueError("layer_agreement needs calibration inputs and inputs to measure on")
    float_model = _fold(model)
    candidates = dict(_candidates(float_model))
    fused = _fused_into_relu(float_model)
    weighted = [n for n, m in candidates.items() if isinstance(m, WEIGHTED)]
    acts = [n for n, m in candidates.items() if n not in fused and not isinstance(m, nn.MaxPool2d)]
    ranges: dict[str, list[float]] = {}

    def observe(name: str, out: torch.Tensor) -> None:
        r = ranges.setdefault(name, [float(out.min()), float(out.max())])
        r[0], r[1] = min(r[0], float(out.min())), max(r[1], float(out.max()))

    with _hooks({n: candidates[n] for n in acts}, observe):
        _run(float_model, calibration, batch_size)
    ref = _run(float_model, x, batch_size)
    if ref.ndim != 2:
        raise ValueError(f"layer_agreement is for classifiers ((N, K) logits), got output shape {ref.shape}")
    top = ref.argmax(1)

    def agreement(names_w: list[str], names_a: list[str]) -> float:
        qmodel = copy.deepcopy(float_model)
        mods = dict(qmodel.named_modules())
        for n in names_w:
            _quantize_weights(mods[n])
        hooks = [mods[n].register_forward_hook(lambda m, i, o, n=n: _fake_quant(o, *ranges[n])) for n in names_a]
        try:
            return float((_run(qmodel, x, batch_size).argmax(1) == top).mean())
        finally:
            for h in hooks:
                h.remove()

    return AgreementReport(
        all_int8=agreement(weighted, acts), weights_only=agreement(weighted, []),
        activations_only=agreement([], acts), weights={n: agreement([n], []) for n in weighted},
        activations={n: agreement([], [n]) for n in acts}, images=len(x))

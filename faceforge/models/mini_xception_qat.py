"""Simulated full-integer int8 forward pass of mini-Xception, for quantization-aware fine-tuning.

The shipped LiteRT int8 file is made by post-training static quantization (PT2E, litert-torch's
per-channel symmetric quantizer; ``export.backends.export_tflite_int8``) of the model's int8
re-parameterization (:class:`~faceforge.models.mini_xception.LinearHeadMiniXception`). This module runs
the *same* float weights through the quantization that file applies, with straight-through gradients
(Jacob et al., CVPR 2018, "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", section 3: "fake" quantization in the forward pass, identity in
the backward pass; ``torch.fake_quantize_per_channel_affine`` / ``torch.fake_quantize_per_tensor_affine``),
so a fine-tune can make the float model robust to it:

- BatchNorm is folded into the convolution before it (the converter does the same), with *frozen*
  statistics: the running mean and variance are used, ``weight`` and ``bias`` still train (the
  "freeze BatchNorm statistics" stage of Jacob et al. and Krishnamoorthi 2018, arXiv:1806.08342).
- Weights: int8 per output channel, symmetric (levels -127..127, scale ``max|w| / 127``), as the
  quantizer's ``get_symmetric_quantization_config(is_per_channel=True)``.
- Activations: int8 per tensor, affine (levels -128..127, the range always including 0), at the tensors
  the converted graph holds as int8: the input, every convolution's output except where a ReLU follows
  (then the ReLU's), each residual add, and the logits; max-pooling reuses its input's parameters.
  Ranges are running min/max averages (momentum ``0.01`` per training step, the default of PyTorch's
  ``MovingAverageMinMaxObserver``), recorded by :meth:`FakeQuantMiniXception.observe`.
- The head is the int8 re-parameterization's: the classifier convolution and global average pool as
  one fully connected layer with class-centred weights, computed from the classifier's weights so
  gradients reach them.

It is a simulation, not the converter: the export's observers are histograms (a range chosen to
minimise the rounding error, often narrower than min/max), and int32 biases and requantization
rounding are not modelled. :func:`export.diagnose.layer_errors` is the same idea for diagnosis.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from faceforge.models.mini_xception import MiniXception, ResidualModule, _feature_size, classifier_taps


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight ``(O, I/g, k, k)`` and bias ``(O,)`` of ``bn(conv(x))`` with ``bn`` in eval form."""
    w = conv.weight
    b = conv.bias if conv.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
    if bn is None:
        return w, b
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return w * scale.view(-1, *([1] * (w.dim() - 1))), bn.bias + (b - bn.running_mean) * scale


def fake_quant_weight(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric int8 fake quantization (levels -127..127) of a weight ``(O, ...)``."""
    scale = w.detach().abs().flatten(1).amax(1).clamp_min(1e-8) / 127
    zero = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
    return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -127, 127)


class _ActRange(nn.Module):
    """Running per-tensor (min, max) of one activation and its int8 fake quantization.

    Buffers ``lo``, ``hi`` (scalars; ``hi < lo`` until the first observation).
    """

    def __init__(self, momentum: float) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("lo", torch.tensor(1.0))
        self.register_buffer("hi", torch.tensor(-1.0))

    def forward(self, x: torch.Tensor, observe: bool) -> torch.Tensor:
        if observe:
            lo, hi = x.detach().min().clamp_max(0), x.detach().max().clamp_min(0)
            if self.hi < self.lo:
                self.lo.copy_(lo)
                self.hi.copy_(hi)
            else:
                self.lo.lerp_(lo, self.momentum)
                self.hi.lerp_(hi, self.momentum)
        if self.hi < self.lo:
            return x
        scale = float((self.hi - self.lo).clamp_min(1e-8) / 255)
        zero = int(torch.clamp(torch.round(-128 - self.lo / scale), -128, 127))
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, -128, 127)


class FakeQuantMiniXception(nn.Module):
    """``net``'s forward pass with simulated full-integer int8 (see the module docstring).

    ``net`` is shared, not copied: gradients of this module's output train ``net``'s parameters, so a
    quantization-aware fine-tune optimizes the float model that is then exported as usual.

    Args:
        net: a :class:`MiniXception` (its BatchNorm layers are used in eval form).
        input_size: ``(H, W)`` the export runs at (the head's fully connected layer depends on it).
        momentum: per-step update of the running activation ranges.

    Shapes:
        input ``(N, in_channels, H, W)`` float32 in [-1, 1] at exactly ``input_size``;
        output ``(N, num_classes)`` float32 logits on the int8 grid of the file's output, centred over
        the classes like :class:`~faceforge.models.mini_xception.LinearHeadMiniXception`'s.

    Raises:
        TypeError: ``net`` is not a :class:`MiniXception`.
        ValueError: an input of another size than ``input_size``.
    """

    def __init__(self, net: MiniXception, input_size: tuple[int, int] = (48, 48), momentum: float = 0.01) -> None:
        super().__init__()
        if not isinstance(net, MiniXception):
            raise TypeError(f"FakeQuantMiniXception needs a MiniXception, got {type(net).__name__}")
        self.net = net
        self.input_size = tuple(int(s) for s in input_size)
        h, w = (_feature_size(s, len(net.modules_)) for s in self.input_size)
        kh, kw = net.classifier.kernel_size
        # tap (di, dj) of the 3x3 classifier reaches feature position (ii, jj) from this many output positions
        self.register_buffer("taps", classifier_taps(kh, kw, h, w) / (h * w), persistent=False)
        n_ranges = 3 + 6 * len(net.modules_) + 1  # input, two stem ReLUs, 6 per module, logits
        self.ranges = nn.ModuleList(_ActRange(momentum) for _ in range(n_ranges))
        self.observing = True

    def _q(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return self.ranges[i](x, self.observing and self.training)

    def _conv(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None, x: torch.Tensor) -> torch.Tensor:
        w, b = _fold(conv, bn)
        return F.conv2d(x, fake_quant_weight(w), b, conv.stride, conv.padding, conv.dilation, conv.groups)

    def _module(self, m: ResidualModule, x: torch.Tensor, k: int) -> torch.Tensor:
        shortcut = self._q(k, self._conv(m.shortcut[0], m.shortcut[1], x))
        sep1, bn1, _, sep2, bn2, pool = m.body
        y = self._q(k + 1, self._conv(sep1[0], None, x))
        y = self._q(k + 2, F.relu(self._conv(sep1[1], bn1, y)))
        y = self._q(k + 3, self._conv(sep2[0], None, y))
        y = self._q(k + 4, self._conv(sep2[1], bn2, y))
        return self._q(k + 5, pool(y) + shortcut)  # max-pool: its input's int8 parameters

    def head_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Class-centred fully connected weight ``(K, C*h*w)`` and bias ``(K,)`` of classifier + average pool."""
        conv = self.net.classifier
        a = torch.einsum("kcde,dehw->kchw", conv.weight, self.taps).flatten(1)
        b = conv.bias if conv.bias is not None else torch.zeros(a.shape[0], dtype=a.dtype, device=a.device)
        return a - a.mean(0, keepdim=True), b - b.mean()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(f"FakeQuantMiniXception was built for {self.input_size} inputs, got {tuple(x.shape)}")
        net = self.net
        x = self._q(0, x)
        stem = net.stem  # conv, bn, relu, conv, bn, relu
        x = self._q(1, F.relu(self._conv(stem[0], stem[1], x)))
        x = self._q(2, F.relu(self._conv(stem[3], stem[4], x)))
        for n, m in enumerate(net.modules_):
            x = self._module(m, x, 3 + 6 * n)
        w, b = self.head_weight()
        return self._q(len(self.ranges) - 1, F.linear(x.flatten(1), fake_quant_weight(w), b))

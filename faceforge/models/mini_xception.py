"""mini-Xception facial-emotion classifier.

Source: O. Arriaga, P. G. Ploeger, M. Valdenegro, "Real-time Convolutional Neural Networks for Emotion
and Gender Classification", arXiv:1710.07557 (2017), Fig. 4 and the authors' Keras model
``mini_XCEPTION``. Layout as published:

- two 3x3 convolutions with 8 filters (valid padding), each + BatchNorm + ReLU;
- four residual modules with 16, 32, 64, 128 filters: two depthwise-separable 3x3 convolutions
  (+ BatchNorm, ReLU between them), 3x3 max-pool with stride 2, added to a 1x1 stride-2
  convolution + BatchNorm shortcut;
- a 3x3 convolution to ``num_classes`` channels and global average pooling (no dense layer).

At 48x48 grayscale input: 56,951 parameters and about 5.5 M multiply-accumulates.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from faceforge.models.registry import InputSpec, ModelSpec, register_model

FER2013_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""FER2013's class order (label ids 0-6 of the Kaggle release), also used by the ``fer`` package."""


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False), nn.BatchNorm2d(c_out)]


class SeparableConv2d(nn.Sequential):
    """Depthwise 3x3 convolution followed by a pointwise 1x1 convolution, both without bias.

    Shapes: ``(N, c_in, H, W) -> (N, c_out, H, W)`` (same padding).
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1, bias=False))


class ResidualModule(nn.Module):
    """One mini-Xception module: ``sepconv-BN-ReLU-sepconv-BN-maxpool`` plus a 1x1/2 shortcut.

    Shapes: ``(N, c_in, H, W) -> (N, c_out, ceil(H/2), ceil(W/2))``.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.shortcut = nn.Sequential(*_conv_bn(c_in, c_out, 1, stride=2))
        self.body = nn.Sequential(
            SeparableConv2d(c_in, c_out), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            SeparableConv2d(c_out, c_out), nn.BatchNorm2d(c_out),
            nn.MaxPool2d(3, stride=2, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class MiniXception(nn.Module):
    """mini-Xception (Arriaga et al. 2017) returning class logits.

    Args:
        num_classes: number of output classes (7 for FER2013).
        in_channels: 1 for grayscale.
        widths: filters of the four residual modules.
        stem_width: filters of the two stem convolutions.

    Shapes:
        input ``(N, in_channels, H, W)`` float32 in [-1, 1] (H, W >= 16; trained at 48x48);
        output ``(N, num_classes)`` float32 logits (apply softmax for probabilities).
    """

    def __init__(self, num_classes: int = 7, in_channels: int = 1,
                 widths: tuple[int, ...] = (16, 32, 64, 128), stem_width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            *_conv_bn(in_channels, stem_width, 3), nn.ReLU(inplace=True),
            *_conv_bn(stem_width, stem_width, 3), nn.ReLU(inplace=True),
        )
        modules, c = [], stem_width
        for w in widths:
            modules.append(ResidualModule(c, w))
            c = w
        self.modules_ = nn.Sequential(*modules)
        self.classifier = nn.Conv2d(c, num_classes, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.classifier(self.modules_(self.stem(x)))
        return self.pool(x).flatten(1)

    def equalized(self, calibration: torch.Tensor | np.ndarray) -> "LinearHeadMiniXception":
        """The re-parameterization the full-integer int8 export uses (hook of ``export.exporter``).

        Same float function, different last op: :class:`LinearHeadMiniXception` (the classifier
        convolution and the global average pool as one centred fully connected layer). See that class
        for why.

        Args:
            calibration: ``(N, C, H, W)`` inputs of the export (only their size ``H, W`` is used).

        Returns:
            A new module in eval mode; this one is not modified.
        """
        return LinearHeadMiniXception(self, tuple(int(s) for s in calibration.shape[-2:]))


def classifier_taps(kh: int, kw: int, h: int, w: int) -> torch.Tensor:
    """How often tap ``(di, dj)`` of a ``kh x kw`` convolution (stride 1, "same" zero padding) over an ``h x w``
    map reads input position ``(ii, jj)``, summed over all output positions: float32 ``(kh, kw, h, w)`` counts.
    A global average pool after that convolution is then the linear map ``sum(weight * taps) / (h w)``."""
    taps = torch.zeros(kh, kw, h, w)
    for i in range(h):
        for j in range(w):
            for di in range(kh):
                for dj in range(kw):
                    ii, jj = i + di - kh // 2, j + dj - kw // 2
                    if 0 <= ii < h and 0 <= jj < w:
                        taps[di, dj, ii, jj] += 1
    return taps


def _feature_size(side: int, modules: int) -> int:
    side -= 4  # two valid 3x3 stem convolutions
    for _ in range(modules):
        side = (side + 1) // 2  # max-pool 3/2 with padding 1 (and the 1x1/2 shortcut): ceil(side / 2)
    return side


class LinearHeadMiniXception(nn.Module):
    """mini-Xception with ``classifier`` (3x3 convolution, padding 1) + global average pool rewritten as
    one fully connected layer on the flattened final feature map, with the logits centred.

    Both rewrites are exact in float (to ~1e-6) and argmax-preserving, and exist for full-integer int8:

    - In the original graph the converter gives the average pool the int8 parameters of the
      convolution's output (litert-torch's PT2E quantizer annotates ``adaptive_avg_pool2d`` as
      sharing its input's), so the logits are rounded twice, on a grid sized for the per-position
      values (step 0.100 on the shipped weights). As a linear layer the logits are one int8 tensor of
      their own range (step 0.046).
    - Centring (``W - mean_k W``, ``b - mean_k b`` over the classes) subtracts each face's mean logit,
      which softmax and argmax ignore, so the int8 range spans the spread between classes only.

    Measured on the shipped weights, FER2013 test (7,178 faces), top-1 agreement of the full-integer
    LiteRT file with PyTorch: 97.35 % as trained, 97.52 % with the linear head, 97.63 % centred.

    Args:
        net: the trained :class:`MiniXception` (copied, not shared).
        input_size: ``(H, W)`` the export runs at (48x48 for FER2013).

    Shapes:
        input ``(N, in_channels, H, W)`` float32 in [-1, 1] at exactly ``input_size``;
        output ``(N, num_classes)`` float32 logits, ``net``'s minus their per-face mean.

    Raises:
        ValueError: ``input_size`` below 16 px per side (the smallest input the network is defined for).
    """

    int8_note = ("exported from the model's int8 re-parameterization (classifier convolution + average pool "
                 "as one centred fully connected layer; same float function up to a per-face logit offset)")
    """What the exporter writes into the int8 file's notes (the manifest)."""

    def __init__(self, net: MiniXception, input_size: tuple[int, int]) -> None:
        super().__init__()
        import copy

        if min(input_size) < 16:
            raise ValueError(f"input size {input_size} is too small for mini-Xception (>= 16 px per side)")
        h, w = (_feature_size(s, len(net.modules_)) for s in input_size)
        self.stem, self.modules_ = copy.deepcopy(net.stem).eval(), copy.deepcopy(net.modules_).eval()
        conv = net.classifier
        weight = conv.weight.detach()  # (K, C, 3, 3), padding 1
        k, c, kh, kw = weight.shape
        a = torch.einsum("kcij,ijxy->kcxy", weight, classifier_taps(kh, kw, h, w).to(weight.dtype))
        a = (a / (h * w)).flatten(1)
        b = conv.bias.detach().clone() if conv.bias is not None else torch.zeros(k)
        self.fc = nn.Linear(c * h * w, k)
        with torch.no_grad():
            self.fc.weight.copy_(a - a.mean(0, keepdim=True))
            self.fc.bias.copy_(b - b.mean())
        self.input_size = tuple(input_size)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.modules_(self.stem(x)).flatten(1))


register_model(ModelSpec(
    name="mini_xception",
    task="emotion",
    factory=MiniXception,
    kwargs={"num_classes": 7, "in_channels": 1},
    input=InputSpec(shape=(1, 48, 48), colour="gray", value_range=(-1.0, 1.0), face_template="fer2013"),
    labels=FER2013_LABELS,
    source="Arriaga, Ploeger, Valdenegro 2017, arXiv:1710.07557 (mini-Xception)",
    license="Apache-2.0 (weights trained by faceforge on FER2013, research use)",
    description="Facial-emotion recognition, 7 FER2013 classes, 48x48 grayscale aligned face",
))

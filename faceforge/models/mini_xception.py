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

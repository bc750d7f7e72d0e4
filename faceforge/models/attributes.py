"""The age / gender attribute classifier that InterFaceGAN editing (:mod:`faceforge.editing`) scores with.

Registered as architecture ``attribute_net``; its pretrained weights are the model card
``attribute_net.utkface32`` (:mod:`faceforge.models.cards`), trained by ``python -m training.attributes``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from faceforge.models.registry import InputSpec, ModelSpec, register_model

__all__ = ["ATTRIBUTE_ARCH", "ATTRIBUTE_OUTPUTS", "AttributeNet"]

ATTRIBUTE_ARCH = "attribute_net"
"""``arch`` of :class:`AttributeNet` checkpoints (faceforge checkpoint format) and its registry name."""

ATTRIBUTE_OUTPUTS = ("log1p_age", "female_logit")
"""The two outputs in order: ``log(1 + age in years)`` and the logit of UTKFace's gender label 1 (female)."""


class AttributeNet(nn.Module):
    """Small CNN for age and gender of an aligned face (``utkface`` template).

    Four stride-2 stages of [3x3 conv, BatchNorm, ReLU] x 2 (widths ``widths``), global average pooling,
    dropout, one linear layer with two outputs:

    - ``out[:, 0]``: ``log(1 + age)`` (age in years; :meth:`age` undoes it), trained with a smooth L1
      loss: a log scale spreads children's ages and lets one year matter less at 70 than at 7;
    - ``out[:, 1]``: the logit of "female" (UTKFace's gender label 1), trained with binary cross-entropy.

    Input: float32 ``(N, 3, S, S)`` RGB in [-1, 1] (``p / 127.5 - 1``), ``S = size`` (any multiple of 16
    works; the weights are trained at one size).

    Args:
        size: input side the weights are meant for (recorded in checkpoints).
        widths: channels of the four stages.

    Source: faceforge; a VGG-style stack (Simonyan & Zisserman, ICLR 2015) with BatchNorm (Ioffe &
    Szegedy, ICML 2015); the age-on-log-scale target follows the DEX/UTKFace age-regression literature
    (Rothe et al., ICCVW 2015; Zhang, Song, Qi, CVPR 2017).
    """

    def __init__(self, size: int = 32, widths: Sequence[int] = (16, 32, 64, 96)) -> None:
        super().__init__()
        self.size = int(size)
        layers: list[nn.Module] = []
        c_in = 3
        for i, c in enumerate(widths):
            layers += [nn.Conv2d(c_in, c, 3, stride=1 if i == 0 else 2, padding=1, bias=False), nn.BatchNorm2d(c),
                       nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                       nn.ReLU(inplace=True)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(c_in, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, S, S)`` -> ``(N, 2)``: ``[log(1 + age), female logit]``."""
        f = self.features(x).mean((2, 3))
        return self.head(self.dropout(f))

    @staticmethod
    def age(out: torch.Tensor) -> torch.Tensor:
        """Years from the network's output ``(N, 2)``: ``exp(out[:, 0]) - 1``, float ``(N,)``."""
        return torch.expm1(out[:, 0]).clamp(min=0.0)


register_model(ModelSpec(
    name=ATTRIBUTE_ARCH, task="attributes", factory=AttributeNet, kwargs={"size": 32},
    input=InputSpec(shape=(3, 32, 32), colour="rgb", value_range=(-1.0, 1.0), face_template="utkface"),
    labels=ATTRIBUTE_OUTPUTS,
    source="faceforge (VGG-style CNN with BatchNorm); scores InterFaceGAN directions (Shen et al., CVPR 2020)",
    description="age / gender classifier, 32x32 RGB face (utkface template) -> [log(1 + age), female logit]; "
                "scores StyleGAN2 samples for attribute editing",
))

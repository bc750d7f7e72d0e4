"""A small ResNet age estimator: aligned RGB face -> a distribution over ages 0..100 -> expected age.

Sources:

- K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition", CVPR 2016: the
  basic residual block (two 3x3 convolutions with BatchNorm, identity or 1x1 projection shortcut).
- R. Rothe, R. Timofte, L. Van Gool, "DEX: Deep EXpectation of Apparent Age from a Single Image",
  ICCV Workshops 2015 (and IJCV 2018): age estimation as classification over 101 one-year bins, the
  prediction being the *expected value* of the softmax distribution (:func:`expected_age`).
- B.-B. Gao, H.-Y. Zhou, J. Wu, X. Geng, "Age Estimation Using Expectation of Label Distribution
  Learning", IJCAI 2018 (DLDL-v2): training the same head with a KL loss towards a Gaussian label
  distribution plus an L1 loss on the expectation (the default loss of :mod:`training.age`).

Layout of :class:`AgeNet` (widths ``w0..w3``, defaults 32/64/128/256): a stride-2 3x3 stem, four stages
of ``blocks[i]`` basic blocks (stride 1, 2, 2, 2), global average pooling, dropout and a linear layer to
``num_bins`` logits. At 64x64 input the feature maps are 32, 32, 16, 8, 4 pixels; the network is
size-agnostic (96x96 works the same). Complexity with the defaults (``torch.utils.flop_counter``,
MACs = FLOPs / 2): 1.25 M parameters; 63.8 M MACs at 64x64, 143.6 M at 96x96.
"""

from __future__ import annotations

import torch
from torch import nn

from faceforge.models.registry import InputSpec, ModelSpec, register_model

__all__ = ["AgeNet", "BasicBlock", "expected_age", "AGE_BINS"]

AGE_BINS = 101
"""Default number of one-year bins: ages 0, 1, ..., 100 (older labels are clipped to 100)."""


class BasicBlock(nn.Module):
    """ResNet basic block ``ReLU(x' + BN(conv3x3(ReLU(BN(conv3x3(x))))))`` (He et al. 2016).

    ``x'`` is ``x`` or, when the stride or width changes, a 1x1 strided convolution + BN of ``x``.

    Shapes: ``(N, c_in, H, W) -> (N, c_out, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out else
                         nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)))
        self.act = nn.ReLU(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class AgeNet(nn.Module):
    """Small ResNet age estimator with a DEX head (logits over one-year age bins).

    Args:
        in_channels: input channels (3, RGB).
        widths: channels of the four stages.
        blocks: basic blocks per stage.
        num_bins: age bins ``0 .. num_bins - 1`` years (101 as in DEX).
        dropout: dropout before the final linear layer.

    Shapes:
        input ``(N, in_channels, S, S)`` float32 in [-1, 1] (RGB / 127.5 - 1), a face aligned on the
        ``utkface`` template, ``S`` = 64 by default (96 also trained and tested); output
        ``(N, num_bins)`` float32 logits. :func:`expected_age` turns them into years.

    Raises:
        ValueError: bad sizes.
    """

    def __init__(self, in_channels: int = 3, widths: tuple[int, ...] = (32, 64, 128, 256),
                 blocks: tuple[int, ...] = (1, 1, 1, 1), num_bins: int = AGE_BINS, dropout: float = 0.2) -> None:
        widths, blocks = tuple(widths), tuple(blocks)
        if len(widths) != len(blocks) or not widths or min(widths) < 1 or min(blocks) < 1:
            raise ValueError(f"widths and blocks must be equally long, positive; got {widths}, {blocks}")
        if in_channels < 1 or num_bins < 2 or not 0 <= dropout < 1:
            raise ValueError(f"bad in_channels {in_channels}, num_bins {num_bins} or dropout {dropout}")
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(True))
        stages, c = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                stages.append(BasicBlock(c, w, stride=2 if (i > 0 and j == 0) else 1))
                c = w
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c, num_bins))
        self.num_bins = num_bins
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def expected_age(logits: torch.Tensor) -> torch.Tensor:
    """DEX expected value (Rothe et al. 2015): ``sum_k softmax(logits)_k * k`` in years.

    Args:
        logits: ``(N, K)``; bin ``k`` is age ``k`` years.

    Returns:
        ``(N,)`` float32 ages in ``[0, K - 1]``.
    """
    ages = torch.arange(logits.shape[1], dtype=torch.float32, device=logits.device)
    return torch.softmax(logits.float(), dim=1) @ ages


register_model(ModelSpec(
    name="age_resnet", task="age", factory=AgeNet,
    kwargs={"in_channels": 3, "widths": (32, 64, 128, 256), "blocks": (1, 1, 1, 1), "num_bins": AGE_BINS,
            "dropout": 0.2},
    input=InputSpec(shape=(3, 64, 64), colour="rgb", value_range=(-1.0, 1.0), face_template="utkface"),
    source="ResNet basic blocks (He et al., CVPR 2016); DEX expected-value head over 101 age bins (Rothe et al., "
           "ICCVW 2015); DLDL-v2 loss (Gao et al., IJCAI 2018)",
    description="age estimator, 64x64 RGB face (utkface template) -> 101 age-bin logits, expected age in years; "
                "1.25 M params, 63.8 M MACs",
))

"""pix2pix U-Net generators (server and mobile) for face frontalization.

Sources:

- P. Isola, J.-Y. Zhu, T. Zhou, A. A. Efros, "Image-to-Image Translation with Conditional
  Adversarial Networks", CVPR 2017 (arXiv:1611.07004), sec. 3.2.1 and appendix 6.1.1: the U-Net
  encoder ``C64-C128-C256-C512-C512-C512-C512-C512`` (4x4 stride-2 convolutions, LeakyReLU 0.2,
  BatchNorm except on the first layer), decoder ``CD512-CD1024-CD1024-C1024-C1024-C512-C256-C128``
  (transposed 4x4 stride-2 convolutions, ReLU, BatchNorm, dropout 0.5 in the first three), skip
  connections concatenating encoder layer ``i`` to decoder layer ``n - i``, tanh output; "U-Net-256"
  has 8 levels (1x1 bottleneck at 256x256), "U-Net-128" 7. The innermost convolution has no
  normalization (a 1x1 map with batch size 1), as in the authors' code.
- O. Ronneberger, P. Fischer, T. Brox, "U-Net", MICCAI 2015: the skip architecture.
- The mobile generator's choices (BatchNorm folded for int8, resize-convolution, depthwise-separable
  convolutions) follow :class:`faceforge.models.cyclegan.MobileResnetGenerator`; see its docstring and
  ``EXPORT_NOTES.md`` (a BatchNorm U-Net quantized best among the generators tried there).

Dropout: the paper keeps dropout on at test time as its only noise source; faceforge follows the
authors' code default instead (dropout only in training mode), so exported models are deterministic.

Complexity at ``(1, 3, 256, 256)`` (``(1, 3, 128, 128)`` for U-Net-128), counted by
:func:`faceforge.models.cyclegan.complexity` (``torch.utils.flop_counter``, MACs = FLOPs / 2;
transposed convolutions per input pixel, and per output pixel in the last column):

==========================================  ==========  =====================  ============================
network                                     parameters  GMACs (torch counter)  GMACs (output-pixel count)
==========================================  ==========  =====================  ============================
UnetGenerator U-Net-256 (8 levels, ngf 64)  54,413,955  6.05                   18.14
UnetGenerator U-Net-128 (7 levels, ngf 64)  41,828,995  1.51                    4.51
MobileUnetGenerator (default, 256)           3,486,147  1.43                    1.43 (no transposed conv)
==========================================  ==========  =====================  ============================

The issue's "6-18 GMACs by counting convention" for U-Net-256 spans these conventions.
``tests/test_frontalize.py`` recounts rather than trusting this table.
"""

from __future__ import annotations

import torch
from torch import nn

from faceforge.models.cyclegan import NLayerDiscriminator, init_weights
from faceforge.models.registry import InputSpec, ModelSpec, register_model

__all__ = ["UnetGenerator", "MobileUnetGenerator", "SeparableConv2d", "NLayerDiscriminator"]


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'batch', 'instance' or 'none', got {kind!r}")


def _check(input_nc: int, output_nc: int, ngf: int, num_downs: int) -> None:
    if input_nc < 1 or output_nc < 1 or ngf < 1:
        raise ValueError(f"input_nc, output_nc and ngf must be >= 1, got {input_nc}, {output_nc}, {ngf}")
    if num_downs < 2:
        raise ValueError(f"num_downs must be >= 2, got {num_downs}")


class UnetGenerator(nn.Module):
    """pix2pix U-Net generator (Isola et al. 2017; see the module docstring).

    Level ``i`` (0 = outermost) has ``min(ngf * 2^i, 8 * ngf)`` channels. Encoder level ``i``:
    ``[LeakyReLU(0.2)] -> Conv 4x4 s2 -> [norm]`` (no activation before level 0, no norm at level 0
    and at the innermost level). Decoder level ``i``: ``ReLU -> ConvTranspose 4x4 s2 -> norm ->
    [Dropout]`` on the concatenation of the deeper decoder output and encoder level ``i``'s output
    (the innermost decoder takes the bottleneck alone); level 0's decoder ends in tanh instead of norm.
    Dropout is applied in the decoders of levels ``num_downs - 4 .. num_downs - 2`` (the three after
    the innermost), as in the paper's ``CD512`` layers.

    Args:
        input_nc: input channels.
        output_nc: output channels.
        num_downs: levels; 8 for U-Net-256 (bottleneck 1x1 at 256x256), 7 for U-Net-128.
        ngf: filters of the outermost level (64).
        norm: ``"batch"`` (the paper), ``"instance"`` or ``"none"``.
        dropout: dropout probability in those decoder levels (0.5; 0 disables).

    Shapes:
        input ``(N, input_nc, H, W)`` float32 in [-1, 1], ``H`` and ``W`` multiples of ``2^num_downs``;
        output ``(N, output_nc, H, W)`` float32 in (-1, 1).

    Complexity: 54.41 M parameters; at 256x256 6.05 GMACs by the torch counter, 18.14 counting
    transposed convolutions per output pixel (module docstring).

    Raises:
        ValueError: bad sizes or norm name.
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, num_downs: int = 8, ngf: int = 64,
                 norm: str = "batch", dropout: float = 0.5) -> None:
        _check(input_nc, output_nc, ngf, num_downs)
        _norm(norm, 1)
        super().__init__()
        bias = norm != "batch"
        ch = [min(ngf * 2 ** i, 8 * ngf) for i in range(num_downs)]
        self.down = nn.ModuleList()
        for i in range(num_downs):
            c_in = input_nc if i == 0 else ch[i - 1]
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2, True)]
            # no bias before BatchNorm, and none on the outermost/innermost either, as the authors' code
            layers.append(nn.Conv2d(c_in, ch[i], 4, stride=2, padding=1, bias=bias))
            if 0 < i < num_downs - 1:
                layers.append(_norm(norm, ch[i]))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()
        for i in reversed(range(num_downs)):
            c_in = ch[i] if i == num_downs - 1 else 2 * ch[i]
            if i == 0:
                layers = [nn.ReLU(True), nn.ConvTranspose2d(c_in, output_nc, 4, stride=2, padding=1), nn.Tanh()]
            else:
                layers = [nn.ReLU(True), nn.ConvTranspose2d(c_in, ch[i - 1], 4, stride=2, padding=1, bias=bias),
                          _norm(norm, ch[i - 1])]
                if dropout > 0 and num_downs - 4 <= i <= num_downs - 2:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        x = skips.pop()
        for k, layer in enumerate(self.up):
            if k > 0:
                x = torch.cat([x, skips.pop()], 1)
            x = layer(x)
        return x


class SeparableConv2d(nn.Sequential):
    """Depthwise 3x3 convolution (zero padding 1, ``stride``, no bias) then a pointwise 1x1 convolution.

    Zero padding, not reflection: the deepest U-Net maps are 1x1 or 2x2.

    Shapes: ``(N, c_in, H, W) -> (N, c_out, H / stride, W / stride)``.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, bias: bool = False) -> None:
        super().__init__(nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1, bias=bias))


class MobileUnetGenerator(nn.Module):
    """A U-Net for phones: <= 3 GMACs at 256x256, BatchNorm that folds, no transposed convolutions.

    Level ``i`` has ``min(ngf * 2^i, max_mult * ngf)`` channels. Encoder: level 0 a dense 3x3 stride-2
    convolution and ReLU; deeper levels a :class:`SeparableConv2d` with stride 2, BatchNorm and ReLU
    (the innermost without norm, bias instead). Decoder, innermost first: nearest (or bilinear) x2
    upsampling of the concatenation ``[deeper decoder output, encoder level i]`` (the innermost:
    the bottleneck alone), a :class:`SeparableConv2d`, BatchNorm, ReLU, optional dropout; level 0
    upsamples and ends in a dense 3x3 convolution to ``output_nc`` and tanh.

    Why (see :class:`~faceforge.models.cyclegan.MobileResnetGenerator` for the longer argument): BatchNorm
    in ``conv -> BN`` pairs inside ``nn.Sequential`` so :func:`~faceforge.models.cyclegan.fold_batchnorm`
    folds it for int8; resize-convolution instead of transposed convolution (Odena et al., Distill
    2016: no checkerboard, exact in int8, no ``output_padding`` trouble); depthwise-separable
    convolutions (Howard et al., MobileNets, 2017); ReLU only (exact int8 kernels, fuses with conv).

    Args:
        input_nc, output_nc: channels.
        num_downs: levels (8: 1x1 bottleneck at 256x256 and a global receptive field, which the
            rotation from a profile needs).
        ngf: channels of level 0 (64, as pix2pix; 32 gives 0.44 GMACs, 48 0.87).
        max_mult: channel cap as a multiple of ``ngf`` (8).
        norm: ``"batch"`` (default), ``"instance"`` or ``"none"``.
        upsample: ``"nearest"`` (default) or ``"bilinear"``.
        dropout: dropout in the decoders of levels ``num_downs - 4 .. num_downs - 2`` (pix2pix's noise;
            0.5 as the paper; inactive in eval mode and in exports).

    Shapes:
        input ``(N, input_nc, H, W)`` float32 in [-1, 1], ``H``, ``W`` multiples of ``2^num_downs``;
        output ``(N, output_nc, H, W)`` float32 in (-1, 1).

    Complexity at 256x256 with the defaults: 3.49 M parameters, 1.43 GMACs (module docstring).

    Raises:
        ValueError: bad sizes, norm or upsample name.
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, num_downs: int = 8, ngf: int = 64,
                 max_mult: int = 8, norm: str = "batch", upsample: str = "nearest", dropout: float = 0.5) -> None:
        _check(input_nc, output_nc, ngf, num_downs)
        _norm(norm, 1)
        if upsample not in ("nearest", "bilinear"):
            raise ValueError(f"upsample must be 'nearest' or 'bilinear', got {upsample!r}")
        if max_mult < 1:
            raise ValueError(f"max_mult must be >= 1, got {max_mult}")
        super().__init__()
        bias = norm != "batch"
        ch = [min(ngf * 2 ** i, max_mult * ngf) for i in range(num_downs)]

        def up() -> nn.Module:
            return (nn.Upsample(scale_factor=2, mode="nearest") if upsample == "nearest"
                    else nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))

        self.down = nn.ModuleList([nn.Sequential(nn.Conv2d(input_nc, ch[0], 3, stride=2, padding=1), nn.ReLU(True))])
        for i in range(1, num_downs):
            if i == num_downs - 1:
                self.down.append(nn.Sequential(SeparableConv2d(ch[i - 1], ch[i], 2, bias=True), nn.ReLU(True)))
            else:
                self.down.append(nn.Sequential(SeparableConv2d(ch[i - 1], ch[i], 2, bias=bias), _norm(norm, ch[i]),
                                               nn.ReLU(True)))
        self.up = nn.ModuleList()
        for i in reversed(range(num_downs)):
            c_in = ch[i] if i == num_downs - 1 else 2 * ch[i]
            if i == 0:
                layers: list[nn.Module] = [up(), nn.Conv2d(c_in, output_nc, 3, padding=1), nn.Tanh()]
            else:
                layers = [up(), SeparableConv2d(c_in, ch[i - 1], 1, bias=bias), _norm(norm, ch[i - 1]), nn.ReLU(True)]
                if dropout > 0 and num_downs - 4 <= i <= num_downs - 2:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        init_weights(self)

    forward = UnetGenerator.forward


# --------------------------------------------------------------------------------------------------
# Registry

_SOURCE = "Isola, Zhu, Zhou, Efros, CVPR 2017 (arXiv:1611.07004); Ronneberger et al., MICCAI 2015"

register_model(ModelSpec(
    name="pix2pix_unet256", task="frontalize", factory=UnetGenerator,
    kwargs={"input_nc": 3, "output_nc": 3, "num_downs": 8, "ngf": 64, "norm": "batch", "dropout": 0.5},
    input=InputSpec(shape=(3, 256, 256), colour="rgb", value_range=(-1.0, 1.0), face_template="utkface"),
    source=_SOURCE,
    description="pix2pix U-Net-256 frontalization generator (server), 256x256 RGB -> RGB in [-1, 1]; "
                "54.4 M params, 6.05 GMACs (18.1 counting transposed convs per output pixel)",
))

register_model(ModelSpec(
    name="pix2pix_unet128", task="frontalize", factory=UnetGenerator,
    kwargs={"input_nc": 3, "output_nc": 3, "num_downs": 7, "ngf": 64, "norm": "batch", "dropout": 0.5},
    input=InputSpec(shape=(3, 128, 128), colour="rgb", value_range=(-1.0, 1.0), face_template="utkface"),
    source=_SOURCE,
    description="pix2pix U-Net-128 frontalization generator, 128x128 RGB -> RGB in [-1, 1]; "
                "41.8 M params, 1.51 GMACs (4.51 per output pixel)",
))

register_model(ModelSpec(
    name="pix2pix_mobile", task="frontalize", factory=MobileUnetGenerator,
    kwargs={"input_nc": 3, "output_nc": 3, "num_downs": 8, "ngf": 64, "max_mult": 8, "norm": "batch",
            "upsample": "nearest", "dropout": 0.5},
    input=InputSpec(shape=(3, 256, 256), colour="rgb", value_range=(-1.0, 1.0), face_template="utkface"),
    source="faceforge; pix2pix U-Net (Isola et al. 2017) with depthwise-separable convolutions (Howard et al. "
           "2017), resize-convolution (Odena et al. 2016), BatchNorm folding (Jacob et al. 2018)",
    description="mobile U-Net frontalization generator (phones), 256x256 RGB -> RGB in [-1, 1]; "
                "3.49 M params, 1.43 GMACs (the shipped weights: 128x128, 7 levels, 2.68 M params, 0.36 GMACs)",
))

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

from typing import TYPE_CHECKING

import torch
from torch import nn

from faceforge.models.cyclegan import NLayerDiscriminator, init_weights
from faceforge.models.registry import InputSpec, ModelSpec, register_model

if TYPE_CHECKING:
    import numpy as np

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

    @torch.no_grad()
    def equalized(self, x: torch.Tensor | np.ndarray, strength: float = 1.0, last_strength: float = 0.5,
                  max_gain: float = 1e3, batch_size: int = 16) -> "MobileUnetGenerator":
        """A copy with BatchNorm folded and every ReLU tensor's channels rescaled to one range: the same
        function, re-parameterized for per-tensor int8 activations.

        The U-Net's ReLU outputs (every encoder level, every decoder level but the last) have channels
        of very different ranges, and each skip concatenation joins two such tensors (a deep decoder
        output and a shallow encoder output): a per-tensor int8 scale, which the concatenation shares
        across both inputs, is set by the widest channel and leaves the narrow ones a few levels.
        ReLU is positively homogeneous (``relu(a z) = a relu(z)`` for ``a > 0``), so channel ``c`` of such
        a tensor can be multiplied by ``a_c`` in the convolution that produces it (its weights and bias,
        after BatchNorm folding) and divided out in every convolution that consumes it (a depthwise
        3x3, after the exact zero padding / nearest upsampling / concatenation in between; the last
        dense 3x3 for the tensors feeding it). Float outputs are unchanged up to rounding; per-channel
        int8 weights absorb both rescalings exactly for the depthwise and pointwise convolutions (each
        row or kernel has its own scale). This is the cross-layer equalization of M. Nagel, M. van Baalen,
        T. Blankevoort, M. Welling, "Data-Free Quantization Through Weight Equalization and Bias
        Correction", ICCV 2019 (arXiv:1906.04721), applied to activation ranges measured on data, as
        in their sec. 4.1 for ReLU networks.

        ``a_c = (R / r_c) ** strength`` with ``r_c`` the channel's largest value on ``x`` and ``R`` the
        largest over the tensor (and over both inputs of a concatenation), clipped to ``[1, max_gain]``.
        The two tensors feeding the last dense convolution use ``last_strength``: their division lands
        in one weight row per output channel, whose per-channel int8 scale then serves columns of
        different sizes.

        Args:
            x: ``(N, C, H, W)`` float32 calibration inputs in [-1, 1] (the int8 representative dataset).
            strength: exponent of the equalization for tensors consumed by depthwise convolutions
                (0 = none, 1 = every channel to the same range).
            last_strength: the exponent for the tensors of the last convolution's input.
            max_gain: largest channel gain.
            batch_size: inputs per forward pass while measuring.

        Returns:
            A new :class:`MobileUnetGenerator` in eval mode (this one is not modified), BatchNorm folded.

        Raises:
            ValueError: empty ``x``, or a layout other than this class's (e.g. a norm that does not fold).
        """
        import copy

        import numpy as np

        from faceforge.models.cyclegan import fold_batchnorm

        xs = torch.as_tensor(np.asarray(x, np.float32))
        if xs.ndim != 4 or len(xs) == 0:
            raise ValueError(f"x must be a non-empty (N, C, H, W) batch, got shape {tuple(xs.shape)}")
        m = fold_batchnorm(copy.deepcopy(self).eval())
        if any(isinstance(mod, (nn.BatchNorm2d, nn.InstanceNorm2d)) for mod in m.modules()):
            raise ValueError("equalized() needs norm='batch' (folded) or 'none'")
        n = len(m.down)
        relu_d = [next(mod for mod in layer if isinstance(mod, nn.ReLU)) for layer in m.down]
        relu_u = [next(mod for mod in layer if isinstance(mod, nn.ReLU)) for layer in list(m.up)[:-1]]
        peaks: dict[int, torch.Tensor] = {}

        def watch(mod, _inp, out):
            v = out.detach().amax(dim=(0, 2, 3))
            peaks[id(mod)] = torch.maximum(peaks[id(mod)], v) if id(mod) in peaks else v

        handles = [r.register_forward_hook(watch) for r in relu_d + relu_u]
        try:
            for i in range(0, len(xs), batch_size):
                m(xs[i:i + batch_size])
        finally:
            for h in handles:
                h.remove()

        def producer(layer: nn.Sequential) -> nn.Conv2d:  # the conv whose output the ReLU takes
            first = layer[0] if not isinstance(layer[0], nn.Upsample) else layer[1]
            return first[-1] if isinstance(first, nn.Sequential) else first

        def consumer(layer: nn.Sequential) -> nn.Conv2d:  # the first conv of a layer
            first = layer[0] if not isinstance(layer[0], nn.Upsample) else layer[1]
            return first[0] if isinstance(first, nn.Sequential) else first

        def gains(r: torch.Tensor, top: float, s: float) -> torch.Tensor:
            r = r.double().clamp_min(top * 1e-12 + 1e-30)
            return (top / r).pow(s).clamp(1.0, max_gain)

        def scale(conv: nn.Conv2d, a: torch.Tensor) -> None:  # producer: output channel c times a_c
            conv.weight.mul_(a.to(conv.weight.dtype).view(-1, 1, 1, 1))
            if conv.bias is not None:
                conv.bias.mul_(a.to(conv.bias.dtype))

        def unscale(conv: nn.Conv2d, a: torch.Tensor, start: int) -> None:  # consumer: input channels / a
            k = len(a)
            inv = (1.0 / a).to(conv.weight.dtype)
            if conv.groups == conv.in_channels and conv.groups > 1:  # depthwise: weight (C, 1, kh, kw)
                conv.weight[start:start + k].mul_(inv.view(-1, 1, 1, 1))
            elif conv.groups == 1:
                conv.weight[:, start:start + k].mul_(inv.view(1, -1, 1, 1))
            else:
                raise ValueError("grouped convolutions are not supported")

        # the decoder input of up[k] (k >= 1) is cat([U_{k-1}, D_{n-1-k}]); up[0] takes D_{n-1}
        for k in range(n):
            last = k == n - 1
            s = last_strength if last else strength
            parts = [] if k == 0 else [("u", k - 1)]
            parts.append(("d", n - 1 - k))
            r = [peaks[id(relu_u[j] if kind == "u" else relu_d[j])] for kind, j in parts]
            top = float(max(v.max() for v in r))
            offset = 0
            for (kind, j), rv in zip(parts, r):
                a = gains(rv, top, s)
                if kind == "u":
                    scale(producer(m.up[j]), a)
                else:
                    scale(producer(m.down[j]), a)
                    if j + 1 < n:  # D_j also feeds the next encoder level
                        unscale(consumer(m.down[j + 1]), a, 0)
                unscale(consumer(m.up[k]), a, offset)
                offset += len(rv)
        return m


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

"""CycleGAN networks: the ResNet generator, the 70x70 PatchGAN discriminator and a mobile generator.

Sources:

- J.-Y. Zhu, T. Park, P. Isola, A. A. Efros, "Unpaired Image-to-Image Translation using
  Cycle-Consistent Adversarial Networks", ICCV 2017 (arXiv:1703.10593), appendix 7.2: generator
  ``c7s1-64, d128, d256, R256 x 9, u128, u64, c7s1-3`` with reflection padding and instance norm;
  discriminator ``C64-C128-C256-C512`` (70x70 PatchGAN, no norm on the first layer, LeakyReLU 0.2).
- J. Johnson, A. Alahi, L. Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and
  Super-Resolution", ECCV 2016: the residual-block generator the CycleGAN generator follows.
- P. Isola, J.-Y. Zhu, T. Zhou, A. A. Efros, "Image-to-Image Translation with Conditional
  Adversarial Networks" (pix2pix), CVPR 2017: the PatchGAN discriminator.
- A. Odena, V. Dumoulin, C. Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016:
  resize-convolution upsampling (used by :class:`MobileResnetGenerator`).
- M. Li et al., "GAN Compression", CVPR 2020: depthwise-separable residual blocks for a compressed
  CycleGAN generator (2.67 GMACs); A. G. Howard et al., "MobileNets", 2017: depthwise-separable
  convolutions.
- B. Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only
  Inference", CVPR 2018: folding BatchNorm into the preceding convolution for int8 inference.

Complexity at a ``(1, 3, 256, 256)`` input, counted by ``torch.utils.flop_counter.FlopCounterMode``
(torch 2.13) through :func:`complexity`; MACs = counted FLOPs / 2 (the counter counts 2 FLOPs per
multiply-accumulate of convolutions and ignores biases, normalization and activations). The counter
counts a transposed convolution as ``input pixels x kernel taps x c_in x c_out`` (every input pixel
scattered through the whole kernel); counting it instead per *output* pixel, as if it were a dense
convolution on the zero-upsampled input, gives 4x more for the stride-2 layers:

================================  ==========  ======================  ===========================
network                           parameters  GMACs (torch counter)   GMACs (output-pixel count)
================================  ==========  ======================  ===========================
ResnetGenerator (ngf 64, 9 blk)   11,378,179  49.55                   56.80
ResnetGenerator (ngf 64, 6 blk)    7,837,699  35.06                   42.30
MobileResnetGenerator (default)      434,435   2.84                    2.84 (no transposed conv)
NLayerDiscriminator (70x70)        2,764,737   3.15                    3.15
================================  ==========  ======================  ===========================

The ResNet-9 figures match the issue's 49.6-56.8 GMACs. ``tests/test_cyclegan.py`` recounts the
mobile generator rather than trusting this table.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from faceforge.models.registry import InputSpec, ModelSpec, register_model

__all__ = ["ResnetGenerator", "ResnetBlock", "NLayerDiscriminator", "MobileResnetGenerator",
           "MobileResnetBlock", "ReflectionPad2d", "set_pad_mode", "init_weights", "complexity", "fold_batchnorm"]

NORMS = ("instance", "batch", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    """Normalization layer by name: ``instance`` (no affine, no running stats, as in CycleGAN),
    ``batch`` (affine, running stats) or ``none`` (identity)."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def _check_common(input_nc: int, output_nc: int, ngf: int, n_blocks: int, norm: str) -> None:
    if input_nc < 1 or output_nc < 1 or ngf < 1:
        raise ValueError(f"input_nc, output_nc and ngf must be >= 1, got {input_nc}, {output_nc}, {ngf}")
    if n_blocks < 0:
        raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def init_weights(module: nn.Module, gain: float = 0.02) -> nn.Module:
    """CycleGAN's initialisation (Zhu et al. 2017, sec. 4): conv weights ~ N(0, gain), biases 0,
    BatchNorm scale ~ N(1, gain) and shift 0. Applied in place; returns ``module``."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return module


# --------------------------------------------------------------------------------------------------
# Full-size generator and discriminator (Zhu et al. 2017)


class ResnetBlock(nn.Module):
    """Residual block ``x + [pad-conv3x3-norm-ReLU-pad-conv3x3-norm](x)`` (Johnson et al. 2016).

    Shapes: ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, channels: int, norm: str = "instance", padding: str = "reflect") -> None:
        super().__init__()
        bias = norm != "batch"  # instance norm here has no affine shift, so the conv keeps its bias
        pad = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d, "zero": nn.ZeroPad2d}[padding]
        self.body = nn.Sequential(
            pad(1), nn.Conv2d(channels, channels, 3, bias=bias), _norm(norm, channels), nn.ReLU(True),
            pad(1), nn.Conv2d(channels, channels, 3, bias=bias), _norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet generator (Zhu et al. 2017, appendix 7.2; Johnson et al. 2016).

    ``c7s1-ngf, d(2 ngf), d(4 ngf), R(4 ngf) x n_blocks, u(2 ngf), u(ngf), c7s1-output_nc``: a 7x7
    stem after reflection padding, two stride-2 3x3 convolutions, ``n_blocks`` residual blocks,
    two stride-2 transposed 3x3 convolutions (``output_padding=1``) and a 7x7 convolution with tanh.
    Every convolution but the last is followed by the normalization and ReLU.

    Args:
        input_nc: input channels (3 for RGB).
        output_nc: output channels.
        ngf: filters of the first layer (64 in the paper).
        n_blocks: residual blocks: 9 for 256x256 training images, 6 for 128x128 in the paper.
        norm: ``"instance"`` (the paper), ``"batch"`` or ``"none"``.

    Shapes:
        input ``(N, input_nc, H, W)`` float32 in [-1, 1] (RGB / 127.5 - 1), ``H`` and ``W``
        multiples of 4; output ``(N, output_nc, H, W)`` float32 in (-1, 1).

    Complexity at 256x256 (see the module docstring): 11.38 M parameters, 49.55 GMACs counted by
    ``torch.utils.flop_counter`` (56.80 counting transposed convolutions per output pixel).

    Raises:
        ValueError: bad sizes or norm name.
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance") -> None:
        _check_common(input_nc, output_nc, ngf, n_blocks, norm)
        super().__init__()
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=bias),
                                   _norm(norm, ngf), nn.ReLU(True)]
        for i in range(2):  # downsampling
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), _norm(norm, 2 * c), nn.ReLU(True)]
        layers += [ResnetBlock(4 * ngf, norm) for _ in range(n_blocks)]
        for i in range(2):  # learned upsampling
            c = ngf * 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                       _norm(norm, c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator (Isola et al. 2017; Zhu et al. 2017): a grid of real/fake scores.

    ``C(ndf)`` (stride 2, no norm) then ``n_layers - 1`` stride-2 ``C(ndf * min(2^i, 8))`` blocks, one
    stride-1 block, and a stride-1 convolution to one channel; all 4x4 kernels with padding 1,
    LeakyReLU(0.2) after every block. With ``n_layers=3`` each output score sees a 70x70 input
    patch. The output holds raw scores (no sigmoid; the LSGAN loss is applied to them).

    Args:
        input_nc: input channels.
        ndf: filters of the first layer (64).
        n_layers: stride-2 layers (3 gives the 70x70 PatchGAN).
        norm: ``"instance"`` (CycleGAN), ``"batch"`` or ``"none"``; never on the first layer.

    Shapes:
        input ``(N, input_nc, H, W)`` float32 in [-1, 1]; output ``(N, 1, H', W')`` with
        ``H' = H / 2^n_layers - 2`` for ``H`` divisible by ``2^n_layers`` (each stride-2 layer maps
        ``s -> floor(s / 2)``, each stride-1 layer ``s -> s - 1``): 30x30 for 256x256 input.

    Complexity at 256x256 with the defaults: 2,764,737 parameters, 3.15 GMACs (module docstring).

    Raises:
        ValueError: bad sizes or norm name.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance") -> None:
        if input_nc < 1 or ndf < 1 or n_layers < 1:
            raise ValueError(f"input_nc, ndf and n_layers must be >= 1, got {input_nc}, {ndf}, {n_layers}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        super().__init__()
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        c = ndf
        for i in range(1, n_layers + 1):
            c_next = ndf * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(c, c_next, 4, stride=stride, padding=1, bias=bias), _norm(norm, c_next),
                       nn.LeakyReLU(0.2, True)]
            c = c_next
        layers.append(nn.Conv2d(c, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# --------------------------------------------------------------------------------------------------
# Mobile generator


PAD_MODES = ("auto", "pad", "concat")


class ReflectionPad2d(nn.ReflectionPad2d):
    """Reflection padding by ``padding`` pixels on all four sides, written so LiteRT's XNNPACK delegate runs it.

    Numerically the same as :class:`torch.nn.ReflectionPad2d` (it is a subclass, so ``isinstance`` checks
    and ``state_dict`` keys are unchanged; it has no parameters) in one of two formulations, both pure
    copies of input values, so outputs are bit-identical:

    - ``"pad"``: one ``reflection_pad2d`` op (ONNX ``Pad`` with ``mode="reflect"``, TFLite ``MIRROR_PAD``).
    - ``"concat"``: ``padding`` rounds of ``cat([slice, x, slice])`` along W then H; round ``i`` (1-based)
      prepends column / row ``2i - 1`` and appends ``n - 2i`` of the tensor padded so far, which is the
      original's ``i`` and ``n - 1 - i`` (reflection along one axis commutes with the other, so the
      corners come out right). The axes alternate so no two concatenations along one axis are adjacent:
      the TFLite converter merges adjacent ones, and XNNPACK delegates a concatenation of at most four
      inputs (``VisitConcatenationNode`` in TensorFlow Lite's ``xnnpack_delegate.cc``), not the
      7-input one a merged 3-pixel pad would be.
    - ``"auto"`` (default): ``"concat"`` while ``torch.export`` traces the model for a converter other
      than ONNX (``torch.compiler.is_exporting()`` and not ``torch.onnx.is_in_onnx_export()``: the
      litert-torch path), ``"pad"`` otherwise (eager PyTorch, ONNX, TorchScript for Core ML), where the
      single op is the faster one.

    Why: XNNPACK has no ``MIRROR_PAD`` kernel, so every reflection pad of ``cyclegan_mobile`` (22 of them)
    ended an XNNPACK partition: the int8 file ran as 23 delegate partitions with the 22 pads on TFLite's
    single-threaded builtin kernels, 4-5x slower than the same graph with these slices and
    concatenations, which XNNPACK delegates (``benchmarks/results/generator_latency*.md``, "pad" rows).

    Args:
        padding: pixels added on each side (an int, smaller than the input's height and width).
        mode: one of :data:`PAD_MODES`.

    Shapes: ``(N, C, H, W) -> (N, C, H + 2 padding, W + 2 padding)``, any dtype.

    Raises:
        ValueError: ``padding`` not a non-negative int, or an unknown ``mode``.
    """

    def __init__(self, padding: int, mode: str = "auto") -> None:
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be a non-negative int, got {padding!r}")
        super().__init__(padding)
        self.mode = mode
        if mode not in PAD_MODES:
            raise ValueError(f"mode must be one of {PAD_MODES}, got {mode!r}")

    def resolved_mode(self) -> str:
        """``"pad"`` or ``"concat"``: what :meth:`forward` runs now (``"auto"`` resolved as documented)."""
        if self.mode != "auto":
            return self.mode
        return "concat" if torch.compiler.is_exporting() and not torch.onnx.is_in_onnx_export() else "pad"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resolved_mode() == "pad":
            return super().forward(x)
        p = self.padding[0]
        for i in range(1, p + 1):
            for d in (-1, -2):
                n = x.shape[d]
                x = torch.cat([x.narrow(d, 2 * i - 1, 1), x, x.narrow(d, n - 2 * i, 1)], d)
        return x

    def extra_repr(self) -> str:
        return f"{self.padding[0]}, mode={self.mode!r}"


def set_pad_mode(model: nn.Module, mode: str) -> nn.Module:
    """Set the formulation of every :class:`ReflectionPad2d` in ``model`` (in place; returns ``model``).

    Outputs do not change (see :class:`ReflectionPad2d`); only the exported graph does. Used by the
    latency benchmark to time the ``"pad"`` (MIRROR_PAD) and ``"concat"`` graphs side by side.

    Raises:
        ValueError: unknown ``mode``.
    """
    if mode not in PAD_MODES:
        raise ValueError(f"mode must be one of {PAD_MODES}, got {mode!r}")
    for m in model.modules():
        if isinstance(m, ReflectionPad2d):
            m.mode = mode
    return model


class SeparableConv(nn.Sequential):
    """Reflection pad 1 (:class:`ReflectionPad2d`), depthwise 3x3 convolution (no bias), pointwise 1x1
    convolution.

    Shapes: ``(N, c_in, H, W) -> (N, c_out, H, W)``.
    """

    def __init__(self, c_in: int, c_out: int, bias: bool) -> None:
        super().__init__(ReflectionPad2d(1), nn.Conv2d(c_in, c_in, 3, groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1, bias=bias))


class MobileResnetBlock(nn.Module):
    """Depthwise-separable residual block: ``x + s * [sep-norm-ReLU-sep-norm](x)``.

    ``sep`` is :class:`SeparableConv` (reflection pad, depthwise 3x3, pointwise 1x1); ``s`` is the
    residual scale (Szegedy et al. 2017; Lim et al., EDSR, 2017), which keeps activations bounded when
    there is no normalization.

    Shapes: ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, channels: int, norm: str = "batch", residual_scale: float = 1.0) -> None:
        super().__init__()
        bias = norm == "none"
        self.body = nn.Sequential(
            SeparableConv(channels, channels, bias), _norm(norm, channels), nn.ReLU(True),
            SeparableConv(channels, channels, bias), _norm(norm, channels),
        )
        self.residual_scale = float(residual_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + (y if self.residual_scale == 1.0 else y * self.residual_scale)


class MobileResnetGenerator(nn.Module):
    """A CycleGAN generator for phones: <= 3 GMACs at 256x256, built to survive full-integer int8.

    Layout (``C = ngf``): ``c7s1-C`` stem (reflection pad 3, 7x7 conv), two stride-2 3x3
    convolutions to ``2C`` and ``4C``, ``n_blocks`` :class:`MobileResnetBlock` at ``4C`` (1/4
    resolution), then twice: ``upsample x2`` (nearest or bilinear) + :class:`SeparableConv` halving the
    channels (resize-convolution, Odena et al. 2016), and a ``c7s1-output_nc`` convolution with tanh.
    Every convolution but the last is followed by the normalization and ReLU.

    Design choices for integer inference (EXPORT_NOTES: instance norm and transposed convolutions
    were the full-int8 culprits, 24-33 dB PSNR on random CycleGANs):

    - **BatchNorm** (default ``norm="batch"``), folded into the preceding convolution at export
      (:func:`fold_batchnorm`; Jacob et al. 2018). In eval mode BatchNorm is a fixed per-channel affine
      map, so the exported graph is only conv + bias + ReLU, the pattern int8 kernels fuse and
      calibrate well (per-channel weight scales absorb the BN scales). Instance norm instead computes a
      per-image mean and variance at run time (reductions, ``rsqrt``, a division): its intermediate
      values have an image-dependent range that static calibration cannot capture, and converters
      expand it into many small ops (48 transposes in the ResNet-9 via litert-torch). Train with
      batches of >= 4 so the running statistics match what the network sees in training
      (``norm="instance"`` is available for comparison, ``norm="none"`` with ``residual_scale`` ~0.1-0.2
      as a normalization-free alternative).
    - **Resize-convolution** instead of transposed convolution: nearest-neighbour upsampling is a pure
      index copy (exact in int8, no requantization) and removes checkerboard artifacts; transposed
      convolutions were the other int8 trouble spot and ``output_padding`` broke litert-torch.
    - **Depthwise-separable** residual blocks and upsampling convolutions (MobileNets; GAN
      Compression): the full ResNet-9 spends 43.5 of its 49.6 GMACs in dense 3x3 residual convolutions.
    - Only ReLU inside the network and tanh at the end (both have exact int8 kernels); reflection
      padding is a copy, exact in int8, written as slices and concatenations in LiteRT graphs
      (:class:`ReflectionPad2d`: XNNPACK has no ``MIRROR_PAD`` kernel).

    Args:
        input_nc: input channels.
        output_nc: output channels.
        ngf: filters of the first layer (32; the bottleneck has ``4 * ngf``).
        n_blocks: residual blocks.
        norm: ``"batch"`` (default), ``"instance"`` or ``"none"``.
        upsample: ``"nearest"`` (default) or ``"bilinear"`` (``align_corners=False``).
        residual_scale: multiplier of each residual branch; ``None`` = 1.0 with a normalization,
            0.2 with ``norm="none"``.

    Shapes:
        input ``(N, input_nc, H, W)`` float32 in [-1, 1], ``H`` and ``W`` multiples of 4;
        output ``(N, output_nc, H, W)`` float32 in (-1, 1).

    Complexity at 256x256 with the defaults (module docstring): 434,435 parameters, 2.84 GMACs
    (``torch.utils.flop_counter``; no transposed convolutions, so no counting ambiguity).

    Raises:
        ValueError: bad sizes, norm or upsample name.
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 32, n_blocks: int = 9,
                 norm: str = "batch", upsample: str = "nearest", residual_scale: float | None = None) -> None:
        _check_common(input_nc, output_nc, ngf, n_blocks, norm)
        if upsample not in ("nearest", "bilinear"):
            raise ValueError(f"upsample must be 'nearest' or 'bilinear', got {upsample!r}")
        super().__init__()
        if residual_scale is None:
            residual_scale = 0.2 if norm == "none" else 1.0
        bias = norm == "none" or norm == "instance"
        layers: list[nn.Module] = [ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=bias),
                                   _norm(norm, ngf), nn.ReLU(True)]
        for i in range(2):
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), _norm(norm, 2 * c), nn.ReLU(True)]
        layers += [MobileResnetBlock(4 * ngf, norm, residual_scale) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            up = (nn.Upsample(scale_factor=2, mode="nearest") if upsample == "nearest"
                  else nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            layers += [up, SeparableConv(c, c // 2, bias), _norm(norm, c // 2), nn.ReLU(True)]
        layers += [ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d into the convolution right before it, in place.

    ``y = gamma * (W x + b - mean) / sqrt(var + eps) + beta`` becomes a convolution with weights
    ``W * gamma / sqrt(var + eps)`` (per output channel) and bias ``(b - mean) * gamma / sqrt(var + eps)
    + beta``; the BatchNorm is replaced by ``nn.Identity`` (Jacob et al. 2018). A BatchNorm is folded
    when its preceding sibling in an ``nn.Sequential`` is a convolution or a (nested) ``nn.Sequential``
    ending in one (the layout of this module's networks); others are left in place.

    Args:
        model: a network in eval mode.

    Returns:
        ``model`` (same object), numerically equivalent in eval mode up to float rounding.

    Raises:
        ValueError: ``model`` is in training mode (batch statistics cannot be folded).
    """
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode (call model.eval())")
    def last_conv(m: nn.Module) -> nn.Module:
        while isinstance(m, nn.Sequential) and len(m):
            m = m[-1]
        return m

    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        children = list(seq.named_children())
        for (_, prev), (bn_name, bn) in zip(children, children[1:]):
            conv = last_conv(prev)
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)):
                continue
            with torch.no_grad():
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
                new_bias = (bias - bn.running_mean) * scale + bn.bias
                if conv.bias is None:
                    conv.bias = nn.Parameter(new_bias)
                else:
                    conv.bias.copy_(new_bias)
            setattr(seq, bn_name, nn.Identity())
    return model


def complexity(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 256, 256)) -> dict[str, Any]:
    """Parameters and multiply-accumulates of ``model`` on one input, counted by PyTorch.

    Uses ``torch.utils.flop_counter.FlopCounterMode`` (counts matrix products and convolutions;
    biases, normalization, activations, padding and resizing are not counted). MACs = FLOPs / 2.
    Transposed convolutions are counted per *input* pixel (the counter's convention); see
    ``macs_output_pixel`` for the per-output-pixel count.

    The count runs on a copy of ``model`` on PyTorch's ``meta`` device (shapes only, no arithmetic),
    so it costs milliseconds even for the 50-GMAC generator; ``model`` itself is not touched.

    Args:
        model: the network (the copy keeps its train/eval mode; the count runs under ``torch.no_grad``).
        input_shape: ``(N, C, H, W)``; the batch size multiplies the MACs.

    Returns:
        ``{"params": int, "macs": int, "macs_output_pixel": int, "counter": str}``.
    """
    params = sum(p.numel() for p in model.parameters())
    model = copy.deepcopy(model).to("meta")
    transposed_extra = 0
    hooks = []

    def _hook(mod: nn.ConvTranspose2d, _inp, out) -> None:
        nonlocal transposed_extra
        n, c_out, h, w = out.shape
        per_output = n * h * w * c_out * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        x = _inp[0]
        per_input = (x.shape[0] * x.shape[2] * x.shape[3] * mod.in_channels * (c_out // mod.groups)
                     * mod.kernel_size[0] * mod.kernel_size[1])
        transposed_extra += per_output - per_input

    for m in model.modules():
        if isinstance(m, nn.ConvTranspose2d):
            hooks.append(m.register_forward_hook(_hook))
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(torch.zeros(input_shape, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    macs = counter.get_total_flops() // 2
    return {"params": params, "macs": int(macs),
            "macs_output_pixel": int(macs + transposed_extra),
            "counter": f"torch.utils.flop_counter.FlopCounterMode (torch {torch.__version__})"}


# --------------------------------------------------------------------------------------------------
# Registry

_INPUT = InputSpec(shape=(3, 256, 256), colour="rgb", value_range=(-1.0, 1.0), face_template="utkface")

register_model(ModelSpec(
    name="cyclegan_resnet9", task="translate", factory=ResnetGenerator,
    kwargs={"input_nc": 3, "output_nc": 3, "ngf": 64, "n_blocks": 9, "norm": "instance"},
    input=_INPUT,
    source="Zhu, Park, Isola, Efros, ICCV 2017 (arXiv:1703.10593); Johnson et al., ECCV 2016",
    description="CycleGAN ResNet-9 generator (server), 256x256 RGB -> RGB in [-1, 1]; 11.4 M params, 49.55 GMACs",
))

register_model(ModelSpec(
    name="cyclegan_mobile", task="translate", factory=MobileResnetGenerator,
    kwargs={"input_nc": 3, "output_nc": 3, "ngf": 32, "n_blocks": 9, "norm": "batch", "upsample": "nearest"},
    input=_INPUT,
    source="faceforge; depthwise-separable blocks after GAN Compression (Li et al., CVPR 2020), "
           "resize-convolution (Odena et al., Distill 2016), BatchNorm folding (Jacob et al., CVPR 2018)",
    description="mobile CycleGAN generator (phones), 256x256 RGB -> RGB in [-1, 1]; 0.43 M params, 2.84 GMACs",
))

"""StyleGAN2 generator and discriminator in plain PyTorch, readable top to bottom.

Source: Karras, Laine, Aittala, Hellsten, Lehtinen, Aila, "Analyzing and Improving the Image Quality of
StyleGAN", CVPR 2020 (arXiv:1912.04958), configuration "F" (skip generator, residual discriminator).
Written for faceforge from the paper; the parameter layout follows the published NVlabs
stylegan2-ada-pytorch naming (``mapping.fc{i}``, ``synthesis.b{res}.conv0|conv1|torgb``) so that
published checkpoints convert with a renaming only (see :mod:`faceforge.models.stylegan2_convert`).

Overview (R = output resolution, a power of two >= 8; ``num_ws = 2 * log2(R) - 2``)::

    z (N, z_dim) --normalize 2nd moment--> 8 x [FC + lrelu] (lr x 0.01) --> w (N, w_dim)
      --broadcast--> ws (N, num_ws, w_dim) --truncation: w_avg + psi (w - w_avg)-->
    synthesis:  const (C4, 4, 4) -> b4: conv1(ws[0]) -> torgb(ws[1])                     img 4x4
                b8:  conv0 (up x2, ws[1]) -> conv1(ws[2]) -> torgb(ws[3]); img = up(img) + rgb
                ...                                                                       img R x R

Every convolution of the synthesis network is *modulated* (its input channels scaled by a per-sample
style ``s = A(w)``, the learned affine ``A`` initialised to output 1) and, except toRGB, *demodulated*
(each output filter renormalised to unit L2 norm, replacing AdaIN; paper section 2.2). Noise: one
``(N, 1, H, W)`` Gaussian image per layer times a learned per-layer strength (initialised to 0).

Layer ``i`` of ``ws`` drives: ``i = 0`` the 4x4 conv; for block ``b = 2**k`` (k >= 3) ``i = 2k-5`` its
up-conv and the previous block's toRGB, ``i = 2k-4`` its second conv, ``i = 2k-3`` its toRGB. So the
first few layers are the coarse styles (pose, face shape, hair), the last ones the fine ones (colour,
micro-texture). Style mixing with crossover ``c`` takes ``ws[:, :c]`` from A and ``ws[:, c:]`` from B.

Resampling. The official code resamples with ``upfirdn2d`` and the separable FIR filter
``[1, 3, 3, 1]`` (normalised to unit sum), a custom CUDA op. Here the same filter and the same padding
are applied with stock ``F.conv2d`` / ``F.conv_transpose2d`` (depthwise, constant weights), so:
(a) published weights reproduce the published images (a bilinear upsampler would shift and blur them
slightly), (b) everything runs on the CPU and exports to ONNX with standard operators. For a symmetric
4-tap filter, "zero-insert, pad (2, 1), convolve with 4f" (upfirdn2d's 2x upsampling) equals a stride-2
transposed depthwise convolution with padding 1, which is what :func:`upsample2d` computes.

Equalized learning rate (Karras et al. 2018, ProGAN): weights are stored ``~ N(0, 1) / lr_multiplier``
and multiplied at run time by ``lr_multiplier / sqrt(fan_in)``; biases stored raw, multiplied by
``lr_multiplier``. The demodulated convolutions skip that gain since demodulation cancels it (as the
NVlabs implementation does; the rosinality one applies it, which differs only inside the 1e-8 epsilon).

Modulated convolution has two equivalent implementations: ``fused=True`` (default) builds one weight per
sample and runs one grouped convolution with ``groups = N`` (paper appendix B); ``fused=False`` scales
activations before and after a shared-weight convolution (batch-size independent: use it to export an
ONNX file with a dynamic batch dimension; the fused graph bakes ``N`` into ``groups``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from faceforge.models.registry import InputSpec, ModelSpec, register_model

#: Gain after leaky ReLU (slope 0.2) that keeps the activations' second moment: sqrt(2).
LRELU_GAIN = math.sqrt(2.0)
#: Official resampling filter (binomial, separable), before normalisation.
RESAMPLE_FILTER = (1.0, 3.0, 3.0, 1.0)
NOISE_MODES = ("random", "const", "none")


# --------------------------------------------------------------------------------------------------
# Resampling with the [1, 3, 3, 1] FIR filter (plain PyTorch equivalent of upfirdn2d)
# --------------------------------------------------------------------------------------------------
def make_filter(taps: Sequence[float] = RESAMPLE_FILTER) -> torch.Tensor:
    """2-D separable FIR filter ``outer(taps, taps)`` normalised to sum 1: float32 ``(K, K)``."""
    t = torch.tensor(taps, dtype=torch.float32)
    f = torch.outer(t, t)
    return f / f.sum()


def fir_filter(x: torch.Tensor, f: torch.Tensor, pad: tuple[int, int], gain: float = 1.0,
               stride: int = 1) -> torch.Tensor:
    """Depthwise 2-D FIR filtering of every channel: pad by ``pad = (before, after)`` on both axes,
    convolve with ``f * gain``, keep every ``stride``-th pixel (upfirdn2d with up=1, down=stride).

    Args:
        x: ``(N, C, H, W)`` float.
        f: ``(K, K)`` symmetric filter (convolution and correlation coincide).
        pad: zero padding before/after along H and W.
        gain: overall multiplier.
        stride: downsampling factor.

    Returns:
        ``(N, C, (H + sum(pad) - K) // stride + 1, ...)``.
    """
    c = x.shape[1]
    weight = (f * gain).to(x.dtype).expand(c, 1, *f.shape)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    return F.conv2d(x, weight, stride=stride, groups=c)


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x FIR upsampling, ``(N, C, H, W) -> (N, C, 2H, 2W)``; equals upfirdn2d ``upsample2d`` with a
    4-tap symmetric filter (zero insertion, padding (2, 1), gain 4) as one transposed depthwise conv."""
    c = x.shape[1]
    weight = (f * 4.0).to(x.dtype).expand(c, 1, *f.shape)
    return F.conv_transpose2d(x, weight, stride=2, padding=1, groups=c)


def downsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x FIR downsampling, ``(N, C, H, W) -> (N, C, H/2, W/2)`` (upfirdn2d ``downsample2d``)."""
    return fir_filter(x, f, pad=(1, 1), stride=2)


def bias_act(x: torch.Tensor, bias: torch.Tensor | None, act: bool = True,
             clamp: float | None = None) -> torch.Tensor:
    """Add a per-channel bias, then leaky ReLU (slope 0.2) times sqrt(2) if ``act``, then clamp to
    ``[-clamp, clamp]`` when given (StyleGAN2-ADA's ``conv_clamp``). ``x``: ``(N, C, ...)``."""
    if bias is not None:
        x = x + bias.reshape(1, -1, *([1] * (x.ndim - 2)))
    if act:
        x = F.leaky_relu(x, 0.2) * LRELU_GAIN
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


# --------------------------------------------------------------------------------------------------
# Equalized-learning-rate layers
# --------------------------------------------------------------------------------------------------
class FullyConnected(nn.Module):
    """Linear layer with equalized learning rate (ProGAN), optional lrelu.

    Args:
        in_features, out_features: sizes.
        activation: apply leaky ReLU (0.2) x sqrt(2) after the bias.
        lr_multiplier: learning-rate multiplier (0.01 in the mapping network).
        bias_init: initial effective bias (1 for the style affines, so styles start at 1).

    Shapes: ``(N, in_features) -> (N, out_features)``.
    """

    def __init__(self, in_features: int, out_features: int, activation: bool = False,
                 lr_multiplier: float = 1.0, bias_init: float = 0.0) -> None:
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_multiplier))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return F.leaky_relu(x, 0.2) * LRELU_GAIN if self.activation else x


class Conv2dLayer(nn.Module):
    """Convolution with equalized learning rate for the discriminator, optional 2x FIR downsampling.

    Args:
        in_channels, out_channels, kernel_size: as ``nn.Conv2d`` (square kernel, "same" padding).
        bias: learn a bias.
        activation: leaky ReLU (0.2) x sqrt(2).
        down: blur with [1,3,3,1] then stride 2 (padding as upfirdn2d's conv2d_resample).

    Shapes: ``(N, Cin, H, W) -> (N, Cout, H, W)`` or ``(N, Cout, H/2, W/2)`` when ``down``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: bool = True, down: bool = False) -> None:
        super().__init__()
        self.activation, self.down, self.padding = activation, down, kernel_size // 2
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        if down:
            self.register_buffer("resample_filter", make_filter(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        k = w.shape[-1]
        if self.down:
            if k == 1:  # 1x1: filter-and-subsample first, then the pointwise conv
                x = F.conv2d(downsample2d(x, self.resample_filter), w)
            else:       # blur with padding (k-1)/2 + 1 each side, then strided conv
                x = fir_filter(x, self.resample_filter, pad=(self.padding + 1, self.padding + 1))
                x = F.conv2d(x, w, stride=2)
        else:
            x = F.conv2d(x, w, padding=self.padding)
        return bias_act(x, self.bias, act=self.activation)


# --------------------------------------------------------------------------------------------------
# Modulated convolution
# --------------------------------------------------------------------------------------------------
def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     up: bool = False, resample_filter: torch.Tensor | None = None,
                     fused: bool = True) -> torch.Tensor:
    """Modulated (and optionally demodulated) convolution, StyleGAN2 paper section 2.2, eq. 1-3.

    ``w'_ijk = s_i * w_ijk``; with demodulation ``w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + 1e-8)``.

    Args:
        x: ``(N, Cin, H, W)`` float.
        weight: ``(Cout, Cin, k, k)``, odd ``k``, "same" padding.
        styles: ``(N, Cin)`` per-sample input-channel scales.
        demodulate: normalise each output filter per sample.
        up: 2x upsampling: transposed stride-2 conv, then [1,3,3,1] blur with padding (1, 1) and gain 4
            (the official conv2d_resample path; the weight is used as stored, not flipped).
        resample_filter: ``(4, 4)`` filter from :func:`make_filter`, needed when ``up``.
        fused: one grouped convolution (``groups = N``) with per-sample weights; ``False`` scales the
            activations instead (same result up to rounding, batch-size independent graph).

    Returns:
        ``(N, Cout, H, W)``, or ``(N, Cout, 2H, 2W)`` when ``up``.
    """
    n, cin, h, w_ = x.shape
    cout, _, kh, kw = weight.shape
    wmod = weight.unsqueeze(0) * styles.reshape(n, 1, cin, 1, 1)            # (N, Cout, Cin, k, k)
    dcoefs = (wmod.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt() if demodulate else None  # (N, Cout)

    if fused:
        if dcoefs is not None:
            wmod = wmod * dcoefs.reshape(n, cout, 1, 1, 1)
        x = x.reshape(1, n * cin, h, w_)
        if up:
            wt = wmod.transpose(1, 2).reshape(n * cin, cout, kh, kw)        # conv_transpose layout
            x = F.conv_transpose2d(x, wt, stride=2, groups=n)
        else:
            x = F.conv2d(x, wmod.reshape(n * cout, cin, kh, kw), padding=kh // 2, groups=n)
        x = x.reshape(n, cout, x.shape[2], x.shape[3])
    else:
        x = x * styles.reshape(n, cin, 1, 1)
        if up:
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
        else:
            x = F.conv2d(x, weight, padding=kh // 2)
        if dcoefs is not None:
            x = x * dcoefs.reshape(n, cout, 1, 1)
    if up:  # (2H+1) x (2W+1) for k=3 -> blur -> 2H x 2W
        pad = (kh - 1) // 2
        x = fir_filter(x, resample_filter, pad=(pad, pad), gain=4.0)
    return x


class SynthesisLayer(nn.Module):
    """Modulated, demodulated 3x3 convolution + noise + bias + lrelu ("StyledConv").

    Args:
        in_channels, out_channels: feature maps.
        w_dim: style vector size.
        resolution: output side in pixels (size of the fixed noise image).
        up: 2x upsampling before the convolution (first layer of each block >= 8x8).
        use_noise: add per-pixel noise scaled by the learned ``noise_strength``.
        conv_clamp: clamp activations to ``[-conv_clamp, conv_clamp]`` (None: no clamp).

    Parameters: ``affine`` (``A``: w -> styles, bias init 1), ``weight`` ``(Cout, Cin, 3, 3)``, ``bias``
    ``(Cout,)``, ``noise_strength`` ``()``; buffer ``noise_const`` ``(res, res)`` used by
    ``noise_mode="const"``.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False,
                 use_noise: bool = True, conv_clamp: float | None = None, kernel_size: int = 3) -> None:
        super().__init__()
        self.up, self.use_noise, self.resolution, self.conv_clamp = up, use_noise, resolution, conv_clamp
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        if use_noise:
            self.noise_strength = nn.Parameter(torch.zeros([]))
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
        if up:
            self.register_buffer("resample_filter", make_filter(), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random",
                fused: bool = True) -> torch.Tensor:
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight, styles, demodulate=True, up=self.up,
                             resample_filter=getattr(self, "resample_filter", None), fused=fused)
        if self.use_noise and noise_mode != "none":
            if noise_mode == "random":
                noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device,
                                    dtype=x.dtype)
            else:
                noise = self.noise_const
            x = x + noise * self.noise_strength
        return bias_act(x, self.bias, act=True, clamp=self.conv_clamp)


class ToRGB(nn.Module):
    """Modulated 1x1 convolution to RGB, no demodulation, linear (skip-architecture output branch).

    Shapes: ``x (N, Cin, H, W), w (N, w_dim) -> (N, img_channels, H, W)``.
    """

    def __init__(self, in_channels: int, w_dim: int, img_channels: int = 3,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused)
        return bias_act(x, self.bias, act=False, clamp=self.conv_clamp)


# --------------------------------------------------------------------------------------------------
# Mapping network
# --------------------------------------------------------------------------------------------------
class MappingNetwork(nn.Module):
    """z -> W: normalise z's second moment, ``num_layers`` FC + lrelu layers with lr multiplier 0.01,
    broadcast to ``num_ws`` layers, truncation towards the tracked average ``w_avg``.

    Args:
        z_dim, w_dim: latent sizes.
        num_ws: number of per-layer style vectors the synthesis network consumes.
        num_layers: FC layers (8 in the paper).
        lr_multiplier: equalized-lr multiplier of the FC layers (0.01 in the paper).
        w_avg_beta: decay of the EMA of W tracked during training (0.995 as in StyleGAN2-ADA).

    Buffer ``w_avg`` ``(w_dim,)``: running mean of W, updated when training (see :meth:`forward`).
    """

    def __init__(self, z_dim: int, w_dim: int, num_ws: int, num_layers: int = 8, lr_multiplier: float = 0.01,
                 w_avg_beta: float = 0.995) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, w_dim, num_ws, num_layers
        self.w_avg_beta = w_avg_beta
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnected(z_dim if i == 0 else w_dim, w_dim, activation=True,
                                                   lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, psi: float = 1.0, cutoff: int | None = None,
                update_w_avg: bool | None = None) -> torch.Tensor:
        """Map latents to per-layer styles.

        Args:
            z: ``(N, z_dim)`` float32, any scale (normalised to unit second moment; samples of N(0, I)).
            psi: truncation ``w <- w_avg + psi (w - w_avg)``; 1 = none, 0 = the average face.
            cutoff: truncate only layers ``[0, cutoff)``; ``None`` = all.
            update_w_avg: move ``w_avg`` towards this batch's mean W (EMA with ``w_avg_beta``);
                ``None`` = when the module is in training mode.

        Returns:
            ws ``(N, num_ws, w_dim)`` float32.

        Raises:
            ValueError: ``z`` is not ``(N, z_dim)``.
        """
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be (N, {self.z_dim}), got {tuple(z.shape)}")
        x = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if update_w_avg if update_w_avg is not None else self.training:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        return truncate(ws, self.w_avg, psi, cutoff)


def truncate(ws: torch.Tensor, w_avg: torch.Tensor, psi: float = 1.0, cutoff: int | None = None) -> torch.Tensor:
    """Truncation trick: ``w_avg + psi * (ws - w_avg)`` on layers ``[0, cutoff)`` (all if ``None``).

    Args:
        ws: ``(N, num_ws, w_dim)``.
        w_avg: ``(w_dim,)``.
        psi: 1 leaves ``ws`` unchanged (returned as is); 0 gives ``w_avg``.
        cutoff: number of leading layers to truncate.

    Returns:
        ``(N, num_ws, w_dim)``.
    """
    if psi == 1.0:
        return ws
    cutoff = ws.shape[1] if cutoff is None else cutoff
    head = w_avg.lerp(ws[:, :cutoff], psi)
    return torch.cat([head, ws[:, cutoff:]], dim=1)


def mix_styles(ws_a: torch.Tensor, ws_b: torch.Tensor, crossover: int) -> torch.Tensor:
    """Style mixing: layers ``[0, crossover)`` from ``ws_a`` (coarse), ``[crossover, num_ws)`` from ``ws_b``.

    Args:
        ws_a, ws_b: ``(N, num_ws, w_dim)`` (or broadcastable ``(1, num_ws, w_dim)``).
        crossover: layer index in ``[0, num_ws]``; 0 = all B, ``num_ws`` = all A.

    Returns:
        ``(N, num_ws, w_dim)``.

    Raises:
        ValueError: shapes differ in ``num_ws``/``w_dim`` or ``crossover`` out of range.
    """
    if ws_a.shape[1:] != ws_b.shape[1:]:
        raise ValueError(f"ws shapes differ: {tuple(ws_a.shape)} vs {tuple(ws_b.shape)}")
    if not 0 <= crossover <= ws_a.shape[1]:
        raise ValueError(f"crossover must be in [0, {ws_a.shape[1]}], got {crossover}")
    n = max(ws_a.shape[0], ws_b.shape[0])
    ws_a, ws_b = ws_a.expand(n, -1, -1), ws_b.expand(n, -1, -1)
    return torch.cat([ws_a[:, :crossover], ws_b[:, crossover:]], dim=1)


# --------------------------------------------------------------------------------------------------
# Synthesis network (skip architecture)
# --------------------------------------------------------------------------------------------------
def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at a resolution: ``min(channel_base // resolution, channel_max)`` (StyleGAN2-ADA rule;
    rosinality's ``channel_multiplier`` m corresponds to ``channel_base = 16384 * m, channel_max = 512``)."""
    return min(channel_base // resolution, channel_max)


def _check_resolution(resolution: int) -> int:
    if not isinstance(resolution, int) or resolution < 8 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two >= 8, got {resolution!r}")
    return int(math.log2(resolution))


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: [const | up-conv0], conv1, toRGB.

    Returns ``(x, img)`` with the block's features and the running RGB image (upsampled previous image
    plus this block's toRGB output).
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int = 3,
                 use_noise: bool = True, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.resolution = resolution
        if resolution == 4:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True,
                                        use_noise=use_noise, conv_clamp=conv_clamp)
            self.register_buffer("resample_filter", make_filter(), persistent=False)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, use_noise=use_noise,
                                    conv_clamp=conv_clamp)
        self.torgb = ToRGB(out_channels, w_dim, img_channels, conv_clamp=conv_clamp)
        self.num_conv = 1 if resolution == 4 else 2

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
                noise_mode: str, fused: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``ws``: ``(N, num_conv + 1, w_dim)`` - this block's convs, then its toRGB."""
        if self.resolution == 4:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            x = self.conv1(x, ws[:, 0], noise_mode, fused)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode, fused)
            x = self.conv1(x, ws[:, 1], noise_mode, fused)
        y = self.torgb(x, ws[:, self.num_conv], fused)
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws ``(N, num_ws, w_dim)`` -> image ``(N, img_channels, R, R)``; skip architecture.

    Args:
        w_dim: style size.
        resolution: output side, power of two >= 8.
        channel_base, channel_max: feature maps per resolution, see :func:`channels_at`.
        img_channels: output channels (3 = RGB).
        use_noise: per-layer noise inputs.
        conv_clamp: activation clamp (StyleGAN2-ADA uses 256 when training in fp16; None = none).
    """

    def __init__(self, w_dim: int, resolution: int, channel_base: int = 16384, channel_max: int = 512,
                 img_channels: int = 3, use_noise: bool = True, conv_clamp: float | None = None) -> None:
        super().__init__()
        log2 = _check_resolution(resolution)
        self.w_dim, self.resolution, self.img_channels = w_dim, resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        self.num_ws = 2 * log2 - 2
        for res in self.block_resolutions:
            cin = channels_at(res // 2, channel_base, channel_max) if res > 4 else 0
            cout = channels_at(res, channel_base, channel_max)
            setattr(self, f"b{res}", SynthesisBlock(cin, cout, w_dim, res, img_channels, use_noise, conv_clamp))

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", fused: bool = True) -> torch.Tensor:
        """Render images from per-layer styles (W+).

        Args:
            ws: ``(N, num_ws, w_dim)`` float32.
            noise_mode: ``"random"`` (fresh Gaussian noise, as in training), ``"const"`` (the stored
                ``noise_const`` images: deterministic), ``"none"`` (no noise).
            fused: grouped-conv modulation (see :func:`modulated_conv2d`).

        Returns:
            ``(N, img_channels, R, R)`` float32, roughly in [-1, 1] once trained (not clamped).

        Raises:
            ValueError: wrong ``ws`` shape or unknown ``noise_mode``.
        """
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be (N, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws[:, w_idx:w_idx + block.num_conv + 1], noise_mode, fused)
            w_idx += block.num_conv
        return img


# --------------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------------
class StyleGAN2Generator(nn.Module):
    """StyleGAN2 generator (config F: skip architecture), any power-of-two resolution >= 8.

    Args:
        resolution: output side R in pixels, power of two >= 8.
        z_dim: latent size (512 in the paper).
        w_dim: intermediate latent / style size (512 in the paper).
        channel_base: feature maps at resolution r are ``min(channel_base // r, channel_max)``
            (FFHQ 1024: 32768; rosinality ``channel_multiplier=m``: ``16384 * m``).
        channel_max: cap on feature maps (512 in the paper).
        mapping_layers: FC layers in the mapping network (8).
        mapping_lr_multiplier: equalized-lr multiplier of the mapping network (0.01).
        w_avg_beta: EMA decay of the tracked W average.
        img_channels: 3 (RGB).
        use_noise: noise inputs.
        conv_clamp: activation clamp (None = none).
        fused_modconv: grouped-conv modulation (True) or activation scaling (False).

    Submodules: ``mapping`` (:class:`MappingNetwork`: ``mapping(z, psi, cutoff) -> ws``) and
    ``synthesis`` (:class:`SynthesisNetwork`: ``synthesis(ws) -> img``).

    Example:
        >>> g = StyleGAN2Generator(resolution=16, z_dim=32, w_dim=32, channel_base=256, channel_max=32)
        >>> g(torch.randn(2, 32)).shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(self, resolution: int = 64, z_dim: int = 512, w_dim: int = 512, channel_base: int = 16384,
                 channel_max: int = 512, mapping_layers: int = 8, mapping_lr_multiplier: float = 0.01,
                 w_avg_beta: float = 0.995, img_channels: int = 3, use_noise: bool = True,
                 conv_clamp: float | None = None, fused_modconv: bool = True) -> None:
        super().__init__()
        self.resolution, self.z_dim, self.w_dim, self.img_channels = resolution, z_dim, w_dim, img_channels
        self.fused_modconv = fused_modconv
        self.synthesis = SynthesisNetwork(w_dim, resolution, channel_base, channel_max, img_channels,
                                          use_noise, conv_clamp)
        self.mapping = MappingNetwork(z_dim, w_dim, self.synthesis.num_ws, mapping_layers,
                                      mapping_lr_multiplier, w_avg_beta)

    @property
    def num_ws(self) -> int:
        """Number of per-layer style vectors: ``2 * log2(resolution) - 2`` (18 at 1024 px, 10 at 64 px)."""
        return self.synthesis.num_ws

    @property
    def w_avg(self) -> torch.Tensor:
        """Tracked mean of W, ``(w_dim,)`` (buffer ``mapping.w_avg``)."""
        return self.mapping.w_avg

    def forward(self, z: torch.Tensor, psi: float = 1.0, cutoff: int | None = None,
                noise_mode: str = "const") -> torch.Tensor:
        """Generate images from latents.

        Args:
            z: ``(N, z_dim)`` float32, samples of N(0, I).
            psi: truncation (1 = none, 0 = the average face).
            cutoff: truncate only the first ``cutoff`` layers (``None`` = all).
            noise_mode: ``"const"`` (default: the same z gives the same image), ``"random"`` (training),
                ``"none"``.

        Returns:
            ``(N, 3, R, R)`` float32, approximately in [-1, 1] (not clamped).

        Raises:
            ValueError: wrong ``z`` shape or unknown ``noise_mode``.
        """
        ws = self.mapping(z, psi=psi, cutoff=cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, fused=self.fused_modconv)

    def style_mix(self, z_a: torch.Tensor, z_b: torch.Tensor, crossover: int, psi: float = 1.0,
                  noise_mode: str = "const") -> torch.Tensor:
        """Coarse styles (layers ``< crossover``) from ``z_a``, fine styles from ``z_b``: ``(N, 3, R, R)``.

        See :func:`mix_styles`; ``z_a``, ``z_b`` are ``(N, z_dim)`` (or one of them ``(1, z_dim)``)."""
        ws = mix_styles(self.mapping(z_a, psi=psi), self.mapping(z_b, psi=psi), crossover)
        return self.synthesis(ws, noise_mode=noise_mode, fused=self.fused_modconv)


@torch.no_grad()
def estimate_w_avg(generator: StyleGAN2Generator, num_samples: int = 4096, seed: int = 0) -> torch.Tensor:
    """Mean of ``mapping(z)`` over ``num_samples`` seeded samples ``z ~ N(0, I)``: ``(w_dim,)`` float32.

    Used when a checkpoint carries no W average (e.g. rosinality training snapshots; their own
    ``generate.py`` estimates it the same way with 4096 samples). Does not modify ``generator``."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(num_samples, generator.z_dim, generator=gen)
    device = generator.mapping.w_avg.device
    ws = generator.mapping(z.to(device), update_w_avg=False)
    return ws[:, 0].mean(dim=0)


# --------------------------------------------------------------------------------------------------
# Discriminator (residual architecture)
# --------------------------------------------------------------------------------------------------
class MinibatchStdDev(nn.Module):
    """Minibatch standard deviation (ProGAN; StyleGAN2-ADA variant): for groups of ``group_size``
    samples, the std over the group per feature, averaged over (channels/num_channels, H, W), appended
    as ``num_channels`` constant feature maps. ``(N, C, H, W) -> (N, C + num_channels, H, W)``.

    The group size is the largest divisor of N not above ``group_size`` (any batch size works)."""

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = max(d for d in range(1, min(self.group_size, n) + 1) if n % d == 0)
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)            # [G, n/G, F, c, H, W]
        y = (y - y.mean(dim=0)).square().mean(dim=0)     # variance over the group
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])        # [n/G, F]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)    # [N, F, H, W]
        return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    """Residual block: two 3x3 convs (the second downsampling) plus a 1x1 downsampling skip, summed
    and scaled by 1/sqrt(2). ``(N, Cin, H, W) -> (N, Cout, H/2, W/2)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3)
        self.conv1 = Conv2dLayer(in_channels, out_channels, 3, down=True)
        self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False, activation=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) * (1.0 / math.sqrt(2.0))


class StyleGAN2Discriminator(nn.Module):
    """StyleGAN2 residual discriminator: fromRGB at R, residual blocks down to 4x4, minibatch-stddev,
    3x3 conv, FC, FC -> one logit per image.

    Args:
        resolution: input side R, power of two >= 8.
        channel_base, channel_max: feature maps per resolution as in the generator.
        img_channels: 3.
        mbstd_group_size, mbstd_channels: minibatch-stddev settings (4, 1).
        fade_in: also hold ``fromrgb_low``, a fromRGB at R/2, for growing from a trained R/2 discriminator
            with a fade-in of the new top block (progressive growing, Karras et al., ICLR 2018, sec. 2 and
            fig. 2): the input reaches the R/2 block through ``(1 - alpha) * fromrgb_low(avgpool(img)) +
            alpha * b<R>(fromrgb(img))``; :attr:`alpha` (a float in [0, 1], set by the trainer, not a
            parameter) is 1 by default, which is the plain discriminator.

    Shapes: ``(N, img_channels, R, R)`` float32 in [-1, 1] -> ``(N, 1)`` float32 logits (real > fake).
    """

    def __init__(self, resolution: int = 64, channel_base: int = 16384, channel_max: int = 512,
                 img_channels: int = 3, mbstd_group_size: int = 4, mbstd_channels: int = 1,
                 fade_in: bool = False) -> None:
        super().__init__()
        log2 = _check_resolution(resolution)
        self.resolution, self.img_channels = resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        ch = {r: channels_at(r, channel_base, channel_max) for r in [2 ** i for i in range(2, log2 + 1)]}
        self.fromrgb = Conv2dLayer(img_channels, ch[resolution], 1)
        self.fade_in, self.alpha = bool(fade_in), 1.0
        if self.fade_in:
            self.fromrgb_low = Conv2dLayer(img_channels, ch[resolution // 2], 1)
        for res in self.block_resolutions:
            setattr(self, f"b{res}", DiscriminatorBlock(ch[res], ch[res // 2]))
        self.mbstd = MinibatchStdDev(mbstd_group_size, mbstd_channels)
        self.conv = Conv2dLayer(ch[4] + mbstd_channels, ch[4], 3)
        self.fc = FullyConnected(ch[4] * 16, ch[4], activation=True)
        self.out = FullyConnected(ch[4], 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """Score images: ``(N, C, R, R) -> (N, 1)`` logits.

        Raises:
            ValueError: the image shape does not match ``(img_channels, R, R)``.
        """
        if img.ndim != 4 or img.shape[1:] != (self.img_channels, self.resolution, self.resolution):
            raise ValueError(f"images must be (N, {self.img_channels}, {self.resolution}, {self.resolution}), "
                             f"got {tuple(img.shape)}")
        blocks = self.block_resolutions
        x = self.fromrgb(img)
        if self.fade_in and self.alpha < 1.0:
            top = getattr(self, f"b{blocks[0]}")(x) if self.alpha > 0.0 else 0.0
            low = self.fromrgb_low(F.avg_pool2d(img, 2))
            x, blocks = low + self.alpha * (top - low), blocks[1:]
        for res in blocks:
            x = getattr(self, f"b{res}")(x)
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1)))


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------
#: Small default configuration (64 px, ~6.0 M generator parameters) meant for faceforge's own UTKFace
#: training; published checkpoints bring their own configuration through the converters.
DEFAULT_CONFIG = {"resolution": 64, "z_dim": 256, "w_dim": 256, "channel_base": 8192, "channel_max": 256,
                  "mapping_layers": 8}


TOON_CARD = "stylegan2.anime32"
"""Model card of the cartoon fine-tune of the default generator that faceforge ships for toonify
(Pinkney & Adler 2020); ``"default"`` as ``--toon`` / ``FACEFORGE_STYLEGAN2_TOON_WEIGHTS`` names it."""


def default_toon_weights_path() -> Path:
    """The cartoon fine-tune's file (:data:`TOON_CARD`): installed copy, else the shipped one; it may be absent."""
    from faceforge.models import cards

    card = cards.get_card(TOON_CARD)
    return card.expected_path


register_model(ModelSpec(
    name="stylegan2",
    task="generate",
    factory=StyleGAN2Generator,
    kwargs=dict(DEFAULT_CONFIG),
    input=InputSpec(shape=(DEFAULT_CONFIG["z_dim"],), layout="NC", kind="latent",
                    distribution="z ~ N(0, I), float32 (N, z_dim); output (N, 3, R, R) RGB in ~[-1, 1]"),
    # weights_loader: faceforge.models.stylegan2_convert.load_stylegan2, installed by that module
    source="Karras et al. 2020, 'Analyzing and Improving the Image Quality of StyleGAN', CVPR "
           "(arXiv:1912.04958), config F",
    license="Apache-2.0 (architecture code); default weights trained by faceforge on UTKFace "
            "(non-commercial research data)",
    description="StyleGAN2 face generator (64 px default config for new models); the shipped default is a "
                "small 32 px generator trained on UTKFace on a CPU (see its provenance JSON); loads "
                "faceforge, rosinality .pt and NVlabs stylegan2-ada .pkl files",
))

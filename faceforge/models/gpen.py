"""GPEN: a GAN prior embedded network for blind face restoration, in plain PyTorch, top to bottom.

Source: T. Yang, P. Ren, X. Xie, L. Zhang, "GAN Prior Embedded Network for Blind Face Restoration in the
Wild", CVPR 2021 (arXiv:2105.06070); reference implementation ``yangxy/GPEN``,
``face_model/gpen_model.py`` (``FullGenerator``), read for its layout only; this code is faceforge's own
and reuses the StyleGAN2 building blocks of :mod:`faceforge.models.stylegan2` (modulated convolution,
equalized-lr layers, mapping network, ToRGB, [1, 3, 3, 1] FIR resampling).

Overview (R = side, a power of two >= 16; ``L = log2(R)``; ``C[r]`` feature maps at resolution r, see
:func:`gpen_channels`)::

    degraded face x (N, 3, R, R), RGB in [-1, 1]
      encoder:  ecd0: 1x1 conv 3 -> C[R] + lrelu                       f_R   (N, C[R], R, R)
                ecd1: blur + 3x3 conv stride 2 + lrelu                  f_R/2 (N, C[R/2], R/2, R/2)
                ...   down to                                           f_4   (N, C[4], 4, 4)
      final_linear: flatten f_4 (C[4] * 16) -> FC + lrelu -> latent     (N, style_dim)
      mapping: pixel-norm + 8 x [FC + lrelu] (lr x 0.01) -> w           (N, style_dim)
      decoder (StyleGAN2, skip architecture), every layer styled by the same w:
                b4:  const (C[4], 4, 4) -> conv1 -> [.., f_4 * s] -> torgb               img 4x4
                b8:  conv0 (up x2) -> [.., f_8 * s] -> conv1 -> [.., f_8 * s] -> torgb;  img = up(img) + rgb
                ...                                                                      img R x R
      restored face (N, 3, R, R), RGB, ~[-1, 1] (not clamped)

The one structural change from StyleGAN2: each synthesis layer's *noise input* is the encoder's feature
map of the same resolution, times a learned scalar ``s`` (``noise_strength``, initialised to 0), and it
is **concatenated** to the convolution's output instead of added (the reference's
``NoiseInjection(isconcat=True)``). Every layer therefore outputs ``2 C[r]`` channels: its bias and
lrelu act on ``2 C[r]`` channels, and the next convolution and the ToRGB layers read ``2 C[r]`` channels.
GPEN weights thus do not load into a plain StyleGAN2 (and vice versa).

Channels (reference table, :func:`gpen_channels`): ``C[r] = int(512 * narrow)`` for r <= 32, else
``int(16384 / r * channel_multiplier * narrow)``. Published models: GPEN-BFR-512 (R = 512,
``channel_multiplier = 2``, ``narrow = 1``, ~71 M parameters); GPEN-BFR-256 (R = 256, multiplier 1,
narrow 0.5, ~19 M). :func:`convert_gpen_state_dict` / :func:`load_gpen` turn those files (bare state
dicts, or the ``g_ema`` entry of a training checkpoint) into faceforge checkpoints; the size and the
channel settings are inferred from the tensor shapes.

Differences from the reference, none of which changes the function: plain ``F.conv2d`` resampling instead
of the ``upfirdn2d`` CUDA op (same filter, same padding; see :mod:`faceforge.models.stylegan2`); the
demodulated convolutions skip the equalized-lr gain (demodulation cancels it up to the 1e-8 epsilon); one
``w`` drives every layer (the reference broadcasts one latent to all layers too, style mixing aside).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from faceforge.errors import CheckpointError
from faceforge.models.registry import InputSpec, ModelSpec, register_model
from faceforge.models.stylegan2 import (Conv2dLayer, FullyConnected, MappingNetwork, ToRGB, bias_act, make_filter,
                                        modulated_conv2d, upsample2d)

__all__ = ["gpen_channels", "GPENStyledConv", "GPENDecoder", "GPEN", "convert_gpen_state_dict", "load_gpen",
           "GPEN_ARCH", "DEFAULT_CONFIG", "DEFAULT_WEIGHTS"]

GPEN_ARCH = "gpen"


def gpen_channels(resolution: int, channel_multiplier: float = 2, narrow: float = 1.0) -> int:
    """Feature maps of GPEN at ``resolution`` (the reference's ``channels`` table, generalised to any power
    of two): ``int(512 * narrow)`` up to 32 px, ``int(16384 / resolution * channel_multiplier * narrow)``
    above (256 m at 64, 128 m at 128, ... 8 m at 2048)."""
    if resolution <= 32:
        return int(512 * narrow)
    return int((16384 // resolution) * channel_multiplier * narrow)


def _check_size(size: int) -> int:
    if not isinstance(size, int) or size < 16 or size & (size - 1):
        raise ValueError(f"GPEN size must be a power of two >= 16, got {size!r}")
    return int(math.log2(size))


class GPENStyledConv(nn.Module):
    """Modulated 3x3 convolution, then the encoder feature concatenated as the noise input, then a bias
    and lrelu over both halves (reference: ``StyledConv`` with ``NoiseInjection(isconcat=True)`` and
    ``FusedLeakyReLU(2 * out_channel)``).

    Args:
        in_channels: input feature maps (``2 C`` of the previous layer, or ``C[4]`` for the constant).
        out_channels: convolution outputs ``C``; the layer returns ``2 C`` channels.
        w_dim: style size.
        up: 2x upsampling (transposed conv + [1,3,3,1] blur) before the convolution output.

    Parameters: ``affine`` (w -> input-channel styles, bias init 1), ``weight`` ``(C, Cin, 3, 3)``,
    ``noise_strength`` ``()`` (init 0: the encoder's features start switched off), ``bias`` ``(2 C,)``.

    Shapes: ``x (N, Cin, H, W), w (N, w_dim), feature (N, C, H', W') -> (N, 2 C, H', W')`` with
    ``H' = 2H`` when ``up``, else ``H``.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, up: bool = False) -> None:
        super().__init__()
        self.up = up
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(2 * out_channels))
        if up:
            self.register_buffer("resample_filter", make_filter(), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, feature: torch.Tensor, fused: bool = True) -> torch.Tensor:
        x = modulated_conv2d(x, self.weight, self.affine(w), demodulate=True, up=self.up,
                             resample_filter=getattr(self, "resample_filter", None), fused=fused)
        if feature.shape[0] != x.shape[0] or feature.shape[2:] != x.shape[2:] or feature.shape[1] != self.weight.shape[0]:
            raise ValueError(f"encoder feature {tuple(feature.shape)} does not fit the layer's output "
                             f"{(x.shape[0], self.weight.shape[0], *x.shape[2:])}")
        x = torch.cat([x, feature * self.noise_strength], dim=1)
        return bias_act(x, self.bias, act=True)


class GPENBlock(nn.Module):
    """One decoder resolution ``r``: [const | up-conv0], conv1, toRGB, all reading the encoder feature
    ``f_r``. Returns ``(x (N, 2 C[r], r, r), img (N, 3, r, r))``."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        if resolution == 4:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))
        else:
            self.conv0 = GPENStyledConv(2 * in_channels, out_channels, w_dim, up=True)
            self.register_buffer("resample_filter", make_filter(), persistent=False)
        self.conv1 = GPENStyledConv(out_channels if resolution == 4 else 2 * out_channels, out_channels, w_dim)
        self.torgb = ToRGB(2 * out_channels, w_dim)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, w: torch.Tensor, feature: torch.Tensor,
                fused: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if self.resolution == 4:
            x = self.const.unsqueeze(0).expand(w.shape[0], -1, -1, -1)
        else:
            x = self.conv0(x, w, feature, fused)
        x = self.conv1(x, w, feature, fused)
        y = self.torgb(x, w, fused)
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img


class GPENDecoder(nn.Module):
    """The StyleGAN2 decoder of GPEN: blocks ``b4, b8, ..., bR`` (:class:`GPENBlock`).

    Args:
        size: output side R (power of two >= 16).
        w_dim: style size.
        channels: ``{resolution: C[r]}`` for every block resolution.

    ``forward(w (N, w_dim), features {r: (N, C[r], r, r)}) -> (N, 3, R, R)``.
    """

    def __init__(self, size: int, w_dim: int, channels: Mapping[int, int]) -> None:
        super().__init__()
        log2 = _check_size(size)
        self.resolutions = [2 ** i for i in range(2, log2 + 1)]
        for r in self.resolutions:
            setattr(self, f"b{r}", GPENBlock(channels[r // 2] if r > 4 else 0, channels[r], w_dim, r))

    def forward(self, w: torch.Tensor, features: Mapping[int, torch.Tensor], fused: bool = True) -> torch.Tensor:
        x = img = None
        for r in self.resolutions:
            x, img = getattr(self, f"b{r}")(x, img, w, features[r], fused)
        return img


class GPEN(nn.Module):
    """GPEN ``FullGenerator`` (Yang et al., CVPR 2021): encoder -> latent -> mapping -> StyleGAN2 decoder
    whose noise inputs are the encoder's features, concatenated (see the module docstring).

    Args:
        size: input and output side R, a power of two >= 16 (published: 256, 512, 1024).
        style_dim: latent and style size (512 in the published models).
        n_mlp: mapping-network layers (8).
        channel_multiplier: widens resolutions >= 64 (published: 2 for 512/1024, 1 for 256).
        narrow: scales every width (published: 1 for 512, 0.5 for 256).
        lr_mlp: equalized-lr multiplier of the mapping network (0.01).
        fused_modconv: grouped-conv modulation (``True``) or activation scaling (``False``; batch-size
            independent graph, e.g. for an ONNX export with a dynamic batch). Same result up to rounding.
        residual: faceforge's option, **not** in the reference (published weights: ``False``): return
            ``x + g * decoder(...)`` with a learned scalar ``g`` (``residual_gain``) initialised to 0, so an
            untrained network returns its input unchanged and training learns only the correction. Global
            residual learning as in VDSR (Kim, Lee, Lee, CVPR 2016); the zero-initialised gain as in ReZero
            (Bachlechner et al., 2020). Measured reason: from scratch on L1 alone, the plain GPEN-64 is still
            below its degraded input's PSNR after 600 steps (README, "Face restoration").

    Submodules: ``ecd0 .. ecd{L-2}`` (:class:`~faceforge.models.stylegan2.Conv2dLayer`),
    ``final_linear`` (:class:`~faceforge.models.stylegan2.FullyConnected`, ``16 C[4] -> style_dim``),
    ``mapping`` (:class:`~faceforge.models.stylegan2.MappingNetwork`; its ``w_avg`` buffer is unused),
    ``decoder`` (:class:`GPENDecoder`).

    Shapes: ``(N, 3, R, R)`` float32 RGB in [-1, 1] (``p / 127.5 - 1``) -> ``(N, 3, R, R)`` float32 RGB,
    approximately in [-1, 1], not clamped.

    Example:
        >>> g = GPEN(size=16, style_dim=32, narrow=1 / 32)
        >>> g(torch.zeros(2, 3, 16, 16)).shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(self, size: int = 256, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: float = 1,
                 narrow: float = 0.5, lr_mlp: float = 0.01, fused_modconv: bool = True, residual: bool = False) -> None:
        super().__init__()
        self.residual = residual
        if residual:  # faceforge's option, not in the reference: output = input + gain * decoder output
            self.residual_gain = nn.Parameter(torch.zeros(()))
        log2 = _check_size(size)
        self.size, self.style_dim, self.n_mlp, self.fused_modconv = size, style_dim, n_mlp, fused_modconv
        self.channels = {2 ** i: gpen_channels(2 ** i, channel_multiplier, narrow) for i in range(2, log2 + 1)}
        if min(self.channels.values()) < 1:
            raise ValueError(f"channel_multiplier={channel_multiplier}, narrow={narrow} leave a resolution without "
                             f"feature maps: {self.channels}")
        # encoder: R -> R (1x1), then 3x3 stride-2 convs down to 4x4
        self.encoder_resolutions = [2 ** i for i in range(log2, 1, -1)]  # R, R/2, ..., 4
        self.ecd0 = Conv2dLayer(3, self.channels[size], 1)
        for k, r in enumerate(self.encoder_resolutions[1:], start=1):
            setattr(self, f"ecd{k}", Conv2dLayer(self.channels[2 * r], self.channels[r], 3, down=True))
        self.final_linear = FullyConnected(self.channels[4] * 16, style_dim, activation=True)
        self.mapping = MappingNetwork(style_dim, style_dim, num_ws=1, num_layers=n_mlp, lr_multiplier=lr_mlp)
        self.decoder = GPENDecoder(size, style_dim, self.channels)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Encoder half: ``(N, 3, R, R)`` -> ``(latent (N, style_dim), {r: (N, C[r], r, r)} for r = R .. 4)``.

        Raises:
            ValueError: the input is not ``(N, 3, R, R)``.
        """
        if x.ndim != 4 or x.shape[1:] != (3, self.size, self.size):
            raise ValueError(f"GPEN-{self.size} input must be (N, 3, {self.size}, {self.size}), got {tuple(x.shape)}")
        features = {}
        for k, r in enumerate(self.encoder_resolutions):
            x = getattr(self, f"ecd{k}")(x)
            features[r] = x
        return self.final_linear(x.flatten(1)), features

    def forward(self, x: torch.Tensor, return_latent: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Restore faces.

        Args:
            x: float32 ``(N, 3, R, R)`` degraded aligned faces, RGB in [-1, 1].
            return_latent: also return ``w`` ``(N, style_dim)``.

        Returns:
            ``(N, 3, R, R)`` float32 RGB, ~[-1, 1] (clamp before converting to pixels); with
            ``return_latent`` a tuple ``(image, w)``.

        Raises:
            ValueError: wrong input shape.
        """
        latent, features = self.encode(x)
        w = self.mapping(latent, update_w_avg=False)[:, 0]
        img = self.decoder(w, features, fused=self.fused_modconv)
        if self.residual:
            img = x + self.residual_gain * img
        return (img, w) if return_latent else img


# --------------------------------------------------------------------------------------------------
# Published checkpoints
# --------------------------------------------------------------------------------------------------
# Key layout of the published GPEN-BFR files (reference FullGenerator.state_dict(); j = 0 .. L-3 indexes
# the decoder resolutions 8 .. R, k = 1 .. L-2 the stride-2 encoder layers):
#
#   published key                                   shape                faceforge key
#   generator.style.{i+1}.weight / .bias            (S, S) / (S,)        mapping.fc{i}.weight / .bias
#   generator.input.input                           (1, C4, 4, 4)        decoder.b4.const (C4, 4, 4)
#   generator.conv1.conv.weight                     (1, C4, C4, 3, 3)    decoder.b4.conv1.weight
#   generator.conv1.conv.modulation.weight / .bias  (Cin, S) / (Cin,)    decoder.b4.conv1.affine.*
#   generator.conv1.noise.weight                    (1,)                 decoder.b4.conv1.noise_strength ()
#   generator.conv1.activate.bias                   (2 C,)               decoder.b4.conv1.bias
#   generator.to_rgb1.conv.weight                   (1, 3, 2 C4, 1, 1)   decoder.b4.torgb.weight (3, 2 C4, 1, 1)
#   generator.to_rgb1.conv.modulation.*             (2 C4, S) / (2 C4,)  decoder.b4.torgb.affine.*
#   generator.to_rgb1.bias                          (1, 3, 1, 1)         decoder.b4.torgb.bias (3,)
#   generator.convs.{2j}.* (up-conv; + conv.blur.kernel (4, 4) = 4 f)    decoder.b{r}.conv0.*
#   generator.convs.{2j+1}.*                                             decoder.b{r}.conv1.*
#   generator.to_rgbs.{j}.* (+ upsample.kernel (4, 4) = 4 f)             decoder.b{r}.torgb.*
#   ecd0.0.0.weight / ecd0.0.1.bias                 (C[R], 3, 1, 1)      ecd0.weight / ecd0.bias
#   ecd{k}.0.0.kernel (4, 4) = f, .0.1.weight, .0.2.bias                 ecd{k}.weight / ecd{k}.bias
#   final_linear.0.weight / .bias                   (S, 16 C4) / (S,)    final_linear.weight / .bias
#
# f = the normalised [1, 3, 3, 1] filter; the kernels are checked and dropped (faceforge computes them).
# The up-convolution kernels are used as stored by both implementations' transposed convolutions.
_MODCONV_PARTS = {"conv.weight": "weight", "conv.modulation.weight": "affine.weight",
                  "conv.modulation.bias": "affine.bias", "noise.weight": "noise_strength",
                  "activate.bias": "bias"}
_TORGB_PARTS = {"conv.weight": "weight", "conv.modulation.weight": "affine.weight",
                "conv.modulation.bias": "affine.bias", "bias": "bias"}
EXPECTED_LAYOUT = ("a GPEN FullGenerator state dict (yangxy/GPEN GPEN-BFR-*.pth: keys generator.style.*, "
                   "generator.input.input, generator.conv1.*, generator.to_rgb1.*, generator.convs.*, "
                   "generator.to_rgbs.*, ecd0.*, ecd1.* ..., final_linear.0.*), or a GPEN training checkpoint "
                   "holding one under 'g_ema', or a faceforge 'gpen' checkpoint")


def _unwrap(obj: Any, source: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and "g_ema" in obj and isinstance(obj["g_ema"], Mapping):
        obj = obj["g_ema"]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{source}: expected {EXPECTED_LAYOUT}; found a {type(obj).__name__}")
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):  # saved from DataParallel / DDP
        state = {k[len("module."):]: v for k, v in state.items()}
    if "generator.style.1.weight" not in state or "ecd0.0.0.weight" not in state or "final_linear.0.weight" not in state:
        found = sorted(state)[:6]
        raise CheckpointError(f"{source}: expected {EXPECTED_LAYOUT}; found keys {found}"
                              f"{' ...' if len(state) > 6 else ''}")
    return state


def _check_kernel(state: dict[str, Any], key: str, scale: float, source: str, used: set[str]) -> None:
    if key not in state:
        return
    kernel = state[key]
    used.add(key)
    if not isinstance(kernel, torch.Tensor) or kernel.shape != (4, 4) or \
            not torch.allclose(kernel.float(), make_filter() * scale, atol=1e-6):
        raise CheckpointError(f"{source}: {key} is not the [1, 3, 3, 1] resampling filter (x{scale:g}); only the "
                              f"standard filter is supported")


def convert_gpen_state_dict(obj: Any, source: str = "GPEN state dict") -> dict[str, Any]:
    """Convert a published GPEN generator (GPEN-BFR-256 / -512 / -1024 layout) to a faceforge checkpoint.

    The size, ``style_dim``, ``n_mlp``, ``channel_multiplier`` and ``narrow`` are inferred from the
    tensor shapes (see the key table above); every source tensor must be consumed and every faceforge
    tensor filled, else the file is refused.

    Args:
        obj: the loaded file: a bare ``FullGenerator`` state dict, or a training checkpoint dict whose
            ``g_ema`` entry is one (``{g, d, g_ema, g_optim, d_optim}``); ``module.`` prefixes are removed.
        source: name for error messages.

    Returns:
        ``{"format": "faceforge-checkpoint", "version": 1, "arch": "gpen", "config": {...}, "state_dict":
        {...}, "meta": {"converted_from": source, "layout": "yangxy/GPEN FullGenerator"}}``.

    Raises:
        CheckpointError: not that layout (the message names the expected keys), an unsupported
            channel table or filter, tensors of the wrong shape, or unused tensors.
    """
    from faceforge.checkpoints import FORMAT, VERSION

    state = _unwrap(obj, source)
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{source}: {k!r} is a {type(v).__name__}, not a tensor")
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in state:
            raise CheckpointError(f"{source}: missing tensor {key!r} (expected {EXPECTED_LAYOUT})")
        used.add(key)
        return state[key].detach().to(torch.float32)

    n_ecd = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"ecd(\d+)\.", k)))
    size = 2 ** (n_ecd + 1)
    n_mlp = max(int(m.group(1)) for k in state if (m := re.match(r"generator\.style\.(\d+)\.weight$", k)))
    style_dim = int(state["generator.style.1.weight"].shape[0])
    # feature maps per resolution, read from the decoder's convolutions
    channels = {4: int(state["generator.conv1.conv.weight"].shape[1])}
    for j in range(n_ecd - 1):
        key = f"generator.convs.{2 * j}.conv.weight"
        if key not in state:
            raise CheckpointError(f"{source}: {n_ecd} encoder layers imply a {size} px model, but {key!r} is missing")
        channels[2 ** (j + 3)] = int(state[key].shape[1])
    narrow = channels[4] / 512
    channel_multiplier = channels[64] / (256 * narrow) if size >= 64 else 1
    if channel_multiplier == int(channel_multiplier):
        channel_multiplier = int(channel_multiplier)
    if any(gpen_channels(r, channel_multiplier, narrow) != c for r, c in channels.items()):
        raise CheckpointError(f"{source}: feature maps per resolution {channels} do not follow GPEN's table "
                              f"(512 * narrow up to 32 px, 16384 / r * channel_multiplier * narrow above)")
    config = {"size": size, "style_dim": style_dim, "n_mlp": n_mlp, "channel_multiplier": channel_multiplier,
              "narrow": narrow}

    out: dict[str, torch.Tensor] = {}
    for i in range(n_mlp):
        out[f"mapping.fc{i}.weight"] = take(f"generator.style.{i + 1}.weight")
        out[f"mapping.fc{i}.bias"] = take(f"generator.style.{i + 1}.bias")
    out["mapping.w_avg"] = torch.zeros(style_dim)  # GPEN has none and never truncates
    const = take("generator.input.input")
    out["decoder.b4.const"] = const[0] if const.ndim == 4 else const

    def styled(src: str, dst: str) -> None:
        for part, name in _MODCONV_PARTS.items():
            t = take(f"{src}.{part}")
            if part == "conv.weight":
                t = t[0] if t.ndim == 5 else t
            elif part == "noise.weight":
                t = t.reshape(())
            out[f"{dst}.{name}"] = t

    def torgb(src: str, dst: str) -> None:
        for part, name in _TORGB_PARTS.items():
            t = take(f"{src}.{part}")
            if part == "conv.weight":
                t = t[0] if t.ndim == 5 else t
            elif part == "bias":
                t = t.reshape(-1)
            out[f"{dst}.{name}"] = t

    styled("generator.conv1", "decoder.b4.conv1")
    torgb("generator.to_rgb1", "decoder.b4.torgb")
    for j in range(n_ecd - 1):
        r = 2 ** (j + 3)
        styled(f"generator.convs.{2 * j}", f"decoder.b{r}.conv0")
        _check_kernel(state, f"generator.convs.{2 * j}.conv.blur.kernel", 4.0, source, used)
        styled(f"generator.convs.{2 * j + 1}", f"decoder.b{r}.conv1")
        torgb(f"generator.to_rgbs.{j}", f"decoder.b{r}.torgb")
        _check_kernel(state, f"generator.to_rgbs.{j}.upsample.kernel", 4.0, source, used)
    out["ecd0.weight"] = take("ecd0.0.0.weight")
    out["ecd0.bias"] = take("ecd0.0.1.bias")
    for k in range(1, n_ecd):
        _check_kernel(state, f"ecd{k}.0.0.kernel", 1.0, source, used)
        out[f"ecd{k}.weight"] = take(f"ecd{k}.0.1.weight")
        out[f"ecd{k}.bias"] = take(f"ecd{k}.0.2.bias")
    out["final_linear.weight"] = take("final_linear.0.weight")
    out["final_linear.bias"] = take("final_linear.0.bias")

    left = sorted(set(state) - used)
    if left:
        raise CheckpointError(f"{source}: {len(left)} tensor(s) not part of a GPEN-{size} FullGenerator: "
                              f"{left[:6]}{' ...' if len(left) > 6 else ''}")
    try:
        model = GPEN(**config)
    except ValueError as exc:
        raise CheckpointError(f"{source}: unsupported configuration {config}: {exc}") from None
    try:
        model.load_state_dict(out, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: tensors do not fit GPEN {config}: {str(exc).splitlines()[0]} ...") from None
    return {"format": FORMAT, "version": VERSION, "arch": GPEN_ARCH, "config": config,
            "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "meta": {"converted_from": source, "layout": "yangxy/GPEN FullGenerator",
                     "source": "Yang et al., CVPR 2021 (published weights: non-commercial licence)"}}


def load_gpen(path: str | Path, arch: str | None = GPEN_ARCH) -> dict[str, Any]:
    """Load GPEN weights of either kind as a faceforge checkpoint dict: a faceforge ``gpen`` checkpoint (as
    saved by ``faceforge train gpen``) is returned as loaded; any other torch file goes through
    :func:`convert_gpen_state_dict`. ``create_model("gpen", weights=path)`` uses this.

    Args:
        path: ``.pt`` / ``.pth`` file (``torch.load(weights_only=True)``: never executes code).
        arch: expected architecture (``"gpen"`` or ``None``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: not a GPEN checkpoint (the message names the expected layout), or a faceforge
            checkpoint of another architecture.
    """
    from faceforge.checkpoints import FORMAT, load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GPEN weights not found: {path}")
    if arch not in (None, GPEN_ARCH):
        raise CheckpointError(f"load_gpen loads {GPEN_ARCH!r} checkpoints, not {arch!r}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(f"{path} could not be loaded as tensors only (torch.load weights_only): "
                              f"{type(exc).__name__}: {first[:120]}; expected {EXPECTED_LAYOUT}") from None
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        return load_checkpoint(path, arch=GPEN_ARCH)
    ckpt = convert_gpen_state_dict(obj, source=str(path))
    return ckpt


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------
DEFAULT_CONFIG = {"size": 64, "style_dim": 256, "n_mlp": 8, "channel_multiplier": 1, "narrow": 0.125}
"""faceforge's own small configuration for CPU training at 64 px (64 feature maps up to 32 px, 32 at 64 px;
~1.9 M parameters). Published checkpoints bring their own configuration through :func:`load_gpen`."""

DEFAULT_WEIGHTS = "gpen_restore.pt"
"""File name under ``faceforge/weights/`` that ``--weights default`` names (not shipped: see
:mod:`faceforge.restore` for how to provide weights)."""

register_model(ModelSpec(
    name=GPEN_ARCH,
    task="restore",
    factory=GPEN,
    kwargs=dict(DEFAULT_CONFIG),
    input=InputSpec(shape=(3, DEFAULT_CONFIG["size"], DEFAULT_CONFIG["size"]), colour="rgb", value_range=(-1.0, 1.0),
                    face_template="utkface"),
    default_weights=DEFAULT_WEIGHTS,
    weights_loader=load_gpen,
    source="Yang, Ren, Xie, Zhang, 'GAN Prior Embedded Network for Blind Face Restoration in the Wild', CVPR 2021 "
           "(arXiv:2105.06070); layout of yangxy/GPEN face_model/gpen_model.py",
    license="Apache-2.0 (architecture code); no weights shipped (published GPEN weights are non-commercial)",
    description="GPEN blind face restoration (encoder + StyleGAN2 decoder fed the encoder's features); loads "
                "faceforge checkpoints and published GPEN-BFR-256/-512 state dicts",
))

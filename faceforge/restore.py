"""Whole-photo blind face restoration: GPEN on every (chosen) face, pasted back without seams.

Pipeline (one call of :meth:`FaceRestorer.restore`)::

    RGB uint8 (H, W, 3)
      --canvas: the photo, or its Lanczos upscale x k (--upscale k)-->      background, untouched otherwise
      --detect (BlazeFace), select (all | largest | indices)-->           the faces to restore
      --align (the restorer's template, S x S: S = the model's size)-->   crops (N, S, S, 3) from the photo
      --restore: GPEN (p / 127.5 - 1 -> G -> clamp -> pixels), or the classical filter chain
      --colour matching (Lab mean of the restored face := the input face's, under the mask)
      --paste back (inverse similarity warp x k, soft mask)-->            canvas with restored faces
      --grayscale in -> grayscale out (BT.601 luma in all channels)

Restorers (``method``):

``gpen``
    :class:`faceforge.models.gpen.GPEN` (Yang, Ren, Xie, Zhang, CVPR 2021). Weights: a faceforge
    checkpoint (``G_ema.pt`` of ``faceforge train gpen``, or its run folder) or a published
    GPEN-BFR-256 / -512 ``.pth`` (converted on load, :func:`faceforge.models.gpen.load_gpen`). Chosen by
    ``weights=`` (``--weights``), else ``$FACEFORGE_GPEN_WEIGHTS``, else ``"default"`` =
    ``faceforge/weights/gpen_restore.pt``, which faceforge does not ship: without weights
    :func:`resolve_weights` raises :class:`~faceforge.errors.WeightsNotFoundError` saying how to provide
    them. faceforge's own weights are aligned on the ``utkface`` template (the framing of their training
    chips); converted published weights on :data:`GPEN_FFHQ_TEMPLATE` (the reference's 5-point template:
    ArcFace's 96x112 points squared to 112 and padded by 25 % each side, yangxy/GPEN ``align_faces.py``).
``classical``
    Always available, no weights: each face is cut from the (upscaled) canvas at its own resolution (no
    resampling loss), denoised with OpenCV's non-local means (Buades, Coll, Morel, CVPR 2005;
    ``cv2.fastNlMeansDenoisingColored``, h = hColor = 5) and sharpened with an unsharp mask (sigma 1 px at
    128 px, amount 0.8); the background upscale is Lanczos (``cv2.INTER_LANCZOS4``).

Paste-back: the crop is warped back with its inverse similarity transform and blended with a soft mask:
1 inside a square inset by :data:`MASK_INSET` of the side, Gaussian-blurred with sigma
:data:`MASK_SIGMA` of the side (the reference uses a rectangle inset 26/512 with two 101-px Gaussians of
sigma 4 at 512). Only pixels under the warped mask change. :func:`boundary_difference` measures the seam:
the mean absolute difference, restored photo vs canvas, within 3 px of the mask's ``alpha = 0.5`` contour
(both sides); :attr:`RestorationResult.seam` reports it per photo.
"""

from __future__ import annotations

import copy
import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from faceforge.checkpoints import weights_version
from faceforge.errors import WeightsNotFoundError
from faceforge.faces.align import EYES_NOSE_MOUTH, FaceTemplate, align_face, get_template, umeyama, warp_box
from faceforge.imaging import check_rgb
from faceforge.pipelines.base import FaceJob, FacePipeline, face_fields

if TYPE_CHECKING:
    from faceforge.faces.detect import Face, FaceDetector

__all__ = ["ENV_VAR", "METHODS", "GPEN_FFHQ_TEMPLATE", "MASK_INSET", "MASK_SIGMA", "default_weights_path",
           "resolve_weights", "OnnxGPEN", "load_restorer", "shared_restorer", "classical_restore", "soft_mask",
           "match_colour", "is_grayscale", "boundary_difference", "RestoredFace", "RestorationResult", "FaceRestorer", "UPSCALERS",
           "upscale_face"]

ENV_VAR = "FACEFORGE_GPEN_WEIGHTS"
"""Environment variable naming the GPEN weights (a file or a ``faceforge train gpen`` run folder)."""
METHODS = ("gpen", "classical")
MASK_INSET = 0.06
"""Soft mask: fraction of the crop side left out at each edge before blurring."""
MASK_SIGMA = 0.03
"""Soft mask: Gaussian sigma as a fraction of the crop side."""

_GPEN_POINTS = np.array([[30.29459953 + 8, 51.69630051], [65.53179932 + 8, 51.50139999],
                         [48.02519989 + 8, 71.73660278],
                         [(33.54930115 + 62.72990036) / 2 + 8, (92.3655014 + 92.20410156) / 2]])
GPEN_FFHQ_TEMPLATE = FaceTemplate(
    "gpen_ffhq", (_GPEN_POINTS + 28.0) / 168.0, EYES_NOSE_MOUTH,
    "yangxy/GPEN align_faces.py: ArcFace 96x112 5-point reference, squared to 112 (x + 8), inner padding "
    "0.25 (+28 px, side 168); mouth corners averaged to BlazeFace's mouth centre")
"""Framing of the published GPEN models' crops (eyes 0.39 / 0.61 of the side at height 0.47)."""

NO_WEIGHTS_HINT = (f"pass --weights PATH (a G_ema.pt or run folder of `faceforge train gpen`, a published "
                   f"GPEN-BFR-256/-512 .pth, or a .onnx file of `faceforge export gpen`) or set {ENV_VAR}; "
                   f"--method classical needs no weights")


CARD = "gpen.utkface64"
"""Model card of the default restorer (:mod:`faceforge.models.cards`; not shipped: train or configure it)."""


def default_weights_path() -> Path:
    """The file ``"default"`` names: the card's installed copy, else its package path (not shipped, may be absent)."""
    from faceforge.models import cards

    card = cards.get_card(CARD)
    return card.expected_path


def resolve_weights(weights: str | Path | None = None, environ: dict[str, str] | None = None) -> Path:
    """Where the GPEN weights are: ``weights`` if given, else ``$FACEFORGE_GPEN_WEIGHTS``, else ``"default"``.

    A run folder resolves to its ``G_ema.pt``.

    Raises:
        WeightsNotFoundError: nothing there; the one-line message says how to provide weights.
    """
    environ = os.environ if environ is None else environ
    chosen = weights if weights not in (None, "") else environ.get(ENV_VAR) or "default"
    if str(chosen) == "default":
        path = default_weights_path()
        if not path.is_file():
            raise WeightsNotFoundError(f"no face-restoration weights are configured ({path.name} is not installed): "
                                       f"{NO_WEIGHTS_HINT}", path=str(path))
        return path
    path = Path(chosen).expanduser()
    if path.is_dir():
        path = path / "G_ema.pt"
    if not path.is_file():
        raise WeightsNotFoundError(f"face-restoration weights not found: {path}; {NO_WEIGHTS_HINT}", path=str(path))
    return path


ONNX_META_PREFIX = "faceforge."
"""Prefix of the ``metadata_props`` keys an exported GPEN ONNX file carries (``export.gpen_onnx``)."""


class OnnxGPEN:
    """A GPEN generator exported to ONNX (``faceforge export gpen --formats onnx``), run by ONNX Runtime
    on the CPU: a drop-in for the PyTorch :class:`~faceforge.models.gpen.GPEN` inside
    :class:`FaceRestorer` (``--weights FILE.onnx`` or ``FACEFORGE_GPEN_WEIGHTS=FILE.onnx``).

    The file's ``metadata_props`` (written by :func:`export.gpen_onnx.export_gpen_onnx`) give the side
    (``faceforge.size``), the alignment template and the weights' provenance (``faceforge.meta``, JSON).

    Args:
        path: the ``.onnx`` file (self-contained, input ``image``, output ``restored``).
        threads: ONNX Runtime intra-op threads (default: ``torch.get_num_threads()``, as PyTorch runs).

    Shapes: ``(N, 3, S, S)`` float32 RGB in [-1, 1] -> ``(N, 3, S, S)`` float32, ~[-1, 1], not clamped
    (any batch size: the file has a dynamic batch dimension).

    Raises:
        MissingDependencyError: onnxruntime is not installed.
        CheckpointError: the file is not an ONNX model exported by faceforge from GPEN.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import json

        from faceforge.errors import CheckpointError, MissingDependencyError

        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("onnxruntime is needed to run an ONNX restorer; install it with "
                                         "pip install onnxruntime") from None
        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"{self.path} is not a loadable ONNX model: {first}") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if props.get(ONNX_META_PREFIX + "model") != "gpen":
            raise CheckpointError(f"{self.path} is not a GPEN ONNX file exported by faceforge (metadata "
                                  f"{ONNX_META_PREFIX}model={props.get(ONNX_META_PREFIX + 'model')!r}, expected "
                                  f"'gpen'); export one with `faceforge export gpen --formats onnx`")
        self.size = int(props[ONNX_META_PREFIX + "size"])
        self.faceforge_meta = json.loads(props.get(ONNX_META_PREFIX + "meta", "{}"))
        self.input_name = self.session.get_inputs()[0].name
        self.threads = options.intra_op_num_threads

    def run(self, x: np.ndarray) -> np.ndarray:
        """float32 ``(N, 3, S, S)`` in [-1, 1] -> float32 ``(N, 3, S, S)`` (see the class docstring).

        Raises:
            ValueError: wrong shape.
        """
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != (3, self.size, self.size):
            raise ValueError(f"GPEN-{self.size} input must be (N, 3, {self.size}, {self.size}), got {x.shape}")
        return self.session.run(None, {self.input_name: x})[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.run(x.detach().cpu().numpy()))

    def to(self, device: str | torch.device) -> "OnnxGPEN":
        """CPU only (ONNX Runtime's CPU provider); any other device raises ``ValueError``."""
        if torch.device(device).type != "cpu":
            raise ValueError(f"an ONNX restorer runs on the CPU, not {device}")
        return self

    def eval(self) -> "OnnxGPEN":
        return self


def load_restorer(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, FaceTemplate, dict[str, Any]]:
    """Load a GPEN restorer: ``(model in eval mode, alignment template, meta)``.

    ``path`` is a PyTorch checkpoint (faceforge or published layout), or an ``.onnx`` file exported by
    ``faceforge export gpen`` (then the model is an :class:`OnnxGPEN`, run by ONNX Runtime on the CPU).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a GPEN checkpoint (faceforge or published layout) or GPEN ONNX file.
    """
    from faceforge.models.gpen import GPEN, load_gpen

    if Path(path).suffix.lower() == ".onnx":
        if not Path(path).is_file():
            raise FileNotFoundError(f"GPEN ONNX file not found: {path}")
        runner = OnnxGPEN(path)
        meta = dict(runner.faceforge_meta)
        name = meta.get("face_template") or "utkface"
        template = GPEN_FFHQ_TEMPLATE if name == "gpen_ffhq" else get_template(name)
        return runner.to(device).eval(), template, meta  # type: ignore[return-value]
    ckpt = load_gpen(path)
    model = GPEN(**ckpt["config"])
    model.load_state_dict(ckpt["state_dict"], strict=True)
    meta = dict(ckpt.get("meta", {}))
    name = meta.get("face_template") or ("gpen_ffhq" if meta.get("converted_from") else "utkface")
    template = GPEN_FFHQ_TEMPLATE if name == "gpen_ffhq" else get_template(name)
    model.faceforge_meta = meta
    return model.to(device).eval(), template, meta



@functools.lru_cache(maxsize=4)
def _load_restorer_once(path: str, mtime_ns: int, size: int, device: str) -> tuple[nn.Module, FaceTemplate, dict[str, Any]]:
    return load_restorer(path, device)


def shared_restorer(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, FaceTemplate, dict[str, Any]]:
    """:func:`load_restorer`, loaded once per file and device and shared by every caller (a server builds a
    :class:`FaceRestorer` per request, a batch of emojis one per image). A file rewritten in place (new
    modification time or size) is loaded again; the four most recent files are kept.

    Returns:
        ``(model in eval mode, template, a copy of meta)``; the model is shared: do not train or modify it.

    Raises:
        FileNotFoundError, CheckpointError: as :func:`load_restorer`.
    """
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise FileNotFoundError(f"GPEN weights not found: {path}")
    st = resolved.stat()
    model, template, meta = _load_restorer_once(str(resolved), st.st_mtime_ns, st.st_size, str(torch.device(device)))
    return model, template, dict(meta)

# --------------------------------------------------------------------------------------------------
# Pixel operations


def classical_restore(crop: np.ndarray, h: float = 5.0, sharpen_sigma: float | None = None,
                      amount: float = 0.8) -> np.ndarray:
    """Non-local means denoising (``cv2.fastNlMeansDenoisingColored``, template 7, search 21) then an unsharp
    mask ``y = d + amount (d - G_sigma * d)``.

    Args:
        crop: uint8 ``(H, W, 3)`` RGB.
        h: filter strength for luminance and colour (OpenCV's ``h`` / ``hColor``; 0 skips denoising).
        sharpen_sigma: unsharp blur sigma in pixels; default ``max(0.6, H / 128)``.
        amount: unsharp strength (0 = none).

    Returns:
        uint8 ``(H, W, 3)`` RGB.

    Raises:
        ValueError: bad image or negative parameters.
    """
    crop = check_rgb(crop, "crop")
    if h < 0 or amount < 0 or (sharpen_sigma is not None and sharpen_sigma <= 0):
        raise ValueError("h and amount must be >= 0, sharpen_sigma > 0")
    x = np.ascontiguousarray(crop)
    if h > 0:
        bgr = cv2.fastNlMeansDenoisingColored(cv2.cvtColor(x, cv2.COLOR_RGB2BGR), None, h, h, 7, 21)
        x = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if amount > 0:
        sigma = max(0.6, crop.shape[0] / 128) if sharpen_sigma is None else float(sharpen_sigma)
        f = x.astype(np.float32)
        f = f + amount * (f - cv2.GaussianBlur(f, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101))
        x = np.clip(np.rint(f), 0, 255).astype(np.uint8)
    return x


def soft_mask(size: int, inset: float = MASK_INSET, sigma: float = MASK_SIGMA) -> np.ndarray:
    """Blending mask of a ``size x size`` crop: 1 in the square inset by ``inset * size``, blurred with a
    Gaussian of ``sigma * size`` px; float32 ``(size, size)`` in [0, 1] (0 = hard edge when ``sigma = 0``)."""
    if not (0 <= inset < 0.5 and sigma >= 0):
        raise ValueError(f"need 0 <= inset < 0.5 and sigma >= 0, got {inset}, {sigma}")
    m = np.zeros((size, size), np.float32)
    a = int(round(inset * size))
    m[a:size - a, a:size - a] = 1.0
    if sigma > 0:
        m = cv2.GaussianBlur(m, (0, 0), sigma * size, borderType=cv2.BORDER_CONSTANT)
    return np.clip(m, 0.0, 1.0)


def match_colour(restored: np.ndarray, reference: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Shift ``restored``'s CIE Lab mean onto ``reference``'s (weighted by ``weights``), keeping its detail.

    A restorer can drift in brightness or tint; the degraded input's low-frequency colour is reliable, so
    only the means move (the spread, i.e. the restored contrast, is kept). Both images uint8 ``(S, S, 3)``
    RGB of the same size; ``weights`` float ``(S, S)`` (default: uniform). Returns uint8 ``(S, S, 3)``.
    """
    restored, reference = check_rgb(restored, "restored"), check_rgb(reference, "reference")
    if restored.shape != reference.shape:
        reference = cv2.resize(reference, restored.shape[1::-1], interpolation=cv2.INTER_AREA)
    w = np.ones(restored.shape[:2], np.float32) if weights is None else weights.astype(np.float32)
    if w.shape != restored.shape[:2]:
        w = cv2.resize(w, restored.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    total = float(w.sum())
    if total <= 0:
        return restored.copy()
    lab_r = cv2.cvtColor(restored.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    lab_i = cv2.cvtColor(reference.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    shift = ((lab_i - lab_r) * w[..., None]).reshape(-1, 3).sum(0) / total
    out = cv2.cvtColor(lab_r + shift.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def is_grayscale(rgb: np.ndarray, tolerance: float = 2.0) -> bool:
    """Whether a photo is gray (a black-and-white picture stored as RGB): the mean absolute channel
    difference is below 0.5 and its 99.5th percentile at most ``tolerance`` grey levels (JPEG chroma noise)."""
    rgb = check_rgb(rgb)
    x = rgb[:: max(1, rgb.shape[0] // 256), :: max(1, rgb.shape[1] // 256)].astype(np.int16)
    d = np.maximum(np.abs(x[..., 0] - x[..., 1]), np.abs(x[..., 1] - x[..., 2]))
    return float(d.mean()) < 0.5 and float(np.percentile(d, 99.5)) <= tolerance


def _to_gray(rgb: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def boundary_difference(before: np.ndarray, after: np.ndarray, alpha: np.ndarray, width: int = 3) -> float:
    """Seam measure: mean absolute difference (grey levels, averaged over channels) between ``after`` and
    ``before`` across the paste mask's boundary: on the pixels within ``width`` px (chessboard distance) of the
    mask's ``alpha = 0.5`` contour, inside and outside.

    A pasted face whose colour and brightness continue the photo's leaves little difference there; a
    tinted, shifted or badly blended face shows as a large one. ``before``/``after``: uint8 ``(h, w, 3)`` of
    the same region, ``alpha`` float ``(h, w)`` in [0, 1]. Returns ``nan`` when the mask has no boundary.
    """
    inside = (alpha >= 0.5).astype(np.uint8)
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    ring = cv2.dilate(inside, kernel).astype(bool) & ~cv2.erode(inside, kernel, borderValue=1).astype(bool)
    if not ring.any():
        return float("nan")
    diff = np.abs(after.astype(np.float32) - before.astype(np.float32)).mean(axis=2)
    return float(diff[ring].mean())


def _paste(canvas: np.ndarray, crop: np.ndarray, inverse: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """Blend ``crop`` (S x S) into ``canvas`` with ``inverse`` (crop -> canvas, continuous coordinates) and the
    crop-space ``mask``. Returns ``(new canvas, alpha of the changed box (h, w) float32, box (x0, y0, x1, y1))``;
    only pixels under the mask change."""
    out = canvas.copy()
    placed = warp_box(inverse, crop.shape[0], canvas.shape)
    if placed is None:
        return out, np.zeros((0, 0), np.float32), (0, 0, 0, 0)
    (x0, y0, x1, y1), m = placed
    roi = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(np.ascontiguousarray(crop), m, roi, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask, m, roi, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    region = out[y0:y1, x0:x1].astype(np.float32)
    blended = region + alpha[..., None] * (warped.astype(np.float32) - region)
    out[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out, alpha, (x0, y0, x1, y1)


# --------------------------------------------------------------------------------------------------
# Results and the restorer


@dataclass
class RestoredFace:
    """One detected face of a restored photo.

    Attributes:
        index: position in the detector's list (what ``faces=`` selects by).
        box: float32 ``(4,)`` ``xmin, ymin, xmax, ymax`` in pixels of the input photo.
        keypoints: float32 ``(6, 2)`` pixels.
        score: detector confidence.
        restored: whether this face was restored (selected).
        crop: uint8 ``(S, S, 3)`` aligned input crop, or ``None``.
        output: uint8 ``(S, S, 3)`` restored crop as pasted (after colour matching), or ``None``.
        face_side: the face's template square side in pixels of the input photo (0 if not restored).
        seam: :func:`boundary_difference` of this face's paste (grey levels; ``nan`` if not restored).
    """

    index: int
    box: np.ndarray
    keypoints: np.ndarray
    score: float
    restored: bool
    crop: np.ndarray | None = None
    output: np.ndarray | None = None
    face_side: float = 0.0
    seam: float = float("nan")

    def to_dict(self, keypoint_names: Sequence[str] | None = None) -> dict[str, Any]:
        return {"index": self.index, **face_fields(self.box, self.keypoints, self.score, keypoint_names),
                "restored": self.restored, "face_side": round(float(self.face_side), 1),
                "seam": None if np.isnan(self.seam) else round(float(self.seam), 3)}


@dataclass
class RestorationResult:
    """Result of :meth:`FaceRestorer.restore`.

    Attributes:
        image: uint8 ``(k H, k W, 3)`` RGB (``k`` = ``upscale``).
        faces: every detected face, detector order.
        method: ``"gpen"`` or ``"classical"``.
        upscale: background scale factor ``k``.
        grayscale: the input was gray, so the output is too.
        timings_ms: ``detect``, ``align``, ``restore``, ``paste`` in milliseconds.
    """

    image: np.ndarray
    faces: list[RestoredFace]
    method: str
    upscale: int
    grayscale: bool
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def restored(self) -> list[RestoredFace]:
        return [f for f in self.faces if f.restored]

    @property
    def seam(self) -> float:
        """Mean :func:`boundary_difference` over the restored faces (``nan`` without any)."""
        values = [f.seam for f in self.restored if not np.isnan(f.seam)]
        return float(np.mean(values)) if values else float("nan")


class FaceRestorer(FacePipeline):
    """Restore the faces of whole photos (see the module docstring): a
    :class:`~faceforge.pipelines.FacePipeline` whose preparation (step ``align``) makes the canvas (the
    photo, or its Lanczos upscale) and aligns each face on the restorer's template, whose model step
    (``restore``) is GPEN or the classical filter chain, and whose paste back (``paste``) colour-matches
    each face and blends it into the canvas with :func:`soft_mask`. Each photo runs on a shallow copy of
    the restorer (the canvas is per photo; the model and the detector are shared).

    Args:
        method: ``"gpen"`` (needs weights) or ``"classical"`` (always works).
        weights: for ``gpen``: a checkpoint file, a run folder or ``"default"``; ``None`` reads
            ``$FACEFORGE_GPEN_WEIGHTS`` (then ``"default"``), see :func:`resolve_weights`.
        upscale: background scale ``k`` (1 = untouched; 2-4: Lanczos upscale, faces pasted at k x).
        detector: a face detector to reuse (default: ``FaceDetector()`` on first use).
        device: torch device of GPEN.
        colour_match: apply :func:`match_colour` to each restored face.
        environ: environment for :func:`resolve_weights` (default ``os.environ``).

    Raises:
        ValueError: unknown method, ``upscale`` outside 1-8.
        WeightsNotFoundError: ``gpen`` without weights (the message says how to provide them).
        CheckpointError: the weights are not a GPEN checkpoint.
    """

    def __init__(self, method: str = "gpen", weights: str | Path | None = None, upscale: int = 1,
                 detector: FaceDetector | None = None, device: str | torch.device = "cpu",
                 colour_match: bool = True, environ: dict[str, str] | None = None) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if int(upscale) != upscale or not 1 <= upscale <= 8:
            raise ValueError(f"upscale must be an integer in 1-8, got {upscale}")
        self.method, self.upscale, self.colour_match = method, int(upscale), colour_match
        self._canvas: np.ndarray | None = None  # per photo, set on the copy that runs it
        self._gray = False
        self.device = torch.device(device)
        self._detector = detector
        self.model: nn.Module | None = None
        self.weights_path: Path | None = None
        self.meta: dict[str, Any] = {}
        if method == "gpen":
            self.weights_path = resolve_weights(weights, environ)
            self.model, self.template, self.meta = shared_restorer(self.weights_path, self.device)
            self.size = int(self.model.size)
        else:
            self.template, self.size = get_template("utkface"), 0
        self.crop_size = self.size  # 0 for classical: each face is cut at its own resolution
        self.face_template = self.template.name

    @property
    def version(self) -> str:
        if self.method == "classical":
            return "opencv-nlmeans+unsharp"
        return weights_version(self.meta, self.weights_path)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description of the restorer."""
        return {"method": self.method, "version": self.version, "size": self.size or None,
                "face_template": self.template.name, "upscale": self.upscale,
                "weights": str(self.weights_path) if self.weights_path else None}

    @torch.inference_mode()
    def restore_crops(self, crops: np.ndarray | Sequence[np.ndarray], batch_size: int = 8) -> np.ndarray:
        """Restore aligned faces (no detection, no paste back, no colour matching).

        Args:
            crops: uint8 RGB ``(N, S, S, 3)`` (for ``gpen``: S = the model's size, aligned on
                :attr:`template`; ``classical``: any S).

        Returns:
            uint8 ``(N, S, S, 3)``.

        Raises:
            ValueError: bad dtype or shape.
        """
        batch = np.stack([np.asarray(c) for c in crops]) if not isinstance(crops, np.ndarray) else crops
        if batch.size == 0:
            return np.zeros((0, max(self.size, 1), max(self.size, 1), 3), np.uint8)
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[-1] != 3 or batch.shape[1] != batch.shape[2]:
            raise ValueError(f"crops must be uint8 (N, S, S, 3), got {batch.dtype} {batch.shape}")
        if self.method == "classical":
            return np.stack([classical_restore(c) for c in batch])
        if batch.shape[1] != self.size:
            raise ValueError(f"GPEN-{self.size} needs {self.size} x {self.size} crops, got {batch.shape[1]}")
        outs = []
        for i in range(0, len(batch), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(batch[i:i + batch_size])).permute(0, 3, 1, 2).float()
            y = self.model(x.div(127.5).sub(1.0).to(self.device)).float().clamp(-1, 1)
            outs.append(((y + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(outs)

    # ------------------------------------------------------------------ the pipeline's steps
    model_step = "restore"
    pastes = True

    def run(self, rgb: np.ndarray, faces: str | Sequence[int] = "all", *, detected: Sequence[Face] | None = None,
            max_faces: int | None = None, **options: Any):
        """:meth:`FacePipeline.run <faceforge.pipelines.FacePipeline.run>` on a shallow copy of the restorer
        (the canvas is per photo). Returns the :class:`~faceforge.pipelines.PipelineRun`; :meth:`restore`
        turns it into a :class:`RestorationResult`."""
        return self._run(rgb, faces, detected, max_faces, options)[0]

    def _run(self, rgb, faces, detected, max_faces, options):
        worker = copy.copy(self)
        run = FacePipeline.run(worker, rgb, faces, detected=detected, max_faces=max_faces, **options)
        return run, worker

    def prepare_faces(self, rgb: np.ndarray, found: Sequence[Face], chosen: Sequence[int],
                      timings: dict[str, float]) -> list[FaceJob]:
        """Make the canvas, then align every chosen face: GPEN at its size from the photo; classical at the
        face's own resolution (its template square x upscale, a multiple of 4 in 32-1024 px) from the
        canvas. ``job.extra``: ``inverse`` (crop -> canvas, continuous pixel coordinates) and ``side`` (the
        face's template square side in photo pixels). Step ``align``."""
        t0 = time.perf_counter()
        k = self.upscale
        self._gray = is_grayscale(rgb)
        self._canvas = canvas = rgb if k == 1 else cv2.resize(rgb, (rgb.shape[1] * k, rgb.shape[0] * k),
                                                              interpolation=cv2.INTER_LANCZOS4)
        jobs = []
        for i in chosen:
            kps = np.asarray(found[i].keypoints, np.float64)
            unit = umeyama(kps[list(self.template.indices)], self.template.points(1.0))
            side = 1.0 / float(np.sqrt(abs(np.linalg.det(unit[:, :2]))))  # template square side in photo px
            if self.method == "gpen":
                a = align_face(rgb, kps, self.size, template=self.template)
                inverse = a.inverse * k
            else:
                size = int(np.clip(round(side * k / 4) * 4, 32, 1024))
                a = align_face(canvas, kps * k, size, template=self.template)
                inverse = a.inverse
            jobs.append(FaceJob(index=i, face=found[i], aligned=a, input=a.image,
                                extra={"inverse": inverse, "side": side}))
        timings[self.align_step] = (time.perf_counter() - t0) * 1e3
        return jobs

    def run_model(self, inputs: list[np.ndarray], **_: Any) -> list[np.ndarray]:
        """The model step: GPEN (:meth:`restore_crops`) or :func:`classical_restore` per crop."""
        if self.method == "gpen":
            return list(self.restore_crops(inputs))
        return [classical_restore(c) for c in inputs]

    def paste_canvas(self, rgb: np.ndarray) -> np.ndarray:
        """A copy of the canvas :meth:`prepare_faces` made (the photo, or its upscale)."""
        return (rgb if self._canvas is None else self._canvas).copy()

    def paste(self, image: np.ndarray, job: FaceJob) -> np.ndarray:
        """Colour-match the restored face to its input crop (:func:`match_colour`, under the mask), make it
        grey for a grey photo, blend it in with :func:`soft_mask`; ``job.extra`` gains ``pasted`` (the crop
        as pasted) and ``seam`` (:func:`boundary_difference`, grey levels)."""
        out = job.output
        mask = soft_mask(out.shape[0])
        if self.colour_match:
            out = match_colour(out, job.input, mask)
        if self._gray:
            out = _to_gray(out)
        before = image
        image, alpha, (x0, y0, x1, y1) = _paste(image, out, job.extra["inverse"], mask)
        job.extra["seam"] = boundary_difference(before[y0:y1, x0:x1], image[y0:y1, x0:x1], alpha)
        job.extra["pasted"] = out
        return image

    def finish(self, image: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        """Grayscale in -> grayscale out (BT.601 luma in all channels)."""
        return _to_gray(image) if self._gray else image

    def restore(self, rgb: np.ndarray, faces: str | Sequence[int] = "all", detected: Sequence[Face] | None = None,
                max_faces: int | None = None) -> RestorationResult:
        """Detect the faces of a photo, restore the selected ones, paste them back.

        Args:
            rgb: uint8 ``(H, W, 3)`` RGB photo.
            faces: ``"all"``, ``"largest"`` or 0-based indices (``"0,2"``), detector order.
            detected: faces already found in ``rgb`` (skips detection).
            max_faces: restore at most this many of the selected faces.

        Returns:
            :class:`RestorationResult` (the image is ``upscale`` times the input's size).

        Raises:
            ValueError: bad image or selection.
            NoFaceError: no face detected.
            FaceSelectionError: a selected index is not among the detected faces.
        """
        run, worker = self._run(rgb, faces, detected, max_faces, {})
        result_faces = []
        for i, face in enumerate(run.found):
            job = run.job(i)
            result_faces.append(RestoredFace(
                index=i, box=np.asarray(face.box, np.float32), keypoints=np.asarray(face.keypoints, np.float32),
                score=float(face.score), restored=job is not None, crop=None if job is None else job.input,
                output=None if job is None else job.extra.get("pasted"),
                face_side=0.0 if job is None else float(job.extra["side"]),
                seam=float("nan") if job is None else job.extra.get("seam", float("nan"))))
        return RestorationResult(image=run.image, faces=result_faces, method=self.method, upscale=self.upscale,
                                 grayscale=worker._gray, timings_ms=run.timings_ms)


UPSCALERS = ("auto", "gpen", "classical", "lanczos")
"""Ways :func:`upscale_face` enlarges a face: ``auto`` = ``gpen`` when weights are configured, else
``classical``."""


def upscale_face(rgb: np.ndarray, size: tuple[int, int], method: str = "auto", restorer: "FaceRestorer | None" = None,
                 environ: dict[str, str] | None = None) -> tuple[np.ndarray, str]:
    """Enlarge a face image to ``size`` with the best restorer available (a small generated face -> a
    personal emoji of a size people use, :func:`faceforge.stylegan.personal_emoji`).

    Methods:

    ``lanczos``
        ``cv2.INTER_LANCZOS4`` then an unsharp mask (:func:`classical_restore` with ``h = 0``).
    ``classical``
        Lanczos, then :func:`classical_restore` at the new size: non-local means (removes the ringing and
        blockiness a x4-x8 Lanczos upscale shows) and the unsharp mask.
    ``gpen``
        GPEN (:class:`FaceRestorer` ``method="gpen"``, weights from ``$FACEFORGE_GPEN_WEIGHTS`` or the
        installed card) on the face resized to the restorer's side (the face is assumed framed like the
        restorer's template: faceforge's generated faces and GPEN weights both use ``utkface``), then the
        ``lanczos`` chain up to ``size`` when that is larger than the restorer's side.
    ``auto``
        ``gpen`` when weights are configured, else ``classical``.

    A face already at least ``size`` is shrunk with ``cv2.INTER_AREA`` instead (method ``"area"``).

    Args:
        rgb: uint8 ``(H, W, 3)`` RGB face.
        size: ``(width, height)`` of the result, each >= 1.
        method: one of :data:`UPSCALERS`.
        restorer: a GPEN :class:`FaceRestorer` to reuse (``gpen`` / ``auto``).
        environ: environment for :func:`resolve_weights`.

    Returns:
        ``(uint8 (height, width, 3), method used)``: ``"area"``, ``"lanczos"``, ``"classical"`` or ``"gpen"``.

    Raises:
        ValueError: bad image, size or method.
        WeightsNotFoundError: ``method="gpen"`` without weights.
    """
    from faceforge.errors import FaceforgeError

    rgb = check_rgb(rgb)
    w, h = (int(v) for v in size)
    if w < 1 or h < 1:
        raise ValueError(f"size must be (width, height) >= 1, got {size}")
    if method not in UPSCALERS:
        raise ValueError(f"method must be one of {', '.join(UPSCALERS)}, got {method!r}")
    if w <= rgb.shape[1] and h <= rgb.shape[0]:
        return cv2.resize(np.ascontiguousarray(rgb), (w, h), interpolation=cv2.INTER_AREA), "area"
    if method in ("auto", "gpen") and (restorer is None or restorer.method != "gpen"):
        try:
            restorer = FaceRestorer(method="gpen", detector=object(), environ=environ)  # type: ignore[arg-type]
        except FaceforgeError:
            if method == "gpen":
                raise
            restorer, method = None, "classical"
    x, used = np.ascontiguousarray(rgb), "lanczos" if method == "lanczos" else method
    if used in ("auto", "gpen"):
        s = restorer.size
        interp = cv2.INTER_AREA if s <= min(x.shape[:2]) else cv2.INTER_LANCZOS4
        x = restorer.restore_crops(cv2.resize(x, (s, s), interpolation=interp)[None])[0]
        used = "gpen"
        if w <= s and h <= s:
            return cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA), used
    x = cv2.resize(x, (w, h), interpolation=cv2.INTER_LANCZOS4)
    return classical_restore(x, h=5.0 if used == "classical" else 0.0), used


def make_restorer(method: str = "auto", detector: FaceDetector | None = None, upscale: int = 1,
                  weights: str | Path | None = None) -> "FaceRestorer | None":
    """The restorer ``method`` names: ``"auto"`` (GPEN when weights are configured, else classical),
    ``"gpen"``, ``"classical"``, or ``None`` for ``"none"``.

    Raises:
        WeightsNotFoundError: ``"gpen"`` without weights.
        ValueError: an unknown method.
    """
    from faceforge.errors import FaceforgeError

    if method == "none":
        return None
    if method not in ("auto", *METHODS):
        raise ValueError(f"method must be auto, none, {', '.join(METHODS)}; got {method!r}")
    if method in ("auto", "gpen"):
        try:
            return FaceRestorer(method="gpen", weights=weights, upscale=upscale, detector=detector)
        except FaceforgeError:
            if method == "gpen":
                raise
    return FaceRestorer(method="classical", upscale=upscale, detector=detector)


def restore_last(rgb: np.ndarray, faces: Sequence[Any], method: str = "auto",
                 detector: FaceDetector | None = None) -> tuple[np.ndarray, str]:
    """Restoration as the last step of another face pipeline (translate, swap, virtual model).

    Args:
        rgb: uint8 ``(H, W, 3)``, the other pipeline's output photo.
        faces: the faces that pipeline changed, as detected on its input (objects with ``box``,
            ``keypoints`` ``(6, 2)`` and ``score``; e.g. :class:`~faceforge.translate.TranslatedFace`).
        method: ``"auto"`` (GPEN when weights are configured, else classical), ``"gpen"`` or ``"classical"``.
        detector: reused for nothing but construction (no detection runs: the faces are given).

    Returns:
        ``(restored photo, method used)``; the photo unchanged when ``faces`` is empty.

    Raises:
        WeightsNotFoundError: ``method="gpen"`` without weights.
        ValueError: an unknown method.
    """
    from faceforge.faces.detect import Face

    if method not in ("auto", *METHODS):
        raise ValueError(f"method must be auto, {', '.join(METHODS)}; got {method!r}")
    if not faces:
        return rgb, "none"
    restorer = make_restorer(method, detector)
    given = [Face(box=np.asarray(f.box, np.float32), keypoints=np.asarray(f.keypoints, np.float32),
                  score=float(f.score)) for f in faces]
    return restorer.restore(rgb, faces="all", detected=given).image, restorer.method

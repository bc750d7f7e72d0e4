"""Whole-photo face translation with CycleGAN generators (default task: aging, young -> old).

Pipeline (one call of :meth:`FaceTranslator.translate`)::

    RGB uint8 (H, W, 3)
      --detect (BlazeFace)-->                        faces, highest score first
      --select (all | largest | indices)-->          the faces to change
      --align ("utkface" template, S x S)-->         RGB crops (N, S, S, 3), S = 256 (128 supported)
      --p / 127.5 - 1, generator (one batch)-->      float32 (N, 3, S, S) in (-1, 1)
      --(x + 1) * 127.5, round-->                    RGB crops uint8 (N, S, S, 3)
      --optional post-filter (Gaussian + unsharp)--> RGB crops uint8
      --paste back (inverse warp, feathered mask)--> RGB uint8 (H, W, 3), only the faces' squares change

The generators are CycleGAN generators (J.-Y. Zhu, T. Park, P. Isola, A. A. Efros, "Unpaired
Image-to-Image Translation using Cycle-Consistent Adversarial Networks", ICCV 2017,
arXiv:1703.10593) trained by :mod:`training.cyclegan`: ``G_A`` maps domain A to B (for ``age``: young
18-29 -> old 60+), ``G_B`` maps B back to A. The crops are made by the same detector and template as
the training crops (:func:`training.unpaired.build_age_split`), so the generator sees at serving time
what it saw in training.

Weights (``weights=`` of :class:`FaceTranslator`, ``--weights`` of ``faceforge translate``,
``FACEFORGE_TRANSLATE_<TASK>_WEIGHTS`` for the server and the CLI) may be:

- a **run folder** of ``faceforge train cyclegan`` holding ``G_A.pt`` and/or ``G_B.pt``: both
  directions when both are there;
- one **generator checkpoint** (``G_A.pt``, or an installed copy such as
  ``faceforge/weights/cyclegan_age.pt``): the direction its ``meta["direction"]`` states (``A->B`` if
  it states none);
- a training state ``last.pt`` (``arch="cyclegan_training_state"``): both generators;
- ``"default"``: the task's shipped file under ``faceforge/weights/`` (:data:`TASKS`; ``age``:
  ``cyclegan_age.pt``, provenance in the ``.json`` beside it). A missing file raises
  :class:`~faceforge.errors.WeightsNotFoundError`.

Detail transfer (``detail="transfer"``, the default): the generator works at its own size ``S``, the
face often has more pixels than that, and a generator's output is softer than its input. So the
selected face is aligned at *its own* resolution ``S_hi`` (the photo's pixels per template pixel,
``S <= S_hi <= max_side``), shrunk to ``S`` (area averaging) for the generator, and only the generator's
*change* is carried back: ``out = hi + up(G_sigma * (G(lo) - lo))``, with ``G_sigma`` a Gaussian of
``detail_sigma`` generator pixels (the change's low-frequency bands: colour, shading, shape; the
input's own fine detail is kept) and ``up`` a bilinear resize to ``S_hi``; ``strength`` and ``colour``
(call options of :meth:`FaceTranslator.translate`, default 1) scale the carried change and its colour
part. This is a two-band
Laplacian-pyramid blend (Burt & Adelson, "The Laplacian Pyramid as a Compact Image Code", IEEE Trans.
Commun. 1983; "A Multiresolution Spline", ACM TOG 1983): low bands from the generator, high bands
from the photo. The change's colour part is scaled by the face's own colourfulness (``mean_chroma /
20``, at most 1): a grey face gets a grey change (grayscale in, grayscale out), a toned or faded print
keeps most of its tone, a colour face takes the change in full. ``detail="off"`` pastes the generator's ``S`` x ``S`` output as it is (the earlier
behaviour, and what the phone path in ``mobile_assets/`` does).

Post-filter (``postfilter=True``): the seed project smoothed its CycleGAN outputs with "a Gaussian
filter plus sharpening". Its numbers are not available; :func:`postfilter` uses a light Gaussian blur
(sigma 0.8 px at 256) that removes the generator's high-frequency texture noise, followed by an unsharp
mask (sigma 2 px, amount 0.6; the classic ``x + a (x - G_sigma * x)``, e.g. Gonzalez & Woods, "Digital
Image Processing", sec. 3.6) that restores edge contrast. Sigmas scale with the crop side.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from faceforge.checkpoints import load_checkpoint, weights_version
from faceforge.errors import CheckpointError, UnknownTaskError, WeightsNotFoundError
from faceforge.faces.select import detect_and_select, parse_face_selection, select_faces  # noqa: F401 (re-exported)
from faceforge.imaging import check_rgb
from faceforge.models import cards, get_spec
from faceforge.models.registry import build_from_state
from faceforge.pipelines.base import FacePipeline, face_fields

if TYPE_CHECKING:  # imported lazily at run time: the detector loads LiteRT
    from faceforge.faces.detect import Face, FaceDetector

__all__ = ["TranslateTask", "TASKS", "DIRECTIONS", "DETAIL_MODES", "MAX_STRENGTH", "get_task", "resolve_weights",
           "load_generators", "parse_face_selection", "select_faces", "postfilter", "mean_chroma",
           "transfer_change", "TranslatedFace", "TranslationResult", "FaceTranslator"]

DETAIL_MODES = ("transfer", "off")
"""``detail=`` of :class:`FaceTranslator`: carry the generator's change onto the face at its own
resolution (``transfer``), or paste the generator's output as it is (``off``)."""

MAX_STRENGTH = 2.0
"""Largest ``strength`` of :meth:`FaceTranslator.translate`: the factor on the generator's carried change
(1: as trained). Above 1 the change is extrapolated; at 2 the shipped aging generator's colour casts and
blotches dominate (measured in the README), so nothing larger is offered."""

TRAINING_STATE_ARCH = "cyclegan_training_state"
"""``arch`` of a CycleGAN trainer's ``last.pt`` (:data:`training.cyclegan.STATE_ARCH`; repeated here so
the library does not import the training package)."""

DIRECTIONS = ("A->B", "B->A")
"""Translation directions: ``A->B`` by generator ``G_A``, ``B->A`` by ``G_B``."""

FACE_TEMPLATE = "utkface"
"""Alignment template of every translator (the framing of the UTKFace training crops)."""

SUPPORTED_SIZES = (128, 256)
"""Crop sides the translators are documented and tested at (any multiple of 4 >= 16 runs)."""


@dataclass(frozen=True)
class TranslateTask:
    """One translation task served by ``faceforge translate`` and ``POST /v1/translate``.

    Attributes:
        name: task name, e.g. ``"age"``.
        description: one line for help texts and the OpenAPI document.
        domains: ``(A, B)`` human-readable names of the two image domains.
        card: the model card (:mod:`faceforge.models.cards`) of the task's default generator
            (``None``: the task ships no default).
    """

    name: str
    description: str
    domains: tuple[str, str]
    card: str | None = None

    @property
    def env_var(self) -> str:
        """Environment variable naming this task's weights, e.g. ``FACEFORGE_TRANSLATE_AGE_WEIGHTS``."""
        return f"FACEFORGE_TRANSLATE_{self.name.upper()}_WEIGHTS"

    @property
    def config_key(self) -> str:
        """Field of :class:`server.config.Config` holding this task's weights setting."""
        return f"translate_{self.name}_weights"

    @property
    def default_weights_path(self) -> Path | None:
        """The default generator's file (installed copy, else the shipped one; may not exist), or ``None``."""
        if self.card is None:
            return None
        card = cards.get_card(self.card)
        return card.expected_path

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "domains": {"A": self.domains[0], "B": self.domains[1]}}


TASKS: dict[str, TranslateTask] = {
    "age": TranslateTask(
        "age", "aging: CycleGAN between young (18-29, A) and old (60+, B) UTKFace faces; A->B ages a face",
        ("young (18-29)", "old (60+)"), card="cyclegan_resnet9.age"),
}
"""Known tasks by name. To add one: train a CycleGAN on its two domains (``trainA/ trainB/``), add a
:class:`TranslateTask` here, and a ``translate_<task>_weights`` field to :class:`server.config.Config`."""


def get_task(name: str) -> TranslateTask:
    """The task called ``name``.

    Raises:
        UnknownTaskError: unknown name; ``str(error)`` and the problem's ``valid`` list the known tasks.
    """
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}", field="task",
                               valid=list(TASKS)) from None


def resolve_weights(task: str | TranslateTask, weights: str | Path | None = None,
                    environ: dict[str, str] | None = None) -> Path:
    """Where a task's generator weights are: ``weights`` if given (``"default"``: the installed file),
    else ``$FACEFORGE_TRANSLATE_<TASK>_WEIGHTS``, else the installed default.

    Args:
        task: task name or object.
        weights: a run folder, a checkpoint file, ``"default"`` or ``None``.
        environ: environment to read (default ``os.environ``).

    Returns:
        The existing file or folder.

    Raises:
        UnknownTaskError: unknown task.
        WeightsNotFoundError: the resolved path does not exist (e.g. no trained default installed); the
            message says how to train or point at weights.
    """
    task = get_task(task) if isinstance(task, str) else task
    environ = os.environ if environ is None else environ
    chosen = weights if weights not in (None, "") else environ.get(task.env_var) or "default"
    if str(chosen) == "default" or str(chosen) in cards.CARDS:
        if task.card is None and str(chosen) == "default":
            raise WeightsNotFoundError(f"task {task.name!r} ships no default generator; set {task.env_var} "
                                       f"(or --weights) to a `faceforge train cyclegan` run folder",
                                       task=task.name, env=task.env_var)
        return cards.resolve(str(chosen), task.card or str(chosen), environ={},
                             hint=f"train a translator with `faceforge train cyclegan --install`, or point "
                                  f"{task.env_var} (or --weights) at its run folder")
    path = Path(chosen).expanduser()
    if not path.exists():
        raise WeightsNotFoundError(f"weights for task {task.name!r} not found: {path}", path=str(path),
                                   task=task.name)
    return path


# --------------------------------------------------------------------------------------------------
# Loading generators


def _from_generator_file(path: Path) -> tuple[str, nn.Module, dict[str, Any]]:
    ckpt = load_checkpoint(path)
    if ckpt["arch"] == TRAINING_STATE_ARCH:
        raise CheckpointError(f"{path} is a training state; load it with load_generators")
    model = build_from_state(ckpt["arch"], ckpt.get("config", {}), ckpt["state_dict"], str(path), task="translate")
    meta = dict(ckpt.get("meta", {}))
    direction = meta.get("direction", "A->B")
    if direction not in DIRECTIONS:
        raise CheckpointError(f"{path}: meta direction {direction!r} is not one of {DIRECTIONS}")
    model.faceforge_meta = meta
    model.faceforge_arch = ckpt["arch"]
    return direction, model, meta


def load_generators(weights: str | Path) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """Load the generator(s) of a translator (see the module docstring for the accepted layouts).

    Args:
        weights: run folder, generator checkpoint or training state ``last.pt``.

    Returns:
        ``(generators, meta)``: ``{"A->B": G_A, "B->A": G_B}`` (one or both keys; modules in eval mode
        on the CPU, each with ``faceforge_arch``, ``faceforge_config`` and ``faceforge_meta``), and the
        provenance ``meta`` of the first generator found (``crop_size`` of its training config,
        ``version``, ...).

    Raises:
        WeightsNotFoundError: the path does not exist, or a folder holds neither ``G_A.pt`` nor ``G_B.pt``.
        CheckpointError: not a faceforge checkpoint of a translation generator, tensors that do not fit,
            or two files claiming the same direction.
    """
    path = Path(weights).expanduser()
    generators: dict[str, nn.Module] = {}
    metas: list[dict[str, Any]] = []
    if path.is_dir():
        for name in ("G_A.pt", "G_B.pt"):
            if (path / name).is_file():
                direction, model, meta = _from_generator_file(path / name)
                if direction in generators:
                    raise CheckpointError(f"{path}: G_A.pt and G_B.pt both translate {direction}")
                generators[direction] = model
                metas.append(meta)
        if not generators:
            raise WeightsNotFoundError(f"{path} holds no generator (G_A.pt / G_B.pt of a `faceforge train "
                                       f"cyclegan` run)", path=str(path))
    elif path.is_file():
        ckpt = load_checkpoint(path)
        if ckpt["arch"] == TRAINING_STATE_ARCH:
            config = ckpt.get("config", {})
            arch = config.get("generator")
            if not arch:
                raise CheckpointError(f"{path}: training state without a 'generator' name in its config")
            meta = dict(ckpt.get("meta", {}))
            meta = {k: v for k, v in meta.items() if k in ("git_commit", "step", "epoch")}
            for prefix, direction in (("G_A.", "A->B"), ("G_B.", "B->A")):
                part = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
                model = build_from_state(arch, config, part, f"{path} [{prefix[:-1]}]", task="translate")
                model.faceforge_meta = {**meta, "direction": direction}
                model.faceforge_arch = arch
                generators[direction] = model
            metas.append(meta)
        else:
            direction, model, meta = _from_generator_file(path)
            generators[direction] = model
            metas.append(meta)
    else:
        raise WeightsNotFoundError(f"translator weights not found: {path}", path=str(path))
    return generators, metas[0]


# --------------------------------------------------------------------------------------------------
# Face selection and the post-filter


def postfilter(rgb: np.ndarray, blur_sigma: float | None = None, sharpen_sigma: float | None = None,
               amount: float = 0.6) -> np.ndarray:
    """The seed project's smoothing: a Gaussian blur, then an unsharp mask.

    ``y = b + amount * (b - G_{sharpen_sigma} * b)`` with ``b = G_{blur_sigma} * x`` (OpenCV
    ``GaussianBlur``, kernel ``6 sigma + 1``, reflected borders), rounded and clipped to uint8.

    Args:
        rgb: uint8 ``(H, W, 3)`` image (a translated crop).
        blur_sigma: Gaussian sigma in pixels; default ``0.8 * H / 256``.
        sharpen_sigma: sigma of the unsharp mask's blur; default ``2.0 * H / 256``.
        amount: unsharp strength (0 = blur only).

    Returns:
        uint8 ``(H, W, 3)``.

    Raises:
        ValueError: not a uint8 ``(H, W, 3)`` array, or negative sigmas/amount.
    """
    check_rgb(rgb)
    scale = rgb.shape[0] / 256.0
    blur_sigma = 0.8 * scale if blur_sigma is None else float(blur_sigma)
    sharpen_sigma = 2.0 * scale if sharpen_sigma is None else float(sharpen_sigma)
    if blur_sigma < 0 or sharpen_sigma < 0 or amount < 0:
        raise ValueError("sigmas and amount must be >= 0")
    x = rgb.astype(np.float32)
    if blur_sigma > 0:
        x = cv2.GaussianBlur(x, (0, 0), blur_sigma, borderType=cv2.BORDER_REFLECT_101)
    if amount > 0 and sharpen_sigma > 0:
        x = x + amount * (x - cv2.GaussianBlur(x, (0, 0), sharpen_sigma, borderType=cv2.BORDER_REFLECT_101))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def mean_chroma(rgb: np.ndarray) -> float:
    """Mean chroma of a uint8 ``(H, W, 3)`` RGB image: per pixel, largest minus smallest channel, in uint8
    levels, averaged. Grey images measure 0, a toned black-and-white face ~13, colour faces ~20-40."""
    x = rgb.astype(np.int16)
    return float((x.max(axis=2) - x.min(axis=2)).mean())


FULL_CHROMA = 20.0
"""Mean chroma (uint8 levels) from which a face takes the generator's colour change in full (see
:func:`transfer_change`)."""


def transfer_change(hi: np.ndarray, lo: np.ndarray, out_lo: np.ndarray, sigma: float = 1.0,
                    strength: float = 1.0, colour: float = 1.0) -> np.ndarray:
    """Carry a generator's change onto the face at full resolution (see the module docstring).

    ``hi + up(G_sigma * (out_lo - lo))``: the change ``out_lo - lo`` at the generator's size, low-passed
    with a Gaussian of ``sigma`` px (OpenCV ``GaussianBlur``, reflected borders; 0: no low-pass),
    resized bilinearly to ``hi``'s side and added. The change's colour part (its deviation from its mean
    over channels) is scaled by ``min(1, mean_chroma(hi) / FULL_CHROMA)``, so a grey ``hi`` stays grey
    and a faded one is not tinted by the generator's colour bias. Source: two-band Laplacian-pyramid blending, Burt &
    Adelson 1983.

    Args:
        hi: uint8 ``(S_hi, S_hi, 3)`` face crop at its own resolution.
        lo: uint8 ``(S, S, 3)``: ``hi`` shrunk to the generator's size (the generator's input).
        out_lo: uint8 ``(S, S, 3)``: the generator's output for ``lo``.
        sigma: low-pass sigma in generator pixels, >= 0.
        strength: factor on the (low-passed, chroma-scaled) change, >= 0: 1 adds it as the generator made
            it, 0 returns ``hi``, 0.5 half of it, > 1 extrapolates it.
        colour: factor on the change's colour part on top of ``strength``, in [0, 1]: 1 keeps it, 0 leaves a
            change of brightness only (shading, wrinkles, greying; the generator's colour cast dropped).

    Returns:
        uint8 ``(S_hi, S_hi, 3)``.

    Raises:
        ValueError: shapes or dtypes that do not fit, a negative sigma or strength, a colour outside [0, 1].
    """
    for name, a in (("hi", hi), ("lo", lo), ("out_lo", out_lo)):
        if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"{name} must be a uint8 (H, W, 3) array")
    if lo.shape != out_lo.shape:
        raise ValueError(f"lo {lo.shape} and out_lo {out_lo.shape} differ")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if not strength >= 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    if not 0 <= colour <= 1:
        raise ValueError(f"colour must be in [0, 1], got {colour}")
    delta = out_lo.astype(np.float32) - lo.astype(np.float32)
    if sigma > 0:
        delta = cv2.GaussianBlur(delta, (0, 0), float(sigma), borderType=cv2.BORDER_REFLECT_101)
    grey = delta.mean(axis=2, keepdims=True)
    delta = strength * (grey + colour * min(1.0, mean_chroma(hi) / FULL_CHROMA) * (delta - grey))
    if delta.shape[:2] != hi.shape[:2]:
        delta = cv2.resize(delta, (hi.shape[1], hi.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(np.rint(hi.astype(np.float32) + delta), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# The translator


@dataclass
class TranslatedFace:
    """One detected face of a translated photo.

    Attributes:
        index: position in the detector's list (highest score first); what ``faces=`` selects by.
        box: float32 ``(4,)`` ``xmin, ymin, xmax, ymax`` in pixels of the input image.
        keypoints: float32 ``(6, 2)`` ``(x, y)`` pixels (:data:`faceforge.faces.detect.KEYPOINT_NAMES`).
        score: detector confidence in [0, 1].
        translated: whether this face was changed (selected).
        crop: uint8 ``(S, S, 3)`` aligned input crop (``None`` when not translated).
        output: uint8 ``(S, S, 3)`` translated crop as pasted (after the post-filter), or ``None``.
    """

    index: int
    box: np.ndarray
    keypoints: np.ndarray
    score: float
    translated: bool
    crop: np.ndarray | None = None
    output: np.ndarray | None = None

    def to_dict(self, keypoint_names: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-ready dict (no pixel arrays): index, box, keypoints, score, translated."""
        return {"index": self.index, **face_fields(self.box, self.keypoints, self.score, keypoint_names),
                "translated": self.translated}


@dataclass
class TranslationResult:
    """Result of :meth:`FaceTranslator.translate`.

    Attributes:
        image: uint8 ``(H, W, 3)`` RGB, the input with the selected faces translated.
        faces: every detected face (translated or not), detector order.
        direction: ``"A->B"`` or ``"B->A"``.
        postfilter: whether :func:`postfilter` was applied to the translated crops.
        timings_ms: wall-clock milliseconds of ``detect``, ``align``, ``translate`` (tensor conversion,
            generator, post-filter) and ``paste``.
    """

    image: np.ndarray
    faces: list[TranslatedFace]
    direction: str
    postfilter: bool
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def translated(self) -> list[TranslatedFace]:
        """The faces that were changed."""
        return [f for f in self.faces if f.translated]


class FaceTranslator(FacePipeline):
    """Translate the faces of whole photos with a CycleGAN generator (Zhu et al., ICCV 2017).

    A :class:`~faceforge.pipelines.FacePipeline`: template alignment on ``utkface``, model step
    ``translate``, feathered paste back.

    Loads the generator(s) and, unless given, a :class:`~faceforge.faces.detect.FaceDetector` once;
    :meth:`translate` and :meth:`translate_crops` may then be called from several threads.

    Args:
        task: task name (:data:`TASKS`), e.g. ``"age"``.
        weights: run folder, generator checkpoint, training state, or ``"default"`` (the task's installed
            weights; see the module docstring). ``$FACEFORGE_TRANSLATE_<TASK>_WEIGHTS`` is *not* read
            here (the CLI and the server resolve it; see :func:`resolve_weights`).
        size: crop side in pixels; default: the training crop size stored in the checkpoint, else the
            generator spec's (256). 128 and 256 are supported; any multiple of 4 >= 16 runs.
        detector: a face detector to reuse; default ``FaceDetector()`` (built on first use).
        device: torch device of the generators.
        feather: width of the paste-back blending ramp, fraction of the crop side, in [0, 0.5].
        detail: ``"transfer"`` (default: the generator's change carried onto the face at its own
            resolution, see the module docstring) or ``"off"`` (paste the generator's output).
        detail_sigma: low-pass sigma of the carried change, generator pixels (>= 0).
        max_side: largest side in px of a face crop in ``transfer`` mode (bigger faces are worked on at
            this side and scaled back by the paste).

    Raises:
        UnknownTaskError: unknown task.
        WeightsNotFoundError: the weights are absent (e.g. no trained default installed).
        CheckpointError: the file is not a translation generator checkpoint.
        ValueError: bad ``size``, ``feather``, ``detail``, ``detail_sigma`` or ``max_side``.

    Example:
        >>> from faceforge.imaging import load_image, save_image
        >>> tr = FaceTranslator("age", weights="runs/cyclegan/000")          # doctest: +SKIP
        >>> result = tr.translate(load_image("group.jpg"), faces="largest")   # doctest: +SKIP
        >>> save_image("older.jpg", result.image)                             # doctest: +SKIP
    """

    def __init__(self, task: str = "age", weights: str | Path = "default", size: int | None = None,
                 detector: FaceDetector | None = None, device: str | torch.device = "cpu",
                 feather: float = 0.1, detail: str = "transfer", detail_sigma: float = 1.0,
                 max_side: int = 1024) -> None:
        self.task = get_task(task)
        if not 0.0 <= feather <= 0.5:
            raise ValueError(f"feather must be in [0, 0.5], got {feather}")
        if detail not in DETAIL_MODES:
            raise ValueError(f"detail must be one of {DETAIL_MODES}, got {detail!r}")
        if detail_sigma < 0:
            raise ValueError(f"detail_sigma must be >= 0, got {detail_sigma}")
        self.detail, self.detail_sigma = detail, float(detail_sigma)
        self.weights_path = resolve_weights(self.task, weights, environ={})
        self.device = torch.device(device)
        self.generators, self.meta = load_generators(self.weights_path)
        for g in self.generators.values():
            g.to(self.device)
        first = next(iter(self.generators.values()))
        self.arch: str = first.faceforge_arch
        trained = (self.meta.get("config") or {}).get("crop_size")
        self.size = int(size or trained or get_spec(self.arch).input.shape[1])
        if self.size < 16 or self.size % 4:
            raise ValueError(f"size must be a multiple of 4 and >= 16 (128 or 256), got {self.size}")
        self.feather = float(feather)
        self.crop_size = self.size
        if int(max_side) != max_side or max_side < self.size:
            raise ValueError(f"max_side must be an integer >= the generator size {self.size}, got {max_side}")
        self.max_side = int(max_side)
        self.input_spec = get_spec(self.arch).input
        self.version = self._version()
        self._detector = detector

    face_template = FACE_TEMPLATE
    model_step = "translate"
    pastes = True

    def crop_side(self, face: "Face") -> int:
        """The template crop's side: the generator size, or in ``transfer`` mode the face's own resolution
        (the photo's pixels per template pixel, a multiple of 4 between the generator size and
        :attr:`max_side`)."""
        if self.detail == "off":
            return self.size
        from faceforge.faces.align import alignment_scale

        scale = alignment_scale(face, self.size, self.face_template)  # crop px per photo px
        return max(self.size, min(self.max_side, int(np.ceil(self.size / max(scale, 1e-6) / 4)) * 4))

    def run_model(self, inputs: list[np.ndarray], direction: str = "A->B", apply_postfilter: bool = False,
                  strength: float = 1.0, colour: float = 1.0, **_: Any) -> list[np.ndarray]:
        """The model step of :meth:`run`: :meth:`translate_crops`, then (``transfer`` mode)
        :func:`transfer_change` back onto each face at its own resolution, scaled by ``strength`` and
        ``colour`` (:meth:`check_strength`)."""
        strength, colour = self.check_strength(strength, colour)
        if self.detail == "off":
            return list(self.translate_crops(inputs, direction, apply_postfilter))
        lo = [c if c.shape[0] == self.size else cv2.resize(c, (self.size, self.size), interpolation=cv2.INTER_AREA)
              for c in inputs]
        out_lo = self.translate_crops(lo, direction, apply_postfilter)
        return [transfer_change(hi, l, o, self.detail_sigma, strength, colour) for hi, l, o in zip(inputs, lo, out_lo)]

    def check_strength(self, strength: float, colour: float = 1.0) -> tuple[float, float]:
        """``(strength, colour)`` as floats, checked: ``strength`` in ``[0, MAX_STRENGTH]``, ``colour`` in
        ``[0, 1]``, both 1 unless in ``transfer`` mode.

        Raises:
            ValueError: out of range, not a number, or != 1 with ``detail="off"`` (that mode pastes the
                generator's output; there is no change to scale).
        """
        values = []
        for name, value, top in (("strength", strength, MAX_STRENGTH), ("colour", colour, 1.0)):
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a number in [0, {top:g}], got {value!r}") from None
            if not 0.0 <= number <= top:
                raise ValueError(f"{name} must be in [0, {top:g}], got {value!r}")
            if number != 1.0 and self.detail == "off":
                raise ValueError(f"{name} needs detail='transfer' (detail='off' pastes the generator's output as it is)")
            values.append(number)
        return values[0], values[1]

    def paste(self, image: np.ndarray, job: Any) -> np.ndarray:
        """Paste one face: ``transfer`` mode adds the change (output - input) to the photo with
        :func:`~faceforge.faces.align.paste_change`, so the photo is never resampled; ``off`` blends
        the generator's crop in (:func:`~faceforge.faces.align.paste_back`)."""
        if self.detail == "off":
            return super().paste(image, job)
        from faceforge.faces.align import paste_change

        change = job.output.astype(np.float32) - job.input.astype(np.float32)
        return paste_change(image, change, job.aligned, feather=self.feather)

    @property
    def directions(self) -> tuple[str, ...]:
        """Directions the loaded weights can translate, subset of :data:`DIRECTIONS`."""
        return tuple(d for d in DIRECTIONS if d in self.generators)

    def _version(self) -> str:
        files = ([self.weights_path / n for n in ("G_A.pt", "G_B.pt") if (self.weights_path / n).is_file()]
                 if self.weights_path.is_dir() else [self.weights_path])
        return weights_version(self.meta, *files)

    def _generator(self, direction: str) -> nn.Module:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if direction not in self.generators:
            raise ValueError(f"the loaded weights ({self.weights_path.name}) translate only "
                             f"{', '.join(self.directions)}; {direction} needs "
                             f"{'G_B.pt' if direction == 'B->A' else 'G_A.pt'} (give the run folder)")
        return self.generators[direction]

    @torch.inference_mode()
    def translate_crops(self, crops: np.ndarray | Sequence[np.ndarray], direction: str = "A->B",
                        apply_postfilter: bool = False, batch_size: int = 8) -> np.ndarray:
        """Translate faces already aligned on the ``utkface`` template (no detection, no paste back).

        Args:
            crops: uint8 RGB ``(N, S, S, 3)`` or a sequence of ``(S, S, 3)``, ``S`` multiple of 4 (the
                network is fully convolutional; give it the size it was trained at).
            direction: ``"A->B"`` or ``"B->A"``.
            apply_postfilter: run :func:`postfilter` on each output.
            batch_size: faces per forward pass.

        Returns:
            uint8 ``(N, S, S, 3)`` RGB.

        Raises:
            ValueError: bad dtype/shape, unknown or unavailable direction.
        """
        g = self._generator(direction)
        batch = np.stack([np.asarray(c) for c in crops]) if not isinstance(crops, np.ndarray) else crops
        if batch.size == 0:
            return np.zeros((0, self.size, self.size, 3), np.uint8)
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[-1] != 3 or batch.shape[1] != batch.shape[2]:
            raise ValueError(f"crops must be uint8 (N, S, S, 3), got {batch.dtype} {batch.shape}")
        if batch.shape[1] % 4:
            raise ValueError(f"crop side must be a multiple of 4, got {batch.shape[1]}")
        scale, offset = np.float32(self.input_spec.scale), np.float32(self.input_spec.offset)
        outs = []
        for i in range(0, len(batch), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(batch[i:i + batch_size]).astype(np.float32) * scale + offset)
            y = g(x.permute(0, 3, 1, 2).to(self.device)).float().clamp(-1, 1)
            y = ((y - offset) / scale).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            outs.append(y)
        out = np.concatenate(outs)
        if apply_postfilter:
            out = np.stack([postfilter(o) for o in out])
        return out

    def translate(self, rgb: np.ndarray, faces: str | Sequence[int] = "all", direction: str = "A->B",
                  apply_postfilter: bool = False, detected: Sequence[Face] | None = None,
                  max_faces: int | None = None, strength: float = 1.0, colour: float = 1.0) -> TranslationResult:
        """Detect the faces of a photo, translate the selected ones, paste them back.

        Each selected face is aligned from the *original* photo and pasted onto the output in turn, so
        overlapping faces are never translated twice.

        Args:
            rgb: uint8 ``(H, W, 3)`` RGB photo (e.g. from :func:`faceforge.imaging.decode_image`).
            faces: ``"all"``, ``"largest"`` or 0-based indices into the detector's faces (highest score
                first), as a sequence or a string such as ``"0,2"`` (:func:`select_faces`).
            direction: ``"A->B"`` (for ``age``: young -> old) or ``"B->A"``.
            apply_postfilter: Gaussian + unsharp post-filter on the translated crops (:func:`postfilter`).
            detected: faces already found in ``rgb`` (skips detection), detector order.
            max_faces: translate at most this many of the selected faces, highest detector score first
                (``None``: no limit).
            strength: how much of the generator's change is added (``transfer`` mode): 1 as trained, 0 none,
                0.5 half, up to :data:`MAX_STRENGTH` (exaggerated: older-looking to the age estimator, but
                with stronger colour casts and blotches; see the README's aging figures).
            colour: how much of the change's colour part is kept on top of ``strength``, in [0, 1] (0: only
                its brightness part; the generator's colour cast dropped).

        Returns:
            :class:`TranslationResult`: the edited photo, every detected face with its ``translated``
            flag and crops, timings.

        Raises:
            ValueError: bad image, selection string, direction (also: a direction the loaded weights
                do not have), strength or colour.
            NoFaceError: no face detected.
            FaceSelectionError: a selected index is not among the detected faces.
        """
        self._generator(direction)  # fail before the detector runs
        strength, colour = self.check_strength(strength, colour)
        run = self.run(rgb, faces, detected=detected, max_faces=max_faces, direction=direction,
                       apply_postfilter=apply_postfilter, strength=strength, colour=colour)
        result_faces = []
        for i, face in enumerate(run.found):
            job = run.job(i)
            result_faces.append(TranslatedFace(
                index=i, box=np.asarray(face.box, np.float32), keypoints=np.asarray(face.keypoints, np.float32),
                score=float(face.score), translated=job is not None, crop=None if job is None else job.input,
                output=None if job is None else job.output))
        return TranslationResult(image=run.image, faces=result_faces, direction=direction, postfilter=apply_postfilter,
                                 timings_ms=run.timings_ms)

    @property
    def weights_source(self) -> str:
        """``"default"`` or the weights path."""
        return "default" if self.weights_path == self.task.default_weights_path else str(self.weights_path)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description: task, generator arch, version, weights, directions, size, template."""
        provenance = {k: self.meta[k] for k in ("data", "step", "epoch", "total_epochs", "finished", "mode",
                                                "git_commit", "split") if k in self.meta}
        return {"task": self.task.name, "name": self.arch, "version": self.version, "weights": self.weights_source,
                "directions": list(self.directions), "size": self.size, "face_template": FACE_TEMPLATE,
                "domains": {"A": self.task.domains[0], "B": self.task.domains[1]}, "provenance": provenance}

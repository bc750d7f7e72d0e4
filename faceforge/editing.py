"""Attribute editing in StyleGAN2's W space: InterFaceGAN directions for age, gender and smile.

Method: Shen, Gu, Tang, Zhou, "Interpreting the Latent Space of GANs for Semantic Face Editing"
(InterFaceGAN, CVPR 2020), section 2 and its reference implementation ``genforce/interfacegan``
(``utils/manipulator.py``: ``train_boundary``, ``project_boundary``, ``linear_interpolate``), applied in
W (their StyleGAN W-space results, section 3.3), with classifiers faceforge trains or ships instead
of theirs:

1. **Samples.** ``n`` seeded z ~ N(0, I) -> ``w = mapping(z)`` (``psi = 1``) -> images.
2. **Scores.** Each image is scored by an attribute classifier (:func:`attribute_scores`):
   ``age`` (years) and ``gender`` (logit of "female") from :class:`AttributeNet`, a small CNN that
   ``python -m training.attributes`` trains on UTKFace's file-name labels at the generator's
   resolution (``faceforge/weights/attributes_utkface32.pt``); ``smile`` from the shipped emotion model
   (:mod:`faceforge.emotion`): the logit of its ``happy`` probability, the face warped from the
   generator's ``utkface`` framing onto the classifier's ``fer2013`` template.
3. **Boundary.** The ``ratio`` highest- and lowest-scored samples are labelled 1 / 0 and a linear SVM
   (scikit-learn ``LinearSVC``) separates their ``w``; 30 % of them are held out to report the
   boundary's accuracy. The unit normal ``n`` of the hyperplane is the edit direction (InterFaceGAN
   eq. 2-3: for a linear boundary, moving along ``n`` changes the attribute's score linearly).
4. **Edit.** ``w' = w + s * sigma * n`` (InterFaceGAN's ``linear_interpolate``) on every layer of W or
   W+, where ``sigma`` is the standard deviation of ``<w, n>`` over the samples, so a strength ``s``
   is measured in standard deviations of the population along the direction (``s = 2``: as far as a
   face two sigmas older than average is from the average).
5. **Conditional edit** (InterFaceGAN section 2.3, eq. 6): project the other attributes' normals out
   of ``n`` (``n - (n . m) m``, Gram-Schmidt for several) so that, say, an age edit leaves the gender
   score where it was.

Directions are specific to one generator (its W space); the shipped file
(``faceforge/weights/stylegan2_utkface32_directions.json``) belongs to ``stylegan2.utkface32`` and
records the generator's SHA-256, the command, the sample count and the accuracies. Other generators
(e.g. official FFHQ weights) get their own with ``faceforge stylegan directions --weights FILE``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import cv2
import numpy as np
import torch

from faceforge.errors import CheckpointError, MissingDependencyError, WeightsNotFoundError
from faceforge.models import cards
from faceforge.models.attributes import ATTRIBUTE_ARCH, AttributeNet

if TYPE_CHECKING:
    from faceforge.emotion import EmotionRecognizer
    from faceforge.models.stylegan2 import StyleGAN2Generator

__all__ = ["ATTRIBUTES", "ATTRIBUTE_ARCH", "AttributeNet", "default_classifier_path", "default_directions_path",
           "load_attribute_net", "AttributeClassifier", "smile_logits", "attribute_scores", "Direction",
           "Directions", "sample_latents", "train_boundary", "orthogonalize", "edit_ws", "edit",
           "find_directions", "directions_for_generator", "SCORE_UNITS", "file_sha256"]

ATTRIBUTES = ("age", "gender", "smile")
"""Attributes with directions: ``age`` (years, positive = older), ``gender`` (logit of female, positive =
more feminine), ``smile`` (logit of the emotion model's ``happy``, positive = more smiling)."""

ATTRIBUTE_CARD = "attribute_net.utkface32"
"""The model card of the shipped age/gender classifier (:mod:`faceforge.models.cards`)."""


def default_classifier_path() -> Path:
    """The age/gender classifier ``default`` means: card ``attribute_net.utkface32`` (installed copy, else the
    shipped ``faceforge/weights/attributes_utkface32.pt``); the path may not exist."""
    card = cards.get_card(ATTRIBUTE_CARD)
    return card.expected_path


def default_directions_path() -> Path:
    """The shipped directions of ``stylegan2.utkface32``, ``faceforge/weights/stylegan2_utkface32_directions.json``."""
    return cards.PACKAGE_WEIGHTS_DIR / "stylegan2_utkface32_directions.json"


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(2**20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_attribute_net(path: str | Path | None = None) -> tuple[AttributeNet, dict[str, Any]]:
    """Load an :class:`AttributeNet` checkpoint, eval mode.

    Args:
        path: a file; ``None``/``"default"``: card ``attribute_net.utkface32`` through
            :func:`faceforge.models.cards.resolve` (``FACEFORGE_ATTRIBUTE_WEIGHTS`` overrides it).

    Returns:
        ``(net, meta)``; ``meta`` is the checkpoint's provenance (accuracy, data, command).

    Raises:
        WeightsNotFoundError: the file is absent.
        CheckpointError: not an ``attribute_net`` checkpoint.
    """
    from faceforge.checkpoints import load_checkpoint

    how = f"train them with `{cards.get_card(ATTRIBUTE_CARD).train_command}`"
    path = cards.resolve(path, ATTRIBUTE_CARD, hint=how)
    if not path.is_file():
        raise WeightsNotFoundError(f"attribute classifier weights must be a file, not a folder: {path.name} ({how})",
                                   model=ATTRIBUTE_ARCH)
    ckpt = load_checkpoint(path, arch=ATTRIBUTE_ARCH)
    net = AttributeNet(**ckpt["config"])
    net.load_state_dict(ckpt["state_dict"])
    return net.eval(), dict(ckpt.get("meta") or {})


def _resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[1] == size:
        return images
    interp = cv2.INTER_AREA if images.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(np.ascontiguousarray(im), (size, size), interpolation=interp) for im in images])


def _check_images(images: np.ndarray) -> np.ndarray:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3 \
            or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be uint8 (N, S, S, 3) RGB squares, got "
                         f"{getattr(images, 'dtype', type(images))} {getattr(images, 'shape', '')}")
    return images


class AttributeClassifier:
    """Age (years) and gender (female logit) of aligned faces with an :class:`AttributeNet`.

    Args:
        weights: checkpoint path; ``None``: the shipped ``attributes_utkface32.pt``.
        batch_size: faces per forward pass.

    Raises:
        WeightsNotFoundError, CheckpointError: see :func:`load_attribute_net`.
    """

    def __init__(self, weights: str | Path | None = None, batch_size: int = 256) -> None:
        self.net, self.meta = load_attribute_net(weights)
        self.batch_size = int(batch_size)

    @property
    def size(self) -> int:
        """Input side in pixels the weights were trained at."""
        return self.net.size

    @torch.inference_mode()
    def predict(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Scores of uint8 ``(N, S, S, 3)`` RGB faces on the ``utkface`` template (any ``S``; resized to
        :attr:`size` with area averaging or bilinear interpolation).

        Returns:
            ``{"age": float64 (N,) years, "gender": float64 (N,) logit of female}``.

        Raises:
            ValueError: not a uint8 batch of RGB squares.
        """
        images = _resize_batch(_check_images(images), self.size)
        ages, genders = [], []
        for i in range(0, len(images), self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[i:i + self.batch_size])).permute(0, 3, 1, 2).float()
            out = self.net(x / 127.5 - 1.0)
            ages.append(AttributeNet.age(out).double().numpy())
            genders.append(out[:, 1].double().numpy())
        if not ages:
            return {"age": np.zeros(0), "gender": np.zeros(0)}
        return {"age": np.concatenate(ages), "gender": np.concatenate(genders)}


def _utkface_to_fer_matrix(side: int, out: int = 48) -> np.ndarray:
    """OpenCV affine matrix from a ``utkface`` crop of side ``side`` to a ``fer2013`` crop of side ``out``
    (least-squares similarity between the two templates' eyes, nose and mouth)."""
    from faceforge.faces.align import get_template, to_opencv, umeyama

    return to_opencv(umeyama(get_template("utkface").points(side), get_template("fer2013").points(out)))


def smile_logits(recognizer: "EmotionRecognizer", images: np.ndarray) -> np.ndarray:
    """Logit of the emotion model's ``happy`` probability for faces on the ``utkface`` template.

    Each face is warped (bilinear, replicated border) onto the ``fer2013`` template at the model's crop
    size, then classified (:meth:`faceforge.emotion.EmotionRecognizer.classify_crops`).

    Args:
        recognizer: the emotion recognizer (its detector is not used).
        images: uint8 ``(N, S, S, 3)`` RGB.

    Returns:
        float64 ``(N,)``: ``log(p / (1 - p))`` of ``happy``, ``p`` clipped to [1e-6, 1 - 1e-6].

    Raises:
        ValueError: bad images.
    """
    images = _check_images(images)
    size = recognizer.crop_size
    m = _utkface_to_fer_matrix(images.shape[1], size)
    crops = np.stack([cv2.warpAffine(np.ascontiguousarray(im), m, (size, size), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE) for im in images]) if len(images) else \
        np.zeros((0, size, size, 3), np.uint8)
    p = recognizer.classify_crops(crops)[:, list(recognizer.labels).index("happy")].astype(np.float64)
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def attribute_scores(images: np.ndarray, attributes: Sequence[str] = ATTRIBUTES,
                     classifier: AttributeClassifier | None = None,
                     recognizer: "EmotionRecognizer | None" = None) -> dict[str, np.ndarray]:
    """Scores of ``attributes`` for uint8 ``(N, S, S, 3)`` faces on the ``utkface`` template.

    Args:
        images: the faces.
        attributes: subset of :data:`ATTRIBUTES`.
        classifier: age/gender classifier (default: the shipped one, loaded here).
        recognizer: emotion recognizer for ``smile`` (default: the shipped one).

    Returns:
        ``{attribute: float64 (N,)}``: age in years, gender and smile as logits.

    Raises:
        ValueError: an unknown attribute or bad images.
        WeightsNotFoundError: a classifier's weights are absent.
    """
    unknown = [a for a in attributes if a not in ATTRIBUTES]
    if unknown:
        raise ValueError(f"unknown attribute(s) {unknown}; choose from {', '.join(ATTRIBUTES)}")
    out: dict[str, np.ndarray] = {}
    if "age" in attributes or "gender" in attributes:
        pred = (classifier or AttributeClassifier()).predict(images)
        out.update({a: pred[a] for a in ("age", "gender") if a in attributes})
    if "smile" in attributes:
        if recognizer is None:
            from faceforge.emotion import EmotionRecognizer

            recognizer = EmotionRecognizer()
        out["smile"] = smile_logits(recognizer, images)
    return {a: out[a] for a in attributes}


# --------------------------------------------------------------------------------------------------
# Directions
# --------------------------------------------------------------------------------------------------
@dataclass
class Direction:
    """One attribute's edit direction in W.

    Attributes:
        attribute: name (e.g. ``"age"``).
        normal: float32 ``(w_dim,)`` unit normal of the SVM boundary, pointing to higher scores.
        sigma: standard deviation of ``<w, normal>`` over the samples (one unit of edit strength).
        info: provenance and figures (boundary accuracy, score units, correlation).
    """

    attribute: str
    normal: np.ndarray
    sigma: float
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = np.asarray(self.normal, np.float64).reshape(-1)
        norm = float(np.linalg.norm(n))
        if not np.isfinite(norm) or norm == 0:
            raise ValueError(f"the {self.attribute!r} direction is zero or not finite")
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise ValueError(f"sigma must be a positive number, got {self.sigma}")
        self.normal = (n / norm).astype(np.float32)
        self.sigma = float(self.sigma)


@dataclass
class Directions:
    """The directions of one generator, with provenance; JSON on disk (:meth:`save` / :meth:`load`).

    Attributes:
        directions: ``{attribute: Direction}``.
        w_dim: latent width they belong to.
        meta: ``generator`` (file name), ``generator_sha256``, ``command``, ``samples``, ``classifiers``...
    """

    directions: dict[str, Direction]
    w_dim: int
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, attribute: str) -> Direction:
        if attribute not in self.directions:
            raise ValueError(f"no {attribute!r} direction; this file has {', '.join(self.directions) or 'none'}")
        return self.directions[attribute]

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(self.directions)

    def vector(self, attribute: str, condition: Sequence[str] = ()) -> np.ndarray:
        """Unit direction of ``attribute`` with the ``condition`` attributes' directions projected out
        (InterFaceGAN conditional manipulation, eq. 6), float32 ``(w_dim,)``.

        Raises:
            ValueError: an attribute without a direction, or ``condition`` naming ``attribute`` itself.
        """
        if attribute in condition:
            raise ValueError(f"cannot condition the {attribute!r} edit on {attribute!r} itself")
        return orthogonalize(self[attribute].normal, [self[c].normal for c in condition])

    def check(self, G: "StyleGAN2Generator", weights: str | Path | None = None) -> None:
        """Refuse directions of another generator.

        Raises:
            CheckpointError: ``w_dim`` differs, or ``weights`` (the generator's file) has another SHA-256
                than the one the directions were found with.
        """
        if G.w_dim != self.w_dim:
            raise CheckpointError(f"these directions are for w_dim {self.w_dim}, the generator has w_dim {G.w_dim}: "
                                  "find directions for it with `faceforge stylegan directions --weights FILE`")
        want = self.meta.get("generator_sha256")
        if weights is not None and want and Path(weights).is_file() and file_sha256(weights) != want:
            raise CheckpointError(f"these directions were found for {self.meta.get('generator', 'another generator')}"
                                  f", not {Path(weights).name}: find directions for it with "
                                  "`faceforge stylegan directions --weights FILE -o DIRECTIONS.json`")

    def to_dict(self) -> dict[str, Any]:
        return {"format": "faceforge-directions", "version": 1, "w_dim": self.w_dim, **self.meta,
                "directions": {a: {"sigma": round(d.sigma, 6), **d.info,
                                   "normal": [round(float(v), 7) for v in d.normal]}
                               for a, d in self.directions.items()}}

    def save(self, path: str | Path) -> Path:
        """Write the JSON file (parents created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Directions":
        """Read a directions file (default: the shipped one of ``stylegan2.utkface32``).

        Raises:
            WeightsNotFoundError: the file is absent.
            CheckpointError: not a faceforge directions file.
        """
        path = Path(path) if path is not None and str(path) != "default" else default_directions_path()
        if not path.is_file():
            raise WeightsNotFoundError(f"directions file not found: {path.name} (make one with "
                                       "`faceforge stylegan directions`)", model="stylegan2")
        try:
            data = json.loads(path.read_text())
            if data.get("format") != "faceforge-directions":
                raise ValueError("format is not faceforge-directions")
            w_dim = int(data["w_dim"])
            dirs = {}
            for name, d in data["directions"].items():
                d = dict(d)
                normal = np.asarray(d.pop("normal"), np.float32)
                if normal.shape != (w_dim,):
                    raise ValueError(f"{name}: normal of shape {normal.shape}, expected ({w_dim},)")
                dirs[name] = Direction(name, normal, float(d.pop("sigma")), d)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{path.name} is not a faceforge directions file: {exc}") from None
        meta = {k: v for k, v in data.items() if k not in ("format", "version", "w_dim", "directions")}
        return cls(dirs, w_dim, meta)


def orthogonalize(normal: np.ndarray, others: Sequence[np.ndarray]) -> np.ndarray:
    """``normal`` minus its projection onto the span of ``others``, renormalised (InterFaceGAN eq. 6;
    Gram-Schmidt on ``others`` first, so several conditions are projected out exactly).

    Args:
        normal: ``(d,)`` direction.
        others: ``(d,)`` directions to make it orthogonal to.

    Returns:
        float32 unit ``(d,)``.

    Raises:
        ValueError: ``normal`` lies (almost) inside the span of ``others``.
    """
    n = np.asarray(normal, np.float64).reshape(-1)
    basis: list[np.ndarray] = []
    for o in others:
        v = np.asarray(o, np.float64).reshape(-1)
        for b in basis:
            v = v - (v @ b) * b
        if np.linalg.norm(v) > 1e-8:
            basis.append(v / np.linalg.norm(v))
    for b in basis:
        n = n - (n @ b) * b
    norm = float(np.linalg.norm(n))
    if norm < 1e-3:
        raise ValueError("the direction lies inside the span of the conditions: nothing is left to edit")
    return (n / norm).astype(np.float32)


def sample_latents(G: "StyleGAN2Generator", n: int, seed: int = 0, batch_size: int = 256) -> np.ndarray:
    """``n`` seeded ``w = mapping(z)`` (``psi = 1``, ``z ~ N(0, I)`` from ``numpy.random.default_rng(seed)``):
    float32 ``(n, w_dim)``."""
    rng = np.random.default_rng(seed)
    z = torch.from_numpy(rng.standard_normal((n, G.z_dim)).astype(np.float32))
    device = G.mapping.w_avg.device
    with torch.no_grad():
        ws = [G.mapping(z[i:i + batch_size].to(device), update_w_avg=False)[:, 0].cpu()
              for i in range(0, n, batch_size)]
    return torch.cat(ws).numpy() if ws else np.zeros((0, G.w_dim), np.float32)


def train_boundary(ws: np.ndarray, scores: np.ndarray, ratio: float = 0.2, val_fraction: float = 0.3,
                   seed: int = 0, C: float = 1.0) -> tuple[np.ndarray, dict[str, Any]]:
    """InterFaceGAN's boundary (``train_boundary`` of genforce/interfacegan): a linear SVM between the
    ``ratio`` highest- and lowest-scored latents.

    Args:
        ws: float ``(N, d)`` latents.
        scores: float ``(N,)`` attribute scores (higher = more of the attribute).
        ratio: share of the samples taken at each end (InterFaceGAN: 0.02 of 500,000; with fewer samples
            a larger share keeps enough of them).
        val_fraction: share of the chosen samples held out to measure the boundary's accuracy.
        seed: seeds the train/validation split.
        C: the SVM's regularisation (scikit-learn ``LinearSVC``).

    Returns:
        ``(normal float32 unit (d,), info)``; ``info``: ``chosen_per_side``, ``train_accuracy``,
        ``val_accuracy``, ``score_low_mean``, ``score_high_mean``.

    Raises:
        ValueError: mismatched shapes, non-finite scores, or fewer than 10 samples per side.
        MissingDependencyError: scikit-learn is not installed (``pip install -e '.[train]'``).
    """
    try:
        from sklearn.svm import LinearSVC
    except ImportError:
        raise MissingDependencyError("finding directions needs scikit-learn: pip install -e '.[train]'") from None
    ws = np.asarray(ws, np.float64)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if ws.ndim != 2 or len(ws) != len(scores):
        raise ValueError(f"ws must be (N, d) with one score per row, got {ws.shape} and {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    k = int(len(ws) * ratio)
    if k < 10 or 2 * k > len(ws):
        raise ValueError(f"ratio {ratio} of {len(ws)} samples gives {k} per side; need >= 10 and at most half")
    order = np.argsort(scores, kind="stable")
    low, high = order[:k], order[-k:]
    rng = np.random.default_rng(seed)
    x = np.concatenate([ws[high], ws[low]])
    y = np.concatenate([np.ones(k), np.zeros(k)])
    perm = rng.permutation(2 * k)
    n_val = int(round(2 * k * val_fraction))
    val, tr = perm[:n_val], perm[n_val:]
    mean, std = x[tr].mean(0), x[tr].std(0) + 1e-8
    svm = LinearSVC(C=C, max_iter=20000).fit((x[tr] - mean) / std, y[tr])
    # the boundary in the standardized space is <coef, (w - mean) / std> + b = 0: in W its normal is coef / std
    normal = svm.coef_.reshape(-1) / std
    normal = normal / np.linalg.norm(normal)
    info = {"chosen_per_side": int(k),
            "train_accuracy": round(float(svm.score((x[tr] - mean) / std, y[tr])), 4),
            "val_accuracy": round(float(svm.score((x[val] - mean) / std, y[val])), 4) if n_val else None,
            "score_low_mean": round(float(scores[low].mean()), 4),
            "score_high_mean": round(float(scores[high].mean()), 4)}
    return normal.astype(np.float32), info


def find_directions(G: "StyleGAN2Generator", scorer: Callable[[np.ndarray], Mapping[str, np.ndarray]],
                    samples: int = 10000, seed: int = 0, ratio: float = 0.2, batch_size: int = 64,
                    progress: Callable[[int, int], None] | None = None,
                    units: Mapping[str, str] | None = None) -> Directions:
    """Directions of every attribute ``scorer`` returns, found on ``samples`` generated faces.

    Args:
        G: the generator (eval mode; not modified).
        scorer: uint8 ``(n, R, R, 3)`` images -> ``{attribute: float (n,)}`` (e.g.
            ``lambda im: attribute_scores(im)``; any differentiable-or-not function will do).
        samples: generated faces (seeded ``z``, ``psi = 1``, constant noise).
        seed: seed of the latents.
        ratio: see :func:`train_boundary`.
        batch_size: images rendered and scored at a time.
        progress: called as ``progress(done, samples)``.
        units: ``{attribute: description of its score}``, stored with each direction.

    Returns:
        :class:`Directions` (``meta``: ``samples``, ``seed``, ``ratio``).

    Raises:
        ValueError: see :func:`train_boundary`; a scorer returning nothing or the wrong lengths.
    """
    from faceforge.stylegan import synthesize

    ws = sample_latents(G, samples, seed)
    scores: dict[str, list[np.ndarray]] = {}
    for i in range(0, samples, batch_size):
        imgs = synthesize(G, torch.from_numpy(ws[i:i + batch_size]), batch_size=batch_size)
        for name, s in scorer(imgs).items():
            s = np.asarray(s, np.float64).reshape(-1)
            if len(s) != len(imgs):
                raise ValueError(f"the scorer returned {len(s)} {name!r} scores for {len(imgs)} images")
            scores.setdefault(name, []).append(s)
        if progress is not None:
            progress(min(i + batch_size, samples), samples)
    if not scores:
        raise ValueError("the scorer returned no attributes")
    out = {}
    centred = ws - ws.mean(0)
    for name, parts in scores.items():
        s = np.concatenate(parts)
        normal, info = train_boundary(ws, s, ratio=ratio, seed=seed)
        proj = centred @ normal.astype(np.float64)
        info.update(score_mean=round(float(s.mean()), 4), score_std=round(float(s.std()), 4),
                    projection_score_pearson_r=round(float(np.corrcoef(proj, s)[0, 1]), 4))
        if units and name in units:
            info["score"] = units[name]
        out[name] = Direction(name, normal, float(proj.std()), info)
    return Directions(out, G.w_dim, {"samples": samples, "seed": seed, "ratio": ratio,
                                     "latents": "w = mapping(z), psi 1, z ~ N(0, I) from numpy default_rng(seed)"})


# --------------------------------------------------------------------------------------------------
# Editing
# --------------------------------------------------------------------------------------------------
def edit_ws(ws: torch.Tensor, vector: np.ndarray | torch.Tensor, strengths: Sequence[float], sigma: float = 1.0,
            layers: slice | None = None) -> torch.Tensor:
    """``w + s * sigma * vector`` for every strength ``s`` (InterFaceGAN ``linear_interpolate``).

    Args:
        ws: float ``(N, num_ws, w_dim)`` styles (W broadcast to every layer, or W+).
        vector: ``(w_dim,)`` direction (unit, from :meth:`Directions.vector`).
        strengths: edit strengths in units of ``sigma``.
        sigma: the direction's :attr:`Direction.sigma`.
        layers: which ``ws`` entries move (default all; e.g. ``slice(0, 6)`` for the coarse and middle).

    Returns:
        float32 ``(N, len(strengths), num_ws, w_dim)``.

    Raises:
        ValueError: shapes that do not fit, or no strengths.
    """
    ws = torch.as_tensor(ws, dtype=torch.float32)
    v = torch.as_tensor(np.asarray(vector, np.float32)).reshape(-1).to(ws.device)
    if ws.ndim != 3 or ws.shape[2] != v.shape[0]:
        raise ValueError(f"ws must be (N, num_ws, {v.shape[0]}), got {tuple(ws.shape)}")
    if len(strengths) == 0:
        raise ValueError("give at least one strength")
    s = torch.tensor([float(x) for x in strengths], dtype=torch.float32, device=ws.device) * float(sigma)
    mask = torch.zeros(ws.shape[1], dtype=torch.float32, device=ws.device)
    mask[layers if layers is not None else slice(None)] = 1.0
    delta = s[:, None, None] * mask[None, :, None] * v[None, None, :]   # (K, num_ws, w_dim)
    return ws[:, None] + delta[None]


def edit(G: "StyleGAN2Generator", ws: torch.Tensor, directions: Directions, attribute: str,
         strengths: Sequence[float], condition: Sequence[str] = (), layers: slice | None = None,
         noise_mode: str = "const") -> np.ndarray:
    """Render faces edited along one attribute at several strengths.

    Args:
        G: the generator the directions belong to.
        ws: float ``(N, num_ws, w_dim)`` (e.g. :func:`faceforge.stylegan.seed_ws`, or a projection's ``ws``),
            or ``(N, w_dim)`` W.
        directions: the generator's :class:`Directions`.
        attribute: one of ``directions.attributes``.
        strengths: in standard deviations of the samples along the direction (0 = unchanged).
        condition: attributes to keep fixed (their directions projected out).
        layers: ``ws`` entries to move (default all).
        noise_mode: as :func:`faceforge.stylegan.synthesize`.

    Returns:
        uint8 ``(N, len(strengths), R, R, 3)``.

    Raises:
        ValueError: unknown attribute, bad shapes.
        CheckpointError: directions of another ``w_dim``.
    """
    from faceforge.stylegan import synthesize

    directions.check(G)
    ws = torch.as_tensor(ws, dtype=torch.float32)
    if ws.ndim == 2:
        ws = ws[:, None].repeat(1, G.num_ws, 1)
    d = directions[attribute]
    edited = edit_ws(ws, directions.vector(attribute, condition), strengths, d.sigma, layers)
    n, k = edited.shape[:2]
    images = synthesize(G, edited.reshape(n * k, G.num_ws, G.w_dim), noise_mode=noise_mode)
    return images.reshape(n, k, *images.shape[1:])


SCORE_UNITS = {"age": "years (AttributeNet, utkface framing)",
               "gender": "logit of female (AttributeNet)",
               "smile": "logit of the emotion model's happy probability (mini_xception, fer2013 template)"}
"""What each attribute's score measures (stored with the directions)."""


def directions_for_generator(G: "StyleGAN2Generator", weights: str | Path | None, attributes: Sequence[str] = ATTRIBUTES,
                             samples: int = 10000, seed: int = 0, ratio: float = 0.2,
                             classifier: AttributeClassifier | None = None,
                             recognizer: "EmotionRecognizer | None" = None, command: str = "",
                             progress: Callable[[int, int], None] | None = None) -> Directions:
    """:func:`find_directions` with faceforge's classifiers (:func:`attribute_scores`), provenance filled in.

    Args:
        G: the generator.
        weights: its file (name and SHA-256 are recorded, so the directions refuse other generators).
        attributes: subset of :data:`ATTRIBUTES`.
        samples, seed, ratio, progress: see :func:`find_directions`.
        classifier, recognizer: the scorers (default: the shipped ones).
        command: the command line that made them (recorded).

    Returns:
        :class:`Directions` with ``meta``: ``generator``, ``generator_sha256``, ``resolution``, ``command``,
        ``classifiers`` (their held-out figures).

    Raises:
        ValueError, MissingDependencyError, WeightsNotFoundError: see :func:`find_directions`,
            :func:`attribute_scores`.
    """
    attributes = tuple(attributes)
    if not attributes or any(a not in ATTRIBUTES for a in attributes):
        raise ValueError(f"attributes must be a non-empty subset of {ATTRIBUTES}, got {list(attributes)}")
    classifiers: dict[str, Any] = {}
    if {"age", "gender"} & set(attributes):
        classifier = classifier or AttributeClassifier()
        classifiers["age_gender"] = {"model": "AttributeNet (faceforge/editing.py)",
                                     "weights": "attributes_utkface32.pt", "input_size": classifier.size,
                                     "heldout": classifier.meta.get("metrics"),
                                     "command": classifier.meta.get("command")}
    if "smile" in attributes:
        if recognizer is None:
            from faceforge.emotion import EmotionRecognizer

            recognizer = EmotionRecognizer()
        info = recognizer.describe()
        classifiers["smile"] = {"model": "mini_xception (faceforge/emotion.py), happy probability",
                                "version": info.get("version"), "weights": "mini_xception_fer2013.pt"}
    dirs = find_directions(G, lambda im: attribute_scores(im, attributes, classifier, recognizer), samples=samples,
                           seed=seed, ratio=ratio, progress=progress, units=SCORE_UNITS)
    dirs.meta.update({"generator": Path(weights).name if weights else None,
                      "generator_sha256": file_sha256(weights) if weights and Path(weights).is_file() else None,
                      "resolution": G.resolution, "command": command, "classifiers": classifiers,
                      "method": "InterFaceGAN (Shen et al., CVPR 2020): linear SVM between the top and bottom "
                                "`ratio` of samples by score, unit normal = direction; strength unit = std of "
                                "<w, n> over the samples"})
    return dirs

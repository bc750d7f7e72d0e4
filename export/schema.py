"""JSON Schema (draft 2020-12) of ``mobile_assets/manifest.json``.

This dict is the single source: ``faceforge export`` validates every manifest against it before
writing and writes it beside the manifest as ``manifest.schema.json`` for app developers and CI.
Bump :data:`SCHEMA_VERSION` on any incompatible change.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

_NUMBER_LIST = {"type": "array", "items": {"type": "number"}}
_INT_LIST = {"type": "array", "items": {"type": "integer"}}
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_RELPATH = {"type": "string", "pattern": r"^(?!/)(?!.*\.\.)[A-Za-z0-9_./-]+$"}

SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:faceforge:mobile-assets-manifest:1",
    "title": "faceforge mobile assets manifest",
    "description": "Every file an app needs to run faceforge's light models on the phone, with the numbers "
                   "needed to feed them (size, layout, colour, normalization, quantization, face template), "
                   "what they return, and how faithful each file is to the PyTorch model.",
    "type": "object",
    "required": ["schema_version", "generator", "models", "detectors", "licenses"],
    "additionalProperties": False,
    "properties": {
        "$schema": {"type": "string"},
        "schema_version": {"const": SCHEMA_VERSION},
        "generator": {
            "type": "object",
            "required": ["name", "faceforge_version", "generated_at", "toolchain"],
            "properties": {
                "name": {"type": "string"},
                "faceforge_version": {"type": "string"},
                "git_commit": {"type": ["string", "null"]},
                "generated_at": {"type": "string", "format": "date-time"},
                "command": {"type": "string"},
                "toolchain": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
                "refreshes": {
                    "description": "later partial rewrites (`faceforge export MODEL --app-steps-only`: app_steps "
                                   "rewritten; `--remove FORMATS`: files and entries removed); the fields above "
                                   "describe the last full export",
                    "type": "array",
                    "items": {"type": "object", "required": ["what", "model", "command", "at"],
                              "properties": {"what": {"enum": ["app_steps", "removed"]}, "model": {"type": "string"},
                                             "files": {"type": "array", "items": {"type": "string"}},
                                             "command": {"type": "string"},
                                             "git_commit": {"type": ["string", "null"]},
                                             "at": {"type": "string", "format": "date-time"}}},
                },
            },
        },
        "models": {"type": "array", "items": {"$ref": "#/$defs/model_file"}},
        "detectors": {"type": "array", "items": {"$ref": "#/$defs/detector_file"}},
        "detector_policy": {"type": "object"},
        "licenses": {"type": "array", "items": {"$ref": "#/$defs/license"}},
    },
    "$defs": {
        "normalization": {
            "description": "float input x = pixel * scale + offset, pixel in [0, 255]",
            "type": "object",
            "required": ["scale", "offset"],
            "properties": {"scale": {"type": "number", "exclusiveMinimum": 0}, "offset": {"type": "number"},
                           "value_range": {**_NUMBER_LIST, "minItems": 2, "maxItems": 2},
                           "formula": {"type": "string"},
                           "applied": {"type": "string", "description": "where the normalization happens when "
                                                                         "not in the app (Core ML image inputs)"}},
        },
        "quantization": {
            "description": "integer tensor: real = scale * (q - zero_point)",
            "type": "object",
            "required": ["scale", "zero_point"],
            "properties": {"scale": {"type": "number", "exclusiveMinimum": 0}, "zero_point": {"type": "integer"},
                           "formula": {"type": "string"}},
        },
        "tensor_in": {
            "type": "object",
            "required": ["name", "shape", "layout", "dtype", "colour", "normalization"],
            "properties": {
                "name": {"type": "string"},
                "shape": {**_INT_LIST, "minItems": 1},
                "layout": {"enum": ["NHWC", "NCHW"]},
                "dtype": {"enum": ["float32", "float16", "int8", "uint8"]},
                "colour": {"enum": ["gray", "rgb", "bgr"]},
                "colour_conversion": {"type": "string"},
                "normalization": {"$ref": "#/$defs/normalization"},
                "quantization": {"$ref": "#/$defs/quantization"},
                "kind": {"enum": ["tensor", "image"],
                         "description": "image: a Core ML image feature (uint8 pixels; normalization.applied "
                                        "says the model normalizes them itself); absent: a tensor"},
            },
            "if": {"properties": {"dtype": {"enum": ["int8", "uint8"]}, "kind": {"not": {"const": "image"}}}},
            "then": {"required": ["quantization"]},
        },
        "tensor_out": {
            "type": "object",
            "required": ["name", "shape", "layout", "dtype", "values"],
            "properties": {
                "name": {"type": "string"},
                "shape": {**_INT_LIST, "minItems": 1},
                "layout": {"enum": ["NC", "NHWC", "NCHW"]},
                "dtype": {"enum": ["float32", "float16", "float64", "int8", "uint8"]},
                "values": {"enum": ["logits", "probabilities", "image"]},
                "kind": {"enum": ["tensor", "classifier"],
                         "description": "classifier: a Core ML classifier (predicted_feature holds the label; "
                                        "this feature maps each label to its probability); absent: a tensor"},
                "predicted_feature": {"type": "string"},
                "meaning": {"type": "string"},
                "labels": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "value_range": {**_NUMBER_LIST, "minItems": 2, "maxItems": 2},
                "quantization": {"$ref": "#/$defs/quantization"},
            },
            "if": {"properties": {"dtype": {"enum": ["int8", "uint8"]}}},
            "then": {"required": ["quantization"]},
        },
        "face_alignment": {
            "type": "object",
            "required": ["template", "size", "keypoints"],
            "properties": {
                "template": {"type": "string"},
                "size": {"type": "integer", "minimum": 1},
                "keypoints": {"type": "array", "minItems": 2,
                              "items": {**_NUMBER_LIST, "minItems": 2, "maxItems": 2}},
                "keypoints_px": {"type": "array", "items": {**_NUMBER_LIST, "minItems": 2, "maxItems": 2}},
            },
        },
        "parity": {
            "type": "object",
            "required": ["validation", "compared", "images", "passed", "bounds"],
            "properties": {
                "validation": {"type": "string"},
                "compared": {"type": "string"},
                "images": {"type": "integer", "minimum": 1},
                "dataset": {"type": "string"},
                "input": {"type": "string"},
                "top1_agreement": {"type": "number", "minimum": 0, "maximum": 1},
                "accuracy": {"type": "number", "minimum": 0, "maximum": 1},
                "accuracy_pytorch": {"type": "number", "minimum": 0, "maximum": 1},
                "accuracy_drop_points": {"type": "number"},
                "prob_max_abs_error": {"type": "number", "minimum": 0},
                "prob_mean_abs_error": {"type": "number", "minimum": 0},
                "near_tie_fraction": {"type": "number", "minimum": 0, "maximum": 1},
                "top1_agreement_clear": {"type": "number", "minimum": 0, "maximum": 1},
                "psnr_db": {"type": "number"},
                "psnr_min_db": {"type": "number"},
                "bounds": {"type": "object"},
                "passed": {"const": True},
                "failures": {"type": "array", "maxItems": 0},
            },
        },
        "model_file": {
            "type": "object",
            "required": ["name", "task", "version", "format", "precision", "platform", "file", "bytes", "sha256",
                         "input", "output", "face_alignment", "parity", "provenance", "validation", "license"],
            "properties": {
                "name": {"type": "string"},
                "task": {"type": "string"},
                "version": {"type": "string", "minLength": 1},
                "description": {"type": "string"},
                "source": {"type": "string"},
                "format": {"type": "string"},
                "format_description": {"type": "string"},
                "precision": {"enum": ["fp32", "fp16", "int8", "int8w"]},
                "platform": {"enum": ["android", "ios", "any"]},
                "runtime": {"type": "string"},
                "file": _RELPATH,
                "bytes": {"type": "integer", "minimum": 1},
                "sha256": _SHA256,
                "input": {"$ref": "#/$defs/tensor_in"},
                "output": {"$ref": "#/$defs/tensor_out"},
                "face_alignment": {"$ref": "#/$defs/face_alignment"},
                "parity": {"$ref": "#/$defs/parity"},
                "provenance": {"type": "object", "required": ["weights"]},
                "validation": {"anyOf": [{"const": "run"}, {"type": "string", "pattern": "^inspected"}]},
                "embedded_metadata": {"type": "object"},
                "inspection": {"type": "object"},
                "notes": {"type": "array", "items": {"type": "string"}},
                "license": {"type": "string"},
            },
        },
        "detector_file": {
            "type": "object",
            "required": ["name", "model", "file", "bytes", "sha256", "input", "outputs", "anchors", "decoding",
                         "license"],
            "properties": {
                "name": {"type": "string"},
                "model": {"enum": ["short", "full"]},
                "file": _RELPATH,
                "bytes": {"type": "integer", "minimum": 1},
                "sha256": _SHA256,
                "input": {"type": "object", "required": ["shape", "layout", "dtype"]},
                "outputs": {"type": "object"},
                "anchors": {"type": "object"},
                "decoding": {"type": "object"},
                "license": {"type": "string"},
                "license_file": _RELPATH,
            },
        },
        "license": {
            "type": "object",
            "required": ["applies_to", "license", "file"],
            "properties": {
                "applies_to": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "license": {"type": "string"},
                "copyright": {"type": "string"},
                "file": _RELPATH,
            },
        },
    },
}

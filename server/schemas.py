"""Names and JSON Schemas of the HTTP API, shared by the handlers, the OpenAPI document and the tests.

The handlers read their field names and step names from here, and the tests validate real responses
against these schemas (JSON Schema 2020-12, the dialect of OpenAPI 3.1), so the document served at
``/v1/openapi.json`` cannot drift from what the server does.
"""

from __future__ import annotations

from typing import Any

from faceforge.models.mini_xception import FER2013_LABELS

API_VERSION = "v1"
EMOTION_PATH = "/v1/emotion"
MODELS_PATH = "/v1/models"
OPENAPI_PATH = "/v1/openapi.json"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"

IMAGE_FIELD = "image"
"""Multipart form field holding the image file."""
MAX_FACES_FIELD = "max_faces"
"""Optional multipart form field: analyse at most this many faces (highest detector score first)."""

TIMING_STEPS = ("decode", "detect", "align", "classify", "total")
"""Keys of ``timings_ms`` in the emotion response, milliseconds of wall-clock time each."""

KEYPOINT_NAMES_FALLBACK = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion",
                           "left_ear_tragion")


def keypoint_names() -> tuple[str, ...]:
    """BlazeFace keypoint names from :mod:`faceforge.faces.detect` (the detector's own constant)."""
    try:
        from faceforge.faces.detect import KEYPOINT_NAMES
    except ImportError:  # the detector module is not installed: names from the contract
        return KEYPOINT_NAMES_FALLBACK
    return tuple(KEYPOINT_NAMES)


def _point() -> dict[str, Any]:
    return {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2,
            "description": "(x, y) in pixels of the uploaded image (after EXIF orientation)"}


def _strict_object(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False, **extra}


def problem_schema() -> dict[str, Any]:
    """RFC 9457 problem details object; extension members are allowed."""
    return {
        "type": "object",
        "description": "RFC 9457 problem details, media type application/problem+json. `type` is a "
                       "stable URN (urn:faceforge:problem:<slug>) clients may switch on.",
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "instance": {"type": "string", "description": "request path"},
        },
        "required": ["type", "title", "status", "detail"],
        "additionalProperties": True,
    }


def emotion_face_schema() -> dict[str, Any]:
    labels = list(FER2013_LABELS)
    return _strict_object({
        "box": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
                "description": "xmin, ymin, xmax, ymax in pixels"},
        "keypoints": _strict_object({name: _point() for name in keypoint_names()},
                                    description="BlazeFace keypoints, subject's right/left"),
        "score": {"type": "number", "minimum": 0, "maximum": 1, "description": "detector confidence"},
        "probabilities": _strict_object(
            {label: {"type": "number", "minimum": 0, "maximum": 1} for label in labels},
            description="softmax probabilities in FER2013 label order, summing to 1"),
        "label": {"type": "string", "enum": labels, "description": "most probable label"},
    })


def model_info_schema() -> dict[str, Any]:
    return _strict_object({
        "name": {"type": "string"},
        "version": {"type": "string", "description": "checkpoint meta version, else sha256:<12 hex> of "
                                                     "the weights file"},
        "weights": {"type": "string", "description": "'default', 'random-init' or a checkpoint file name"},
        "labels": {"type": "array", "items": {"type": "string"}},
        "face_template": {"type": "string"},
    })


def emotion_response_schema() -> dict[str, Any]:
    """Body of a successful ``POST /v1/emotion``."""
    return _strict_object({
        "model": model_info_schema(),
        "image": _strict_object({"width": {"type": "integer", "minimum": 1},
                                 "height": {"type": "integer", "minimum": 1}}),
        "faces": {"type": "array", "items": emotion_face_schema(), "minItems": 1,
                  "description": "highest detector score first"},
        "timings_ms": _strict_object({step: {"type": "number", "minimum": 0} for step in TIMING_STEPS}),
    })


def models_response_schema() -> dict[str, Any]:
    """Body of ``GET /v1/models``."""
    entry = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "task": {"type": "string"},
            "description": {"type": "string"},
            "source": {"type": "string"},
            "license": {"type": "string"},
            "labels": {"type": ["array", "null"], "items": {"type": "string"}},
            "input": {"type": "object", "description": "shape (C,H,W), layout, dtype, colour, value_range, "
                                                      "scale, offset, face_template"},
            "loaded": {"type": "boolean"},
            "served": {"type": "boolean", "description": "an endpoint of this server uses the model"},
            "weights": {
                "type": "object",
                "properties": {
                    "configured": {"type": "string"},
                    "available": {"type": "boolean"},
                    "version": {"type": ["string", "null"]},
                    "provenance": {"type": ["object", "null"]},
                },
                "required": ["configured", "available", "version", "provenance"],
            },
        },
        "required": ["name", "task", "input", "loaded", "served", "weights"],
    }
    detector = {"type": "object", "properties": {"name": {"type": "string"}, "variant": {"type": "string"},
                                                  "loaded": {"type": "boolean"}},
                "required": ["name", "variant", "loaded"]}
    return _strict_object({"models": {"type": "array", "items": entry}, "detector": detector})


def health_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {"status": {"type": "string", "enum": ["ok", "ready"]},
                                             "models": {"type": "object"}},
            "required": ["status"]}

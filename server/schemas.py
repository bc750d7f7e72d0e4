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
TRANSLATE_PATH = "/v1/translate"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"

IMAGE_FIELD = "image"
"""Multipart form field holding the image file."""
MAX_FACES_FIELD = "max_faces"
"""Optional multipart form field: analyse at most this many faces (highest detector score first)."""

TASK_FIELD = "task"
"""``/v1/translate``: translation task (default ``age``)."""
FACES_FIELD = "faces"
"""``/v1/translate``: ``all``, ``largest`` or comma-separated 0-based face indices."""
DIRECTION_FIELD = "direction"
"""``/v1/translate``: ``A->B`` (default) or ``B->A``."""
POSTFILTER_FIELD = "postfilter"
"""``/v1/translate``: ``true`` applies the Gaussian + unsharp post-filter to the translated faces."""
FORMAT_FIELD = "format"
"""``/v1/translate``: encoding of the returned photo, one of :data:`TRANSLATE_FORMATS`."""
RESPONSE_FIELD = "response"
"""``/v1/translate``: ``image`` (the body is the photo) or ``json`` (photo base64 + faces)."""
TRANSLATE_FORMATS = ("png", "jpeg")
TRANSLATE_RESPONSES = ("image", "json")
TRANSLATE_TIMING_STEPS = ("decode", "detect", "align", "translate", "paste", "encode", "total")
"""Keys of ``timings_ms`` (and ``Server-Timing`` entries) of ``/v1/translate``, milliseconds."""
TRANSLATE_HEADERS = {
    "X-Faceforge-Faces-Detected": "number of faces detected",
    "X-Faceforge-Faces-Translated": "comma-separated indices of the translated faces (detector order)",
    "X-Faceforge-Model": "generator architecture, e.g. cyclegan_resnet9",
    "X-Faceforge-Model-Version": "generator weights version",
    "Server-Timing": "W3C Server Timing, e.g. 'decode;dur=3.1, detect;dur=40.2, ...' (milliseconds)",
}
"""Headers of a ``response=image`` answer of ``/v1/translate``."""

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


def translate_face_schema() -> dict[str, Any]:
    return _strict_object({
        "index": {"type": "integer", "minimum": 0, "description": "detector order, highest score first; "
                                                                  "what the faces field selects by"},
        "box": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
                "description": "xmin, ymin, xmax, ymax in pixels"},
        "keypoints": _strict_object({name: _point() for name in keypoint_names()},
                                    description="BlazeFace keypoints, subject's right/left"),
        "score": {"type": "number", "minimum": 0, "maximum": 1, "description": "detector confidence"},
        "translated": {"type": "boolean", "description": "whether this face was changed"},
    })


def translate_response_schema() -> dict[str, Any]:
    """Body of a successful ``POST /v1/translate`` with ``response=json``."""
    return _strict_object({
        "task": {"type": "string"},
        "direction": {"type": "string", "enum": ["A->B", "B->A"]},
        "postfilter": {"type": "boolean"},
        "model": _strict_object({
            "name": {"type": "string", "description": "generator architecture (registry name)"},
            "version": {"type": "string"},
            "weights": {"type": "string", "description": "'default' or a weights file/folder name"},
            "size": {"type": "integer", "description": "aligned crop side in pixels"},
            "face_template": {"type": "string"},
            "directions": {"type": "array", "items": {"type": "string"}},
        }),
        "image": _strict_object({
            "width": {"type": "integer", "minimum": 1},
            "height": {"type": "integer", "minimum": 1},
            "media_type": {"type": "string", "enum": ["image/png", "image/jpeg"]},
            "data": {"type": "string", "contentEncoding": "base64", "description": "the edited photo"},
        }),
        "faces": {"type": "array", "items": translate_face_schema(), "minItems": 1,
                  "description": "every detected face, highest detector score first"},
        "timings_ms": _strict_object({step: {"type": "number", "minimum": 0} for step in TRANSLATE_TIMING_STEPS}),
    })

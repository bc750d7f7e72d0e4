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
FRONTALIZE_PATH = "/v1/frontalize"
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
TRANSLATE_TIMING_STEPS = ("decode", "detect", "align", "translate", "paste", "restore", "encode", "total")
"""Keys of ``timings_ms`` (and ``Server-Timing`` entries) of ``/v1/translate``, milliseconds."""
TRANSLATE_HEADERS = {
    "X-Faceforge-Faces-Detected": "number of faces detected",
    "X-Faceforge-Faces-Translated": "comma-separated indices of the translated faces (detector order)",
    "X-Faceforge-Model": "generator architecture, e.g. cyclegan_resnet9",
    "X-Faceforge-Model-Version": "generator weights version",
    "X-Faceforge-Restored": "the restorer run as the last step (restore field): none, gpen or classical",
    "Server-Timing": "W3C Server Timing, e.g. 'decode;dur=3.1, detect;dur=40.2, ...' (milliseconds)",
}
"""Headers of a ``response=image`` answer of ``/v1/translate``."""

FRONTALIZE_RESPONSES = ("json", "image")
"""``/v1/frontalize``: ``json`` (default; every face, frontal crops base64 PNG) or ``image`` (one face's PNG)."""
FRONTALIZE_TIMING_STEPS = ("decode", "detect", "landmarks", "render", "generate", "detail", "restore", "encode",
                           "total")
"""Keys of ``timings_ms`` (and ``Server-Timing`` entries) of ``/v1/frontalize``, milliseconds."""
FRONTALIZE_HEADERS = {
    "X-Faceforge-Faces-Detected": "number of faces detected",
    "X-Faceforge-Face-Index": "index (detector order) of the returned face",
    "X-Faceforge-Yaw": "head yaw in degrees (Face Mesh's estimate, calibrated), positive when the nose points to "
                       "the image's right",
    "X-Faceforge-Yaw-In-Range": "true or false: |yaw| within the trained range",
    "X-Faceforge-Model": "generator architecture, e.g. pix2pix_mobile",
    "X-Faceforge-Model-Version": "generator weights version",
    "X-Faceforge-Restored": "the restorer run as the last step (restore field): none, gpen or classical",
    "X-Faceforge-Face-Px": "the face's own side in the photo, px (its pose-tolerant crop at the photo's scale)",
    "X-Faceforge-Upscaled": "true or false: the frontal crop has more pixels than the camera saw (output side > "
                            "the face's own side)",
    "Server-Timing": "W3C Server Timing (milliseconds)",
}
"""Headers of a ``response=image`` answer of ``/v1/frontalize``."""

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
        "strength": {"type": "number", "minimum": 0, "description": "factor on the generator's change (the request's)"},
        "colour": {"type": "number", "minimum": 0, "maximum": 1,
                   "description": "factor on the change's colour part (the request's)"},
        "restored": {"type": "string", "enum": ["none", "gpen", "classical"],
                     "description": "the restorer run as the last step (restore field; auto resolved), or none"},
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


def frontalize_face_schema() -> dict[str, Any]:
    number_or_null = {"type": ["number", "null"]}
    return _strict_object({
        "index": {"type": "integer", "minimum": 0, "description": "detector order, highest score first; "
                                                                  "what the faces field selects by"},
        "box": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
                "description": "detector box xmin, ymin, xmax, ymax in pixels"},
        "score": {"type": "number", "minimum": 0, "maximum": 1, "description": "detector confidence"},
        "selected": {"type": "boolean", "description": "whether the face was asked for"},
        "frontalized": {"type": "boolean", "description": "whether `image` holds a frontal crop"},
        "yaw": {**number_or_null, "description": "head yaw, degrees (Face Mesh's estimate, calibrated); positive when "
                                                 "the nose points to the image's right (the subject turned to their own left)"},
        "roll": {**number_or_null, "description": "in-plane rotation, degrees"},
        "in_range": {"type": "boolean", "description": "|yaw| within the generator's trained range"},
        "warning": {"type": ["string", "null"], "description": "why the result may be poor or missing"},
        "face_px": {**number_or_null, "description": "the face's own side in the photo, px (its pose-tolerant crop "
                                                     "at the photo's scale); null when Face Mesh did not read it"},
        "output_px": {"type": ["integer", "null"], "minimum": 1,
                      "description": "side of the frontal crop, px (output_size field); null when not frontalized"},
        "upscaled": {"type": ["boolean", "null"],
                     "description": "whether the frontal crop has more pixels than the camera saw (output_px > "
                                    "face_px); null when not frontalized"},
        "image": {"oneOf": [{"type": "null"}, _strict_object({
            "width": {"type": "integer", "minimum": 1},
            "height": {"type": "integer", "minimum": 1},
            "media_type": {"type": "string", "enum": ["image/png"]},
            "data": {"type": "string", "contentEncoding": "base64", "description": "the frontal crop, PNG"},
        })]},
    })


def frontalize_response_schema() -> dict[str, Any]:
    """Body of a successful ``POST /v1/frontalize`` with ``response=json``."""
    return _strict_object({
        "restored": {"type": "string", "enum": ["none", "gpen", "classical"],
                     "description": "the restorer run as the last step (restore field; auto resolved), or none"},
        "output_size": {"oneOf": [{"type": "string", "enum": ["face", "generator"]},
                                  {"type": "integer", "minimum": 32, "maximum": 1024}],
                        "description": "the output_size field as applied: face, generator or a side in px"},
        "model": _strict_object({
            "name": {"type": "string", "description": "generator architecture (registry name)"},
            "version": {"type": "string"},
            "weights": {"type": "string", "description": "'default' or a weights file/folder name"},
            "input": {"type": "string", "enum": ["rerender", "profile"],
                      "description": "what the generator is fed: the crop warped back to frontal, or the crop"},
            "size": {"type": "integer", "description": "the generator's side in pixels (the frontal crop's with "
                                                       "output_size=generator)"},
            "max_yaw": {"type": "number", "description": "largest |yaw| of the training pairs, degrees"},
        }),
        "faces": {"type": "array", "items": frontalize_face_schema(), "minItems": 1,
                  "description": "every detected face, highest detector score first"},
        "timings_ms": _strict_object({step: {"type": "number", "minimum": 0} for step in FRONTALIZE_TIMING_STEPS}),
    })


# ---------------------------------------------------------------------------------------------------
# Heavy tasks: asynchronous jobs (server.api.jobs)
# ---------------------------------------------------------------------------------------------------
JOB_TASKS = ("generate", "style-mix", "toonify", "project", "morph", "swap", "virtual-model", "restore",
             "edit", "makeup")
"""Heavy tasks; each is submitted with ``POST /v1/<task>`` (pipelines: ``POST /v1/pipelines/<task>``)."""
PIPELINE_TASKS = ("virtual-model",)
"""Jobs that chain several models; their path is ``/v1/pipelines/<task>``."""
JOBS_PATH = "/v1/jobs"
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
SEED_MAX = 2**32 - 1
"""Largest seed (numpy ``RandomState`` takes 32-bit seeds); :mod:`server.request_models` checks it."""


def task_path(task: str) -> str:
    """``POST`` path of a heavy task, e.g. ``/v1/style-mix``, ``/v1/pipelines/virtual-model``."""
    return f"/{API_VERSION}/pipelines/{task}" if task in PIPELINE_TASKS else f"/{API_VERSION}/{task}"


def job_request_schemas(max_steps: int = 1000) -> dict[str, dict[str, Any]]:
    """JSON (or multipart form) fields of each heavy task: the JSON Schema of the pydantic models that
    validate the submissions (:mod:`server.request_models`), so the document and the handlers agree by
    construction; ``steps`` shows ``maximum = max_steps``."""
    from server.request_models import job_request_schemas as from_models

    return from_models(max_steps)


def job_accepted_schema() -> dict[str, Any]:
    """Body of a ``202 Accepted`` answer to ``POST /v1/<task>`` (``Location`` header: the job URL)."""
    return _strict_object({"id": {"type": "string"}, "task": {"type": "string", "enum": list(JOB_TASKS)},
                           "status": {"type": "string", "enum": ["queued"]},
                           "url": {"type": "string", "description": "poll this: GET /v1/jobs/{id}"}})


def job_schema() -> dict[str, Any]:
    """Body of ``GET /v1/jobs/{id}``."""
    time_or_null = {"type": ["string", "null"], "format": "date-time"}
    image = _strict_object({
        "index": {"type": "integer", "minimum": 0},
        "media_type": {"type": "string", "enum": ["image/png"]},
        "width": {"type": "integer"}, "height": {"type": "integer"},
        "channels": {"type": "integer", "enum": [3, 4], "description": "4: RGBA (emoji output)"},
        "url": {"type": "string", "description": "the PNG bytes: GET /v1/jobs/{id}/images/{index}"},
        "png_base64": {"type": "string", "contentEncoding": "base64", "contentMediaType": "image/png"},
    })
    return _strict_object({
        "id": {"type": "string"},
        "task": {"type": "string", "enum": list(JOB_TASKS)},
        "status": {"type": "string", "enum": list(JOB_STATUSES)},
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": time_or_null, "finished_at": time_or_null,
        "expires_at": {**time_or_null, "description": "the job and its result are deleted after this"},
        "timings_ms": _strict_object({"queued": {"type": ["number", "null"]}, "run": {"type": ["number", "null"]}}),
        "progress": {"oneOf": [{"type": "null"}, {**_strict_object({
            "step": {"type": "integer", "minimum": 0}, "total": {"type": "integer", "minimum": 1},
            "fraction": {"type": "number", "minimum": 0, "maximum": 1}}),
            "description": "steps done of a task that works in steps (StyleGAN2 projections: project, toonify "
                           "and edit of a photo, morph of two photos); null for one-shot tasks and queued jobs"}]},
        "result": {"oneOf": [{"type": "null"}, _strict_object({
            "images": {"type": "array", "items": image}, "data": {"type": "object"}})]},
        "error": {"oneOf": [{"type": "null"}, problem_schema()]},
    })

"""The OpenAPI 3.1 document, built in code from the constants and schemas the handlers use.

Nothing here is hand-maintained YAML: paths come from :mod:`server.schemas`, response bodies from its
JSON Schemas, the error responses of each operation from its blueprint's ``ERRORS`` tuple (grouped by
HTTP status), limits from the :class:`~server.config.Config` of the app. App developers feed
``GET /v1/openapi.json`` to openapi-generator to get Kotlin/Swift clients.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

import faceforge
from faceforge.errors import PROBLEM_TYPE_PREFIX, FaceforgeError
from faceforge.models.mini_xception import FER2013_LABELS

from server import schemas
from server.config import Config
from server.errors import (PROBLEM_MEDIA_TYPE, InternalError, MethodNotAllowedError, RouteNotFoundError,
                           problem_types)

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
COMMON_ERRORS = (RouteNotFoundError, MethodNotAllowedError, InternalError)


def _type(cls: type[FaceforgeError]) -> str:
    return PROBLEM_TYPE_PREFIX + cls.slug


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error_responses(errors: Iterable[type[FaceforgeError]]) -> dict[str, Any]:
    by_status: dict[int, list[type[FaceforgeError]]] = defaultdict(list)
    for cls in (*errors, InternalError):
        if cls not in by_status[cls.status]:
            by_status[cls.status].append(cls)
    responses = {}
    for status in sorted(by_status):
        classes = by_status[status]
        lines = "; ".join(f"`{cls.slug}`: {cls.title}" for cls in classes)
        responses[str(status)] = {
            "description": f"Problem ({lines})",
            "content": {PROBLEM_MEDIA_TYPE: {
                "schema": PROBLEM_REF,
                "examples": {cls.slug: {"value": {"type": _type(cls), "title": cls.title, "status": cls.status,
                                                  "detail": "...", "instance": "/..."}}
                             for cls in classes},
            }},
        }
    return responses


def build_openapi(config: Config | None = None) -> dict[str, Any]:
    """Return the OpenAPI 3.1.0 document (a JSON-serializable dict) for a server with ``config``."""
    from server.api import docs, emotion, health, models

    config = config or Config()
    labels = ", ".join(FER2013_LABELS)
    emotion_op = {
        "operationId": "recognizeEmotion",
        "summary": "Detect faces and classify each face's emotion (7 FER2013 classes)",
        "description": (
            "Pipeline: decode (EXIF orientation applied) -> BlazeFace detection -> alignment to the "
            "fer2013 template at 48x48 -> ITU-R BT.601 gray, p/127.5-1 -> mini-Xception -> softmax. "
            f"Labels in order: {labels}. Limits: {config.max_bytes} bytes, {config.max_pixels} pixels, "
            f"at most {config.max_faces} faces."),
        "requestBody": {"required": True, "content": {"multipart/form-data": {
            "schema": {"type": "object", "required": [schemas.IMAGE_FIELD], "properties": {
                schemas.IMAGE_FIELD: {"type": "string", "contentMediaType": "application/octet-stream",
                                      "description": "image file (JPEG, PNG, WebP, BMP, ...)"},
                schemas.MAX_FACES_FIELD: {"type": "integer", "minimum": 1, "maximum": config.max_faces,
                                          "default": config.max_faces,
                                          "description": "analyse at most this many faces, highest "
                                                         "detector score first"},
            }},
            "encoding": {schemas.IMAGE_FIELD: {"contentType": "image/*, application/octet-stream"}},
        }}},
        "responses": {"200": _json({"$ref": "#/components/schemas/EmotionResponse"}, "Faces and emotions"),
                      **_error_responses(emotion.ERRORS)},
        "tags": ["emotion"],
    }
    paths = {
        schemas.EMOTION_PATH: {"post": emotion_op},
        schemas.MODELS_PATH: {"get": {
            "operationId": "listModels", "summary": "Registered models, loaded or not, with weights "
                                                    "version, provenance and input spec",
            "responses": {"200": _json({"$ref": "#/components/schemas/ModelsResponse"}, "Models"),
                          **_error_responses(models.ERRORS)},
            "tags": ["models"]}},
        schemas.HEALTH_PATH: {"get": {
            "operationId": "health", "summary": "Liveness: the process answers",
            "responses": {"200": _json({"$ref": "#/components/schemas/Health"}, "Alive")},
            "tags": ["operations"]}},
        schemas.READY_PATH: {"get": {
            "operationId": "ready", "summary": "Readiness: loads the served models if needed; 503 if one "
                                               "cannot load",
            "responses": {"200": _json({"$ref": "#/components/schemas/Health"}, "Ready"),
                          **_error_responses(health.ERRORS)},
            "tags": ["operations"]}},
        schemas.OPENAPI_PATH: {"get": {
            "operationId": "openapi", "summary": "This document",
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document"),
                          **_error_responses(docs.ERRORS)},
            "tags": ["operations"]}},
    }
    problem = schemas.problem_schema()
    problem["properties"]["type"]["examples"] = [_type(cls) for cls in problem_types()]
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "faceforge API",
            "version": faceforge.__version__,
            "summary": "Face-image models for mobile apps: the server side and fallback",
            "description": "Errors are RFC 9457 problem details (application/problem+json) with a stable "
                           "`type` URN; see components.schemas.Problem and x-problem-types. "
                           "Every route may also answer 404 `not-found`, 405 `method-not-allowed` "
                           "and 500 `internal-error`.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": {"schemas": {
            "Problem": problem,
            "EmotionResponse": schemas.emotion_response_schema(),
            "ModelsResponse": schemas.models_response_schema(),
            "Health": schemas.health_schema(),
        }},
        "x-problem-types": [{"type": _type(cls), "title": cls.title, "status": cls.status}
                            for cls in problem_types()],
        "tags": [{"name": "emotion"}, {"name": "models"}, {"name": "operations"}],
    }

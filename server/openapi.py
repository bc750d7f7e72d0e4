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
from server.errors import (PROBLEM_MEDIA_TYPE, InternalError, MethodNotAllowedError, RateLimitedError,
                           RouteNotFoundError, ServerBusyError, UnauthorizedError, problem_types)

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


def _form_fields(endpoint: str, config: Config, documented: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The multipart fields of a synchronous endpoint: the image file, then the form model's fields
    (:data:`server.request_models.FORMS`: types, defaults, fixed values, limits) with the words below."""
    from server.request_models import form_schemas

    generated = form_schemas(config.max_faces)[endpoint]["properties"]
    image = {"type": "string", "contentMediaType": "application/octet-stream",
             "description": documented.get(schemas.IMAGE_FIELD, {}).get(
                 "description", "the photo (JPEG, PNG, WebP, BMP, ...)")}
    return {schemas.IMAGE_FIELD: image,
            **{name: {**prop, **documented.get(name, {})} for name, prop in generated.items()}}


def _translate_operation(config: Config, errors: Iterable[type[FaceforgeError]]) -> dict[str, Any]:
    """``POST /v1/translate``: two answers for one request: the photo bytes (``response=image``) or JSON."""
    from faceforge.translate import TASKS

    tasks = "; ".join(f"`{t.name}`: {t.description}" for t in TASKS.values())
    fields = _form_fields("translate", config, {
        schemas.TASK_FIELD: {"enum": list(TASKS), "description": f"task: {tasks}"},
        schemas.FACES_FIELD: {"description": "which faces to change: `all` (at most "
                                             f"{config.max_faces}, highest detector score first), `largest` "
                                             "(largest box), or 0-based indices `0,2` in detector order "
                                             "(highest score first; a JSON answer lists every face's index)"},
        schemas.DIRECTION_FIELD: {"description": "A->B: domain A to B (age: young -> old); B->A needs weights "
                                                 "holding both generators (a training run folder)"},
        schemas.POSTFILTER_FIELD: {"description": "Gaussian blur + unsharp mask on the translated faces"},
        schemas.FORMAT_FIELD: {"description": "encoding of the returned photo (jpeg: quality 90)"},
        schemas.RESPONSE_FIELD: {"description": "`image`: the body is the photo (image/png or image/jpeg), "
                                                "face count and translated indices in headers; `json`: "
                                                "TranslateResponse with the photo base64-encoded and every "
                                                "face's box, keypoints, score and `translated` flag"},
    })
    headers = {name: {"description": text, "schema": {"type": "string"}}
               for name, text in schemas.TRANSLATE_HEADERS.items()}
    binary = {"schema": {"type": "string", "contentMediaType": "image/png"}}
    return {
        "operationId": "translateFaces",
        "summary": "Translate the faces of a photo with a CycleGAN generator (e.g. aging) and return the "
                   "edited photo",
        "description": (
            "Pipeline: decode (EXIF orientation applied) -> BlazeFace detection -> face selection -> "
            "alignment to the utkface template at the generator's size (256, or 128) -> CycleGAN generator "
            "(Zhu et al., ICCV 2017) -> optional Gaussian + unsharp post-filter -> paste back with a feathered "
            "mask; pixels outside the translated faces' squares are unchanged. The answer is chosen by the "
            "`response` field (not the Accept header): the photo bytes, or JSON with the photo base64 plus "
            "the faces. faceforge ships trained aging weights; when the configured weights "
            "(`FACEFORGE_TRANSLATE_AGE_WEIGHTS`, default: the shipped ones) are absent the endpoint "
            f"answers 503 `weights-not-found`. Limits: {config.max_bytes} bytes, {config.max_pixels} pixels, "
            f"at most {config.max_faces} faces translated."),
        "requestBody": {"required": True, "content": {"multipart/form-data": {
            "schema": {"type": "object", "required": [schemas.IMAGE_FIELD], "properties": fields},
            "encoding": {schemas.IMAGE_FIELD: {"contentType": "image/*, application/octet-stream"}},
        }}},
        "responses": {
            "200": {"description": "The edited photo (`response=image`, the default) or JSON (`response=json`)",
                    "headers": headers,
                    "content": {"image/png": binary,
                                "image/jpeg": {"schema": {"type": "string", "contentMediaType": "image/jpeg"}},
                                "application/json": {"schema": {"$ref": "#/components/schemas/TranslateResponse"}}}},
            **_error_responses(errors),
        },
        "tags": ["translate"],
    }


def _frontalize_operation(config: Config, errors: Iterable[type[FaceforgeError]]) -> dict[str, Any]:
    """``POST /v1/frontalize``: JSON with every face's frontal crop (default) or one face's PNG."""
    fields = _form_fields("frontalize", config, {
        schemas.FACES_FIELD: {"description": f"which faces to frontalize: `all` (at most {config.max_faces}, "
                                             "highest detector score first), `largest` (largest box), or 0-based "
                                             "indices `0,2` in detector order"},
        schemas.RESPONSE_FIELD: {"description": "`json`: FrontalizeResponse, every face with box, yaw, roll, "
                                                "range flag and its frontal crop as base64 PNG; `image`: the "
                                                "frontal crop PNG of the one selected face (`faces=largest` or "
                                                "one index), yaw in headers"},
    })
    headers = {name: {"description": text, "schema": {"type": "string"}}
               for name, text in schemas.FRONTALIZE_HEADERS.items()}
    return {
        "operationId": "frontalizeFaces",
        "summary": "Predict the frontal face of turned faces in a photo (pix2pix on synthesized pose pairs)",
        "description": (
            "Pipeline: decode (EXIF orientation applied) -> full-range BlazeFace detection -> face selection -> "
            "Face Mesh (468 3D landmarks) -> yaw estimate -> pose-tolerant crop framed by the landmark box -> "
            "(generators trained on rerendered inputs) warp back to frontal as Rotate-and-Render does (Zhou et "
            "al., CVPR 2020) -> pix2pix U-Net generator (Isola et al., CVPR 2017) at its own side -> with "
            "`output_size=face` (default) the frontal crop at the face's own side: the rerender's pixels where the "
            "camera saw the face, plus the generator's change, and the generator's pixels (enlarged) where the turned "
            "head hid it (`generator`: its own crop; an integer: that side). Yaw is in degrees, positive "
            "when the nose points to the image's right (Face Mesh's estimate, calibrated); a face turned beyond the "
            "trained range is not frontalized (`in_range: false`, `warning`), and with no face left the answer is 422 "
            "`pose-out-of-range`. faceforge ships a trained mobile U-Net (128 px); "
            "when the configured weights (`FACEFORGE_FRONTALIZE_WEIGHTS`, default: the shipped ones) are absent "
            "the endpoint answers 503 `weights-not-found`. Limits: "
            f"{config.max_bytes} bytes, {config.max_pixels} pixels, at most {config.max_faces} faces."),
        "requestBody": {"required": True, "content": {"multipart/form-data": {
            "schema": {"type": "object", "required": [schemas.IMAGE_FIELD], "properties": fields},
            "encoding": {schemas.IMAGE_FIELD: {"contentType": "image/*, application/octet-stream"}},
        }}},
        "responses": {
            "200": {"description": "JSON (`response=json`, the default) or one frontal crop (`response=image`)",
                    "headers": headers,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FrontalizeResponse"}},
                                "image/png": {"schema": {"type": "string", "contentMediaType": "image/png"}}}},
            **_error_responses(errors),
        },
        "tags": ["frontalize"],
    }


def _job_paths(config: Config) -> dict[str, Any]:
    """``POST /v1/<task>`` for each heavy task, ``GET`` / ``DELETE /v1/jobs/{job_id}`` and its images."""
    from server.api import jobs

    requests = schemas.job_request_schemas(config.max_project_steps)
    summaries = {
        "generate": "Generate faces of people who do not exist from seeds (StyleGAN2)",
        "style-mix": "Style-mixing matrix: coarse styles from the column seeds, fine styles from the row seeds",
        "toonify": "Toonify seeds or a photo (layer-swapped base + cartoon fine-tuned StyleGAN2)",
        "project": "Project a face photo into StyleGAN2's W or W+ (optimisation)",
        "morph": "Morph two faces: Delaunay landmark morph of two photos, or latent interpolation",
        "makeup": "Makeup transfer: the reference face's lip, eye-shadow and skin colours onto the target's faces "
                  "(Face Mesh regions, Lab colour transfer)",
        "edit": "Edit age, gender or smile of seeds or a projected photo (InterFaceGAN directions in W)",
        "restore": "Blind face restoration of every (or the chosen) face of a photo, pasted back (GPEN or classical)",
        "swap": "Classical face swap: the source photo's face onto the target's faces (AI-made marks on the PNG)",
        "virtual-model": "Virtual model: screen, swap the identity onto the photo's faces, restore, mark "
                         "(no face: the photo comes back unchanged)",
    }
    multipart = {"toonify", "project", "morph", "swap", "virtual-model", "restore", "edit", "makeup"}
    accepted = {"description": "Job accepted; poll the `Location` URL",
                "headers": {"Location": {"schema": {"type": "string"}, "description": "GET /v1/jobs/{id}"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobAccepted"}}}}
    paths: dict[str, Any] = {}
    for task in schemas.JOB_TASKS:
        body = requests[task]
        content = {"application/json": {"schema": body}}
        if task in multipart:
            content["multipart/form-data"] = {"schema": body}
        paths[schemas.task_path(task)] = {"post": {
            "operationId": "submit" + "".join(part.title() for part in task.split("-")),
            "summary": summaries[task],
            "description": "Asynchronous: answers 202 with a job id at once; the work runs on the job "
                           f"backend ({config.job_backend}); at most {config.max_jobs} jobs wait (then 429 with "
                           "Retry-After). Without configured StyleGAN2 weights: 503 `weights-not-found`.",
            "requestBody": {"required": True, "content": content},
            "responses": {"202": accepted, **_error_responses(jobs.SUBMIT_ERRORS)},
            "tags": ["heavy"]}}
    failures = ", ".join(f"`{cls.slug}`" for cls in jobs.JOB_FAILURES)
    paths[schemas.JOBS_PATH + "/{job_id}"] = {"get": {
        "operationId": "getJob",
        "summary": "Job status, timings and result (images as base64 PNG and as URLs)",
        "description": f"A failed job carries its problem in `error` (e.g. {failures}). Finished jobs expire "
                       f"after {config.job_ttl_s} s.",
        "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": _json({"$ref": "#/components/schemas/Job"}, "The job"),
                      **_error_responses(jobs.ERRORS)},
        "tags": ["heavy"]}, "delete": {
        "operationId": "cancelJob",
        "summary": "Cancel a queued or running job (its record stays, status `cancelled`)",
        "description": "A queued job is cancelled and never runs. A running job is marked `cancelled` at once and "
                       "its result is discarded; what stops depends on the backend: `celery` revokes the task "
                       "(prefork workers: SIGUSR1 to the child running it, which ends the computation as a soft "
                       "time limit would), `inprocess` sets a cooperative flag that the StyleGAN2 projections check "
                       "between optimisation steps (one-shot tasks run to their end on their thread). Cancelling a cancelled "
                       "job answers its record again; a job that already succeeded or failed answers 409 "
                       f"`job-finished`. The record expires {config.job_ttl_s} s after the cancel.",
        "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": _json({"$ref": "#/components/schemas/Job"}, "The job, now cancelled"),
                      **_error_responses(jobs.CANCEL_ERRORS)},
        "tags": ["heavy"]}}
    paths[schemas.JOBS_PATH + "/{job_id}/images/{index}"] = {"get": {
        "operationId": "getJobImage", "summary": "One result image of a succeeded job as PNG",
        "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}},
                       {"name": "index", "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 0}}],
        "responses": {"200": {"description": "PNG (RGB, or RGBA for emoji output)",
                              "content": {"image/png": {"schema": {"type": "string",
                                                                   "contentMediaType": "image/png"}}}},
                      **_error_responses(jobs.IMAGE_ERRORS)},
        "tags": ["heavy"]}}
    return paths


SECURITY_SCHEMES = {"bearer": {"type": "http", "scheme": "bearer", "description": "an API key"},
                    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
"""How a request presents its API key (:mod:`server.access`)."""


def _add_error(operation: dict[str, Any], cls: type[FaceforgeError]) -> None:
    """Add ``cls`` to ``operation``'s responses, merged into an existing entry of the same status."""
    status = str(cls.status)
    entry = _error_responses([cls])[status]
    existing = operation["responses"].get(status)
    if existing is None:
        operation["responses"][status] = entry
        return
    examples = existing["content"][PROBLEM_MEDIA_TYPE]["examples"]
    if cls.slug not in examples:
        examples.update(entry["content"][PROBLEM_MEDIA_TYPE]["examples"])
        existing["description"] = existing["description"][:-1] + f"; `{cls.slug}`: {cls.title})"


def _add_access_errors(paths: dict[str, Any], config: Config) -> list[dict[str, list]]:
    """The answers of :mod:`server.access` and :mod:`server.decode_budget` on each operation: 401 with
    API keys on (and a ``security`` requirement), 429 ``rate-limited`` on POSTs with a rate limit, 503
    ``server-busy`` on uploads. Returns the document-level ``security`` (empty: no keys)."""
    from server.access import PUBLIC_PATHS

    keys = bool(config.api_keys)
    security = [{"bearer": []}, {"apiKey": []}] if keys else []
    for path, item in paths.items():
        for method, operation in item.items():
            if path in PUBLIC_PATHS:
                if keys:
                    operation["security"] = []  # public: no key needed
                continue
            if keys:
                _add_error(operation, UnauthorizedError)
            if method == "post" and config.rate_limit:
                _add_error(operation, RateLimitedError)
            if "multipart/form-data" in operation.get("requestBody", {}).get("content", {}):
                _add_error(operation, ServerBusyError)
    return security


def build_openapi(config: Config | None = None) -> dict[str, Any]:
    """Return the OpenAPI 3.1.0 document (a JSON-serializable dict) for a server with ``config``."""
    from server.api import docs, emotion, frontalize, health, models, translate

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
            "schema": {"type": "object", "required": [schemas.IMAGE_FIELD], "properties": _form_fields(
                "emotion", config, {
                    schemas.IMAGE_FIELD: {"description": "image file (JPEG, PNG, WebP, BMP, ...)"},
                    schemas.MAX_FACES_FIELD: {"description": "analyse at most this many faces, highest detector "
                                                             "score first"}})},
            "encoding": {schemas.IMAGE_FIELD: {"contentType": "image/*, application/octet-stream"}},
        }}},
        "responses": {"200": _json({"$ref": "#/components/schemas/EmotionResponse"}, "Faces and emotions"),
                      **_error_responses(emotion.ERRORS)},
        "tags": ["emotion"],
    }
    paths = {
        schemas.EMOTION_PATH: {"post": emotion_op},
        schemas.TRANSLATE_PATH: {"post": _translate_operation(config, translate.ERRORS)},
        schemas.FRONTALIZE_PATH: {"post": _frontalize_operation(config, frontalize.ERRORS)},
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
        **_job_paths(config),
    }
    security = _add_access_errors(paths, config)
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
        **({"security": security} if security else {}),
        "components": {**({"securitySchemes": SECURITY_SCHEMES} if security else {}), "schemas": {
            "Problem": problem,
            "EmotionResponse": schemas.emotion_response_schema(),
            "TranslateResponse": schemas.translate_response_schema(),
            "FrontalizeResponse": schemas.frontalize_response_schema(),
            "ModelsResponse": schemas.models_response_schema(),
            "Health": schemas.health_schema(),
            "JobAccepted": schemas.job_accepted_schema(),
            "Job": schemas.job_schema(),
        }},
        "x-problem-types": [{"type": _type(cls), "title": cls.title, "status": cls.status}
                            for cls in problem_types()],
        "tags": [{"name": "emotion"}, {"name": "translate"}, {"name": "frontalize"}, {"name": "heavy"},
                 {"name": "models"},
                 {"name": "operations"}],
    }

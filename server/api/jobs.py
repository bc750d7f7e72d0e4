"""Heavy tasks as asynchronous jobs: ``POST /v1/<task>`` -> 202 + job id; poll ``GET /v1/jobs/<id>``.

Tasks (:data:`server.schemas.JOB_TASKS`): ``generate``, ``style-mix``, ``toonify``, ``project``,
``morph``, ``swap``, ``virtual-model``, ``restore``, ``edit`` (attribute edits: InterFaceGAN directions,
:mod:`faceforge.editing`). A submission is validated here, synchronously (bad fields: 400; no StyleGAN2 weights
configured: 503 ``weights-not-found``; queue full: 429 ``queue-full`` with ``Retry-After``), then runs
on the job backend (:mod:`server.jobs`), never on the request thread.

Cancel: ``DELETE /v1/jobs/<id>`` -> 200 with the job, now ``cancelled`` (a queued job never runs; a running
one is marked cancelled at once, its result discarded; what stops depends on the backend, see
:meth:`server.jobs.JobQueue.cancel`); 409 ``job-finished`` when it already succeeded or failed.

Results: ``GET /v1/jobs/<id>`` returns the status, timings and, once ``succeeded``, every image as
base64 PNG inside the JSON (one round trip on a phone network) plus a ``url`` per image,
``GET /v1/jobs/<id>/images/<index>``, that returns the raw ``image/png`` bytes. A failed job carries
its RFC 9457 problem in ``error``. Finished jobs expire after ``Config.job_ttl_s`` seconds (then 404).

Request bodies: JSON for seed-only requests; ``multipart/form-data`` when an image is uploaded
(``project``; ``toonify`` of a photo; ``morph`` of two photos), form fields as strings (lists
comma-separated, booleans true/false).
"""

from __future__ import annotations

import base64
import datetime as dt
import struct
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from faceforge.errors import (CheckpointError, ImageTooSmallError, InvalidFieldError, MissingFieldError,
                              NoFaceError, NotAnImageError, TooManyBytesError, TooManyPixelsError,
                              TruncatedImageError, UnsupportedFormatError, WeightsNotFoundError)

from server import request_models
from server.api import EXTENSION_KEY, get_config, get_hub, read_upload, request_limits, require_upload
from server.errors import JobFinishedError, JobNotFinishedError, JobNotFoundError, QueueFullError
from server.jobs import Job, JobQueue
from server.schemas import JOB_TASKS, JOBS_PATH, task_path

bp = Blueprint("jobs", __name__)

SUBMIT_ERRORS = (MissingFieldError, InvalidFieldError, NotAnImageError, TruncatedImageError,
                 UnsupportedFormatError, TooManyBytesError, TooManyPixelsError, ImageTooSmallError,
                 QueueFullError, WeightsNotFoundError)
"""Errors a ``POST /v1/<task>`` answers with."""
JOB_FAILURES = (NoFaceError, WeightsNotFoundError, CheckpointError)
"""Problems a failed job may carry in ``error`` (the GET itself answers 200)."""
ERRORS = (JobNotFoundError,)
"""Errors of ``GET /v1/jobs/<id>``."""
CANCEL_ERRORS = (JobNotFoundError, JobFinishedError)
"""Errors of ``DELETE /v1/jobs/<id>``."""
IMAGE_ERRORS = (JobNotFoundError, JobNotFinishedError)
"""Errors of ``GET /v1/jobs/<id>/images/<index>``."""


def get_jobs() -> JobQueue:
    """The :class:`~server.jobs.JobQueue` of the current app."""
    return current_app.extensions[EXTENSION_KEY]["jobs"]


# ------------------------------------------------------------------------------------------ fields
def _fields() -> dict[str, Any]:
    if request.mimetype == "multipart/form-data" or request.form:
        return request.form.to_dict()
    raw = request.get_data(cache=True)
    if not raw or not (request.mimetype == "application/json" or request.mimetype.endswith("+json")):
        raise MissingFieldError("send a JSON object (Content-Type: application/json) or a multipart form")
    body = request_models.parse_json_body(raw)
    if not isinstance(body, dict):
        raise InvalidFieldError("the JSON body must be an object")
    return body


def _image(name: str, required: bool = True) -> bytes | None:
    """The uploaded file's bytes, decoded once here so a bad image is a synchronous 4xx."""
    if not required and name not in request.files:
        return None
    upload = require_upload(name)
    data, _ = read_upload(upload)
    return data


# ------------------------------------------------------------------------------------------ submit
def _parse(task: str) -> dict[str, Any]:
    """Validate a submission of ``task`` (:mod:`server.request_models`) and return the job's payload.

    Order: the body (JSON or form), the configured weights the task needs (503 before any field is
    looked at), the uploads (read and decoded: a bad image is a synchronous 4xx), then the fields.
    """
    hub = get_hub()
    f = _fields()
    model = request_models.MODELS[task]
    attributes = None
    if task in ("generate", "style-mix", "toonify", "project"):
        hub.stylegan_weights_path("base")
    if task == "toonify":
        hub.stylegan_weights_path("toon")
    if task == "edit":
        from server.tasks import edit_directions

        attributes = tuple(edit_directions(hub).attributes)  # 503 when none fit the configured generator
    if task == "restore" and f.get("method") == "gpen":
        from faceforge.restore import resolve_weights

        resolve_weights(None)  # 503 weights-not-found at submit, not a failed job later
    if task == "virtual-model" and "source" not in request.files:
        hub.stylegan_weights_path("base")  # the source person is generated
    uploads = {name: _image(name, required=model.model_fields[name].is_required()) for name in model.uploads}
    limits = request_limits(attributes)
    try:
        payload = request_models.validate_job_request(task, f, uploads, limits)
    except MissingFieldError as exc:
        name = exc.extra.get("field")
        if name in model.uploads and exc.detail == request_models.missing_upload(name):
            require_upload(name)  # the same sentence, with the hint for a request that is not multipart
        raise
    if task == "morph" and payload["mode"] == "latent":
        hub.stylegan_weights_path("base")
    return payload


def _submit(task: str):
    payload = _parse(task)
    job = get_jobs().submit(task, payload)
    url = url_for("jobs.job_status", job_id=job.id)
    response = jsonify(id=job.id, task=task, status="queued", url=url)
    response.status_code = 202
    response.headers["Location"] = url
    return response


for _task in JOB_TASKS:
    bp.add_url_rule(task_path(_task), endpoint=f"submit_{_task.replace('-', '_')}",
                    view_func=lambda _task=_task: _submit(_task), methods=["POST"])


# ------------------------------------------------------------------------------------------ results
def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _png_size(png: bytes) -> tuple[int, int, int]:
    width, height = struct.unpack(">II", png[16:24])
    return width, height, 4 if png[25] == 6 else 3  # IHDR colour type 6 = RGBA


def job_to_dict(job: Job, ttl_s: float) -> dict[str, Any]:
    """The JSON body of ``GET /v1/jobs/<id>`` (see :func:`server.schemas.job_schema`)."""
    result = None
    if job.result is not None:
        images = []
        for i, png in enumerate(job.result.images):
            w, h, c = _png_size(png)
            images.append({"index": i, "media_type": "image/png", "width": w, "height": h, "channels": c,
                           "url": url_for("jobs.job_image", job_id=job.id, index=i),
                           "png_base64": base64.b64encode(png).decode("ascii")})
        result = {"images": images, "data": job.result.data}
    return {"id": job.id, "task": job.task, "status": job.status, "created_at": _iso(job.created),
            "started_at": _iso(job.started), "finished_at": _iso(job.finished),
            "expires_at": _iso(job.finished + ttl_s) if job.finished is not None else None,
            "timings_ms": job.timings_ms(), "progress": job.progress, "result": result, "error": job.error}


@bp.get(JOBS_PATH + "/<job_id>")
def job_status(job_id: str):
    """Status, timings and (when succeeded) the result of a job; 404 problem for unknown/expired ids."""
    return jsonify(job_to_dict(get_jobs().get(job_id), get_config().job_ttl_s))


@bp.delete(JOBS_PATH + "/<job_id>")
def job_cancel(job_id: str):
    """Cancel a queued or running job: 200 with its record (``cancelled``); 409 problem once it finished."""
    return jsonify(job_to_dict(get_jobs().cancel(job_id), get_config().job_ttl_s))


@bp.get(JOBS_PATH + "/<job_id>/images/<int:index>")
def job_image(job_id: str, index: int):
    """One result image as ``image/png``; 409 while the job has not succeeded, 404 for a bad index."""
    job = get_jobs().get(job_id)
    if job.status != "succeeded" or job.result is None:
        raise JobNotFinishedError(f"job {job_id} is {job.status}; images exist once it has succeeded",
                                  job_status=job.status)
    if not 0 <= index < len(job.result.images):
        raise JobNotFoundError(f"job {job_id} has {len(job.result.images)} images; no index {index}",
                               job_id=job_id)
    return Response(job.result.images[index], mimetype="image/png")

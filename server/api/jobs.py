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
import json
import struct
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from faceforge.errors import (CheckpointError, ImageTooSmallError, InvalidFieldError, MissingFieldError,
                              NoFaceError, NotAnImageError, TooManyBytesError, TooManyPixelsError,
                              TruncatedImageError, UnsupportedFormatError, WeightsNotFoundError)
from faceforge.faces.select import parse_face_selection

from server.api import EXTENSION_KEY, get_config, get_hub, read_upload, require_upload
from server.errors import JobFinishedError, JobNotFinishedError, JobNotFoundError, QueueFullError
from server.jobs import Job, JobQueue
from server.schemas import JOB_TASKS, JOBS_PATH, SEED_MAX, task_path

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

TOONIFY_DEFAULT_SWAP = 16
DEFAULT_STEPS = 200
DEFAULT_T = (0.0, 0.25, 0.5, 0.75, 1.0)


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
    body = parse_json_body(raw)
    if not isinstance(body, dict):
        raise InvalidFieldError("the JSON body must be an object")
    return body


MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays/objects a JSON body may have (the API's deepest is 2)."""


def parse_json_body(raw: bytes) -> Any:
    """Decode a request body as UTF-8 JSON (RFC 8259), nested at most :data:`MAX_JSON_DEPTH` levels.

    The depth is checked on the raw text before parsing, so a 2,000-level body costs one linear scan
    instead of the parser's recursion (which raised ``RecursionError`` -> 500 before).

    Raises:
        InvalidFieldError: not UTF-8, nested too deeply, or not JSON; the detail says which and where.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFieldError(f"the JSON body is not valid UTF-8 (byte {exc.start})") from None
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise InvalidFieldError(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
        elif ch in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidFieldError(f"the JSON body is not valid JSON: {exc}") from None


def _int_list(fields: dict[str, Any], name: str, lo: int, hi: int, required: bool = True) -> list[int] | None:
    raw = fields.get(name)
    if raw is None or raw == "":
        if required:
            raise MissingFieldError(f"the field {name!r} is missing", field=name)
        return None
    items = raw.split(",") if isinstance(raw, str) else raw
    try:
        if not isinstance(items, list) or any(isinstance(v, (bool, float)) for v in items):
            raise ValueError
        values = [int(v) for v in items]
    except (TypeError, ValueError):
        raise InvalidFieldError(f"{name} must be a list of integers, got {raw!r}", field=name) from None
    if not values or any(not lo <= v <= hi for v in values):
        raise InvalidFieldError(f"{name} must be a non-empty list of integers in [{lo}, {hi}]", field=name)
    return values


def _seeds(fields: dict[str, Any], name: str, required: bool = True) -> list[int] | None:
    seeds = _int_list(fields, name, 0, SEED_MAX, required)
    limit = get_config().max_images
    if seeds is not None and len(seeds) > limit:
        raise InvalidFieldError(f"{name}: at most {limit} seeds per request, got {len(seeds)}", field=name)
    return seeds


def _number(fields: dict[str, Any], name: str, default: float, lo: float, hi: float) -> float:
    raw = fields.get(name)
    if raw is None or raw == "":
        return default
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = float(raw)
    except (TypeError, ValueError):
        value = float("nan")
    if not lo <= value <= hi:
        raise InvalidFieldError(f"{name} must be a number in [{lo}, {hi}], got {raw!r}", field=name)
    return value


def _integer(fields: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    raw = fields.get(name)
    if raw is None or raw == "":
        return default
    try:
        if isinstance(raw, (bool, float)):
            raise ValueError
        value = int(raw)
    except (TypeError, ValueError):
        value = lo - 1
    if not lo <= value <= hi:
        raise InvalidFieldError(f"{name} must be an integer in [{lo}, {hi}], got {raw!r}", field=name)
    return value


def _flag(fields: dict[str, Any], name: str, default: bool) -> bool:
    raw = fields.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "1", "yes", "false", "0", "no"):
        return raw.lower() in ("true", "1", "yes")
    raise InvalidFieldError(f"{name} must be true or false, got {raw!r}", field=name)


def _choice(fields: dict[str, Any], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = fields.get(name, default) or default
    if raw not in choices:
        raise InvalidFieldError(f"{name} must be one of {', '.join(choices)}, got {raw!r}", field=name)
    return raw


def _faces(fields: dict[str, Any]) -> str:
    """The ``faces`` selection (``all``, ``largest``, ``0,2``), checked here so a bad one is a 400 at submit."""
    faces = str(fields.get("faces") or "all")
    try:
        parse_face_selection(faces)
    except ValueError as exc:
        raise InvalidFieldError(str(exc), field="faces") from None
    return faces


def _image(name: str, required: bool = True) -> bytes | None:
    """The uploaded file's bytes, decoded once here so a bad image is a synchronous 4xx."""
    if not required and name not in request.files:
        return None
    upload = require_upload(name)
    data, _ = read_upload(upload)
    return data


# ------------------------------------------------------------------------------------------ submit
def _parse(task: str) -> dict[str, Any]:
    config, hub = get_config(), get_hub()
    f = _fields()
    psi = _number(f, "psi", 1.0, -1.0, 2.0)
    output = _choice(f, "output", ("image", "emoji"), "image")
    steps = _integer(f, "steps", min(DEFAULT_STEPS, config.max_project_steps), 1, config.max_project_steps)
    align = _flag(f, "align", True)
    if task == "generate":
        hub.stylegan_weights_path("base")
        return {"seeds": _seeds(f, "seeds"), "psi": psi, "output": output}
    if task == "style-mix":
        hub.stylegan_weights_path("base")
        rows, cols = _seeds(f, "row_seeds"), _seeds(f, "col_seeds")
        if (len(rows) + 1) * (len(cols) + 1) > 4 * config.max_images:
            raise InvalidFieldError(f"the matrix may hold at most {4 * config.max_images} tiles", field="row_seeds")
        crossover = _integer(f, "crossover", -1, 0, 64)
        resolution = _integer(f, "resolution", -1, 4, 1024)
        if resolution >= 0 and resolution & (resolution - 1):
            raise InvalidFieldError(f"resolution must be a power of two (4, 8, ... up to the generator's side), "
                                    f"got {resolution}", field="resolution")
        return {"row_seeds": rows, "col_seeds": cols, "psi": psi,
                "crossover": None if crossover < 0 else crossover,
                "resolution": None if resolution < 0 else resolution}
    if task == "toonify":
        hub.stylegan_weights_path("base")
        hub.stylegan_weights_path("toon")
        image = _image("image", required=False)
        seeds = None if image is not None else _seeds(f, "seeds")
        return {"seeds": seeds, "image": image, "steps": steps, "align": align, "psi": psi, "output": output,
                "swap_resolution": _integer(f, "swap_resolution", TOONIFY_DEFAULT_SWAP, 0, 4096),
                "structure_from": _choice(f, "structure_from", ("finetuned", "base"), "finetuned")}
    if task == "edit":
        from server.tasks import edit_directions

        directions = edit_directions(hub)  # 503 at submit when none fit the configured generator
        if not f.get("attribute"):
            raise MissingFieldError(f"the field 'attribute' is missing ({', '.join(directions.attributes)})",
                                    field="attribute")
        attribute = _choice(f, "attribute", directions.attributes, "")
        image = _image("image", required=False)
        seeds = None if image is not None else _seeds(f, "seeds")
        raw = f.get("strengths")
        strengths = [-2.0, -1.0, 0.0, 1.0, 2.0] if raw is None or raw == "" else _floats(raw, "strengths", -10.0, 10.0)
        if (len(seeds) if seeds else 1) * len(strengths) > 4 * config.max_images:
            raise InvalidFieldError(f"seeds x strengths may make at most {4 * config.max_images} images",
                                    field="strengths")
        condition = f.get("condition") or []
        if isinstance(condition, str):
            condition = [c.strip() for c in condition.split(",") if c.strip()]
        if not isinstance(condition, list) or any(c not in directions.attributes or c == attribute for c in condition):
            raise InvalidFieldError(f"condition must list other attributes of {', '.join(directions.attributes)}",
                                    field="condition")
        return {"seeds": seeds, "image": image, "steps": steps, "align": align, "w_plus": _flag(f, "w_plus", False),
                "psi": psi, "attribute": attribute, "strengths": strengths, "condition": condition}
    if task == "project":
        hub.stylegan_weights_path("base")
        return {"image": _image("image"), "steps": steps, "align": align, "w_plus": _flag(f, "w_plus", False)}
    if task == "swap":
        return {"source": _image("source"), "target": _image("target"), "faces": _faces(f),
                "blend": _choice(f, "blend", ("laplacian", "poisson", "feather"), "laplacian"),
                "max_yaw_gap": _number(f, "max_yaw_gap", 30.0, 0.001, 90.0),
                "allow_pose_gap": _flag(f, "allow_pose_gap", False), "restore": _flag(f, "restore", False)}
    if task == "makeup":
        from faceforge.makeup import REGIONS

        raw = f.get("regions") or list(REGIONS)
        regions = [r.strip() for r in raw.split(",") if r.strip()] if isinstance(raw, str) else raw
        if not isinstance(regions, list) or not regions or any(r not in REGIONS for r in regions):
            raise InvalidFieldError(f"regions must be a non-empty list of {', '.join(REGIONS)}, got {raw!r}",
                                    field="regions")
        return {"target": _image("target"), "reference": _image("reference"), "faces": _faces(f),
                "strength": _number(f, "strength", 0.8, 0.0, 1.0), "regions": regions}
    if task == "restore":
        method = _choice(f, "method", ("auto", "gpen", "classical"), "auto")
        if method == "gpen":
            from faceforge.restore import resolve_weights

            resolve_weights(None)  # 503 weights-not-found at submit, not a failed job later
        return {"image": _image("image"), "faces": _faces(f), "method": method,
                "upscale": _integer(f, "upscale", 1, 1, 4)}
    if task == "virtual-model":
        source = _image("source", required=False)
        seed = None
        if source is None:
            hub.stylegan_weights_path("base")
            seed = _integer(f, "source_seed", -1, 0, SEED_MAX)
            if seed < 0:
                raise MissingFieldError("give a source photo (multipart `source`) or `source_seed`",
                                        field="source")
        return {"image": _image("image"), "source": source, "source_seed": seed,
                "faces": _choice(f, "faces", ("all", "largest"), "all"),
                "restore": _choice(f, "restore", ("auto", "classical", "none"), "auto")}
    # morph
    has_images = "image_a" in request.files or "image_b" in request.files
    mode = _choice(f, "mode", ("delaunay", "latent"), "delaunay" if has_images else "latent")
    raw_t = f.get("t")
    t = list(DEFAULT_T) if raw_t is None or raw_t == "" else _floats(raw_t)
    if len(t) > config.max_images:
        raise InvalidFieldError(f"t: at most {config.max_images} frames per request", field="t")
    payload: dict[str, Any] = {"mode": mode, "t": t, "psi": psi, "steps": steps, "align": align,
                               "seeds": None, "images": None}
    if mode == "latent":
        hub.stylegan_weights_path("base")
    if mode == "latent" and not has_images:
        seeds = _seeds(f, "seeds")
        if len(seeds) != 2:
            raise InvalidFieldError("seeds must hold exactly two seeds (A, B)", field="seeds")
        payload["seeds"] = seeds
    else:
        payload["images"] = [_image("image_a"), _image("image_b")]
    return payload


def _floats(raw: Any, name: str = "t", lo: float = 0.0, hi: float = 1.0) -> list[float]:
    items = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, list) else [raw]
    try:
        values = [float(v) for v in items if not isinstance(v, bool)]
    except (TypeError, ValueError):
        values = []
    if not values or len(values) != len(items) or any(not lo <= v <= hi for v in values):
        raise InvalidFieldError(f"{name} must be a non-empty list of numbers in [{lo:g}, {hi:g}], got {raw!r}",
                                field=name)
    return values


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
            "timings_ms": job.timings_ms(), "result": result, "error": job.error}


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

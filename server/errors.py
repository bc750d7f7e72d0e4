"""Every error response is ``application/problem+json`` (RFC 9457, "Problem Details for HTTP APIs").

One handler turns any :class:`faceforge.errors.FaceforgeError` into a problem object
``{type, title, status, detail, instance, ...extensions}`` using the error's own ``slug``, ``title`` and
``status``. HTTP-layer errors (unknown route, wrong method, body over ``MAX_CONTENT_LENGTH``) and
unexpected exceptions are mapped to the server-side classes below first, so clients see one shape
and a stable ``type`` for everything. Unexpected exceptions are logged with their traceback and
answered with a generic 500 whose detail never contains internal text.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, json, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from faceforge import errors as ff_errors
from faceforge.errors import FaceforgeError, RequestError, TooManyBytesError

PROBLEM_MEDIA_TYPE = "application/problem+json"

log = logging.getLogger(__name__)


class RouteNotFoundError(FaceforgeError):
    slug = "not-found"
    title = "No such endpoint"
    status = 404


class MethodNotAllowedError(FaceforgeError):
    slug = "method-not-allowed"
    title = "The endpoint does not accept this HTTP method"
    status = 405


class NotReadyError(FaceforgeError):
    slug = "not-ready"
    title = "The server cannot serve requests yet"
    status = 503


class JobNotFoundError(FaceforgeError):
    slug = "job-not-found"
    title = "No such job (unknown id, or its result expired)"
    status = 404


class JobNotFinishedError(FaceforgeError):
    slug = "job-not-finished"
    title = "The job has not succeeded (yet), so it has no result"
    status = 409


class JobFinishedError(FaceforgeError):
    """``DELETE /v1/jobs/<id>`` of a job that already succeeded or failed: there is nothing to cancel."""

    slug = "job-finished"
    title = "The job has already finished, so it cannot be cancelled"
    status = 409


class QueueFullError(FaceforgeError):
    """The heavy-job queue is full; ``extra["retry_after"]`` seconds go into a ``Retry-After`` header."""

    slug = "queue-full"
    title = "Too many jobs are waiting; retry later"
    status = 429


class UnauthorizedError(FaceforgeError):
    """No or an unknown API key (``server.access``); answered with ``WWW-Authenticate: Bearer``."""

    slug = "unauthorized"
    title = "A valid API key is required"
    status = 401


class RateLimitedError(FaceforgeError):
    """The API key (or client address) used up its rate limit; ``extra["retry_after"]`` seconds go into
    a ``Retry-After`` header."""

    slug = "rate-limited"
    title = "Too many requests for this API key; retry later"
    status = 429


class ServerBusyError(FaceforgeError):
    """Decoding the upload would overrun the process's decode memory budget for too long
    (``server.decode_budget``); ``extra["retry_after"]`` seconds go into a ``Retry-After`` header."""

    slug = "server-busy"
    title = "The server is busy decoding other images; retry later"
    status = 503


class InternalError(FaceforgeError):
    slug = "internal-error"
    title = "Internal server error"
    status = 500


def problem_types() -> list[type[FaceforgeError]]:
    """Every error class the API can answer with (for the OpenAPI document), sorted by slug."""
    found: dict[str, type[FaceforgeError]] = {}
    stack = [FaceforgeError]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__ in (ff_errors.__name__, __name__):
            found.setdefault(cls.slug, cls)
    return [found[k] for k in sorted(found)]


def problem_response(error: FaceforgeError) -> Response:
    """The ``application/problem+json`` response for ``error``; ``instance`` is the request path."""
    body = error.to_problem(instance=request.path if request else None)
    response = current_app.response_class(json.dumps(body), status=error.status, mimetype=PROBLEM_MEDIA_TYPE)
    if isinstance(error, MethodNotAllowedError) and error.extra.get("allowed"):
        response.headers["Allow"] = ", ".join(error.extra["allowed"])
    if isinstance(error, (QueueFullError, RateLimitedError, ServerBusyError)) and error.extra.get("retry_after"):
        response.headers["Retry-After"] = str(int(error.extra["retry_after"]))
    if isinstance(error, UnauthorizedError):
        response.headers["WWW-Authenticate"] = 'Bearer realm="faceforge"'
    return response


def _from_http(exc: HTTPException) -> FaceforgeError:
    if isinstance(exc, RequestEntityTooLarge):
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        from server.config import MULTIPART_OVERHEAD_BYTES

        image_limit = (limit or 0) - MULTIPART_OVERHEAD_BYTES
        return TooManyBytesError(f"the request body is larger than {limit} bytes: an uploaded image may have "
                                 f"at most {image_limit} bytes ({image_limit / 2 ** 20:.0f} MiB; "
                                 f"FACEFORGE_MAX_BYTES), plus {MULTIPART_OVERHEAD_BYTES} bytes for the rest of "
                                 f"the form", limit=image_limit, body_limit=limit)
    if isinstance(exc, NotFound):
        return RouteNotFoundError(f"no endpoint at {request.path}")
    if isinstance(exc, MethodNotAllowed):
        allowed = sorted(exc.valid_methods or [])
        return MethodNotAllowedError(f"{request.method} is not allowed on {request.path}; allowed: "
                                     f"{', '.join(allowed)}", allowed=allowed)
    # any other HTTP error werkzeug raises (e.g. a malformed multipart body -> 400)
    error = RequestError(exc.description or exc.name)
    error.status = exc.code or 400
    error.title = exc.name
    return error


def register_error_handlers(app: Flask) -> None:
    """Install the problem+json handlers on ``app``."""

    @app.errorhandler(FaceforgeError)
    def _faceforge_error(exc: FaceforgeError) -> Response:
        if exc.status >= 500:
            log.warning("%s on %s: %s", exc.type, request.path, exc.detail)
        return problem_response(exc)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        return problem_response(_from_http(exc))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(InternalError("the server failed to process the request; the error "
                                              "was logged"))

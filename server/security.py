"""Response hardening shared by every server: security headers and no version banner.

* Every response carries ``X-Content-Type-Options: nosniff`` (a browser must not reinterpret a PNG or
  JSON body as HTML or script; OWASP Secure Headers Project) and, unless the view set its own,
  ``Cache-Control: no-store``: results are people's faces and their analyses, and a job result or
  image must not stay in a shared or browser cache after its TTL (RFC 9111 section 5.2.2.5).
* ``faceforge serve`` (Werkzeug's development server) answers ``Server: faceforge`` instead of
  ``Werkzeug/<version> Python/<version>``, and the errors its HTTP parser answers before the app sees
  the request (400 malformed request line, 414 URI too long, 431 header line too long / too many
  headers) are ``application/problem+json`` like every app error (:class:`QuietRequestHandler`).
  gunicorn announces only ``gunicorn``, without a version; its own parser errors (400 malformed
  request, 414 request line over ``--limit-request-line``, 431 headers over their limits, 501) are
  problem+json too: :func:`problem_json_from_gunicorn` replaces ``gunicorn.util.write_error``, which
  gunicorn's workers call for them, in every process that builds the app.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from flask import Flask, Response
from werkzeug.serving import WSGIRequestHandler

from faceforge.errors import PROBLEM_TYPE_PREFIX, RequestError

SERVER_NAME = "faceforge"
"""What the ``Server`` header of the development server says."""

SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff"}
"""Headers set on every response."""


def add_security_headers(response: Response) -> Response:
    """``after_request`` hook: :data:`SECURITY_HEADERS`, and ``Cache-Control: no-store`` unless set."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


def install(app: Flask) -> None:
    """Add :func:`add_security_headers` to ``app`` and, when gunicorn runs this process, make its parser
    errors problem+json (:func:`problem_json_from_gunicorn`). Called by :func:`server.create_app`."""
    app.after_request(add_security_headers)
    problem_json_from_gunicorn()


def problem_body(status: int, title: str, detail: str | None) -> bytes:
    """The RFC 9457 JSON of an error answered below the app: ``bad-request`` for 4xx, ``internal-error``
    for 5xx (the app's own slugs for errors of the HTTP layer)."""
    slug = RequestError.slug if status < 500 else "internal-error"
    return json.dumps({"type": PROBLEM_TYPE_PREFIX + slug, "title": title, "status": int(status),
                       "detail": detail or title}).encode()


def _gunicorn_write_problem(sock, status_int, reason, mesg):  # gunicorn.util.write_error's signature
    import gunicorn.util

    reason = str(reason).replace("\r", " ").replace("\n", " ")
    body = problem_body(int(status_int), reason, str(mesg) if mesg else None)
    head = (f"HTTP/1.1 {int(status_int)} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n"
            f"X-Content-Type-Options: nosniff\r\n\r\n")
    gunicorn.util.write_nonblock(sock, head.encode("latin-1", "replace") + body)


def problem_json_from_gunicorn() -> bool:
    """When this process runs gunicorn (``gunicorn.workers.base`` imported), make gunicorn's own error
    answers problem+json by replacing ``gunicorn.util.write_error`` (looked up at call time by
    ``Worker.handle_error``); return whether it did. Checked against real gunicorn processes in
    ``tests/test_server_hardening.py``."""
    import sys

    util = sys.modules.get("gunicorn.util")
    if util is None or "gunicorn.workers.base" not in sys.modules or not hasattr(util, "write_error"):
        return False
    util.write_error = _gunicorn_write_problem
    return True


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler without the version banner (``Server: faceforge`` on every answer)
    and with problem+json (RFC 9457) instead of ``http.server``'s HTML error page for the errors its
    parser answers itself; ``type`` is ``bad-request`` for 4xx (as the app's other HTTP-layer errors),
    ``internal-error`` for 5xx."""

    def version_string(self) -> str:
        return SERVER_NAME

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        try:
            title, default_detail = self.responses[code]
        except KeyError:
            title, default_detail = "Error", ""
        detail = message or explain or default_detail
        self.log_error("code %d, message %s", code, detail)
        self.send_response(code, title)
        self.send_header("Connection", "close")
        body = b""
        if code >= 200 and code not in (HTTPStatus.NO_CONTENT, HTTPStatus.RESET_CONTENT, HTTPStatus.NOT_MODIFIED):
            body = problem_body(code, title, detail)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

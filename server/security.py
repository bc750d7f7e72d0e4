"""Response hardening shared by every server: security headers and no version banner.

* Every response carries ``X-Content-Type-Options: nosniff`` (a browser must not reinterpret a PNG or
  JSON body as HTML or script; OWASP Secure Headers Project) and, unless the view set its own,
  ``Cache-Control: no-store``: results are people's faces and their analyses, and a job result or
  image must not stay in a shared or browser cache after its TTL (RFC 9111 section 5.2.2.5).
* ``faceforge serve`` (Werkzeug's development server) answers ``Server: faceforge`` instead of
  ``Werkzeug/<version> Python/<version>`` (:class:`QuietRequestHandler`). gunicorn announces only
  ``gunicorn``, without a version.
"""

from __future__ import annotations

from flask import Flask, Response
from werkzeug.serving import WSGIRequestHandler

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
    """Add :func:`add_security_headers` to ``app`` (called by :func:`server.create_app`)."""
    app.after_request(add_security_headers)


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler without the version banner: ``Server: faceforge`` on every answer,
    error pages of the HTTP parser (400, 414, 431) included."""

    def version_string(self) -> str:
        return SERVER_NAME
